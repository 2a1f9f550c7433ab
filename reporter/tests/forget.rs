//! `forget-node`: a decommissioned node leaves `status` and its node_down
//! alert resolves, but never while it is alive or still holds work (its
//! in-flight items would be stranded: the reaper finds them through the
//! state hash that forgetting deletes).

use crate::common;

use common::{p, Bench};
use redis::Commands;

#[test]
fn forget_node_refuses_while_alive_or_holding_work_then_forgets() {
    let b = Bench::new("");
    b.node("old-7", true, &[]);
    b.node("keep-1", true, &[]);
    let mut c = b.conn();
    let forget = |id: &str| b.run(&["forget-node", "-c", p(&b.config), id]);

    let (code, out, _) = forget("old-7");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is alive"), "{out}");

    // down, with one message in flight on a list its state hash no longer
    // names (its config changed before it was retired)
    b.set_up("old-7", false);
    let stray = b.keys.inflight("old-7", "retired_list");
    let _: () = c.lpush(&stray, r#"{"filename":"x"}"#).unwrap();
    let (code, out, _) = forget("old-7");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 message(s) in flight"), "{out}");
    let (_, status, _) = b.run(&["status", "-c", p(&b.config)]);
    assert!(
        status.contains("old-7"),
        "still listed while refused: {status}"
    );

    // a result waiting in its outbox also holds it
    let _: () = c.del(&stray).unwrap();
    let _: () = c.lpush(b.keys.outbox("old-7"), "{}").unwrap();
    let (code, out, _) = forget("old-7");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("outbox"), "{out}");

    // nothing left: forgotten, and only it
    let _: () = c.del(b.keys.outbox("old-7")).unwrap();
    let _: () = c.hset(b.keys.control("old-7"), "paused", "1").unwrap();
    let (code, out, _) = forget("old-7");
    assert_eq!(code, 0, "{out}");
    let workers: Vec<String> = c.smembers(b.keys.workers()).unwrap();
    assert_eq!(workers, ["keep-1"]);
    assert!(b.hgetall(&b.keys.state("old-7")).is_empty());
    assert!(b.hgetall(&b.keys.control("old-7")).is_empty());
    assert!(!b.hgetall(&b.keys.state("keep-1")).is_empty());
    let (_, status, _) = b.run(&["status", "-c", p(&b.config)]);
    assert!(!status.contains("old-7"), "{status}");
    assert!(status.contains("keep-1"), "{status}");

    // again: nothing is known of it, exit 3 (unknown)
    let (code, out, _) = forget("old-7");
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("no worker `old-7`"), "{out}");
}
