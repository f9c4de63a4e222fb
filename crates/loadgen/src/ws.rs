//! The live-channel websocket from the generator's side: connecting with a
//! session cookie, and reading the few things the scenarios need out of a
//! server frame ([`Frame`]).

use crate::error::Result;
use serde::Deserialize;
use std::borrow::Cow;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client websocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `GET /api/v1/broadcasts/{broadcast}/live`, as the guest whose
/// `cookie` is given, or anonymously.
pub async fn connect(base: &str, broadcast: &str, cookie: Option<&str>) -> Result<Socket> {
    let url = format!("{base}/api/v1/broadcasts/{broadcast}/live").replacen("http", "ws", 1);
    let mut request = url.into_client_request()?;
    if let Some(c) = cookie {
        request.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(c).map_err(|e| crate::Error::Invalid(e.to_string()))?,
        );
    }
    // tungstenite's default 128 KiB read buffer is zeroed on every read: with
    // thousands of connections each reading one small frame at a time that
    // memset was three quarters of the generator's CPU.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    Ok(socket)
}

/// The fields of a server frame (or an HTTP problem body) the scenarios
/// read, borrowed from the text; every other field is skipped unparsed.
///
/// Not `protocol::ServerFrame`: its flattened, internally tagged event makes
/// serde buffer the whole frame, 1.3 µs a chat frame against 0.33 µs for this
/// view (BENCHMARKS.md, "The generator's JSON"); a receiver reads tens of
/// thousands of frames a second and must cost less than the server. The test
/// below reads frames the protocol types wrote, so the names stay in step.
#[derive(Debug, Default, Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub missed: Option<u64>,
    #[serde(borrow, default)]
    pub code: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub nonce: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub reservation: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
}

impl<'a> Frame<'a> {
    /// `None` for text that is not a JSON object.
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The message `type`.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// The send time of a `chat` frame whose text [`chat_text`] wrote.
    pub fn chat_send_time(&self) -> Option<u64> {
        if self.kind() != Some("chat") {
            return None;
        }
        self.text
            .as_deref()?
            .strip_prefix("lg ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    }

    /// `missed` of a `snapshot` with `reason: "lagged"` (the server skipped
    /// chat for this slow connection), else `None`.
    pub fn lagged_missed(&self) -> Option<u64> {
        (self.kind() == Some("snapshot") && self.reason.as_deref() == Some("lagged"))
            .then(|| self.missed.unwrap_or(0))
    }

    /// `code` of a `refused` or `buy_refused` frame, or of a problem body.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// `nonce` of a private answer (`accepted`, `reservation`, `buy_refused`).
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// `reservation` id of a `reservation` frame.
    pub fn reservation(&self) -> Option<&str> {
        self.reservation.as_deref()
    }
}

/// The text the generator's chat senders write: a marker and the send time
/// on the generator's clock, then who sent it.
pub fn chat_text(send_us: u64, sender: usize, n: u64) -> String {
    format!("lg {send_us} s{sender} #{n}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{ChatMessageId, ChatText, DisplayName, Role};
    use protocol::{Author, ChatMessage, ServerEvent, ServerFrame};

    fn written(event: ServerEvent) -> String {
        serde_json::to_string(&ServerFrame { seq: 5, event }).unwrap()
    }

    #[test]
    fn reads_chat_frames_the_protocol_types_write() {
        let chat = |text: String| {
            written(ServerEvent::Chat(ChatMessage {
                id: ChatMessageId::generate(),
                author: Author {
                    subject: "gst_1".into(),
                    name: DisplayName::parse("x \"quoted\"").unwrap(),
                    role: Role::Viewer,
                },
                text: ChatText::parse(&text).unwrap(),
                at: protocol::Timestamp(domain::UnixMillis::from_millis(1_780_300_862_345)),
            }))
        };
        let frame = chat(chat_text(123_456, 7, 3));
        let f = Frame::parse(&frame).unwrap();
        assert_eq!(f.kind(), Some("chat"));
        assert_eq!(f.chat_send_time(), Some(123_456));
        assert_eq!(f.lagged_missed(), None);
        // Someone else's chat that merely mentions the marker is not ours,
        // nor is an escaped look-alike in another field.
        let other = chat("I like lg 5".into());
        assert_eq!(Frame::parse(&other).unwrap().chat_send_time(), None);
        let tricky = r#"{"seq":6,"type":"chat","author":{"name":"\"text\":\"lg 9 "},"text":"hi"}"#;
        assert_eq!(Frame::parse(tricky).unwrap().chat_send_time(), None);
        assert!(Frame::parse("not json").is_none());
    }

    #[test]
    fn reads_lagged_snapshots_and_refusals() {
        let snap = r#"{"seq":9,"type":"snapshot","reason":"lagged","missed":42,"history":[]}"#;
        let f = Frame::parse(snap).unwrap();
        assert_eq!(f.kind(), Some("snapshot"));
        assert_eq!(f.lagged_missed(), Some(42));
        let join = r#"{"seq":9,"type":"snapshot","reason":"join","missed":0}"#;
        assert_eq!(Frame::parse(join).unwrap().lagged_missed(), None);
        let refused = r#"{"seq":1,"type":"refused","command":"chat","nonce":"n1","code":"rate_limited","retry_after_ms":100}"#;
        let f = Frame::parse(refused).unwrap();
        assert_eq!((f.code(), f.nonce()), (Some("rate_limited"), Some("n1")));
        let rsv = r#"{"seq":1,"type":"reservation","reservation":"rsv_4t7k","offer":"ofr_1","nonce":"b-1"}"#;
        let f = Frame::parse(rsv).unwrap();
        assert_eq!(
            (f.reservation(), f.nonce()),
            (Some("rsv_4t7k"), Some("b-1"))
        );
        let problem = r#"{"type":"about:blank","title":"Sold out","status":409,"code":"sold_out"}"#;
        assert_eq!(Frame::parse(problem).unwrap().code(), Some("sold_out"));
    }
}
