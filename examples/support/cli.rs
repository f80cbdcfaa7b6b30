//! Command-line helpers shared by the examples.

use std::process::ExitCode;
use std::time::Duration;

use super::BoxError;

/// Parses a number of seconds (fractions allowed) for clap's `value_parser`.
pub(crate) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

/// The process's exit code for what `run` returned; an error is printed as `program: error`.
pub(crate) fn exit_code(program: &str, result: Result<ExitCode, BoxError>) -> ExitCode {
    result.unwrap_or_else(|error| {
        eprintln!("{program}: {error}");
        ExitCode::FAILURE
    })
}
