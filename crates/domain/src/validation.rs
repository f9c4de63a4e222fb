use serde::Serialize;

/// Why one value was refused: a stable machine `code` plus a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// This refusal, pinned to the request field it came from.
    pub fn at(self, field: &str) -> FieldError {
        FieldError {
            field: field.to_owned(),
            code: self.code,
            message: self.message,
        }
    }
}

/// An [`Invalid`] pinned to the request field it came from; this is what the
/// HTTP layer returns in a problem document's `errors` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
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

    fn refuse(code: &'static str) -> Result<u32, Invalid> {
        Err(Invalid::new(code, "no"))
    }

    #[test]
    fn every_refusal_is_reported_in_field_order() {
        let errors = (
            field("a", refuse("first")),
            field("b", Ok::<_, Invalid>(2)),
            field("c", refuse("third")),
        )
            .all()
            .unwrap_err();
        let named: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(named, [("a", "first"), ("c", "third")]);
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
        let errors = (optional("b", Some(refuse("bad"))),).all().unwrap_err();
        assert_eq!(errors[0].field, "b");
    }
}
