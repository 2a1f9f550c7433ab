//! The node's look-ahead over a list, for batching when many hosts queue
//! at once.
//!
//! The hourly burst interleaves thousands of hosts: the list holds one
//! message of each host, then the next one of each, and so on, so the
//! messages of one host are a whole round of hosts apart. The short look
//! at the pop end a batch starts with (`batch::claim_more`, 16 items) then
//! never finds a second message of the same host, every message pays its
//! own rsync connection, and the burst drained at about 8× the time of one
//! rsync per host (docs/performance.md). Reading deep into the list for
//! every message would cost Redis a large `LRANGE` per message.
//!
//! So the node reads a deep window of a list once ([`DEPTH`] items, one
//! `LRANGE`), indexes it by source (host and module, what one rsync call
//! can pull), and every worker of the node draws the other messages of its
//! first message's source from that index until the
//! window is [`FRESH`] old. Nothing moves in Redis until the batch claims
//! its picks with the usual claim script, which takes only what is still
//! in the list and nothing while a list of higher priority has work; an
//! item another node took since the read is simply not claimed. Items
//! pushed after the read are found by the next read. The first message of
//! every batch is still the oldest of its list (the pop), so a host never
//! waits behind another host's backlog for more than one batch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use ubackup_common::WorkQueue;

/// Items read from a list's pop end at once: the seed's whole hourly burst,
/// about 9 MB of messages, once a second at most. A burst of 1,000 hosts ×
/// 20 instances puts a host's messages 1,000 apart: a window of 2,048 held
/// two or three of each host, and that burst drained at 5.4× the per-host
/// floor (docs/performance.md); this one holds all of them.
pub(super) const DEPTH: usize = 20_000;
/// How long a window is drawn from before the list is read again.
pub(super) const FRESH: Duration = Duration::from_secs(1);

/// One list's window: raw items by [`source_key`], each source's in list
/// order, oldest last (as `LRANGE` returns them).
struct Window {
    read: Instant,
    by_source: HashMap<String, Vec<Vec<u8>>>,
}

/// What one rsync call can pull from: the host (`game_server_ip`) and the
/// module (`rsync_model` up to its first `/`), as the intake reads them.
/// The port comes from the node's config unless a message names one, and
/// the batch's own intake checks it.
pub(super) fn source_key(game_server_ip: &str, rsync_model: &str) -> String {
    let module = rsync_model.split('/').next().unwrap_or(rsync_model);
    format!("{}\0{module}", game_server_ip.trim())
}

/// The windows of this node's lists; shared by its workers.
#[derive(Default)]
pub(crate) struct LookAhead {
    lists: Mutex<HashMap<String, Window>>,
}

/// Only the fields a window is indexed by; the rest of a message is
/// checked by the batch's own intake of every item it picks.
#[derive(serde::Deserialize)]
struct SourceOnly {
    game_server_ip: String,
    rsync_model: String,
}

impl LookAhead {
    /// The raw items of `source` ([`source_key`]) in `queue`'s window (oldest last), read
    /// afresh when the window is missing or old, and when that window was
    /// read; they leave the window (hand back the ones not used with
    /// [`LookAhead::put_back`]). Empty on a Redis error, which only means
    /// "not batched".
    pub async fn draw(&self, wq: &WorkQueue, queue: &str, source: &str) -> (Instant, Vec<Vec<u8>>) {
        let mut lists = self.lists.lock().await;
        let stale = lists.get(queue).is_none_or(|w| w.read.elapsed() >= FRESH);
        if stale {
            // held across the read: the node's other workers wait for this
            // one window instead of each reading their own
            match wq.peek(queue, 0, DEPTH).await {
                Ok(raw) => {
                    lists.insert(queue.to_string(), index(raw));
                }
                Err(e) => {
                    tracing::debug!("cannot read ahead in {queue}: {e}");
                    lists.remove(queue);
                    return (Instant::now(), Vec::new());
                }
            }
        }
        match lists.get_mut(queue) {
            Some(w) => (w.read, w.by_source.remove(source).unwrap_or_default()),
            None => (Instant::now(), Vec::new()),
        }
    }

    /// Returns drawn items a batch did not pick (over its size, another
    /// port) to the window they came from (`read`, as
    /// [`LookAhead::draw`] said), if that window is still the one in use.
    pub async fn put_back(&self, queue: &str, source: &str, items: Vec<Vec<u8>>, read: Instant) {
        if items.is_empty() {
            return;
        }
        let mut lists = self.lists.lock().await;
        if let Some(w) = lists.get_mut(queue).filter(|w| w.read == read) {
            w.by_source.insert(source.to_string(), items);
        }
    }
}

/// Indexes an `LRANGE` by source; an item that does not parse is left out
/// (it is taken, and dealt with, as the oldest of its list in its turn).
fn index(raw: Vec<Vec<u8>>) -> Window {
    let mut by_source: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for item in raw {
        if let Ok(m) = serde_json::from_slice::<SourceOnly>(&item) {
            by_source
                .entry(source_key(&m.game_server_ip, &m.rsync_model))
                .or_default()
                .push(item);
        }
    }
    Window {
        read: Instant::now(),
        by_source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_groups_by_source_in_list_order_and_skips_what_does_not_parse() {
        let raw: Vec<Vec<u8>> = [
            r#"{"game_server_ip":"10.0.0.1","rsync_model":"backup/db_3","instance":3}"#,
            r#"{"game_server_ip":"10.0.0.2","rsync_model":"backup/db_1","instance":1}"#,
            "not json",
            r#"{"game_server_ip":" 10.0.0.1 ","rsync_model":"backup/db_2","instance":2}"#,
            r#"{"game_server_ip":"10.0.0.1","rsync_model":"other","instance":4}"#,
            r#"{"instance":9}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let w = index(raw);
        let one: Vec<String> = w.by_source[&source_key("10.0.0.1", "backup/x")]
            .iter()
            .map(|b| String::from_utf8(b.clone()).unwrap())
            .collect();
        assert_eq!(one.len(), 2);
        assert!(one[0].contains("\"instance\":3") && one[1].contains("\"instance\":2"));
        assert_eq!(w.by_source[&source_key("10.0.0.2", "backup")].len(), 1);
        assert_eq!(w.by_source[&source_key("10.0.0.1", "other/y")].len(), 1);
        assert_eq!(w.by_source.len(), 3);
    }
}
