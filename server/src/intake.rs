//! From a raw list element to a [`PullJob`], or to the reason it is illegal.
//!
//! Everything a message names (source address, module, file, type) is
//! checked here, before it reaches an rsync argument or a path; nothing
//! later re-checks it.

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;
use ubackup_common::validate::{check_relative, printable};
use ubackup_common::{BackupMessage, ResultRecord, Taken};
use ubackup_transport::source::{dest_dir, RsyncSource};

use crate::config::ServerConfig;

/// A validated backup message, ready to pull.
#[derive(Debug, Clone)]
pub struct PullJob {
    pub taken: Taken,
    pub msg: BackupMessage,
    pub source: RsyncSource,
    /// Path inside the module: the rest of `rsync_model`, then `filename`.
    pub remote_path: String,
    /// `server_root_path/TYPE/A.B.C/D`, the original layout.
    pub dest_dir: PathBuf,
    /// `basename(filename)`: what `rsync IP::MODEL/FILENAME DEST/` lands.
    pub file_name: String,
    pub size: u64,
    /// `blake3:<hex>` when the client sent one.
    pub checksum: Option<String>,
    /// Short stable id of the payload, names the job's temp dirs.
    pub key: String,
}

impl PullJob {
    pub fn final_path(&self) -> PathBuf {
        self.dest_dir.join(&self.file_name)
    }
    pub fn label(&self) -> String {
        self.msg.label()
    }
}

/// What to do with one taken element.
#[derive(Debug)]
pub enum Intake {
    Pull(Box<PullJob>),
    /// `success: false` from the client: no pull, a result with succeed 0.
    ClientFailure(Box<BackupMessage>),
    /// Dead-letter it with `reason`, and push `result` (an illegal backup).
    Illegal {
        reason: String,
        result: Box<ResultRecord>,
    },
}

/// Characters a shell gives meaning to. No legitimate backup name has
/// them, and original UBackup nodes (which may still pop the same lists
/// during a migration) pass names through a shell, so they are refused even
/// though ubackup itself never uses one.
const SHELL_META: &[char] = &['`', '$', ';', '|', '&', '<', '>', '(', ')', '\'', '"'];

/// Longest path component a filesystem accepts (NAME_MAX); a longer name
/// would only fail inside rsync, after a spawn, as a retried pull failure.
const NAME_MAX: usize = 255;
/// Longest whole name (rsync's MAXPATHLEN is 4096, the destination adds
/// `server_root_path/TYPE/A.B.C/D/` to it).
const NAME_TOTAL_MAX: usize = 1024;

fn check_name(what: &str, name: &str) -> Result<(), String> {
    check_relative(what, name)?;
    if let Some(c) = name.chars().find(|c| SHELL_META.contains(c)) {
        return Err(format!(
            "{what} `{}` contains shell metacharacter `{c}`",
            printable(name)
        ));
    }
    // (fault suite, issue 8: a 5 KB name reached rsync)
    if name.len() > NAME_TOTAL_MAX || name.split('/').any(|c| c.len() > NAME_MAX) {
        let shown: String = name.chars().take(40).collect();
        return Err(format!(
            "{what} `{}…` is {} bytes long; at most {NAME_TOTAL_MAX} in all and {NAME_MAX} per component",
            printable(&shown),
            name.len()
        ));
    }
    Ok(())
}

/// The module part of `rsync_model` (before the first `/`) is a plain
/// rsyncd.conf module name. `:` and `@` anywhere are refused because they
/// are rsync's host and user syntax (`h:873/x@evil`), and blanks in the
/// module name because no sane module has them and an original node would
/// split the command line there (fault suite, issue 8: both reached rsync).
fn check_model(model: &str) -> Result<(), String> {
    if let Some(c) = model.chars().find(|c| matches!(c, ':' | '@')) {
        return Err(format!(
            "rsync_model `{}` contains `{c}` (rsync host/user syntax); it must be MODULE[/SUBDIR]",
            printable(model)
        ));
    }
    let module = model.split('/').next().unwrap_or(model);
    if let Some(c) = module.chars().find(|c| c.is_whitespace()) {
        return Err(format!(
            "rsync_model module `{}` contains blank {c:?}; a module name is one word",
            printable(module)
        ));
    }
    Ok(())
}

