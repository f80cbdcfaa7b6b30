//! Building blocks shared by the examples (`origin`, `proxy`, `demo`) and by the integration
//! tests in `tests/`, which include this folder with
//! `#[path = "../examples/support/mod.rs"] mod support;`.
//!
//! Each file holds one concern:
//!
//! - [`origin`]: the upload origin (axum), optionally with `PartialPostReplayLayer`.
//! - [`proxy`]: the reverse proxy (axum serving, `ReplayLayer` + [`balancer`]).
//! - [`balancer`]: round robin over hyper-util's client, honouring `AvoidBackends`.
//! - [`backends`]: the backend set: up/down state and the round-robin pick.
//! - [`health`]: the background `GET /health` checker that brings a backend back.
//! - [`rolling`]: one step of a rolling restart (a new origin on the old one's port).
//! - [`connections`]: a listener that can close every accepted connection (a process exit).
//! - [`relay`]: a TCP relay that cuts chosen connections at a chosen byte (fault injection).
//! - [`pattern`]: the deterministic pseudo-random upload body.
//! - [`upload`]: the client side of one upload, with its verdict.
//! - [`signal`]: SIGTERM / SIGINT.
//! - [`cli`]: argument parsing helpers.
//! - [`logging`]: tracing to stderr.
//!
//! Every example uses only a part of it.
#![allow(dead_code)]

pub(crate) mod backends;
pub(crate) mod balancer;
pub(crate) mod cli;
pub(crate) mod connections;
pub(crate) mod health;
pub(crate) mod logging;
pub(crate) mod origin;
pub(crate) mod pattern;
pub(crate) mod proxy;
pub(crate) mod relay;
pub(crate) mod rolling;
pub(crate) mod signal;
pub(crate) mod upload;

/// The boxed error used across the support code.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
