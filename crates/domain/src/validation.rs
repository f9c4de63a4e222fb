use serde::Serialize;
use std::collections::BTreeMap;

/// Declares a unit enum of wire codes with each variant's wire name written
/// once, so serde, [`as_str`](FieldCode::as_str) and any schema derived from
/// the enum cannot disagree. Extra attributes (docs, more derives) go first.
#[macro_export]
macro_rules! wire_codes {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        // `tt`, not `literal`: derive macros other than serde's (utoipa's
        // `ToSchema`) do not read a literal wrapped by macro expansion.
        $($(#[doc = $doc:literal])+ $variant:ident = $wire:tt,)+
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        $vis enum $name {
            $($(#[doc = $doc])+ #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The code as it is sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

wire_codes! {
    /// Why one request field was refused: the one list of field codes. The
    /// pages have words for each as `e.<code>` in both languages
    /// (`tests/it/i18n.rs`), filled from the error's `params` (`min`, `max`).
    pub enum FieldCode {
        /// Missing or empty.
        Required = "required",
        /// Only invisible characters (spaces, zero-width marks).
        Blank = "blank",
        /// Shorter than `params.min` characters.
        TooShort = "too_short",
        /// Longer than `params.max` characters.
        TooLong = "too_long",
        /// A number below the least allowed (`params.min` when there is one).
        TooSmall = "too_small",
        /// A number above the most allowed (`params.max`).
        TooLarge = "too_large",
        /// A number outside `params.min`..=`params.max`.
        OutOfRange = "out_of_range",
        /// Not one of the values the field takes.
        InvalidChoice = "invalid_choice",
        /// Not a mobile number (11 digits, or `+` and a country code).
        InvalidMobile = "invalid_mobile",
        /// Not a date written `YYYY-MM-DD`.
        InvalidDate = "invalid_date",
        /// Not an RFC 3339 time.
        InvalidTime = "invalid_time",
        /// Not an id of the kind the field names.
        InvalidId = "invalid_id",
        /// A tracking number that is not letters, digits or dashes (at most 40).
        InvalidTrackingNumber = "invalid_tracking_number",
        /// An `Idempotency-Key` that is not 1 to `params.max` printable ASCII characters.
        InvalidIdempotencyKey = "invalid_idempotency_key",
        /// No account uses this mobile number.
        NoSuchAccount = "no_such_account",
        /// The shop owner's own mobile number, where someone else's is wanted.
        IsOwner = "is_owner",
        /// A product that is not this shop's.
        NotInShop = "not_in_shop",
        /// More than the product has in stock (`params.max`).
        ExceedsStock = "exceeds_stock",
        /// A time that has already passed.
        InThePast = "in_the_past",
        /// An end before the start.
        BeforeStart = "before_start",
    }
}

/// The numbers a field code's words take, e.g. `max` for `too_long`.
pub type FieldParams = BTreeMap<&'static str, i64>;

/// Why one value was refused: a stable machine `code` (with the numbers its
/// words need) plus an English sentence for developers and logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: FieldCode,
    pub message: String,
    pub params: FieldParams,
}

impl Invalid {
    pub fn new(code: FieldCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            params: FieldParams::new(),
        }
    }

    /// This refusal with one more number for its words.
    pub fn with(mut self, name: &'static str, value: i64) -> Self {
        self.params.insert(name, value);
        self
    }

    /// This refusal, pinned to the request field it came from.
    pub fn at(self, field: &str) -> FieldError {
        FieldError {
            field: field.to_owned(),
            code: self.code,
            message: self.message,
            params: self.params,
        }
    }
}

/// An [`Invalid`] pinned to the request field it came from; this is what the
/// HTTP layer returns in a problem document's `errors` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: FieldCode,
    /// For developers and logs; pages show the words for `code`.
    pub message: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: FieldParams,
}

impl FieldError {
    pub fn new(field: &str, code: FieldCode, message: impl Into<String>) -> Self {
        Invalid::new(code, message).at(field)
    }
}

/// One request field, parsed: its value, or its refusal named after it.
pub fn field<T>(name: &str, parsed: Result<T, Invalid>) -> Result<T, FieldError> {
    parsed.map_err(|e| e.at(name))
}

/// [`field`] for an optional field: absent stays absent.
pub fn optional<T>(
    name: &str,
    parsed: Option<Result<T, Invalid>>,
) -> Result<Option<T>, FieldError> {
    parsed.transpose().map_err(|e| e.at(name))
}

/// A tuple of parsed fields (see [`field`]) becomes every value when all
/// parsed, or every refusal in field order, so a form can show them all at
/// once instead of one per round trip. No state is left where a value is
/// neither there nor refused, so callers never unwrap.
///
/// ```
/// # use domain::{Fields, Mobile, Password, field};
/// let refused = (
///     field("mobile", Mobile::parse("13800138000")),
///     field("password", Password::parse("short")),
/// )
///     .all()
///     .unwrap_err();
/// assert_eq!(refused.len(), 1);
/// assert_eq!(refused[0].field, "password");
/// let (mobile, password) = (
///     field("mobile", Mobile::parse("13800138000")),
///     field("password", Password::parse("long enough")),
/// )
///     .all()
///     .unwrap();
/// # let _ = (mobile, password);
/// ```
pub trait Fields {
    type Values;
    fn all(self) -> Result<Self::Values, Vec<FieldError>>;
}

macro_rules! fields_tuple {
    ($($t:ident $v:ident),+) => {
        impl<$($t),+> Fields for ($(Result<$t, FieldError>,)+) {
            type Values = ($($t,)+);
            fn all(self) -> Result<Self::Values, Vec<FieldError>> {
                match self {
                    ($(Ok($v),)+) => Ok(($($v,)+)),
                    ($($v,)+) => Err([$($v.err()),+].into_iter().flatten().collect()),
                }
            }
        }
    };
}

fields_tuple!(A a);
fields_tuple!(A a, B b);
fields_tuple!(A a, B b, C c);
fields_tuple!(A a, B b, C c, D d);
fields_tuple!(A a, B b, C c, D d, E e);
fields_tuple!(A a, B b, C c, D d, E e, F f);
fields_tuple!(A a, B b, C c, D d, E e, F f, G g);
fields_tuple!(A a, B b, C c, D d, E e, F f, G g, H h);

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(code: FieldCode) -> Result<u32, Invalid> {
        Err(Invalid::new(code, "no"))
    }

    #[test]
    fn every_refusal_is_reported_in_field_order() {
        let errors = (
            field("a", refuse(FieldCode::Required)),
            field("b", Ok::<_, Invalid>(2)),
            field("c", refuse(FieldCode::TooLong)),
        )
            .all()
            .unwrap_err();
        let named: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            named,
            [("a", FieldCode::Required), ("c", FieldCode::TooLong)]
        );
    }

    #[test]
    fn all_values_when_nothing_is_refused() {
        let (a, b) = (
            field("a", Ok::<_, Invalid>(1)),
            optional("b", None::<Result<u32, Invalid>>),
        )
            .all()
            .unwrap();
        assert_eq!((a, b), (1, None));
        let errors = (optional("b", Some(refuse(FieldCode::Blank))),)
            .all()
            .unwrap_err();
        assert_eq!(errors[0].field, "b");
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn field_codes_are_sent_as_their_snake_case_names() {
        for code in FieldCode::ALL {
            let sent = serde_json::to_value(code).unwrap();
            assert_eq!(sent, code.as_str());
            let name = format!("{code:?}");
            let snake: String = name
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let lower = c.to_ascii_lowercase();
                    (c.is_ascii_uppercase() && i > 0)
                        .then_some('_')
                        .into_iter()
                        .chain([lower])
                })
                .collect();
            assert_eq!(code.as_str(), snake);
        }
    }

    #[test]
    fn params_are_sent_only_when_there_are_some() {
        let plain = serde_json::to_value(Invalid::new(FieldCode::Required, "x").at("a")).unwrap();
        assert!(plain.get("params").is_none());
        let long = Invalid::new(FieldCode::TooLong, "x")
            .with("max", 30)
            .at("a");
        assert_eq!(serde_json::to_value(long).unwrap()["params"]["max"], 30);
    }
}
