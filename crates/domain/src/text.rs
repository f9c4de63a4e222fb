//! Validated strings people type: names, titles, mobile numbers, passwords.
//!
//! Every text is normalized the same way before its length is checked:
//! Unicode NFC, control and invisible characters removed (newlines kept only
//! where a field is multi-line), surrounding blanks trimmed. Lengths count
//! characters, not bytes, so 20 汉字 and 20 Latin letters are both 20. A text
//! that would render blank (only spaces, fillers or combining marks) counts
//! as empty.

use crate::{FieldCode, Invalid};
use icu_properties::props::{
    BidiControl, DefaultIgnorableCodePoint, Emoji, EmojiModifier, ExtendedPictographic,
    GeneralCategory,
};
use icu_properties::{CodePointMapData, CodePointSetData};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

const ZERO_WIDTH_JOINER: char = '\u{200D}';
const TEXT_PRESENTATION: char = '\u{FE0E}';
const EMOJI_PRESENTATION: char = '\u{FE0F}';
/// 🏴, the base of the subdivision flags (England, Scotland, Wales), the
/// only emoji spelled with tag characters.
const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

/// NFC, no control characters (but `\n` when `multiline`), no invisible
/// characters, trimmed of blanks; empty when nothing visible is left.
///
/// Invisible means every Default_Ignorable_Code_Point (zero-width spaces and
/// joiners, word joiner, soft hyphen, Hangul fillers, Mongolian vowel
/// separator, variation selectors, tag characters…) and every Bidi_Control
/// (U+061C, U+200E/F, U+202A–202E, U+2066–2069), as the Unicode data compiled
/// into `icu_properties` says. They let a message display differently from
/// what it contains, or a name look blank. Emoji keep what makes them emoji:
/// a zero-width joiner between two pictographs (👨‍👩‍👧), U+FE0E/FE0F right
/// after an emoji (❤️), and a complete tag sequence after 🏴 (🏴󠁧󠁢󠁳󠁣󠁴󠁿).
pub fn normalize_text(raw: &str, multiline: bool) -> String {
    let chars: Vec<char> = raw.nfc().collect();
    let mut out = String::with_capacity(raw.len());
    let mut previous: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == BLACK_FLAG {
            out.push(c);
            previous = Some(c);
            if let Some(len) = tag_sequence_len(&chars[i..]) {
                out.extend(&chars[i..i + len]);
                previous = Some(CANCEL_TAG);
                i += len;
            }
            continue;
        }
        let keep = match c {
            '\n' | '\u{2028}' | '\u{2029}' => {
                if multiline {
                    out.push('\n');
                    previous = Some('\n');
                }
                continue;
            }
            ZERO_WIDTH_JOINER => {
                previous.is_some_and(ends_emoji) && chars.get(i).is_some_and(|n| is_pictograph(*n))
            }
            TEXT_PRESENTATION | EMOJI_PRESENTATION => previous.is_some_and(is_emoji),
            c if c.is_control() => false,
            c => !is_invisible(c),
        };
        if keep {
            out.push(c);
            previous = Some(c);
        }
    }
    let trimmed = out.trim_matches(is_blank);
    if trimmed.chars().all(|c| is_blank(c) || is_combining_mark(c)) {
        return String::new();
    }
    // NFC again: a mark that sat behind a removed invisible character now
    // meets its base ("e", U+200B, U+0301 is "é"), so the result is NFC and
    // normalizing it again changes nothing (found by the fuzz target).
    trimmed.nfc().collect()
}

/// Default-ignorable or a bidi control: renders as nothing, or reorders
/// what is around it.
fn is_invisible(c: char) -> bool {
    CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || CodePointSetData::new::<BidiControl>().contains(c)
}

/// Characters that take space but draw nothing: whitespace, and the blank
/// Braille pattern (U+2800), the one visible-class character commonly used
/// as an "empty" name. (The Hangul fillers U+115F, U+1160, U+3164 and
/// U+FFA0 are default-ignorable and already gone.)
fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{2800}'
}

/// A combining mark with nothing to sit on draws little or nothing.
fn is_combining_mark(c: char) -> bool {
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark
    )
}

fn is_emoji(c: char) -> bool {
    CodePointSetData::new::<Emoji>().contains(c)
}

fn is_pictograph(c: char) -> bool {
    CodePointSetData::new::<ExtendedPictographic>().contains(c)
}

/// What may stand before a zero-width joiner inside an emoji sequence: a
/// pictograph, a skin tone, or an emoji-presentation selector.
fn ends_emoji(c: char) -> bool {
    c == EMOJI_PRESENTATION
        || is_pictograph(c)
        || CodePointSetData::new::<EmojiModifier>().contains(c)
}

