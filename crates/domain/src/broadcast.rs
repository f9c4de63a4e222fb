use serde::{Deserialize, Serialize};

/// scheduled -> live -> ended, and scheduled -> ended when called off.
/// An ended broadcast stays ended: a farmer who goes live again starts a new
/// one, so every broadcast page tells one story.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastState {
    Scheduled,
    Live,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a broadcast cannot go from {from:?} to {to:?}")]
pub struct BroadcastTransitionError {
    pub from: BroadcastState,
    pub to: BroadcastState,
}

impl BroadcastState {
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastState::Scheduled => "scheduled",
            BroadcastState::Live => "live",
            BroadcastState::Ended => "ended",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(Self::Scheduled),
            "live" => Some(Self::Live),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }

    /// Checks a transition. Going live while live is allowed (a phone that
    /// reconnects publishes again); everything else must move forward.
    pub fn transition(
        self,
        to: BroadcastState,
    ) -> Result<BroadcastState, BroadcastTransitionError> {
        use BroadcastState::*;
        match (self, to) {
            (Scheduled, Live) | (Live, Live) | (Scheduled, Ended) | (Live, Ended) => Ok(to),
            (from, to) => Err(BroadcastTransitionError { from, to }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BroadcastState::*;

    #[test]
    fn broadcasts_only_move_forward() {
        assert_eq!(Scheduled.transition(Live), Ok(Live));
        assert_eq!(Live.transition(Live), Ok(Live));
        assert_eq!(Live.transition(Ended), Ok(Ended));
        assert_eq!(Scheduled.transition(Ended), Ok(Ended));
        assert!(Ended.transition(Live).is_err());
        assert!(Live.transition(Scheduled).is_err());
    }
}
