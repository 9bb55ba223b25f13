//! Running another program (the user's Python, its `pip`) with a time limit: a program that hangs is killed and reported, never waited for forever.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` to its end or until `limit` passes, collecting its output; on the limit the
/// program is killed and the error says so.
///
/// # Errors
/// When the program cannot be started, or runs longer than `limit`.
pub fn output_within(mut command: Command, limit: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("did not run: {error}"))?;
    // Read both pipes while waiting, so that a talkative program never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {} seconds and was stopped",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("could not be waited for: {error}")),
        }
    };
    Ok(Output {
        status,
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_ends_gives_its_output_and_one_that_hangs_is_stopped() {
        let mut echo = Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2"]);
        let output = output_within(echo, Duration::from_secs(10)).unwrap();
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        let mut hang = Command::new("sleep");
        hang.arg("30");
        let started = Instant::now();
        let error = output_within(hang, Duration::from_millis(200)).unwrap_err();
        assert!(error.contains("did not finish within"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let missing = output_within(Command::new("no-such-program-here"), Duration::from_secs(1));
        assert!(missing.unwrap_err().contains("did not run"));
    }
}