pub fn intake(taken: &Taken, cfg: &ServerConfig) -> Intake {
    let illegal = |reason: String| Intake::Illegal {
        result: Box::new(illegal_result(&taken.payload, cfg, &reason)),
        reason,
    };
    let value: Value = match serde_json::from_str(&taken.payload) {
        Ok(v) => v,
        Err(e) => return illegal(format!("not JSON: {e}")),
    };
    let msg: BackupMessage = match serde_json::from_value(value) {
        Ok(m) => m,
        Err(e) => return illegal(format!("not a backup message: {e}")),
    };
    let ip: IpAddr = match msg.game_server_ip.trim().parse() {
        Ok(ip) => ip,
        Err(_) => {
            return illegal(format!(
                "game_server_ip `{}` is not an IP address",
                printable(&msg.game_server_ip)
            ))
        }
    };
    if let Err(e) = check_name("back_type", &msg.back_type).and_then(|_| {
        if msg.back_type.contains('/') {
            Err(format!(
                "back_type `{}` contains `/`",
                printable(&msg.back_type)
            ))
        } else {
            Ok(())
        }
    }) {
        return illegal(e);
    }
    if let Some(r) = &msg.run_id {
        if r.is_empty()
            || r.len() > 64
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return illegal(format!(
                "run_id `{}` is not 1-64 letters, digits, `-` or `_`",
                printable(r)
            ));
        }
    }
    if !msg.success {
        return Intake::ClientFailure(Box::new(msg));
    }
    if !cfg.source_allowed(ip) {
        return illegal(format!("game_server_ip {ip} is outside allow_sources"));
    }
    if let Err(e) =
        check_name("rsync_model", &msg.rsync_model).and_then(|_| check_model(&msg.rsync_model))
    {
        return illegal(e);
    }
    let Some(filename) = msg.filename.clone() else {
        return illegal("filename is null in a success message".into());
    };
    if let Err(e) = check_name("filename", &filename) {
        return illegal(e);
    }
    if msg.size < 0 {
        return illegal(format!("size {} is negative", msg.size));
    }
    if msg.rsync_port == Some(0) {
        return illegal("rsync_port 0 is not a port".into());
    }
    if let Some(c) = &msg.checksum {
        let ok = c
            .strip_prefix("blake3:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return illegal(format!(
                "checksum `{}` is not `blake3:<64 hex digits>`",
                printable(c)
            ));
        }
    }
    let (module, sub) = match msg.rsync_model.split_once('/') {
        Some((m, rest)) => (m.to_string(), Some(rest)),
        None => (msg.rsync_model.clone(), None),
    };
    let remote_path = match sub {
        Some(s) => format!("{s}/{filename}"),
        None => filename.clone(),
    };
    let file_name = filename.rsplit('/').next().unwrap_or(&filename).to_string();
    let job = PullJob {
        taken: taken.clone(),
        source: RsyncSource {
            ip,
            port: msg.rsync_port.unwrap_or(cfg.rsync_port),
            module,
        },
        remote_path,
        dest_dir: dest_dir(&cfg.server_root_path, &msg.back_type, ip),
        file_name,
        size: msg.size as u64,
        checksum: msg.checksum.clone().map(|c| c.to_ascii_lowercase()),
        key: blake3::hash(taken.payload.as_bytes()).to_hex()[..16].to_string(),
        msg,
    };
    Intake::Pull(Box::new(job))
}

/// The result for an illegal message: as much of the original's fields as
/// the payload yields (a non-JSON payload gives zeros), `succeed` 0, and the
/// reason in `log` and `illegal`, so the indexer records an illegal backup.
fn illegal_result(payload: &str, cfg: &ServerConfig, reason: &str) -> ResultRecord {
    let msg = serde_json::from_str::<BackupMessage>(payload).unwrap_or_else(|_| salvage(payload));
    let mut r = ResultRecord::from_message(&msg, &cfg.myip, &cfg.node_id, reason.to_string());
    r.illegal = Some(reason.to_string());
    // an address that is not an IP would break the `ip` field of the ES
    // mapping and fail the whole document; the raw text is in the dead letter
    if r.game_server_ip.trim().parse::<IpAddr>().is_err() {
        r.game_server_ip = "0.0.0.0".into();
    }
    r
}

