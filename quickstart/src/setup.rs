//! Steps 3-6: Redis, the two database hosts, the two pull nodes with their
//! restore daemons, and the indexer, each from its shipped file with only
//! paths, ports and names changed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ubackup_testkit::cluster::{
    localhost, render_rsyncd, start_listening, ClusterBuilder, Conf, Names,
};

use crate::out::{indent, info};
use crate::Ctx;

/// `Redis server v=…, rsync  version …` (fails when either is missing).
pub fn versions() -> Result<String> {
    let first_line = |prog: &str| -> Result<String> {
        let out = Command::new(prog)
            .arg("--version")
            .output()
            .with_context(|| {
                format!("{prog} not found: install redis-server and rsync (./quickstart.sh does)")
            })?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string())
    };
    let redis = first_line("redis-server")?;
    let redis: Vec<&str> = redis.split(' ').take(3).collect();
    Ok(format!("{}, {}", redis.join(" "), first_line("rsync")?))
}

/// A fresh random password (24 hex digits).
fn password() -> Result<String> {
    let mut buf = [0u8; 12];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// `cmd` with stdout and stderr into `log`, as `cmd >log 2>&1`.
pub fn logged(mut cmd: Command, log: &Path) -> Result<Command> {
    let f = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    cmd.stdout(Stdio::from(f.try_clone()?))
        .stderr(Stdio::from(f));
    Ok(cmd)
}

/// Runs a binary with its output into `log`; returns its exit code (-1:
/// killed by a signal).
pub fn run_logged(bin: &Path, args: &[&str], log: &Path) -> Result<i32> {
    let mut c = Command::new(bin);
    c.args(args).stdin(Stdio::null());
    let st = logged(c, log)?
        .status()
        .with_context(|| format!("run {}", bin.display()))?;
    crate::check_interrupt()?;
    Ok(st.code().unwrap_or(-1))
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))
}

/// Step 3.
pub fn redis(ctx: &mut Ctx) -> Result<()> {
    ctx.out
        .step("start redis-server (deploy/redis/redis-ubackup.conf: AOF everysec, AUTH)");
    let tmp = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("ubackup-quickstart.")
        .tempdir_in(tmp)?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let cluster = ClusterBuilder::new("quickstart")
        .dir(dir)
        .names(Names::shipped())
        .redis_conf(&ctx.repo.join("deploy/redis/redis-ubackup.conf"))
        .redis_password(&password()?)
        .redis_dir("redis")
        .redis_log("redis/redis.log")
        .bin_dir(&ctx.bin)
        .start()
        .context("redis-server could not be started")?;
    info(&format!(
        "redis-server: pid {}, 127.0.0.1:{}",
        cluster.redis.pid().unwrap_or(0),
        cluster.redis.port
    ));
    let appendfsync: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query(&mut cluster.conn())?;
    info(&format!(
        "appendfsync: {}, requirepass set",
        appendfsync.last().map(String::as_str).unwrap_or("?")
    ));
    ctx.cluster = Some(cluster);
    Ok(())
}

/// Step 4; returns each host's directory.
pub fn hosts(ctx: &mut Ctx) -> Result<Vec<PathBuf>> {
    ctx.out
        .step("start two database hosts (rsync daemon + client config each)");
    let (dir, repo) = (ctx.dir(), ctx.repo.clone());
    let template = read(&repo.join("deploy/rsyncd/dbhost-rsyncd.conf"))?;
    let example = read(&repo.join("deploy/examples/client.conf"))?;
    let mut hosts = Vec::new();
    for i in 1..=2 {
        let h = dir.join(format!("host{i}"));
        for sub in ["backup", "scripts", "log"] {
            std::fs::create_dir_all(h.join(sub))?;
        }
        for e in std::fs::read_dir(repo.join("deploy/examples/scripts"))? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "sh") {
                std::fs::copy(
                    &p,
                    h.join("scripts").join(p.file_name().unwrap_or_default()),
                )?;
            }
        }
        let name = format!("host{i} rsyncd");
        let (pid, port) = ctx.cluster_mut().dbhost_rsyncd(
            &name,
            &template,
            &h,
            &h.join("backup"),
            "127.0.0.0/8",
        )?;
        info(&format!("{name}: pid {pid}, 127.0.0.1:{port}"));
        // the shipped example, with its /tmp/ubackup-demo root moved here
        let hs = h.display().to_string();
        let mut conf = Conf::from_text(example.replace("/tmp/ubackup-demo", &hs))
            .set("server_id", format!("90000{i}"))
            .apply(&ctx.cluster().redis_settings())
            .set("rsync_port", port.to_string());
        if i == 2 {
            // an instance whose backup script fails, as a broken mysqldump would
            conf = conf.append(&format!(
                "\n# quickstart: this instance's script always fails (exit code 2)\n\
                 [mysql3307]\nback_type = mysql\ninstance = 3307\n\
                 rsync_model = backup/database_3307\nback_dir = {hs}/backup/database_3307\n\
                 back_log = {hs}/log/mysql_3307.log\n\
                 script = echo \"mysqldump: Got error: 1045: Access denied for user 'backup'@'localhost'\" >&2; exit 2\n"
            ));
        }
        let path = h.join("client.conf");
        conf.write(&path)?;
        let ps = path.display().to_string();
        let check = h.join("check.out");
        if run_logged(&ctx.bin("ubackup-client"), &["-c", &ps, "check"], &check)? != 0 {
            indent(&read(&check)?);
            bail!("ubackup-client check rejected {ps}");
        }
        let sections = conf.text().lines().filter(|l| l.starts_with('[')).count();
        info(&format!("host{i}: {ps}, instances: {}", sections - 1));
        hosts.push(h);
    }
    Ok(hosts)
}

