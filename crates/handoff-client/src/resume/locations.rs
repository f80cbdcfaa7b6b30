//! The operation's locations, as the server publishes them in the `100 Continue` (read with
//! hyper's `on_informational`) or in the final response (docs/PROTOCOL.md part B.2), checked
//! to stay on the request's own origin.

use std::sync::{Arc, Mutex};

use http::{HeaderMap, Uri};

use handoff_proto::location::Locations;

use super::gate::{Gate, Opener};
use super::source::Source;

/// The `Acknowledge` interim-response header (docs/PROTOCOL.md part B.9).
const ACKNOWLEDGE: &str = "acknowledge";

/// Reads the locations in `headers`, resolved against `base`. `Ok(None)` when there are
/// none; `Err` (with what was wrong) for a location the client must not follow: malformed,
/// or on another origin, where the request's credentials would go.
pub(crate) fn read(headers: &HeaderMap, base: &Uri) -> Result<Option<Locations>, String> {
    let locations = Locations::from_headers(headers, base).map_err(|e| e.to_string())?;
    if locations.request_content.is_none() && locations.response_message.is_none() {
        return Ok(None);
    }
    for uri in [&locations.request_content, &locations.response_message]
        .into_iter()
        .flatten()
    {
        let same = matches!((origin(uri), origin(base)), (Some(a), Some(b)) if a == b);
        if !same {
            return Err(format!("published a location on another origin ({uri})"));
        }
    }
    Ok(Some(locations))
}

/// A URI's origin (RFC 6454): scheme, host (case-insensitive) and port, the default one
/// filled in.
fn origin(uri: &Uri) -> Option<(String, String, u16)> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some((scheme, host, port))
}

/// What the interim responses of one exchange told: whether a `100 Continue` came, with its
/// locations (the first wins) or why they could not be used.
#[derive(Debug, Clone, Default)]
pub(crate) struct Captured {
    inner: Arc<Mutex<Option<Result<Locations, String>>>>,
    opener: Opener,
}

impl Captured {
    /// Registers the callback on `request`: locations from any `1xx` (unknown codes such as
    /// `102` or `199` are otherwise ignored), and `Acknowledge: N` releases the source's
    /// buffer below `N`.
    pub(crate) fn watch<B>(&self, request: &mut http::Request<B>, source: Arc<dyn Source>) {
        let captured = self.inner.clone();
        let opener = self.opener.clone();
        let base = request.uri().clone();
        hyper::ext::on_informational(request, move |response| {
            let headers = response.headers();
            if let Some(acked) = headers
                .get(ACKNOWLEDGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                source.release(acked);
            }
            // Only a `100 Continue` answers the `Expect` and carries the locations; other
            // interim codes (`102`, `103`, `199`) are skipped (part C, clients).
            if response.status() != http::StatusCode::CONTINUE {
                return;
            }
            let mut slot = captured.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(
                    read(headers, &base)
                        .transpose()
                        .unwrap_or(Err(String::new())),
                );
            }
            drop(slot);
            opener.open();
        });
    }

    /// Whether a `100 Continue` arrived.
    pub(crate) fn continued(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The body's gate: open once an interim response arrived (or after `timeout`).
    pub(crate) fn gate(&self, timeout: std::time::Duration) -> Gate {
        self.opener.gate(timeout)
    }

    /// The locations of the `100 Continue`: `None` if none came or it carried none,
    /// `Some(Err)` if it carried unusable ones.
    pub(crate) fn get(&self) -> Option<Result<Locations, String>> {
        match self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(Err(what)) if what.is_empty() => None,
            other => other,
        }
    }
}
