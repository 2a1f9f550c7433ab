//! `--run-hook`: the instance's `restore_script` after a restore.
//!
//! Like `script`, it is the operator's own line from the config, run with
//! `sh -c` in its own process group; nothing from the catalog reaches the
//! command line, only the environment:
//! `BACKUP_FILES` (absolute paths, full first, space-separated),
//! `BACKUP_DIR` (`--dest`), `FULL_FILE`, `BACKUP_TYPE`, `INSTANCE`,
//! plus `BACKUP_SERVER_ID` and `BACKUP_TIME` (unix seconds of the backup).
//! Its output goes straight to ours (an operator watches a restore), and
//! its exit code becomes the command's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use ubackup_catalog::CatalogRecord;
use ubackup_common::config::SectionReader;
use ubackup_common::shutdown::Shutdown;

use crate::config::ClientConfig;
use crate::tool::ToolError;

/// The restore script of one instance section.
#[derive(Debug, Clone)]
pub struct Hook {
    pub section: String,
    pub script: String,
}

/// The `restore_script` of the section with this back_type and instance.
pub fn find(cfg: &ClientConfig, back_type: &str, instance: i64) -> Result<Hook, ToolError> {
    let Some(inst) = cfg
        .instances
        .iter()
        .find(|i| i.back_type == back_type && i.instance == instance)
    else {
        return Err(ToolError::Config(format!(
            "--run-hook: {} has no instance section with back_type {back_type} and instance {instance} to take restore_script from",
            cfg.file.display()
        )));
    };
    match &inst.restore_script {
        Some(s) => Ok(Hook {
            section: inst.section.clone(),
            script: s.clone(),
        }),
        None => {
            let section = cfg
                .doc
                .section(&inst.section)
                .expect("instance came from this doc");
            Err(ToolError::Config(
                SectionReader::new(&cfg.doc, section)
                    .error("restore_script", "missing; --run-hook needs the shell command that restores from $BACKUP_DIR")
                    .to_string(),
            ))
        }
    }
}

/// The hook's environment.
pub fn environment(
    target: &CatalogRecord,
    dest: &Path,
    files: &[PathBuf],
) -> Vec<(&'static str, String)> {
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    vec![
        ("BACKUP_FILES", list.join(" ")),
        ("BACKUP_DIR", dest.display().to_string()),
        ("FULL_FILE", list.first().cloned().unwrap_or_default()),
        ("BACKUP_TYPE", target.result.back_type.clone()),
        ("INSTANCE", target.result.instance.to_string()),
        ("BACKUP_SERVER_ID", target.result.server_id.to_string()),
        (
            "BACKUP_TIME",
            (target.result.create_time / 1000).to_string(),
        ),
    ]
}

/// Runs the hook; its exit code (128+N when killed by signal N, 126 when
/// `sh` cannot be started). A stop signal ends its process group.
pub async fn run(
    hook: &Hook,
    target: &CatalogRecord,
    dest: &Path,
    files: &[PathBuf],
    mut shutdown: Shutdown,
) -> Result<u8, ToolError> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&hook.script)
        .current_dir(dest)
        .stdin(Stdio::null())
        .process_group(0);
    for (k, v) in environment(target, dest, files) {
        cmd.env(k, v);
    }
    tracing::info!(section = %hook.section, "running restore_script: {}", hook.script);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "ubackup-client restore: cannot start restore_script of [{}]: {e}",
                hook.section
            );
            return Ok(126);
        }
    };
    let pgid = Pid::from_raw(child.id().unwrap_or(0) as i32);
    let status = tokio::select! {
        st = child.wait() => st,
        _ = shutdown.wait() => {
            let _ = killpg(pgid, Signal::SIGTERM);
            match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(st) => st,
                Err(_) => {
                    let _ = killpg(pgid, Signal::SIGKILL);
                    child.wait().await
                }
            }
        }
    };
    let code = match status {
        Ok(st) => {
            use std::os::unix::process::ExitStatusExt;
            match (st.code(), st.signal()) {
                (Some(c), _) => c.clamp(0, 255) as u8,
                (None, Some(s)) => (128 + s).clamp(0, 255) as u8,
                _ => 1,
            }
        }
        Err(e) => {
            return Err(ToolError::Transfer(format!(
                "waiting for restore_script failed: {e}"
            )))
        }
    };
    if code != 0 {
        eprintln!(
            "ubackup-client restore: restore_script of [{}] exited with {code}",
            hook.section
        );
    }
    Ok(code)
}
