//! The job-file loader (src/job/load.rs, `job::load_job`) over arbitrary bytes as the job file,
//! followed by the provider checks every run makes next (`ProviderProfile::check_job`). Input
//! tables sit next to the job file so relative paths resolve. Must never panic.
#![no_main]

use std::sync::Once;

use dashbatch::job::load_job;
use dashbatch::provider::{ProviderKind, ProviderProfile};
use libfuzzer_sys::fuzz_target;

const KINDS: [ProviderKind; 4] = [
    ProviderKind::Sim,
    ProviderKind::Dashscope,
    ProviderKind::DashscopeIntl,
    ProviderKind::Openai,
];

fuzz_target!(|data: &[u8]| {
    static INPUTS: Once = Once::new();
    INPUTS.call_once(|| {
        fuzz_support::write_scratch("rows.csv", b"id,text\n1,hello\n2,world\n");
        fuzz_support::write_scratch("rows.jsonl", b"{\"id\": 1, \"text\": \"hello\"}\n");
    });
    let path = fuzz_support::write_scratch("job.toml", data);
    let job = match load_job(&path) {
        Ok(job) => job,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    // What a loaded job promises the rest of the engine.
    assert!(
        !job.name.is_empty() && job.name.len() <= 64,
        "name {:?}",
        job.name
    );
    assert_eq!(job.job_file_sha256.len(), 64);
    // "A checked job with absolute paths": the job file's path is absolute here.
    assert!(job.input_path.is_absolute(), "{}", job.input_path.display());
    for kind in KINDS {
        if let Err(error) = ProviderProfile::for_kind(kind).check_job(&job) {
            let _ = error.to_string();
        }
    }
});
