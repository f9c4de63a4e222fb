//! The one error type of the SFU boundary.

/// Everything `Sfu` can refuse, each with a human-readable reason.
///
/// Suggested HTTP mapping (the HTTP layer owns it): `BadSdp` 400, `SdpTooComplex`
/// 422, `UnsupportedCodecs` 406 (or 422), `NoPublisher` 404, `UnknownSession` 404,
/// `BadTrickle` 400, `IceRestartUnsupported` 422, `TooManyPending` 429 with
/// `Retry-After`, `RoomFull` and `RoomBusy` 503 with `Retry-After`,
/// `TooManySessions` 503, `ShuttingDown` 503, `Internal` 500.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SfuError {
    /// The SDP could not be parsed or is not a usable offer (reason inside).
    #[error("bad SDP: {0}")]
    BadSdp(String),
    /// The SDP is well formed but over a limit no real client reaches (too many
    /// m-sections, lines, payload types, or an overlong line).
    #[error("SDP over limits: {0}")]
    SdpTooComplex(String),
    /// No codec in common (reason names what each side has).
    #[error("unsupported codecs: {0}")]
    UnsupportedCodecs(String),
    /// The room already has `max_viewers_per_room` connected viewers.
    #[error("room is full ({0} viewers)")]
    RoomFull(usize),
    /// This client address already has `max_pending_per_client` sessions that
    /// have not connected yet.
    #[error(
        "{0} sessions from this address are still connecting; finish or end them, or wait a few seconds"
    )]
    TooManyPending(usize),
    /// The room already has `max_pending_per_room` viewers that have not connected yet.
    #[error("{0} viewers of this broadcast are still connecting; try again in a moment")]
    RoomBusy(usize),
    /// Nobody is publishing to this room (playback is refused rather than left waiting).
    #[error("no publisher in this room")]
    NoPublisher,
    /// The session id is unknown in this room (ended, expired or never existed).
    #[error("unknown session")]
    UnknownSession,
    /// The server-wide session limit is reached.
    #[error("too many sessions on this server ({0})")]
    TooManySessions(usize),
    /// A trickle fragment could not be parsed.
    #[error("bad trickle fragment: {0}")]
    BadTrickle(String),
    /// A trickle fragment with new ICE credentials (an ICE restart), which the SFU
    /// does not support: the client should end the session and POST a new offer.
    #[error("ICE restarts are not supported: end this session and send a new offer instead")]
    IceRestartUnsupported,
    /// The SFU is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// Anything else: logged with detail, reported without.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SfuError {
    /// A stable, machine-readable code (for `application/problem+json`).
    pub fn code(&self) -> &'static str {
        match self {
            SfuError::BadSdp(_) => "bad_sdp",
            SfuError::SdpTooComplex(_) => "sdp_too_complex",
            SfuError::TooManyPending(_) => "too_many_pending",
            SfuError::RoomBusy(_) => "room_busy",
            SfuError::IceRestartUnsupported => "ice_restart_unsupported",
            SfuError::UnsupportedCodecs(_) => "unsupported_codecs",
            SfuError::RoomFull(_) => "room_full",
            SfuError::NoPublisher => "no_publisher",
            SfuError::UnknownSession => "unknown_session",
            SfuError::TooManySessions(_) => "too_many_sessions",
            SfuError::BadTrickle(_) => "bad_trickle",
            SfuError::ShuttingDown => "shutting_down",
            SfuError::Internal(_) => "internal",
        }
    }

    /// The HTTP status code this error should map to.
    pub fn http_status(&self) -> u16 {
        match self {
            SfuError::BadSdp(_) | SfuError::BadTrickle(_) => 400,
            SfuError::UnsupportedCodecs(_) => 406,
            SfuError::SdpTooComplex(_) | SfuError::IceRestartUnsupported => 422,
            SfuError::TooManyPending(_) => 429,
            SfuError::NoPublisher | SfuError::UnknownSession => 404,
            SfuError::RoomFull(_)
            | SfuError::RoomBusy(_)
            | SfuError::TooManySessions(_)
            | SfuError::ShuttingDown => 503,
            SfuError::Internal(_) => 500,
        }
    }

    /// How long a client should wait before trying again, for refusals that pass.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        use std::time::Duration;
        match self {
            // Another client's handshake finishing (or expiring) frees a place;
            // real handshakes take about a second.
            SfuError::TooManyPending(_) | SfuError::RoomBusy(_) => Some(Duration::from_secs(2)),
            SfuError::RoomFull(_) | SfuError::TooManySessions(_) | SfuError::ShuttingDown => {
                Some(Duration::from_secs(5))
            }
            _ => None,
        }
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> SfuError {
    SfuError::Internal(e.to_string())
}
