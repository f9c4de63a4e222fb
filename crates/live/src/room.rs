//! One room's state and rules, sans-I/O.
//!
//! [`RoomCore`] takes commands and events with an explicit `now` and answers
//! with [`Effect`]s (frames to fan out, private messages, closes, database
//! writes, shop-wide sanctions) that the room task carries out. It never
//! awaits and never touches a socket, so every rule here is unit-tested
//! directly.

use crate::coalesce::LatestSlot;
use crate::config::LiveConfig;
use crate::fanout::{ConnId, Frame, FrameKind};
use crate::limits::{ChatGate, GateRefusal, GateRules};
use crate::moderation::{self, BlockedWords, Target, seconds_text};
use crate::replay::{ReplayBuffer, Resume};
use crate::{Participant, RoomInfo};
use domain::{BroadcastState, ChatMessageId, ChatText, OfferId, Reason, Role, UnixMillis};
use protocol::{
    Author, ChatLimits, ChatMessage, CloseReason, CommandName, Hello, ModerationAction,
    ModerationEntry, ModerationFacts, MuteReason, Muted, OfferCard, Refusal, RefusalCode,
    ResumeOutcome, RoomSettings, RoomState, SaleTicker, ServerEvent, Snapshot, SnapshotReason,
    Timestamp, Viewers, You,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use store::{
    BanRecord, ChatMessageRecord, ChatWrite, ModerationActor, ModerationRecord, NewChatMessage,
    TimeoutRecord,
};

pub const MIN_TIMEOUT_SECONDS: u32 = 10;
pub const MAX_TIMEOUT_SECONDS: u32 = 24 * 60 * 60;
pub const MAX_SLOW_MODE_SECONDS: u32 = 60 * 60;
/// Nonces remembered per person, and for how long, to recognise retries.
const NONCES_PER_PERSON: usize = 64;
const NONCE_MEMORY: Duration = Duration::from_secs(10 * 60);
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// A parsed client command that needs the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Chat {
        text: ChatText,
        nonce: String,
    },
    DeleteMessage {
        message: ChatMessageId,
    },
    /// `target_role`: the target's role in the shop as the store knows it
    /// (looked up only for actors who may moderate).
    Timeout {
        subject: String,
        target_role: Role,
        seconds: u32,
        reason: Reason,
    },
    Ban {
        subject: String,
        target_role: Role,
        reason: Reason,
    },
    Unban {
        subject: String,
        target_role: Role,
    },
    SetSlowMode {
        seconds: u32,
    },
    SetBlockedWords {
        words: Vec<String>,
    },
    PinMessage {
        message: ChatMessageId,
    },
    UnpinMessage,
    ClearChat,
    /// `card`: what the order service said (fetched only for moderators).
    PinOffer {
        offer: OfferId,
        card: Option<OfferCard>,
    },
    UnpinOffer {
        offer: OfferId,
    },
}

impl Command {
    fn name(&self) -> CommandName {
        match self {
            Command::Chat { .. } => CommandName::Chat,
            Command::DeleteMessage { .. } => CommandName::DeleteMessage,
            Command::Timeout { .. } => CommandName::Timeout,
            Command::Ban { .. } => CommandName::Ban,
            Command::Unban { .. } => CommandName::Unban,
            Command::SetSlowMode { .. } => CommandName::SetSlowMode,
            Command::SetBlockedWords { .. } => CommandName::SetBlockedWords,
            Command::PinMessage { .. } => CommandName::PinMessage,
            Command::UnpinMessage => CommandName::UnpinMessage,
            Command::ClearChat => CommandName::ClearChat,
            Command::PinOffer { .. } => CommandName::PinOffer,
            Command::UnpinOffer { .. } => CommandName::UnpinOffer,
        }
    }
}

/// A sanction or setting that holds in every broadcast of the shop; the hub
/// passes it to the shop's other open rooms (and, in a cluster, the binary
/// to other nodes': see [`LiveEvent::ShopWide`](crate::LiveEvent)).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShopEvent {
    Banned { subject: String },
    Unbanned { subject: String },
    TimedOut { subject: String, until: UnixMillis },
    BlockedWords(BlockedWords),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// To every connection of the room.
    Broadcast(Frame),
    ToConn(ConnId, ServerEvent),
    ToSubject(String, ServerEvent),
    ToModerators(ServerEvent),
    CloseSubject(String, CloseReason),
    Persist(ChatWrite),
    ShopWide(ShopEvent),
}

/// What a room starts from: the database's view of it.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Visible messages, oldest first.
    pub history: Vec<ChatMessageRecord>,
    pub slow_mode_seconds: u32,
    pub pinned_message: Option<ChatMessageRecord>,
    pub offers: Vec<OfferCard>,
    pub blocked_words: Vec<String>,
    pub bans: Vec<BanRecord>,
    pub timeouts: Vec<TimeoutRecord>,
}

#[derive(Clone, Debug)]
struct Posted {
    msg: ChatMessage,
}

#[derive(Clone, Debug)]
struct PinnedOffer {
    card: OfferCard,
    slot: LatestSlot<OfferCard>,
}

pub struct RoomCore {
    info: RoomInfo,
    config: Arc<LiveConfig>,
    rules: GateRules,
    seq: u64,
    broadcast_state: BroadcastState,
    slow_mode_seconds: u32,
    blocked: BlockedWords,
    recent: VecDeque<Posted>,
    pinned_message: Option<ChatMessage>,
    offers: Vec<PinnedOffer>,
    media_viewers: u64,
    connected: u64,
    audience: u64,
    viewers: Viewers,
    viewers_slot: LatestSlot<Viewers>,
    sale_slot: LatestSlot<SaleTicker>,
    replay: ReplayBuffer,
    gates: HashMap<String, ChatGate>,
    bans: HashSet<String>,
    timeouts: HashMap<String, UnixMillis>,
    nonces: HashMap<String, VecDeque<(String, ChatMessageId, UnixMillis)>>,
    join_snapshot: Option<Frame>,
    last_housekeeping: UnixMillis,
    effects: Vec<Effect>,
    ordinal: Arc<AtomicI64>,
}

fn chat_from_record(r: &ChatMessageRecord) -> ChatMessage {
    ChatMessage {
        id: r.id.clone(),
        author: Author {
            subject: r.author_subject.clone(),
            name: r.author_name.clone(),
            role: r.author_role,
        },
        text: r.text.clone(),
        at: Timestamp(r.posted_at),
    }
}

fn kind_of(event: &ServerEvent) -> FrameKind {
    match event {
        ServerEvent::Chat(_) => FrameKind::Chat,
        ServerEvent::MessageDeleted { .. }
        | ServerEvent::MessagesHidden { .. }
        | ServerEvent::ChatCleared
        | ServerEvent::Sale(_) => FrameKind::Log,
        ServerEvent::PinnedMessage { .. }
        | ServerEvent::Settings(_)
        | ServerEvent::BroadcastState { .. }
        | ServerEvent::Viewers(_)
        | ServerEvent::OfferPinned { .. }
        | ServerEvent::OfferUnpinned { .. }
        | ServerEvent::OfferUpdated { .. } => FrameKind::State,
        _ => FrameKind::Private,
    }
}

