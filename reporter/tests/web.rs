//! The HTML pages of `serve`: every route's status codes, escaping of
//! hostile names, 400/404 pages, token enforcement, node controls changing
//! the control hash, and dead letters requeued (atomically) or dropped.

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::header;
use reqwest::StatusCode;
use ubackup_catalog::{Catalog, CatalogRecord};
use ubackup_common::keys::{control, state};
use ubackup_common::message::now_ms;
use ubackup_common::shutdown;
use ubackup_common::{DeadLetter, ResultRecord};

const TOKEN: &str = "s3cret-token-for-tests-0123";
/// A business name and file names an attacker could have chosen.
const EVIL_GAME: &str = "<script>alert('game')</script>";
const EVIL_FILE: &str = "db_<script>alert(1)</script>.tar.gz";

struct Server {
    base: String,
    _trigger: shutdown::ShutdownTrigger,
    http: reqwest::Client,
}

impl Server {
    async fn start(cfg_path: &std::path::Path) -> Server {
        let cfg = ubackup_reporter::config::ReporterConfig::load(cfg_path).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (trigger, sd) = shutdown::channel();
        tokio::spawn(ubackup_reporter::serve::serve(cfg, listener, sd));
        Server {
            base,
            _trigger: trigger,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.text().await.unwrap())
    }

    /// POSTs a form; `auth` is extra headers.
    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        auth: &[(&str, String)],
    ) -> (StatusCode, String) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        for (k, v) in auth {
            req = req.header(*k, v);
        }
        let r = req.send().await.unwrap();
        let s = r.status();
        (s, r.text().await.unwrap())
    }
}

fn bearer() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {TOKEN}"))]
}

/// Fails if the page contains a script element (or anything that starts
/// one), which is what an unescaped name would produce.
fn assert_no_script(page: &str, what: &str) {
    let lower = page.to_ascii_lowercase();
    assert!(
        !lower.contains("<script"),
        "{what}: unescaped <script> in the page:\n{page}"
    );
    assert!(
        !lower.contains("<img"),
        "{what}: unescaped <img> in the page"
    );
}

fn rec(r: ResultRecord, game: &str) -> CatalogRecord {
    CatalogRecord::new(r, game)
}

/// Instances: 3306 healthy (with a full + incremental chain), 3307 whose
/// newest result is a script error, both of the evil business; one more of
/// a plain business and another type.
async fn fill(b: &Bench) {
    let mut recs = Vec::new();
    let mut full = ok(3306, 7200, 3600);
    full.filename = Some(EVIL_FILE.into());
    let full_name = full.filename.clone().unwrap();
    let full_time = full.create_time;
    recs.push(rec(full.clone(), EVIL_GAME));
    let mut inc = ok(3306, 3600, 3600);
    inc.filename = Some("db_3306_inc.xbstream".into());
    inc.last_all_filename = full_name;
    inc.last_all_time = full_time;
    inc.size = 5 << 20;
    recs.push(rec(inc, EVIL_GAME));
    recs.push(rec(ok(3307, 7000, 3600), EVIL_GAME));
    recs.push(rec(
        client_failed(
            3307,
            100,
            "backup script exited 1: <script>alert(2)</script>",
        ),
        EVIL_GAME,
    ));
    let mut r = ok(6379, 500, 3600);
    r.back_type = "redis".into();
    r.size = 900 << 20;
    recs.push(rec(r, "plain game"));
    b.catalog.store(&recs).await.unwrap();
}

fn dead_letter(queue: &str, payload: &str, reason: &str) -> String {
    serde_json::to_string(&DeadLetter {
        payload: payload.into(),
        reason: reason.into(),
        time: now_ms(),
        node: "n1".into(),
        queue: queue.into(),
    })
    .unwrap()
}

fn lrange(b: &Bench, key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut b.conn())
        .unwrap()
}

