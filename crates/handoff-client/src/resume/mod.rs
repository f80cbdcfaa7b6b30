//! Resumable requests, the client side (docs/PROTOCOL.md part B).

mod body;
mod error;
mod event;
mod flow;
mod future;
mod gate;
mod layer;
mod locations;
mod report;
mod response_body;
mod service;
mod source;
mod upload;

pub use self::body::UploadBody;
pub use self::error::{ResumeError, Step};
pub use self::event::ResumeEvent;
pub use self::future::ResponseFuture;
pub use self::layer::{Release, ResumeLayer};
pub use self::report::ResumeReport;
pub use self::response_body::ResponseBody;
pub use self::service::Resume;
pub use self::source::{FileSource, Source, SourceStream, StreamSource};
pub use self::upload::Upload;
