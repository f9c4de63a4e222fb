//! Entry points for fuzzing (see `fuzz/`): arbitrary bytes as a websocket
//! text frame from a page, decoded as a connection decodes it. None may
//! panic; a decoded message must also survive a round trip through JSON
//! unchanged (what the server reads is what a client meant to write).

use protocol::ClientMessage;

/// One text frame: decoded into a [`ClientMessage`], or told apart as not
/// JSON, an unknown type or a known type with wrong fields.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => {
            let _ = message.name();
            let again = serde_json::to_string(&message).expect("a message serializes");
            let back: ClientMessage = serde_json::from_str(&again).expect("and reads back");
            assert_eq!(back, message, "round trip through {again}");
        }
        Err(error) => {
            let _ = crate::conn::classify(text, &error);
        }
    }
}
