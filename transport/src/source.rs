//! Where a file is: the rsync daemon module it comes from, its URL there,
//! and where the node keeps it (the original layout under
//! `server_root_path`, which the node's own export serves back).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The nodes' read-only export of server_root_path
/// (deploy/rsyncd/node-rsyncd.conf), which restore pulls from: the
/// default module name and port.
pub const DEFAULT_NODE_MODULE: &str = "ubackup";
pub const DEFAULT_NODE_PORT: u16 = 873;

/// One rsync daemon module: the unit batched pulls group by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RsyncSource {
    pub ip: IpAddr,
    pub port: u16,
    pub module: String,
}

/// `rsync://[user@]host:port/module/path`.
pub fn source_url(src: &RsyncSource, user: Option<&str>, remote_path: &str) -> String {
    let host = match src.ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    format!(
        "rsync://{user}{host}:{}/{}/{remote_path}",
        src.port, src.module
    )
}

/// `root/TYPE/A.B.C/D` for IPv4 `A.B.C.D`, as the original. IPv6 (which the
/// original never saw) follows the same idea: the first seven hex groups,
/// dot-joined, then the last.
pub fn dest_dir(root: &Path, back_type: &str, ip: IpAddr) -> PathBuf {
    let (net, host) = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (format!("{}.{}.{}", o[0], o[1], o[2]), o[3].to_string())
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net: Vec<String> = s[..7].iter().map(|g| format!("{g:x}")).collect();
            (net.join("."), format!("{:x}", s[7]))
        }
    };
    root.join(back_type).join(net).join(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_ipv6_in_url() {
        let src = RsyncSource {
            ip: "::1".parse().unwrap(),
            port: 873,
            module: "m".into(),
        };
        assert_eq!(
            source_url(&src, Some("ub"), "a/b"),
            "rsync://ub@[::1]:873/m/a/b"
        );
    }

    #[test]
    fn ipv6_layout() {
        let d = dest_dir(Path::new("/b"), "redis", "2001:db8::7".parse().unwrap());
        assert_eq!(d, Path::new("/b/redis/2001.db8.0.0.0.0.0/7"));
    }
}
