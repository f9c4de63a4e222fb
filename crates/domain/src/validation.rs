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
}

/// An [`Invalid`] pinned to the request field it came from; this is what the
/// HTTP layer returns in a problem document's `errors` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// Collects every field error of a request at once, so a form can show them
/// all instead of one per round trip.
///
/// ```
/// # use domain::{Validator, Mobile, Password};
/// let mut v = Validator::default();
/// let mobile = v.check("mobile", Mobile::parse("13800138000"));
/// let password = v.check("password", Password::parse("short"));
/// let errors = v.finish().unwrap_err();
/// assert_eq!(errors[0].field, "password");
/// # let _ = (mobile, password);
/// ```
#[derive(Default, Debug)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn check<T>(&mut self, field: &str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(invalid) => {
                self.errors.push(FieldError {
                    field: field.to_owned(),
                    code: invalid.code,
                    message: invalid.message,
                });
                None
            }
        }
    }

    /// Like [`Validator::check`] for optional fields: absent stays absent.
    pub fn check_opt<T>(
        &mut self,
        field: &str,
        result: Option<Result<T, Invalid>>,
    ) -> Option<Option<T>> {
        match result {
            None => Some(None),
            Some(r) => self.check(field, r).map(Some),
        }
    }

    pub fn push(&mut self, field: &str, invalid: Invalid) {
        self.check::<()>(field, Err(invalid));
    }

    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}
