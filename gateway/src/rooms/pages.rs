//! History pages, for the `history` frame and `GET /v1/rooms/{room}/messages`.
//! A room's seqs are gap-free (1..=head), so which seqs a page holds is
//! arithmetic on the head (`window`); the page is then read where it is
//! whole: Redis's recent set (the newest window), else the streaming
//! replica once it has replayed the page, else the primary. Postgres reads
//! are range scans of the `messages` primary key (room_id, seq).

use std::time::Instant;

use chat_cache::Redis;
use chat_proto::v1::{HistoryPage, Message};
use chat_protocol::{RoomId, Seq, UserId};
use chat_store::Store;

use crate::{error::GatewayError, metrics};

/// Messages per page when the asker names no limit.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page anyone may ask for.
pub const MAX_LIMIT: u32 = 200;

/// Where a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The room's newest messages.
    Newest,
    /// Messages with seqs below this one.
    Before(u64),
    /// Messages with seqs above this one (0: from the first).
    After(u64),
    /// Messages around this seq, it included.
    Around(u64),
}

/// A checked request for a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageQuery {
    pub cursor: Cursor,
    pub limit: u32,
}

impl PageQuery {
    /// Checks what the asker sent: at most one cursor, none negative
    /// (`before` and `around` at least 1: seqs start at 1), a limit of
    /// 1..=`MAX_LIMIT`.
    pub fn parse(
        before: Option<i64>,
        after: Option<i64>,
        around: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Self, GatewayError> {
        let cursor = match (before, after, around) {
            (None, None, None) => Cursor::Newest,
            (Some(b), None, None) => Cursor::Before(at_least("before", b, 1)?),
            (None, Some(a), None) => Cursor::After(at_least("after", a, 0)?),
            (None, None, Some(s)) => Cursor::Around(at_least("around", s, 1)?),
            _ => {
                return Err(GatewayError::InvalidArgument(
                    "give at most one of before, after and around".into(),
                ))
            }
        };
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
            Some(n) => {
                return Err(GatewayError::InvalidArgument(format!(
                    "limit is {n}; it must be 1 to {MAX_LIMIT}"
                )))
            }
        };
        Ok(Self { cursor, limit })
    }
}

fn at_least(name: &str, value: i64, min: i64) -> Result<u64, GatewayError> {
    if value < min {
        return Err(GatewayError::InvalidArgument(format!(
            "{name} is {value}; it must be at least {min}"
        )));
    }
    Ok(value as u64)
}

/// The seqs `lo..=hi` of a page; empty when `lo > hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub lo: u64,
    pub hi: u64,
}

impl Window {
    /// The page's seqs for a room whose newest seq is `head`.
    pub fn new(head: u64, query: PageQuery) -> Self {
        let n = u64::from(query.limit);
        match query.cursor {
            Cursor::Newest => Self::ending_at(head, n),
            Cursor::Before(b) => Self::ending_at(head.min(b - 1), n),
            Cursor::After(a) if a >= head => Self { lo: a + 1, hi: a },
            Cursor::After(a) => Self {
                lo: a + 1,
                hi: head.min(a + n),
            },
            Cursor::Around(s) => {
                Self::ending_at(head.min(s.saturating_sub(n / 2).max(1) + n - 1), n)
            }
        }
    }

    /// The (up to) `n` seqs ending at `hi`.
    fn ending_at(hi: u64, n: u64) -> Self {
        Self {
            lo: (hi + 1).saturating_sub(n).max(1),
            hi,
        }
    }

    pub fn len(self) -> usize {
        (self.hi + 1).saturating_sub(self.lo) as usize
    }

    pub fn is_empty(self) -> bool {
        self.lo > self.hi
    }

    /// Whether `messages` are exactly this window's, in order.
    fn holds(self, messages: &[Message]) -> bool {
        messages.len() == self.len()
            && messages.first().is_none_or(|m| m.seq == self.lo)
            && messages.last().is_none_or(|m| m.seq == self.hi)
    }
}

