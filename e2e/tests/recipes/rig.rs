//! One database host and the real pipeline behind it, for the recipe
//! tests: the cluster builder's Redis, one pull node (`ubackup-server`,
//! with the read-only restore module of deploy/rsyncd/node-rsyncd.conf),
//! the indexer (SQLite catalog), `ubackup-reporter serve` with the catalog
//! API (`api_tokens_file`), and the host's rsync daemon over its back_dir
//! root. The host's client configs derive from
//! deploy/examples/client-databases.conf: one reads the SQLite catalog,
//! one the API (`catalog_url`).

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use ubackup_e2e::{localhost, repo_file, repo_root, run_bin, start_listening, Daemon};
use ubackup_testkit::cluster::{ini_del, ini_set, wait_for, Cluster, ClusterBuilder, Conf, Names};
use ubackup_testkit::{unique, Proc};

/// The host's server id (the example config's).
pub const HOST_ID: i64 = 900002;
/// The host's API token (no `pin`) and an operator's (every host, `pin`).
pub const HOST_TOKEN: &str = "hosttoken-0123456789abcdef";
pub const OPERATOR_TOKEN: &str = "operatortoken-0123456789abcdef";

pub struct Rig {
    pub cluster: Cluster,
    pub root: PathBuf,
    pub host: PathBuf,
    pub node_conf: PathBuf,
    pub node_store: PathBuf,
    /// Client configs: the SQLite catalog / the catalog API.
    pub sqlite_conf: PathBuf,
    pub api_conf: PathBuf,
    /// The operator's config: the API with the `pin` token.
    pub operator_conf: PathBuf,
    _procs: Vec<Proc>,
    _daemons: Vec<Daemon>,
}