/// The length of a tag sequence (tag letters then CANCEL TAG) at the start
/// of `chars`, if there is a complete one.
fn tag_sequence_len(chars: &[char]) -> Option<usize> {
    let letters = chars
        .iter()
        .take_while(|c| ('\u{E0020}'..='\u{E007E}').contains(*c))
        .count();
    (letters > 0 && chars.get(letters) == Some(&CANCEL_TAG)).then_some(letters + 1)
}

fn bounded(raw: &str, multiline: bool, min: usize, max: usize) -> Result<String, Invalid> {
    let text = normalize_text(raw, multiline);
    let len = text.chars().count();
    if len < min {
        return Err(if text.is_empty() && !raw.trim().is_empty() {
            Invalid::new(FieldCode::Blank, "must contain visible characters")
        } else if min == 1 {
            Invalid::new(FieldCode::Required, "must not be empty")
        } else {
            Invalid::new(
                FieldCode::TooShort,
                format!("must be at least {min} characters"),
            )
            .with("min", min as i64)
        });
    }
    if len > max {
        return Err(Invalid::new(
            FieldCode::TooLong,
            format!("must be at most {max} characters"),
        )
        .with("max", max as i64));
    }
    Ok(text)
}

macro_rules! text_type {
    ($(#[$meta:meta])* $name:ident, min = $min:expr, max = $max:expr, multiline = $ml:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                bounded(raw, $ml, $min, $max).map(Self)
            }

            pub fn from_trusted(raw: String) -> Self {
                Self(raw)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(/// What others see for an account or a guest in chat.
    DisplayName, min = 1, max = 24, multiline = false);
text_type!(ShopName, min = 1, max = 40, multiline = false);
text_type!(/// Village and county, e.g. "山西省 忻州市 岢岚县 宋家沟村".
    Place, min = 1, max = 80, multiline = false);
text_type!(/// The shop's short story, told to buyers.
    Story, min = 0, max = 1000, multiline = true);
text_type!(ProductTitle, min = 1, max = 60, multiline = false);
text_type!(Description, min = 0, max = 2000, multiline = true);
text_type!(/// The selling unit, e.g. "5 斤装" or "20-jin bag".
    Unit, min = 1, max = 20, multiline = false);
text_type!(BroadcastTitle, min = 1, max = 80, multiline = false);
text_type!(/// A chat message, at most 200 characters after normalization.
    ChatText, min = 1, max = 200, multiline = false);
text_type!(/// A buyer's name at checkout.
    PersonName, min = 1, max = 40, multiline = false);
text_type!(/// A delivery address at checkout.
    Address, min = 5, max = 200, multiline = true);
text_type!(/// How to pay the shop by transfer: WeChat ID, bank account, what to
    /// write in the transfer note.
    PaymentNote, min = 0, max = 300, multiline = true);
text_type!(/// Free text a farmer or moderator gives as a reason.
    Reason, min = 0, max = 200, multiline = false);

/// A mobile number: a mainland China number (11 digits starting 1[3-9]) or
/// an international one in E.164 form (`+` and 8–15 digits). Spaces and
/// dashes people type are dropped; `+86` in front of a mainland number is
/// dropped too, so one phone is one account.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mobile(String);

impl Mobile {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let compact: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
            .collect();
        let local = compact.strip_prefix("+86").unwrap_or(&compact);
        let is_mainland = local.len() == 11
            && local.bytes().all(|b| b.is_ascii_digit())
            && local.starts_with('1')
            && matches!(local.as_bytes()[1], b'3'..=b'9');
        if is_mainland {
            return Ok(Self(local.to_owned()));
        }
        if let Some(digits) = compact.strip_prefix('+')
            && (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
        {
            return Ok(Self(compact));
        }
        Err(Invalid::new(
            FieldCode::InvalidMobile,
            "must be an 11-digit mobile number such as 13800138000, or +country code and number",
        ))
    }

    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `138****8000`: enough for a farmer to recognise a buyer, not enough to
    /// call a stranger.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 7 {
            return "*".repeat(chars.len());
        }
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    }
}

/// A password as typed at sign-up. Never stored, never logged, and not
/// `Debug`-printable: only its argon2id hash leaves the request.
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if len < Self::MIN_CHARS {
            return Err(
                Invalid::new(FieldCode::TooShort, "must be at least 8 characters")
                    .with("min", Self::MIN_CHARS as i64),
            );
        }
        if len > Self::MAX_CHARS {
            return Err(
                Invalid::new(FieldCode::TooLong, "must be at most 128 characters")
                    .with("max", Self::MAX_CHARS as i64),
            );
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_normalized_before_length_is_checked() {
        // "é" as e + combining accent becomes one character.
        assert_eq!(
            DisplayName::parse("  Re\u{301}mi \u{7}").unwrap().as_str(),
            "Rémi"
        );
        assert_eq!(
            ChatText::parse("a\u{202E}b\u{200B}c").unwrap().as_str(),
            "abc"
        );
        assert_eq!(
            ChatText::parse("line\nbreak").unwrap().as_str(),
            "linebreak"
        );
        assert_eq!(
            Story::parse("first\nsecond").unwrap().as_str(),
            "first\nsecond"
        );
    }

    /// Every code point that hides in text or makes it look different from
    /// what it contains (issue 11, finding 7).
    const INVISIBLE: &[char] = &[
        '\u{00AD}',  // soft hyphen
        '\u{034F}',  // combining grapheme joiner
        '\u{061C}',  // Arabic letter mark
        '\u{115F}',  // Hangul choseong filler
        '\u{1160}',  // Hangul jungseong filler
        '\u{17B4}',  // Khmer vowel inherent aq
        '\u{180B}',  // Mongolian free variation selector one
        '\u{180E}',  // Mongolian vowel separator
        '\u{200B}',  // zero width space
        '\u{200C}',  // zero width non-joiner
        '\u{200D}',  // zero width joiner (outside emoji)
        '\u{200E}',  // left-to-right mark
        '\u{200F}',  // right-to-left mark
        '\u{202A}',  // left-to-right embedding
        '\u{202B}',  // right-to-left embedding
        '\u{202C}',  // pop directional formatting
        '\u{202D}',  // left-to-right override
        '\u{202E}',  // right-to-left override
        '\u{2060}',  // word joiner
        '\u{2061}',  // function application
        '\u{2064}',  // invisible plus
        '\u{2066}',  // left-to-right isolate
        '\u{2067}',  // right-to-left isolate
        '\u{2068}',  // first strong isolate
        '\u{2069}',  // pop directional isolate
        '\u{206F}',  // nominal digit shapes
        '\u{3164}',  // Hangul filler
        '\u{FE00}',  // variation selector 1
        '\u{FE0F}',  // variation selector 16 (outside emoji)
        '\u{FEFF}',  // zero width no-break space
        '\u{FFA0}',  // halfwidth Hangul filler
        '\u{1BCA0}', // shorthand format letter overlap
        '\u{1D173}', // musical symbol begin beam
        '\u{E0001}', // language tag
        '\u{E0020}', // tag space
        '\u{E0041}', // tag latin capital letter a
        '\u{E007F}', // cancel tag
        '\u{E0100}', // variation selector 17
        '\u{E01EF}', // variation selector 256
        '\u{E0FFF}', // last reserved default-ignorable
    ];

    /// Characters that draw nothing but are not default-ignorable.
    const BLANK_LOOKING: &[char] = &[
        ' ', '\u{00A0}', '\u{1680}', '\u{2000}', '\u{2005}', '\u{200A}', '\u{202F}', '\u{205F}',
        '\u{3000}', '\u{2800}',
    ];

    #[test]
    fn invisible_characters_are_dropped_everywhere_in_a_text() {
        for &c in INVISIBLE {
            let code = c as u32;
            let sneaky = format!("{c}小{c}李{c}");
            assert_eq!(
                DisplayName::parse(&sneaky).unwrap().as_str(),
                "小李",
                "U+{code:04X} in a nickname"
            );
            assert_eq!(
                ChatText::parse(&sneaky).unwrap().as_str(),
                "小李",
                "U+{code:04X} in chat"
            );
            assert_eq!(
                Story::parse(&format!("a{c}\nb")).unwrap().as_str(),
                "a\nb",
                "U+{code:04X} in a multi-line text"
            );
        }
    }

    #[test]
    fn texts_of_only_invisible_or_blank_characters_are_refused() {
        for &c in INVISIBLE.iter().chain(BLANK_LOOKING) {
            let code = c as u32;
            for raw in [c.to_string(), c.to_string().repeat(5)] {
                let name = DisplayName::parse(&raw).unwrap_err();
                assert!(
                    matches!(name.code, FieldCode::Blank | FieldCode::Required),
                    "U+{code:04X}: {}",
                    name.code
                );
                let chat = ChatText::parse(&raw).unwrap_err();
                assert!(
                    matches!(chat.code, FieldCode::Blank | FieldCode::Required),
                    "U+{code:04X}"
                );
                // Optional texts become empty rather than invisible.
                assert_eq!(Story::parse(&raw).unwrap().as_str(), "", "U+{code:04X}");
            }
        }
        // Mixtures, and fillers around a lone combining mark.
        let err = DisplayName::parse("\u{3164}\u{2800}\u{2060}\u{3000}").unwrap_err();
        assert_eq!(err.code, "blank");
        assert_eq!(err.message, "must contain visible characters");
        assert_eq!(
            DisplayName::parse("\u{2800}\u{0301}\u{2800}")
                .unwrap_err()
                .code,
            "blank"
        );
        assert_eq!(ChatText::parse("\u{2060}").unwrap_err().code, "blank");
        assert_eq!(ChatText::parse("\u{200D}").unwrap_err().code, "blank");
        assert_eq!(ChatText::parse("  ").unwrap_err().code, "required");
        // Blank padding around a name is trimmed like spaces are.
        assert_eq!(
            DisplayName::parse("\u{2800}\u{3164}小李\u{2800}")
                .unwrap()
                .as_str(),
            "小李"
        );
    }

    #[test]
    fn emoji_sequences_survive_and_their_joiners_alone_do_not() {
        for emoji in [
            "👨\u{200D}👩\u{200D}👧",                                   // family
            "❤\u{FE0F}",             // red heart, emoji presentation
            "👩\u{1F3FD}\u{200D}🌾", // farmer, medium skin tone
            "🏳\u{FE0F}\u{200D}🌈",   // rainbow flag
            "❤\u{FE0F}\u{200D}🔥",   // heart on fire
            "🏴\u{200D}☠\u{FE0F}",   // pirate flag
            "1\u{FE0F}\u{20E3}",     // keycap 1
            "🇨🇳",                    // regional indicator pair
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // Scotland
        ] {
            assert_eq!(ChatText::parse(emoji).unwrap().as_str(), emoji);
            let line = format!("好吃{emoji}！");
            assert_eq!(ChatText::parse(&line).unwrap().as_str(), line);
            assert_eq!(DisplayName::parse(emoji).unwrap().as_str(), emoji);
        }
        // Joiners and selectors that join nothing are dropped.
        assert_eq!(ChatText::parse("a\u{200D}b").unwrap().as_str(), "ab");
        assert_eq!(ChatText::parse("👨\u{200D}").unwrap().as_str(), "👨");
        assert_eq!(ChatText::parse("\u{200D}👨").unwrap().as_str(), "👨");
        assert_eq!(ChatText::parse("a\u{FE0F}").unwrap().as_str(), "a");
        assert_eq!(ChatText::parse("\u{FE0F}❤").unwrap().as_str(), "❤");
        // Tag characters count only as a complete flag after 🏴.
        assert_eq!(
            ChatText::parse("🏴\u{E0067}\u{E0062}").unwrap().as_str(),
            "🏴"
        );
        assert_eq!(
            ChatText::parse("x\u{E0067}\u{E0062}\u{E007F}")
                .unwrap()
                .as_str(),
            "x"
        );
    }

    #[test]
    fn line_separators_count_as_newlines() {
        assert_eq!(ChatText::parse("a\u{2028}b").unwrap().as_str(), "ab");
        assert_eq!(Story::parse("a\u{2029}b").unwrap().as_str(), "a\nb");
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(ChatText::parse(&"小".repeat(200)).is_ok());
        let err = ChatText::parse(&"小".repeat(201)).unwrap_err();
        assert_eq!(err.code, "too_long");
        assert_eq!(ShopName::parse("   ").unwrap_err().code, "required");
    }

    #[test]
    fn mobiles_are_normalized_and_checked() {
        assert_eq!(
            Mobile::parse("138 0013 8000").unwrap().as_str(),
            "13800138000"
        );
        assert_eq!(
            Mobile::parse("+8613800138000").unwrap().as_str(),
            "13800138000"
        );
        assert_eq!(
            Mobile::parse("+44 7700 900123").unwrap().as_str(),
            "+447700900123"
        );
        assert!(Mobile::parse("12345").is_err());
        assert!(Mobile::parse("12800138000").is_err());
        assert!(Mobile::parse("1380013800a").is_err());
        assert_eq!(
            Mobile::parse("13800138000").unwrap().masked(),
            "138****8000"
        );
    }

    #[test]
    fn passwords_have_bounds_and_hide_in_debug() {
        assert!(Password::parse("1234567").is_err());
        let p = Password::parse("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "Password(…)");
    }
}
