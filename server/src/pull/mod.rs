//! One taken message, start to finish: validate, then pull it alone or
//! together with waiting messages of the same source, land, and
//! acknowledge with its result, or dead-letter it. The message stays in
//! this node's in-flight list until the fenced ack or dead-letter removes
//! it; every early return that does neither leaves it there for the drain
//! or restart re-queue.
//!
//! The dispatcher (`worker`) calls [`process`]; nothing here calls
//! back into it, only the shared [`Ctx`]. Inside, the path reads one way:
//! * [`process`] (here): intake, then the single or the batched pull;
//! * `batch`: several messages of one rsync source in one rsync call; a
//!   file that did not land with the others goes to the single pull;
//! * `single`: one message with its own rsync and retries;
//! * `outcome`: what both end with (result records, the fenced ack, the
//!   dead-letter, the quarantine, the wait before another attempt);
//! * `window`: the node's deep look at a list when many hosts interleave,
//!   so a batch still finds its host's other messages;
//! * `args`: the node config as the transport's rsync options;
//! * `ctx`: what every pull shares with the dispatcher.
//!
//! A replication task (from the node's replication list) is not a pull of
//! a backup message: the dispatcher hands it to `crate::replica::copy`.

mod args;
mod batch;
mod ctx;
mod outcome;
mod single;
mod window;

use std::sync::Arc;

use tracing::Instrument;
use ubackup_common::Taken;

pub(crate) use ctx::Ctx;
pub(crate) use outcome::retry_redis;

use crate::failpoint;
use crate::intake::{intake, Intake};
use crate::node::CountGuard;

/// Runs one taken message to its end (see the module doc), then the
/// original's `interval` pause, holding the worker slot.
pub(crate) async fn process(ctx: Arc<Ctx>, taken: Taken) {
    let _active = CountGuard::new(&ctx.status.active);
    let span = tracing::info_span!("job", queue = %taken.queue);
    async {
        failpoint::hit("after_take").await;
        let cfg = ctx.cfg();
        match intake(&taken, &cfg) {
            Intake::Illegal { reason, result } => {
                outcome::illegal(&ctx, &taken, &reason, &result).await;
            }
            Intake::ClientFailure(msg) => {
                outcome::client_failure(&ctx, &cfg, &taken, &msg).await;
            }
            Intake::Pull(job) => {
                let more = batch::claim_more(&ctx, &cfg, &job).await;
                if more.is_empty() {
                    single::pull(&ctx, *job).await;
                } else {
                    let mut jobs = vec![*job];
                    jobs.extend(more);
                    let span = tracing::info_span!("batch", src = %jobs[0].source.ip, port = jobs[0].source.port, module = %jobs[0].source.module, files = jobs.len());
                    batch::pull_batch(&ctx, jobs).instrument(span).await;
                }
            }
        }
    }
    .instrument(span)
    .await;
    // the original's `interval`: a pause after each message, holding the slot
    let pause = ctx.cfg().interval;
    if !pause.is_zero() {
        ctx.stop.clone().sleep(pause).await;
    }
}
