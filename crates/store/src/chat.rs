//! The live channel's storage: chat messages, bans, timeouts, per-shop chat
//! settings, per-broadcast room state and the moderation log.
//!
//! The room hub writes in batches off its fan-out path: it queues
//! [`ChatWrite`]s and applies many at once with [`Store::apply_chat_writes`]
//! (one transaction, in order). Reads happen when a room opens and when the
//! HTTP layer shows the moderation log.

use crate::millis;
use crate::{Store, StoreError};
use domain::UnixMillis;
use domain::{BroadcastId, ChatMessageId, ChatText, DisplayName, OfferId, Role, ShopId, Subject};
use std::collections::HashSet;
use std::sync::Arc;

/// A message as it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewChatMessage {
    pub id: ChatMessageId,
    pub broadcast_id: BroadcastId,
    pub shop_id: ShopId,
    pub author_subject: String,
    pub author_name: DisplayName,
    pub author_role: Role,
    pub text: ChatText,
    pub nonce: String,
    pub posted_at: UnixMillis,
    /// The room sequence number it was broadcast with.
    pub seq: i64,
}

/// A stored message; only visible ones come back from history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessageRecord {
    pub id: ChatMessageId,
    pub broadcast_id: BroadcastId,
    pub shop_id: ShopId,
    pub author_subject: String,
    pub author_name: DisplayName,
    pub author_role: Role,
    pub text: ChatText,
    pub nonce: String,
    pub posted_at: UnixMillis,
    pub seq: i64,
    pub deleted_at: Option<UnixMillis>,
    pub hidden_at: Option<UnixMillis>,
    pub cleared_at: Option<UnixMillis>,
}

impl ChatMessageRecord {
    pub fn is_visible(&self) -> bool {
        self.deleted_at.is_none() && self.hidden_at.is_none() && self.cleared_at.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRecord {
    pub shop_id: ShopId,
    pub subject: String,
    pub banned_by: String,
    pub reason: String,
    pub created_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutRecord {
    pub shop_id: ShopId,
    pub subject: String,
    pub until: UnixMillis,
    pub timed_out_by: String,
    pub reason: String,
    pub created_at: UnixMillis,
}

/// A broadcast's live-channel state; absent until someone changes it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LiveRoomRecord {
    pub slow_mode_seconds: u32,
    pub pinned_message_id: Option<ChatMessageId>,
    /// In the order they were pinned.
    pub pinned_offers: Vec<OfferId>,
}

/// Someone who moderated: `None` in [`ModerationRecord::actor`] means the
/// server itself (automatic mutes of flooding senders).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModerationActor {
    pub subject: String,
    pub name: DisplayName,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModerationRecord {
    pub shop_id: ShopId,
    pub broadcast_id: Option<BroadcastId>,
    /// Strictly increasing per writer; orders entries of the same millisecond.
    pub ordinal: i64,
    pub actor: Option<ModerationActor>,
    /// A stable snake_case word (`ban`, `delete_message`, …), chosen by the
    /// live channel's protocol.
    pub action: String,
    pub target_subject: Option<String>,
    pub message_id: Option<ChatMessageId>,
    pub detail: Option<String>,
    pub created_at: UnixMillis,
}

/// One write the room hub queues; see [`Store::apply_chat_writes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatWrite {
    /// Posting twice with the same (broadcast, author, nonce) keeps the first.
    Post(NewChatMessage),
    Delete {
        message: ChatMessageId,
        by: String,
        at: UnixMillis,
    },
    /// Hide every message of `subject` in the shop (they were banned).
    HideAuthor {
        shop: ShopId,
        subject: String,
        at: UnixMillis,
    },
    /// Clear the broadcast's chat: every message so far leaves history.
    Clear {
        broadcast: BroadcastId,
        at: UnixMillis,
    },
    Ban(BanRecord),
    Unban {
        shop: ShopId,
        subject: String,
    },
    /// Replaces any earlier timeout of the same person in the shop.
    Timeout(TimeoutRecord),
    SlowMode {
        broadcast: BroadcastId,
        shop: ShopId,
        seconds: u32,
        at: UnixMillis,
    },
    BlockedWords {
        shop: ShopId,
        words: Vec<String>,
        at: UnixMillis,
    },
    PinMessage {
        broadcast: BroadcastId,
        shop: ShopId,
        message: Option<ChatMessageId>,
        at: UnixMillis,
    },
    /// The full list of pinned offers, in order.
    PinnedOffers {
        broadcast: BroadcastId,
        shop: ShopId,
        offers: Vec<OfferId>,
        at: UnixMillis,
    },
    Log(ModerationRecord),
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Moderator => "moderator",
        Role::Viewer => "viewer",
    }
}

