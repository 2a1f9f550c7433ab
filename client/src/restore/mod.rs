//! `ubackup-client restore`: find a backup in the catalog, pull its whole
//! chain back from the nodes, verify it, and only then put it in `--dest`.
//!
//! Layout:
//! * [`at`]: `--at` parsing and the local-time display;
//! * [`select`]: which backup (the newest usable one at or before `--at`)
//!   and which chain; errors say what was looked for and what was found;
//! * [`pull`]: rsync from the nodes' read-only module into a scratch dir,
//!   checks, and the one rename into `--dest`;
//! * [`hook`]: `--run-hook`, the instance's `restore_script`.
//!
//! `list` and `pin`/`unpin` (crate::list, crate::pin) share the catalog
//! opening and the error type here.

pub mod at;
pub mod hook;
pub mod pull;
pub mod select;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ubackup_catalog::{CatalogLocation, CatalogRecord, InstanceKey, Retention};
use ubackup_common::config::SectionReader;
use ubackup_common::shutdown::Shutdown;

use crate::cli::RestoreArgs;
use crate::config::ClientConfig;

/// Exit codes of `list`, `restore`, `pin` and `unpin`.
pub mod exit {
    pub const OK: u8 = 0;
    /// Config or command-line error (a missing `catalog` key, a bad
    /// `--at`, a `--dest` that is not empty…): nothing was done.
    pub const CONFIG: u8 = 2;
    /// No backup matches, or its chain is incomplete.
    pub const NOT_FOUND: u8 = 5;
    /// The catalog could not be opened or read.
    pub const CATALOG: u8 = 6;
    /// A file could not be pulled or failed verification; `--dest` is untouched.
    pub const TRANSFER: u8 = 7;
    /// Stopped by SIGTERM/SIGINT; `--dest` is untouched.
    pub const INTERRUPTED: u8 = 8;
}

/// Why a tool command failed; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Catalog(String),
    #[error("{0}")]
    Transfer(String),
    #[error("interrupted: {0}")]
    Interrupted(String),
}

impl ToolError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ToolError::Config(_) => exit::CONFIG,
            ToolError::NotFound(_) => exit::NOT_FOUND,
            ToolError::Catalog(_) => exit::CATALOG,
            ToolError::Transfer(_) => exit::TRANSFER,
            ToolError::Interrupted(_) => exit::INTERRUPTED,
        }
    }
}

impl From<ubackup_catalog::CatalogError> for ToolError {
    fn from(e: ubackup_catalog::CatalogError) -> Self {
        ToolError::Catalog(format!("catalog error: {e}"))
    }
}

/// Opens the catalog the client config names (`catalog` or `es_urls`).
pub async fn open_catalog(
    cfg: &ClientConfig,
    needed_for: &str,
) -> Result<Arc<dyn Retention>, ToolError> {
    let g = SectionReader::required(&cfg.doc, "global")
        .map_err(|e| ToolError::Config(e.to_string()))?;
    let loc =
        CatalogLocation::required(&g, needed_for).map_err(|e| ToolError::Config(e.to_string()))?;
    loc.open()
        .await
        .map_err(|e| ToolError::Catalog(format!("cannot open the catalog ({loc}): {e}")))
}

/// `server_id:type:instance` from the command line, the server id
/// defaulting to this host's.
pub fn instance_key(
    cfg: &ClientConfig,
    back_type: &str,
    instance: i64,
    server_id: Option<i64>,
) -> InstanceKey {
    InstanceKey {
        server_id: server_id.unwrap_or(cfg.global.server_id),
        back_type: back_type.to_string(),
        instance,
    }
}

/// `mysql/3306 of server 111111`: how messages name an instance.
pub fn describe(key: &InstanceKey) -> String {
    format!(
        "{}/{} of server {}",
        key.back_type, key.instance, key.server_id
    )
}

/// What a finished restore did.
#[derive(Debug)]
pub struct Restored {
    pub target: CatalogRecord,
    pub dest: PathBuf,
    /// Absolute paths in `dest`, the full first.
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    pub elapsed: std::time::Duration,
    /// The hook's exit code, with `--run-hook`.
    pub hook_code: Option<u8>,
}

