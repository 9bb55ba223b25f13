//! Integration tests: the real `dashbatch` binary against the simulator (embedded with
//! `--provider sim`, or standalone through `dashbatch sim serve` and `--base-url`).

mod accounting;
mod adoption;
mod allocator;
mod bad_input;
mod budget;
mod crash;
mod estimate;
mod faults;
mod formats;
mod harness;
mod images;
mod input_trust;
mod interop;
mod invariants;
mod jobs;
mod polling;
mod prices;
mod providers;
mod resume;
mod reuse;
mod reuse_crash;
mod sdk_conformance;
mod system_faults;
mod tokens;
mod trust;
