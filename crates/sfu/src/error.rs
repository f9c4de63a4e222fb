//! The one error type of the SFU boundary.

/// Everything `Sfu` can refuse, each with a human-readable reason.
///
/// The SFU knows nothing of HTTP: what each refusal becomes on the wire (status,
/// problem code, `Retry-After`) is decided in one place, `api::routes::media`.
/// The enum is exhaustive on purpose, so a new refusal cannot reach a client
/// without a mapping.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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

pub(crate) fn internal(e: impl std::fmt::Display) -> SfuError {
    SfuError::Internal(e.to_string())
}
