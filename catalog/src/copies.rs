//! Copies of a backup on other nodes (`copies` > 1 in the nodes' config).
//!
//! The first copy is the node that pulled the file: the result itself says
//! where it is (`node_id`/`back_server_ip`, `file_path`, `filename`), as it
//! always did, so original tools and Kibana queries see nothing new. Every
//! further copy is a [`CopyRecord`] the catalog keeps next to the record
//! (SQLite: the `copies` table; Elasticsearch: the `copies` object of the
//! document, one field per node). A copy record of the first copy's own
//! node overrides what the result implies (e.g. `lost` after the node was
//! forgotten, `corrupt` after verify), so the result is never rewritten.

use serde::{Deserialize, Serialize};

use crate::record::CatalogRecord;

/// `state` of a copy.
pub mod state {
    /// On disk and verified (at landing, or by the last `verify`).
    pub const OK: &str = "ok";
    /// `verify` found no file at the path.
    pub const MISSING: &str = "missing";
    /// `verify` found the wrong size or checksum.
    pub const CORRUPT: &str = "corrupt";
    /// Its node was forgotten (`ubackup-reporter forget-node`) or lost.
    pub const LOST: &str = "lost";
    /// Pruned from its node.
    pub const DELETED: &str = "deleted";
}

/// Where one copy of a backup is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRecord {
    /// `node_id` of the node holding it.
    pub node: String,
    /// That node's address (its `myip`).
    pub ip: String,
    /// The node's `zone` (empty when not known: first copies of results).
    #[serde(default)]
    pub zone: String,
    /// The file on that node: `server_root_path/TYPE/A.B.C/D/name`.
    pub file_path: String,
    /// One of [`state`].
    pub state: String,
    /// Unix ms the copy was landed and recorded.
    pub recorded_at: i64,
    /// Unix ms of its last verification, when there was one after landing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<i64>,
}

impl CopyRecord {
    /// On disk and verified: restore may use it, repair may copy from it.
    pub fn is_good(&self) -> bool {
        self.state == state::OK
    }
}

impl CatalogRecord {
    /// The first copy as the result describes it, `None` for a result that
    /// stored no file.
    pub fn first_copy(&self) -> Option<CopyRecord> {
        let r = &self.result;
        if !self.is_pulled() {
            return None;
        }
        let dir = r.file_path.as_deref()?;
        let name = r.filename.as_deref()?;
        let state = if self.meta.deleted_at.is_some() {
            state::DELETED
        } else {
            match self.meta.verify_state.as_deref() {
                Some("missing") => state::MISSING,
                Some("corrupt") => state::CORRUPT,
                _ => state::OK,
            }
        };
        Some(CopyRecord {
            node: self.node().to_string(),
            ip: r.back_server_ip.trim().to_string(),
            zone: String::new(),
            file_path: format!(
                "{}/{}",
                dir.trim_end_matches('/'),
                name.rsplit('/').next().unwrap_or(name)
            ),
            state: state.to_string(),
            recorded_at: r.rsync_time,
            verified_at: self.meta.verified_at,
        })
    }

    /// Every copy, the first one first: the first copy unless a copy record
    /// of its node overrides it, then the others in node order.
    pub fn copies(&self) -> Vec<CopyRecord> {
        let mut out = Vec::with_capacity(1 + self.meta.copies.len());
        if let Some(first) = self.first_copy() {
            match self.meta.copies.iter().find(|c| c.node == first.node) {
                Some(over) => out.push(over.clone()),
                None => out.push(first),
            }
        }
        let first_node = out.first().map(|c| c.node.clone());
        let mut rest: Vec<CopyRecord> = self
            .meta
            .copies
            .iter()
            .filter(|c| Some(&c.node) != first_node.as_ref())
            .cloned()
            .collect();
        rest.sort_by(|a, b| a.node.cmp(&b.node));
        out.extend(rest);
        out
    }

    /// The copies restore may use and repair may copy from.
    pub fn good_copies(&self) -> Vec<CopyRecord> {
        self.copies()
            .into_iter()
            .filter(CopyRecord::is_good)
            .collect()
    }

    /// Whether the node pulled a file for this result (successful, not
    /// illegal for a reason other than a verification of its first copy).
    fn is_pulled(&self) -> bool {
        let r = &self.result;
        r.succeed == 1
            && r.filename.as_deref().is_some_and(|f| !f.is_empty())
            && r.file_path.as_deref().is_some_and(|p| !p.is_empty())
            && r.illegal
                .as_deref()
                .is_none_or(|i| i.starts_with(crate::retention::VERIFY_ILLEGAL_PREFIX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ubackup_common::ResultRecord;

    fn record() -> CatalogRecord {
        let r: ResultRecord = serde_json::from_value(serde_json::json!({
            "interval": 3600, "server_id": 1, "game_id": 2, "op_id": 3,
            "game_server_ip": "10.0.0.5", "instance": 3306, "back_server_ip": "10.20.0.7",
            "file_path": "/backup/mysql/10.0.0/5/", "filename": "full_1.xb",
            "create_time": 1000, "rsync_time": 2000, "size": 10, "last_all_filename": "None",
            "last_all_time": 0, "succeed": 1, "log": "ok", "type": "mysql", "node_id": "n1"
        }))
        .unwrap();
        CatalogRecord::new(r, "g")
    }

    fn copy(node: &str, state: &str) -> CopyRecord {
        CopyRecord {
            node: node.into(),
            ip: "10.20.0.8".into(),
            zone: "b".into(),
            file_path: "/store/mysql/10.0.0/5/full_1.xb".into(),
            state: state.into(),
            recorded_at: 3000,
            verified_at: None,
        }
    }

    #[test]
    fn the_first_copy_comes_from_the_result_and_a_copy_row_overrides_it() {
        let mut r = record();
        let c = r.copies();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].node, "n1");
        assert_eq!(c[0].file_path, "/backup/mysql/10.0.0/5/full_1.xb");
        assert!(c[0].is_good());

        r.meta.copies = vec![
            copy("n3", state::OK),
            copy("n1", state::LOST),
            copy("n2", state::OK),
        ];
        let c = r.copies();
        let nodes: Vec<&str> = c.iter().map(|c| c.node.as_str()).collect();
        assert_eq!(nodes, ["n1", "n2", "n3"]);
        assert_eq!(c[0].state, state::LOST);
        let good: Vec<String> = r.good_copies().into_iter().map(|c| c.node).collect();
        assert_eq!(good, ["n2", "n3"]);
    }

    #[test]
    fn failed_and_pruned_results_have_no_good_first_copy() {
        let mut r = record();
        r.result.succeed = 0;
        assert!(r.copies().is_empty());
        let mut r = record();
        r.meta.deleted_at = Some(5);
        assert_eq!(r.copies()[0].state, state::DELETED);
        let mut r = record();
        r.meta.verify_state = Some("corrupt".into());
        r.result.illegal = Some("verify: corrupt: size".into());
        assert_eq!(r.copies()[0].state, state::CORRUPT);
    }
}