/// One page as read, with where it came from.
pub struct Page {
    pub room: RoomId,
    pub messages: Vec<Message>,
    pub window: Window,
    pub head: u64,
    /// One of `metrics::PAGE_SOURCES`.
    pub source: &'static str,
}

impl Page {
    /// Older messages exist (below the page).
    pub fn has_before(&self) -> bool {
        self.head.min(self.window.lo - 1) >= 1
    }

    /// Newer messages exist (above the page).
    pub fn has_after(&self) -> bool {
        self.window.hi < self.head
    }

    pub fn into_proto(self) -> HistoryPage {
        HistoryPage {
            room: self.room.to_string(),
            has_before: self.has_before(),
            has_after: self.has_after(),
            before: self.window.lo,
            after: self.window.hi,
            head_seq: self.head,
            messages: self.messages,
        }
    }
}

/// Reads pages: Redis, the replica (if configured), the primary.
#[derive(Clone)]
pub struct Pages {
    primary: Store,
    replica: Option<Store>,
    redis: Redis,
}

impl Pages {
    pub fn new(primary: &Store, replica: Option<Store>, redis: &Redis) -> Self {
        Self {
            primary: primary.clone(),
            replica,
            redis: redis.clone(),
        }
    }

    /// The page `query` asks for, with which reactions are the asker's
    /// (a user; the service has none); `None` if the room does not exist.
    pub async fn read(
        &self,
        room: &RoomId,
        query: PageQuery,
        asker: Option<&UserId>,
    ) -> Result<Option<Page>, GatewayError> {
        let started = Instant::now();
        let Some((head, head_source)) = self.head(room).await? else {
            return Ok(None);
        };
        let window = Window::new(head, query);
        let (mut messages, source) = if window.is_empty() {
            (Vec::new(), head_source)
        } else {
            self.messages(room, window).await?
        };
        if let Some(user) = asker {
            self.mark_mine(room, user, window, &mut messages).await?;
        }
        metrics::history_page(source, started.elapsed());
        Ok(Some(Page {
            room: room.clone(),
            messages,
            window,
            head,
            source,
        }))
    }

    /// The room's newest seq: Redis's newest cached one (never ahead of
    /// Postgres, at most a moment behind it), else the primary's.
    async fn head(&self, room: &RoomId) -> Result<Option<(u64, &'static str)>, GatewayError> {
        let mut redis = self.redis.clone();
        let rooms = std::slice::from_ref(room);
        if let Ok(hints) = chat_cache::head_hints(&mut redis, rooms).await {
            if let Some(Some(head)) = hints.first() {
                return Ok(Some((head.get(), "redis")));
            }
        }
        let head = self.primary.room_head(room).await?;
        Ok(head.map(|h| (h.get(), "primary")))
    }

    /// Marks the asker's own reactions. Every source holds the counts; who
    /// reacted is only in Postgres, asked only for a page with reactions.
    async fn mark_mine(
        &self,
        room: &RoomId,
        user: &UserId,
        window: Window,
        messages: &mut [Message],
    ) -> Result<(), GatewayError> {
        if messages.iter().all(|m| m.reactions.is_empty()) {
            return Ok(());
        }
        let (lo, hi) = (Seq::new(window.lo), Seq::new(window.hi));
        for (seq, emoji) in self.primary.my_reactions(room, user, lo, hi).await? {
            let Ok(at) = messages.binary_search_by_key(&seq.get(), |m| m.seq) else {
                continue;
            };
            if let Some(r) = messages[at].reactions.iter_mut().find(|r| r.emoji == emoji) {
                r.mine = true;
            }
        }
        Ok(())
    }

