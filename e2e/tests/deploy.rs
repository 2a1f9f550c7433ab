//! The deployment files under deploy/ and quickstart.sh, each parsed or run
//! for real: supervisor programs and systemd units against the binaries'
//! drain deadlines, the rsyncd confs by starting `rsync --daemon` with them
//! and pulling through them with the node's and restore's options, the Redis
//! conf by starting redis-server with it, and the crontab lines against the
//! binaries' own argument parsers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ubackup_common::deadlines::{INDEXER_DRAIN_GRACE, SERVER_DRAIN_DEFAULT};
use ubackup_common::{IniDoc, SectionReader};
use ubackup_e2e::{
    localhost, render_rsyncd, repo_file, repo_root, run_bin, start_listening, start_rsyncd,
};
use ubackup_testkit::{workspace_bin, write_file};

/// The longest a clean stop of each program can take, from the deadlines
/// the programs themselves use (`ubackup_common::deadlines`): a node drains
/// for `drain_secs` (the default, or the shipped example's value, whichever
/// is longer); the indexer gives a running store call `DRAIN_GRACE`, then
/// hands the batch back. supervisord/systemd must wait longer than this
/// before SIGKILL.
fn drain_deadline(program: &str) -> Duration {
    match program {
        "ubackup-server" => {
            let file = Path::new("deploy/examples/server.conf");
            let doc = IniDoc::parse(file, &repo_file("deploy/examples/server.conf"))
                .expect("the example server config parses");
            let example: f64 = SectionReader::required(&doc, "global")
                .and_then(|g| {
                    g.parse_or(
                        "drain_secs",
                        "a number of seconds",
                        SERVER_DRAIN_DEFAULT.as_secs_f64(),
                    )
                })
                .expect("the example server config's drain_secs parses");
            Duration::from_secs_f64(example).max(SERVER_DRAIN_DEFAULT)
        }
        // + a few seconds for the hand-back and the final ack
        "ubackup-indexer" => INDEXER_DRAIN_GRACE + Duration::from_secs(5),
        other => panic!("no drain deadline known for {other}"),
    }
}

/// The example config a program's `-c` stands for.
fn example_config(program: &str) -> PathBuf {
    repo_root().join(match program {
        "ubackup-server" => "deploy/examples/server.conf",
        "ubackup-indexer" => "deploy/examples/indexer.conf",
        "ubackup-client" => "deploy/examples/client.conf",
        other => panic!("no example config for {other}"),
    })
}

