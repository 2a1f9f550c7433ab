//! `ubackup-client check`: a readable account of what a run would do.

use std::fmt::Write;

use ubackup_common::config::ConfigError;

use crate::config::ClientConfig;
use crate::RunOptions;

/// `ubackup-client check`: the summary on stdout (config warnings on
/// stderr first), or the error on stderr; returns the exit code.
pub fn command(cfg: &ClientConfig, opts: &RunOptions) -> u8 {
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    match describe(cfg, opts) {
        Ok(text) => {
            print!("{text}");
            crate::exit::OK
        }
        Err(e) => {
            eprintln!("ubackup-client: config error: {e}");
            crate::exit::CONFIG
        }
    }
}

/// The summary printed by `check`, or the error a run would stop on.
pub fn describe(cfg: &ClientConfig, opts: &RunOptions) -> Result<String, ConfigError> {
    let plan = crate::plan(cfg, opts)?;
    let g = &cfg.global;
    let mut s = String::new();
    let _ = writeln!(s, "config {}: OK", cfg.file.display());
    let _ = writeln!(
        s,
        "  server_id {}, game_id {}, op_id {}, my_ip {}, interval {} s{}",
        g.server_id,
        g.game_id,
        g.op_id,
        g.my_ip,
        g.interval,
        g.rsync_port
            .map(|p| format!(", rsync_port {p}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "  redis {}, key_prefix {}, spool_dir {}, dedup_ttl {} s",
        g.redis,
        g.key_prefix,
        g.spool_dir.display(),
        g.dedup_ttl
    );
    let _ = writeln!(
        s,
        "  log {}, error_log {}",
        g.log
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(stderr only)".into()),
        g.error_log
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(stderr only)".into())
    );
    let _ = writeln!(s, "instances to run ({}):", plan.len());
    for (i, queue) in &plan {
        let _ = writeln!(
            s,
            "  [{}] {} {} -> list {}",
            i.section, i.back_type, i.instance, queue
        );
        let _ = writeln!(s, "      script: {}", i.script);
        let _ = writeln!(
            s,
            "      timeout {}, checksum {}, pulled from {}::{}/<file>",
            i.timeout
                .map(|t| format!("{} s", t.as_secs()))
                .unwrap_or_else(|| "none".into()),
            i.checksum,
            g.my_ip,
            i.rsync_model
        );
        let _ = writeln!(
            s,
            "      back_dir {}, back_log {}",
            i.back_dir.display(),
            i.back_log.display()
        );
        if let Some(l) = &i.last_all_log {
            let _ = writeln!(s, "      full + incremental, last_all_log {}", l.display());
        }
    }
    Ok(s)
}