    /// The window's messages from the first source that holds all of them.
    async fn messages(
        &self,
        room: &RoomId,
        window: Window,
    ) -> Result<(Vec<Message>, &'static str), GatewayError> {
        let (from, n) = (Seq::new(window.lo), window.len());
        let (after, up_to) = (Seq::new(window.lo - 1), Seq::new(window.hi));
        let mut redis = self.redis.clone();
        if let Ok(cached) = chat_cache::between(&mut redis, room, after, up_to, n).await {
            if window.holds(&cached) {
                return Ok((cached, "redis"));
            }
        }
        if let Some(replica) = &self.replica {
            match replica.history_page(room, from, n).await {
                // Short of the window: the replica has not replayed it all yet.
                Ok(page) if window.holds(&page) => return Ok((page, "replica")),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "replica read failed; reading the primary"),
            }
        }
        let page = self.primary.history_page(room, from, n).await?;
        Ok((page, "primary"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(head: u64, cursor: Cursor, limit: u32) -> (u64, u64) {
        let w = Window::new(head, PageQuery { cursor, limit });
        (w.lo, w.hi)
    }

    #[test]
    fn windows_cover_the_asked_seqs_within_one_to_head() {
        assert_eq!(window(250, Cursor::Newest, 50), (201, 250));
        assert_eq!(window(30, Cursor::Newest, 50), (1, 30));
        assert_eq!(window(0, Cursor::Newest, 50), (1, 0));
        assert_eq!(window(250, Cursor::Before(201), 50), (151, 200));
        assert_eq!(window(250, Cursor::Before(20), 50), (1, 19));
        assert_eq!(window(250, Cursor::Before(1), 50), (1, 0));
        assert_eq!(window(250, Cursor::Before(900), 50), (201, 250));
        assert_eq!(window(250, Cursor::After(0), 50), (1, 50));
        assert_eq!(window(250, Cursor::After(230), 50), (231, 250));
        assert_eq!(window(250, Cursor::After(250), 50), (251, 250));
        assert_eq!(window(250, Cursor::After(900), 50), (901, 900));
        assert_eq!(window(250, Cursor::Around(100), 50), (75, 124));
        assert_eq!(window(250, Cursor::Around(3), 50), (1, 50));
        assert_eq!(window(250, Cursor::Around(245), 50), (201, 250));
        assert_eq!(window(250, Cursor::Around(999), 50), (201, 250));
        assert_eq!(window(250, Cursor::Around(100), 1), (100, 100));
    }

    #[test]
    fn has_before_and_after_say_what_lies_outside_the_window() {
        let page = |head, cursor| {
            let window = Window::new(head, PageQuery { cursor, limit: 50 });
            let page = Page {
                room: RoomId::parse("r").unwrap(),
                messages: Vec::new(),
                window,
                head,
                source: "primary",
            };
            (page.has_before(), page.has_after())
        };
        assert_eq!(page(250, Cursor::Newest), (true, false));
        assert_eq!(page(250, Cursor::Before(51)), (false, true));
        assert_eq!(page(250, Cursor::After(250)), (true, false));
        assert_eq!(page(0, Cursor::Newest), (false, false));
        assert_eq!(page(0, Cursor::After(5)), (false, false));
        assert_eq!(page(250, Cursor::Before(1)), (false, true));
    }

    #[test]
    fn bad_queries_are_invalid_arguments() {
        let bad = [
            (None, None, None, Some(0)),
            (None, None, None, Some(201)),
            (None, None, None, Some(-5)),
            (Some(-1), None, None, None),
            (Some(0), None, None, None),
            (None, Some(-1), None, None),
            (None, None, Some(0), None),
            (Some(5), Some(1), None, None),
            (Some(5), None, Some(1), None),
            (None, Some(5), Some(1), None),
        ];
        for (before, after, around, limit) in bad {
            let refused = PageQuery::parse(before, after, around, limit);
            assert!(
                matches!(refused, Err(GatewayError::InvalidArgument(_))),
                "{before:?} {after:?} {around:?} {limit:?}"
            );
        }
        let ok = PageQuery::parse(None, Some(0), None, Some(200)).unwrap();
        assert_eq!(
            ok,
            PageQuery {
                cursor: Cursor::After(0),
                limit: 200
            }
        );
        let default = PageQuery::parse(None, None, None, None).unwrap();
        assert_eq!(default.limit, DEFAULT_LIMIT);
    }
}
