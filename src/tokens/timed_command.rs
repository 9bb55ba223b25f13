//! Running another program (the user's Python, its `pip`) with a time limit: a program that hangs is killed and reported, never waited for forever.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `command` to its end or until `limit` passes, collecting its output; on the limit the
/// program is killed and the error says so.
///
/// # Errors
/// When the program cannot be started, or runs longer than `limit`.
pub fn output_within(mut command: Command, limit: Duration) -> Result<Output, String> {
    // Its own process group, so that what it starts is stopped with it.
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|error| format!("did not run: {error}"))?;
    let group = child.id() as libc::pid_t;
    let stop_group = || {
        // SAFETY: signalling the process group this function created.
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
    };
    // Read both pipes while waiting, so that a talkative program never blocks on a full pipe.
    let (sender, receiver) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_stdout, mut pipe) in [
        (
            true,
            Box::new(child.stdout.take().expect("stdout is piped")) as Box<dyn Read + Send>,
        ),
        (
            false,
            Box::new(child.stderr.take().expect("stderr is piped")) as Box<dyn Read + Send>,
        ),
    ] {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = sender.send((is_stdout, bytes));
        });
    }
    drop(sender);
    let started = Instant::now();
    let out_of_time = || {
        format!(
            "did not finish within {} seconds and was stopped",
            limit.as_secs()
        )
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limit => {
                stop_group();
                let _ = child.wait();
                return Err(out_of_time());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("could not be waited for: {error}")),
        }
    };
    // The pipes close when every process holding them is gone; one left behind in the group
    // (a background child) is stopped at the limit rather than waited for.
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let remaining = limit.saturating_sub(started.elapsed());
        match receiver.recv_timeout(remaining) {
            Ok((true, bytes)) => stdout = bytes,
            Ok((false, bytes)) => stderr = bytes,
            Err(_) => {
                stop_group();
                return Err(out_of_time());
            }
        }
    }
    Ok(Output {
        status,
        stdout,
        stderr,
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
        // It answers and leaves a child holding its output: stopped at the limit all the same.
        let mut lingering = Command::new("sh");
        lingering.args(["-c", "echo Python 3.11.0; sleep 30 &"]);
        let started = Instant::now();
        let error = output_within(lingering, Duration::from_millis(500)).unwrap_err();
        assert!(error.contains("did not finish within"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
