//! Keys that name the cluster's Redis keys and lists: `key_prefix` (the
//! prefix of every ubackup key) and `message_queue` (the results list).

use super::SectionReader;
use crate::keys::{DEFAULT_MESSAGE_QUEUE, DEFAULT_PREFIX};

pub const KEY_PREFIX: &str = "key_prefix";
pub const MESSAGE_QUEUE: &str = "message_queue";

/// `key_prefix`, default [`DEFAULT_PREFIX`].
pub fn key_prefix(r: &SectionReader) -> String {
    r.str_or(KEY_PREFIX, DEFAULT_PREFIX)
}

/// `message_queue`, default [`DEFAULT_MESSAGE_QUEUE`] (the server's).
pub fn message_queue(r: &SectionReader) -> String {
    r.str_or(MESSAGE_QUEUE, DEFAULT_MESSAGE_QUEUE)
}
