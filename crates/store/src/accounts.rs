//! Accounts, guests and sign-in sessions.

use crate::millis;
use crate::{Store, StoreError};
use domain::UnixMillis;
use domain::{DisplayName, GuestId, Identity, Mobile, SessionId, Subject, UserId};

#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: UserId,
    pub mobile: Mobile,
    pub display_name: DisplayName,
    pub password_hash: String,
    pub created_at: UnixMillis,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    mobile: String,
    display_name: String,
    password_hash: String,
    created_at: i64,
}

impl From<UserRow> for UserRecord {
    fn from(r: UserRow) -> Self {
        UserRecord {
            id: UserId::from_trusted(r.id),
            mobile: Mobile::from_trusted(r.mobile),
            display_name: DisplayName::from_trusted(r.display_name),
            password_hash: r.password_hash,
            created_at: millis(r.created_at),
        }
    }
}

/// Whose session it is.
#[derive(Clone, Debug)]
pub enum SessionSubject {
    User(UserId),
    Guest(GuestId),
}

pub struct NewSession<'a> {
    pub id: SessionId,
    pub token_hash: &'a str,
    pub subject: SessionSubject,
    pub user_agent: &'a str,
    pub now: UnixMillis,
    pub expires_at: UnixMillis,
}

#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub id: SessionId,
    pub identity: Identity,
    pub user_agent: String,
    pub created_at: UnixMillis,
    pub last_seen_at: UnixMillis,
    pub expires_at: UnixMillis,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    user_id: Option<String>,
    guest_id: Option<String>,
    name: String,
    user_agent: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        let name = DisplayName::from_trusted(r.name);
        let identity = match (r.user_id, r.guest_id) {
            (Some(user), None) => Identity::Account {
                user: UserId::from_trusted(user),
                name,
            },
            (None, Some(guest)) => Identity::Guest {
                guest: GuestId::from_trusted(guest),
                name,
            },
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "session {} has no single owner",
                    r.id
                )));
            }
        };
        Ok(SessionRecord {
            id: SessionId::from_trusted(r.id),
            identity,
            user_agent: r.user_agent,
            created_at: millis(r.created_at),
            last_seen_at: millis(r.last_seen_at),
            expires_at: millis(r.expires_at),
        })
    }
}

/// Column list shared by every query of this table (a macro so queries stay
/// `&'static str`, which sqlx accepts as audited SQL).
macro_rules! session_select {
    () => {
        "SELECT s.id, s.user_id, s.guest_id, \
     COALESCE(u.display_name, g.display_name) AS name, \
     s.user_agent, s.created_at, s.last_seen_at, s.expires_at \
     FROM sessions s \
     LEFT JOIN users u ON u.id = s.user_id \
     LEFT JOIN guests g ON g.id = s.guest_id"
    };
}

impl Store {
    pub async fn create_user(
        &self,
        mobile: &Mobile,
        display_name: &DisplayName,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<UserRecord, StoreError> {
        let id = UserId::generate();
        sqlx::query(
            "INSERT INTO users (id, mobile, display_name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_str())
        .bind(mobile.as_str())
        .bind(display_name.as_str())
        .bind(password_hash)
        .bind(now.millis())
        .execute(self.pool())
        .await
        .map_err(StoreError::unique("mobile"))?;
        Ok(UserRecord {
            id,
            mobile: mobile.clone(),
            display_name: display_name.clone(),
            password_hash: password_hash.to_owned(),
            created_at: now,
        })
    }

    pub async fn user_by_mobile(&self, mobile: &Mobile) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, mobile, display_name, password_hash, created_at FROM users WHERE mobile = $1",
        )
        .bind(mobile.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(Into::into))
    }

