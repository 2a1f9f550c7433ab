//! The client config: the original `/etc/uuzuback.conf` format, unchanged,
//! plus optional new keys.
//!
//! `[global]` holds the host-wide keys; every other section (in file order)
//! is one instance to back up. Parsing goes through [`IniDoc`] (inline
//! comments, line numbers) and [`SectionReader`] (errors naming file, line,
//! section, key and what would be valid). Unknown keys are warnings, not
//! errors, so a config shared with newer or older versions still runs.
//!
//! To add a key: add it to [`GLOBAL_KEYS`] or [`INSTANCE_KEYS`], add a field,
//! and read it in [`GlobalConfig::read`] / [`InstanceConfig::read`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ubackup_common::config::redis::{QUEUE_REDIS, QUEUE_REDIS_KEYS};
use ubackup_common::config::{catalog, cluster, logs, ConfigError, SectionReader};
use ubackup_common::ini::IniDoc;
use ubackup_common::keys::Keys;
use ubackup_common::validate::check_relative;
use ubackup_common::RedisTarget;

/// Where the original client looked for its config.
pub const DEFAULT_CONFIG: &str = "/etc/uuzuback.conf";
/// Default `spool_dir`: messages waiting for Redis, and the instance locks.
pub const DEFAULT_SPOOL_DIR: &str = "/var/spool/ubackup";
/// Default `interval` (the original falls back to 3600 too).
pub const DEFAULT_INTERVAL: i64 = 3600;
/// Default `node_rsync_module`: the nodes' read-only export of
/// server_root_path (deploy/rsyncd/node-rsyncd.conf).
pub const DEFAULT_NODE_RSYNC_MODULE: &str = ubackup_transport::source::DEFAULT_NODE_MODULE;
/// Default `node_rsync_port`.
pub const DEFAULT_NODE_RSYNC_PORT: u16 = ubackup_transport::source::DEFAULT_NODE_PORT;
/// Default `dedup_ttl`: how long Redis remembers that a message id was
/// pushed. It must outlast the time a message can wait in a spool after an
/// unclear push (normally one cron interval).
pub const DEFAULT_DEDUP_TTL: u64 = 2 * 24 * 3600;

/// Sections that are not instances.
pub const RESERVED_SECTIONS: &[&str] = &["global"];

/// Every key the client reads from `[global]`.
pub const GLOBAL_KEYS: &[&str] = ubackup_common::key_list!(
    // original
    &["server_id", "game_id", "op_id", "interval"],
    QUEUE_REDIS_KEYS,
    &["redis_queue", "my_ip"],
    logs::KEYS,
    // new
    &[
        "rsync_port",
        "spool_dir",
        "checksum",
        cluster::KEY_PREFIX,
        "dedup_ttl"
    ],
    // restore (docs/restore.md): the nodes' read-only module, and the catalog
    &[
        "node_rsync_module",
        "node_rsync_port",
        "node_rsync_user",
        "node_rsync_password_file",
        "node_rsync_timeout",
        "node_rsync_contimeout",
    ],
    &ubackup_transport::tls_config::NODE_RSYNC_TLS.all(),
    &["age_identity"],
    catalog::KEYS,
);

/// Every key the client reads from an instance section.
pub const INSTANCE_KEYS: &[&str] = &[
    // original
    "back_type",
    "instance",
    "rsync_model",
    "back_dir",
    "back_log",
    "last_all_log",
    "script",
    // new
    "timeout",
    "redis_queue",
    "checksum",
    "restore_script",
];

/// `checksum = blake3|none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Blake3,
    None,
}

impl FromStr for Checksum {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "blake3" => Ok(Checksum::Blake3),
            "none" | "off" | "no" => Ok(Checksum::None),
            _ => Err(()),
        }
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Checksum::Blake3 => "blake3",
            Checksum::None => "none",
        })
    }
}

const CHECKSUM_VALUES: &str = "blake3 or none";

/// The whole client config.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub file: PathBuf,
    pub global: GlobalConfig,
    /// In file order.
    pub instances: Vec<InstanceConfig>,
    /// Things worth an operator's look that do not stop a run (unknown keys,
    /// an address that does not parse, …). Logged once logging is up.
    pub warnings: Vec<String>,
    /// The parsed file, for subcommands that read keys of their own.
    pub doc: IniDoc,
}

