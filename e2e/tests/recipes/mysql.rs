//! MariaDB with mariabackup: full, incremental, a failed incremental (the
//! next run is a full), two incrementals; the newest chain (a full and two
//! incrementals) restored over `catalog_url` and prepared in order by the
//! restore hook; a second mariadbd on it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ubackup_testkit::cluster::wait_for;
use ubackup_testkit::Proc;

use super::rig::{have, script, Rig};
use super::{assert_prefix, output, rounds, Load};

const SECTION: &str = "mysql3306";

fn mariadbd(data: &Path, sock: &Path, name: &str) -> Proc {
    let mut c = Command::new("mariadbd");
    c.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--pid-file={}.pid", sock.display()))
        .arg(format!("--log-error={}.err", sock.display()))
        .arg("--skip-networking")
        .arg("--innodb-buffer-pool-size=64M")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if nix_root() {
        c.arg("--user=root");
    }
    let p = Proc::spawn(name, c).unwrap();
    wait_for(&format!("{name} answers"), Duration::from_secs(60), || {
        Command::new("mariadb")
            .arg(format!("--socket={}", sock.display()))
            .args(["-e", "select 1"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}",
            std::fs::read_to_string(format!("{}.err", sock.display())).unwrap_or_default()
        )
    });
    p
}

fn nix_root() -> bool {
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

fn query(sock: &Path, sql: &str) -> String {
    output(
        Command::new("mariadb")
            .arg(format!("--socket={}", sock.display()))
            .args(["-N", "-B", "-e", sql]),
    )
}

/// Returns false when skipped.
pub fn run(rig: &Rig) -> bool {
    if !have(
        &[
            "mariadbd",
            "mariadb-install-db",
            "mariadb",
            "mariabackup",
            "mbstream",
        ],
        "MariaDB",
    ) {
        return false;
    }
    let dir = rig.root.join("mysql");
    std::fs::create_dir_all(&dir).unwrap();
    let mut install = Command::new("mariadb-install-db");
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg("--auth-root-authentication-method=socket")
        .arg("--skip-test-db");
    if nix_root() {
        install.arg("--user=root");
    }
    output(&mut install);
    let sock = dir.join("my.sock");
    let _server = mariadbd(&dir.join("data"), &sock, "mariadbd");
    query(
        &sock,
        "create database shop; create table shop.orders (id bigint auto_increment primary key, note varchar(40)) engine=innodb",
    );
    let mut client = Command::new("mariadb");
    client
        .arg(format!("--socket={}", sock.display()))
        .arg("shop");
    let load = Load::start(client, |i| {
        format!("INSERT INTO orders(note) VALUES ('order {i}');\n")
    });
    let committed = || -> u64 {
        query(&sock, "select count(*) from shop.orders")
            .trim()
            .parse()
            .unwrap()
    };

    // the operator's line, with this server's socket and a failure switch
    let fail = dir.join("fail");
    rig.set_section(
        SECTION,
        "script",
        &format!(
            "if [ -e {f} ]; then export MYSQL_SOCKET={d}/no-such.sock; fi; MYSQL_SOCKET=${{MYSQL_SOCKET:-{s}}} FULL_EVERY=4 bash {b}",
            f = fail.display(),
            d = dir.display(),
            s = sock.display(),
            b = script("mariabackup_backup.sh")
        ),
    );
    rig.set_section(
        SECTION,
        "restore_script",
        &format!("bash {}", script("mariabackup_restore.sh")),
    );
    let rs = rounds(rig, SECTION, 6, &committed, &|r| {
        if r == 3 {
            std::fs::write(&fail, b"").unwrap();
        } else {
            let _ = std::fs::remove_file(&fail);
        }
    });
    drop(load);
    let kinds: Vec<&str> = rs
        .iter()
        .map(|r| match (r.ok, r.file.starts_with("mysql_full_")) {
            (false, _) => "wrong",
            (true, true) => "full",
            (true, false) => "incr",
        })
        .collect();
    // round 4 is a full although FULL_EVERY=4: the failure forced it
    assert_eq!(
        kinds,
        ["full", "incr", "wrong", "full", "incr", "incr"],
        "{rs:?}"
    );
    assert!(rs[2].file.contains("mariabackup exited"), "{:?}", rs[2]);
    // no half-written file under a final name, none left behind at all
    let back = rig.host.join("backup/database_3306");
    let names: Vec<String> = std::fs::read_dir(&back)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");

    for r in rs.iter().filter(|r| r.ok) {
        rig.wait_indexed(&r.file);
    }
    // the same JSON from the SQLite catalog and from the API
    let over_api = rig.list(&rig.api_conf, &["--type", "mysql"]);
    assert_eq!(over_api, rig.list(&rig.sqlite_conf, &["--type", "mysql"]));
    let target = over_api
        .iter()
        .find(|r| r["filename"] == rs[5].file.as_str())
        .unwrap();
    assert_eq!(target["kind"], "incremental");
    assert_eq!(target["full"], rs[3].file.as_str(), "{target}");

    let dest = rig.root.join("restore-mysql");
    let started = Instant::now();
    let out = rig.restore(&rig.api_conf, target["id"].as_str().unwrap(), &dest);
    let took = started.elapsed();
    assert!(
        out.contains("3 file(s)") && out.contains("is ready"),
        "{out}"
    );
    eprintln!("mariadb: restore + prepare of 3 files took {took:.1?}");
    let sock2 = dir.join("restored.sock");
    let _restored = mariadbd(&dest.join("datadir"), &sock2, "mariadbd (restored)");
    let ids: Vec<u64> = query(&sock2, "select id from shop.orders order by id")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_prefix("mariadb", &ids, &rs[5]);
    true
}
