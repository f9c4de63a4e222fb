use crate::{DisplayName, GuestId, Invalid, UserId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Who is making a request: a signed-in account or a guest with a nickname.
/// Anonymous requests (no session at all) carry no identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Account { user: UserId, name: DisplayName },
    Guest { guest: GuestId, name: DisplayName },
}

impl Identity {
    /// The id other parts of the system key things on (chat authorship,
    /// per-buyer limits, bans).
    pub fn subject(&self) -> Subject {
        match self {
            Identity::Account { user, .. } => Subject::from(user),
            Identity::Guest { guest, .. } => Subject::from(guest),
        }
    }

    pub fn name(&self) -> &DisplayName {
        match self {
            Identity::Account { name, .. } | Identity::Guest { name, .. } => name,
        }
    }

    pub fn user(&self) -> Option<&UserId> {
        match self {
            Identity::Account { user, .. } => Some(user),
            Identity::Guest { .. } => None,
        }
    }
}

/// Who did something, as everything past the door keys it (buyers,
/// chatters, bans, timeouts): an account's `usr_…` id or a guest's `gst_…`
/// id. Parsed once; stored and sent as that same text. Cheap to clone (the
/// stock ledger keeps one per hold).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(Arc<str>);

impl Subject {
    /// A subject that came from outside: an account or a guest id.
    pub fn parse(raw: &str) -> Result<Subject, Invalid> {
        match (UserId::parse(raw), GuestId::parse(raw)) {
            (Ok(user), _) => Ok(Subject::from(&user)),
            (_, Ok(guest)) => Ok(Subject::from(&guest)),
            _ => Err(Invalid::new(
                crate::FieldCode::InvalidId,
                "not an account (usr_…) or guest (gst_…) id",
            )),
        }
    }

    /// For values read back from our own database.
    pub fn from_trusted(raw: impl Into<Arc<str>>) -> Subject {
        Subject(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Signed in with an account (not a guest).
    pub fn is_account(&self) -> bool {
        self.user().is_some()
    }

    pub fn user(&self) -> Option<UserId> {
        self.0
            .strip_prefix(UserId::PREFIX)
            .filter(|rest| rest.starts_with('_'))
            .map(|_| UserId::from_trusted(self.0.to_string()))
    }

    pub fn guest(&self) -> Option<GuestId> {
        self.0
            .strip_prefix(GuestId::PREFIX)
            .filter(|rest| rest.starts_with('_'))
            .map(|_| GuestId::from_trusted(self.0.to_string()))
    }
}

impl From<&UserId> for Subject {
    fn from(user: &UserId) -> Subject {
        Subject(user.as_str().into())
    }
}

impl From<&GuestId> for Subject {
    fn from(guest: &GuestId) -> Subject {
        Subject(guest.as_str().into())
    }
}

/// Maps keyed by subject can be looked up by its text.
impl std::borrow::Borrow<str> for Subject {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Subject::parse(&raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// A person's role in one shop (and so in that shop's broadcasts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Moderator,
    Viewer,
}

impl Role {
    /// Only the owner and the moderators the owner appointed moderate.
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Owner | Role::Moderator)
    }

    /// Whether `self` may delete, time out or ban someone whose role is
    /// `target`: the owner may act on anyone but themselves; moderators act
    /// only on viewers (never on the owner, never on each other).
    pub fn can_act_on(self, target: Role) -> bool {
        match self {
            Role::Owner => target != Role::Owner,
            Role::Moderator => target == Role::Viewer,
            Role::Viewer => false,
        }
    }

    /// Appointing and removing moderators is the owner's alone.
    pub fn can_appoint_moderators(self) -> bool {
        self == Role::Owner
    }
}

#[cfg(test)]
mod tests {
    use super::Role::*;

    #[test]
    fn moderation_hierarchy() {
        let table = [
            (Owner, Owner, false),
            (Owner, Moderator, true),
            (Owner, Viewer, true),
            (Moderator, Owner, false),
            (Moderator, Moderator, false),
            (Moderator, Viewer, true),
            (Viewer, Owner, false),
            (Viewer, Moderator, false),
            (Viewer, Viewer, false),
        ];
        for (actor, target, allowed) in table {
            assert_eq!(actor.can_act_on(target), allowed, "{actor:?} on {target:?}");
        }
        assert!(Owner.can_appoint_moderators());
        assert!(!Moderator.can_appoint_moderators());
    }
}

#[cfg(test)]
mod subject_tests {
    use super::*;

    #[test]
    fn a_subject_is_an_account_or_a_guest_and_keeps_its_text() {
        let user = UserId::generate();
        let account = Subject::parse(user.as_str()).unwrap();
        assert!(account.is_account());
        assert_eq!(account.user(), Some(user.clone()));
        assert_eq!(account.guest(), None);
        assert_eq!(account.as_str(), user.as_str());

        let guest = GuestId::generate();
        let subject = Subject::from(&guest);
        assert!(!subject.is_account());
        assert_eq!(subject.guest(), Some(guest.clone()));
        assert_eq!(
            serde_json::to_string(&subject).unwrap(),
            format!("\"{guest}\"")
        );

        for bad in ["", "usr_", "shp_abc", "user:1", "gst_../x"] {
            assert!(Subject::parse(bad).is_err(), "{bad}");
        }
    }
}
