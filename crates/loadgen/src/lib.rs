//! # fieldcast load generator
//!
//! Drives a running fieldcast over its public interfaces only (WHIP, WHEP,
//! the live-channel websocket, HTTP) and measures what a farmer's audience
//! would feel and what it costs the server. Three scenarios, one command
//! each (see `BENCHMARKS.md` at the repository root for the commands and the
//! numbers):
//!
//! * [`media`] (`loadgen viewers`): one synthetic publisher, N WHEP viewers;
//!   bitrate, loss, join time, forwarding delay, server CPU per forwarded
//!   packet and memory.
//! * [`chat`] (`loadgen chat`): N websocket viewers in one room, M chat
//!   messages per second from enough guest senders to stay inside the
//!   per-person rate limit; deliveries per second, send → receive latency,
//!   what was dropped for slowness.
//! * [`sale`] (`loadgen sale`): B buyers tapping "buy" on one offer at once
//!   (HTTP with `Idempotency-Key`, or the websocket `buy`); accepted
//!   reservations per second, latency to the durable acknowledgement, and an
//!   oversell check against the database afterwards.
//!
//! By default the generator starts a release `fieldcast serve` itself
//! ([`server`]: temporary data directory, free port, fresh database) so it
//! knows the server's pid; `--url`/`--pid` drive a server started by hand.
//! Every run prints a table and writes a JSON [`report`] holding the
//! machine, the load average before and after, and how much CPU the server,
//! the generator and everyone else used during the measurement window: the
//! machine is shared, so a number without its conditions means little.
//!
//! The generator is built to cost less than what it measures: viewers count
//! SRTP packets from their clear headers and decrypt only a sample, many
//! viewers share a task, chat receivers scan frames for a marker instead of
//! parsing JSON, and buyers speak HTTP/1.1 over their own keep-alive
//! connection with a few microseconds of client work per request.

// The kernel interfaces go through `nix`; nothing here needs raw pointers.
#![forbid(unsafe_code)]

pub mod api;
pub mod chat;
pub mod clock;
pub mod error;
pub mod hist;
mod http1;
pub mod media;
pub mod procfs;
pub mod report;
pub mod sale;
pub mod server;
pub mod ws;

pub use error::{Error, Result};

/// `12.34` or `n/a`.
pub(crate) fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "n/a".into(),
    }
}
