//! Validated strings people type: names, titles, mobile numbers, passwords.
//!
//! Every text is normalized the same way before its length is checked:
//! Unicode NFC, control characters removed (newlines kept only where a field
//! is multi-line), surrounding whitespace trimmed. Lengths count characters,
//! not bytes, so 20 汉字 and 20 Latin letters are both 20.

use crate::Invalid;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// NFC, no control characters (but `\n` when `multiline`), trimmed.
pub fn normalize_text(raw: &str, multiline: bool) -> String {
    let cleaned: String = raw
        .nfc()
        .filter(|c| {
            if *c == '\n' {
                multiline
            } else {
                !c.is_control() && !is_invisible_format_char(*c)
            }
        })
        .collect();
    cleaned.trim().to_owned()
}

/// Bidi overrides and zero-width characters let a message display differently
/// from what it contains; nobody needs them in a chat or a product title.
fn is_invisible_format_char(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn bounded(raw: &str, multiline: bool, min: usize, max: usize) -> Result<String, Invalid> {
    let text = normalize_text(raw, multiline);
    let len = text.chars().count();
    if len < min {
        return Err(if min == 1 {
            Invalid::new("required", "must not be empty")
        } else {
            Invalid::new("too_short", format!("must be at least {min} characters"))
        });
    }
    if len > max {
        return Err(Invalid::new(
            "too_long",
            format!("must be at most {max} characters"),
        ));
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
            "invalid_mobile",
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
            return Err(Invalid::new("too_short", "must be at least 8 characters"));
        }
        if len > Self::MAX_CHARS {
            return Err(Invalid::new("too_long", "must be at most 128 characters"));
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
