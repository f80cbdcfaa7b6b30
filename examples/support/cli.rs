//! Command-line helpers shared by the examples.

use std::future::Future;
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

/// Runs `run` for at most `limit`: its exit code, or a failure printed as `program: ...`
/// when it fails or takes too long (a demo must always end).
pub(crate) async fn exit_code_within(
    program: &str,
    limit: Duration,
    run: impl Future<Output = Result<ExitCode, BoxError>>,
) -> ExitCode {
    match tokio::time::timeout(limit, run).await {
        Ok(result) => exit_code(program, result),
        Err(_) => {
            eprintln!("{program}: did not finish within {limit:?}");
            ExitCode::FAILURE
        }
    }
}
