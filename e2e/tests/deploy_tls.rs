//! deploy/stunnel as shipped: certificates made by its `make-certs.sh`
//! (real openssl), the DB host's stunnel starting the shipped rsyncd.conf
//! per connection, the node's stunnel in front of its module, and pulls
//! through both with the connector the nodes and restore run. Only a
//! client certificate from the CA gets in.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ubackup_e2e::{localhost, render_rsyncd, repo_file, repo_root, start_rsyncd};
use ubackup_testkit::cluster::tls::start_stunnel_with;
use ubackup_testkit::{workspace_bin, write_file};
use ubackup_transport::tls::AUTH_MARK;

fn make_certs(dir: &Path, args: &[&str]) {
    let out = Command::new("bash")
        .arg(repo_root().join("deploy/stunnel/make-certs.sh"))
        .args(args)
        .env("OUT", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make-certs.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A shipped stunnel conf made runnable here: in the foreground, logging to
/// `dir`, accepting on `addr:port`, with this test's files for every path.
fn render_stunnel(
    shipped: &str,
    dir: &Path,
    addr: IpAddr,
    port: u16,
    paths: &[(&str, String)],
) -> String {
    let mut out = format!("foreground = yes\noutput = {}/stunnel.log\n", dir.display());
    for line in shipped.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        let value = match key {
            "pid" => "pid =".to_string(),
            "accept" => format!("accept = {addr}:{port}"),
            _ => match paths.iter().find(|(k, _)| *k == key) {
                Some((k, v)) => format!("{k} = {v}"),
                None => line.to_string(),
            },
        };
        out.push_str(&value);
        out.push('\n');
    }
    out
}

/// rsync as the node runs it over TLS: `-e` with the connector.
fn pull(
    port: u16,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    url: &str,
    dest: &Path,
) -> (i32, String) {
    let mut rsh = format!(
        "{} --port {port} --timeout 5 --ca {}",
        workspace_bin("ubackup-tls-connect").display(),
        ca.display()
    );
    if let Some((c, k)) = client {
        rsh.push_str(&format!(" --cert {} --key {}", c.display(), k.display()));
    }
    let out = Command::new("rsync")
        .args(["-s", "--no-links", "--times", "--no-motd", "--timeout=10"])
        .arg("-e")
        .arg(rsh)
        .arg("--")
        .arg(url)
        .arg(format!("{}/", dest.display()))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pem(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    )
}

#[test]
fn shipped_stunnel_files_serve_pulls_over_mutual_tls_and_refuse_strangers() {
    assert!(
        workspace_bin("ubackup-tls-connect").exists(),
        "build the workspace first (cargo build --workspace, as test.sh does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    make_certs(&pki, &["ca"]);
    make_certs(&pki, &["host", "dbhost", "127.0.0.1", "db1.example"]);
    make_certs(&pki, &["host", "node", "127.0.0.1"]);
    let ca = pki.join("ca.pem");
    let (dbhost_crt, dbhost_key) = pem(&pki, "dbhost");
    let (node_crt, node_key) = pem(&pki, "node");

    // a stranger: a certificate from another CA
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    make_certs(&other, &["ca"]);
    make_certs(&other, &["host", "stranger", "127.0.0.1"]);
    let (stranger_crt, stranger_key) = pem(&other, "stranger");

    // the DB host: the shipped rsyncd.conf, started by the shipped stunnel
    let backup = tmp.path().join("backup");
    write_file(&backup.join("database_3306/full_1.xb"), 200_000, 3);
    let rsyncd_conf = tmp.path().join("rsyncd.conf");
    std::fs::write(
        &rsyncd_conf,
        render_rsyncd(
            &repo_file("deploy/rsyncd/dbhost-rsyncd.conf"),
            tmp.path(),
            &backup,
            "127.0.0.1",
        ),
    )
    .unwrap();
    let shipped = repo_file("deploy/stunnel/dbhost-rsync-tls.conf");
    assert!(
        shipped.contains("requireCert = yes") && shipped.contains("verifyChain = yes"),
        "the DB host's stunnel asks for a client certificate from the CA"
    );
    let st_dir = tmp.path().join("st-db");
    std::fs::create_dir(&st_dir).unwrap();
    let paths = [
        ("cert", dbhost_crt.display().to_string()),
        ("key", dbhost_key.display().to_string()),
        ("CAfile", ca.display().to_string()),
        (
            "execArgs",
            format!("rsync --daemon --config={}", rsyncd_conf.display()),
        ),
    ];
    let db = start_stunnel_with(&st_dir, localhost(), |port| {
        render_stunnel(&shipped, &st_dir, localhost(), port, &paths)
    })
    .unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let url = "rsync://127.0.0.1/backup/database_3306/full_1.xb";
    let (rc, err) = pull(db.port, &ca, Some((&node_crt, &node_key)), url, &dest);
    assert_eq!(rc, 0, "a node's pull through the shipped stunnel: {err}");
    assert_eq!(
        std::fs::read(dest.join("full_1.xb")).unwrap(),
        std::fs::read(backup.join("database_3306/full_1.xb")).unwrap()
    );
    for (who, client) in [
        ("no client certificate", None),
        (
            "a certificate from another CA",
            Some((stranger_crt.as_path(), stranger_key.as_path())),
        ),
    ] {
        let d = tmp.path().join(who.replace(' ', "-"));
        std::fs::create_dir(&d).unwrap();
        let (rc, err) = pull(db.port, &ca, client, url, &d);
        assert_ne!(rc, 0, "{who} got in");
        assert!(err.contains(AUTH_MARK), "{who}: {err}");
        assert!(!d.join("full_1.xb").exists(), "{who}: a file landed");
    }

    // the node: its module on loopback, the shipped stunnel in front
    let root = tmp.path().join("root");
    write_file(&root.join("mysql/10.0.0/5/full_1.xb"), 150_000, 4);
    let node_rsyncd = tmp.path().join("node-rsyncd");
    std::fs::create_dir(&node_rsyncd).unwrap();
    let conf = node_rsyncd.join("rsyncd.conf");
    std::fs::write(
        &conf,
        render_rsyncd(
            &repo_file("deploy/rsyncd/node-rsyncd.conf"),
            &node_rsyncd,
            &root,
            "127.0.0.1",
        ),
    )
    .unwrap();
    let module = start_rsyncd(&conf, &[localhost()]).unwrap();
    let shipped = repo_file("deploy/stunnel/node-rsync-tls.conf");
    let st_dir = tmp.path().join("st-node");
    std::fs::create_dir(&st_dir).unwrap();
    let paths = [
        ("cert", node_crt.display().to_string()),
        ("key", node_key.display().to_string()),
        ("CAfile", ca.display().to_string()),
        ("connect", format!("127.0.0.1:{}", module[0].port)),
    ];
    let node = start_stunnel_with(&st_dir, localhost(), |port| {
        render_stunnel(&shipped, &st_dir, localhost(), port, &paths)
    })
    .unwrap();
    let restored = tmp.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    // a DB host restoring with its own certificate
    let (rc, err) = pull(
        node.port,
        &ca,
        Some((&dbhost_crt, &dbhost_key)),
        "rsync://127.0.0.1/ubackup/mysql/10.0.0/5/full_1.xb",
        &restored,
    );
    assert_eq!(rc, 0, "restore through the node's shipped stunnel: {err}");
    assert_eq!(
        std::fs::read(restored.join("full_1.xb")).unwrap(),
        std::fs::read(root.join("mysql/10.0.0/5/full_1.xb")).unwrap()
    );
}
