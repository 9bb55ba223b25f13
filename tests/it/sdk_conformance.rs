//! The official OpenAI Python SDK drives `dashbatch sim serve` in both flavours through the whole
//! Files + Batches lifecycle, validating every object with the SDK's own types in strict mode
//! (`tests/sdk/conformance.py`). The Python environment comes from `scripts/python-env.sh`.

use std::process::{Command, Output};

use serde_json::{Value, json};

use super::harness::*;

fn python() -> String {
    let output = Command::new("bash")
        .arg(repository_root().join("scripts/python-env.sh"))
        .output()
        .expect("run scripts/python-env.sh");
    assert!(
        output.status.success(),
        "python environment: {}",
        text(&output.stderr)
    );
    text(&output.stdout).trim().to_owned()
}

fn run_conformance(python: &str, simulator: &StandaloneSimulator, flavour: &str) -> Output {
    Command::new(python)
        .arg(repository_root().join("tests/sdk/conformance.py"))
        .arg(&simulator.base_url)
        .arg(flavour)
        .output()
        .expect("run tests/sdk/conformance.py")
}

fn assert_conformant(flavour: &str, output: &Output, simulator: &StandaloneSimulator) {
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK conformance script failed against the {flavour} simulator (exit {:?})\nstdout:\n{stdout}\nstderr:\n{}",
        output.status.code(),
        text(&output.stderr)
    );
    let summary = stdout
        .lines()
        .find(|line| line.starts_with(&format!("sdk conformance ({flavour}):")))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    assert!(summary.ends_with(" 0 failed"), "{summary}\n{stdout}");
    record_summary(&format!("sdk-{flavour}"), summary);

    // The ledger saw every ending the script drove, and billed only the lines that ran.
    let ledger = simulator.ledger();
    let statuses: Vec<&str> = ledger["batches"]
        .as_array()
        .expect("ledger batches")
        .iter()
        .map(|batch| batch["status"].as_str().unwrap())
        .collect();
    for ending in ["completed", "failed", "cancelled", "expired"] {
        assert!(
            statuses.contains(&ending),
            "{flavour}: no {ending} batch in the ledger: {statuses:?}"
        );
    }
    let twice: Vec<&Value> = ledger["bill_count_per_custom_id"]
        .as_object()
        .expect("bill counts")
        .iter()
        .filter(|(custom_id, count)| {
            // The window batches of the DashScope run share one input file on purpose.
            !custom_id.starts_with("w-") && count.as_u64() != Some(1)
        })
        .map(|(_, count)| count)
        .collect();
    assert!(
        twice.is_empty(),
        "{flavour}: lines billed twice: {ledger:#}"
    );
}

#[test]
fn the_openai_python_sdk_drives_both_simulator_flavours_strictly() {
    let python = python();
    let dashscope = StandaloneSimulator::start(&[]);
    let openai = StandaloneSimulator::start(&["--flavour", "openai"]);
    for simulator in [&dashscope, &openai] {
        simulator.put_json("/_sim/clock", &json!({"time_scale": 1000.0}));
    }
    // Both flavours at once: each script spends most of its time waiting on its simulator.
    let (dashscope_output, openai_output) = std::thread::scope(|scope| {
        let dashscope_run = scope.spawn(|| run_conformance(&python, &dashscope, "dashscope"));
        let openai_output = run_conformance(&python, &openai, "openai");
        (dashscope_run.join().expect("dashscope run"), openai_output)
    });
    assert_conformant("dashscope", &dashscope_output, &dashscope);
    assert_conformant("openai", &openai_output, &openai);
}