/// `[global]`.
#[derive(Debug, Clone)]
pub struct GlobalConfig {
    pub server_id: i64,
    pub game_id: i64,
    /// Reserved in the original; 0 when absent.
    pub op_id: i64,
    /// Seconds between backups; goes into every message.
    pub interval: i64,
    pub redis: RedisTarget,
    /// Default list for instances without their own `redis_queue`.
    pub redis_queue: Option<String>,
    /// This host's address as nodes reach it. Kept as text: the original
    /// sample has `127.0.0.0.1`, and the nodes are the ones that validate it.
    pub my_ip: String,
    pub log: Option<PathBuf>,
    pub error_log: Option<PathBuf>,
    /// Port of this host's rsync daemon, when not 873; goes into messages.
    pub rsync_port: Option<u16>,
    pub spool_dir: PathBuf,
    pub checksum: Checksum,
    pub key_prefix: String,
    pub dedup_ttl: u64,
    /// The rsync module the nodes export server_root_path as (restore).
    pub node_rsync_module: String,
    pub node_rsync_port: u16,
    /// `auth users` of the nodes' module: the user and its password file.
    pub node_rsync_auth: Option<(String, PathBuf)>,
    /// rsync `--timeout` / `--contimeout` of restore pulls.
    pub node_rsync_timeout: Duration,
    pub node_rsync_contimeout: Duration,
    /// Restore pulls through TLS (`node_rsync_tls*`); `None` = plain.
    pub node_rsync_tls: Option<ubackup_transport::tls_config::TlsPolicy>,
    /// age identity file for backups stored encrypted (`age_identity`).
    pub age_identity: Option<PathBuf>,
}

/// One instance section.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// The section name, used in logs, lock names and `--only`.
    pub section: String,
    pub back_type: String,
    pub instance: i64,
    pub rsync_model: String,
    pub back_dir: PathBuf,
    pub back_log: PathBuf,
    /// Set only for full + incremental schemes.
    pub last_all_log: Option<PathBuf>,
    /// The operator's shell command line, run with `sh -c`.
    pub script: String,
    /// Kill the script's process group after this long; `None` = no limit.
    pub timeout: Option<Duration>,
    /// Overrides the global `redis_queue`.
    pub redis_queue: Option<String>,
    pub checksum: Checksum,
    /// `restore --run-hook` runs this shell line after a restore.
    pub restore_script: Option<String>,
}

/// A whole number of seconds, at least 1, or `default`.
fn positive_secs(g: &SectionReader, key: &str, default: u64) -> Result<Duration, ConfigError> {
    g.nonzero_or(key, "a whole number of seconds, at least 1", default)
        .map(Duration::from_secs)
}

const PORT: &str = "a TCP port 1-65535";

