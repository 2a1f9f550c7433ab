//! The catalog API of `serve` (`api_tokens_file`): a host token sees only
//! its host, a wrong or missing token is 401, another host's backup or a
//! pin without `pin` is 403, pins reach the catalog, the chain names each
//! file's copies and URLs, and a token file others may read stops `serve`.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::Value;
use ubackup_catalog::{Catalog, CatalogRecord};
use ubackup_common::shutdown;

const HOST_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
const HOST_B_PIN: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";
const ADMIN: &str = "cccccccccccccccccccccccc";

/// A bench whose `[reporter]` names a tokens file (mode 600).
fn bench() -> Bench {
    let b = Bench::new("");
    let tokens = b.dir.path().join("api-tokens");
    std::fs::write(
        &tokens,
        format!(
            "# host tokens\n{HOST_A} 111111\n{HOST_B_PIN} 222222 pin  # b may pin\n{ADMIN} * pin\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut b = b;
    b.config = b.write_config(
        "api.conf",
        &format!("api_tokens_file = {}", tokens.display()),
    );
    b
}

async fn start(b: &Bench) -> (String, shutdown::ShutdownTrigger) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (trigger, sd) = shutdown::channel();
    tokio::spawn(ubackup_reporter::serve::serve(b.cfg(), listener, sd));
    (base, trigger)
}

async fn call(method: &str, url: &str, token: Option<&str>) -> (u16, Value) {
    let c = reqwest::Client::new();
    let mut req = match method {
        "POST" => c.post(url),
        _ => c.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Records of two hosts: a full and an incremental of host A's 3306, and
/// a full of host B's 3306.
async fn seed(b: &Bench) -> (CatalogRecord, CatalogRecord, CatalogRecord) {
    let t = ubackup_common::message::now_ms() - 3_600_000;
    let full = ok(3306, 3600, 3600);
    let mut inc = ok(3306, 1800, 3600);
    inc.filename = Some("db_3306_inc.xbstream".into());
    inc.last_all_filename = full.filename.clone().unwrap();
    inc.last_all_time = full.create_time;
    let mut other = ok(3306, 600, 3600);
    other.server_id = 222222;
    other.game_server_ip = "10.0.0.6".into();
    other.file_path = Some("/backup/mysql/10.0.0/6/".into());
    let recs: Vec<CatalogRecord> = [full, inc, other]
        .into_iter()
        .map(|r| CatalogRecord::new(r, "mygame"))
        .collect();
    b.catalog.store(&recs).await.unwrap();
    assert!(recs[0].result.create_time >= t - 1000);
    (recs[0].clone(), recs[1].clone(), recs[2].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_tokens_see_only_their_host_and_pins_need_pin() {
    let b = bench();
    let (full, inc, other) = seed(&b).await;
    let (base, _stop) = start(&b).await;
    let list = format!("{base}/api/backups");

    // no token, a wrong token: 401 with a JSON error
    let (s, v) = call("GET", &list, None).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Bearer"), "{v}");
    let (s, v) = call("GET", &list, Some("aaaaaaaaaaaaaaaaaaaaaaab")).await;
    assert_eq!(s, 401, "{v}");
    assert!(
        !v.to_string().contains("aaaaaaaaaaaaaaaaaaaaaaab"),
        "error echoes the token: {v}"
    );

    // host A: its own two backups, newest first, as `list --json` rows
    let (s, v) = call("GET", &list, Some(HOST_A)).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![inc.id.as_str(), full.id.as_str()]);
    assert_eq!(v[0]["kind"], "incremental");
    assert_eq!(v[0]["full"], full.result.filename.clone().unwrap());
    let back = ubackup_catalog::api::record_from_row(&v[1]).unwrap();
    assert_eq!(back.result, full.result, "a row rebuilds the record");
    // … and never host B's, asked for or not
    let (s, v) = call("GET", &format!("{list}?server_id=222222"), Some(HOST_A)).await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("server 222222"),
        "{v}"
    );
    let (s, _) = call("GET", &format!("{list}/{}", other.id), Some(HOST_A)).await;
    assert_eq!(s, 403);
    let (s, v) = call(
        "GET",
        &format!("{list}?type=mysql&instance=3306"),
        Some(ADMIN),
    )
    .await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 3), "{v}");
    let (s, v) = call("GET", &format!("{list}?bogus=1"), Some(ADMIN)).await;
    assert_eq!(s, 400, "{v}");

    // one backup; an unknown id is 404
    let (s, v) = call("GET", &format!("{list}/{}", full.id), Some(HOST_A)).await;
    assert_eq!((s, v["id"].as_str()), (200, Some(full.id.as_str())));
    let (s, _) = call("GET", &format!("{list}/nosuchid"), Some(HOST_A)).await;
    assert_eq!(s, 404);

    // the chain of the incremental: the full first, each with its URL
    let (s, v) = call(
        "GET",
        &format!("{list}/{}/chain?port=8873", inc.id),
        Some(HOST_A),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let chain = v["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "{v}");
    assert_eq!(chain[0]["id"], full.id.as_str());
    assert_eq!(
        chain[1]["sources"][0]["url"],
        "rsync://10.20.0.5:8873/ubackup/mysql/10.0.0/5/db_3306_inc.xbstream"
    );

    // pin: host A has no `pin`; host B may pin only its own
    let (s, v) = call("POST", &format!("{list}/{}/pin", full.id), Some(HOST_A)).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("pin"), "{v}");
    let (s, _) = call("POST", &format!("{list}/{}/pin", full.id), Some(HOST_B_PIN)).await;
    assert_eq!(s, 403);
    assert!(!b.catalog.get(&full.id).await.unwrap().unwrap().meta.pinned);
    let (s, v) = call(
        "POST",
        &format!("{list}/{}/pin", other.id),
        Some(HOST_B_PIN),
    )
    .await;
    assert_eq!((s, v["pinned"].as_bool()), (200, Some(true)), "{v}");
    assert!(b.catalog.get(&other.id).await.unwrap().unwrap().meta.pinned);
    let (s, v) = call(
        "POST",
        &format!("{list}/{}/unpin", other.id),
        Some(HOST_B_PIN),
    )
    .await;
    assert_eq!((s, v["pinned"].as_bool()), (200, Some(false)), "{v}");
    assert!(!b.catalog.get(&other.id).await.unwrap().unwrap().meta.pinned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tokens_file_the_api_is_off() {
    let b = Bench::new("");
    seed(&b).await;
    let (base, _stop) = start(&b).await;
    let (s, v) = call("GET", &format!("{base}/api/backups"), Some(ADMIN)).await;
    assert_eq!(s, 404, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("api_tokens_file"),
        "{v}"
    );
}

#[test]
fn serve_refuses_a_tokens_file_others_can_read() {
    let b = bench();
    let tokens = b.dir.path().join("api-tokens");
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = b.run(&["serve", "-c", p(&b.config), "--listen", "127.0.0.1:0"]);
    assert_ne!(code, 0, "serve started with a world-readable tokens file");
    assert!(
        err.contains("api_tokens_file") && err.contains("chmod 600") && err.contains("644"),
        "{err}"
    );
    assert!(
        !err.contains(HOST_A) && !err.contains(ADMIN),
        "a token in the error: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_catalog_client_reads_with_the_ca() {
    let ca = ubackup_testkit::TestCa::new().unwrap();
    let mut b = bench();
    let (full, inc, _) = seed(&b).await;
    let tokens = b.dir.path().join("api-tokens");
    b.config = b.write_config(
        "tls.conf",
        &format!(
            "api_tokens_file = {}\nserve_tls_cert = {}\nserve_tls_key = {}",
            tokens.display(),
            ca.cert_pem.display(),
            ca.key_pem.display()
        ),
    );
    let (base, _stop) = start(&b).await;
    let https = base.replace("http://", "https://");
    let token_file = b.dir.path().join("host.token");
    std::fs::write(&token_file, format!("{HOST_A}\n")).unwrap();
    let settings = ubackup_catalog::HttpSettings {
        url: url::Url::parse(&https).unwrap(),
        token: HOST_A.into(),
        token_file,
        ca: Some(ca.ca_pem.clone()),
        timeout: std::time::Duration::from_secs(10),
    };
    let cat = ubackup_catalog::HttpCatalog::new(&settings).unwrap();
    let q = ubackup_catalog::BackupQuery {
        server_id: Some(111111),
        ..Default::default()
    };
    let got: Vec<String> = cat
        .list_backups(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(got, vec![inc.id.clone(), full.id.clone()]);
    assert_eq!(
        cat.get(&full.id).await.unwrap().unwrap().result,
        full.result
    );
    // plain HTTP to the TLS port gets no answer; without the CA no trust
    assert!(reqwest::get(format!("{base}/api/backups")).await.is_err());
    let untrusted = ubackup_catalog::HttpCatalog::new(&ubackup_catalog::HttpSettings {
        ca: None,
        ..settings.clone()
    })
    .unwrap();
    let e = untrusted.list_backups(&q).await.unwrap_err().to_string();
    // a refused certificate is not an outage to retry: it says what to fix
    assert!(
        e.contains("rejected") && e.contains("certificate") && e.contains("catalog_ca"),
        "{e}"
    );
}

#[test]
fn tls_keys_go_in_pairs_and_must_be_pem() {
    let b = Bench::new("serve_tls_cert = /etc/ssl/x.pem");
    let e = b.cfg().serve_tls().err().unwrap().to_string();
    assert!(e.contains("[reporter] serve_tls_key: missing"), "{e}");
    let junk = b.dir.path().join("junk.pem");
    std::fs::write(&junk, "not pem").unwrap();
    let b2 = Bench::new(&format!(
        "serve_tls_cert = {0}\nserve_tls_key = {0}",
        junk.display()
    ));
    let e = b2.cfg().serve_tls().err().unwrap().to_string();
    assert!(
        e.contains("serve_tls_cert") && e.contains("junk.pem"),
        "{e}"
    );
}