fn files_in(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn secs(v: &str, what: &str) -> Duration {
    Duration::from_secs(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{what} = `{v}` is not a number of seconds")),
    )
}

// ---------------------------------------------------------------- supervisor

#[test]
fn supervisor_programs_stop_with_term_after_the_drain_and_restart() {
    let files = files_in("deploy/supervisor", "conf");
    let mut programs = Vec::new();
    for f in &files {
        let doc = IniDoc::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(
            doc.sections.len(),
            1,
            "{}: one [program:…] per file",
            f.display()
        );
        let s = &doc.sections[0];
        let name = s
            .name
            .strip_prefix("program:")
            .unwrap_or_else(|| panic!("{}: section [{}] is not [program:…]", f.display(), s.name));
        let get = |k: &str| {
            s.entries
                .get(k)
                .map(|e| e.value.clone())
                .unwrap_or_else(|| panic!("{}: [{}] has no `{k}`", f.display(), s.name))
        };
        programs.push(name.to_string());

        // the command: the program's binary with a config that it accepts
        let command = get("command");
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(
            words[0],
            format!("/usr/local/bin/{name}"),
            "{}: command",
            f.display()
        );
        assert_eq!(
            words[1..],
            [
                "-c",
                &format!("/etc/ubackup/{}.conf", name.trim_start_matches("ubackup-"))
            ],
            "{}",
            f.display()
        );
        let example = example_config(name);
        let (code, out, err) = run_bin(
            &workspace_bin(name),
            &["-c", example.to_str().unwrap(), "--check"],
            Duration::from_secs(20),
        );
        assert_eq!(
            code,
            Some(0),
            "{name} --check with {}: {out}{err}",
            example.display()
        );

        assert_eq!(get("stopsignal"), "TERM", "{}", f.display());
        let wait = secs(&get("stopwaitsecs"), "stopwaitsecs");
        let drain = drain_deadline(name);
        assert!(
            wait > drain,
            "{}: stopwaitsecs {wait:?} must exceed {name}'s drain deadline {drain:?}",
            f.display()
        );
        assert_eq!(get("autorestart"), "true", "{}", f.display());
        // a config error exits at once (< startsecs): supervisord gives up
        // after startretries instead of restarting it forever
        assert!(
            secs(&get("startsecs"), "startsecs") >= Duration::from_secs(1),
            "{}",
            f.display()
        );
        assert_eq!(get("stopasgroup"), "true", "{}", f.display());
        let log = get("stdout_logfile");
        assert!(
            log.starts_with("/var/log/ubackup/") && log.ends_with(".log"),
            "{}: stdout_logfile {log}",
            f.display()
        );
        assert_eq!(
            get("redirect_stderr"),
            "true",
            "{}: stderr must be logged too",
            f.display()
        );
    }
    assert_eq!(
        programs,
        ["ubackup-indexer", "ubackup-server"],
        "a program for the indexer and for the node"
    );
}

// ------------------------------------------------------------------- systemd

#[test]
fn systemd_units_match_the_drain_deadlines_and_verify() {
    let units = files_in("deploy/systemd", "service");
    assert_eq!(
        units.len(),
        2,
        "ubackup-server.service and ubackup-indexer.service"
    );
    let tmp = tempfile::tempdir().unwrap();
    for u in &units {
        let name = u.file_stem().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(u).unwrap();
        let doc = IniDoc::parse(u, &text).unwrap_or_else(|e| panic!("{e}"));
        let svc = doc
            .section("Service")
            .unwrap_or_else(|| panic!("{}: no [Service]", u.display()));
        let get = |k: &str| {
            svc.entries
                .get(k)
                .map(|e| e.value.clone())
                .unwrap_or_else(|| panic!("{}: no {k}", u.display()))
        };
        assert_eq!(
            get("ExecStart"),
            format!(
                "/usr/local/bin/{name} -c /etc/ubackup/{}.conf",
                name.trim_start_matches("ubackup-")
            )
        );
        assert_eq!(get("KillSignal"), "SIGTERM");
        // only the main process gets SIGTERM: the rsync children must be
        // left to the node's own drain, not killed with it
        assert_eq!(get("KillMode"), "mixed");
        let stop = secs(
            get("TimeoutStopSec").trim_end_matches('s'),
            "TimeoutStopSec",
        );
        assert!(
            stop > drain_deadline(name),
            "{}: TimeoutStopSec {stop:?} <= drain deadline",
            u.display()
        );
        assert_eq!(get("Restart"), "on-failure");
        assert_eq!(
            get("RestartPreventExitStatus"),
            "2",
            "a config error (exit 2) is not restarted"
        );

        // systemd's own parser, when it is installed: it exits 0 on unknown
        // keys and bad values, but prints them, so stderr must stay empty
        let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists());
        let Some(analyze) = analyze else {
            eprintln!("systemd-analyze not installed: {name} checked by parsing only");
            continue;
        };
        let conf = example_config(name);
        let rendered = text
            .replace(
                &format!("/usr/local/bin/{name}"),
                workspace_bin(name).to_str().unwrap(),
            )
            .replace(
                &format!("/etc/ubackup/{}.conf", name.trim_start_matches("ubackup-")),
                conf.to_str().unwrap(),
            );
        let path = tmp.path().join(format!("{name}.service"));
        std::fs::write(&path, rendered).unwrap();
        let out = Command::new(analyze)
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let relevant: Vec<&str> = err.lines().filter(|l| l.contains(name)).collect();
        assert!(
            out.status.success() && relevant.is_empty(),
            "systemd-analyze verify {name}: {err}"
        );
    }
}

// -------------------------------------------------------------------- rsyncd

/// The node's pull, with the options ubackup-server uses (transport/src/rsync.rs).
fn node_pull(port: u16, remote: &str, dest: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new("rsync")
        .args([
            "-s",
            "--no-links",
            "--times",
            "--no-motd",
            "--contimeout=5",
            "--timeout=10",
            "--partial",
            "--partial-dir=.rsync-partial",
        ])
        .arg("--sockopts=TCP_NODELAY")
        .args(extra)
        .arg("--")
        .arg(format!("rsync://127.0.0.1:{port}/{remote}"))
        .arg(format!("{}/", dest.display()))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shipped file's global settings and its one module, as key → value.
fn rsyncd_settings(text: &str) -> (BTreeMap<String, String>, String, BTreeMap<String, String>) {
    let mut global = BTreeMap::new();
    let mut module = BTreeMap::new();
    let mut name = String::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(n) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(name.is_empty(), "one module per shipped rsyncd.conf");
            name = n.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not `key = value`: {line}"));
        let m = if name.is_empty() {
            &mut global
        } else {
            &mut module
        };
        m.insert(k.trim().to_string(), v.trim().to_string());
    }
    (global, name, module)
}

