//! The server speaks codes, the pages speak the person's language: every
//! code the server can send has words in both of the pages' dictionaries
//! (zh-CN and English). The dictionaries come from the pages' own modules
//! (`node web/tests/words.mjs`); the codes from the live channel's enums
//! and close reasons in `protocol`, the HTTP problem codes from the
//! OpenAPI document's `Problem.code` enum (`api::ProblemCode`), and
//! the field codes of validation errors from `domain::FieldCode`.

use crate::harness::tool_available;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Every variant name of a unit-variant serde enum, read from the error
/// serde gives for an unknown one ("expected one of `a`, `b`"), so the list
/// follows the enum without being written twice.
fn variants<T: DeserializeOwned>() -> Vec<String> {
    let err = serde_json::from_str::<T>("\"no such variant 0x7f\"")
        .err()
        .expect("an unknown variant is refused")
        .to_string();
    let list = err
        .split("expected one of ")
        .nth(1)
        .or_else(|| err.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("serde names the variants: {err}"));
    // "`a`, `b`, or `c`" and "`a` or `b`": the names are what is quoted.
    let list = list.split(" at line").next().unwrap();
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Both dictionaries, as the pages load them.
fn dictionaries() -> Option<Value> {
    if !tool_available("node", "FIELDCAST_REQUIRE_NODE") {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/tests/words.mjs");
    let out = Command::new("node")
        .arg(&script)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the words as JSON"))
}

#[test]
fn every_server_code_has_words_in_both_languages() {
    let Some(words) = dictionaries() else {
        return;
    };
    let mut needed: Vec<String> = Vec::new();
    let mut add = |prefix: &str, codes: Vec<String>| {
        assert!(!codes.is_empty(), "{prefix}: no codes found");
        needed.extend(codes.into_iter().map(|c| format!("{prefix}{c}")));
    };
    add("r.", variants::<protocol::RefusalCode>());
    add("buy.", variants::<protocol::BuyRefusalCode>());
    add("mute.", variants::<protocol::MuteReason>());
    add("ws.", variants::<protocol::ErrorCode>());
    add("mod.a.", variants::<protocol::ModerationAction>());
    add(
        "close.",
        protocol::CloseReason::ALL
            .iter()
            .map(|c| c.reason.to_owned())
            .collect(),
    );
    // HTTP problem codes and field codes, from the lists the API documents:
    // what a client reads in the OpenAPI document is what must have words.
    let openapi = serde_json::to_value(api::openapi()).expect("OpenAPI as JSON");
    let listed = |pointer: &str| -> Vec<String> {
        openapi
            .pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("the OpenAPI document lists {pointer}"))
            .iter()
            .map(|c| c.as_str().expect("a code is a string").to_owned())
            .collect()
    };
    let http = listed("/components/schemas/Problem/properties/code/enum");
    assert_eq!(http.len(), api::ProblemCode::ALL.len());
    add("e.", http);
    // Field codes (a problem's `errors[].code`): the same list as the enum.
    let fields = listed("/components/schemas/ProblemField/properties/code/enum");
    assert_eq!(fields, variants::<domain::FieldCode>());
    add("e.", fields);
    let mut missing = Vec::new();
    for key in &needed {
        for lang in ["zh", "en"] {
            if words[lang].get(key).is_none() {
                missing.push(format!("{lang}: {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "server codes without words on the pages:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_variant_reader_reads_every_variant() {
    // A known enum, whole: the reader is what the test above trusts.
    assert_eq!(
        variants::<protocol::MuteReason>(),
        vec!["timeout".to_owned(), "flood".to_owned()]
    );
    assert_eq!(variants::<protocol::RefusalCode>().len(), 13);
    assert_eq!(
        variants::<domain::FieldCode>().len(),
        domain::FieldCode::ALL.len()
    );
}
