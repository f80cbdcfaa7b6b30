//! [`ResponseBody`]: the inner service's body, or one the layer wrote itself.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::Either;

use crate::BoxError;

/// The body of the layer's own responses (resources, refusals, recorded responses).
pub(crate) type OwnBody = UnsyncBoxBody<Bytes, BoxError>;

/// The response body of a [`Resumable`](super::Resumable) service: the inner service's
/// ([`Either::Left`]), or one the layer wrote itself ([`Either::Right`]: a resource, a
/// refusal, a recorded response).
pub type ResponseBody<B> = Either<B, OwnBody>;
