//! The live channel: one room hub per broadcast, one websocket per viewer.
//!
//! Shape:
//! * a **room task** per open broadcast owns all room state (a sans-I/O
//!   [`room`] core: chat, moderation, coalesced state, replay buffer) and the
//!   room's [`Fanout`]; nothing else touches them, so there are no locks on
//!   the delivery path;
//! * a **connection task** per websocket ([`LiveHub::serve`]) reads and
//!   validates frames and hands commands to its room; a **writer task** per
//!   connection drains that connection's bounded queue into the socket, with
//!   keepalive pings;
//! * a **persister task** per hub writes chat and moderation to the database
//!   in batches, off the fan-out path.
//!
//! The hub holds no stock: buying goes through the [`Commerce`] trait, which
//! the server implements on top of the order service, and the order service
//! reports stock and sales back through [`LiveHub::update_offer`] and
//! [`LiveHub::sale`].

mod coalesce;
mod config;
mod conn;
pub mod fanout;
pub mod fuzzing;
mod hub;
mod limits;
pub mod moderation;
mod persist;
mod replay;
mod room;

pub use coalesce::LatestSlot;
pub use config::LiveConfig;
pub use domain::Clock;
pub use fanout::{
    ConnId, Delivery, Fanout, Frame, FrameKind, OutboxReceiver, OutboxSender, Outgoing, outbox,
};
pub use hub::{LiveEvent, LiveHub, RoomStats};
pub use limits::{ChatGate, GateRefusal, GateRules, StrikeCounter};
pub use replay::{ReplayBuffer, Resume};
pub use room::ShopEvent;

use domain::{BroadcastId, BroadcastState, DisplayName, Identity, OfferId, Role, ShopId};
use protocol::{BuyRefusal, OfferCard, ReservationInfo};

/// The broadcast a connection joins, as the HTTP layer found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    pub broadcast: BroadcastId,
    pub shop: ShopId,
    /// The broadcast's state when the connection arrived; used when the
    /// connection opens the room. Later changes come through
    /// [`LiveHub::set_broadcast_state`].
    pub state: BroadcastState,
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Participant {
    /// `usr_…`, `gst_…`, or `anon_…` (per connection) without a session.
    pub subject: String,
    pub name: DisplayName,
    /// Role in the broadcast's shop.
    pub role: Role,
    pub signed_in: bool,
    /// No session at all: may watch, may not chat or buy.
    pub anonymous: bool,
}

impl Participant {
    /// A signed-in account or a guest with a nickname.
    pub fn from_identity(identity: &Identity, role: Role) -> Participant {
        Participant {
            subject: identity.subject().as_str().to_owned(),
            name: identity.name().clone(),
            role,
            signed_in: identity.user().is_some(),
            anonymous: false,
        }
    }

    /// Someone without a session: a fresh id for this connection only.
    pub fn anonymous() -> Participant {
        use rand::Rng;
        let n: u64 = rand::rng().random();
        Participant {
            subject: format!("anon_{n:016x}"),
            name: DisplayName::from_trusted("anonymous".to_owned()),
            role: Role::Viewer,
            signed_in: false,
            anonymous: true,
        }
    }
}

/// The order service as the live channel sees it. The server implements
/// this on top of the `orders` crate; the hub never holds stock itself.
#[async_trait::async_trait]
pub trait Commerce: Send + Sync + 'static {
    /// "Buy now": reserve `quantity` of `offer` for `buyer`. `nonce` is the
    /// client's retry key: the same nonce must return the same reservation.
    async fn buy(
        &self,
        room: &BroadcastId,
        buyer: &Participant,
        offer: &OfferId,
        quantity: u32,
        nonce: &str,
    ) -> Result<ReservationInfo, BuyRefusal>;

    /// The card to pin; `None` when the offer does not exist or is not sold
    /// in this broadcast.
    async fn offer_card(&self, room: &BroadcastId, offer: &OfferId) -> Option<OfferCard>;
}

/// Errors the hub reports to its caller (the HTTP layer).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    #[error("the live hub is shutting down")]
    ShuttingDown,
}