/// What a payload that is not a backup message still says: each field it
/// has as a number (or numeric text) or text, zero or empty otherwise.
fn salvage(payload: &str) -> BackupMessage {
    let v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let int = |k: &str| match v.get(k) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    BackupMessage {
        filename: text("filename"),
        last_all_filename: text("last_all_filename"),
        size: int("size"),
        log: None,
        create_time: int("create_time"),
        success: false,
        server_id: int("server_id"),
        game_id: int("game_id"),
        op_id: int("op_id"),
        game_server_ip: text("game_server_ip").unwrap_or_default(),
        back_type: text("back_type").unwrap_or_default(),
        instance: int("instance"),
        rsync_model: String::new(),
        last_all_time: int("last_all_time"),
        interval: int("interval"),
        rsync_port: None,
        checksum: None,
        run_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg() -> ServerConfig {
        ServerConfig::parse(
            Path::new("/t.conf"),
            "[global]\nserver_root_path=/b/\nredis_host=127.0.0.1\nredis_queue=q\nmyip=10.9.9.9\nnode_id=n1\nallow_sources=10.0.0.0/8\n",
        )
        .unwrap()
    }

    fn msg(over: &[(&str, Value)]) -> Taken {
        let mut v = serde_json::json!({"filename": "db/x.tar.gz", "last_all_filename": null, "size": 10, "log": "ok",
            "create_time": 1763800000, "success": true, "server_id": "7", "game_id": 1, "op_id": 1,
            "game_server_ip": "10.1.2.3", "back_type": "mysql", "instance": 3306, "rsync_model": "backup/database_3306",
            "last_all_time": 0, "interval": 3600});
        for (k, val) in over {
            v[*k] = val.clone();
        }
        Taken {
            queue: "q".into(),
            payload: v.to_string(),
        }
    }

    #[test]
    fn original_layout_and_remote_path() {
        let Intake::Pull(job) = intake(&msg(&[]), &cfg()) else {
            panic!()
        };
        assert_eq!(job.dest_dir, Path::new("/b/mysql/10.1.2/3"));
        assert_eq!(job.final_path(), Path::new("/b/mysql/10.1.2/3/x.tar.gz"));
        assert_eq!(job.source.module, "backup");
        assert_eq!(job.source.port, 873);
        assert_eq!(job.remote_path, "database_3306/db/x.tar.gz");
    }

    #[test]
    fn illegal_inputs_have_reasons() {
        let c = cfg();
        for (taken, why) in [
            (msg(&[("filename", "../etc/passwd".into())]), "`..`"),
            (msg(&[("filename", "--rsh=sh".into())]), "option injection"),
            (
                msg(&[("filename", "$(touch x)".into())]),
                "shell metacharacter `$`",
            ),
            (
                msg(&[("filename", "a;b".into())]),
                "shell metacharacter `;`",
            ),
            (msg(&[("filename", "a`id`".into())]), "shell metacharacter"),
            (msg(&[("filename", "*.gz".into())]), "wildcard"),
            (msg(&[("filename", "x".repeat(5000).into())]), "bytes long"),
            (
                msg(&[("filename", format!("d/{}", "y".repeat(256)).into())]),
                "per component",
            ),
            (msg(&[("rsync_model", "h:873/x@evil".into())]), "host/user"),
            (msg(&[("rsync_model", "back up/db".into())]), "one word"),
            (msg(&[("rsync_model", "/abs".into())]), "absolute"),
            (
                msg(&[("game_server_ip", "db.example.com".into())]),
                "not an IP",
            ),
            (
                msg(&[("game_server_ip", "192.0.2.1".into())]),
                "outside allow_sources",
            ),
            (msg(&[("back_type", "../x".into())]), "back_type"),
            (msg(&[("size", (-1).into())]), "negative"),
            (msg(&[("checksum", "md5:abc".into())]), "blake3"),
            (msg(&[("run_id", "a b;rm".into())]), "run_id"),
            (msg(&[("run_id", "".into())]), "run_id"),
            (msg(&[("filename", Value::Null)]), "null"),
            (
                Taken {
                    queue: "q".into(),
                    payload: "{not json".into(),
                },
                "not JSON",
            ),
            (
                Taken {
                    queue: "q".into(),
                    payload: r#"{"filename":"x"}"#.into(),
                },
                "missing field",
            ),
        ] {
            match intake(&taken, &c) {
                Intake::Illegal { reason, result } => {
                    assert!(reason.contains(why), "{}: {reason}", taken.payload);
                    assert_eq!(result.succeed, 0);
                    assert_eq!(result.illegal.as_deref(), Some(reason.as_str()));
                    assert!(result.game_server_ip.parse::<IpAddr>().is_ok());
                }
                other => panic!("{}: {other:?}", taken.payload),
            }
        }
    }

    #[test]
    fn client_failure_is_not_pulled() {
        let t = msg(&[
            ("success", false.into()),
            ("filename", Value::Null),
            ("log", "script exit 1".into()),
        ]);
        assert!(matches!(intake(&t, &cfg()), Intake::ClientFailure(_)));
    }
}