/// Step 5. Each node has its own address, as real nodes do: results carry
/// it as back_server_ip, and restore pulls from back_server_ip:
/// node_rsync_port. Linux routes all of 127.0.0.0/8 to the loopback.
pub fn nodes(ctx: &mut Ctx, hosts: &[PathBuf]) -> Result<()> {
    ctx.out.step(
        "start two pull nodes (ubackup-server) and their read-only rsync daemons for restore",
    );
    let (dir, repo) = (ctx.dir(), ctx.repo.clone());
    let example = read(&repo.join("deploy/examples/server.conf"))?;
    let template = read(&repo.join("deploy/rsyncd/node-rsyncd.conf"))?;
    let ips: [IpAddr; 2] = [localhost(), IpAddr::from([127, 0, 0, 2])];
    let mut rsyncd_confs = Vec::new();
    for (k, ip) in ips.iter().enumerate() {
        let n = k + 1;
        let d = dir.join(format!("node{n}"));
        let store = d.join("store");
        std::fs::create_dir_all(&store)?;
        let cluster = ctx.cluster();
        let conf = cluster
            .node_conf(
                Conf::from_text(example.clone()),
                &format!("node{n}"),
                &format!("{}/", store.display()),
                &d.join("server.log"),
                &ip.to_string(),
            )
            .apply(&cluster.message_redis_settings())
            .apply(&[
                ("work_thread", "2".to_string()),
                ("reserve", "0".into()),
                (
                    "error_log",
                    d.join("server.error.log").display().to_string(),
                ),
                ("allow_sources", "127.0.0.1/32".into()),
                ("drain_secs", "10".into()),
            ]);
        let path = d.join("server.conf");
        conf.write(&path)?;
        let cmd = logged(
            cluster.command("ubackup-server", &path),
            &d.join("stderr.log"),
        )?;
        let pid = ctx.cluster_mut().spawn(&format!("node{n}"), cmd)?;
        info(&format!(
            "node{n}: pid {pid}, myip {ip}, {}, store {}/",
            path.display(),
            store.display()
        ));
        let rsyncd = d.join("rsyncd.conf");
        std::fs::write(&rsyncd, render_rsyncd(&template, &d, &store, "127.0.0.0/8"))?;
        rsyncd_confs.push(rsyncd);
    }
    // one port for both nodes' daemons (the client has one node_rsync_port)
    let mut daemons = start_listening("node rsyncd", &ips, |addr, port| {
        let k = usize::from(addr != ips[0]);
        let mut c = Command::new("rsync");
        c.arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", rsyncd_confs[k].display()))
            .arg(format!("--port={port}"))
            .arg(format!("--address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    })
    .with_context(|| {
        format!(
            "could not start the nodes' rsync daemons on a common port; see {}/node*/rsyncd.log",
            dir.display()
        )
    })?;
    for (k, d) in daemons.iter_mut().enumerate() {
        d.proc.name = format!("node{} rsyncd (module ubackup)", k + 1);
    }
    let names: Vec<String> = daemons.iter().map(|d| d.proc.name.clone()).collect();
    let started = ctx.cluster_mut().track_daemons(daemons);
    for ((pid, addr, port), name) in started.iter().zip(&names) {
        info(&format!("{name}: pid {pid}, {addr}:{port}"));
    }
    let node_port = started[0].2;
    for n in 1..=2 {
        let what = format!(
            "node{n} heartbeat (see {}/node{n}/server.log)",
            dir.display()
        );
        ctx.cluster()
            .wait_alive(&format!("node{n}"), &what, Duration::from_secs(15))?;
        crate::check_interrupt()?;
    }
    // list and restore on the database hosts read the indexer's catalog (on
    // this one machine, the SQLite file itself) and pull from the nodes' daemons
    for h in hosts {
        let path = h.join("client.conf");
        Conf::from_text(read(&path)?)
            .set(
                "catalog",
                dir.join("indexer/catalog.db").display().to_string(),
            )
            .set("node_rsync_port", node_port.to_string())
            .write(&path)?;
    }
    Ok(())
}

/// Step 6.
pub fn indexer(ctx: &mut Ctx) -> Result<()> {
    ctx.out
        .step("start the indexer (SQLite catalog, no Elasticsearch)");
    let d = ctx.dir().join("indexer");
    std::fs::create_dir_all(&d)?;
    let example = read(&ctx.repo.join("deploy/examples/indexer.conf"))?;
    let cluster = ctx.cluster();
    let (catalog, log) = (d.join("catalog.db"), d.join("indexer.log"));
    let conf = cluster
        .indexer_conf(
            Conf::from_text(example).del("es_urls"),
            "indexer1",
            &catalog,
            &log,
        )
        .set(
            "error_log",
            d.join("indexer.error.log").display().to_string(),
        );
    let path = d.join("indexer.conf");
    conf.write(&path)?;
    let cmd = logged(
        cluster.command("ubackup-indexer", &path),
        &d.join("stderr.log"),
    )?;
    let pid = ctx.cluster_mut().spawn("indexer", cmd)?;
    info(&format!(
        "indexer: pid {pid}, {}, catalog {}",
        path.display(),
        catalog.display()
    ));
    let what = format!("indexer heartbeat (see {})", log.display());
    ctx.cluster()
        .wait_alive("indexer1", &what, Duration::from_secs(15))?;
    Ok(())
}
