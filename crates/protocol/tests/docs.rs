//! `docs/protocol.md` matches the code: every example round-trips through
//! the types unchanged, and every message type the code knows is shown.

use protocol::{ClientMessage, ServerEvent, ServerFrame};
use serde_json::Value;
use std::collections::BTreeSet;

fn document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md")
}

/// The fenced blocks marked `json client` and `json server`.
fn examples(doc: &str) -> (Vec<String>, Vec<String>) {
    let (mut client, mut server) = (Vec::new(), Vec::new());
    let mut current: Option<(bool, String)> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```json client") => current = Some((false, String::new())),
            (None, "```json server") => current = Some((true, String::new())),
            (Some((is_server, body)), "```") => {
                let body = std::mem::take(body);
                if *is_server {
                    server.push(body)
                } else {
                    client.push(body)
                }
                current = None;
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "unterminated example block");
    (client, server)
}

fn type_of(v: &Value) -> String {
    v.get("type")
        .and_then(Value::as_str)
        .expect("every example has a type")
        .to_owned()
}

/// Every variant name, straight from serde: deserializing an unknown tag
/// fails with "unknown variant `x`, expected one of `a`, `b`, …".
fn variants<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let err = serde_json::from_str::<T>(r#"{"type":"no such type"}"#)
        .unwrap_err()
        .to_string();
    let list = err
        .split("expected one of ")
        .nth(1)
        .expect("serde lists the variants");
    let list = list.split(" at line").next().unwrap();
    list.split(", ")
        .map(|v| v.trim().trim_matches('`').to_owned())
        .collect()
}

#[test]
fn every_documented_example_round_trips() {
    let (client, server) = examples(&document());
    assert!(!client.is_empty() && !server.is_empty());
    for text in &client {
        let value: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"));
        let parsed: ClientMessage = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("not a client message: {e}\n{text}"));
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            value,
            "client example changes on the way back"
        );
        assert_eq!(
            serde_json::to_value(parsed.name()).unwrap(),
            Value::String(type_of(&value))
        );
    }
    for text in &server {
        let value: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"));
        let parsed: ServerFrame = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("not a server frame: {e}\n{text}"));
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            value,
            "server example changes on the way back:\n{text}"
        );
    }
}

#[test]
fn every_message_type_is_documented() {
    let (client, server) = examples(&document());
    let shown = |blocks: &[String]| -> BTreeSet<String> {
        blocks
            .iter()
            .map(|b| type_of(&serde_json::from_str(b).unwrap()))
            .collect()
    };
    let client_types = variants::<ClientMessage>();
    let server_types = variants::<ServerEvent>();
    assert!(
        client_types.contains("chat") && server_types.contains("hello"),
        "{client_types:?} {server_types:?}"
    );
    assert_eq!(
        shown(&client),
        client_types,
        "client message types with an example"
    );
    assert_eq!(
        shown(&server),
        server_types,
        "server message types with an example"
    );
}

#[test]
fn every_close_code_is_documented() {
    let doc = document();
    for c in protocol::CloseReason::ALL {
        let row = format!("| {} | `{}` |", c.code, c.reason);
        assert!(
            doc.contains(&row),
            "docs/protocol.md lacks the close code row {row}"
        );
    }
}
