//! Exit codes, documented in README.md. Scripts may rely on them.

/// Every row succeeded.
pub const SUCCESS: u8 = 0;
/// The run finished but some rows did not succeed (their status says why).
pub const SOME_ROWS_FAILED: u8 = 1;
/// Usage, job file or input error: nothing was submitted and nothing was spent.
pub const INPUT_ERROR: u8 = 2;
/// The provider or network failed in a way retries could not fix (auth, quota, ...). The run's
/// state is saved; `dashbatch resume RUN_DIR` continues it.
pub const REMOTE_ERROR: u8 = 3;
/// Interrupted (Ctrl-C). The run's state is saved; remote batches keep running;
/// `dashbatch resume RUN_DIR` continues it.
pub const INTERRUPTED: u8 = 130;
