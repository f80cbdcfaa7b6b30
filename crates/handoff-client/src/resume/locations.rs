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
        if uri.scheme() != base.scheme() || uri.authority() != base.authority() {
            return Err(format!("published a location on another origin ({uri})"));
        }
    }
    Ok(Some(locations))
}

/// What the interim responses of one exchange told: the locations (first seen wins) or why
/// they could not be used.
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
            opener.open();
            let headers = response.headers();
            if let Some(acked) = headers
                .get(ACKNOWLEDGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                source.release(acked);
            }
            let mut slot = captured.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = read(headers, &base).transpose();
            }
        });
    }

    /// The body's gate: open once an interim response arrived (or after `timeout`).
    pub(crate) fn gate(&self, timeout: std::time::Duration) -> Gate {
        self.opener.gate(timeout)
    }

    /// What was captured.
    pub(crate) fn get(&self) -> Option<Result<Locations, String>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
