/// What can go wrong in storage, in terms the rest of the server acts on.
/// The underlying driver error is kept as a source for logs only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was hit; the string names what was duplicated.
    #[error("already exists: {0}")]
    Conflict(&'static str),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A row held something our own code would never have written.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Cluster mode: another node took over this offer's writer (its
    /// fencing token is newer); nothing of the refused write was kept.
    #[error("another node writes this offer now")]
    Fenced,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            other => StoreError::Database(Box::new(other)),
        }
    }
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`], any
    /// other error as usual. Both engines report unique violations through
    /// `DatabaseError::is_unique_violation`.
    pub(crate) fn unique(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::from(e),
        }
    }
}
