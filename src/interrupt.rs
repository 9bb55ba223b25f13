//! SIGINT and SIGTERM for the commands that spend money (`run`, `resume`, `cancel`) and those whose
//! local work is long (`validate`, `estimate`): handlers
//! installed before any work starts, a process-wide flag that long local stages (planning, the
//! join) check between record batches, and the exit code a signal demands (130 or 143).
//!
//! The ledger is consistent at every moment (each side effect is announced before it happens),
//! so stopping anywhere is safe; what matters is that a signal is never swallowed: once one has
//! arrived, the process never exits 0 and never starts another side effect.

use std::sync::atomic::{AtomicI32, Ordering};

use tokio::sync::Notify;

/// The signal that arrived first (0 while none has).
static RECEIVED_SIGNAL: AtomicI32 = AtomicI32::new(0);

fn notify() -> &'static Notify {
    static NOTIFY: std::sync::OnceLock<Notify> = std::sync::OnceLock::new();
    NOTIFY.get_or_init(Notify::new)
}

/// A stop requested by a signal, as an error that long local stages return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped by {}", signal_name(*.signal))]
pub struct Interrupted {
    pub signal: i32,
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "Ctrl-C (SIGINT)",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Installs the SIGINT and SIGTERM handlers now (not lazily on a first poll, which would miss a
/// signal sent while a synchronous stage holds the task). Must run inside the tokio runtime.
pub fn install_handlers() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            let number = tokio::select! {
                _ = interrupt.recv() => libc::SIGINT,
                _ = terminate.recv() => libc::SIGTERM,
            };
            // The first signal decides the exit code; later ones change nothing.
            let _ = RECEIVED_SIGNAL.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
            notify().notify_waiters();
        }
    });
    Ok(())
}

/// The signal received so far, if any.
pub fn received() -> Option<Interrupted> {
    match RECEIVED_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(Interrupted { signal }),
    }
}

/// `Err` once a signal has arrived: the check long synchronous stages make between batches.
pub fn check() -> Result<(), Interrupted> {
    match received() {
        Some(interrupted) => Err(interrupted),
        None => Ok(()),
    }
}

/// The stop by signal an I/O error carries, when a long read stopped for one (see
/// [`check_while_reading`]).
pub fn of_io_error(error: &std::io::Error) -> Option<Interrupted> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Interrupted>())
        .copied()
}

/// [`check`] as an I/O error, for a long pass of reads (hashing a whole input).
///
/// # Errors
/// Once a signal has arrived.
pub fn check_while_reading() -> std::io::Result<()> {
    check().map_err(|interrupted| std::io::Error::new(std::io::ErrorKind::Interrupted, interrupted))
}

/// Resolves when a signal arrives (at once if one already has).
pub async fn wait_for_signal() -> Interrupted {
    loop {
        let notified = notify().notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a signal between the two still wakes it.
        notified.as_mut().enable();
        if let Some(interrupted) = received() {
            return interrupted;
        }
        notified.await;
    }
}

/// The exit code for a signal: 128 plus its number (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code(interrupted: Interrupted) -> u8 {
    u8::try_from(128 + interrupted.signal).unwrap_or(crate::exit::INTERRUPTED)
}

/// True when `error` (or any error in its chain) is a stop by signal.
pub fn is_interruption(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<Interrupted>().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(
            exit_code(Interrupted {
                signal: libc::SIGINT
            }),
            130
        );
        assert_eq!(
            exit_code(Interrupted {
                signal: libc::SIGTERM
            }),
            143
        );
    }

    #[test]
    fn an_interruption_is_found_inside_a_context_chain() {
        let error = anyhow::Error::new(Interrupted {
            signal: libc::SIGTERM,
        })
        .context("while planning");
        assert!(is_interruption(&error));
        assert!(!is_interruption(&anyhow::anyhow!("other")));
    }
}
