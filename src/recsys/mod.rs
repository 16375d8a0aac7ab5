//! Recommender datasets, models (MF, ALS, BPR, KGAT) and ranking metrics, independent of Postgres.
