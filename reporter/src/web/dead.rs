//! Dead-letter lists (`<queue>:dead`, JSON [`DeadLetter`] entries) as the
//! control page reads and changes them.
//!
//! An entry is named by the blake3 of its exact bytes, so a form names the
//! entry it showed, whatever moved in the list since. Requeueing and
//! dropping are the queue's ([`ubackup_common::queue::dead`]): they match
//! the exact element, so nothing is lost or pushed twice, even when two
//! operators act at once.

use ubackup_common::queue::dead as dead_lists;
use ubackup_common::DeadLetter;
use ubackup_common::RedisConn;

/// One element of a dead-letter list.
#[derive(Debug, Clone)]
pub struct DeadEntry {
    /// The element, byte for byte (what LREM must match).
    pub raw: Vec<u8>,
    /// blake3 hex of `raw`: the entry's name in forms.
    pub id: String,
    /// None when the element is not a `DeadLetter` (e.g. pushed by hand).
    pub letter: Option<DeadLetter>,
}

impl DeadEntry {
    fn new(raw: Vec<u8>) -> Self {
        let letter = serde_json::from_slice::<DeadLetter>(&raw).ok();
        DeadEntry {
            id: blake3::hash(&raw).to_hex().to_string(),
            raw,
            letter,
        }
    }

    /// The element as text (lossy), for display.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Why this entry cannot be put back on its queue, if it cannot.
    pub fn requeue_refusal(&self) -> Option<&'static str> {
        match &self.letter {
            None => Some("not a dead-letter entry (no payload to put back); drop it instead"),
            // the queue took bytes that were not UTF-8; the entry holds a
            // copy with replacement characters, a different message
            Some(l) if l.reason.starts_with("not UTF-8 text") => {
                Some("its payload is a lossy copy of a message that was not UTF-8; requeueing it would send a different message")
            }
            Some(_) => None,
        }
    }
}

/// The length of `list` and its first `count` entries (newest first).
pub(crate) async fn page(
    conn: &mut RedisConn,
    list: &str,
    count: usize,
) -> redis::RedisResult<(u64, Vec<DeadEntry>)> {
    let (len, items) = dead_lists::page(conn, list, count).await?;
    Ok((len, items.into_iter().map(DeadEntry::new).collect()))
}

/// Every entry of `list`, newest first.
pub async fn all(conn: &mut RedisConn, list: &str) -> redis::RedisResult<Vec<DeadEntry>> {
    Ok(dead_lists::all(conn, list)
        .await?
        .into_iter()
        .map(DeadEntry::new)
        .collect())
}

/// The entry named `id`, if it is still in `list`.
pub async fn find(
    conn: &mut RedisConn,
    list: &str,
    id: &str,
) -> redis::RedisResult<Option<DeadEntry>> {
    Ok(all(conn, list).await?.into_iter().find(|e| e.id == id))
}

/// Moves `entry` from `list` back onto `queue`. False: it was no longer
/// there (another request moved or dropped it); nothing was pushed.
pub async fn requeue(
    conn: &mut RedisConn,
    list: &str,
    queue: &str,
    entry: &DeadEntry,
) -> redis::RedisResult<bool> {
    let letter = entry
        .letter
        .as_ref()
        .expect("callers check requeue_refusal first");
    dead_lists::requeue(conn, list, queue, &entry.raw, &letter.payload).await
}

/// Removes `entry` from `list`. False: it was no longer there.
pub async fn drop(conn: &mut RedisConn, list: &str, entry: &DeadEntry) -> redis::RedisResult<bool> {
    dead_lists::drop(conn, list, &entry.raw).await
}
