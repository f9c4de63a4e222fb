//! The one error type of the shop service. It knows nothing about HTTP:
//! `api` maps it to statuses in one exhaustive match.

use domain::FieldError;

/// What a path named and was not there (or is not the caller's to see).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thing {
    Shop,
    Product,
    Broadcast,
    Moderator,
}

impl Thing {
    pub fn as_str(self) -> &'static str {
        match self {
            Thing::Shop => "shop",
            Thing::Product => "product",
            Thing::Broadcast => "broadcast",
            Thing::Moderator => "moderator",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShopsError {
    #[error("{} not found", .0.as_str())]
    NotFound(Thing),
    /// Only the shop's owner may do this.
    #[error("only the shop's owner may do this")]
    NotOwner,
    /// Only the shop's owner and its moderators may do this.
    #[error("only the shop's owner and moderators may do this")]
    NotModerator,
    /// Fields that are well formed but do not fit the shop (no account with
    /// this number, the owner's own number…), each named.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("already a moderator of this shop")]
    AlreadyModerator,
    /// The database failed; details are for logs only.
    #[error("storage error: {0}")]
    Store(store::StoreError),
}

impl ShopsError {
    /// A stable, machine-readable code. Never changes meaning once published.
    pub fn code(&self) -> &'static str {
        match self {
            ShopsError::NotFound(_) => "not_found",
            ShopsError::NotOwner | ShopsError::NotModerator => "forbidden",
            ShopsError::Validation(_) => "validation_failed",
            ShopsError::AlreadyModerator => "already_moderator",
            ShopsError::Store(_) => "internal",
        }
    }

    pub(crate) fn field(field: &str, code: domain::FieldCode, message: &str) -> ShopsError {
        ShopsError::Validation(vec![domain::FieldError::new(field, code, message)])
    }
}

impl From<store::StoreError> for ShopsError {
    fn from(e: store::StoreError) -> Self {
        ShopsError::Store(e)
    }
}

/// A store lookup whose "not found" means the named thing is not there.
pub(crate) trait Found<T> {
    fn or_missing(self, thing: Thing) -> Result<T, ShopsError>;
}

impl<T> Found<T> for Result<T, store::StoreError> {
    fn or_missing(self, thing: Thing) -> Result<T, ShopsError> {
        self.map_err(|e| match e {
            store::StoreError::NotFound => ShopsError::NotFound(thing),
            other => ShopsError::Store(other),
        })
    }
}
