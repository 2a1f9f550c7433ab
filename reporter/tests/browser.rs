//! The pages in a real browser: Debian's headless Chromium loads each page
//! from the real `ubackup-reporter serve` binary, over a catalog filled by
//! the real `ubackup-indexer` binary from result messages on Redis (a week
//! of hourly backups of four instances, with failures, an overdue instance,
//! a business whose name is a `<script>` tag, and a malformed result that
//! the indexer dead-letters). It checks what the pages say and saves a
//! screenshot of each.
//!
//! Screenshots go to a temp dir; with `UPDATE_SCREENSHOTS=1` they replace
//! `docs/screenshots/*.png` (what the README shows).
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`; `CHROMIUM=path`
//! overrides). Without a browser that starts, this test FAILS, saying so:
//! it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_common::{DeadLetter, Keys, ResultRecord};
use ubackup_testkit::{unique, wait_until, workspace_bin, Proc, RedisServer};

use crate::common::{self, catalog_rows, chromium_bin, spawn_indexer, spawn_serve};

const TOKEN: &str = "browser-test-token-0123456789";
const EVIL_GAME: &str = "<script>alert(\"pwned\")</script>";
const HOUR: i64 = 3_600_000;

/// Headless Chromium, one fresh profile per run.
struct Chromium {
    bin: PathBuf,
    scratch: tempfile::TempDir,
}

impl Chromium {
    fn find() -> Chromium {
        Chromium {
            bin: chromium_bin(),
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    /// A browser profile that several runs share (its cookie jar).
    fn profile(&self) -> PathBuf {
        let p = self.scratch.path().join(unique("profile"));
        std::fs::create_dir(&p).unwrap();
        p
    }

    /// Runs the browser with `args` after the fixed flags, in a fresh
    /// profile or in `profile`; returns stdout. Panics, with the browser's
    /// stderr, if it does not start, fails, or takes longer than a minute.
    fn run_in(&self, profile: Option<&Path>, what: &str, args: &[&str]) -> String {
        let run = tempfile::tempdir_in(self.scratch.path()).unwrap();
        let out_path = run.path().join("stdout");
        let err_path = run.path().join("stderr");
        let user_data = profile
            .map(Path::to_path_buf)
            .unwrap_or_else(|| run.path().join("profile"));
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", user_data.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
        let mut p = Proc::spawn("chromium", cmd).unwrap_or_else(|e| {
            panic!(
                "Chromium ({}) could not be started: {e:#}",
                self.bin.display()
            )
        });
        let code = p.wait_exit(Duration::from_secs(60));
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let tail: String = stderr
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        match code {
            Some(Some(0)) => {}
            None => {
                p.kill9_group();
                panic!("Chromium did not finish {what} within 60 s; its stderr ends:\n{tail}")
            }
            Some(c) => panic!("Chromium failed ({what}), exit {c:?}; its stderr ends:\n{tail}"),
        }
        drop(p);
        std::fs::read_to_string(&out_path).unwrap()
    }

    /// The DOM after loading `url`, serialized.
    fn dom(&self, url: &str) -> String {
        self.dom_in(None, url)
    }

    fn dom_in(&self, profile: Option<&Path>, url: &str) -> String {
        // the virtual time budget lets a page's own navigation (a form
        // submitted on load) finish before the DOM is dumped
        let dom = self.run_in(
            profile,
            &format!("loading {url}"),
            &["--virtual-time-budget=10000", "--dump-dom", url],
        );
        assert!(
            dom.contains("<html"),
            "Chromium printed no document for {url}: {dom:?}"
        );
        dom
    }

    fn screenshot(&self, url: &str, file: &Path, height: u32) {
        self.screenshot_in(None, url, file, height)
    }

    fn screenshot_in(&self, profile: Option<&Path>, url: &str, file: &Path, height: u32) {
        let _ = std::fs::remove_file(file);
        self.run_in(
            profile,
            &format!("a screenshot of {url}"),
            &[
                &format!("--screenshot={}", file.display()),
                &format!("--window-size=1280,{height}"),
                url,
            ],
        );
        let png = std::fs::read(file)
            .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", file.display()));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            file.display()
        );
        assert!(
            png.len() > 10_000,
            "{} is suspiciously small ({} bytes)",
            file.display(),
            png.len()
        );
    }
}

/// A `data:` page that POSTs a form to `action` as soon as it loads (the
/// way another site could try to use the operator's login).
fn auto_post(action: &str, fields: &[(&str, &str)]) -> String {
    let mut html = format!("<form method=post action='{action}'>");
    for (k, v) in fields {
        html.push_str(&format!("<input name='{k}' value='{v}'>"));
    }
    html.push_str("</form><script>document.forms[0].submit()</script>");
    let mut url = String::from("data:text/html,");
    for b in html.bytes() {
        if b.is_ascii_alphanumeric() {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Plain text of a serialized DOM: tags and the style sheet dropped,
/// entities kept as they are.
fn text_of(dom: &str) -> String {
    let dom = match (dom.find("<style>"), dom.find("</style>")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &dom[..a], &dom[b..]),
        _ => dom.to_string(),
    };
    let mut out = String::with_capacity(dom.len());
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One result as a node pushes it onto `message_queue`.
#[allow(clippy::too_many_arguments)]
fn result(
    server_id: i64,
    game_id: i64,
    back_type: &str,
    instance: i64,
    t: i64,
    node: &str,
    size: i64,
    filename: String,
) -> ResultRecord {
    ResultRecord {
        interval: 3600,
        server_id,
        game_id,
        op_id: 1,
        game_server_ip: format!("10.0.{}.{}", server_id % 200, instance % 200),
        instance,
        back_server_ip: if node == "node-a" {
            "10.20.0.5"
        } else {
            "10.20.0.6"
        }
        .into(),
        file_path: Some(format!(
            "/backup/uuzubackup/{back_type}/10.0.{}/{}/",
            server_id % 200,
            instance % 200
        )),
        filename: Some(filename),
        create_time: t,
        rsync_time: t + 40_000,
        size,
        last_all_filename: "None".into(),
        last_all_time: 0,
        succeed: 1,
        log: "ok".into(),
        back_type: back_type.into(),
        node_id: Some(node.into()),
        duration_ms: Some((size / (40 << 20)).max(1) as u64 * 1000 + (t / HOUR % 7) as u64 * 900),
        attempts: Some(1),
        bytes_per_sec: Some(40 << 20),
        verify: Some("size+blake3".into()),
        checksum: Some(format!("blake3:{}", "ab".repeat(32))),
        illegal: None,
        run_id: None,
        encryption: None,
    }
}

/// A week of hourly results of four instances.
fn week_of_results(now: i64) -> Vec<ResultRecord> {
    let mut out = Vec::new();
    let start = (now - 7 * 24 * HOUR) / HOUR * HOUR + HOUR;
    let mut t = start;
    let mut full: Option<(String, i64)> = None;
    // every result lies in the past; the newest is at most 1 h 25 min old
    while t + 25 * 60_000 < now {
        let h = (t / HOUR) % 24;
        let jitter = (t / HOUR * 7919) % 600_000;
        // 111111 mysql 3306: a full at midnight, incrementals hourly
        let at = t + 60_000 + jitter;
        let mut r = if h == 0 || full.is_none() {
            let r = result(
                111111,
                31,
                "mysql",
                3306,
                at,
                "node-a",
                (2 << 30) + jitter * 1000,
                format!("full_3306_{}.xbstream", at / 1000),
            );
            full = Some((r.filename.clone().unwrap(), at));
            r
        } else {
            let mut r = result(
                111111,
                31,
                "mysql",
                3306,
                at,
                "node-a",
                (60 << 20) + jitter * 200,
                format!("inc_3306_{}.xbstream", at / 1000),
            );
            let (f, ft) = full.clone().unwrap();
            r.last_all_filename = f;
            r.last_all_time = ft;
            r
        };
        // (never in the last hours: the alerts asserted below stay exact)
        if t / HOUR % 37 == 5 && t + 3 * HOUR < now {
            r.succeed = 0;
            r.log =
                "pull failed after 3 attempt(s): rsync exit code 10 (error in socket I/O)".into();
            r.file_path = None;
            r.verify = None;
            r.attempts = Some(3);
        }
        out.push(r);
        // 111111 mysql 3307: fine until three hours ago, then its script fails
        let at = t + 120_000 + jitter;
        let mut r = result(
            111111,
            31,
            "mysql",
            3307,
            at,
            "node-a",
            (700 << 20) + jitter * 50,
            format!("dump_3307_{}.sql.gz", at / 1000),
        );
        if t >= now - 3 * HOUR {
            r.succeed = 0;
            r.log = "backup script exited 2: mysqldump: Got error: 2002: Can't connect to local MySQL server through socket".into();
            r.file_path = None;
            r.filename = None;
            r.size = 0;
            r.duration_ms = None;
            r.attempts = None;
            r.bytes_per_sec = None;
            r.checksum = None;
            r.verify = None;
        }
        out.push(r);
        // 222222 redis 6379 on node-b, bigger in the evening
        let at = t + 300_000 + jitter;
        let size = (300 << 20) + if (18..23).contains(&h) { 900 << 20 } else { 0 } + jitter * 300;
        let mut r = result(
            222222,
            32,
            "redis",
            6379,
            at,
            "node-b",
            size,
            format!("dump_6379_{}.rdb", at / 1000),
        );
        if t / HOUR % 23 == 7 && t + 3 * HOUR < now {
            r.succeed = 0;
            r.log = "size mismatch: expected 318767104 bytes, received 1048576".into();
            r.illegal = Some("size mismatch".into());
        }
        out.push(r);
        // 333333 mysql 3306 of a business named like a script: stopped 5 h ago
        if t < now - 5 * HOUR {
            let at = t + 420_000 + jitter;
            out.push(result(
                333333,
                33,
                "mysql",
                3306,
                at,
                "node-b",
                (120 << 20) + jitter,
                format!("db_<script>alert(1)</script>_{}.sql.gz", at / 1000),
            ));
        }
        t += HOUR;
    }
    // 6379's newest result: a re-sent message whose file did not match
    let mut bad = out
        .iter()
        .filter(|r| r.instance == 6379)
        .max_by_key(|r| r.create_time)
        .unwrap()
        .clone();
    bad.create_time += 10 * 60_000;
    bad.rsync_time += 10 * 60_000;
    bad.filename = Some(format!("dump_6379_{}.rdb", bad.create_time / 1000));
    bad.succeed = 0;
    bad.log = "size mismatch: expected 318767104 bytes, received 1048576".into();
    bad.illegal = Some("size mismatch".into());
    out.push(bad);
    out
}

struct Pipeline {
    redis: RedisServer,
    dir: tempfile::TempDir,
    keys: Keys,
    prefix: String,
    q1: String,
    q2: String,
    mq: String,
    catalog: PathBuf,
}

impl Pipeline {
    fn conn(&self) -> redis::Connection {
        self.redis.conn()
    }

    fn llen(&self, key: &str) -> u64 {
        redis::cmd("LLEN").arg(key).query(&mut self.conn()).unwrap()
    }

    fn node(&self, id: &str, up: bool, fields: &[(&str, String)]) {
        let mut c = self.conn();
        let mut all: Vec<(&str, String)> = vec![
            (state::KIND, "node".into()),
            (state::QUEUES, format!("{} {}", self.q1, self.q2)),
            (state::HEARTBEAT_MS, (now_ms() - 4000).to_string()),
            (state::PAUSED, "0".into()),
            (state::VERSION, "0.1.0".into()),
        ];
        all.extend(fields.iter().cloned());
        redis::cmd("SADD")
            .arg(self.keys.workers())
            .arg(id)
            .query::<()>(&mut c)
            .unwrap();
        redis::cmd("HSET")
            .arg(self.keys.state(id))
            .arg(&all)
            .query::<()>(&mut c)
            .unwrap();
        if up {
            redis::cmd("SET")
                .arg(self.keys.alive(id))
                .arg(1)
                .arg("PX")
                .arg(600_000)
                .query::<()>(&mut c)
                .unwrap();
        }
    }
}

#[test]
fn pages_in_headless_chromium_over_a_catalog_filled_by_the_indexer() {
    // Fail first, and clearly, when there is no browser.
    let chromium = Chromium::find();
    let probe = chromium.dom("data:text/html,<title>probe</title><p>ok</p>");
    assert!(
        probe.contains("<p>ok</p>"),
        "Chromium does not render: {probe}"
    );

    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("web:") + ":";
    let p = Pipeline {
        keys: Keys::new(&prefix),
        prefix,
        q1: unique("level1_"),
        q2: unique("uuzuback_"),
        mq: unique("message_"),
        catalog: dir.path().join("catalog.db"),
        redis,
        dir,
    };

    // 1. the indexer stores a week of results pushed onto message_queue
    let indexer_conf = p.dir.path().join("indexer.conf");
    common::write_indexer_conf(
        &indexer_conf,
        &p.redis.url(),
        &p.mq,
        &p.prefix,
        &p.catalog,
        &p.dir.path().join("indexer.log"),
        &format!("31 = mmo-east\n32 = card-battle\n33 = {EVIL_GAME}\n"),
    );
    let now = now_ms();
    let results = week_of_results(now);
    let mut c = p.conn();
    for r in &results {
        redis::cmd("LPUSH")
            .arg(&p.mq)
            .arg(serde_json::to_string(r).unwrap())
            .query::<()>(&mut c)
            .unwrap();
    }
    // not a result: the indexer dead-letters it with its reason
    redis::cmd("LPUSH")
        .arg(&p.mq)
        .arg(r#"{"server_id":"x","note":"truncated by a broken node"}"#)
        .query::<()>(&mut c)
        .unwrap();
    let mut indexer = spawn_indexer(&indexer_conf);
    let n = results.len() as i64;
    wait_until(
        "the indexer stored every result and dead-lettered the bad one",
        Duration::from_secs(120),
        || catalog_rows(&p.catalog) == n && p.llen(&p.keys.dead(&p.mq)) == 1 && p.llen(&p.mq) == 0,
    );

    // 2. the cluster as nodes publish it, plus queued and dead-lettered work
    let tib = 1u64 << 40;
    p.node(
        "node-a",
        true,
        &[
            (state::IP, "10.20.0.5".into()),
            (state::DISK_TOTAL, (8 * tib).to_string()),
            (state::DISK_FREE, (3 * tib).to_string()),
            (state::ACTIVE, "3".into()),
            (state::WORKERS, "4".into()),
        ],
    );
    p.node(
        "node-b",
        true,
        &[
            (state::IP, "10.20.0.6".into()),
            (state::DISK_TOTAL, (8 * tib).to_string()),
            (state::DISK_FREE, (8 * tib * 4 / 100).to_string()),
            (state::PAUSED, "1".into()),
            (
                state::PAUSE_REASON,
                "disk reserve: 327.7 GiB free, reserve 400 GiB".into(),
            ),
            (state::ACTIVE, "0".into()),
            (state::WORKERS, "4".into()),
        ],
    );
    p.node(
        "node-c",
        false,
        &[
            (state::IP, "10.20.0.7".into()),
            (state::DISK_TOTAL, (4 * tib).to_string()),
            (state::DISK_FREE, (2 * tib).to_string()),
            (state::WORKERS, "2".into()),
            (state::HEARTBEAT_MS, (now - 50 * 60_000).to_string()),
        ],
    );
    for i in 0..12 {
        let m = serde_json::json!({"filename": format!("db_{i}.tar.gz"), "last_all_filename": null, "size": 1024, "log": "ok",
            "create_time": now / 1000 - 120, "success": true, "server_id": 444444, "game_id": 31, "op_id": 1,
            "game_server_ip": "10.0.4.4", "back_type": "mysql", "instance": 3300 + i, "rsync_model": "backup/db",
            "last_all_time": 0, "interval": 3600});
        redis::cmd("LPUSH")
            .arg(if i < 3 { &p.q1 } else { &p.q2 })
            .arg(m.to_string())
            .query::<()>(&mut c)
            .unwrap();
    }
    let dead = DeadLetter {
        payload: r#"{"filename":"../../etc/passwd","server_id":555555,"back_type":"mysql","instance":3306}"#.into(),
        reason: "illegal message: filename `../../etc/passwd` has a `..` component".into(),
        time: now - 20 * 60_000,
        node: "node-a".into(),
        queue: p.q1.clone(),
    };
    redis::cmd("LPUSH")
        .arg(p.keys.dead(&p.q1))
        .arg(serde_json::to_string(&dead).unwrap())
        .query::<()>(&mut c)
        .unwrap();

    // 3. the real reporter binary serves the pages
    let reporter_conf = p.dir.path().join("reporter.conf");
    std::fs::write(
        &reporter_conf,
        format!(
            "[global]\nredis_host = 127.0.0.1\nredis_port = {}\nredis_queue = {} {}\nmessage_queue = {}\nkey_prefix = {}\ncatalog = {}\n[reporter]\nserve_token = {TOKEN}\nbacklog_threshold = 5\n",
            p.redis.port,
            p.q1,
            p.q2,
            p.mq,
            p.prefix,
            p.catalog.display()
        ),
    )
    .unwrap();
    let (mut serve, port) = spawn_serve(&reporter_conf);
    let base = format!("http://127.0.0.1:{port}");

    let shots: PathBuf = if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&d).unwrap();
        d
    } else {
        p.dir.path().join("screenshots")
    };
    std::fs::create_dir_all(&shots).unwrap();

    let started = Instant::now();
    // each page: what it must say, in the browser's DOM
    let check = |path: &str, must: &[&str]| -> String {
        let dom = chromium.dom(&format!("{base}{path}"));
        assert!(
            !dom.to_ascii_lowercase().contains("<script"),
            "{path}: a script element reached the DOM:\n{dom}"
        );
        let text = text_of(&dom);
        for m in must {
            assert!(
                text.contains(m),
                "{path}: the page does not say `{m}`; it says:\n{text}"
            );
        }
        dom
    };

    check(
        "/",
        &[
            "Overview",
            "node-a",
            "node-b",
            "node-c",
            "down",
            "paused",
            "disk reserve: 327.7 GiB free",
            "indexer-1",
            &p.q1,
            &p.q2,
            "Last 24 hours",
        ],
    );
    chromium.screenshot(&format!("{base}/"), &shots.join("overview.png"), 1250);

    let alerts = check(
        "/alerts",
        &[
            "script_error (1)",
            "111111/mysql/3307/mmo-east",
            "client reported: backup script exited 2: mysqldump: Got error: 2002",
            "illegal (1)",
            "overdue (2)",
            "333333/mysql/3306/&lt;script&gt;alert(\"pwned\")&lt;/script&gt;",
            "node_disk_low (1)",
            "node_down (1)",
            "dead_letters (2)",
            "queue_backlog (1)",
        ],
    );
    assert!(
        alerts.contains("href=\"/instance/111111/mysql/3307\""),
        "the failing instance's alert links to its history"
    );
    // the business named like a script is shown as text
    assert!(
        text_of(&alerts).contains("&lt;script&gt;alert(\"pwned\")&lt;/script&gt;"),
        "{alerts}"
    );
    chromium.screenshot(&format!("{base}/alerts"), &shots.join("alerts.png"), 1000);

    let one = check(
        "/alerts?business=card-battle",
        &[
            "illegal (1)",
            "222222/redis/6379/card-battle",
            "illegal backup: size mismatch",
        ],
    );
    assert!(
        !text_of(&one).contains("mmo-east/"),
        "the business filter keeps only card-battle's alerts"
    );

    let stats = check(
        "/stats",
        &[
            "Statistics",
            "Backups per hour",
            "Bytes shipped per day",
            "Largest backups",
            "Slowest pulls",
            "full_3306_",
        ],
    );
    assert!(
        stats.matches("<rect").count() > 168,
        "a bar per hour: {}",
        stats.matches("<rect").count()
    );
    chromium.screenshot(&format!("{base}/stats"), &shots.join("stats.png"), 1500);
    check("/stats?type=redis&days=3", &["dump_6379_"]);

    let inst = check(
        "/instance/111111/mysql/3306",
        &[
            "Instance 111111:mysql:3306",
            "mmo-east",
            "incremental of full_3306_",
            "ubackup-client restore --type mysql --instance 3306 --server-id 111111 --at ",
            "size+blake3",
            "node-a",
        ],
    );
    chromium.screenshot(
        &format!("{base}/instance/111111/mysql/3306"),
        &shots.join("instance.png"),
        1100,
    );
    // the restore command the page shows for the newest backup
    let cmd_at = inst
        .find("ubackup-client restore --type mysql --instance 3306 --server-id 111111 --at ")
        .unwrap();
    let cmd: String = inst[cmd_at..].split('<').next().unwrap().to_string();
    assert!(cmd.trim_end().ends_with('Z'), "{cmd}");

    let evil = check(
        "/instance/333333/mysql/3306",
        &["db_&lt;script&gt;alert(1)&lt;/script&gt;_", "overdue"],
    );
    assert!(
        text_of(&evil).contains("&lt;script&gt;alert(\"pwned\")&lt;/script&gt;"),
        "the business name as text"
    );

    check(
        "/control",
        &[
            "Cluster control",
            "Read-only view",
            "node-b",
            "illegal message: filename `../../etc/passwd` has a `..` component",
            &p.keys.dead(&p.mq),
        ],
    );

    // Log in the way a person does (the token in the login form), in a
    // profile whose cookie jar later runs share.
    let profile = chromium.profile();
    chromium.dom_in(
        Some(&profile),
        &auto_post(&format!("{base}/login"), &[("token", TOKEN)]),
    );
    let control = chromium.dom_in(Some(&profile), &format!("{base}/control"));
    let text = text_of(&control);
    for m in [
        "Log out",
        "Pause",
        "Set workers",
        "Requeue",
        "Drop",
        "Requeue all",
        "Drop all",
    ] {
        assert!(
            text.contains(m),
            "logged in, /control offers `{m}`:\n{text}"
        );
    }
    assert!(
        control.contains("name=\"csrf\""),
        "write forms carry the csrf field"
    );
    chromium.screenshot_in(
        Some(&profile),
        &format!("{base}/control"),
        &shots.join("control.png"),
        1000,
    );
    // A page on another site posting to a write action with the browser's
    // cookie jar: refused, and nothing changes.
    let forged = chromium.dom_in(
        Some(&profile),
        &auto_post(&format!("{base}/control/node/node-a/pause"), &[]),
    );
    assert!(text_of(&forged).contains("nothing was changed"), "{forged}");
    let ctl: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(p.keys.control("node-a"))
        .query(&mut p.conn())
        .unwrap();
    assert!(
        ctl.is_empty(),
        "a cross-site form changed the control hash: {ctl:?}"
    );

    check(
        "/instance/1/nothing/2",
        &["404 Not found", "no instance 1:nothing:2"],
    );
    check(
        "/stats?days=many",
        &["400 Bad request", "parameter `days`: `many` is not valid"],
    );
    eprintln!(
        "browser checks took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );

    // the restore command is one the real client accepts, and it picks that backup
    let client_conf = p.dir.path().join("client.conf");
    std::fs::write(
        &client_conf,
        format!(
            "[global]\nserver_id = 111111\ngame_id = 31\nop_id = 1\nredis_host = 127.0.0.1\nredis_port = {}\nredis_queue = {}\nmy_ip = 127.0.0.1\ncatalog = {}\nlog = {}\n",
            p.redis.port,
            p.q1,
            p.catalog.display(),
            p.dir.path().join("client.log").display()
        ),
    )
    .unwrap();
    let newest_file = results
        .iter()
        .filter(|r| r.instance == 3306 && r.server_id == 111111 && r.succeed == 1)
        .max_by_key(|r| r.create_time)
        .and_then(|r| r.filename.clone())
        .unwrap();
    let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let out = Command::new(workspace_bin("ubackup-client"))
        .args(&words)
        .args(["--dry-run", "-c", client_conf.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&newest_file),
        "`{cmd} --dry-run` should plan {newest_file}: exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );

    serve.signal(libc::SIGTERM);
    assert_eq!(serve.wait_exit(Duration::from_secs(20)), Some(Some(0)));
    indexer.signal(libc::SIGTERM);
    assert_eq!(indexer.wait_exit(Duration::from_secs(20)), Some(Some(0)));
}
