use crate::{DisplayName, GuestId, UserId};
use serde::{Deserialize, Serialize};

/// Who is making a request: a signed-in account or a guest with a nickname.
/// Anonymous requests (no session at all) carry no identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Account { user: UserId, name: DisplayName },
    Guest { guest: GuestId, name: DisplayName },
}

impl Identity {
    /// The id other parts of the system key things on (chat authorship,
    /// per-buyer limits, bans): `usr_…` or `gst_…`.
    pub fn subject(&self) -> &str {
        match self {
            Identity::Account { user, .. } => user.as_str(),
            Identity::Guest { guest, .. } => guest.as_str(),
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
