//! The live channel's wire format: one websocket per broadcast carries chat,
//! presence, pinned products, live stock and "buy now" between the room hub
//! and every viewer's phone.
//!
//! Every message is a JSON object tagged by `"type"`. Server messages are
//! wrapped in a [`ServerFrame`] that adds `"seq"`. These types are the only
//! shapes the web pages mirror; `docs/protocol.md` shows every one with an
//! example, and a test round-trips each example through these types so the
//! document and the code cannot drift. No logic lives here.
//!
//! Compatibility: adding an optional field or a new message type is allowed
//! within a protocol version (clients ignore unknown fields and types);
//! renaming or removing anything bumps [`PROTOCOL_VERSION`].

use domain::{
    BroadcastId, BroadcastState, Buyers, ChatMessageId, ChatText, DisplayName, Fen, OfferId,
    OrderId, ProductTitle, ReservationId, Role, ShipDate, ShopId, Unit,
};
use serde::{Deserialize, Serialize};

/// The offer states the order service defines; shown on the pinned card.
pub use domain::OfferState;

/// Sent in `hello.protocol`; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest chat message, in characters after normalization.
pub const MAX_CHAT_CHARS: u32 = ChatText::MAX_CHARS as u32;

/// Longest client nonce, in bytes.
pub const MAX_NONCE_LEN: usize = 64;

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

/// Times on the wire: RFC 3339 UTC with milliseconds
/// (`2026-06-01T08:00:00.000Z`), the same type the HTTP API sends.
pub use domain::Timestamp;

// ---------------------------------------------------------------------------
// Close codes
// ---------------------------------------------------------------------------

/// Why the server closed a live-channel websocket: the close frame's code and
/// reason. Codes 4000–4999 are this application's; the reason is a stable
/// snake_case word a page can switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    /// The server is shutting down or restarting: reconnect with `resume_from`.
    pub const GOING_AWAY: CloseReason = CloseReason {
        code: 1001,
        reason: "server_restarting",
    };
    /// Banned from this shop's chat: do not reconnect.
    pub const BANNED: CloseReason = CloseReason {
        code: 4001,
        reason: "banned",
    };
    /// The connection could not keep up with the room for too long; a
    /// reconnect starts from a fresh snapshot.
    pub const TOO_SLOW: CloseReason = CloseReason {
        code: 4002,
        reason: "too_slow",
    };
    /// Nothing (not even a pong) arrived for too long.
    pub const IDLE_TIMEOUT: CloseReason = CloseReason {
        code: 4003,
        reason: "idle_timeout",
    };
    /// Too many malformed frames.
    pub const TOO_MANY_BAD_FRAMES: CloseReason = CloseReason {
        code: 4004,
        reason: "too_many_bad_frames",
    };

    /// The room could not read its moderation rules (bans, timeouts,
    /// blocked words) and stays closed rather than open without them:
    /// reconnect after a delay (WebSocket "try again later").
    pub const ROOM_UNAVAILABLE: CloseReason = CloseReason {
        code: 1013,
        reason: "room_unavailable",
    };

    /// The websocket itself was malformed (say, an unmasked frame): the
    /// client is broken.
    pub const PROTOCOL_ERROR: CloseReason = CloseReason {
        code: 1002,
        reason: "protocol_error",
    };
    /// A text frame that is not valid UTF-8.
    pub const INVALID_UTF8: CloseReason = CloseReason {
        code: 1007,
        reason: "invalid_utf8",
    };
    /// A frame or message over the websocket size limit (far above the
    /// 4096 bytes a frame may hold, which only earn an `error`).
    pub const MESSAGE_TOO_BIG: CloseReason = CloseReason {
        code: 1009,
        reason: "message_too_big",
    };

    pub const ALL: [CloseReason; 9] = [
        Self::GOING_AWAY,
        Self::ROOM_UNAVAILABLE,
        Self::PROTOCOL_ERROR,
        Self::INVALID_UTF8,
        Self::MESSAGE_TOO_BIG,
        Self::BANNED,
        Self::TOO_SLOW,
        Self::IDLE_TIMEOUT,
        Self::TOO_MANY_BAD_FRAMES,
    ];
}

// ---------------------------------------------------------------------------
// Client -> server
// ---------------------------------------------------------------------------