impl RoomCore {
    /// `start_seq`: the room's seq before its first message. The hub uses the
    /// wall clock (milliseconds × 1000), so each run of a room starts above
    /// any seq an earlier run can have reached and a client resuming across a
    /// restart is recognised as too old. It stays below 2^53, so JavaScript
    /// numbers hold it exactly.
    pub fn new(
        info: RoomInfo,
        config: Arc<LiveConfig>,
        loaded: Loaded,
        start_seq: u64,
        ordinal: Arc<AtomicI64>,
        now: UnixMillis,
    ) -> RoomCore {
        let rules = GateRules::from_config(&config);
        let mut nonces: HashMap<String, VecDeque<(String, ChatMessageId, UnixMillis)>> =
            HashMap::new();
        for r in &loaded.history {
            let q = nonces.entry(r.author_subject.clone()).or_default();
            q.push_back((r.nonce.clone(), r.id.clone(), now));
            if q.len() > NONCES_PER_PERSON {
                q.pop_front();
            }
        }
        let skip = loaded.history.len().saturating_sub(config.recent_capacity);
        let recent = loaded
            .history
            .iter()
            .skip(skip)
            .map(|r| Posted {
                msg: chat_from_record(r),
            })
            .collect();
        let pinned_message = loaded
            .pinned_message
            .as_ref()
            .filter(|m| m.deleted_at.is_none() && m.hidden_at.is_none());
        let offer_interval = config.offer_interval;
        RoomCore {
            broadcast_state: info.state,
            info,
            rules,
            seq: start_seq,
            slow_mode_seconds: loaded.slow_mode_seconds,
            blocked: BlockedWords::from_stored(loaded.blocked_words),
            recent,
            pinned_message: pinned_message.map(chat_from_record),
            offers: loaded
                .offers
                .into_iter()
                .map(|card| PinnedOffer {
                    card,
                    slot: LatestSlot::new(offer_interval),
                })
                .collect(),
            media_viewers: 0,
            connected: 0,
            audience: 0,
            viewers: Viewers {
                count: 0,
                connected: 0,
            },
            viewers_slot: LatestSlot::new(config.viewers_interval),
            sale_slot: LatestSlot::new(config.sale_interval),
            replay: ReplayBuffer::new(start_seq, config.replay_capacity, config.replay_max_bytes),
            gates: HashMap::new(),
            bans: loaded.bans.into_iter().map(|b| b.subject).collect(),
            timeouts: loaded
                .timeouts
                .into_iter()
                .map(|t| (t.subject, t.until))
                .collect(),
            nonces,
            join_snapshot: None,
            last_housekeeping: now,
            effects: Vec::new(),
            ordinal,
            config,
        }
    }