impl ClientConfig {
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        Self::from_doc(IniDoc::load(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ClientConfig, ConfigError> {
        Self::from_doc(IniDoc::parse(path, text)?)
    }

    pub fn from_doc(doc: IniDoc) -> Result<ClientConfig, ConfigError> {
        let mut warnings = Vec::new();
        let g = SectionReader::required(&doc, "global")?;
        let global = GlobalConfig::read(&g, &mut warnings)?;
        let mut instances: Vec<InstanceConfig> = Vec::new();
        for section in doc
            .sections
            .iter()
            .filter(|s| !RESERVED_SECTIONS.contains(&s.name.as_str()))
        {
            let r = SectionReader::new(&doc, section);
            let inst = InstanceConfig::read(&r, &global, &mut warnings)?;
            if let Some(prev) = instances
                .iter()
                .find(|p| p.back_type == inst.back_type && p.instance == inst.instance)
            {
                warnings.push(
                    r.error(
                        "instance",
                        format!(
                            "[{}] has the same back_type `{}` and instance {}; the catalog and the overdue alert cannot tell them apart",
                            prev.section, inst.back_type, inst.instance
                        ),
                    )
                    .to_string(),
                );
            }
            instances.push(inst);
        }
        if instances.is_empty() {
            warnings.push(format!(
                "{}: no instance sections: nothing to back up",
                doc.file.display()
            ));
        }
        Ok(ClientConfig {
            file: doc.file.clone(),
            global,
            instances,
            warnings,
            doc,
        })
    }

    /// Key names under this config's `key_prefix`.
    pub fn keys(&self) -> Keys {
        Keys::new(&self.global.key_prefix)
    }

    /// The instances to run: all, or the `--only` ones in file order. An
    /// unknown name is an error listing the valid ones.
    pub fn select(&self, only: &[String]) -> Result<Vec<&InstanceConfig>, ConfigError> {
        if only.is_empty() {
            return Ok(self.instances.iter().collect());
        }
        if let Some(missing) = only
            .iter()
            .find(|n| !self.instances.iter().any(|i| &i.section == *n))
        {
            let known: Vec<&str> = self.instances.iter().map(|i| i.section.as_str()).collect();
            return Err(ConfigError {
                file: self.file.clone(),
                line: None,
                section: Some(missing.clone()),
                key: None,
                problem: format!(
                    "--only {missing}: no such instance section; the instance sections are: {}",
                    if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
        Ok(self
            .instances
            .iter()
            .filter(|i| only.contains(&i.section))
            .collect())
    }

    /// The list a message of `inst` goes to: `-q`, else the instance's
    /// `redis_queue`, else the global one.
    pub fn queue_for(
        &self,
        inst: &InstanceConfig,
        cli_queue: Option<&str>,
    ) -> Result<String, ConfigError> {
        if let Some(q) = cli_queue {
            return Ok(q.to_string());
        }
        inst.redis_queue
            .clone()
            .or_else(|| self.global.redis_queue.clone())
            .ok_or_else(|| {
                let section = self
                    .doc
                    .section(&inst.section)
                    .expect("instance came from this doc");
                SectionReader::new(&self.doc, section).error(
                    "redis_queue",
                    "missing: set redis_queue in [global] or in this section, or pass -q QUEUE",
                )
            })
    }
}

impl GlobalConfig {
    fn read(g: &SectionReader, warnings: &mut Vec<String>) -> Result<GlobalConfig, ConfigError> {
        warn_unknown(g, GLOBAL_KEYS, warnings);
        let my_ip = g.str(
            "my_ip",
            "this host's address as the pull nodes reach it, such as 10.0.0.5",
        )?;
        if my_ip.parse::<IpAddr>().is_err() {
            warnings.push(
                g.error(
                    "my_ip",
                    format!("`{my_ip}` is not an IPv4 or IPv6 address; sent as is, but the pull nodes will reject these messages"),
                )
                .to_string(),
            );
        }
        let redis_queue = g.opt_str("redis_queue");
        if let Some(q) = &redis_queue {
            check_queue_name(g, q)?;
        }
        let spool_dir = g
            .opt_path("spool_dir")
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR));
        let (log, error_log) = logs::read(g);
        Ok(GlobalConfig {
            server_id: g.parse("server_id", "an integer host id such as 111111")?,
            game_id: g.parse("game_id", "an integer business id such as 31")?,
            op_id: g.parse_or("op_id", "an integer (reserved; any number)", 0)?,
            interval: positive(g, "interval", DEFAULT_INTERVAL)?,
            redis: QUEUE_REDIS.read(g)?,
            redis_queue,
            my_ip,
            log,
            error_log,
            rsync_port: g.opt_nonzero("rsync_port", PORT)?,
            spool_dir,
            checksum: g.parse_or("checksum", CHECKSUM_VALUES, Checksum::Blake3)?,
            key_prefix: cluster::key_prefix(g),
            node_rsync_module: {
                let m = g.str_or("node_rsync_module", DEFAULT_NODE_RSYNC_MODULE);
                if m.contains('/') || check_relative("node_rsync_module", &m).is_err() {
                    return Err(g.error(
                        "node_rsync_module",
                        format!("`{m}` is not valid; expected an rsync module name such as {DEFAULT_NODE_RSYNC_MODULE}"),
                    ));
                }
                m
            },
            node_rsync_port: g.nonzero_or("node_rsync_port", PORT, DEFAULT_NODE_RSYNC_PORT)?,
            node_rsync_auth: ubackup_common::config::rsync_auth(
                g,
                "node_rsync_user",
                "node_rsync_password_file",
            )?,
            node_rsync_timeout: positive_secs(g, "node_rsync_timeout", 120)?,
            node_rsync_contimeout: positive_secs(g, "node_rsync_contimeout", 20)?,
            node_rsync_tls: ubackup_transport::tls_config::read(
                g,
                &ubackup_transport::tls_config::NODE_RSYNC_TLS,
            )?,
            age_identity: g.opt_path("age_identity"),
            dedup_ttl: g
                .parse_or::<u64>(
                    "dedup_ttl",
                    "a number of seconds, at least 60",
                    DEFAULT_DEDUP_TTL,
                )
                .and_then(|t| {
                    if t < 60 {
                        Err(g.error(
                            "dedup_ttl",
                            format!(
                                "`{t}` is too short; expected a number of seconds, at least 60"
                            ),
                        ))
                    } else {
                        Ok(t)
                    }
                })?,
        })
    }
}

impl InstanceConfig {
    fn read(
        r: &SectionReader,
        global: &GlobalConfig,
        warnings: &mut Vec<String>,
    ) -> Result<InstanceConfig, ConfigError> {
        warn_unknown(r, INSTANCE_KEYS, warnings);
        let back_type = r.str("back_type", "the kind of backup, such as mysql or redis")?;
        if back_type.contains('/') || check_relative("back_type", &back_type).is_err() {
            return Err(r.error(
                "back_type",
                format!("`{back_type}` is not valid; expected a plain name such as mysql (it becomes a directory on the nodes)"),
            ));
        }
        let rsync_model = r.str(
            "rsync_model",
            "the rsync module and subdirectory, such as backup/database_3306",
        )?;
        if let Err(why) = check_relative("rsync_model", &rsync_model) {
            return Err(r.error(
                "rsync_model",
                format!("{why}; expected MODULE or MODULE/SUBDIR, such as backup/database_3306"),
            ));
        }
        let back_log =
            PathBuf::from(r.str("back_log", "the path of the log the backup script writes")?);
        let last_all_log = r.opt_path("last_all_log");
        for (key, p) in [
            ("back_log", Some(&back_log)),
            ("last_all_log", last_all_log.as_ref()),
        ] {
            if let Some(p) = p.filter(|p| p.is_relative()) {
                warnings.push(
                    r.error(
                        key,
                        format!(
                            "`{}` is relative: it is resolved against the directory cron starts in",
                            p.display()
                        ),
                    )
                    .to_string(),
                );
            }
        }
        if last_all_log.as_ref() == Some(&back_log) {
            return Err(r.error(
                "last_all_log",
                "is the same file as back_log; expected a separate file for the last full backup",
            ));
        }
        let redis_queue = r.opt_str("redis_queue");
        if let Some(q) = &redis_queue {
            check_queue_name(r, q)?;
        }
        let timeout = match r.opt_parse::<u64>("timeout", "a number of seconds (0 = no limit)")? {
            None | Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
        };
        Ok(InstanceConfig {
            section: r.name().to_string(),
            back_type,
            instance: r.parse(
                "instance",
                "an integer instance number, such as the port 3306",
            )?,
            rsync_model,
            back_dir: PathBuf::from(
                r.str("back_dir", "the directory the backup files are written to")?,
            ),
            back_log,
            last_all_log,
            script: r.str("script", "the backup command line, run with sh -c")?,
            timeout,
            redis_queue,
            checksum: r.parse_or("checksum", CHECKSUM_VALUES, global.checksum)?,
            restore_script: r.opt_str("restore_script"),
        })
    }
}

fn warn_unknown(r: &SectionReader, known: &[&str], warnings: &mut Vec<String>) {
    for key in r.unknown_keys(known) {
        warnings.push(
            r.error(
                &key,
                format!(
                    "unknown key, ignored; known keys here: {}",
                    known.join(", ")
                ),
            )
            .to_string(),
        );
    }
}

fn positive(r: &SectionReader, key: &str, default: i64) -> Result<i64, ConfigError> {
    let v: i64 = r.parse_or(key, "a positive number of seconds", default)?;
    if v <= 0 {
        return Err(r.error(
            key,
            format!("`{v}` is not valid; expected a positive number of seconds"),
        ));
    }
    Ok(v)
}

/// The server's `redis_queue` is a space-separated list, so a list name
/// with whitespace could never be popped.
fn check_queue_name(r: &SectionReader, q: &str) -> Result<(), ConfigError> {
    if q.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(r.error(
            "redis_queue",
            format!("`{q}` is not valid; expected one Redis list name without spaces, such as level1 or uuzuback"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample from the original README (seeds/003), byte for byte in the
    /// parts that matter: inline comments, Chinese text, `my_ip` that is not
    /// an address, a section header with a trailing comment.
    const ORIGINAL_SAMPLE: &str = "[global]
server_id = 111111  #服务器ID,唯一标识,可以用资产编号
game_id = 31  #业务ID,从Dashboard的业务管理中获取
op_id = 1 #保留字段,随便填
interval = 3600 #设定备份间隔时间
redis_host = 0.0.0.0 #服务端redis地址
redis_port = 6379 #服务端redis端口
redis_queue = uuzuback #服务端redis队列名称
my_ip = 127.0.0.0.1 #本机IP
log = /var/log/uuzu_back.log #日志路径
error_log = /var/log/uuzu_back.error #错误日志路径

[mysql3306]   #一个section配置一个需要备份的实例
back_type = mysql  #备份类型
instance = 3306 #实例号,数据库类的备份可以用端口号表示
rsync_model = backup/database_3306 #rsync模块名称
back_dir = /data/backup/database_3306/ #备份文件路径
back_log = /var/log/mysql_3306.log #备份信息路径
last_all_log = /var/log/last_3306.log #上一次全备路径,如果不区分全备增量,此配置可以省略
script = sh /usr/local/uuzuback/mysql_backup.sh /etc/my.cnf #备份脚本

[redis6379]
back_type = redis
instance = 6379
rsync_model = backup/redisbase_6379
back_dir = /data/backup/redisbase_6379/
back_log = /var/log/redis_6379.log
script = sh /usr/local/uuzuback/redis_backup.sh /data/conf/redis_conf
";

    fn parse(text: &str) -> Result<ClientConfig, ConfigError> {
        ClientConfig::parse(Path::new("/etc/uuzuback.conf"), text)
    }

    #[test]
    fn restore_access_to_authenticated_node_modules() {
        let g = parse(ORIGINAL_SAMPLE).unwrap().global;
        assert_eq!(g.node_rsync_auth, None);
        assert_eq!(g.node_rsync_timeout, Duration::from_secs(120));
        assert_eq!(g.node_rsync_contimeout, Duration::from_secs(20));
        let with = |extra: &str| {
            parse(&ORIGINAL_SAMPLE.replacen("[global]", &format!("[global]\n{extra}"), 1))
        };
        let g = with("node_rsync_user = restorer\nnode_rsync_password_file = /etc/ubackup/node.secret\nnode_rsync_timeout = 600\nnode_rsync_contimeout = 5")
            .unwrap()
            .global;
        assert_eq!(
            g.node_rsync_auth,
            Some(("restorer".into(), PathBuf::from("/etc/ubackup/node.secret")))
        );
        assert_eq!(g.node_rsync_timeout, Duration::from_secs(600));
        assert_eq!(g.node_rsync_contimeout, Duration::from_secs(5));
        for (extra, want) in [
            (
                "node_rsync_user = restorer",
                "[global] node_rsync_password_file: missing",
            ),
            (
                "node_rsync_password_file = /x",
                "[global] node_rsync_user: missing",
            ),
            (
                "node_rsync_user = a@b\nnode_rsync_password_file = /x",
                "[global] node_rsync_user: `a@b` is not valid",
            ),
            (
                "node_rsync_timeout = 0",
                "[global] node_rsync_timeout: `0` is not valid; expected a whole number of seconds",
            ),
            (
                "node_rsync_contimeout = soon",
                "[global] node_rsync_contimeout: `soon` is not valid",
            ),
        ] {
            let err = with(extra).unwrap_err().to_string();
            assert!(err.contains(want), "{extra}: {err}");
            assert!(err.starts_with("/etc/uuzuback.conf:"), "{err}");
        }
    }

    #[test]
    fn original_sample_parses_with_inline_comments() {
        let c = parse(ORIGINAL_SAMPLE).unwrap();
        let g = &c.global;
        assert_eq!(
            (g.server_id, g.game_id, g.op_id, g.interval),
            (111111, 31, 1, 3600)
        );
        assert_eq!(g.redis_queue.as_deref(), Some("uuzuback"));
        assert_eq!(g.redis.to_string(), "0.0.0.0:6379 db 0");
        assert_eq!(g.my_ip, "127.0.0.0.1");
        assert_eq!(g.log.as_deref(), Some(Path::new("/var/log/uuzu_back.log")));
        assert_eq!(
            g.error_log.as_deref(),
            Some(Path::new("/var/log/uuzu_back.error"))
        );
        // new keys take their defaults
        assert_eq!(g.spool_dir, Path::new(DEFAULT_SPOOL_DIR));
        assert_eq!(g.checksum, Checksum::Blake3);
        assert_eq!(g.key_prefix, "ubackup:");
        assert_eq!(g.rsync_port, None);

        let names: Vec<_> = c.instances.iter().map(|i| i.section.as_str()).collect();
        assert_eq!(names, ["mysql3306", "redis6379"], "file order");
        let m = &c.instances[0];
        assert_eq!(m.back_type, "mysql");
        assert_eq!(m.instance, 3306);
        assert_eq!(m.rsync_model, "backup/database_3306");
        assert_eq!(m.back_dir, Path::new("/data/backup/database_3306/"));
        assert_eq!(m.back_log, Path::new("/var/log/mysql_3306.log"));
        assert_eq!(
            m.last_all_log.as_deref(),
            Some(Path::new("/var/log/last_3306.log"))
        );
        assert_eq!(
            m.script,
            "sh /usr/local/uuzuback/mysql_backup.sh /etc/my.cnf"
        );
        assert_eq!(m.timeout, None);
        let r = &c.instances[1];
        assert_eq!(r.last_all_log, None);
        assert_eq!(
            r.script,
            "sh /usr/local/uuzuback/redis_backup.sh /data/conf/redis_conf"
        );
        assert_eq!(c.queue_for(r, None).unwrap(), "uuzuback");
        assert_eq!(c.queue_for(r, Some("level1")).unwrap(), "level1");

        // the bad address is a warning that names the line, not an error
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("/etc/uuzuback.conf:9: [global] my_ip: `127.0.0.0.1`"),
            "{}",
            c.warnings[0]
        );
    }

    #[test]
    fn new_keys_parse() {
        let text = ORIGINAL_SAMPLE
            .replace("[mysql3306]", "rsync_port = 8873\nspool_dir = /tmp/sp\nchecksum = none\nkey_prefix = t1:\nredis_password = s3cret\ndedup_ttl = 600\n\n[mysql3306]")
            .replace("instance = 6379\n", "instance = 6379\ntimeout = 90 # seconds\nredis_queue = level1\nchecksum = BLAKE3\n");
        let c = parse(&text).unwrap();
        assert_eq!(c.global.rsync_port, Some(8873));
        assert_eq!(c.global.spool_dir, Path::new("/tmp/sp"));
        assert_eq!(c.global.checksum, Checksum::None);
        assert_eq!(c.global.dedup_ttl, 600);
        assert_eq!(c.keys().sent("x"), "t1:sent:x");
        assert!(
            !c.global.redis.to_string().contains("s3cret"),
            "password never printed"
        );
        let r = &c.instances[1];
        assert_eq!(r.timeout, Some(Duration::from_secs(90)));
        assert_eq!(r.checksum, Checksum::Blake3);
        assert_eq!(
            c.instances[0].checksum,
            Checksum::None,
            "inherits the global checksum"
        );
        assert_eq!(c.queue_for(r, None).unwrap(), "level1");
        assert_eq!(c.queue_for(&c.instances[0], None).unwrap(), "uuzuback");
        assert_eq!(
            c.queue_for(r, Some("q2")).unwrap(),
            "q2",
            "-q wins over the instance's list"
        );
    }

    #[test]
    fn redis_url_replaces_host_and_port() {
        let text = ORIGINAL_SAMPLE
            .replace("redis_host = 0.0.0.0 #服务端redis地址\n", "")
            .replace(
                "redis_port = 6379 #服务端redis端口\n",
                "redis_url = redis://10.1.2.3:6380/2\n",
            );
        let c = parse(&text).unwrap();
        assert_eq!(c.global.redis.to_string(), "10.1.2.3:6380 db 2");
    }

    #[test]
    fn errors_name_file_line_section_key_and_valid_values() {
        let cases = [
            ("server_id = 111111", "server_id = abc", "/etc/uuzuback.conf:2: [global] server_id: `abc` is not valid; expected an integer"),
            ("instance = 3306", "instance = 33o6", "/etc/uuzuback.conf:15: [mysql3306] instance: `33o6` is not valid; expected an integer"),
            ("back_type = redis\n", "", "[redis6379] back_type: missing; expected the kind of backup"),
            ("redis_port = 6379", "redis_port = 99999", "[global] redis_port: `99999` is not valid; expected a TCP port 1-65535"),
            (
                "rsync_model = backup/redisbase_6379",
                "rsync_model = backup/../etc",
                "[redis6379] rsync_model: rsync_model `backup/../etc` contains `..`",
            ),
            ("back_type = mysql", "back_type = my/sql", "[mysql3306] back_type: `my/sql` is not valid; expected a plain name"),
            ("redis_queue = uuzuback", "redis_queue = level1 uuzuback", "[global] redis_queue: `level1 uuzuback` is not valid"),
            ("interval = 3600", "interval = -5", "[global] interval: `-5` is not valid; expected a positive number of seconds"),
            ("script = sh /usr/local/uuzuback/redis_backup.sh /data/conf/redis_conf", "script =", "[redis6379] script: missing"),
            ("my_ip = 127.0.0.0.1", "", "[global] my_ip: missing"),
            (
                "last_all_log = /var/log/last_3306.log",
                "last_all_log = /var/log/mysql_3306.log",
                "[mysql3306] last_all_log: is the same file as back_log",
            ),
        ];
        for (from, to, want) in cases {
            let text = ORIGINAL_SAMPLE
                .lines()
                .map(|l| {
                    if l.starts_with(from.trim_end()) {
                        to
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let err = parse(&text)
                .err()
                .unwrap_or_else(|| panic!("{from} -> {to} should fail"))
                .to_string();
            assert!(
                err.contains(want),
                "{from} -> {to}\n got: {err}\nwant: {want}"
            );
            assert!(err.starts_with("/etc/uuzuback.conf:"), "{err}");
        }
        let err = parse(
            &ORIGINAL_SAMPLE
                .replace("timeout", "x")
                .replace("instance = 6379", "instance = 6379\ntimeout = soon"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("[redis6379] timeout: `soon` is not valid; expected a number of seconds"),
            "{err}"
        );
        let err =
            parse(&ORIGINAL_SAMPLE.replace("instance = 6379", "instance = 6379\nchecksum = md5"))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("[redis6379] checksum: `md5` is not valid; expected blake3 or none"),
            "{err}"
        );
        let err = parse("[mysql]\nback_type = mysql\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("section [global] is missing"), "{err}");
    }

    #[test]
    fn unknown_keys_warn_and_do_not_fail() {
        let c =
            parse(&ORIGINAL_SAMPLE.replace("instance = 6379", "instance = 6379\nscirpt = typo"))
                .unwrap();
        let w: Vec<_> = c.warnings.iter().filter(|w| w.contains("scirpt")).collect();
        assert_eq!(w.len(), 1, "{:?}", c.warnings);
        assert!(
            w[0].contains(":25: [redis6379] scirpt: unknown key, ignored"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn missing_queue_is_an_error_unless_given_with_q() {
        let c =
            parse(&ORIGINAL_SAMPLE.replace("redis_queue = uuzuback #服务端redis队列名称\n", ""))
                .unwrap();
        let err = c.queue_for(&c.instances[0], None).unwrap_err().to_string();
        assert!(
            err.contains("[mysql3306] redis_queue: missing: set redis_queue in [global]"),
            "{err}"
        );
        assert_eq!(
            c.queue_for(&c.instances[0], Some("level1")).unwrap(),
            "level1"
        );
    }

    #[test]
    fn only_selects_in_file_order_and_rejects_unknown_names() {
        let c = parse(ORIGINAL_SAMPLE).unwrap();
        let only = vec!["redis6379".to_string(), "mysql3306".to_string()];
        let sel: Vec<_> = c
            .select(&only)
            .unwrap()
            .iter()
            .map(|i| i.section.clone())
            .collect();
        assert_eq!(sel, ["mysql3306", "redis6379"]);
        let err = c
            .select(&["mysql3307".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--only mysql3307: no such instance section; the instance sections are: mysql3306, redis6379"), "{err}");
    }

    #[test]
    fn duplicate_instance_warns() {
        let c = parse(&ORIGINAL_SAMPLE.replace(
            "[redis6379]\nback_type = redis\ninstance = 6379",
            "[redis6379]\nback_type = mysql\ninstance = 3306",
        ))
        .unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("same back_type `mysql` and instance 3306")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/client.conf");
        let c = ClientConfig::load(&path).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.instances.len(), 2);
        assert!(
            c.instances[0].last_all_log.is_some(),
            "the mysql-like instance is full + incremental"
        );
        assert!(
            c.instances[1].last_all_log.is_none(),
            "the redis-like instance is full only"
        );
        for i in &c.instances {
            assert!(i.timeout.is_some(), "the example sets a timeout");
            c.queue_for(i, None).unwrap();
        }
    }
}
