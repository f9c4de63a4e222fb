//! Broadcasts: a shop's scheduled, live and past streams.

use crate::millis;
use crate::{Store, StoreError};
use domain::UnixMillis;
use domain::{BroadcastId, BroadcastState, BroadcastTitle, ShopId};

#[derive(Clone, Debug)]
pub struct BroadcastRecord {
    pub id: BroadcastId,
    pub shop_id: ShopId,
    pub title: BroadcastTitle,
    pub scheduled_at: Option<UnixMillis>,
    pub state: BroadcastState,
    /// Secret: only ever shown to the shop's owner.
    pub stream_key: String,
    pub started_at: Option<UnixMillis>,
    pub ended_at: Option<UnixMillis>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(sqlx::FromRow)]
struct BroadcastRow {
    id: String,
    shop_id: String,
    title: String,
    scheduled_at: Option<i64>,
    state: String,
    stream_key: String,
    started_at: Option<i64>,
    ended_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<BroadcastRow> for BroadcastRecord {
    type Error = StoreError;
    fn try_from(r: BroadcastRow) -> Result<Self, StoreError> {
        let state = BroadcastState::from_db(&r.state).ok_or_else(|| {
            StoreError::Corrupt(format!("broadcast {} state {:?}", r.id, r.state))
        })?;
        Ok(BroadcastRecord {
            id: BroadcastId::from_trusted(r.id),
            shop_id: ShopId::from_trusted(r.shop_id),
            title: BroadcastTitle::from_trusted(r.title),
            scheduled_at: millis(r.scheduled_at),
            state,
            stream_key: r.stream_key,
            started_at: millis(r.started_at),
            ended_at: millis(r.ended_at),
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
        })
    }
}

pub struct NewBroadcast {
    pub shop_id: ShopId,
    pub title: BroadcastTitle,
    pub scheduled_at: Option<UnixMillis>,
    pub stream_key: String,
}

#[derive(Default)]
pub struct BroadcastUpdate {
    pub title: Option<BroadcastTitle>,
    /// `Some(None)` clears the schedule.
    pub scheduled_at: Option<Option<UnixMillis>>,
}

/// Column list shared by every query of this table (a macro so queries stay
/// `&'static str`, which sqlx accepts as audited SQL).
macro_rules! broadcast_columns {
    () => {
        "id, shop_id, title, scheduled_at, state, stream_key, started_at, ended_at, created_at, updated_at"
    };
}

impl Store {
    pub async fn create_broadcast(
        &self,
        new: NewBroadcast,
        now: UnixMillis,
    ) -> Result<BroadcastRecord, StoreError> {
        let id = BroadcastId::generate();
        sqlx::query(concat!(
            "INSERT INTO broadcasts (",
            broadcast_columns!(),
            ") VALUES ($1, $2, $3, $4, 'scheduled', $5, NULL, NULL, $6, $7)"
        ))
        .bind(id.as_str())
        .bind(new.shop_id.as_str())
        .bind(new.title.as_str())
        .bind(new.scheduled_at.map(UnixMillis::millis))
        .bind(&new.stream_key)
        .bind(now.millis())
        .bind(now.millis())
        .execute(self.pool())
        .await?;
        self.broadcast(&id).await
    }

    pub async fn broadcast(&self, id: &BroadcastId) -> Result<BroadcastRecord, StoreError> {
        let row: BroadcastRow = sqlx::query_as(concat!(
            "SELECT ",
            broadcast_columns!(),
            " FROM broadcasts WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        row.try_into()
    }

    /// Newest first.
    pub async fn broadcasts_of_shop(
        &self,
        shop: &ShopId,
    ) -> Result<Vec<BroadcastRecord>, StoreError> {
        let rows: Vec<BroadcastRow> = sqlx::query_as(concat!(
            "SELECT ",
            broadcast_columns!(),
            " FROM broadcasts WHERE shop_id = $1 ORDER BY created_at DESC, id"
        ))
        .bind(shop.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(BroadcastRecord::try_from).collect()
    }

    /// Broadcasts live right now, across all shops (for the home page and
    /// for reconciling state after a restart).
    pub async fn live_broadcasts(&self) -> Result<Vec<BroadcastRecord>, StoreError> {
        let rows: Vec<BroadcastRow> = sqlx::query_as(concat!(
            "SELECT ",
            broadcast_columns!(),
            " FROM broadcasts WHERE state = 'live' ORDER BY started_at DESC, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(BroadcastRecord::try_from).collect()
    }

    pub async fn update_broadcast(
        &self,
        id: &BroadcastId,
        update: BroadcastUpdate,
        now: UnixMillis,
    ) -> Result<BroadcastRecord, StoreError> {
        let (set_schedule, scheduled_at) = match update.scheduled_at {
            None => (0_i64, None),
            Some(at) => (1_i64, at),
        };
        let done = sqlx::query(
            "UPDATE broadcasts SET title = COALESCE($1, title), \
             scheduled_at = CASE WHEN $2 = 1 THEN $3 ELSE scheduled_at END, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(update.title.as_ref().map(|v| v.as_str()))
        .bind(set_schedule)
        .bind(scheduled_at.map(UnixMillis::millis))
        .bind(now.millis())
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.broadcast(id).await
    }

    /// Moves a broadcast to `to`, checking the transition against the state
    /// in the database (not a possibly stale copy) inside one transaction.
    /// Returns the updated record, or `Ok(None)` if the transition is not
    /// allowed from the current state.
    pub async fn set_broadcast_state(
        &self,
        id: &BroadcastId,
        to: BroadcastState,
        now: UnixMillis,
    ) -> Result<Option<BroadcastRecord>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row: BroadcastRow = sqlx::query_as(concat!(
            "SELECT ",
            broadcast_columns!(),
            " FROM broadcasts WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let current = BroadcastRecord::try_from(row)?;
        if current.state.transition(to).is_err() {
            return Ok(None);
        }
        if current.state != to {
            sqlx::query(
                "UPDATE broadcasts SET state = $1, \
                 started_at = CASE WHEN $1 = 'live' AND started_at IS NULL THEN $2 ELSE started_at END, \
                 ended_at = CASE WHEN $1 = 'ended' THEN $2 ELSE ended_at END, \
                 updated_at = $2 WHERE id = $3",
            )
            .bind(to.as_str())
            .bind(now.millis())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.broadcast(id).await.map(Some)
    }

    pub async fn set_stream_key(
        &self,
        id: &BroadcastId,
        stream_key: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE broadcasts SET stream_key = $1, updated_at = $2 WHERE id = $3")
                .bind(stream_key)
                .bind(now.millis())
                .bind(id.as_str())
                .execute(self.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