    pub fn info(&self) -> &RoomInfo {
        &self.info
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    // ------------------------------------------------------------------
    // Joining
    // ------------------------------------------------------------------

    /// The frames a new connection starts with: hello, then a snapshot, or
    /// (when resuming within the buffer) the missed room messages and the
    /// current state. Banned people are turned away.
    pub fn handle_join(
        &mut self,
        conn: ConnId,
        who: &Participant,
        resume_from: Option<u64>,
        now: UnixMillis,
    ) -> Result<Vec<Frame>, CloseReason> {
        if self.bans.contains(&who.subject) {
            return Err(CloseReason::BANNED);
        }
        // Room for hello and room_state besides the replayed frames.
        let limit = self.config.outbox_capacity.saturating_sub(4);
        let resume = resume_from.map(|after| (after, self.replay.resume(after, self.seq, limit)));
        let outcome = match &resume {
            None => ResumeOutcome::Fresh,
            Some((_, Resume::Replay(_))) => ResumeOutcome::Replayed,
            Some((_, Resume::TooOld)) => ResumeOutcome::TooOld,
        };
        let hello = ServerEvent::Hello(self.hello(conn, who, outcome, now));
        let mut frames = Vec::new();
        match resume {
            Some((after, Resume::Replay(missed))) => {
                frames.push(Frame::encode(after, FrameKind::Private, &hello));
                frames.extend(missed);
                frames.push(Frame::encode(
                    self.seq,
                    FrameKind::Private,
                    &ServerEvent::RoomState {
                        state: self.room_state(),
                    },
                ));
            }
            other => {
                // Seq 0 on hello: resuming from it always means "send a snapshot".
                frames.push(Frame::encode(0, FrameKind::Private, &hello));
                let reason = if other.is_some() {
                    SnapshotReason::ResumeTooOld
                } else {
                    SnapshotReason::Join
                };
                frames.push(self.snapshot_frame(reason, 0));
            }
        }
        Ok(frames)
    }

    fn hello(
        &self,
        conn: ConnId,
        who: &Participant,
        resume: ResumeOutcome,
        now: UnixMillis,
    ) -> Hello {
        let muted_until = [
            self.timeouts.get(&who.subject).copied(),
            self.gates
                .get(&who.subject)
                .and_then(|g| g.muted_until(now)),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .max();
        let can_moderate = who.role.can_moderate() && !who.anonymous;
        Hello {
            protocol: protocol::PROTOCOL_VERSION,
            connection: conn.to_string(),
            you: You {
                subject: who.subject.clone(),
                name: who.name.clone(),
                role: who.role,
                signed_in: who.signed_in,
                anonymous: who.anonymous,
                can_chat: !who.anonymous,
                can_buy: !who.anonymous,
                can_moderate,
                muted_until: muted_until.map(Timestamp),
            },
            broadcast: self.info.broadcast.clone(),
            shop: self.info.shop.clone(),
            settings: self.settings(),
            limits: ChatLimits {
                max_chars: protocol::MAX_CHAT_CHARS,
                burst: self.rules.burst,
                per_minute: self.rules.per_minute,
            },
            resume,
            blocked_words: can_moderate.then(|| self.blocked.words().to_vec()),
        }
    }

    fn settings(&self) -> RoomSettings {
        RoomSettings {
            slow_mode_seconds: self.slow_mode_seconds,
        }
    }

    pub fn room_state(&self) -> RoomState {
        RoomState {
            broadcast_state: self.broadcast_state,
            settings: self.settings(),
            viewers: self.viewers,
            pinned_message: self.pinned_message.clone(),
            offers: self.offers.iter().map(|o| o.card.clone()).collect(),
        }
    }

    /// A snapshot at the current seq. The join snapshot is the same for
    /// everyone until the room changes, so a crowd arriving at once shares
    /// one serialization.
    pub fn snapshot_frame(&mut self, reason: SnapshotReason, missed: u64) -> Frame {
        let cacheable = reason == SnapshotReason::Join && missed == 0;
        if cacheable
            && let Some(f) = &self.join_snapshot
            && f.seq == self.seq
        {
            return f.clone();
        }
        let skip = self.recent.len().saturating_sub(self.config.history_len);
        let snapshot = Snapshot {
            reason,
            missed,
            history: self
                .recent
                .iter()
                .skip(skip)
                .map(|p| p.msg.clone())
                .collect(),
            state: self.room_state(),
        };
        let frame = Frame::encode(
            self.seq,
            FrameKind::Private,
            &ServerEvent::Snapshot(snapshot),
        );
        if cacheable {
            self.join_snapshot = Some(frame.clone());
        }
        frame
    }

    /// Live-channel connections changed (the fan-out's counts: all of them,
    /// and the audience's, which leaves out the farmer's own pages).
    pub fn set_connected(&mut self, connected: usize, audience: usize, now: UnixMillis) {
        self.connected = connected as u64;
        self.audience = audience as u64;
        self.viewers_changed(now);
    }

    pub fn set_media_viewers(&mut self, n: u64, now: UnixMillis) {
        self.media_viewers = n;
        self.viewers_changed(now);
    }

    fn viewers_changed(&mut self, now: UnixMillis) {
        let v = Viewers {
            count: self.media_viewers.max(self.audience),
            connected: self.connected,
        };
        if v == self.viewers {
            return;
        }
        self.viewers = v;
        if let Some(v) = self.viewers_slot.offer(v, now, false) {
            self.broadcast(ServerEvent::Viewers(v));
        }
    }

    // ------------------------------------------------------------------
    // Commands from connections
    // ------------------------------------------------------------------

    pub fn handle_command(
        &mut self,
        conn: ConnId,
        who: &Participant,
        command: Command,
        now: UnixMillis,
    ) {
        let name = command.name();
        let result = match command {
            Command::Chat { text, nonce } => return self.chat(conn, who, text, nonce, now),
            Command::DeleteMessage { message } => self.delete(who, message, now),
            Command::Timeout {
                subject,
                target_role,
                seconds,
                reason,
            } => self.timeout(who, subject, target_role, seconds, reason, now),
            Command::Ban {
                subject,
                target_role,
                reason,
            } => self.ban(who, subject, target_role, reason, now),
            Command::Unban {
                subject,
                target_role,
            } => self.unban(who, subject, target_role, now),
            Command::SetSlowMode { seconds } => self.set_slow_mode(who, seconds, now),
            Command::SetBlockedWords { words } => self.set_blocked_words(who, &words, now),
            Command::PinMessage { message } => self.pin_message(who, Some(message), now),
            Command::UnpinMessage => self.pin_message(who, None, now),
            Command::ClearChat => self.clear_chat(who, now),
            Command::PinOffer { offer, card } => self.pin_offer(who, offer, card, now),
            Command::UnpinOffer { offer } => self.unpin_offer(who, offer, now),
        };
        if let Err((code, message)) = result {
            self.refuse(conn, name, None, code, message, None);
        }
    }

    fn refuse(
        &mut self,
        conn: ConnId,
        command: CommandName,
        nonce: Option<String>,
        code: RefusalCode,
        message: impl Into<String>,
        retry_after_ms: Option<u64>,
    ) {
        self.effects.push(Effect::ToConn(
            conn,
            ServerEvent::Refused(Refusal {
                command,
                nonce,
                code,
                message: message.into(),
                retry_after_ms,
            }),
        ));
    }

    fn chat(
        &mut self,
        conn: ConnId,
        who: &Participant,
        text: ChatText,
        nonce: String,
        now: UnixMillis,
    ) {
        let refuse = |core: &mut RoomCore, code, message: String, retry: Option<u64>| {
            core.refuse(
                conn,
                CommandName::Chat,
                Some(nonce.clone()),
                code,
                message,
                retry,
            );
        };
        if who.anonymous {
            return refuse(
                self,
                RefusalCode::NicknameRequired,
                "Pick a nickname to chat.".into(),
                None,
            );
        }
        if self.bans.contains(&who.subject) {
            return refuse(
                self,
                RefusalCode::NotAllowed,
                "You are banned from this shop's chat.".into(),
                None,
            );
        }
        if let Some((_, id, _)) = self
            .nonces
            .get(&who.subject)
            .and_then(|q| q.iter().find(|(n, _, _)| *n == nonce))
        {
            let message = id.clone();
            self.effects.push(Effect::ToConn(
                conn,
                ServerEvent::Accepted {
                    nonce,
                    message,
                    duplicate: true,
                },
            ));
            return;
        }
        if let Some(until) = self
            .timeouts
            .get(&who.subject)
            .copied()
            .filter(|t| *t > now)
        {
            let message = "A moderator timed you out; you can chat again later.".to_owned();
            return refuse(
                self,
                RefusalCode::Muted,
                message,
                Some(millis(until.since(now))),
            );
        }
        if self.blocked.blocks(text.as_str()) {
            let message = "Your message contains a word this shop does not allow.".to_owned();
            return refuse(self, RefusalCode::BlockedWord, message, None);
        }
        // Slow mode is for the crowd: the owner and moderators are exempt
        // (the rate limit still applies to them).
        let slow_mode = if who.role.can_moderate() {
            Duration::ZERO
        } else {
            Duration::from_secs(u64::from(self.slow_mode_seconds))
        };
        let gate = self.gates.entry(who.subject.clone()).or_default();
        match gate.check(&self.rules, slow_mode, now) {
            Ok(()) => {}
            Err(GateRefusal::Flooding { until, just_muted }) => {
                let retry = Some(millis(until.since(now)));
                let message =
                    "You sent too many messages too fast; you are muted for a while.".to_owned();
                refuse(self, RefusalCode::Muted, message.clone(), retry);
                if just_muted {
                    let seconds = whole_seconds(until.since(now));
                    self.effects.push(Effect::ToSubject(
                        who.subject.clone(),
                        ServerEvent::Muted(Muted {
                            reason: MuteReason::Flood,
                            until: Timestamp(until),
                            seconds,
                            message,
                        }),
                    ));
                    self.log(
                        None,
                        ModerationAction::AutoMute,
                        Some(who.subject.clone()),
                        None,
                        ModerationFacts {
                            seconds: Some(seconds),
                            ..Default::default()
                        },
                        now,
                    );
                }
                return;
            }
            Err(GateRefusal::RateLimited { retry_after_ms }) => {
                let message = "Slow down: you are sending messages too fast.".to_owned();
                return refuse(
                    self,
                    RefusalCode::RateLimited,
                    message,
                    Some(retry_after_ms),
                );
            }
            Err(GateRefusal::SlowMode { retry_after_ms }) => {
                let message = format!(
                    "Slow mode is on: one message every {} seconds.",
                    self.slow_mode_seconds
                );
                return refuse(self, RefusalCode::SlowMode, message, Some(retry_after_ms));
            }
        }

        let msg = ChatMessage {
            id: ChatMessageId::generate(),
            author: Author {
                subject: who.subject.clone(),
                name: who.name.clone(),
                role: who.role,
            },
            text,
            at: Timestamp(now),
        };
        let seq = self.broadcast(ServerEvent::Chat(msg.clone()));
        self.effects
            .push(Effect::Persist(ChatWrite::Post(NewChatMessage {
                id: msg.id.clone(),
                broadcast_id: self.info.broadcast.clone(),
                shop_id: self.info.shop.clone(),
                author_subject: who.subject.clone(),
                author_name: who.name.clone(),
                author_role: who.role,
                text: msg.text.clone(),
                nonce: nonce.clone(),
                posted_at: now,
                seq: seq as i64,
            })));
        let q = self.nonces.entry(who.subject.clone()).or_default();
        q.push_back((nonce.clone(), msg.id.clone(), now));
        if q.len() > NONCES_PER_PERSON {
            q.pop_front();
        }
        let id = msg.id.clone();
        self.recent.push_back(Posted { msg });
        while self.recent.len() > self.config.recent_capacity {
            self.recent.pop_front();
        }
        self.effects.push(Effect::ToConn(
            conn,
            ServerEvent::Accepted {
                nonce,
                message: id,
                duplicate: false,
            },
        ));
    }

    fn delete(
        &mut self,
        who: &Participant,
        message: ChatMessageId,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        let found = self.recent.iter().position(|p| p.msg.id == message);
        let target = found.map(|i| &self.recent[i].msg.author);
        if !who.role.can_moderate() || who.anonymous {
            return Err(not_allowed());
        }
        let Some(i) = found else {
            return Err((
                RefusalCode::NotFound,
                "That message is gone or too old to delete here.".into(),
            ));
        };
        let author = target.cloned().expect("found");
        moderation::authorize(
            who,
            ModerationAction::DeleteMessage,
            Some(Target {
                subject: &author.subject,
                role: author.role,
            }),
        )
        .map_err(refusal_text)?;
        self.recent.remove(i);
        self.broadcast(ServerEvent::MessageDeleted {
            message: message.clone(),
        });
        self.effects.push(Effect::Persist(ChatWrite::Delete {
            message: message.clone(),
            by: who.subject.clone(),
            at: now,
        }));
        self.log(
            Some(who),
            ModerationAction::DeleteMessage,
            Some(author.subject),
            Some(message.clone()),
            ModerationFacts::default(),
            now,
        );
        if self
            .pinned_message
            .as_ref()
            .is_some_and(|p| p.id == message)
        {
            self.set_pinned(None, now);
        }
        Ok(())
    }

    fn timeout(
        &mut self,
        who: &Participant,
        subject: String,
        target_role: Role,
        seconds: u32,
        reason: Reason,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        moderation::authorize(
            who,
            ModerationAction::Timeout,
            Some(Target {
                subject: &subject,
                role: target_role,
            }),
        )
        .map_err(refusal_text)?;
        if !(MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&seconds) {
            return Err((
                RefusalCode::InvalidRequest,
                "A timeout lasts from 10 seconds to 24 hours.".into(),
            ));
        }
        let until = now.saturating_add(Duration::from_secs(u64::from(seconds)));
        self.apply_timeout(&subject, until, now);
        self.effects
            .push(Effect::Persist(ChatWrite::Timeout(TimeoutRecord {
                shop_id: self.info.shop.clone(),
                subject: subject.clone(),
                until,
                timed_out_by: who.subject.clone(),
                reason: reason.as_str().to_owned(),
                created_at: now,
            })));
        let facts = ModerationFacts {
            seconds: Some(seconds),
            reason: (!reason.as_str().is_empty()).then(|| reason.as_str().to_owned()),
            ..Default::default()
        };
        self.log(
            Some(who),
            ModerationAction::Timeout,
            Some(subject.clone()),
            None,
            facts,
            now,
        );
        self.effects
            .push(Effect::ShopWide(ShopEvent::TimedOut { subject, until }));
        Ok(())
    }

    fn apply_timeout(&mut self, subject: &str, until: UnixMillis, now: UnixMillis) {
        self.timeouts.insert(subject.to_owned(), until);
        let seconds = whole_seconds(until.since(now));
        self.effects.push(Effect::ToSubject(
            subject.to_owned(),
            ServerEvent::Muted(Muted {
                reason: MuteReason::Timeout,
                until: Timestamp(until),
                seconds,
                message: format!("A moderator timed you out for {}.", seconds_text(seconds)),
            }),
        ));
    }

    fn ban(
        &mut self,
        who: &Participant,
        subject: String,
        target_role: Role,
        reason: Reason,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        moderation::authorize(
            who,
            ModerationAction::Ban,
            Some(Target {
                subject: &subject,
                role: target_role,
            }),
        )
        .map_err(refusal_text)?;
        self.apply_ban(&subject, now);
        self.effects.push(Effect::Persist(ChatWrite::Ban(BanRecord {
            shop_id: self.info.shop.clone(),
            subject: subject.clone(),
            banned_by: who.subject.clone(),
            reason: reason.as_str().to_owned(),
            created_at: now,
        })));
        self.effects.push(Effect::Persist(ChatWrite::HideAuthor {
            shop: self.info.shop.clone(),
            subject: subject.clone(),
            at: now,
        }));
        let facts = ModerationFacts {
            reason: (!reason.as_str().is_empty()).then(|| reason.as_str().to_owned()),
            ..Default::default()
        };
        self.log(
            Some(who),
            ModerationAction::Ban,
            Some(subject.clone()),
            None,
            facts,
            now,
        );
        self.effects
            .push(Effect::ShopWide(ShopEvent::Banned { subject }));
        Ok(())
    }

    /// Hides the person's messages here and closes their connections.
    fn apply_ban(&mut self, subject: &str, now: UnixMillis) {
        self.bans.insert(subject.to_owned());
        self.recent.retain(|p| p.msg.author.subject != subject);
        self.broadcast(ServerEvent::MessagesHidden {
            subject: subject.to_owned(),
        });
        if self
            .pinned_message
            .as_ref()
            .is_some_and(|p| p.author.subject == subject)
        {
            self.set_pinned(None, now);
        }
        self.effects.push(Effect::CloseSubject(
            subject.to_owned(),
            CloseReason::BANNED,
        ));
    }

    fn unban(
        &mut self,
        who: &Participant,
        subject: String,
        target_role: Role,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        moderation::authorize(
            who,
            ModerationAction::Unban,
            Some(Target {
                subject: &subject,
                role: target_role,
            }),
        )
        .map_err(refusal_text)?;
        if !self.bans.remove(&subject) {
            return Err((RefusalCode::NotFound, "That person is not banned.".into()));
        }
        self.effects.push(Effect::Persist(ChatWrite::Unban {
            shop: self.info.shop.clone(),
            subject: subject.clone(),
        }));
        self.log(
            Some(who),
            ModerationAction::Unban,
            Some(subject.clone()),
            None,
            ModerationFacts::default(),
            now,
        );
        self.effects
            .push(Effect::ShopWide(ShopEvent::Unbanned { subject }));
        Ok(())
    }

    fn set_slow_mode(
        &mut self,
        who: &Participant,
        seconds: u32,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        moderation::authorize(who, ModerationAction::SlowMode, None).map_err(refusal_text)?;
        if seconds > MAX_SLOW_MODE_SECONDS {
            return Err((
                RefusalCode::InvalidRequest,
                "Slow mode is at most one hour.".into(),
            ));
        }
        self.slow_mode_seconds = seconds;
        self.broadcast(ServerEvent::Settings(self.settings()));
        self.effects.push(Effect::Persist(ChatWrite::SlowMode {
            broadcast: self.info.broadcast.clone(),
            shop: self.info.shop.clone(),
            seconds,
            at: now,
        }));
        let facts = ModerationFacts {
            seconds: Some(seconds),
            ..Default::default()
        };
        self.log(
            Some(who),
            ModerationAction::SlowMode,
            None,
            None,
            facts,
            now,
        );
        Ok(())
    }

    fn set_blocked_words(
        &mut self,
        who: &Participant,
        raw: &[String],
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        moderation::authorize(who, ModerationAction::BlockedWords, None).map_err(refusal_text)?;
        let words = BlockedWords::parse(raw).map_err(|m| (RefusalCode::InvalidRequest, m))?;
        self.effects.push(Effect::Persist(ChatWrite::BlockedWords {
            shop: self.info.shop.clone(),
            words: words.words().to_vec(),
            at: now,
        }));
        let facts = ModerationFacts {
            count: u32::try_from(words.words().len()).ok(),
            ..Default::default()
        };
        self.apply_blocked_words(words.clone());
        self.log(
            Some(who),
            ModerationAction::BlockedWords,
            None,
            None,
            facts,
            now,
        );
        self.effects
            .push(Effect::ShopWide(ShopEvent::BlockedWords(words)));
        Ok(())
    }

    fn apply_blocked_words(&mut self, words: BlockedWords) {
        self.effects
            .push(Effect::ToModerators(ServerEvent::BlockedWords {
                words: words.words().to_vec(),
            }));
        self.blocked = words;
    }

    fn pin_message(
        &mut self,
        who: &Participant,
        message: Option<ChatMessageId>,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        let action = if message.is_some() {
            ModerationAction::PinMessage
        } else {
            ModerationAction::UnpinMessage
        };
        moderation::authorize(who, action, None).map_err(refusal_text)?;
        let pinned = match &message {
            Some(id) => match self.recent.iter().find(|p| p.msg.id == *id) {
                Some(p) => Some(p.msg.clone()),
                None => {
                    return Err((
                        RefusalCode::NotFound,
                        "That message is gone or too old to pin.".into(),
                    ));
                }
            },
            None if self.pinned_message.is_none() => {
                return Err((RefusalCode::NotFound, "No message is pinned.".into()));
            }
            None => None,
        };
        let target = pinned.as_ref().map(|m| m.author.subject.clone());
        self.set_pinned(pinned, now);
        self.log(
            Some(who),
            action,
            target,
            message,
            ModerationFacts::default(),
            now,
        );
        Ok(())
    }

    fn set_pinned(&mut self, pinned: Option<ChatMessage>, now: UnixMillis) {
        self.effects.push(Effect::Persist(ChatWrite::PinMessage {
            broadcast: self.info.broadcast.clone(),
            shop: self.info.shop.clone(),
            message: pinned.as_ref().map(|m| m.id.clone()),
            at: now,
        }));
        self.pinned_message = pinned.clone();
        self.broadcast(ServerEvent::PinnedMessage { message: pinned });
    }

    fn clear_chat(
        &mut self,
        who: &Participant,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        moderation::authorize(who, ModerationAction::ClearChat, None).map_err(refusal_text)?;
        self.recent.clear();
        self.broadcast(ServerEvent::ChatCleared);
        self.effects.push(Effect::Persist(ChatWrite::Clear {
            broadcast: self.info.broadcast.clone(),
            at: now,
        }));
        self.log(
            Some(who),
            ModerationAction::ClearChat,
            None,
            None,
            ModerationFacts::default(),
            now,
        );
        Ok(())
    }

    fn pin_offer(
        &mut self,
        who: &Participant,
        offer: OfferId,
        card: Option<OfferCard>,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        moderation::authorize(who, ModerationAction::PinOffer, None).map_err(refusal_text)?;
        let Some(card) = card.filter(|c| c.offer == offer) else {
            return Err((
                RefusalCode::NotFound,
                "That offer is not on sale in this broadcast.".into(),
            ));
        };
        if let Some(existing) = self.offers.iter_mut().find(|o| o.card.offer == offer) {
            existing.card = card.clone();
            existing.slot.offer(card.clone(), now, true);
            self.broadcast(ServerEvent::OfferUpdated { offer: card });
            return Ok(());
        }
        if self.offers.len() >= self.config.max_pinned_offers {
            let message = format!(
                "At most {} offers can be pinned; unpin one first.",
                self.config.max_pinned_offers
            );
            return Err((RefusalCode::TooManyPinned, message));
        }
        let mut slot = LatestSlot::new(self.config.offer_interval);
        slot.offer(card.clone(), now, true);
        self.offers.push(PinnedOffer {
            card: card.clone(),
            slot,
        });
        let facts = ModerationFacts {
            offer: Some(offer.clone()),
            title: Some(card.title.as_str().to_owned()),
            ..Default::default()
        };
        self.broadcast(ServerEvent::OfferPinned { offer: card });
        self.persist_offers(now);
        self.log(
            Some(who),
            ModerationAction::PinOffer,
            None,
            None,
            facts,
            now,
        );
        Ok(())
    }

    fn unpin_offer(
        &mut self,
        who: &Participant,
        offer: OfferId,
        now: UnixMillis,
    ) -> Result<(), (RefusalCode, String)> {
        moderation::authorize(who, ModerationAction::UnpinOffer, None).map_err(refusal_text)?;
        let Some(i) = self.offers.iter().position(|o| o.card.offer == offer) else {
            return Err((RefusalCode::NotFound, "That offer is not pinned.".into()));
        };
        self.offers.remove(i);
        self.broadcast(ServerEvent::OfferUnpinned {
            offer: offer.clone(),
        });
        self.persist_offers(now);
        self.log(
            Some(who),
            ModerationAction::UnpinOffer,
            None,
            None,
            ModerationFacts {
                offer: Some(offer),
                ..Default::default()
            },
            now,
        );
        Ok(())
    }

    fn persist_offers(&mut self, now: UnixMillis) {
        self.effects.push(Effect::Persist(ChatWrite::PinnedOffers {
            broadcast: self.info.broadcast.clone(),
            shop: self.info.shop.clone(),
            offers: self.offers.iter().map(|o| o.card.offer.clone()).collect(),
            at: now,
        }));
    }

    /// Writes a moderation-log line and shows it to the moderators present.
    fn log(
        &mut self,
        actor: Option<&Participant>,
        action: ModerationAction,
        target: Option<String>,
        message: Option<ChatMessageId>,
        facts: ModerationFacts,
        now: UnixMillis,
    ) {
        let detail = moderation::log_detail(action, &facts);
        let ordinal = self.ordinal.fetch_add(1, Ordering::Relaxed);
        self.effects
            .push(Effect::Persist(ChatWrite::Log(ModerationRecord {
                shop_id: self.info.shop.clone(),
                broadcast_id: Some(self.info.broadcast.clone()),
                ordinal,
                actor: actor.map(|a| ModerationActor {
                    subject: a.subject.clone(),
                    name: a.name.clone(),
                    role: a.role,
                }),
                action: action.as_str().to_owned(),
                target_subject: target.clone(),
                message_id: message.clone(),
                detail: detail.clone(),
                created_at: now,
            })));
        self.effects
            .push(Effect::ToModerators(ServerEvent::Moderation(
                ModerationEntry {
                    action,
                    actor: actor.map(|a| Author {
                        subject: a.subject.clone(),
                        name: a.name.clone(),
                        role: a.role,
                    }),
                    target,
                    broadcast: Some(self.info.broadcast.clone()),
                    message,
                    detail,
                    facts,
                    at: Timestamp(now),
                },
            )));
    }

    // ------------------------------------------------------------------
    // Events from the rest of the server
    // ------------------------------------------------------------------

    /// A sanction or setting decided in another broadcast of the shop.
    pub fn apply_shop_event(&mut self, event: ShopEvent, now: UnixMillis) {
        match event {
            ShopEvent::Banned { subject } => self.apply_ban(&subject, now),
            ShopEvent::Unbanned { subject } => {
                self.bans.remove(&subject);
            }
            ShopEvent::TimedOut { subject, until } => self.apply_timeout(&subject, until, now),
            ShopEvent::BlockedWords(words) => self.apply_blocked_words(words),
        }
    }

    /// Stock, price, state or countdown of an offer changed. Only pinned
    /// offers are shown; a state change goes out at once, the rest at most
    /// once per `offer_interval`.
    pub fn handle_offer_update(&mut self, card: OfferCard, now: UnixMillis) {
        let Some(pinned) = self.offers.iter_mut().find(|o| o.card.offer == card.offer) else {
            return;
        };
        let urgent = pinned.card.state != card.state;
        pinned.card = card.clone();
        if let Some(card) = pinned.slot.offer(card, now, urgent) {
            self.broadcast(ServerEvent::OfferUpdated { offer: card });
        }
    }

    /// The sale ticker is decoration: at most one per `sale_interval`, the
    /// newest wins.
    pub fn handle_sale(&mut self, ticker: SaleTicker, now: UnixMillis) {
        if let Some(t) = self.sale_slot.offer(ticker, now, false) {
            self.broadcast(ServerEvent::Sale(t));
        }
    }

    pub fn handle_broadcast_state(&mut self, state: BroadcastState) {
        if state != self.broadcast_state {
            self.broadcast_state = state;
            self.broadcast(ServerEvent::BroadcastState { state });
        }
    }

    pub fn handle_private(&mut self, subject: &str, event: ServerEvent) {
        self.effects
            .push(Effect::ToSubject(subject.to_owned(), event));
    }

    /// Timers: coalesced state that is due, and occasional clean-up.
    pub fn poll(&mut self, now: UnixMillis) {
        if let Some(v) = self.viewers_slot.poll(now) {
            self.broadcast(ServerEvent::Viewers(v));
        }
        let due: Vec<OfferCard> = self
            .offers
            .iter_mut()
            .filter_map(|o| o.slot.poll(now))
            .collect();
        for card in due {
            self.broadcast(ServerEvent::OfferUpdated { offer: card });
        }
        if let Some(t) = self.sale_slot.poll(now) {
            self.broadcast(ServerEvent::Sale(t));
        }
        if now.since(self.last_housekeeping) >= HOUSEKEEPING_EVERY {
            self.last_housekeeping = now;
            self.timeouts.retain(|_, until| *until > now);
            let slow_mode = Duration::from_secs(u64::from(self.slow_mode_seconds));
            let rules = self.rules;
            self.gates.retain(|_, g| !g.is_idle(&rules, slow_mode, now));
            self.nonces.retain(|_, q| {
                q.retain(|(_, _, at)| now.since(*at) < NONCE_MEMORY);
                !q.is_empty()
            });
        }
    }

    /// Assigns the next seq, serializes once, keeps log frames for replay.
    fn broadcast(&mut self, event: ServerEvent) -> u64 {
        self.seq += 1;
        let kind = kind_of(&event);
        let frame = Frame::encode(self.seq, kind, &event);
        if matches!(kind, FrameKind::Chat | FrameKind::Log) {
            self.replay.push(frame.clone());
        }
        self.join_snapshot = None;
        self.effects.push(Effect::Broadcast(frame));
        self.seq
    }
}

fn not_allowed() -> (RefusalCode, String) {
    refusal_text(RefusalCode::NotAllowed)
}

fn refusal_text(code: RefusalCode) -> (RefusalCode, String) {
    let message = match code {
        RefusalCode::NotAllowed => "Only the shop owner and moderators can do that.",
        RefusalCode::TargetProtected => {
            "Moderators cannot act on the owner, on each other, or on themselves."
        }
        RefusalCode::NotFound => "Not found.",
        _ => "Not possible.",
    };
    (code, message.to_owned())
}

fn millis(span: Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

fn whole_seconds(span: Duration) -> u32 {
    u32::try_from(span.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{BroadcastId, DisplayName, Fen, ProductTitle, ShopId, Unit};
    use protocol::{OfferState, ServerFrame};

    fn ms(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    fn config() -> LiveConfig {
        LiveConfig {
            chat_burst: 3,
            chat_per_minute: 60,
            flood_strikes: 2,
            ..LiveConfig::default()
        }
        .normalized()
    }

    fn core_with(config: LiveConfig, loaded: Loaded) -> RoomCore {
        let info = RoomInfo {
            broadcast: BroadcastId::generate(),
            shop: ShopId::generate(),
            state: BroadcastState::Live,
        };
        RoomCore::new(
            info,
            Arc::new(config),
            loaded,
            1_000,
            Arc::new(AtomicI64::new(1)),
            ms(0),
        )
    }

    fn core() -> RoomCore {
        core_with(config(), Loaded::default())
    }

    fn person(subject: &str, role: Role) -> Participant {
        Participant {
            subject: subject.into(),
            name: DisplayName::parse(subject).unwrap(),
            role,
            signed_in: subject.starts_with("usr_"),
            anonymous: false,
        }
    }

    fn chat(
        core: &mut RoomCore,
        who: &Participant,
        text: &str,
        nonce: &str,
        now: UnixMillis,
    ) -> Vec<Effect> {
        let cmd = Command::Chat {
            text: ChatText::parse(text).unwrap(),
            nonce: nonce.into(),
        };
        core.handle_command(ConnId(1), who, cmd, now);
        core.take_effects()
    }

    fn decoded(frame: &Frame) -> ServerFrame {
        serde_json::from_str(frame.text.as_str()).unwrap()
    }

    fn broadcasts(effects: &[Effect]) -> Vec<ServerFrame> {
        effects
            .iter()
            .filter_map(|e| {
                if let Effect::Broadcast(f) = e {
                    Some(decoded(f))
                } else {
                    None
                }
            })
            .collect()
    }

    fn refusal(effects: &[Effect]) -> Option<Refusal> {
        effects.iter().find_map(|e| match e {
            Effect::ToConn(_, ServerEvent::Refused(r)) => Some(r.clone()),
            _ => None,
        })
    }

    fn posted_id(effects: &[Effect]) -> ChatMessageId {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::ToConn(_, ServerEvent::Accepted { message, .. }) => Some(message.clone()),
                _ => None,
            })
            .expect("accepted")
    }

    fn card(offer: &OfferId, available: u32, state: OfferState) -> OfferCard {
        OfferCard {
            offer: offer.clone(),
            title: ProductTitle::parse("小米 5斤").unwrap(),
            unit: Unit::parse("袋").unwrap(),
            price_fen: Fen::price(6800).unwrap(),
            available,
            sold: 0,
            state,
            starts_at: None,
            ends_at: None,
            ships_on: None,
            max_per_buyer: None,
            buyers: domain::Buyers::Anyone,
        }
    }

    #[test]
    fn chat_is_broadcast_persisted_acknowledged_and_deduplicated() {
        let mut c = core();
        let v = person("gst_a", Role::Viewer);
        let effects = chat(&mut c, &v, "  好小米 ", "n1", ms(10));
        let frames = broadcasts(&effects);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].seq, 1_001);
        let ServerEvent::Chat(m) = &frames[0].event else {
            panic!()
        };
        assert_eq!(m.text.as_str(), "好小米");
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Persist(ChatWrite::Post(p)) if p.seq == 1_001))
        );
        let id = posted_id(&effects);

        let again = chat(&mut c, &v, "好小米", "n1", ms(20));
        assert!(broadcasts(&again).is_empty(), "a retry is not posted twice");
        assert!(again.iter().any(|e| matches!(e,
            Effect::ToConn(_, ServerEvent::Accepted { message, duplicate: true, .. }) if *message == id)));
    }

    #[test]
    fn anonymous_people_are_told_to_pick_a_nickname() {
        let mut c = core();
        let effects = chat(&mut c, &Participant::anonymous(), "hi", "n", ms(0));
        assert_eq!(
            refusal(&effects).unwrap().code,
            RefusalCode::NicknameRequired
        );
        assert!(broadcasts(&effects).is_empty());
    }

    #[test]
    fn slow_mode_applies_to_viewers_not_moderators() {
        let mut c = core();
        let owner = person("usr_owner", Role::Owner);
        let mod_ = person("usr_mod", Role::Moderator);
        let v = person("gst_a", Role::Viewer);
        c.handle_command(
            ConnId(9),
            &owner,
            Command::SetSlowMode { seconds: 30 },
            ms(0),
        );
        let effects = c.take_effects();
        let ServerEvent::Settings(s) = &broadcasts(&effects)[0].event else {
            panic!()
        };
        assert_eq!(s.slow_mode_seconds, 30);

        assert!(refusal(&chat(&mut c, &v, "one", "1", ms(1_000))).is_none());
        let r = refusal(&chat(&mut c, &v, "two", "2", ms(11_000))).unwrap();
        assert_eq!(
            (r.code, r.retry_after_ms),
            (RefusalCode::SlowMode, Some(20_000))
        );
        assert!(refusal(&chat(&mut c, &v, "three", "3", ms(31_000))).is_none());
        assert!(refusal(&chat(&mut c, &mod_, "a", "1", ms(31_000))).is_none());
        assert!(
            refusal(&chat(&mut c, &mod_, "b", "2", ms(31_001))).is_none(),
            "moderators are exempt"
        );
    }

    #[test]
    fn flooding_mutes_with_a_private_notice_and_a_log_line() {
        let mut c = core(); // burst 3, flood after 2 rate refusals
        let v = person("gst_a", Role::Viewer);
        for i in 0..3 {
            assert!(refusal(&chat(&mut c, &v, "x", &i.to_string(), ms(0))).is_none());
        }
        assert_eq!(
            refusal(&chat(&mut c, &v, "x", "3", ms(1))).unwrap().code,
            RefusalCode::RateLimited
        );
        let effects = chat(&mut c, &v, "x", "4", ms(2));
        assert_eq!(refusal(&effects).unwrap().code, RefusalCode::Muted);
        assert!(effects.iter().any(|e| matches!(e,
            Effect::ToSubject(s, ServerEvent::Muted(m)) if s == "gst_a" && m.reason == MuteReason::Flood)));
        assert!(effects.iter().any(|e| matches!(e,
            Effect::Persist(ChatWrite::Log(l)) if l.action == "auto_mute" && l.actor.is_none())));
    }

    #[test]
    fn blocked_words_are_refused_to_the_sender_only() {
        let mut c = core();
        let owner = person("usr_owner", Role::Owner);
        c.handle_command(
            ConnId(9),
            &owner,
            Command::SetBlockedWords {
                words: vec!["加微信".into()],
            },
            ms(0),
        );
        let effects = c.take_effects();
        assert!(
            broadcasts(&effects).is_empty(),
            "the list is not shown to viewers"
        );
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::ToModerators(ServerEvent::BlockedWords { .. })))
        );
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::ShopWide(ShopEvent::BlockedWords(_))))
        );
        let effects = chat(
            &mut c,
            &person("gst_a", Role::Viewer),
            "快 加 微信? no: 加微信",
            "1",
            ms(10),
        );
        assert_eq!(refusal(&effects).unwrap().code, RefusalCode::BlockedWord);
        assert!(broadcasts(&effects).is_empty());
    }

    #[test]
    fn ban_hides_messages_closes_and_spreads_to_the_shop() {
        let mut c = core();
        let owner = person("usr_owner", Role::Owner);
        let troll = person("gst_troll", Role::Viewer);
        let id = posted_id(&chat(&mut c, &troll, "spam", "1", ms(0)));
        c.handle_command(
            ConnId(9),
            &owner,
            Command::PinMessage { message: id },
            ms(1),
        );
        c.take_effects();
        let ban = Command::Ban {
            subject: "gst_troll".into(),
            target_role: Role::Viewer,
            reason: Reason::parse("spam").unwrap(),
        };
        c.handle_command(ConnId(9), &owner, ban, ms(2));
        let effects = c.take_effects();
        let events: Vec<_> = broadcasts(&effects).into_iter().map(|f| f.event).collect();
        assert!(events.contains(&ServerEvent::MessagesHidden {
            subject: "gst_troll".into()
        }));
        assert!(
            events.contains(&ServerEvent::PinnedMessage { message: None }),
            "their pinned message goes too"
        );
        assert!(effects.contains(&Effect::CloseSubject(
            "gst_troll".into(),
            CloseReason::BANNED
        )));
        assert!(effects.contains(&Effect::ShopWide(ShopEvent::Banned {
            subject: "gst_troll".into()
        })));
        assert!(
            c.snapshot_frame(SnapshotReason::Join, 0)
                .text
                .as_str()
                .contains("\"history\":[]")
        );
        assert_eq!(
            c.handle_join(ConnId(3), &troll, None, ms(3)),
            Err(CloseReason::BANNED)
        );
    }

    #[test]
    fn moderators_cannot_act_on_each_other_or_the_owner() {
        let mut c = core();
        let m = person("usr_mod", Role::Moderator);
        for (subject, role) in [("usr_owner", Role::Owner), ("usr_mod2", Role::Moderator)] {
            let cmd = Command::Timeout {
                subject: subject.into(),
                target_role: role,
                seconds: 60,
                reason: Reason::parse("").unwrap(),
            };
            c.handle_command(ConnId(1), &m, cmd, ms(0));
            assert_eq!(
                refusal(&c.take_effects()).unwrap().code,
                RefusalCode::TargetProtected
            );
        }
        let cmd = Command::Timeout {
            subject: "gst_a".into(),
            target_role: Role::Viewer,
            seconds: 5,
            reason: Reason::parse("").unwrap(),
        };
        c.handle_command(ConnId(1), &m, cmd, ms(0));
        assert_eq!(
            refusal(&c.take_effects()).unwrap().code,
            RefusalCode::InvalidRequest,
            "under 10 s"
        );
    }

    #[test]
    fn a_timeout_mutes_until_it_ends() {
        let mut c = core();
        let m = person("usr_mod", Role::Moderator);
        let v = person("gst_a", Role::Viewer);
        let cmd = Command::Timeout {
            subject: "gst_a".into(),
            target_role: Role::Viewer,
            seconds: 60,
            reason: Reason::parse("rude").unwrap(),
        };
        c.handle_command(ConnId(1), &m, cmd, ms(1_000));
        let effects = c.take_effects();
        assert!(effects.iter().any(|e| matches!(e,
            Effect::ToSubject(s, ServerEvent::Muted(x)) if s == "gst_a" && x.seconds == 60)));
        let r = refusal(&chat(&mut c, &v, "hi", "1", ms(2_000))).unwrap();
        assert_eq!(
            (r.code, r.retry_after_ms),
            (RefusalCode::Muted, Some(59_000))
        );
        assert!(refusal(&chat(&mut c, &v, "hi", "2", ms(61_000))).is_none());
    }

    #[test]
    fn offer_updates_are_coalesced_but_state_changes_are_immediate() {
        let mut c = core();
        let owner = person("usr_owner", Role::Owner);
        let offer = OfferId::generate();
        c.handle_command(
            ConnId(1),
            &owner,
            Command::PinOffer {
                offer: offer.clone(),
                card: Some(card(&offer, 10, OfferState::Open)),
            },
            ms(0),
        );
        assert!(matches!(
            broadcasts(&c.take_effects())[0].event,
            ServerEvent::OfferPinned { .. }
        ));

        c.handle_offer_update(card(&offer, 9, OfferState::Open), ms(100));
        c.handle_offer_update(card(&offer, 8, OfferState::Open), ms(200));
        assert!(
            broadcasts(&c.take_effects()).is_empty(),
            "within the interval"
        );
        c.poll(ms(999));
        assert!(broadcasts(&c.take_effects()).is_empty());
        c.poll(ms(1_000));
        let frames = broadcasts(&c.take_effects());
        assert_eq!(frames.len(), 1);
        let ServerEvent::OfferUpdated { offer: got } = &frames[0].event else {
            panic!()
        };
        assert_eq!(got.available, 8, "the newest value");

        c.handle_offer_update(card(&offer, 0, OfferState::SoldOut), ms(1_100));
        let frames = broadcasts(&c.take_effects());
        assert_eq!(frames.len(), 1, "sold out goes out at once");
        // Updates for offers that are not pinned are ignored.
        c.handle_offer_update(card(&OfferId::generate(), 1, OfferState::Open), ms(5_000));
        assert!(c.take_effects().is_empty());
    }

    #[test]
    fn viewer_counts_are_coalesced_to_one_per_interval() {
        let mut c = core();
        c.set_connected(1, 1, ms(0));
        assert_eq!(broadcasts(&c.take_effects()).len(), 1);
        for n in 2..50 {
            c.set_connected(n, n - 1, ms(10 * n as i64));
        }
        c.set_media_viewers(120, ms(600));
        assert!(broadcasts(&c.take_effects()).is_empty());
        c.poll(ms(1_000));
        let frames = broadcasts(&c.take_effects());
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[0].event,
            ServerEvent::Viewers(Viewers {
                count: 120,
                connected: 49
            })
        );
    }

    #[test]
    fn resume_replays_log_messages_then_sends_current_state() {
        let mut c = core();
        let v = person("gst_a", Role::Viewer);
        let owner = person("usr_owner", Role::Owner);
        let frames = c.handle_join(ConnId(1), &v, None, ms(0)).unwrap();
        assert_eq!(frames.len(), 2, "hello + snapshot");
        let last_seen = c.seq();
        chat(&mut c, &owner, "one", "1", ms(10));
        c.handle_command(
            ConnId(1),
            &owner,
            Command::SetSlowMode { seconds: 5 },
            ms(11),
        );
        chat(&mut c, &owner, "two", "2", ms(12));
        c.take_effects();

        let frames = c
            .handle_join(ConnId(2), &v, Some(last_seen), ms(20))
            .unwrap();
        let got: Vec<_> = frames.iter().map(decoded).collect();
        let ServerEvent::Hello(h) = &got[0].event else {
            panic!()
        };
        assert_eq!(h.resume, ResumeOutcome::Replayed);
        assert_eq!(got[0].seq, last_seen);
        let chats: Vec<u64> = got
            .iter()
            .filter(|f| matches!(f.event, ServerEvent::Chat(_)))
            .map(|f| f.seq)
            .collect();
        assert_eq!(
            chats,
            vec![last_seen + 1, last_seen + 3],
            "the settings change is not replayed ..."
        );
        let ServerEvent::RoomState { state } = &got.last().unwrap().event else {
            panic!()
        };
        assert_eq!(
            state.settings.slow_mode_seconds, 5,
            "... it comes with the current state"
        );
        assert_eq!(got.last().unwrap().seq, c.seq());

        let frames = c.handle_join(ConnId(3), &v, Some(5), ms(30)).unwrap();
        let ServerEvent::Snapshot(s) = &decoded(&frames[1]).event else {
            panic!()
        };
        assert_eq!(s.reason, SnapshotReason::ResumeTooOld);
        assert_eq!(s.history.len(), 2);
    }

    #[test]
    fn history_on_join_is_bounded_and_survives_a_reload() {
        let mut c = core_with(
            LiveConfig {
                history_len: 3,
                chat_burst: 100,
                ..config()
            },
            Loaded::default(),
        );
        let owner = person("usr_owner", Role::Owner);
        for i in 0..5 {
            chat(&mut c, &owner, &format!("m{i}"), &i.to_string(), ms(i));
        }
        let snap = decoded(&c.snapshot_frame(SnapshotReason::Join, 0));
        let ServerEvent::Snapshot(s) = snap.event else {
            panic!()
        };
        let texts: Vec<_> = s
            .history
            .iter()
            .map(|m| m.text.as_str().to_owned())
            .collect();
        assert_eq!(texts, vec!["m2", "m3", "m4"]);
    }
}
