//! The replication keys of the server's `[global]`, all optional and the
//! same on every node. Without them (`copies` = 1) a node behaves exactly
//! as before: one copy, no replication list, no repair sweep.

use std::collections::BTreeMap;
use std::time::Duration;

use ubackup_common::{ConfigError, SectionReader};

/// The keys read here (`copies.<type>` besides).
pub const KEYS: &[&str] = &[
    "copies",
    "zone",
    "replica_bwlimit",
    "repair_after_secs",
    "repair_interval_secs",
    "node_rsync_module",
    "node_rsync_port",
    "node_rsync_tls_port",
];

/// At most this many copies of one backup.
pub const MAX_COPIES: u32 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaConfig {
    /// Copies of every backup (`copies`, 1-3; 1 = no replication).
    pub copies: u32,
    /// `copies.<type>` overrides.
    pub per_type: BTreeMap<String, u32>,
    /// This node's site or rack (`zone`, default its `node_id`).
    pub zone: String,
    /// KB/s for all of this node's replication pulls together; 0 = no
    /// limit beyond `node_bwlimit`.
    pub bwlimit: u64,
    /// A node down this long no longer counts as holding its copies.
    pub repair_after: Duration,
    /// Seconds between repair sweeps.
    pub repair_interval: Duration,
    /// The read-only module over `server_root_path` that restore and the
    /// other nodes pull from (`node_rsync_module`, `node_rsync_port`): the
    /// node publishes it in its state hash.
    pub module: String,
    pub module_port: u16,
    /// The TLS terminator in front of that module (`node_rsync_tls_port`,
    /// default 874), published for the nodes that pull with `rsync_tls`.
    pub module_tls_port: u16,
}

impl ReplicaConfig {
    pub fn from_section(g: &SectionReader, node_id: &str) -> Result<Self, ConfigError> {
        let copies = count(g, "copies", 1)?;
        let mut per_type = BTreeMap::new();
        for (key, ty) in g.typed_keys("copies", "N, such as copies.mysql = 2")? {
            per_type.insert(ty, count(g, &key, copies)?);
        }
        let zone = g.opt_str("zone").unwrap_or_else(|| node_id.to_string());
        if zone.chars().any(char::is_whitespace) {
            return Err(g.error(
                "zone",
                format!("`{zone}` is not usable; expected a name without spaces, e.g. dc1"),
            ));
        }
        let bwlimit = g.parse_or(
            "replica_bwlimit",
            "KB/s for all replication pulls of this node together, 0 = unlimited",
            0u64,
        )?;
        let repair_after = Duration::from_secs(g.nonzero_or(
            "repair_after_secs",
            "whole seconds, at least 1, a node may be down before its copies are made again elsewhere",
            3600u64,
        )?);
        let repair_interval = Duration::from_secs(g.nonzero_or(
            "repair_interval_secs",
            "whole seconds, at least 1, between repair sweeps",
            60u64,
        )?);
        let module = g.str_or("node_rsync_module", "ubackup");
        if module.is_empty() || module.contains('/') {
            return Err(g.error(
                "node_rsync_module",
                "expected the name of this node's read-only rsync module, e.g. ubackup",
            ));
        }
        let module_port = g.parse_in(
            "node_rsync_port",
            "the port of this node's rsync daemon, 1-65535",
            873u16,
            1..=65535,
            "1-65535",
        )?;
        let module_tls_port = g.parse_in(
            "node_rsync_tls_port",
            "the TLS port in front of this node's rsync daemon, 1-65535",
            ubackup_transport::tls::DEFAULT_TLS_PORT,
            1..=65535,
            "1-65535",
        )?;
        Ok(ReplicaConfig {
            copies,
            per_type,
            zone,
            bwlimit,
            repair_after,
            repair_interval,
            module,
            module_port,
            module_tls_port,
        })
    }

    /// Copies wanted of a backup of `back_type`.
    pub fn copies_for(&self, back_type: &str) -> u32 {
        self.per_type.get(back_type).copied().unwrap_or(self.copies)
    }

    /// Whether any type wants a second copy: then the node takes
    /// replication tasks and sweeps for repairs.
    pub fn enabled(&self) -> bool {
        self.copies > 1 || self.per_type.values().any(|&n| n > 1)
    }
}

fn count(g: &SectionReader, key: &str, default: u32) -> Result<u32, ConfigError> {
    g.parse_in(
        key,
        "a number of copies of each backup, 1-3",
        default,
        1..=MAX_COPIES,
        "1-3 (1 = only the node that pulled it)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use ubackup_common::IniDoc;

    fn parse(extra: &str) -> Result<ReplicaConfig, ConfigError> {
        let doc = IniDoc::parse(Path::new("/etc/s.conf"), &format!("[global]\n{extra}")).unwrap();
        let g = SectionReader::required(&doc, "global").unwrap();
        ReplicaConfig::from_section(&g, "n1")
    }

    #[test]
    fn defaults_keep_one_copy() {
        let c = parse("").unwrap();
        assert_eq!(c.copies, 1);
        assert!(!c.enabled());
        assert_eq!(c.zone, "n1");
        assert_eq!(c.copies_for("mysql"), 1);
        assert_eq!(c.repair_after, Duration::from_secs(3600));
        assert_eq!((c.module.as_str(), c.module_port), ("ubackup", 873));
    }

    #[test]
    fn per_type_overrides_and_ranges() {
        let c = parse("copies = 2\ncopies.redis = 1\nzone = dc2\n").unwrap();
        assert!(c.enabled());
        assert_eq!(c.copies_for("mysql"), 2);
        assert_eq!(c.copies_for("redis"), 1);
        assert_eq!(c.zone, "dc2");
        let c = parse("copies.mysql = 3\n").unwrap();
        assert!(c.enabled());
        assert_eq!(c.copies_for("redis"), 1);
        let e = parse("copies = 4\n").unwrap_err().to_string();
        assert!(e.contains("[global] copies") && e.contains("1-3"), "{e}");
        let e = parse("copies. = 2\n").unwrap_err().to_string();
        assert!(e.contains("copies.<type>"), "{e}");
        let e = parse("repair_after_secs = 0\n").unwrap_err().to_string();
        assert!(e.contains("repair_after_secs"), "{e}");
    }
}
