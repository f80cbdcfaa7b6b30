//! Command-line helpers shared by the examples.

use std::time::Duration;

/// Parses a number of seconds (fractions allowed) for clap's `value_parser`.
pub(crate) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}
