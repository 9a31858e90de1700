//! Benchmark scenarios (issue 4).
