//! How long a clean stop of each long-running program may take: what the
//! deploy files' stop timeouts (supervisor `stopwaitsecs`, systemd
//! `TimeoutStopSec`) must exceed before they send SIGKILL. Kept here, in a
//! library, so the deployment checks can read them without linking a
//! program.

use std::time::Duration;

/// The node's `drain_secs` when its config does not set it: running pulls
/// may finish this long after SIGTERM.
pub const SERVER_DRAIN_DEFAULT: Duration = Duration::from_secs(60);

/// How long the indexer lets a running store call finish after shutdown
/// starts, before it hands the batch back.
pub const INDEXER_DRAIN_GRACE: Duration = Duration::from_secs(5);
