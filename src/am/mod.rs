//! Index access method `pgrec_hnsw`: one file per IndexAmRoutine callback (arrives with the index issue).