fn assert_safe_defaults(file: &str, text: &str) {
    let (global, _, module) = rsyncd_settings(text);
    let any = |k: &str| {
        module
            .get(k)
            .or_else(|| global.get(k))
            .cloned()
            .unwrap_or_else(|| panic!("{file}: `{k}` missing"))
    };
    assert_eq!(any("read only"), "yes", "{file}");
    assert_eq!(any("use chroot"), "yes", "{file}");
    assert_eq!(any("list"), "no", "{file}");
    assert_eq!(any("socket options"), "TCP_NODELAY", "{file}");
    assert!(any("max connections").parse::<u32>().unwrap() > 0, "{file}");
    assert!(any("timeout").parse::<u32>().unwrap() > 0, "{file}");
    let allow = any("hosts allow");
    assert!(
        !allow.contains("0.0.0.0/0") && allow != "*",
        "{file}: hosts allow must name the nodes' network, not {allow}"
    );
    assert_eq!(any("hosts deny"), "*", "{file}");
    let refuse = any("refuse options");
    assert!(
        refuse.split_whitespace().any(|o| o == "delete"),
        "{file}: refuse options"
    );
    // every rsync client sends `-e.<flags>`: refusing rsh refuses every pull
    assert!(
        !refuse.split_whitespace().any(|o| o == "rsh" || o == "e"),
        "{file}: refuse options must not refuse rsh"
    );
}

fn assert_no_unknown_parameters(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains("Unknown Parameter") && !text.contains("IGNORING"),
        "rsyncd did not understand the config: {text}"
    );
}

