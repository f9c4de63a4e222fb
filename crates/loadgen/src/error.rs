//! The one error type of the load generator.

/// Why a scenario could not run (a scenario that runs but misses a target is
/// not an error: that is what the report is for).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Starting, reaching or stopping the server.
    #[error("server: {0}")]
    Server(String),
    /// An HTTP request got an unexpected answer.
    #[error("{what}: HTTP {status}: {body}")]
    Http {
        /// What was being done.
        what: String,
        /// Status received.
        status: u16,
        /// Body received (problem document).
        body: String,
    },
    /// An HTTP request failed on the way.
    #[error("HTTP request: {0}")]
    Request(#[from] reqwest::Error),
    /// Sockets and files.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The WebRTC stack (`rtc`) refused something.
    #[error("WebRTC: {0}")]
    Rtc(String),
    /// A websocket failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// Reading the database for the oversell check.
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    /// Bad options, or the server said something we cannot parse.
    #[error("{0}")]
    Invalid(String),
    /// A correctness check failed (e.g. oversell): the run's numbers cannot
    /// be trusted.
    #[error("check failed: {0}")]
    Check(String),
}

impl Error {
    pub(crate) fn rtc(e: impl std::fmt::Display) -> Error {
        Error::Rtc(e.to_string())
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
