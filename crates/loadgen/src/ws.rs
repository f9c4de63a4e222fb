//! The live-channel websocket from the generator's side: connecting with a
//! session cookie, and reading the few things the scenarios need out of a
//! server frame without parsing its JSON (a receiver handles tens of
//! thousands of frames per second and must cost less than the server).

use crate::error::Result;
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

/// The unsigned integer right after `key` in `s`.
fn number_after(s: &str, key: &str) -> Option<u64> {
    let at = memchr::memmem::find(s.as_bytes(), key.as_bytes())? + key.len();
    let digits = s[at..].bytes().take_while(u8::is_ascii_digit).count();
    s[at..at + digits].parse().ok()
}

/// The message `type` of a server frame.
pub fn frame_type(s: &str) -> Option<&str> {
    const KEY: &str = "\"type\":\"";
    let at = memchr::memmem::find(s.as_bytes(), KEY.as_bytes())? + KEY.len();
    let len = memchr::memchr(b'"', &s.as_bytes()[at..])?;
    Some(&s[at..at + len])
}

/// The text the generator's chat senders write: a marker and the send time
/// on the generator's clock, then who sent it.
pub fn chat_text(send_us: u64, sender: usize, n: u64) -> String {
    format!("lg {send_us} s{sender} #{n}")
}

/// The send time inside a `chat` frame written by [`chat_text`].
pub fn chat_send_time(frame: &str) -> Option<u64> {
    number_after(frame, "\"text\":\"lg ")
}

/// `missed` of a `snapshot` with `reason: "lagged"` (the server skipped chat
/// for this slow connection), else `None`.
pub fn lagged_missed(frame: &str) -> Option<u64> {
    memchr::memmem::find(frame.as_bytes(), b"\"reason\":\"lagged\"")?;
    Some(number_after(frame, "\"missed\":").unwrap_or(0))
}

/// `code` of a `refused` or `buy_refused` frame.
pub fn refusal_code(frame: &str) -> Option<&str> {
    const KEY: &str = "\"code\":\"";
    let at = memchr::memmem::find(frame.as_bytes(), KEY.as_bytes())? + KEY.len();
    let len = memchr::memchr(b'"', &frame.as_bytes()[at..])?;
    Some(&frame[at..at + len])
}

/// `nonce` of a private answer (`accepted`, `reservation`, `buy_refused`).
pub fn nonce(frame: &str) -> Option<&str> {
    const KEY: &str = "\"nonce\":\"";
    let at = memchr::memmem::find(frame.as_bytes(), KEY.as_bytes())? + KEY.len();
    let len = memchr::memchr(b'"', &frame.as_bytes()[at..])?;
    Some(&frame[at..at + len])
}

/// `reservation` id of a `reservation` frame.
pub fn reservation_id(frame: &str) -> Option<&str> {
    const KEY: &str = "\"reservation\":\"";
    let at = memchr::memmem::find(frame.as_bytes(), KEY.as_bytes())? + KEY.len();
    let len = memchr::memchr(b'"', &frame.as_bytes()[at..])?;
    Some(&frame[at..at + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chat_frames_as_the_server_writes_them() {
        let text = chat_text(123_456, 7, 3);
        let frame = format!(
            r#"{{"seq":5,"type":"chat","id":"msg_1","author":{{"subject":"gst_1","name":"x","role":"viewer"}},"text":"{text}","at":"2026-06-01T08:01:02.345Z"}}"#
        );
        assert_eq!(frame_type(&frame), Some("chat"));
        assert_eq!(chat_send_time(&frame), Some(123_456));
        assert_eq!(lagged_missed(&frame), None);
        // Someone else's chat that merely mentions the marker is not ours.
        let other = r#"{"seq":6,"type":"chat","text":"I like lg 5"}"#;
        assert_eq!(chat_send_time(other), None);
    }

    #[test]
    fn reads_lagged_snapshots_and_refusals() {
        let snap = r#"{"seq":9,"type":"snapshot","reason":"lagged","missed":42,"history":[]}"#;
        assert_eq!(frame_type(snap), Some("snapshot"));
        assert_eq!(lagged_missed(snap), Some(42));
        let join = r#"{"seq":9,"type":"snapshot","reason":"join","missed":0}"#;
        assert_eq!(lagged_missed(join), None);
        let refused = r#"{"seq":1,"type":"refused","command":"chat","nonce":"n1","code":"rate_limited","retry_after_ms":100}"#;
        assert_eq!(refusal_code(refused), Some("rate_limited"));
        assert_eq!(nonce(refused), Some("n1"));
        let rsv = r#"{"seq":1,"type":"reservation","reservation":"rsv_4t7k","offer":"ofr_1","nonce":"b-1"}"#;
        assert_eq!(reservation_id(rsv), Some("rsv_4t7k"));
        assert_eq!(nonce(rsv), Some("b-1"));
    }
}
