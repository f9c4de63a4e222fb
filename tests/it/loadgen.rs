//! Smoke runs of the load generator scenarios (correctness, not speed).
