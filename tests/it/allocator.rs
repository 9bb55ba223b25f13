//! The binary's allocator settings take effect: mimalloc commits its arenas on demand (set from
//! an ELF constructor by the option's number in mimalloc's header, which an upgrade could move).

use std::process::Command;

use super::harness::binary;

#[cfg(target_os = "linux")]
#[test]
fn mimalloc_commits_arenas_on_demand() {
    let output = Command::new(binary())
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("option 'arena_eager_commit': 0"),
        "mimalloc's options as it printed them:\n{stderr}"
    );
}