/// The default `--dest`: `./restore-<type>-<instance>-<YYYYmmdd-HHMMSS>`
/// (the backup's local time) in the current directory.
pub fn default_dest(target: &CatalogRecord) -> PathBuf {
    let stamp = chrono::TimeZone::timestamp_millis_opt(&chrono::Local, target.result.create_time)
        .single()
        .map(|t| t.format("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_else(|| (target.result.create_time / 1000).to_string());
    PathBuf::from(format!(
        "restore-{}-{}-{stamp}",
        target.result.back_type, target.result.instance
    ))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The whole restore: select → chain → pull and verify → land → hook.
/// With `dry_run`, stops after printing the plan.
pub async fn restore(
    cfg: &ClientConfig,
    args: &RestoreArgs,
    shutdown: Shutdown,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Restored, ToolError> {
    let started = std::time::Instant::now();
    let at_ms = args
        .at
        .as_deref()
        .map(at::parse_at)
        .transpose()
        .map_err(|e| ToolError::Config(format!("--at: {e}")))?;
    let cat = open_catalog(cfg, "restore").await?;
    let target = match &args.id {
        Some(id) => select::by_id(cat.as_ref(), id).await?,
        None => {
            let (Some(ty), Some(inst)) = (args.back_type.as_deref(), args.instance) else {
                return Err(ToolError::Config(
                    "restore needs --type and --instance (or --id)".into(),
                ));
            };
            let key = instance_key(cfg, ty, inst, args.server_id);
            select::newest_usable(cat.as_ref(), &key, at_ms).await?
        }
    };
    // the hook's section is checked before anything is pulled
    let hook = match args.run_hook {
        true => Some(hook::find(
            cfg,
            &target.result.back_type,
            target.result.instance,
        )?),
        false => None,
    };
    let chain = select::chain(cat.as_ref(), &target).await?;
    let wanted = pull::wanted(&chain, &pull::NodeAccess::from_config(cfg))?;
    let dest = absolute(&args.dest.clone().unwrap_or_else(|| default_dest(&target)));
    writeln!(out, "{}", select::plan_text(&target, &wanted, &dest)).ok();
    if args.dry_run {
        return Ok(Restored {
            target,
            dest,
            files: Vec::new(),
            bytes: 0,
            elapsed: started.elapsed(),
            hook_code: None,
        });
    }
    pull::check_dest(&dest)?;
    let bytes = pull::fetch(
        &wanted,
        &dest,
        &pull::NodeAccess::from_config(cfg),
        shutdown.clone(),
    )
    .await?;
    let files: Vec<PathBuf> = wanted.iter().map(|w| dest.join(&w.local)).collect();
    let elapsed = started.elapsed();
    let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-3);
    writeln!(
        out,
        "restored {} file(s), {} into {} in {:.1} s ({}/s)",
        files.len(),
        at::bytes(bytes as i64),
        dest.display(),
        elapsed.as_secs_f64(),
        at::bytes(rate as i64)
    )
    .ok();
    let hook_code = match hook {
        Some(h) => Some(hook::run(&h, &target, &dest, &files, shutdown).await?),
        None => None,
    };
    Ok(Restored {
        target,
        dest,
        files,
        bytes,
        elapsed,
        hook_code,
    })
}

/// Runs a tool subcommand on its own runtime; returns the exit code.
/// Errors go to stderr as `ubackup-client <cmd>: …`.
pub fn run_tool<F, Fut>(name: &str, f: F) -> u8
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<u8, ToolError>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ubackup-client {name}: cannot start the async runtime: {e}");
            return exit::CATALOG;
        }
    };
    rt.block_on(async move {
        let (_trigger, shutdown) = match ubackup_common::shutdown::on_signals() {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("ubackup-client {name}: cannot install signal handlers: {e}");
                return exit::CONFIG;
            }
        };
        match f(shutdown).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("ubackup-client {name}: {e}");
                e.exit_code()
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_catalog_key_is_a_known_client_key() {
        for k in ubackup_catalog::location::KEYS {
            assert!(
                crate::config::GLOBAL_KEYS.contains(k),
                "{k} missing from GLOBAL_KEYS"
            );
        }
    }
}
