//! What the stand-in holds: indices (real-time and searchable documents,
//! mapping), composable templates, injected faults, credentials and the
//! request log. One `StandIn` sits behind a mutex; every request runs
//! under that lock from start to log entry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::EsErr;
use super::mapping::Mapping;

/// One request as the stand-in saw it (the log lives here, with
/// everything else a request changes, so that `http` can write it without
/// reaching back into the public handle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Bulk requests: number of operations parsed (0 otherwise).
    pub bulk_items: usize,
    /// The request body, for bulk/mapping assertions.
    pub body: String,
}

#[derive(Default)]
pub(super) struct StandIn {
    pub(super) indices: BTreeMap<String, Index>,
    pub(super) templates: BTreeMap<String, Template>,
    pub(super) item_faults: Vec<ItemFault>,
    pub(super) request_fault: Option<RequestFault>,
    pub(super) delay: Duration,
    pub(super) auth: Option<String>,
    pub(super) log: Vec<LoggedRequest>,
    pub(super) items_received: u64,
    pub(super) next_uuid: u64,
}

pub(super) struct ItemFault {
    pub(super) matcher: ItemMatch,
    pub(super) status: u16,
    pub(super) remaining: u32,
}

pub(super) enum ItemMatch {
    Id(String),
    Nth(u64),
}

pub(super) struct RequestFault {
    pub(super) status: u16,
    pub(super) remaining: Option<u32>,
    pub(super) until: Option<Instant>,
}

pub(super) struct Template {
    pub(super) patterns: Vec<String>,
    pub(super) priority: i64,
    pub(super) mappings: Option<Value>,
    pub(super) body: Value,
}

pub(super) struct Index {
    pub(super) uuid: String,
    pub(super) mapping: Mapping,
    /// Real-time view (GET, mget, bulk).
    pub(super) docs: BTreeMap<String, Doc>,
    /// What searches see: the docs as of the last refresh.
    pub(super) searchable: BTreeMap<String, Doc>,
    pub(super) dirty_since: Option<Instant>,
    pub(super) seq_no: i64,
    pub(super) created_ms: i64,
}

#[derive(Clone)]
pub(super) struct Doc {
    pub(super) source: Value,
    pub(super) version: i64,
    pub(super) seq_no: i64,
}

impl Index {
    pub(super) fn refresh(&mut self) {
        self.searchable = self.docs.clone();
        self.dirty_since = None;
    }

    /// ES refreshes every second; do it lazily when a search looks.
    pub(super) fn auto_refresh(&mut self) {
        if self
            .dirty_since
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.refresh();
        }
    }

    pub(super) fn touch(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }
}

impl StandIn {
    fn uuid(&mut self) -> String {
        self.next_uuid += 1;
        format!("sTaNdInUuId{:011}", self.next_uuid)
    }

    /// Creates `name` from the matching template merged with `explicit`.
    pub(super) fn create_index(
        &mut self,
        name: &str,
        explicit: Option<&Value>,
    ) -> Result<(), EsErr> {
        let mut base = Mapping::default();
        if let Some(t) = self.matching_template(name) {
            if let Some(m) = &t.mappings {
                base = Mapping::parse(m)?;
            }
        }
        if let Some(m) = explicit {
            let add = Mapping::parse(m)?;
            base.merge(add);
        }
        let uuid = self.uuid();
        self.indices.insert(
            name.to_string(),
            Index {
                uuid,
                mapping: base,
                docs: BTreeMap::new(),
                searchable: BTreeMap::new(),
                dirty_since: None,
                seq_no: -1,
                created_ms: now_ms(),
            },
        );
        Ok(())
    }

    fn matching_template(&self, index: &str) -> Option<&Template> {
        self.templates
            .values()
            .filter(|t| t.patterns.iter().any(|p| glob(p, index)))
            .max_by_key(|t| t.priority)
    }

    /// The status a whole-request fault answers this request with, if one
    /// is active (counting it down); a spent or expired fault is dropped.
    pub(super) fn take_request_fault(&mut self) -> Option<u16> {
        if let Some(f) = &mut self.request_fault {
            let active = match (f.remaining, f.until) {
                (Some(0), _) => false,
                (_, Some(t)) if Instant::now() >= t => false,
                _ => true,
            };
            if active {
                if let Some(n) = &mut f.remaining {
                    *n -= 1;
                }
                return Some(f.status);
            }
            self.request_fault = None;
        }
        None
    }

    /// The status an injected fault gives bulk item number `n` with `_id ==
    /// id`, if one matches (counting it down; `u32::MAX` never runs out).
    pub(super) fn take_item_fault(&mut self, id: &str, n: u64) -> Option<u16> {
        for f in self.item_faults.iter_mut().filter(|f| f.remaining > 0) {
            let hit = match &f.matcher {
                ItemMatch::Id(x) => *x == id,
                ItemMatch::Nth(k) => *k == n,
            };
            if hit {
                if f.remaining != u32::MAX {
                    f.remaining -= 1;
                }
                return Some(f.status);
            }
        }
        None
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `*` wildcards only, as index patterns use them.
pub(super) fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(glob("uuzu*", "uuzubackup"));
        assert!(glob("uuzubackup", "uuzubackup"));
        assert!(!glob("uuzubackup", "uuzubackup-instances"));
        assert!(glob("*-instances", "uuzubackup-instances"));
    }
}
