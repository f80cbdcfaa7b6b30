//! Logging for the examples: `tracing` to stderr, quiet at `info`, `RUST_LOG` to change it.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber; `default` is the filter used when `RUST_LOG` is unset.
///
/// Calling it twice (two tests in one binary) is harmless: the second call does nothing.
pub(crate) fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