/// Everything a page may send. Ids and texts arrive as plain strings: the
/// hub parses them into domain values (and refuses what does not parse), so
/// holding a `ClientMessage` proves nothing about its contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Post to the room. `nonce` is chosen by the page (unique per message,
    /// at most 64 bytes); sending the same nonce again never posts twice.
    Chat {
        text: String,
        nonce: String,
    },
    /// "Buy now": reserve `quantity` units of `offer`. The nonce makes a
    /// retried tap reserve once.
    Buy {
        offer: String,
        quantity: u32,
        nonce: String,
    },
    /// Moderators and the owner: remove one message for everyone.
    DeleteMessage {
        message: String,
    },
    /// Moderators and the owner: no chatting for `seconds` (10 s to 24 h),
    /// in every broadcast of this shop.
    Timeout {
        subject: String,
        seconds: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Moderators and the owner: ban from this shop's live channels; closes
    /// the person's connections and hides their messages.
    Ban {
        subject: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unban {
        subject: String,
    },
    /// Moderators and the owner: at least `seconds` between one person's
    /// messages in this broadcast; 0 turns slow mode off.
    SetSlowMode {
        seconds: u32,
    },
    /// Moderators and the owner: replace this shop's blocked-words list.
    SetBlockedWords {
        words: Vec<String>,
    },
    PinMessage {
        message: String,
    },
    UnpinMessage,
    ClearChat,
    /// Moderators and the owner: show an offer's card on every screen.
    PinOffer {
        offer: String,
    },
    UnpinOffer {
        offer: String,
    },
    /// Application-level ping for pages that cannot see websocket pings.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

/// The `type` of a client message, echoed in refusals so a page knows which
/// of its actions was turned down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandName {
    Chat,
    Buy,
    DeleteMessage,
    Timeout,
    Ban,
    Unban,
    SetSlowMode,
    SetBlockedWords,
    PinMessage,
    UnpinMessage,
    ClearChat,
    PinOffer,
    UnpinOffer,
    Ping,
}

impl ClientMessage {
    pub fn name(&self) -> CommandName {
        match self {
            ClientMessage::Chat { .. } => CommandName::Chat,
            ClientMessage::Buy { .. } => CommandName::Buy,
            ClientMessage::DeleteMessage { .. } => CommandName::DeleteMessage,
            ClientMessage::Timeout { .. } => CommandName::Timeout,
            ClientMessage::Ban { .. } => CommandName::Ban,
            ClientMessage::Unban { .. } => CommandName::Unban,
            ClientMessage::SetSlowMode { .. } => CommandName::SetSlowMode,
            ClientMessage::SetBlockedWords { .. } => CommandName::SetBlockedWords,
            ClientMessage::PinMessage { .. } => CommandName::PinMessage,
            ClientMessage::UnpinMessage => CommandName::UnpinMessage,
            ClientMessage::ClearChat => CommandName::ClearChat,
            ClientMessage::PinOffer { .. } => CommandName::PinOffer,
            ClientMessage::UnpinOffer { .. } => CommandName::UnpinOffer,
            ClientMessage::Ping { .. } => CommandName::Ping,
        }
    }
}

// ---------------------------------------------------------------------------
// Server -> client
// ---------------------------------------------------------------------------

/// One server message: `seq` plus the tagged event.
///
/// Room-wide messages advance `seq` by one each. A message private to one
/// connection repeats the `seq` of the last room message that connection
/// was sent, so "the highest `seq` I saw" is always a safe place to resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerFrame {
    pub seq: u64,
    #[serde(flatten)]
    pub event: ServerEvent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    // --- connection set-up (private) ---
    /// First message on every connection.
    Hello(Hello),
    /// Replace everything shown: history, pinned things, counts, settings.
    Snapshot(Snapshot),
    /// After a replay: the room's current state, superseding any state
    /// message the connection missed.
    RoomState {
        state: RoomState,
    },

    // --- room-wide, kept for replay ---
    Chat(ChatMessage),
    MessageDeleted {
        message: ChatMessageId,
    },
    /// Remove every message by `subject` (they were banned).
    MessagesHidden {
        subject: String,
    },
    ChatCleared,
    /// "A buyer from 太原 just bought 2 bags". No personal data.
    Sale(SaleTicker),

    // --- room-wide, latest state (re-sent whole on resume or lag) ---
    PinnedMessage {
        message: Option<ChatMessage>,
    },
    Settings(RoomSettings),
    BroadcastState {
        state: BroadcastState,
    },
    /// At most about once a second.
    Viewers(Viewers),
    OfferPinned {
        offer: OfferCard,
    },
    OfferUnpinned {
        offer: OfferId,
    },
    /// Stock, price, state or countdown of a pinned offer changed; at most
    /// about once a second per offer, at once when its state changes.
    OfferUpdated {
        offer: OfferCard,
    },

    // --- private to one connection or one person ---
    /// Your chat message was posted (or had been, when `duplicate`).
    Accepted {
        nonce: String,
        message: ChatMessageId,
        duplicate: bool,
    },
    /// One of your commands was turned down.
    Refused(Refusal),
    /// You may not chat until `until` (a moderator's timeout, or flooding).
    Muted(Muted),
    /// Your "buy now" reserved stock; finish checkout before `expires_at`.
    Reservation(ReservationInfo),
    BuyRefused {
        nonce: String,
        offer: OfferId,
        #[serde(flatten)]
        refusal: BuyRefusal,
    },
    ReservationExpired {
        reservation: ReservationId,
        offer: OfferId,
    },
    OrderPlaced {
        reservation: ReservationId,
        order: OrderId,
    },
    /// To the owner and moderators: the shop's blocked words.
    BlockedWords {
        words: Vec<String>,
    },
    /// To the owner and moderators in the room: someone moderated.
    Moderation(ModerationEntry),
    /// A frame you sent could not be understood.
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

/// What the server says first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// This connection's id, for support and logs.
    pub connection: String,
    pub you: You,
    pub broadcast: BroadcastId,
    pub shop: ShopId,
    pub settings: RoomSettings,
    pub limits: ChatLimits,
    pub resume: ResumeOutcome,
    /// Only for the owner and moderators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_words: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct You {
    /// `usr_…`, `gst_…`, or `anon_…` for a connection without a session.
    pub subject: String,
    pub name: DisplayName,
    pub role: Role,
    pub signed_in: bool,
    pub anonymous: bool,
    pub can_chat: bool,
    pub can_buy: bool,
    pub can_moderate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeOutcome {
    /// No resume asked: a snapshot follows.
    Fresh,
    /// The missed room messages follow with their original `seq`, then a
    /// `room_state`.
    Replayed,
    /// The gap is older than the server keeps (or the server restarted):
    /// a snapshot follows.
    TooOld,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub reason: SnapshotReason,
    /// Chat messages this connection did not receive (after a lag).
    pub missed: u64,
    /// The last messages, oldest first.
    pub history: Vec<ChatMessage>,
    pub state: RoomState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotReason {
    Join,
    ResumeTooOld,
    /// The connection fell behind; chat was skipped for it.
    Lagged,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomState {
    pub broadcast_state: BroadcastState,
    pub settings: RoomSettings,
    pub viewers: Viewers,
    pub pinned_message: Option<ChatMessage>,
    pub offers: Vec<OfferCard>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// Seconds between one person's messages; 0 when slow mode is off.
    pub slow_mode_seconds: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLimits {
    pub max_chars: u32,
    /// Messages one person may send in a quick burst.
    pub burst: u32,
    /// Sustained messages per minute per person.
    pub per_minute: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewers {
    /// The headline number: people watching (video or live channel), not
    /// counting the shop owner's own pages.
    pub count: u64,
    /// Open live-channel connections.
    pub connected: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub subject: String,
    pub name: DisplayName,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: ChatMessageId,
    pub author: Author,
    /// Plain text (never HTML): pages must insert it as text.
    pub text: ChatText,
    pub at: Timestamp,
}

/// A pinned product as every screen shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferCard {
    pub offer: OfferId,
    pub title: ProductTitle,
    pub unit: Unit,
    pub price_fen: Fen,
    /// Units that can still be reserved.
    pub available: u32,
    /// Units already bought in this broadcast (confirmed orders).
    #[serde(default)]
    pub sold: u32,
    pub state: OfferState,
    /// When buying opens, for a countdown while `state` is `upcoming`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// When the sale closes, for a countdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// Presale: expected ship date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ships_on: Option<ShipDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_buyer: Option<u32>,
    /// `accounts_only`: only buyers signed in with a mobile account may buy
    /// (guests are refused with `account_required`); absent for `anyone`.
    #[serde(default, skip_serializing_if = "Buyers::is_anyone")]
    pub buyers: Buyers,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleTicker {
    pub offer: OfferId,
    pub title: ProductTitle,
    pub quantity: u32,
    pub unit: Unit,
    /// A city or county at most ("太原"), never a name or an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_region: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationInfo {
    pub reservation: ReservationId,
    pub offer: OfferId,
    pub quantity: u32,
    pub unit_price_fen: Fen,
    pub total_fen: Fen,
    pub expires_at: Timestamp,
    /// The `nonce` of the `buy` that made it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuyRefusalCode {
    SoldOut,
    /// Fewer units left than asked; see `available`.
    InsufficientStock,
    NotOnSale,
    /// The per-buyer limit would be exceeded.
    LimitReached,
    /// The offer is for buyers signed in with a mobile account; sign in.
    AccountRequired,
    InvalidQuantity,
    /// The order service could not answer; try again.
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyRefusal {
    pub code: BuyRefusalCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<u32>,
    /// With `limit_reached`: the per-buyer limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// With `limit_reached`: how many this buyer already holds or bought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub already: Option<u32>,
}

impl BuyRefusal {
    /// A refusal that carries no numbers.
    pub fn new(code: BuyRefusalCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            available: None,
            limit: None,
            already: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// Anonymous: pick a nickname (a guest session) to chat or buy.
    NicknameRequired,
    /// Your role may not do this.
    NotAllowed,
    /// The target is the owner or a fellow moderator.
    TargetProtected,
    /// Empty or longer than 200 characters.
    InvalidText,
    /// An id, nonce, duration or list that does not parse.
    InvalidRequest,
    SlowMode,
    RateLimited,
    Muted,
    BlockedWord,
    NotFound,
    TooManyPinned,
    /// A previous buy is still being handled.
    Busy,
    /// Something on the server failed; try again.
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub command: CommandName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub code: RefusalCode,
    /// A sentence for people.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuteReason {
    /// A moderator timed you out.
    Timeout,
    /// You sent too many messages too fast.
    Flood,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Muted {
    pub reason: MuteReason,
    pub until: Timestamp,
    pub seconds: u32,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotJson,
    UnknownType,
    /// Known type, wrong fields.
    InvalidMessage,
    BinaryNotSupported,
    TooLarge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationAction {
    DeleteMessage,
    Timeout,
    Ban,
    Unban,
    SlowMode,
    BlockedWords,
    PinMessage,
    UnpinMessage,
    ClearChat,
    PinOffer,
    UnpinOffer,
    /// The server muted a flooding sender.
    AutoMute,
}

impl ModerationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ModerationAction::DeleteMessage => "delete_message",
            ModerationAction::Timeout => "timeout",
            ModerationAction::Ban => "ban",
            ModerationAction::Unban => "unban",
            ModerationAction::SlowMode => "slow_mode",
            ModerationAction::BlockedWords => "blocked_words",
            ModerationAction::PinMessage => "pin_message",
            ModerationAction::UnpinMessage => "unpin_message",
            ModerationAction::ClearChat => "clear_chat",
            ModerationAction::PinOffer => "pin_offer",
            ModerationAction::UnpinOffer => "unpin_offer",
            ModerationAction::AutoMute => "auto_mute",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        use ModerationAction::*;
        [
            DeleteMessage,
            Timeout,
            Ban,
            Unban,
            SlowMode,
            BlockedWords,
            PinMessage,
            UnpinMessage,
            ClearChat,
            PinOffer,
            UnpinOffer,
            AutoMute,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One line of a shop's moderation log, as the live channel shows it to
/// moderators and as the HTTP API can return it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationEntry {
    pub action: ModerationAction,
    /// Who acted; absent when the server itself acted (automatic mutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Author>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<BroadcastId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<ChatMessageId>,
    /// Reason, duration, offer or setting, in English, for developers and
    /// logs; pages put the `facts` in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub facts: ModerationFacts,
    pub at: Timestamp,
}

/// What a moderation action was about, as values for the pages' words.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationFacts {
    /// The moderator's reason, in their own words (timeouts and bans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long a timeout or automatic mute lasts; slow mode's interval (0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
    /// How many words the blocked list holds now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The offer pinned or taken down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<OfferId>,
    /// That offer's title when it was pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// What the order service tells one person through the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrivateMessage {
    Reservation(ReservationInfo),
    ReservationExpired {
        reservation: ReservationId,
        offer: OfferId,
    },
    OrderPlaced {
        reservation: ReservationId,
        order: OrderId,
    },
}

impl From<PrivateMessage> for ServerEvent {
    fn from(m: PrivateMessage) -> ServerEvent {
        match m {
            PrivateMessage::Reservation(info) => ServerEvent::Reservation(info),
            PrivateMessage::ReservationExpired { reservation, offer } => {
                ServerEvent::ReservationExpired { reservation, offer }
            }
            PrivateMessage::OrderPlaced { reservation, order } => {
                ServerEvent::OrderPlaced { reservation, order }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_put_seq_beside_the_type_tag() {
        let frame = ServerFrame {
            seq: 7,
            event: ServerEvent::ChatCleared,
        };
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json, serde_json::json!({"seq": 7, "type": "chat_cleared"}));
        let back: ServerFrame = serde_json::from_value(json).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn client_messages_are_tagged_and_named() {
        let m: ClientMessage = serde_json::from_str(r#"{"type":"clear_chat"}"#).unwrap();
        assert_eq!(m, ClientMessage::ClearChat);
        assert_eq!(m.name(), CommandName::ClearChat);
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"shout","text":"x"}"#).is_err());
    }

    #[test]
    fn moderation_actions_round_trip_their_database_names() {
        for a in [
            ModerationAction::DeleteMessage,
            ModerationAction::AutoMute,
            ModerationAction::UnpinOffer,
        ] {
            assert_eq!(ModerationAction::from_db(a.as_str()), Some(a));
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::json!(a.as_str())
            );
        }
    }
}