#[test]
fn dbhost_rsyncd_conf_serves_the_nodes_pulls_and_nothing_else() {
    let template = repo_file("deploy/rsyncd/dbhost-rsyncd.conf");
    assert_safe_defaults("dbhost-rsyncd.conf", &template);
    let (_, module, _) = rsyncd_settings(&template);
    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("backup");
    write_file(&backup.join("database_3306/full_1.xb"), 300_000, 1);
    write_file(&backup.join("database_3306/inc_1.xb"), 7_000, 2);
    std::os::unix::fs::symlink("/etc/hostname", backup.join("database_3306/link.xb")).unwrap();
    let conf = tmp.path().join("rsyncd.conf");
    std::fs::write(
        &conf,
        render_rsyncd(&template, tmp.path(), &backup, "127.0.0.1"),
    )
    .unwrap();
    let d = start_rsyncd(&conf, &[localhost()]).unwrap();
    let port = d[0].port;

    // the node's pull of one file, and of a batch (--files-from)
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let (rc, err) = node_pull(
        port,
        &format!("{module}/database_3306/full_1.xb"),
        &dest,
        &[],
    );
    assert_eq!(
        rc, 0,
        "the node's pull through the shipped dbhost conf: {err}"
    );
    assert_eq!(
        std::fs::read(dest.join("full_1.xb")).unwrap(),
        std::fs::read(backup.join("database_3306/full_1.xb")).unwrap()
    );
    let list = tmp.path().join("list");
    std::fs::write(&list, "database_3306/full_1.xb\0database_3306/inc_1.xb\0").unwrap();
    let batch = tmp.path().join("batch");
    std::fs::create_dir(&batch).unwrap();
    let (rc, err) = node_pull(
        port,
        &format!("{module}/"),
        &batch,
        &["--from0", &format!("--files-from={}", list.display())],
    );
    assert_eq!(rc, 0, "batch pull: {err}");
    assert_eq!(
        std::fs::read(batch.join("database_3306/inc_1.xb")).unwrap(),
        std::fs::read(backup.join("database_3306/inc_1.xb")).unwrap()
    );
    // a symlink is never pulled as data (and with chroot it could not leave the module)
    let (_, _) = node_pull(port, &format!("{module}/database_3306/link.xb"), &dest, &[]);
    assert!(
        std::fs::symlink_metadata(dest.join("link.xb")).is_err(),
        "a symlink was landed"
    );

    // read only: a push is refused
    let out = Command::new("rsync")
        .args(["--contimeout=5", "--timeout=10"])
        .arg(backup.join("database_3306/inc_1.xb"))
        .arg(format!(
            "rsync://127.0.0.1:{port}/{module}/database_3306/pushed.xb"
        ))
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "a push into the module succeeded"
    );
    assert!(!backup.join("database_3306/pushed.xb").exists());
    // list = no: the module is not advertised
    let out = Command::new("rsync")
        .args(["--contimeout=5", "--timeout=10"])
        .arg(format!("rsync://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&module),
        "module listed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // deleting options are refused by the daemon
    let (rc, err) = node_pull(
        port,
        &format!("{module}/database_3306/inc_1.xb"),
        &dest,
        &["--remove-source-files"],
    );
    assert_ne!(rc, 0, "--remove-source-files accepted: {err}");
    assert!(
        backup.join("database_3306/inc_1.xb").exists(),
        "the daemon deleted a source file"
    );
    assert_no_unknown_parameters(&tmp.path().join("rsyncd.log"));
}

#[test]
fn dbhost_rsyncd_hosts_allow_as_shipped_refuses_other_networks() {
    // the shipped `hosts allow` (the nodes' network, 10.20.0.0/16): a pull
    // from 127.0.0.1 is refused
    let template = repo_file("deploy/rsyncd/dbhost-rsyncd.conf");
    let (_, module, m) = rsyncd_settings(&template);
    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("backup");
    write_file(&backup.join("f.xb"), 100, 3);
    let conf = tmp.path().join("rsyncd.conf");
    std::fs::write(
        &conf,
        render_rsyncd(&template, tmp.path(), &backup, &m["hosts allow"]),
    )
    .unwrap();
    let d = start_rsyncd(&conf, &[localhost()]).unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let (rc, err) = node_pull(d[0].port, &format!("{module}/f.xb"), &dest, &[]);
    // rsync 3.5 answers a denied host as if the module did not exist
    assert_eq!(rc, 5, "{err}");
    assert!(
        err.contains("access denied") || err.contains(&format!("Unknown module '{module}'")),
        "expected the daemon to refuse, got: {err}"
    );
    // and the same file with the nodes' network set to ours is served
    drop(d); // (its pid file is locked while it runs)
    std::fs::write(
        &conf,
        render_rsyncd(&template, tmp.path(), &backup, "127.0.0.1"),
    )
    .unwrap();
    let d = start_rsyncd(&conf, &[localhost()]).unwrap();
    let (rc, err) = node_pull(d[0].port, &format!("{module}/f.xb"), &dest, &[]);
    assert_eq!(rc, 0, "{err}");
}

#[test]
fn dbhost_rsyncd_optional_auth_users_work_with_the_nodes_password_file() {
    // the commented-out `auth users` / `secrets file` lines, switched on
    let template = repo_file("deploy/rsyncd/dbhost-rsyncd.conf");
    let (_, module, _) = rsyncd_settings(&template);
    assert!(
        template.contains("# auth users = ubackup:ro") && template.contains("# secrets file = "),
        "the optional auth lines"
    );
    let tmp = tempfile::tempdir().unwrap();
    let secrets = tmp.path().join("rsyncd.secrets");
    std::fs::write(&secrets, "ubackup:s3cret\n").unwrap();
    let pwfile = tmp.path().join("rsync.secret");
    std::fs::write(&pwfile, "s3cret\n").unwrap();
    for f in [&secrets, &pwfile] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let with_auth = template
        .replace("# auth users = ubackup:ro", "auth users = ubackup:ro")
        .lines()
        .map(|l| {
            if l.starts_with("# secrets file = ") {
                format!("secrets file = {}", secrets.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let backup = tmp.path().join("backup");
    write_file(&backup.join("f.xb"), 5000, 4);
    let conf = tmp.path().join("rsyncd.conf");
    std::fs::write(
        &conf,
        render_rsyncd(&with_auth, tmp.path(), &backup, "127.0.0.1"),
    )
    .unwrap();
    let d = start_rsyncd(&conf, &[localhost()]).unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    // what a node with rsync_user / rsync_password_file runs
    let (rc, err) = node_pull(d[0].port, &format!("{module}/f.xb"), &dest, &[]);
    assert_eq!(
        rc, 5,
        "without credentials the daemon must refuse (exit 5): {err}"
    );
    let out = Command::new("rsync")
        .args([
            "-s",
            "--no-links",
            "--times",
            "--contimeout=5",
            "--timeout=10",
        ])
        .arg(format!("--password-file={}", pwfile.display()))
        .arg("--")
        .arg(format!(
            "rsync://ubackup@127.0.0.1:{}/{module}/f.xb",
            d[0].port
        ))
        .arg(format!("{}/", dest.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pull with the password file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dest.join("f.xb")).unwrap(),
        std::fs::read(backup.join("f.xb")).unwrap()
    );
    assert_no_unknown_parameters(&tmp.path().join("rsyncd.log"));
}

#[test]
fn node_rsyncd_conf_serves_restore_and_hides_the_temp_area() {
    let template = repo_file("deploy/rsyncd/node-rsyncd.conf");
    assert_safe_defaults("node-rsyncd.conf", &template);
    let (_, module, _) = rsyncd_settings(&template);
    assert_eq!(module, "ubackup", "the client's default node_rsync_module");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    write_file(&store.join("mysql/10.0.0/5/full_1.xb"), 200_000, 5);
    write_file(&store.join(".ubackup-tmp/node1/abc.1/half.xb"), 1000, 6);
    let conf = tmp.path().join("rsyncd.conf");
    std::fs::write(
        &conf,
        render_rsyncd(&template, tmp.path(), &store, "127.0.0.1"),
    )
    .unwrap();
    let d = start_rsyncd(&conf, &[localhost()]).unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    // restore pulls with the node's options (client/src/restore/pull.rs)
    let (rc, err) = node_pull(d[0].port, "ubackup/mysql/10.0.0/5/full_1.xb", &dest, &[]);
    assert_eq!(rc, 0, "restore pull through the shipped node conf: {err}");
    assert_eq!(
        std::fs::read(dest.join("full_1.xb")).unwrap(),
        std::fs::read(store.join("mysql/10.0.0/5/full_1.xb")).unwrap()
    );
    let (rc, _) = node_pull(
        d[0].port,
        "ubackup/.ubackup-tmp/node1/abc.1/half.xb",
        &dest,
        &[],
    );
    assert_ne!(rc, 0, "a file of the node's temp area was served");
    assert!(!dest.join("half.xb").exists());
    assert_no_unknown_parameters(&tmp.path().join("rsyncd.log"));
}

// --------------------------------------------------------------------- redis

fn redis_cmd<T: redis::FromRedisValue>(
    port: u16,
    password: Option<&str>,
    args: &[&str],
) -> redis::RedisResult<T> {
    let url = match password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let mut c = redis::Client::open(url)?.get_connection()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c)
}

fn config_get(port: u16, password: &str, key: &str) -> String {
    let pair: Vec<String> = redis_cmd(port, Some(password), &["CONFIG", "GET", key]).unwrap();
    pair.get(1).cloned().unwrap_or_default()
}

#[test]
fn redis_conf_starts_with_aof_everysec_auth_and_survives_a_crash() {
    let conf = repo_root().join("deploy/redis/redis-ubackup.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let password = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("requirepass "))
        .expect("the shipped conf sets requirepass")
        .trim()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &Path| {
        let conf = conf.clone();
        let dir = dir.to_path_buf();
        // redis-server refuses to start on an unknown or malformed directive
        start_listening("redis-server", &[localhost()], move |_, port| {
            let mut c = Command::new("redis-server");
            c.arg(&conf)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--daemonize",
                    "no",
                    "--logfile",
                    "",
                ])
                .arg("--dir")
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c
        })
        .unwrap()
        .remove(0)
    };
    let mut r = start(dir.path());
    let port = r.port;
    let e = redis_cmd::<String>(port, None, &["PING"]).unwrap_err();
    assert!(e.to_string().contains("NOAUTH"), "without AUTH: {e}");
    assert_eq!(config_get(port, &password, "appendonly"), "yes");
    assert_eq!(config_get(port, &password, "appendfsync"), "everysec");
    assert_eq!(
        config_get(port, &password, "maxmemory-policy"),
        "noeviction"
    );
    assert_eq!(config_get(port, &password, "protected-mode"), "yes");

    // "a plain process crash loses nothing": LPUSH, kill -9, start again on
    // the same AOF
    let _: i64 = redis_cmd(port, Some(&password), &["LPUSH", "level1", "msg-1"]).unwrap();
    r.proc.kill9();
    let r2 = start(dir.path());
    let len: i64 = redis_cmd(r2.port, Some(&password), &["LLEN", "level1"]).unwrap();
    assert_eq!(len, 1, "the pushed message did not survive kill -9");
}

// ---------------------------------------------------------------------- cron

/// Checks one cron time field against its range; returns the values it
/// matches.
fn cron_field(f: &str, lo: u32, hi: u32) -> Result<Vec<u32>, String> {
    let mut vals = Vec::new();
    for part in f.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in {part}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step 0 in {part}"));
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                a.parse().map_err(|_| format!("bad range {range}"))?,
                b.parse().map_err(|_| format!("bad range {range}"))?,
            )
        } else {
            let v: u32 = range
                .parse()
                .map_err(|_| format!("`{range}` is not a number"))?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{part} outside {lo}-{hi}"));
        }
        vals.extend((a..=b).step_by(step as usize));
    }
    Ok(vals)
}

