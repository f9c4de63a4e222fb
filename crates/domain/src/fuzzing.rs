//! Entry points for fuzzing (see `fuzz/`): arbitrary bytes through the text
//! rules every typed name, title and chat message passes. None may panic;
//! each checks what the rules promise, so a broken promise panics too.

use crate::text::normalize_text;
use crate::{
    Address, BroadcastTitle, ChatText, Description, DisplayName, Invalid, Mobile, PaymentNote,
    PersonName, Place, ProductTitle, Reason, ShopName, Story, Unit,
};
use unicode_normalization::is_nfc;

/// Text normalization, single- and multi-line, and every validated text
/// type: the result is NFC, has no control characters (but `\n` where
/// allowed), no blanks at its ends, and normalizing or parsing it again
/// changes nothing (what is stored reads back the same).
pub fn normalize(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    for multiline in [false, true] {
        let once = normalize_text(&raw, multiline);
        assert!(is_nfc(&once), "not NFC: {once:?}");
        assert_eq!(normalize_text(&once, multiline), once, "not idempotent");
        assert!(
            once.chars()
                .all(|c| !c.is_control() || (multiline && c == '\n')),
            "control character left in {once:?}"
        );
        assert_eq!(once.trim(), once, "blank ends left in {once:?}");
    }
    stable(&raw, DisplayName::parse, DisplayName::as_str);
    stable(&raw, ShopName::parse, ShopName::as_str);
    stable(&raw, Place::parse, Place::as_str);
    stable(&raw, Story::parse, Story::as_str);
    stable(&raw, ProductTitle::parse, ProductTitle::as_str);
    stable(&raw, Description::parse, Description::as_str);
    stable(&raw, Unit::parse, Unit::as_str);
    stable(&raw, BroadcastTitle::parse, BroadcastTitle::as_str);
    stable(&raw, ChatText::parse, ChatText::as_str);
    stable(&raw, PersonName::parse, PersonName::as_str);
    stable(&raw, Address::parse, Address::as_str);
    stable(&raw, PaymentNote::parse, PaymentNote::as_str);
    stable(&raw, Reason::parse, Reason::as_str);
    stable(&raw, Mobile::parse, Mobile::as_str);
}

/// A value that parses parses again to itself.
fn stable<T: PartialEq + std::fmt::Debug>(
    raw: &str,
    parse: fn(&str) -> Result<T, Invalid>,
    text: fn(&T) -> &str,
) {
    if let Ok(value) = parse(raw) {
        assert_eq!(parse(text(&value)).as_ref(), Ok(&value), "reparse");
    }
}

/// Runs every file of a committed fuzz corpus (`fuzz/corpus/<target>/`)
/// through `run`, for the crates' replay tests: CI checks every input found
/// so far without libFuzzer. A panic names the file.
pub fn replay_corpus(dir: &std::path::Path, run: fn(&[u8])) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no corpus", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("read corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panics", file.display());
    }
}
