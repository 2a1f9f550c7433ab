//! `ubackup-client pin` / `unpin`: a pinned backup is never pruned, and
//! neither is anything it needs (pinning an incremental keeps its full and
//! the incrementals before it).

use ubackup_catalog::chain::is_full;
use ubackup_catalog::Retention;

use crate::at::{parse_at, show};
use crate::cli::PinArgs;
use crate::config::ClientConfig;
use crate::lookup::{instance_key, newest_usable, open_catalog};
use crate::tool::ToolError;

/// `ubackup-client pin` (`pinned`) or `unpin`: the line on stdout.
pub async fn command(cfg: &ClientConfig, args: &PinArgs, pinned: bool) -> Result<u8, ToolError> {
    let cat = open_catalog(cfg, if pinned { "pin" } else { "unpin" }).await?;
    print!("{}", pin(cfg, args, pinned, cat.as_ref()).await?);
    Ok(0)
}

/// Pins (or unpins) the record `--id`, or the backup `restore` would pick
/// for `--type/--instance/--at`. Returns the line to print.
pub async fn pin(
    cfg: &ClientConfig,
    args: &PinArgs,
    pinned: bool,
    cat: &dyn Retention,
) -> Result<String, ToolError> {
    let target = match (&args.id, args.back_type.as_deref(), args.instance) {
        (Some(id), _, _) => match cat.get(id).await? {
            Some(r) => r,
            None => {
                return Err(ToolError::NotFound(format!(
                    "no backup with id {id} in the catalog ({})",
                    cat.describe()
                )))
            }
        },
        (None, Some(ty), Some(inst)) => {
            let at = args
                .at
                .as_deref()
                .map(parse_at)
                .transpose()
                .map_err(|e| ToolError::Config(format!("--at: {e}")))?;
            newest_usable(cat, &instance_key(cfg, ty, inst, args.server_id), at).await?
        }
        _ => {
            return Err(ToolError::Config(
                "give the backup's ID (from `list`), or --type and --instance (and --at)".into(),
            ))
        }
    };
    if !cat.set_pinned(&target.id, pinned).await? {
        return Err(ToolError::NotFound(format!(
            "backup {} disappeared from the catalog",
            target.id
        )));
    }
    Ok(format!(
        "{} {} ({} {}, {} taken {}){}\n",
        if pinned { "pinned" } else { "unpinned" },
        target.id,
        target.result.label(),
        if is_full(&target) {
            "full"
        } else {
            "incremental"
        },
        target.result.back_type,
        show(target.result.create_time),
        if pinned && !is_full(&target) {
            "; its full and the incrementals before it are kept too"
        } else {
            ""
        }
    ))
}