#[test]
fn cron_lines_have_five_time_fields_and_run_real_commands() {
    let text = repo_file("deploy/cron/ubackup.cron");
    let mut seen = BTreeMap::new();
    for (i, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty()
            || line.starts_with('#')
            || line
                .split_whitespace()
                .next()
                .is_some_and(|w| w.contains('='))
        {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        assert!(
            w.len() > 7,
            "line {i}: 5 time fields, a user and a command: {line}"
        );
        for (f, (lo, hi)) in w[..5]
            .iter()
            .zip([(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)])
        {
            cron_field(f, lo, hi).unwrap_or_else(|e| panic!("line {i}: time field `{f}`: {e}"));
        }
        assert_eq!(w[5], "root", "line {i}: /etc/cron.d lines name the user");
        // the command up to the redirections, run with --help: clap checks
        // the subcommand and every option before it prints help
        let cmd: Vec<&str> = w[6..]
            .iter()
            .take_while(|a| !a.starts_with('>') && !a.starts_with("2>"))
            .copied()
            .collect();
        let bin = cmd[0]
            .strip_prefix("/usr/local/bin/")
            .unwrap_or_else(|| panic!("line {i}: {} is not /usr/local/bin/ubackup-*", cmd[0]));
        let mut args: Vec<&str> = cmd[1..].to_vec();
        args.push("--help");
        let (code, out, err) = run_bin(&workspace_bin(bin), &args, Duration::from_secs(20));
        assert_eq!(
            code,
            Some(0),
            "line {i}: `{}` is not a valid command line: {out}{err}",
            cmd.join(" ")
        );
        let sub = cmd[1..]
            .iter()
            .find(|a| !a.starts_with('-') && !a.starts_with('/'))
            .copied()
            .unwrap_or("run");
        seen.insert(format!("{bin} {sub}"), (w[0].to_string(), w[1].to_string()));
    }
    for want in [
        "ubackup-client run",
        "ubackup-reporter disk",
        "ubackup-reporter queue",
        "ubackup-reporter alerts",
    ] {
        assert!(seen.contains_key(want), "no cron line for {want}: {seen:?}");
    }
    // the client runs every `interval` of the example client config
    let interval: u64 = IniDoc::load(&example_config("ubackup-client"))
        .unwrap()
        .section("global")
        .unwrap()
        .entries["interval"]
        .value
        .parse()
        .unwrap();
    let (min, hour) = &seen["ubackup-client run"];
    let runs_per_day =
        cron_field(min, 0, 59).unwrap().len() * cron_field(hour, 0, 23).unwrap().len();
    assert_eq!(
        86400 / runs_per_day as u64,
        interval,
        "the client's cron schedule ({min} {hour}) vs interval = {interval}"
    );
}

// ---------------------------------------------------------------- quickstart

#[test]
fn quickstart_is_valid_bash_and_answers_help_without_side_effects() {
    let script = repo_root().join("quickstart.sh");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash -n quickstart.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out, _) = run_bin(&script, &["--help"], Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(out.contains("--keep"), "{out}");
    let (code, _, err) = run_bin(&script, &["--bogus"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "a usage error: {err}");
    if Command::new("shellcheck").arg("--version").output().is_ok() {
        let out = Command::new("shellcheck")
            .args(["-S", "warning"])
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
