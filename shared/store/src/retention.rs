//! Retention: which rooms hold entries past their limits, and deleting
//! them from the oldest, a batch per short transaction.

use chat_protocol::RoomId;

use crate::command::Limits;
use crate::error::StoreError;
use crate::pool::Store;
use crate::sql;

/// A room with entries past its limits, as it stood when found.
#[derive(Clone, Debug)]
pub struct Due {
    pub room: RoomId,
    /// Every seq up to here is deleted already.
    pub expired_to: i64,
    pub last_seq: i64,
    pub limits: Limits,
}

impl Due {
    /// How far the entries in `oldest` (seq and time in ms, from the
    /// oldest kept) may go: the last of the run that is past a limit and
    /// older than `grace_before_ms`. `None` if not even the first may.
    pub fn cut(&self, oldest: &[(i64, i64)], now_ms: i64, grace_before_ms: i64) -> Option<i64> {
        let count_cut = self.limits.count.map(|keep| self.last_seq - keep);
        let age_cut = self.limits.max_age_secs.map(|s| now_ms - s * 1000);
        oldest
            .iter()
            .take_while(|&&(seq, at)| {
                let past = count_cut.is_some_and(|c| seq <= c) || age_cut.is_some_and(|c| at < c);
                past && at < grace_before_ms
            })
            .last()
            .map(|&(seq, _)| seq)
    }
}

impl Store {
    /// Up to `limit` rooms with entries past their limits (a room's own,
    /// else `defaults`).
    pub async fn retention_due(
        &self,
        defaults: Limits,
        limit: i64,
    ) -> Result<Vec<Due>, StoreError> {
        let client = self.pool.get().await?;
        let statement = match defaults == Limits::default() {
            true => sql::RETENTION_DUE_OWN,
            false => sql::RETENTION_DUE,
        };
        let stmt = client.prepare_cached(statement).await?;
        let rows = client
            .query(&stmt, &[&defaults.count, &defaults.max_age_secs, &limit])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(Due {
                    room: RoomId::parse(row.get::<_, String>(0)).ok()?,
                    expired_to: row.get(1),
                    last_seq: row.get(2),
                    limits: Limits {
                        count: row.get(3),
                        max_age_secs: row.get(4),
                    },
                })
            })
            .collect())
    }

    /// Deletes the room's next batch of at most `batch` expired entries,
    /// all of them older than `grace_before_ms`, by its limits as they
    /// stand now (`due` is brought up to date): the rows deleted, or `None`
    /// if nothing may go now (or another worker has the room).
    pub async fn expire_batch(
        &self,
        due: &mut Due,
        defaults: Limits,
        batch: i64,
        grace_before_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let mut client = self.pool.get().await?;
        let room = due.room.as_str();
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&room, &defaults.count, &defaults.max_age_secs];
        let Some(now) = client.query_opt(sql::ROOM_RETENTION, &args).await? else {
            return Ok(None);
        };
        due.expired_to = now.get(0);
        due.last_seq = now.get(1);
        due.limits = Limits {
            count: now.get(2),
            max_age_secs: now.get(3),
        };
        let oldest: Vec<(i64, i64)> = client
            .query(sql::RETENTION_OLDEST, &[&room, &due.expired_to, &batch])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let Some(cut) = due.cut(&oldest, chat_protocol::now_ms(), grace_before_ms) else {
            return Ok(None);
        };
        let tx = client.transaction().await?;
        if !tx
            .query_one(sql::RETENTION_LOCK, &[&room])
            .await?
            .get::<_, bool>(0)
        {
            return Ok(None);
        }
        tx.batch_execute(sql::RETENTION_ASYNC_COMMIT).await?;
        let from = &due.expired_to;
        let deleted = tx
            .execute(sql::EXPIRE_MESSAGES, &[&room, from, &cut])
            .await?;
        tx.execute(sql::EXPIRE_REACTIONS, &[&room, from, &cut])
            .await?;
        tx.execute(sql::SET_EXPIRED_TO, &[&room, &cut]).await?;
        tx.commit().await?;
        due.expired_to = cut;
        Ok(Some(deleted))
    }

    /// Deletes up to `batch` scheduled messages done with a week ago; how many.
    pub async fn purge_scheduled(&self, batch: i64) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(sql::PURGE_SCHEDULED, &[&batch]).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(count: Option<i64>, max_age_secs: Option<i64>) -> Due {
        Due {
            room: RoomId::parse("r").unwrap(),
            expired_to: 0,
            last_seq: 10,
            limits: Limits {
                count,
                max_age_secs,
            },
        }
    }

    const NOW: i64 = 1_000_000;

    #[test]
    fn a_count_cuts_all_but_the_newest() {
        let oldest: Vec<(i64, i64)> = (1..=10).map(|s| (s, 0)).collect();
        assert_eq!(due(Some(4), None).cut(&oldest, NOW, NOW), Some(6));
        assert_eq!(due(Some(10), None).cut(&oldest, NOW, NOW), None);
    }

    #[test]
    fn an_age_cuts_the_run_of_old_entries_from_the_oldest() {
        let oldest = [(1, 0), (2, 100), (3, NOW - 5_000), (4, 50)];
        assert_eq!(due(None, Some(10)).cut(&oldest, NOW, NOW), Some(2));
    }

    #[test]
    fn nothing_within_the_grace_is_cut() {
        let oldest = [(1, 0), (2, 500), (3, 900)];
        assert_eq!(due(Some(1), None).cut(&oldest, NOW, 600), Some(2));
        assert_eq!(due(Some(1), None).cut(&oldest, NOW, 0), None);
    }
}