fn role_from_db(raw: &str) -> Result<Role, StoreError> {
    match raw {
        "owner" => Ok(Role::Owner),
        "moderator" => Ok(Role::Moderator),
        "viewer" => Ok(Role::Viewer),
        other => Err(StoreError::Corrupt(format!("role {other:?}"))),
    }
}

#[derive(sqlx::FromRow)]
struct ChatMessageRow {
    id: String,
    broadcast_id: String,
    shop_id: String,
    author_subject: String,
    author_name: String,
    author_role: String,
    body: String,
    nonce: String,
    posted_at: i64,
    seq: i64,
    deleted_at: Option<i64>,
    hidden_at: Option<i64>,
    cleared_at: Option<i64>,
}

impl TryFrom<ChatMessageRow> for ChatMessageRecord {
    type Error = StoreError;
    fn try_from(r: ChatMessageRow) -> Result<Self, StoreError> {
        Ok(ChatMessageRecord {
            author_role: role_from_db(&r.author_role)?,
            id: ChatMessageId::from_trusted(r.id),
            broadcast_id: BroadcastId::from_trusted(r.broadcast_id),
            shop_id: ShopId::from_trusted(r.shop_id),
            author_subject: r.author_subject,
            author_name: DisplayName::from_trusted(r.author_name),
            text: ChatText::from_trusted(r.body),
            nonce: r.nonce,
            posted_at: millis(r.posted_at),
            seq: r.seq,
            deleted_at: millis(r.deleted_at),
            hidden_at: millis(r.hidden_at),
            cleared_at: millis(r.cleared_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ModerationRow {
    shop_id: String,
    broadcast_id: Option<String>,
    ordinal: i64,
    actor_subject: Option<String>,
    actor_name: Option<String>,
    actor_role: Option<String>,
    action: String,
    target_subject: Option<String>,
    message_id: Option<String>,
    detail: Option<String>,
    created_at: i64,
}

impl TryFrom<ModerationRow> for ModerationRecord {
    type Error = StoreError;
    fn try_from(r: ModerationRow) -> Result<Self, StoreError> {
        let actor = match (r.actor_subject, r.actor_name, r.actor_role) {
            (Some(subject), Some(name), Some(role)) => Some(ModerationActor {
                subject,
                name: DisplayName::from_trusted(name),
                role: role_from_db(&role)?,
            }),
            (None, None, None) => None,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "moderation entry {} has a partial actor",
                    r.ordinal
                )));
            }
        };
        Ok(ModerationRecord {
            shop_id: ShopId::from_trusted(r.shop_id),
            broadcast_id: r.broadcast_id.map(BroadcastId::from_trusted),
            ordinal: r.ordinal,
            actor,
            action: r.action,
            target_subject: r.target_subject,
            message_id: r.message_id.map(ChatMessageId::from_trusted),
            detail: r.detail,
            created_at: millis(r.created_at),
        })
    }
}

macro_rules! chat_columns {
    () => {
        "id, broadcast_id, shop_id, author_subject, author_name, author_role, body, nonce, posted_at, seq, \
         deleted_at, hidden_at, cleared_at"
    };
}

macro_rules! moderation_columns {
    () => {
        "shop_id, broadcast_id, ordinal, actor_subject, actor_name, actor_role, action, target_subject, \
         message_id, detail, created_at"
    };
}

/// Blocked words are kept one per line; a word never contains a newline
/// because the live channel normalizes them as single-line text.
fn join_words(words: &[String]) -> String {
    words.join("\n")
}

fn split_words(raw: &str) -> Vec<String> {
    raw.split('\n')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Store {
    /// Applies `writes` in order in one transaction: all or nothing.
    pub async fn apply_chat_writes(&self, writes: &[ChatWrite]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for write in writes {
            apply_one(&mut tx, write).await?;
        }
        tx.commit().await?;
        for write in writes {
            match write {
                ChatWrite::Ban(ban) => self.cache().forget_bans(ban.shop_id.as_str()),
                ChatWrite::Unban { shop, .. } => self.cache().forget_bans(shop.as_str()),
                _ => {}
            }
        }
        Ok(())
    }

    /// The last `limit` visible messages of a broadcast, oldest first.
    pub async fn chat_history(
        &self,
        broadcast: &BroadcastId,
        limit: u32,
    ) -> Result<Vec<ChatMessageRecord>, StoreError> {
        let rows: Vec<ChatMessageRow> = sqlx::query_as(concat!(
            "SELECT ",
            chat_columns!(),
            " FROM chat_messages WHERE broadcast_id = $1 \
             AND deleted_at IS NULL AND hidden_at IS NULL AND cleared_at IS NULL \
             ORDER BY seq DESC, id DESC LIMIT $2"
        ))
        .bind(broadcast.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<Vec<ChatMessageRecord>, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// A broadcast's chat for its replay, oldest first, from after the
    /// message `(posted_at, id)` of the previous page: every message not
    /// deleted by a moderator nor hidden with a banned author. A cleared
    /// message stays, with `cleared_at`: it showed until then.
    pub async fn chat_for_replay(
        &self,
        broadcast: &BroadcastId,
        after: Option<(i64, &ChatMessageId)>,
        limit: u32,
    ) -> Result<Vec<ChatMessageRecord>, StoreError> {
        let (after_at, after_id) = after.map_or((i64::MIN, ""), |(at, id)| (at, id.as_str()));
        let rows: Vec<ChatMessageRow> = sqlx::query_as(concat!(
            "SELECT ",
            chat_columns!(),
            " FROM chat_messages WHERE broadcast_id = $1 \
             AND deleted_at IS NULL AND hidden_at IS NULL \
             AND (posted_at > $2 OR (posted_at = $2 AND id > $3)) \
             ORDER BY posted_at, id LIMIT $4"
        ))
        .bind(broadcast.as_str())
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// One message, visible or not.
    pub async fn chat_message(
        &self,
        id: &ChatMessageId,
    ) -> Result<Option<ChatMessageRecord>, StoreError> {
        let row: Option<ChatMessageRow> = sqlx::query_as(concat!(
            "SELECT ",
            chat_columns!(),
            " FROM chat_messages WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Slow mode, pinned message and pinned offers of a broadcast; defaults
    /// when nothing was ever set.
    pub async fn live_room(&self, broadcast: &BroadcastId) -> Result<LiveRoomRecord, StoreError> {
        let room: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT slow_mode_seconds, pinned_message_id FROM live_rooms WHERE broadcast_id = $1",
        )
        .bind(broadcast.as_str())
        .fetch_optional(self.pool())
        .await?;
        let offers: Vec<(String,)> = sqlx::query_as(
            "SELECT offer_id FROM live_pinned_offers WHERE broadcast_id = $1 ORDER BY pinned_at, offer_id",
        )
        .bind(broadcast.as_str())
        .fetch_all(self.pool())
        .await?;
        let (slow, pinned) = room.unwrap_or((0, None));
        Ok(LiveRoomRecord {
            slow_mode_seconds: u32::try_from(slow)
                .map_err(|_| StoreError::Corrupt(format!("slow mode {slow}")))?,
            pinned_message_id: pinned.map(ChatMessageId::from_trusted),
            pinned_offers: offers
                .into_iter()
                .map(|(o,)| OfferId::from_trusted(o))
                .collect(),
        })
    }

    /// The shop's blocked words, as stored (already normalized).
    pub async fn blocked_words(&self, shop: &ShopId) -> Result<Vec<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT blocked_words FROM chat_shop_settings WHERE shop_id = $1")
                .bind(shop.as_str())
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(w,)| split_words(&w)).unwrap_or_default())
    }

    pub async fn chat_bans(&self, shop: &ShopId) -> Result<Vec<BanRecord>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT shop_id, subject, banned_by, reason, created_at FROM chat_bans \
             WHERE shop_id = $1 ORDER BY created_at, subject",
        )
        .bind(shop.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(shop_id, subject, banned_by, reason, created_at)| BanRecord {
                    shop_id: ShopId::from_trusted(shop_id),
                    subject,
                    banned_by,
                    reason,
                    created_at: millis(created_at),
                },
            )
            .collect())
    }

    /// Whether `subject` is banned from `shop`'s broadcasts. Every buy over
    /// HTTP asks, so the shop's ban list is cached for a few seconds (see
    /// `cache.rs`); bans written through this store take effect at once.
    pub async fn is_chat_banned(
        &self,
        shop: &ShopId,
        subject: &Subject,
    ) -> Result<bool, StoreError> {
        let subject = subject.as_str();
        let read_under = match self.cache().bans(shop.as_str()) {
            Ok(banned) => return Ok(banned.contains(subject)),
            Err(generation) => generation,
        };
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT subject FROM chat_bans WHERE shop_id = $1")
                .bind(shop.as_str())
                .fetch_all(self.pool())
                .await?;
        let banned: HashSet<String> = rows.into_iter().map(|(s,)| s).collect();
        let is_banned = banned.contains(subject);
        self.cache()
            .put_bans(shop.as_str(), Arc::new(banned), read_under);
        Ok(is_banned)
    }

    /// Timeouts still running at `now`.
    pub async fn active_timeouts(
        &self,
        shop: &ShopId,
        now: UnixMillis,
    ) -> Result<Vec<TimeoutRecord>, StoreError> {
        let rows: Vec<(String, String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT shop_id, subject, until_at, timed_out_by, reason, created_at FROM chat_timeouts \
             WHERE shop_id = $1 AND until_at > $2 ORDER BY until_at, subject",
        )
        .bind(shop.as_str())
        .bind(now.millis())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(shop_id, subject, until, timed_out_by, reason, created_at)| TimeoutRecord {
                    shop_id: ShopId::from_trusted(shop_id),
                    subject,
                    until: millis(until),
                    timed_out_by,
                    reason,
                    created_at: millis(created_at),
                },
            )
            .collect())
    }

    /// The shop's moderation log, newest first, at most `limit` entries.
    pub async fn moderation_log(
        &self,
        shop: &ShopId,
        limit: u32,
    ) -> Result<Vec<ModerationRecord>, StoreError> {
        let rows: Vec<ModerationRow> = sqlx::query_as(concat!(
            "SELECT ",
            moderation_columns!(),
            " FROM moderation_log WHERE shop_id = $1 ORDER BY ordinal DESC LIMIT $2"
        ))
        .bind(shop.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

async fn apply_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    write: &ChatWrite,
) -> Result<(), StoreError> {
    match write {
        ChatWrite::Post(m) => {
            sqlx::query(concat!(
                "INSERT INTO chat_messages (",
                chat_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, NULL) \
                 ON CONFLICT (broadcast_id, author_subject, nonce) DO NOTHING"
            ))
            .bind(m.id.as_str())
            .bind(m.broadcast_id.as_str())
            .bind(m.shop_id.as_str())
            .bind(m.author_subject.as_str())
            .bind(m.author_name.as_str())
            .bind(role_str(m.author_role))
            .bind(m.text.as_str())
            .bind(m.nonce.as_str())
            .bind(m.posted_at.millis())
            .bind(m.seq)
            .execute(&mut **tx)
            .await?;
        }
        ChatWrite::Delete { message, by, at } => {
            sqlx::query("UPDATE chat_messages SET deleted_at = $1, deleted_by = $2 WHERE id = $3 AND deleted_at IS NULL")
                .bind(at.millis())
                .bind(by.as_str())
                .bind(message.as_str())
                .execute(&mut **tx)
                .await?;
        }
        ChatWrite::HideAuthor { shop, subject, at } => {
            sqlx::query(
                "UPDATE chat_messages SET hidden_at = $1 \
                 WHERE shop_id = $2 AND author_subject = $3 AND hidden_at IS NULL",
            )
            .bind(at.millis())
            .bind(shop.as_str())
            .bind(subject.as_str())
            .execute(&mut **tx)
            .await?;
        }
        ChatWrite::Clear { broadcast, at } => {
            sqlx::query("UPDATE chat_messages SET cleared_at = $1 WHERE broadcast_id = $2 AND cleared_at IS NULL")
                .bind(at.millis())
                .bind(broadcast.as_str())
                .execute(&mut **tx)
                .await?;
        }
        ChatWrite::Ban(ban) => {
            sqlx::query(
                "INSERT INTO chat_bans (shop_id, subject, banned_by, reason, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (shop_id, subject) DO UPDATE SET banned_by = excluded.banned_by, \
                 reason = excluded.reason, created_at = excluded.created_at",
            )
            .bind(ban.shop_id.as_str())
            .bind(ban.subject.as_str())
            .bind(ban.banned_by.as_str())
            .bind(ban.reason.as_str())
            .bind(ban.created_at.millis())
            .execute(&mut **tx)
            .await?;
        }
        ChatWrite::Unban { shop, subject } => {
            sqlx::query("DELETE FROM chat_bans WHERE shop_id = $1 AND subject = $2")
                .bind(shop.as_str())
                .bind(subject.as_str())
                .execute(&mut **tx)
                .await?;
        }
        ChatWrite::Timeout(t) => {
            sqlx::query(
                "INSERT INTO chat_timeouts (shop_id, subject, until_at, timed_out_by, reason, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (shop_id, subject) DO UPDATE SET until_at = excluded.until_at, \
                 timed_out_by = excluded.timed_out_by, reason = excluded.reason, created_at = excluded.created_at",
            )
            .bind(t.shop_id.as_str())
            .bind(t.subject.as_str())
            .bind(t.until.millis())
            .bind(t.timed_out_by.as_str())
            .bind(t.reason.as_str())
            .bind(t.created_at.millis())
            .execute(&mut **tx)
            .await?;
        }
        ChatWrite::SlowMode {
            broadcast,
            shop,
            seconds,
            at,
        } => {
            sqlx::query(
                "INSERT INTO live_rooms (broadcast_id, shop_id, slow_mode_seconds, pinned_message_id, updated_at) \
                 VALUES ($1, $2, $3, NULL, $4) \
                 ON CONFLICT (broadcast_id) DO UPDATE SET slow_mode_seconds = excluded.slow_mode_seconds, \
                 updated_at = excluded.updated_at",
            )
            .bind(broadcast.as_str())
            .bind(shop.as_str())
            .bind(i64::from(*seconds))
            .bind(at.millis())
            .execute(&mut **tx)
            .await?;
        }
        ChatWrite::PinMessage {
            broadcast,
            shop,
            message,
            at,
        } => {
            sqlx::query(
                "INSERT INTO live_rooms (broadcast_id, shop_id, slow_mode_seconds, pinned_message_id, updated_at) \
                 VALUES ($1, $2, 0, $3, $4) \
                 ON CONFLICT (broadcast_id) DO UPDATE SET pinned_message_id = excluded.pinned_message_id, \
                 updated_at = excluded.updated_at",
            )
            .bind(broadcast.as_str())
            .bind(shop.as_str())
            .bind(message.as_ref().map(|m| m.as_str()))
            .bind(at.millis())
            .execute(&mut **tx)
            .await?;
        }
        ChatWrite::BlockedWords { shop, words, at } => {
            sqlx::query(
                "INSERT INTO chat_shop_settings (shop_id, blocked_words, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (shop_id) DO UPDATE SET blocked_words = excluded.blocked_words, \
                 updated_at = excluded.updated_at",
            )
            .bind(shop.as_str())
            .bind(join_words(words))
            .bind(at.millis())
            .execute(&mut **tx)
            .await?;
        }
        ChatWrite::PinnedOffers {
            broadcast,
            shop: _,
            offers,
            at,
        } => {
            sqlx::query("DELETE FROM live_pinned_offers WHERE broadcast_id = $1")
                .bind(broadcast.as_str())
                .execute(&mut **tx)
                .await?;
            for (i, offer) in offers.iter().enumerate() {
                // Consecutive times keep the pinning order on reload.
                sqlx::query("INSERT INTO live_pinned_offers (broadcast_id, offer_id, pinned_at) VALUES ($1, $2, $3)")
                    .bind(broadcast.as_str())
                    .bind(offer.as_str())
                    .bind(at.millis() + i as i64)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        ChatWrite::Log(entry) => {
            sqlx::query(concat!(
                "INSERT INTO moderation_log (id, ",
                moderation_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(format!("mlg_{}", domain::secret_token()))
            .bind(entry.shop_id.as_str())
            .bind(entry.broadcast_id.as_ref().map(|b| b.as_str()))
            .bind(entry.ordinal)
            .bind(entry.actor.as_ref().map(|a| a.subject.as_str()))
            .bind(entry.actor.as_ref().map(|a| a.name.as_str()))
            .bind(entry.actor.as_ref().map(|a| role_str(a.role)))
            .bind(entry.action.as_str())
            .bind(entry.target_subject.as_deref())
            .bind(entry.message_id.as_ref().map(|m| m.as_str()))
            .bind(entry.detail.as_deref())
            .bind(entry.created_at.millis())
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_words_survive_the_line_format() {
        let words = vec!["spam".to_owned(), "加微信".to_owned()];
        assert_eq!(split_words(&join_words(&words)), words);
        assert!(split_words("").is_empty());
    }
}