    pub async fn user(&self, id: &UserId) -> Result<UserRecord, StoreError> {
        let row: UserRow = sqlx::query_as(
            "SELECT id, mobile, display_name, password_hash, created_at FROM users WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(row.into())
    }

    /// The name a `usr_…` or `gst_…` subject shows in chat, if it exists.
    pub async fn subject_name(&self, subject: &str) -> Result<Option<DisplayName>, StoreError> {
        let row: Option<(String,)> = if subject.starts_with(UserId::PREFIX) {
            sqlx::query_as("SELECT display_name FROM users WHERE id = $1")
                .bind(subject)
                .fetch_optional(self.pool())
                .await?
        } else if subject.starts_with(GuestId::PREFIX) {
            sqlx::query_as("SELECT display_name FROM guests WHERE id = $1")
                .bind(subject)
                .fetch_optional(self.pool())
                .await?
        } else {
            None
        };
        Ok(row.map(|(name,)| DisplayName::from_trusted(name)))
    }

    /// A new guest who is their own person.
    pub async fn create_guest(
        &self,
        name: &DisplayName,
        now: UnixMillis,
    ) -> Result<GuestId, StoreError> {
        self.create_guest_of(name, None, now).await
    }

    /// A new guest standing for `person` (a subject from
    /// [`Store::person_behind_session`]), or for itself when `None`.
    pub async fn create_guest_of(
        &self,
        name: &DisplayName,
        person: Option<&str>,
        now: UnixMillis,
    ) -> Result<GuestId, StoreError> {
        let id = GuestId::generate();
        sqlx::query(
            "INSERT INTO guests (id, display_name, created_at, person) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.as_str())
        .bind(name.as_str())
        .bind(now.millis())
        .bind(person)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// The person behind a `usr_…` or `gst_…` subject, the key per-buyer
    /// limits count by: an account is its own person; a guest is the person
    /// it was linked to when it was made, or itself. A subject with no row
    /// is its own person. Never changes for a subject, so callers may cache it.
    pub async fn person_of(&self, subject: &Subject) -> Result<Subject, StoreError> {
        let Some(guest) = subject.guest() else {
            return Ok(subject.clone());
        };
        let row: Option<(String,)> =
            sqlx::query_as("SELECT COALESCE(person, id) FROM guests WHERE id = $1")
                .bind(guest.as_str())
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map_or_else(
            || subject.clone(),
            |(person,)| Subject::from_trusted(person),
        ))
    }

    /// The person whose session a cookie's token hash belongs to, live,
    /// revoked or expired alike: a browser that asks for a new guest while
    /// still carrying an earlier session's cookie is the same person.
    pub async fn person_behind_session(
        &self,
        token_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT COALESCE(s.user_id, g.person, s.guest_id) FROM sessions s \
             LEFT JOIN guests g ON g.id = s.guest_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|(person,)| person))
    }

    pub async fn rename_guest(&self, id: &GuestId, name: &DisplayName) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE guests SET display_name = $1 WHERE id = $2")
            .bind(name.as_str())
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        self.cache().forget_subject(id.as_str());
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn create_session(&self, s: NewSession<'_>) -> Result<(), StoreError> {
        let (user, guest) = match &s.subject {
            SessionSubject::User(u) => (Some(u.as_str()), None),
            SessionSubject::Guest(g) => (None, Some(g.as_str())),
        };
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, guest_id, user_agent, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.id.as_str())
        .bind(s.token_hash)
        .bind(user)
        .bind(guest)
        .bind(s.user_agent)
        .bind(s.now.millis())
        .bind(s.now.millis())
        .bind(s.expires_at.millis())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The live (not revoked, not expired) session whose token hashes to
    /// `token_hash`, with who it belongs to. Served from a cache for up to a
    /// few seconds (see `cache.rs`); revocations through this store take
    /// effect at once.
    pub async fn active_session(
        &self,
        token_hash: &str,
        now: UnixMillis,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let read_under = match self.cache().session(token_hash, now) {
            Ok(cached) => return Ok(Some(cached)),
            Err(generation) => generation,
        };
        let row: Option<SessionRow> = sqlx::query_as(concat!(
            "",
            session_select!(),
            " WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now.millis())
        .fetch_optional(self.pool())
        .await?;
        let record = row.map(SessionRecord::try_from).transpose()?;
        if let Some(r) = &record {
            self.cache().put_session(token_hash, r.clone(), read_under);
        }
        Ok(record)
    }

    /// Records activity and slides the expiry forward. Callers throttle this
    /// (it is a write) to at most once a minute or so per session.
    pub async fn touch_session(
        &self,
        id: &SessionId,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(now.millis())
            .bind(expires_at.millis())
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        // A later expiry: other nodes' shorter one is still true, so
        // nobody else needs telling.
        self.cache()
            .apply(&crate::CacheChange::Session(id.to_string()));
        Ok(())
    }

    pub async fn sessions_of_user(
        &self,
        user: &UserId,
        now: UnixMillis,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows: Vec<SessionRow> = sqlx::query_as(concat!(
            "",
            session_select!(),
            " WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
             ORDER BY s.last_seen_at DESC"
        ))
        .bind(user.as_str())
        .bind(now.millis())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(SessionRecord::try_from).collect()
    }

    /// Whether the session token hashing to `token_hash` was ever `user`'s,
    /// on a device that was not signed out from elsewhere: the sign-in
    /// throttle trusts such a device (its own sign-out, or a lapsed
    /// expiry, keeps it known).
    pub async fn is_device_of(&self, token_hash: &str, user: &UserId) -> Result<bool, StoreError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sessions WHERE token_hash = $1 AND user_id = $2 \
             AND (revoked_at IS NULL OR expires_at > revoked_at)",
        )
        .bind(token_hash)
        .bind(user.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(count > 0)
    }

    pub async fn revoke_session(&self, id: &SessionId, now: UnixMillis) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now.millis())
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        self.cache().forget_session(id.as_str());
        Ok(())
    }

    /// Revokes one of `user`'s sessions; NotFound if it is not theirs, so one
    /// account can never end another's session by guessing ids.
    pub async fn revoke_user_session(
        &self,
        user: &UserId,
        id: &SessionId,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        // Ending its expiry too marks it as revoked from elsewhere (a lost
        // phone), so it no longer counts as the owner's device either.
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, expires_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now.millis())
        .bind(id.as_str())
        .bind(user.as_str())
        .execute(self.pool())
        .await?;
        self.cache().forget_session(id.as_str());
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
