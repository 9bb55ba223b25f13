//! Integration tests: the real `dashbatch` binary against the simulator (embedded with
//! `--provider sim`, or standalone through `dashbatch sim serve` and `--base-url`).

mod accounting;
mod bad_input;
mod budget;
mod estimate;
mod formats;
mod harness;
mod interop;
mod jobs;
mod tokens;