fn config_with_token(b: &Bench) -> std::path::PathBuf {
    b.write_config("web.conf", &format!("serve_token = {TOKEN}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_and_escapes_hostile_text() {
    let b = Bench::new("");
    fill(&b).await;
    b.node("n1", true, &[]);
    b.node(
        "<b>evil-node</b>",
        true,
        &[
            (state::PAUSED, "1"),
            (state::PAUSE_REASON, "<script>x</script>"),
        ],
    );
    b.node("ix1", true, &[(state::KIND, "indexer")]);
    redis::cmd("LPUSH")
        .arg(b.keys.dead(&b.q1))
        .arg(dead_letter(
            &b.q1,
            r#"{"filename":"<script>alert(3)</script>"}"#,
            "illegal filename <img src=x onerror=alert(4)>",
        ))
        .query::<()>(&mut b.conn())
        .unwrap();
    let srv = Server::start(&config_with_token(&b)).await;

    let instance = "/instance/111111/mysql/3306";
    for path in [
        "/",
        "/stats",
        "/stats?days=2&business=%3Cscript%3Ealert('game')%3C/script%3E&type=mysql",
        "/alerts",
        "/alerts?business=%3Cscript%3E",
        "/control",
        "/login",
        instance,
        "/instance/111111/mysql/3307",
    ] {
        let r = srv
            .http
            .get(format!("{}{path}", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(
            h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
            "{path}: pages are not cross-origin readable"
        );
        let body = r.text().await.unwrap();
        assert!(body.starts_with("<!DOCTYPE html>"), "{path}");
        assert_no_script(&body, path);
    }
    // the hostile text is there, escaped
    let (_, overview) = srv.get("/").await;
    assert!(
        overview.contains("&lt;b&gt;evil-node&lt;/b&gt;"),
        "{overview}"
    );
    assert!(overview.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(overview.contains("Nodes") && overview.contains("n1") && overview.contains(&b.q1));
    let (_, alerts) = srv.get("/alerts").await;
    assert!(alerts.contains("script_error"), "{alerts}");
    assert!(
        alerts.contains("backup script exited 1: &lt;script&gt;alert(2)&lt;/script&gt;"),
        "{alerts}"
    );
    assert!(
        alerts.contains("&lt;script&gt;alert('game')&lt;/script&gt;"),
        "the business name, escaped: {alerts}"
    );
    assert!(
        alerts.contains("href=\"/instance/111111/mysql/3307\""),
        "the alert links to its instance"
    );
    let (_, page) = srv.get(instance).await;
    assert!(
        page.contains("db_&lt;script&gt;alert(1)&lt;/script&gt;.tar.gz"),
        "{page}"
    );
    assert!(
        page.contains(
            "ubackup-client restore --type mysql --instance 3306 --server-id 111111 --at "
        ),
        "{page}"
    );
    assert!(page.contains("incremental of"), "{page}");
    assert!(
        page.contains("restore pulls 2 file(s)"),
        "the chain resolves: {page}"
    );
    let (_, control) = srv.get("/control").await;
    assert!(
        control.contains("illegal filename &lt;img src=x onerror=alert(4)&gt;"),
        "{control}"
    );
    assert!(
        control
            .contains("{&quot;filename&quot;:&quot;&lt;script&gt;alert(3)&lt;/script&gt;&quot;}"),
        "{control}"
    );
    assert!(
        control.contains("Log in"),
        "read-only view says how to log in"
    );
    assert!(
        !control.contains("/control/dead/requeue\""),
        "no write forms without the token"
    );
    let (_, stats) = srv.get("/stats?business=plain+game").await;
    assert!(
        stats.contains("900.0 MiB"),
        "largest backup of the business: {stats}"
    );
    assert!(
        !stats.contains("db_3306_inc.xbstream"),
        "the business filter leaves other businesses out"
    );
    assert!(stats.contains("<svg"), "inline charts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_400_with_the_reason_and_unknown_ids_404() {
    let b = Bench::new("");
    fill(&b).await;
    let srv = Server::start(&b.config).await;
    for (path, code, reason) in [
        ("/instance/999/mysql/1", 404, "no instance 999:mysql:1"),
        (
            "/instance/abc/mysql/3306",
            400,
            "server_id `abc` is not a number",
        ),
        (
            "/instance/111111/mysql/x1",
            400,
            "instance `x1` is not a number",
        ),
        (
            "/instance/111111/mysql/3306?limit=0",
            400,
            "parameter `limit`: `0` is not valid",
        ),
        (
            "/instance/111111/mysql/3306?page=2",
            400,
            "unknown parameter `page`",
        ),
        (
            "/stats?days=abc",
            400,
            "parameter `days`: `abc` is not valid; expected a whole number from 1 to 31",
        ),
        ("/stats?days=1&days=2", 400, "more than once"),
        ("/stats?bogus=1", 400, "unknown parameter `bogus`"),
        (
            "/alerts?kind=nope",
            400,
            "`nope` is not valid; expected one of script_error",
        ),
        ("/alerts?severity=high", 400, "parameter `severity`"),
        (
            "/?%3Cscript%3E=1",
            400,
            "unknown parameter `&lt;script&gt;`",
        ),
        ("/no/such/page", 404, "there is no page at /no/such/page"),
        ("/%3Cscript%3E", 404, "there is no page at /&lt;script&gt;"),
    ] {
        let (s, body) = srv.get(path).await;
        assert_eq!(s.as_u16(), code, "{path}: {body}");
        assert!(
            body.contains(reason),
            "{path}: expected `{reason}` in\n{body}"
        );
        assert_no_script(&body, path);
    }
    // the JSON API is unchanged next to the pages
    let (s, body) = srv.get("/api/status").await;
    assert_eq!(s, StatusCode::OK);
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["nodes"].is_array());
    // a page while Redis is down: 503 with the reason, not a hang or a 500
    drop(b.redis);
    let (s, body) = srv.get("/").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("unreachable"), "{body}");
}

fn control_hash(b: &Bench, node: &str) -> std::collections::HashMap<String, String> {
    b.hgetall(&b.keys.control(node))
}

/// The csrf value of a page's write forms.
fn csrf_of(page: &str) -> String {
    let at =
        page.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_and_change_the_control_hash() {
    let b = Bench::new("");
    b.node("5", true, &[]);
    b.node("ix1", true, &[(state::KIND, "indexer")]);

    // no serve_token: read-only for everyone, even with a bearer header
    let ro = Server::start(&b.config).await;
    let (s, body) = ro.post("/control/node/5/pause", &[], &bearer()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("read-only"), "{body}");
    let (s, _) = ro.post("/login", &[("token", TOKEN)], &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(control_hash(&b, "5").is_empty(), "nothing changed");

    let srv = Server::start(&config_with_token(&b)).await;
    // no credentials: 401 and a WWW-Authenticate challenge
    let r = srv
        .http
        .post(format!("{}/control/node/5/pause", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // a wrong token: 403
    let (s, body) = srv
        .post(
            "/control/node/5/pause",
            &[],
            &[("authorization", "Bearer not-the-token-at-all".into())],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, _) = srv
        .post(
            "/control/node/5/pause",
            &[],
            &[("authorization", format!("Basic {TOKEN}"))],
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        control_hash(&b, "5").is_empty(),
        "nothing changed by refused requests"
    );

    // the bearer token works
    let (s, body) = srv.post("/control/node/5/pause", &[], &bearer()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body.contains("paused unset → 1"),
        "the page says what changed: {body}"
    );
    assert_eq!(control_hash(&b, "5")[control::PAUSED], "1");
    let (s, _) = srv
        .post("/control/node/5/workers", &[("workers", "8")], &bearer())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(control_hash(&b, "5")[control::WORKERS], "8");
    for bad in ["abc", "0", "999", "-1"] {
        let (s, body) = srv
            .post("/control/node/5/workers", &[("workers", bad)], &bearer())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.contains("parameter `workers`"), "{body}");
    }
    let (s, _) = srv
        .post(
            "/control/node/5/workers",
            &[("workers", "4"), ("extra", "1")],
            &bearer(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        control_hash(&b, "5")[control::WORKERS],
        "8",
        "bad input changes nothing"
    );
    // an empty count goes back to work_thread
    let (s, _) = srv
        .post("/control/node/5/workers", &[("workers", "")], &bearer())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!control_hash(&b, "5").contains_key(control::WORKERS));
    // unknown node, unknown action, an indexer
    let (s, _) = srv.post("/control/node/nope/pause", &[], &bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv.post("/control/node/5/reboot", &[], &bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv.post("/control/node/ix1/pause", &[], &bearer()).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(control_hash(&b, "ix1").is_empty());
    let (_, page) = srv.get("/control").await;
    assert!(page.contains("paused by operator"), "{page}");

    // the browser way: log in, get a cookie; forms need their csrf field
    let (s, body) = srv
        .post("/login", &[("token", "wrong-token-wrong-token")], &[])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("Wrong token"));
    let r = srv
        .http
        .post(format!("{}/login", srv.base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(TOKEN), "the cookie is not the token");
    let cookie = set.split(';').next().unwrap().to_string();
    let page = srv
        .http
        .get(format!("{}/control", srv.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Log out") && page.contains("/control/node/5/resume"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let with_cookie = vec![("cookie", cookie.clone())];
    let (s, _) = srv.post("/control/node/5/resume", &[], &with_cookie).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a cookie without the form's csrf field (cross-site) is refused"
    );
    let (s, _) = srv
        .post("/control/node/5/resume", &[("csrf", "0000")], &with_cookie)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(control_hash(&b, "5")[control::PAUSED], "1");
    let (s, body) = srv
        .post("/control/node/5/resume", &[("csrf", &csrf)], &with_cookie)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(control_hash(&b, "5")[control::PAUSED], "0");
    // a cookie from another run of serve (another secret) is stale: 401
    let other = Server::start(&config_with_token(&b)).await;
    let (s, _) = other
        .post("/control/node/5/pause", &[("csrf", &csrf)], &with_cookie)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(control_hash(&b, "5")[control::PAUSED], "0");
    // log out: the cookie is cleared
    let r = srv
        .http
        .post(format!("{}/logout", srv.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cleared = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("ubackup_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_requeued_atomically_or_dropped() {
    let b = Bench::new("");
    b.node("n1", true, &[]);
    let dead = b.keys.dead(&b.q1);
    let msgs: Vec<String> = (0..4)
        .map(|i| message(111111, 3300 + i, now_ms() / 1000))
        .collect();
    for (i, m) in msgs.iter().enumerate() {
        redis::cmd("LPUSH")
            .arg(&dead)
            .arg(dead_letter(&b.q1, m, &format!("reason {i}")))
            .query::<()>(&mut b.conn())
            .unwrap();
    }
    // something in the list that is not a dead-letter entry
    redis::cmd("LPUSH")
        .arg(&dead)
        .arg("{}")
        .query::<()>(&mut b.conn())
        .unwrap();
    let srv = Server::start(&config_with_token(&b)).await;
    let (_, page) = srv
        .http
        .get(format!("{}/control", srv.base))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Requeue all") && page.contains("reason 3"),
        "{page}"
    );
    let id = |raw: &str| blake3::hash(raw.as_bytes()).to_hex().to_string();
    let entries = lrange(&b, &dead);
    assert_eq!(entries.len(), 5);
    let first = entries
        .iter()
        .find(|e| e.contains("reason 0"))
        .unwrap()
        .clone();

    // eight concurrent requeues of one entry push it exactly once
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let http = srv.http.clone();
        let url = format!("{}/control/dead/requeue", srv.base);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("list", &dead)
            .append_pair("entry", &id(&first))
            .finish();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("authorization", format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(
        codes.iter().filter(|c| **c == StatusCode::OK).count(),
        1,
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| *c == StatusCode::OK || *c == StatusCode::NOT_FOUND),
        "{codes:?}"
    );
    assert_eq!(
        lrange(&b, &b.q1),
        vec![msgs[0].clone()],
        "the payload, unchanged, once"
    );
    assert_eq!(lrange(&b, &dead).len(), 4);
    assert!(!lrange(&b, &dead).contains(&first));

    // drop one
    let second = lrange(&b, &dead)
        .into_iter()
        .find(|e| e.contains("reason 1"))
        .unwrap();
    let (s, body) = srv
        .post(
            "/control/dead/drop",
            &[("list", &dead), ("entry", &id(&second))],
            &bearer(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("dropped from"), "{body}");
    assert!(!lrange(&b, &dead).contains(&second));
    assert_eq!(lrange(&b, &b.q1).len(), 1, "dropping pushes nothing");
    // the non-entry cannot be requeued (409), an unknown id is 404, an unknown list 404
    let (s, body) = srv
        .post(
            "/control/dead/requeue",
            &[("list", &dead), ("entry", &id("{}"))],
            &bearer(),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, _) = srv
        .post(
            "/control/dead/requeue",
            &[("list", &dead), ("entry", "abc")],
            &bearer(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv
        .post(
            "/control/dead/requeue-all",
            &[("list", "other:dead")],
            &bearer(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = srv
        .post("/control/dead/requeue", &[("list", &dead)], &bearer())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("parameter `entry` is missing"), "{body}");
    // without the token: nothing moves
    let (s, _) = srv
        .post("/control/dead/requeue-all", &[("list", &dead)], &[])
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(lrange(&b, &dead).len(), 3);

    // requeue all: the two dead letters go back (oldest first at the pop end), `{}` stays
    let (s, body) = srv
        .post("/control/dead/requeue-all", &[("list", &dead)], &bearer())
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body.contains("Requeued 2 dead letter(s)") && body.contains("cannot be requeued"),
        "{body}"
    );
    assert_eq!(lrange(&b, &dead), vec!["{}".to_string()]);
    let mut q = lrange(&b, &b.q1);
    q.sort();
    let mut want = vec![msgs[0].clone(), msgs[2].clone(), msgs[3].clone()];
    want.sort();
    assert_eq!(q, want, "every payload once, nothing lost");
    // drop all
    let (s, _) = srv
        .post("/control/dead/drop-all", &[("list", &dead)], &bearer())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(lrange(&b, &dead).is_empty());
    assert_eq!(lrange(&b, &b.q1).len(), 3);
}

/// The results list may live on another Redis (`message_redis_*`): its
/// dead letters are read and requeued there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_dead_letters_on_a_separate_message_redis() {
    let b = Bench::new("");
    let msg_redis = ubackup_testkit::RedisServer::start().unwrap();
    let text = format!(
        "[global]\nredis_host = 127.0.0.1\nredis_port = {}\nredis_queue = {}\nmessage_redis_host = 127.0.0.1\nmessage_redis_port = {}\nmessage_queue = {}\nkey_prefix = {}\ncatalog = {}\n[reporter]\nserve_token = {TOKEN}\n",
        b.redis.port,
        b.q1,
        msg_redis.port,
        b.mq,
        b.prefix,
        b.catalog_path.display()
    );
    let cfg = b.dir.path().join("node.conf");
    std::fs::write(&cfg, text).unwrap();
    let dead = b.keys.dead(&b.mq);
    let payload = r#"{"succeed":1,"rsync_time":1}"#;
    let entry = dead_letter(&b.mq, payload, "catalog rejected it");
    let mut mc = msg_redis.conn();
    redis::cmd("LPUSH")
        .arg(&dead)
        .arg(&entry)
        .query::<()>(&mut mc)
        .unwrap();
    let srv = Server::start(&cfg).await;
    let (_, page) = srv.get("/control").await;
    assert!(page.contains("catalog rejected it"), "{page}");
    let id = blake3::hash(entry.as_bytes()).to_hex().to_string();
    let (s, body) = srv
        .post(
            "/control/dead/requeue",
            &[("list", &dead), ("entry", &id)],
            &bearer(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let q: Vec<String> = redis::cmd("LRANGE")
        .arg(&b.mq)
        .arg(0)
        .arg(-1)
        .query(&mut mc)
        .unwrap();
    assert_eq!(q, vec![payload.to_string()]);
    assert!(
        lrange(&b, &b.mq).is_empty(),
        "nothing pushed to the cluster Redis"
    );
}

/// The real binary logs every write with what changed, who and from where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_every_write_action() {
    let b = Bench::new("");
    b.node("7", true, &[]);
    let log = b.dir.path().join("reporter.log");
    let cfg = b.write_config(
        "logged.conf",
        &format!("serve_token = {TOKEN}\nlog = {}", log.display()),
    );
    let port = ubackup_testkit::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ubackup-reporter"))
        .args([
            "serve",
            "-c",
            p(&cfg),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    ubackup_testkit::wait_until_async("serve answers", Duration::from_secs(20), || {
        let r = http.get(format!("{base}/api/status")).send();
        async move { r.await.is_ok() }
    })
    .await;
    let r = http
        .post(format!("{base}/control/node/7/workers"))
        .bearer_auth(TOKEN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("workers=3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .post(format!("{base}/control/node/7/pause"))
        .bearer_auth("wrong-wrong-wrong-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    ubackup_testkit::wait_until(
        "the log has the change and the refusal",
        Duration::from_secs(10),
        || {
            let t = read();
            t.contains("workers unset → 3") && t.contains("write refused")
        },
    );
    let text = read();
    let line = text
        .lines()
        .find(|l| l.contains("workers unset → 3"))
        .unwrap();
    assert!(
        line.contains("node 7")
            && line.contains("peer=127.0.0.1:")
            && line.contains("bearer token"),
        "{line}"
    );
    assert_eq!(b.hgetall(&b.keys.control("7"))[control::WORKERS], "3");
    assert!(!b
        .hgetall(&b.keys.control("7"))
        .contains_key(control::PAUSED));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0));
}

#[test]
fn a_weak_serve_token_stops_serve_before_it_listens() {
    let b = Bench::new("");
    let cfg = b.write_config("weak.conf", "serve_token = short   # too short");
    let (code, out, _) = b.run(&["serve", "-c", p(&cfg), "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("weak.conf:")
            && out.contains("[reporter] serve_token: too short")
            && out.contains("openssl rand -hex 24"),
        "{out}"
    );
    let cfg = b.write_config("spaced.conf", "serve_token = two words here, long enough");
    let (code, out, _) = b.run(&["serve", "-c", p(&cfg), "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("contains spaces"), "{out}");
}
