//! The TLS keys, read the same way by the server (`rsync_tls*`, for pulls
//! from DB hosts and from other nodes) and the client (`node_rsync_tls*`,
//! for restore from the nodes).
//!
//! `{p} = yes | no | CIDR,…`: `no` (the default) is today's plain daemon
//! protocol; `yes` sends every pull through TLS; a list of networks or
//! addresses sends those sources through TLS and the others in plain, so a
//! fleet moves host by host (or per `allow_sources` group). A source TLS
//! applies to is never pulled in plain, whatever happens.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use ubackup_common::{ConfigError, SectionReader};

use crate::tls::{check_path, default_connector, TlsOptions, DEFAULT_TLS_PORT};

/// The key names under one prefix.
pub struct TlsKeys {
    pub enable: &'static str,
    pub port: &'static str,
    pub ca: &'static str,
    pub cert: &'static str,
    pub key: &'static str,
}

/// The server's keys.
pub const RSYNC_TLS: TlsKeys = TlsKeys {
    enable: "rsync_tls",
    port: "rsync_tls_port",
    ca: "rsync_tls_ca",
    cert: "rsync_tls_cert",
    key: "rsync_tls_key",
};

/// The client's keys (restore from the nodes).
pub const NODE_RSYNC_TLS: TlsKeys = TlsKeys {
    enable: "node_rsync_tls",
    port: "node_rsync_tls_port",
    ca: "node_rsync_tls_ca",
    cert: "node_rsync_tls_cert",
    key: "node_rsync_tls_key",
};

impl TlsKeys {
    pub const fn all(&self) -> [&'static str; 5] {
        [self.enable, self.port, self.ca, self.cert, self.key]
    }
}

/// Which sources go through TLS, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    /// Empty = every source.
    pub only: Vec<IpNet>,
    pub options: TlsOptions,
}

impl TlsPolicy {
    /// The TLS options for a pull from `ip`, or `None` for plain.
    pub fn for_source(&self, ip: IpAddr) -> Option<&TlsOptions> {
        (self.only.is_empty() || self.only.iter().any(|n| n.contains(&ip))).then_some(&self.options)
    }
}

/// Reads the keys; `Ok(None)` when TLS is off (the default).
pub fn read(g: &SectionReader, k: &TlsKeys) -> Result<Option<TlsPolicy>, ConfigError> {
    let Some(v) = g.opt_str(k.enable) else {
        return Ok(None);
    };
    let only = match v.to_ascii_lowercase().as_str() {
        "no" | "false" | "off" | "0" => return Ok(None),
        "yes" | "true" | "on" | "1" => Vec::new(),
        _ => v
            .split([',', ' ', '\t'])
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        g.error(
                            k.enable,
                            format!("`{s}` is neither yes/no nor a CIDR or address; expected `yes`, `no` or e.g. `10.20.0.0/16, 192.0.2.7`"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let port = g.nonzero_or(k.port, "a TCP port 1-65535", DEFAULT_TLS_PORT)?;
    let ca = g.opt_path(k.ca).ok_or_else(|| {
        g.error(
            k.ca,
            format!("{} is on, so the CA (a PEM file) the peers' certificates are checked against is required", k.enable),
        )
    })?;
    let file = |key: &str, p: PathBuf| -> Result<PathBuf, ConfigError> {
        check_path(&p).map_err(|e| g.error(key, e))?;
        std::fs::metadata(&p)
            .map_err(|e| g.error(key, format!("cannot read {}: {e}", p.display())))?;
        Ok(p)
    };
    let ca = file(k.ca, ca)?;
    let client = match (g.opt_path(k.cert), g.opt_path(k.key)) {
        (Some(c), Some(key)) => Some((file(k.cert, c)?, file(k.key, key)?)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(g.error(
                k.key,
                format!("{} is set, so its key (PEM) is required too", k.cert),
            ))
        }
        (None, Some(_)) => {
            return Err(g.error(
                k.cert,
                format!("{} is set, so the certificate (PEM) is required too", k.key),
            ))
        }
    };
    let connector = default_connector();
    check_path(&connector).map_err(|e| {
        g.error(
            k.enable,
            format!("the connector {} cannot be used: {e}", connector.display()),
        )
    })?;
    Ok(Some(TlsPolicy {
        only,
        options: TlsOptions {
            port,
            ca,
            client,
            connector,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use ubackup_common::IniDoc;

    fn read_text(text: &str) -> Result<Option<TlsPolicy>, ConfigError> {
        let doc = IniDoc::parse(Path::new("/etc/ubackup/server.conf"), text).unwrap();
        let g = SectionReader::required(&doc, "global").unwrap();
        read(&g, &RSYNC_TLS)
    }

    #[test]
    fn off_by_default_and_per_source_lists() {
        assert_eq!(read_text("[global]\n").unwrap(), None);
        assert_eq!(read_text("[global]\nrsync_tls = no\n").unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let p = read_text(&format!(
            "[global]\nrsync_tls = 10.1.0.0/16, 192.0.2.7\nrsync_tls_ca = {}\n",
            ca.display()
        ))
        .unwrap()
        .unwrap();
        assert_eq!(p.options.port, 874);
        assert!(p.for_source("10.1.2.3".parse().unwrap()).is_some());
        assert!(p.for_source("192.0.2.7".parse().unwrap()).is_some());
        assert!(p.for_source("192.0.2.8".parse().unwrap()).is_none());
        let all = read_text(&format!(
            "[global]\nrsync_tls = yes\nrsync_tls_ca = {}\nrsync_tls_port = 9874\n",
            ca.display()
        ))
        .unwrap()
        .unwrap();
        assert_eq!(all.options.port, 9874);
        assert!(all.for_source("198.51.100.1".parse().unwrap()).is_some());
    }

    #[test]
    fn errors_name_the_key_and_what_is_valid() {
        let e = read_text("[global]\nrsync_tls = yes\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rsync_tls_ca") && e.contains("required"), "{e}");
        let e = read_text("[global]\nrsync_tls = maybe\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[global] rsync_tls") && e.contains("`maybe`") && e.contains("yes"),
            "{e}"
        );
        let e = read_text("[global]\nrsync_tls = yes\nrsync_tls_ca = /nonexistent/ca.pem\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rsync_tls_ca") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let e = read_text(&format!(
            "[global]\nrsync_tls = yes\nrsync_tls_ca = {}\nrsync_tls_cert = {}\n",
            ca.display(),
            ca.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("rsync_tls_key"), "{e}");
    }
}
