//! The two-way Telegram bot's polling turn: which process polls `getUpdates`
//! and the next update it asks for (see `crate::notify::bot`).
//!
//! Telegram refuses a second poller of the same bot (409), so API-role
//! processes take turns through one row per bot: a process claims the row
//! when nobody holds it or the holder's lease has lapsed, renews its claim
//! each round, and moves `next_offset` past each update once it acted on it.
//! The offset is read from the row when a turn begins, so a restart (or a
//! takeover) neither replays confirmed updates nor skips unconfirmed ones.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Records, StoreError, db_run, later, time_text};

/// The polling turn, as the two-way bot asks it of the record store.
#[async_trait]
pub trait BotPolling: Send + Sync + 'static {
    /// Claims (or renews) `holder`'s turn to poll `bot` until `now + lease`:
    /// the next offset to ask for when the turn is `holder`'s, None while
    /// another holder's lease runs.
    async fn claim_bot_polling(
        &self,
        bot: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<i64>, StoreError>;
    /// Moves `bot`'s next offset to `next_offset` (never back) and renews the
    /// lease, if the turn is still `holder`'s; false if it is not.
    async fn confirm_bot_updates(
        &self,
        bot: &str,
        holder: &str,
        next_offset: i64,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// Gives the turn up at once (a process stopping), if it is `holder`'s.
    async fn release_bot_polling(&self, bot: &str, holder: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl BotPolling for Records {
    async fn claim_bot_polling(
        &self,
        bot: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        let until = time_text(later(now, lease));
        // One statement on both engines: a missing row is made, a free or
        // own row is taken; a row another process holds is left alone and
        // nothing is returned.
        let offset: Option<i64> = db_run!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO telegram_polling (bot, next_offset, holder, held_until) VALUES ($1, 0, $2, $3) \
                 ON CONFLICT (bot) DO UPDATE SET holder = excluded.holder, held_until = excluded.held_until \
                 WHERE telegram_polling.holder = excluded.holder OR telegram_polling.held_until <= $4 \
                 RETURNING next_offset",
            )
            .bind(bot)
            .bind(holder)
            .bind(&until)
            .bind(time_text(now))
            .fetch_optional(pool)
            .await?
        });
        Ok(offset)
    }

    async fn confirm_bot_updates(
        &self,
        bot: &str,
        holder: &str,
        next_offset: i64,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let n = db_run!(self, pool => {
            sqlx::query(
                "UPDATE telegram_polling SET next_offset = CASE WHEN next_offset < $1 THEN $1 ELSE next_offset END, \
                 held_until = $2 WHERE bot = $3 AND holder = $4",
            )
            .bind(next_offset)
            .bind(time_text(later(now, lease)))
            .bind(bot)
            .bind(holder)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    async fn release_bot_polling(&self, bot: &str, holder: &str) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("UPDATE telegram_polling SET held_until = $1 WHERE bot = $2 AND holder = $3")
                .bind(time_text(DateTime::UNIX_EPOCH))
                .bind(bot)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