impl Rig {
    pub fn start() -> Rig {
        let mut cluster = ClusterBuilder::new("recipes")
            .names(Names {
                prefix: unique("rcp:"),
                hi: unique("level1-"),
                lo: unique("uuzuback-"),
                results: unique("message-"),
            })
            .start()
            .unwrap();
        let root = cluster.dir.path().to_path_buf();
        // PostgreSQL runs as nobody: it must reach its dirs in here
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut procs = Vec::new();
        let mut daemons = Vec::new();

        let catalog = root.join("catalog.db");
        // ---- the pull node (prune reads the catalog) and its restore module
        let nd = root.join("node1");
        let store = nd.join("store");
        std::fs::create_dir_all(&store).unwrap();
        let ip: IpAddr = localhost();
        let (_, node_port) = cluster
            .dbhost_rsyncd(
                "rsync --daemon (node)",
                &repo_file("deploy/rsyncd/node-rsyncd.conf"),
                &nd,
                &store,
                "127.0.0.0/8",
            )
            .unwrap();
        let node_conf = nd.join("server.conf");
        cluster
            .node_conf(
                Conf::from_text(repo_file("deploy/examples/server.conf")),
                "n1",
                &format!("{}/", store.display()),
                &nd.join("server.log"),
                &ip.to_string(),
            )
            .apply(&cluster.message_redis_settings())
            .apply(&[
                ("work_thread", "2"),
                ("reserve", "0"),
                ("retry", "3"),
                ("retry_backoff_ms", "100"),
                ("rsync_timeout", "30"),
                ("rsync_contimeout", "5"),
                ("queue_wait_ms", "100"),
                ("allow_sources", "127.0.0.1/32"),
                ("keeptime.redis", "1"),
            ])
            .set("catalog", catalog.display().to_string())
            .set("error_log", nd.join("server.error").display().to_string())
            .write(&node_conf)
            .unwrap();
        procs.push(Proc::spawn("node n1", cluster.command("ubackup-server", &node_conf)).unwrap());

        // ---- the indexer, and serve with the catalog API
        let iconf = root.join("indexer.conf");
        let tokens = root.join("api-tokens");
        std::fs::write(
            &tokens,
            format!(
                "# the host, and an operator\n{HOST_TOKEN} {HOST_ID}\n{OPERATOR_TOKEN} * pin\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = cluster
            .indexer_conf(
                Conf::from_text(repo_file("deploy/examples/indexer.conf")).del("es_urls"),
                "idx1",
                &catalog,
                &root.join("indexer.log"),
            )
            .set(
                "error_log",
                root.join("indexer.error").display().to_string(),
            )
            .append(&format!(
                "\n[reporter]\napi_tokens_file = {}\n",
                tokens.display()
            ));
        text.write(&iconf).unwrap();
        procs.push(Proc::spawn("indexer", cluster.command("ubackup-indexer", &iconf)).unwrap());
        for w in ["n1", "idx1"] {
            cluster.wait_alive(w, w, Duration::from_secs(30)).unwrap();
        }
        let reporter = cluster.bin("ubackup-reporter");
        let serve = start_listening("ubackup-reporter serve", &[ip], |addr, port| {
            let mut c = Command::new(&reporter);
            c.args([
                "serve",
                "-c",
                iconf.to_str().unwrap(),
                "--listen",
                &format!("{addr}:{port}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            c
        })
        .unwrap();
        let api_url = format!("http://{ip}:{}", serve[0].port);
        daemons.extend(serve);

        // ---- the database host: its rsync daemon over back_dir's root
        let host = root.join("host");
        for sub in ["backup", "log", "spool"] {
            std::fs::create_dir_all(host.join(sub)).unwrap();
        }
        let (_, rsync_port) = cluster
            .dbhost_rsyncd(
                "rsync --daemon (host)",
                &repo_file("deploy/rsyncd/dbhost-rsyncd.conf"),
                &host,
                &host.join("backup"),
                "127.0.0.1",
            )
            .unwrap();

        let token_file = host.join("catalog.token");
        std::fs::write(&token_file, format!("{HOST_TOKEN}\n")).unwrap();
        let op_token = host.join("operator.token");
        std::fs::write(&op_token, format!("{OPERATOR_TOKEN}\n")).unwrap();
        let h = host.display();
        let mut text = Conf::from_text(repo_file("deploy/examples/client-databases.conf"))
            .apply(&[
                ("redis_host", "127.0.0.1".to_string()),
                ("redis_port", cluster.redis.port.to_string()),
                ("redis_queue", cluster.names.lo.clone()),
                ("key_prefix", cluster.names.prefix.clone()),
                ("my_ip", "127.0.0.1".into()),
                ("log", format!("{h}/log/client.log")),
                ("error_log", format!("{h}/log/client.error")),
                ("spool_dir", format!("{h}/spool")),
                ("rsync_port", rsync_port.to_string()),
                ("node_rsync_port", node_port.to_string()),
                ("catalog_ca", String::new()),
            ])
            .text()
            .to_string();
        for (sec, sub) in [
            ("mysql3306", "database_3306"),
            ("postgres5432", "postgres_5432"),
            ("redis6379", "redisbase_6379"),
        ] {
            text = ini_set(&text, sec, "back_dir", &format!("{h}/backup/{sub}"));
            text = ini_set(&text, sec, "rsync_model", &format!("backup/{sub}"));
            text = ini_set(&text, sec, "back_log", &format!("{h}/log/{sec}.log"));
            text = ini_set(&text, sec, "timeout", "300");
            if sec == "mysql3306" {
                text = ini_set(&text, sec, "last_all_log", &format!("{h}/log/{sec}.last"));
            }
            if sec == "redis6379" {
                text = ini_set(&text, sec, "redis_queue", &cluster.names.hi);
            }
        }
        let conf_with = |name: &str, pairs: &[(&str, String)]| {
            let p = host.join(name);
            Conf::from_text(text.clone())
                .apply(pairs)
                .write(&p)
                .unwrap();
            p
        };
        let api_conf = conf_with(
            "client-api.conf",
            &[
                ("catalog_url", api_url.clone()),
                ("catalog_token_file", token_file.display().to_string()),
            ],
        );
        let operator_conf = conf_with(
            "client-operator.conf",
            &[
                ("catalog_url", api_url.clone()),
                ("catalog_token_file", op_token.display().to_string()),
            ],
        );
        let sqlite_conf = conf_with(
            "client-sqlite.conf",
            &[
                ("catalog_url", String::new()),
                ("catalog_token_file", String::new()),
                ("catalog", catalog.display().to_string()),
            ],
        );
        Rig {
            cluster,
            root,
            host,
            node_conf,
            node_store: store,
            sqlite_conf,
            api_conf,
            operator_conf,
            _procs: procs,
            _daemons: daemons,
        }
    }

    /// Sets `key` of `section` in every client config (the backup line of
    /// an engine: its socket, its port).
    pub fn set_section(&self, section: &str, key: &str, value: &str) {
        for p in [&self.sqlite_conf, &self.api_conf, &self.operator_conf] {
            let text = std::fs::read_to_string(p).unwrap();
            let text = if value.is_empty() {
                ini_del(&text, section, key)
            } else {
                ini_set(&text, section, key, value)
            };
            std::fs::write(p, text).unwrap();
        }
    }

    pub fn client(&self, conf: &Path, args: &[&str]) -> (Option<i32>, String, String) {
        let mut a = vec!["-c", conf.to_str().unwrap()];
        a.extend_from_slice(args);
        run_bin(
            &self.cluster.bin("ubackup-client"),
            &a,
            Duration::from_secs(600),
        )
    }

    /// One backup run of `section`; returns what its back_log says.
    pub fn backup(&self, section: &str) -> (bool, String) {
        let (code, out, err) = self.client(&self.sqlite_conf, &["--only", section]);
        let log = std::fs::read_to_string(self.host.join(format!("log/{section}.log")))
            .unwrap_or_default();
        let mut lines = log.lines();
        let ok = lines.next() == Some("ok");
        let second = lines.next().unwrap_or("").to_string();
        assert_eq!(
            code,
            Some(if ok { 0 } else { 1 }),
            "client run of {section}: {log}\n{out}{err}"
        );
        (ok, second)
    }

    /// `list --json --all` of this host through `conf`.
    pub fn list(&self, conf: &Path, extra: &[&str]) -> Vec<Value> {
        let mut a = vec!["list", "--json", "--all"];
        a.extend_from_slice(extra);
        let (code, out, err) = self.client(conf, &a);
        assert_eq!(code, Some(0), "list: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("list --json: {e}: {out}"))
    }

    /// Waits until the catalog has a successful backup with this file name;
    /// returns its row (through the API).
    pub fn wait_indexed(&self, filename: &str) -> Value {
        let mut row = None;
        wait_for(
            &format!("{filename} in the catalog"),
            Duration::from_secs(120),
            || {
                row = self
                    .list(&self.api_conf, &[])
                    .into_iter()
                    .find(|r| r["filename"] == filename && r["status"] == "ok");
                row.is_some()
            },
        )
        .unwrap();
        row.unwrap()
    }

    /// `restore --id ID --dest DEST --run-hook` through `conf`; the output.
    pub fn restore(&self, conf: &Path, id: &str, dest: &Path) -> String {
        let (code, out, err) = self.client(
            conf,
            &[
                "restore",
                "--id",
                id,
                "--dest",
                dest.to_str().unwrap(),
                "--run-hook",
            ],
        );
        assert_eq!(code, Some(0), "restore {id}: {out}{err}");
        out + &err
    }
}

/// A recipe script in deploy/examples/scripts.
pub fn script(name: &str) -> String {
    repo_root()
        .join("deploy/examples/scripts")
        .join(name)
        .display()
        .to_string()
}

/// `program` on PATH (or at that path), or a loud skip message. With
/// `UBACKUP_REQUIRE_DATABASES=1` (set by `test.sh`, which installs them) a
/// missing server fails the test instead: CI must never pass by skipping.
pub fn have(programs: &[&str], engine: &str) -> bool {
    for p in programs {
        let found = if p.contains('/') {
            Path::new(p).exists()
        } else {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {p}"))
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if !found {
            if std::env::var("UBACKUP_REQUIRE_DATABASES").as_deref() == Ok("1") {
                panic!("the {engine} recipe test needs {p}, which is not installed, and UBACKUP_REQUIRE_DATABASES=1 forbids skipping");
            }
            eprintln!("\n!!!! SKIPPING the {engine} recipe test: {p} is not installed (CI installs it; apt-get install mariadb-server mariadb-backup postgresql redis-server) !!!!\n");
            return false;
        }
    }
    true
}
