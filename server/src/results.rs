//! Where results go. The fenced ack (one Lua script) can only touch keys of
//! the queue Redis, so:
//!
//! * when `message_redis_*` names the same server and database as the queue
//!   Redis, the ack pushes straight onto `message_queue`;
//! * otherwise the ack pushes onto this node's outbox on the queue Redis
//!   (`Keys::outbox`), and a forwarder moves outbox → message Redis
//!   ([`forward_once`]: a result may be sent twice, never lost). A dead
//!   node's outbox is forwarded by the reaper of any live node.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use ubackup_common::queue::outbox::forward_once;
use ubackup_common::shutdown::Shutdown;
use ubackup_common::RedisConn;
use ubackup_common::{Keys, RedisTarget};

#[derive(Clone)]
pub struct ResultSink {
    /// The list the fenced ack pushes onto (on the queue Redis).
    pub ack_list: String,
    forward: Option<Arc<Forward>>,
}

struct Forward {
    message: RedisTarget,
    message_queue: String,
    wake: Notify,
}

impl ResultSink {
    pub fn new(
        queue: &RedisTarget,
        message: &RedisTarget,
        message_queue: &str,
        keys: &Keys,
        node: &str,
    ) -> Self {
        if queue.same_server(message) {
            ResultSink {
                ack_list: message_queue.to_string(),
                forward: None,
            }
        } else {
            ResultSink {
                ack_list: keys.outbox(node),
                forward: Some(Arc::new(Forward {
                    message: message.clone(),
                    message_queue: message_queue.to_string(),
                    wake: Notify::new(),
                })),
            }
        }
    }

    pub fn via_outbox(&self) -> bool {
        self.forward.is_some()
    }

    /// Tells the forwarder a result is waiting.
    pub fn notify(&self) {
        if let Some(f) = &self.forward {
            f.wake.notify_one();
        }
    }

    /// Runs until shutdown, moving this node's outbox to the message Redis;
    /// a final round runs after shutdown. Returns at once without an outbox.
    pub async fn forward_own(&self, queue: RedisConn, mut stop: Shutdown) {
        let Some(f) = self.forward.clone() else {
            return;
        };
        let mut target: Option<RedisConn> = None;
        let mut failures = 0u32;
        loop {
            match forward_once(
                &queue,
                &mut target,
                &f.message,
                &self.ack_list,
                &f.message_queue,
            )
            .await
            {
                Ok(n) if n > 0 => {
                    failures = 0;
                    continue;
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures % 30 == 0 {
                        tracing::warn!(outbox = %self.ack_list, message_redis = %f.message, "cannot forward results yet: {e}");
                    }
                }
            }
            if stop.is_triggered() {
                return;
            }
            tokio::select! {
                _ = f.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(if failures > 0 { 2000 } else { 1000 })) => {}
                _ = stop.wait() => {}
            }
        }
    }

    /// Forwards another node's outbox (a node that died with results not yet
    /// sent). Returns how many results moved.
    pub async fn forward_other(&self, queue: &RedisConn, outbox: &str) -> redis::RedisResult<u64> {
        let Some(f) = self.forward.clone() else {
            return Ok(0);
        };
        let mut target = None;
        let mut total = 0;
        loop {
            let n = forward_once(queue, &mut target, &f.message, outbox, &f.message_queue).await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }
}
