//! Second copies over mutual TLS: two nodes in two zones with `copies = 2`
//! and `rsync_tls = yes`, each node's read-only module reachable only
//! through a stunnel that requires a certificate from the test's CA (as
//! deploy/stunnel/node-rsync-tls.conf ships it), the database host behind
//! one too. The plain module daemons listen on other addresses
//! (127.0.1.k) that no node is told about, so a copy pulled in plain from
//! a published address finds nothing there and fails: every copy that
//! lands came through TLS.

use std::net::IpAddr;
use std::time::Duration;

use redis::Commands;
use ubackup_common::fsutil::blake3_file;
use ubackup_testkit::cluster::tls::{start_stunnel, Backend, Leaf, Pki, StunnelConf};
use ubackup_testkit::cluster::{localhost, ClusterBuilder, Conf};
use ubackup_testkit::Proc;

use super::rig::*;

#[test]
fn second_copies_travel_between_nodes_over_mutual_tls_only() {
    let _one = crate::one_cluster();
    let cluster = ClusterBuilder::new("repltls").start().unwrap();
    let root = cluster.dir.path().to_path_buf();
    let names = cluster.names.clone();
    let mut rc = cluster.conn();

    // two chains and a few redis fulls are enough to exercise the path
    let host = root.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let all = make_files(&host);
    let made: Vec<Made> = all
        .iter()
        .filter(|m| {
            m.name.starts_with("mysql_") && (m.name.contains("_0") || m.name.contains("_1"))
        })
        .chain(all.iter().filter(|m| m.back_type == "redis").take(4))
        .cloned()
        .collect();
    assert!(made.len() >= 12, "{} files", made.len());
    let dbhost = cluster.test_dbhost(&host, false, "").unwrap();

    let ids = ["n1", "n3"];
    let catalog = root.join("catalog.db");
    let mut rig = Rig::start(&cluster, &root, &ids, &catalog, None);

    // ---- the CA, the server certificates, the nodes' client certificate
    let pki = Pki::new("ubackup replication test CA").unwrap();
    let dbhost_cert = pki
        .issue(&Leaf {
            name: "dbhost",
            sans: &["127.0.0.1"],
            client: false,
            expired: false,
        })
        .unwrap();
    let client = pki
        .issue(&Leaf {
            name: "nodes",
            sans: &["ubackup-node"],
            client: true,
            expired: false,
        })
        .unwrap();
    std::fs::create_dir_all(root.join("host-tls")).unwrap();
    let dbhost_tls = start_stunnel(
        &root.join("host-tls"),
        localhost(),
        &StunnelConf {
            cert: &dbhost_cert.0,
            key: &dbhost_cert.1,
            require_client_ca: Some(&pki.ca),
            backend: Backend::Connect(localhost(), dbhost.port),
        },
    )
    .expect("stunnel4 for the database host");

    // ---- the plain modules move off the published addresses
    rig.modules.clear();
    let hidden: Vec<IpAddr> = (1..=ids.len() as u8)
        .map(|k| IpAddr::from([127, 0, 1, k]))
        .collect();
    let plain = start_modules(&rig.dirs, &hidden);
    let mut node_tls = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        let ip = IpAddr::from([127, 0, 0, k as u8 + 1]);
        let ip_s = ip.to_string();
        let cert = pki
            .issue(&Leaf {
                name: id,
                sans: &[&ip_s],
                client: false,
                expired: false,
            })
            .unwrap();
        let dir = rig.dirs[k].join("tls");
        std::fs::create_dir_all(&dir).unwrap();
        let st = start_stunnel(
            &dir,
            ip,
            &StunnelConf {
                cert: &cert.0,
                key: &cert.1,
                require_client_ca: Some(&pki.ca),
                backend: Backend::Connect(hidden[k], plain[k].port),
            },
        )
        .expect("stunnel4 for a node module");
        let conf = rig.dirs[k].join("server.conf");
        Conf::from_text(std::fs::read_to_string(&conf).unwrap())
            .apply(&[
                ("rsync_tls", "yes".to_string()),
                ("rsync_tls_port", dbhost_tls.port.to_string()),
                ("rsync_tls_ca", pki.ca.display().to_string()),
                ("rsync_tls_cert", client.0.display().to_string()),
                ("rsync_tls_key", client.1.display().to_string()),
                ("node_rsync_tls_port", st.port.to_string()),
            ])
            .write(&conf)
            .unwrap();
        node_tls.push((dir, st));
    }

    let mut nodes: Vec<Proc> = (0..ids.len())
        .map(|k| rig.spawn(&cluster, k, None))
        .collect();
    let _indexer = start_indexer(&cluster, &root, &catalog, None);
    for id in ids {
        cluster
            .wait_alive(id, &format!("node {id} heartbeat"), Duration::from_secs(20))
            .unwrap();
    }
    for m in &made {
        let _: () = rc.lpush(&names.lo, message(m, dbhost.port)).unwrap();
    }

    // ---- every backup gets its second copy, in the other zone
    let cat = Catalog(catalog.clone());
    wait_logged(
        "two good copies of every backup, pulled over TLS",
        Duration::from_secs(60),
        &rig.dirs,
        || {
            let good = cat.good_copies();
            good.len() == made.len()
                && good
                    .values()
                    .all(|g| g.len() == 2 && zone(&g[0].0) != zone(&g[1].0))
        },
    );
    let by_name: std::collections::BTreeMap<&str, &Made> =
        made.iter().map(|m| (m.name.as_str(), m)).collect();
    let backups = cat.backups();
    for (id, copies) in cat.good_copies() {
        let name = backups[&id].0.as_str();
        for (node, path) in copies {
            assert_eq!(
                blake3_file(std::path::Path::new(&path)).unwrap(),
                by_name[name].blake3,
                "{name} on {node} ({path})"
            );
        }
    }

    // the stunnel in front of every module that was a copy's source
    // carried it (the plain daemons are not where the nodes look)
    let sources: std::collections::BTreeSet<&str> =
        backups.values().map(|(_, node, _)| node.as_str()).collect();
    for (k, (dir, st)) in node_tls.iter().enumerate() {
        if !sources.contains(ids[k]) {
            continue;
        }
        let log = std::fs::read_to_string(dir.join(format!("stunnel-{}.log", st.port)))
            .unwrap_or_default();
        assert!(
            log.contains("accepted connection"),
            "node {}'s TLS module served no connection:\n{log}",
            ids[k]
        );
    }
    assert!(!sources.is_empty());
    let dead: i64 = cluster.pending(&ids).unwrap();
    assert_eq!(dead, 0, "nothing left on the lists or in flight");
    for n in nodes.iter_mut() {
        n.signal(libc::SIGTERM);
        assert_eq!(n.wait_exit(Duration::from_secs(20)), Some(Some(0)));
    }
}
