//! `ubackup-client restore`: find a backup in the catalog, pull its whole
//! chain back from the nodes, verify it, and only then put it in `--dest`.
//!
//! Layout:
//! * [`select`]: which chain the chosen backup needs (the backup itself is
//!   chosen by [`crate::lookup`]), and the plan printed before pulling;
//! * [`pull`]: rsync from the nodes' read-only module into a scratch dir,
//!   checks, and the one rename into `--dest`;
//! * [`hook`]: `--run-hook`, the instance's `restore_script`.
//!
//! [`command`] is the subcommand as `main` runs it.

pub mod hook;
pub mod pull;
pub mod select;

use std::path::{Path, PathBuf};

use ubackup_catalog::CatalogRecord;
use ubackup_common::shutdown::Shutdown;

// The pull names these through `super::`.
pub use crate::at;
pub use crate::tool::ToolError;

use crate::cli::RestoreArgs;
use crate::config::ClientConfig;
use crate::lookup::{instance_key, newest_usable, open_catalog};

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

/// `ubackup-client restore`: the restore with its report on stdout; the
/// exit code is the hook's (with `--run-hook`), else 0.
pub async fn command(
    cfg: &ClientConfig,
    args: &RestoreArgs,
    stop: Shutdown,
) -> Result<u8, ToolError> {
    let r = restore(cfg, args, stop, &mut std::io::stdout()).await?;
    Ok(r.hook_code.unwrap_or(0))
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
        Some(id) => crate::lookup::by_id(cat.as_ref(), id).await?,
        None => {
            let (Some(ty), Some(inst)) = (args.back_type.as_deref(), args.instance) else {
                return Err(ToolError::Config(
                    "restore needs --type and --instance (or --id)".into(),
                ));
            };
            let key = instance_key(cfg, ty, inst, args.server_id);
            newest_usable(cat.as_ref(), &key, at_ms).await?
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
    let mut access = pull::NodeAccess::from_config(cfg);
    if let Some(id) = &args.identity {
        access.identity = Some(id.clone());
    }
    let wanted = pull::wanted(&chain, &access)?;
    check_identity(&wanted, &access)?;
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
    let bytes = pull::fetch(&wanted, &dest, &access, shutdown.clone()).await?;
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

/// Files stored encrypted need the identity: without one (or with one
/// that cannot be read) the restore stops here, before anything is pulled.
fn check_identity(wanted: &[pull::Wanted], access: &pull::NodeAccess) -> Result<(), ToolError> {
    let encrypted: Vec<&str> = wanted
        .iter()
        .filter(|w| w.plain.is_some())
        .map(|w| w.local.as_str())
        .collect();
    if encrypted.is_empty() {
        return Ok(());
    }
    let Some(id) = &access.identity else {
        return Err(ToolError::Config(format!(
            "{} stored encrypted on the nodes (encrypt_to); give the age identity with --identity FILE or the client key age_identity; nothing was pulled",
            encrypted.join(", ")
        )));
    };
    ubackup_transport::at_rest::Identities::load(id)
        .map(|_| ())
        .map_err(|e| {
            ToolError::Config(format!(
                "--identity / age_identity: {e}; nothing was pulled"
            ))
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
