//! The resources an operation publishes (docs/PROTOCOL.md parts B.3 to B.8), one file each:
//!
//! - request content ([`request`]): `HEAD` (the held length), `GET` (the held bytes);
//! - request content, `PATCH` with `message/byterange` ([`patch`]);
//! - response message ([`response`]): `GET` as `message/http`, `DELETE`;
//! - response content ([`content`]): `GET` of the recorded body, with `Range`.
//!
//! Every endpoint first checks the owner: another party's request is answered `404`, the
//! same as an unknown id (part B.7).

mod content;
mod patch;
mod request;
mod response;

use std::sync::Arc;

use bytes::Bytes;
use http::header::ALLOW;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;

use super::core::Core;
use super::paths::{Resource as Which, Target};
use super::record::Launch;
use super::reply::{not_found, refuse, store_error};
use super::response_body::OwnBody;
use super::store::{Resource, StoreError};
use crate::BoxError;

/// Answers a request for a path under the layer's prefix.
pub(crate) async fn serve<B>(
    core: Arc<Core>,
    launch: Launch,
    request: Request<B>,
    target: Target,
) -> Response<OwnBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    let Target::Resource(id, which) = target else {
        return not_found();
    };
    let (parts, body) = request.into_parts();
    let owner = core.owner_of.owner(&parts);
    let resource = match core.store.get(id).await {
        Ok(resource) if resource.owner == owner => resource,
        Ok(_) | Err(StoreError::NotFound) => return not_found(),
        Err(error) => return store_error(error),
    };
    let method = &parts.method;
    match which {
        Which::Request if method == Method::HEAD => request::head(&core, launch, resource),
        Which::Request if method == Method::GET => request::get(&core, resource, &parts).await,
        Which::Request if method == Method::PATCH => {
            patch::patch(core, launch, resource, parts, body).await
        }
        Which::Request if core.store.keeps_content() => not_allowed("HEAD, GET, PATCH"),
        Which::Request => not_allowed("HEAD, PATCH"),
        Which::Response if method == Method::GET => {
            response::get(&core, launch, resource, &parts).await
        }
        Which::Response if method == Method::DELETE => response::delete(&core, resource).await,
        Which::Response => not_allowed("GET, DELETE"),
        Which::Content if method == Method::GET || method == Method::HEAD => {
            content::get(&core, launch, resource, &parts).await
        }
        Which::Content => not_allowed("GET, HEAD"),
    }
}

fn not_allowed(allow: &'static str) -> Response<OwnBody> {
    let mut response = refuse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// Runs the operation's handler in this process if it runs nowhere here and has no response
/// yet: after a restart, the first request that touches an operation resumes it.
fn adopt(launch: Launch, resource: &Resource) {
    if resource.responded_at.is_some() {
        return;
    }
    let parts = {
        let (mut parts, ()) = resource.head.to_request(()).into_parts();
        parts.extensions = http::Extensions::new();
        parts
    };
    if launch(resource.id, parts, resource.complete_length) {
        tracing::info!(id = %resource.id, held = resource.length, "resumable operation adopted by this process");
    }
}

/// `held/total bytes`: the progress text of `299` and `409` answers (docs/PROTOCOL.md
/// part C).
fn progress(resource: &Resource) -> String {
    match resource.complete_length {
        Some(total) => format!("{}/{total} bytes\n", resource.length),
        None => format!("{}/* bytes\n", resource.length),
    }
}
