//! PostgreSQL 15 with pg_basebackup: three fulls under load; the second
//! restored (SQLite catalog) into a datadir by the restore hook, a second
//! postgres started on it (crash recovery from the included WAL).
//! PostgreSQL refuses to run as root: as root, the servers run as nobody.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ubackup_e2e::free_port_on;
use ubackup_testkit::cluster::{localhost, wait_for};
use ubackup_testkit::Proc;

use super::rig::{have, script, Rig};
use super::{assert_prefix, output, rounds, Load};

const SECTION: &str = "postgres5432";
const BIN: &str = "/usr/lib/postgresql/15/bin";
const NOBODY: u32 = 65534;

fn root() -> bool {
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

/// `prog args…`, as nobody when we are root.
fn as_db_user(prog: &str) -> Command {
    if root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", &format!("{BIN}/{prog}")]);
        c
    } else {
        Command::new(format!("{BIN}/{prog}"))
    }
}

fn db_user() -> String {
    if root() {
        "nobody".into()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "postgres".into())
    }
}

fn postgres(data: &Path, sockdir: &Path, port: u16, name: &str) -> Proc {
    let mut c = as_db_user("postgres");
    c.arg("-D")
        .arg(data)
        .arg("-k")
        .arg(sockdir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=", "-c", "shared_buffers=32MB"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let p = Proc::spawn(name, c).unwrap();
    wait_for(&format!("{name} answers"), Duration::from_secs(60), || {
        psql(sockdir, port)
            .args(["-c", "select 1"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
    .unwrap();
    p
}

fn psql(sockdir: &Path, port: u16) -> Command {
    let mut c = Command::new(format!("{BIN}/psql"));
    c.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        "postgres",
    ])
    .env("PGHOST", sockdir)
    .env("PGPORT", port.to_string())
    .env("PGUSER", db_user());
    c
}

fn mkdir_for_db(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    if root() {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    p.to_path_buf()
}

pub fn run(rig: &Rig) -> bool {
    if !have(
        &[
            "/usr/lib/postgresql/15/bin/postgres",
            "/usr/lib/postgresql/15/bin/pg_basebackup",
        ],
        "PostgreSQL",
    ) {
        return false;
    }
    let dir = mkdir_for_db(&rig.root.join("pg"));
    let data = dir.join("data");
    output(
        as_db_user("initdb")
            .args(["-A", "trust", "-U", &db_user(), "-D"])
            .arg(&data),
    );
    let port = free_port_on(&[localhost()]);
    let _server = postgres(&data, &dir, port, "postgres");
    output(psql(&dir, port).args([
        "-c",
        "create table orders (id bigserial primary key, note text)",
    ]));
    let mut client = psql(&dir, port);
    client.arg("-f").arg("-");
    let load = Load::start(client, |i| {
        format!("INSERT INTO orders(note) VALUES ('order {i}');\n")
    });
    let committed = || -> u64 {
        output(psql(&dir, port).args(["-c", "select count(*) from orders"]))
            .trim()
            .parse()
            .unwrap()
    };
    rig.set_section(
        SECTION,
        "script",
        &format!(
            "PGHOST={} PGPORT={port} PGUSER={} bash {}",
            dir.display(),
            db_user(),
            script("pg_basebackup_backup.sh")
        ),
    );
    let restored = rig.root.join("pg-restored");
    rig.set_section(
        SECTION,
        "restore_script",
        &format!(
            "{}bash {} {}",
            if root() { "OWNER=nobody " } else { "" },
            script("pg_basebackup_restore.sh"),
            restored.join("data").display()
        ),
    );
    mkdir_for_db(&restored);
    let rs = rounds(rig, SECTION, 3, &committed, &|_| {});
    drop(load);
    assert!(
        rs.iter().all(|r| r.ok && r.file.starts_with("pg_full_")),
        "{rs:?}"
    );
    for r in &rs {
        rig.wait_indexed(&r.file);
    }
    let rows = rig.list(&rig.sqlite_conf, &["--type", "postgres"]);
    let target = rows
        .iter()
        .find(|r| r["filename"] == rs[1].file.as_str())
        .unwrap();
    assert_eq!(target["kind"], "full");

    let started = Instant::now();
    let out = rig.restore(
        &rig.sqlite_conf,
        target["id"].as_str().unwrap(),
        &rig.root.join("restore-pg"),
    );
    eprintln!(
        "postgresql: restore of one full took {:.1?}",
        started.elapsed()
    );
    assert!(out.contains("is ready"), "{out}");
    let port2 = free_port_on(&[localhost()]);
    let _second = postgres(
        &restored.join("data"),
        &restored,
        port2,
        "postgres (restored)",
    );
    let ids: Vec<u64> =
        output(psql(&restored, port2).args(["-c", "select id from orders order by id"]))
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
    assert_prefix("postgresql", &ids, &rs[1]);
    true
}
