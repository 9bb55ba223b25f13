//! Writing to the terminal without ever panicking: a closed stdout or stderr (`| head`, a parent that stopped reading) must not turn into a crash with exit code 101 halfway through a run.

use std::io::Write;

/// Writes `line` and a line break to stderr; a stderr nobody reads is not an error.
pub fn say(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    let _ = stderr.write_all(b"\n");
}

/// Writes `text` to stdout as it is; a closed pipe is not an error of the command.
pub fn print_text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
