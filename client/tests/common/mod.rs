//! Shared set-up for the client's integration tests: a private
//! redis-server, a temp directory, a config writer and the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;
use ubackup_testkit::{unique, RedisServer};

pub const BIN: &str = env!("CARGO_BIN_EXE_ubackup-client");

/// One instance section.
pub struct Inst {
    pub name: String,
    pub instance: i64,
    pub script: String,
    /// Extra `key = value` lines.
    pub extra: Vec<String>,
    pub full_incremental: bool,
}

impl Inst {
    pub fn new(name: &str, instance: i64, script: impl Into<String>) -> Inst {
        Inst {
            name: name.into(),
            instance,
            script: script.into(),
            extra: vec![],
            full_incremental: false,
        }
    }
    pub fn with(mut self, line: &str) -> Inst {
        self.extra.push(line.into());
        self
    }
    pub fn full_incremental(mut self) -> Inst {
        self.full_incremental = true;
        self
    }
}

pub struct Fx {
    pub redis: RedisServer,
    pub dir: tempfile::TempDir,
    pub queue: String,
    pub prefix: String,
}

impl Fx {
    pub fn new() -> Fx {
        Fx {
            redis: RedisServer::start().expect("start redis-server"),
            dir: tempfile::tempdir().unwrap(),
            queue: unique("q"),
            prefix: unique("t:") + ":",
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn back_dir(&self, name: &str) -> PathBuf {
        self.path(&format!("back/{name}"))
    }
    pub fn back_log(&self, name: &str) -> PathBuf {
        self.path(&format!("log/{name}.log"))
    }
    pub fn last_all_log(&self, name: &str) -> PathBuf {
        self.path(&format!("log/{name}.last_all.log"))
    }
    pub fn spool_dir(&self) -> PathBuf {
        self.path("spool")
    }

    /// Shell that makes `file` (n bytes) in the instance's back_dir and
    /// reports it in back_log.
    pub fn ok_script(&self, name: &str, file: &str, bytes: usize) -> String {
        format!(
            "mkdir -p '{d}' && head -c {bytes} /dev/urandom > '{d}/{file}' && printf 'ok\\n{file}\\n' > '{l}'",
            d = self.back_dir(name).display(),
            l = self.back_log(name).display()
        )
    }

    /// Writes a config with `[global]` (plus `global_extra` lines) and the
    /// given instances; returns its path.
    pub fn config(&self, global_extra: &[&str], insts: &[Inst]) -> PathBuf {
        std::fs::create_dir_all(self.path("log")).unwrap();
        let mut s = format!(
            "[global]\nserver_id = 111111  #unique id\ngame_id = 31 # business\nop_id = 1\ninterval = 3600\n\
             redis_host = 127.0.0.1\nredis_port = {}\nredis_queue = {}\nmy_ip = 10.0.0.5\n\
             log = {}\nerror_log = {}\nspool_dir = {}\nkey_prefix = {}\n",
            self.redis.port,
            self.queue,
            self.path("log/client.log").display(),
            self.path("log/client.error").display(),
            self.spool_dir().display(),
            self.prefix
        );
        for l in global_extra {
            s.push_str(l);
            s.push('\n');
        }
        for i in insts {
            s.push_str(&format!(
                "\n[{}]  # instance\nback_type = mysql\ninstance = {}\nrsync_model = backup/{}\nback_dir = {}\nback_log = {}\nscript = {}\n",
                i.name,
                i.instance,
                i.name,
                self.back_dir(&i.name).display(),
                self.back_log(&i.name).display(),
                i.script
            ));
            if i.full_incremental {
                s.push_str(&format!(
                    "last_all_log = {}\n",
                    self.last_all_log(&i.name).display()
                ));
            }
            for l in &i.extra {
                s.push_str(l);
                s.push('\n');
            }
        }
        let p = self.path(&format!("{}.conf", unique("client")));
        std::fs::write(&p, s).unwrap();
        p
    }

    /// Runs the binary to completion; returns its output and wall time.
    pub fn run(&self, conf: &Path, args: &[&str]) -> (Output, Duration) {
        run_bin(conf, args, &[])
    }

    /// Messages on `queue`, oldest first (LPUSH puts the newest at the head).
    pub fn messages(&self, queue: &str) -> Vec<serde_json::Value> {
        let mut c = self.redis.conn();
        let raw: Vec<String> = c.lrange(queue, 0, -1).unwrap();
        raw.iter()
            .rev()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }

    pub fn spooled(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.spool_dir().join("outbox"))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "json"));
        v.sort();
        v
    }
}

pub fn run_bin(conf: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let mut cmd = Command::new(BIN);
    // cwd `/`, as far from the config and scripts as cron's home directory
    cmd.arg("-c")
        .arg(conf)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .current_dir("/");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let out = cmd.output().expect("run ubackup-client");
    (out, t.elapsed())
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The message whose `instance` is `n`.
pub fn by_instance(msgs: &[serde_json::Value], n: i64) -> &serde_json::Value {
    let found: Vec<_> = msgs.iter().filter(|m| m["instance"] == n).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one message for instance {n}: {msgs:#?}"
    );
    found[0]
}

/// True when `pid` no longer runs (gone, or a zombie waiting for init).
pub fn pid_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}
