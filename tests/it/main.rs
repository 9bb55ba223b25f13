//! Integration tests: the real `dashbatch` binary against the simulator (embedded with
//! `--provider sim`, or standalone through `dashbatch sim serve` and `--base-url`).

mod bad_input;
mod formats;
mod harness;
mod interop;
mod jobs;
mod sdk_conformance;
