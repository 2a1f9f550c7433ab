//! The cron reporters: `disk` on a node (no catalog there) and `queue` on
//! the indexer host get every sample into the catalog through Redis;
//! Elasticsearch gets them too when configured.

use crate::common;

use common::*;
use ubackup_catalog::{QueueKind, SampleQuery};
use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_testkit::es::EsStandIn;

/// A pull node's config (server INI) with no catalog.
fn server_conf(b: &Bench, root: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[global]\nwork_thread = 4\nserver_root_path = {}\nreserve = 1\nredis_host = 127.0.0.1\nredis_port = {}\nredis_queue = {} {}\nmyip = 10.20.0.5\nnode_id = 5\nmessage_queue = {}\nkey_prefix = {}\ncatalog = off\n{extra}\n",
        root.display(),
        b.redis.port,
        b.q1,
        b.q2,
        b.mq,
        b.prefix
    );
    let p = b.dir.path().join("server.conf");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test]
async fn disk_on_a_node_and_queue_on_the_indexer_host_fill_the_catalog() {
    let b = Bench::new("");
    let root = b.dir.path().join("backup");
    std::fs::create_dir_all(&root).unwrap();
    let conf = server_conf(&b, &root, "");
    let (code, out, err) = b.run(&["disk", "-c", p(&conf)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("disk node 5:") && out.contains("1 sample(s) pending"),
        "{out}"
    );

    let st = nix::sys::statvfs::statvfs(&root).unwrap();
    let total = st.blocks() as u64 * st.fragment_size() as u64;
    let h = b.hgetall(&b.keys.state("5"));
    assert_eq!(h[state::DISK_TOTAL].parse::<u64>().unwrap(), total);
    let free: u64 = h[state::DISK_FREE].parse().unwrap();
    let used: u64 = h[state::DISK_USED].parse().unwrap();
    assert!(free > 0 && free <= total && used <= total, "{h:?}");
    // the printed % is the one status computes from the state hash
    let pct = 100.0 * (total - free) as f64 / total as f64;
    assert!(
        out.contains(&format!("({pct:.1}% not available to the node)")),
        "{pct:.1} in {out}"
    );
    assert!(h[state::DISK_SAMPLE_MS].parse::<i64>().unwrap() > now_ms() - 60_000);
    assert!(h[state::MEM_TOTAL].parse::<u64>().unwrap() > 0, "{h:?}");
    assert!(h[state::CPUS].parse::<u64>().unwrap() > 0, "{h:?}");
    assert!(h.contains_key(state::LOAD1), "{h:?}");
    assert_eq!(h[state::IP], "10.20.0.5");
    let pending: u64 = redis::cmd("LLEN")
        .arg(b.keys.samples())
        .query(&mut b.conn())
        .unwrap();
    assert_eq!(pending, 1);

    // the node's lists as they are now
    b.node("5", true, &[]);
    let mut c = b.conn();
    for i in 0..3 {
        redis::cmd("LPUSH")
            .arg(&b.q1)
            .arg(message(1, i, now_ms() / 1000 - 60))
            .query::<()>(&mut c)
            .unwrap();
    }
    redis::cmd("LPUSH")
        .arg(b.keys.inflight("5", &b.q2))
        .arg(message(1, 9, now_ms() / 1000))
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("LPUSH")
        .arg(b.keys.dead(&b.q1))
        .arg("{}")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("LPUSH")
        .arg(&b.mq)
        .arg("{}")
        .query::<()>(&mut c)
        .unwrap();

    // queue, with the indexer's config (catalog there)
    let (code, out, err) = b.run(&["queue", "-c", p(&b.config)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("priority {} 3", b.q1)), "{out}");
    let pending: u64 = redis::cmd("LLEN")
        .arg(b.keys.samples())
        .query(&mut c)
        .unwrap();
    assert_eq!(pending, 0, "all samples moved into the catalog");
    let depths = b.hgetall(&b.keys.queue_depths());
    assert_eq!(depths[&b.q1], "3");
    assert_eq!(depths[&b.keys.inflight("5", &b.q2)], "1");
    assert_eq!(depths[&b.keys.dead(&b.q1)], "1");
    assert_eq!(depths[&b.mq], "1");

    let disk = b
        .catalog
        .disk_samples(&SampleQuery::default())
        .await
        .unwrap();
    assert_eq!(disk.len(), 1);
    assert_eq!((disk[0].node.as_str(), disk[0].total), ("5", total));
    let q = b
        .catalog
        .queue_samples(&SampleQuery {
            source: Some(b.q1.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].kind, q[0].depth), (QueueKind::Priority, 3));
    assert!(q[0].oldest_age_ms.unwrap() >= 60_000, "{:?}", q[0]);
    let all = b
        .catalog
        .queue_samples(&SampleQuery::default())
        .await
        .unwrap();
    let kinds: std::collections::BTreeSet<QueueKind> = all.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds.len(),
        4,
        "priority, results, in-flight and dead lists sampled: {all:?}"
    );
    let infl = all
        .iter()
        .find(|s| s.kind == QueueKind::Inflight && s.depth == 1)
        .unwrap();
    assert_eq!(infl.worker.as_deref(), Some("5"));

    // a second disk run on the node, drained by the next queue run
    b.run(&["disk", "-c", p(&conf)]);
    b.run(&["queue", "-c", p(&b.config)]);
    assert_eq!(
        b.catalog
            .disk_samples(&SampleQuery::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn samples_go_to_elasticsearch_and_wait_in_redis_while_it_is_down() {
    let b = Bench::new("");
    let es = EsStandIn::start();
    let root = b.dir.path().join("backup");
    std::fs::create_dir_all(&root).unwrap();
    let conf = server_conf(
        &b,
        &root,
        &format!("es_urls = {}\nes_index = ubk", es.url()),
    );

    es.set_down(true);
    let (code, out, _) = b.run(&["disk", "-c", p(&conf)]);
    assert_eq!(code, 1, "ES down: samples kept, exit 1: {out}");
    assert!(out.contains("1 pending in Redis"), "{out}");
    assert_eq!(es.doc_count("ubk-samples"), 0);

    es.set_down(false);
    let (code, out, _) = b.run(&["disk", "-c", p(&conf)]);
    assert_eq!(code, 0, "{out}");
    let docs = es.docs("ubk-samples");
    assert_eq!(docs.len(), 2, "both samples, once each: {docs:?}");
    for d in docs.values() {
        assert_eq!(d["sample"], "disk");
        assert_eq!(d["node"], "5");
        assert!(d["total"].as_u64().unwrap() > 0);
    }
    let mapping = es
        .mapping("ubk-samples")
        .expect("index created with its mapping");
    assert_eq!(
        mapping["properties"]["time_ms"]["type"], "date",
        "{mapping}"
    );
    let pending: u64 = redis::cmd("LLEN")
        .arg(b.keys.samples())
        .query(&mut b.conn())
        .unwrap();
    assert_eq!(pending, 0);
}
