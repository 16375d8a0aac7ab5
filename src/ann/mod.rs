//! HNSW graph construction and search over f32 vectors, independent of Postgres (arrives with the index issue).
