//! The fault-injection and adversarial suite (issue 8): real redis-server,
//! rsync daemon, ES stand-in, `ubackup-server` nodes and `ubackup-indexer`,
//! faults injected from outside (kill -9, SIGSTOP, outages, a full disk,
//! scripted ES answers, wire resets) and bad inputs, then the invariant
//! "nothing lost, nothing twice, nothing outside its directory" checked
//! once the system is quiet (see `ubackup_faults::check`).
//!
//! ```text
//! cargo build --workspace                       # the binaries under test
//! cargo test -p ubackup-faults --test faults    # every case, ~3-4 min
//! cargo test -p ubackup-faults --test faults -- zombie soak   # some cases
//! cargo test -p ubackup-faults --test faults -- soak --soak   # the long soak
//! ```
//!
//! Its own `main` (harness = false): cases run one after another so that
//! process-level timing (heartbeats, rsync timeouts) does not compete with
//! another case for the 2 cores, and the run ends with one summary line.
//! A case that cannot run here (no tmpfs mount, a release build without
//! failpoints) says so and is counted as skipped, not passed.
//!
//! Layout: this file holds the runner and the list of cases, in the order
//! they run; the cases live with their kind of fault (`inputs`, `nodes`,
//! `disk`, `outage`, `failover`, `es`, `copies`, `tls`, `soak`), and what several of them read back
//! from a `World` is in `helpers`.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use ubackup_faults::{tally, WaitQuiet};

mod copies;
mod disk;
mod es;
mod failover;
mod helpers;
mod inputs;
mod nodes;
mod outage;
mod soak;
mod tls;

/// A case that cannot run on this machine returns `Err(why)`.
type Outcome = Result<(), String>;
type Case = (&'static str, fn(&Opts) -> Outcome);

struct Opts {
    soak: bool,
    soak_secs: u64,
    soak_messages: usize,
}

fn quiet(secs: u64) -> WaitQuiet {
    WaitQuiet {
        deadline: Duration::from_secs(secs),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Option<u64> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let soak = args.iter().any(|a| a == "--soak");
    let opts = Opts {
        soak,
        soak_secs: value("--soak-secs").unwrap_or(if soak { 600 } else { 60 }),
        soak_messages: value("--soak-messages").unwrap_or(if soak { 5000 } else { 500 }) as usize,
    };
    // words that are not options (nor option values) filter cases by name
    let mut filters = Vec::new();
    let mut skip_next = false;
    for a in &args {
        if skip_next {
            skip_next = false;
        } else if a == "--soak-secs" || a == "--soak-messages" {
            skip_next = true;
        } else if !a.starts_with('-') {
            filters.push(a.clone());
        }
    }
    let cases: Vec<Case> = vec![
        (
            "bad_inputs_are_dead_lettered_and_never_spawn_rsync",
            inputs::bad_inputs,
        ),
        ("malicious_symlink_lands_nothing", inputs::malicious_symlink),
        (
            "wrong_rsync_password_is_auth_not_retried_not_on_a_command_line",
            inputs::wrong_password,
        ),
        (
            "source_deleted_or_rewritten_before_the_pull",
            inputs::source_changed,
        ),
        (
            "tls_terminator_kill9_mid_pull_and_a_foreign_ca",
            tls::tls_terminator_killed_and_a_foreign_ca,
        ),
        ("kill9_node_mid_rsync", nodes::kill9_mid_rsync),
        (
            "kill9_between_pull_and_ack_failpoints",
            nodes::kill9_failpoints,
        ),
        ("zombie_node_late_ack_has_no_effect", nodes::zombie),
        (
            "poison_message_dead_lettered_after_3_crashes",
            nodes::poison,
        ),
        (
            "hung_rsync_daemon_fails_by_rsync_timeout_not_watchdog",
            nodes::hung_daemon,
        ),
        (
            "disk_full_not_acked_no_partial_completes_after_space",
            disk::disk_full,
        ),
        ("redis_kill9_and_restart_on_same_aof", outage::redis_kill9),
        ("redis_and_rsync_daemon_outage_by_sigstop", outage::outages),
        (
            "redis_sentinel_failover_kill9_master_mid_drain",
            failover::redis_failover,
        ),
        (
            "es_bulk_item_statuses_and_whole_request_503",
            es::es_statuses,
        ),
        (
            "es_reset_mid_response_and_indexer_kill9_around_the_es_write",
            es::es_wire,
        ),
        (
            "node_and_its_disk_lost_with_two_copies",
            copies::node_lost_with_copies,
        ),
        ("soak_random_kill9_of_nodes", soak::soak_case),
    ];
    let started = Instant::now();
    let (mut passed, mut failed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (name, f) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("case {name} ...");
        let t = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&opts)));
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(Ok(())) => {
                println!("case {name}: ok ({secs:.1} s)");
                passed.push(name);
            }
            Ok(Err(why)) => {
                println!("case {name}: SKIPPED ({secs:.1} s): {why}");
                skipped.push(name);
            }
            Err(_) => {
                println!("case {name}: FAILED ({secs:.1} s)");
                failed.push(name);
            }
        }
    }
    println!(
        "\n{} passed, {} failed {:?}, {} skipped {:?}, {:.0} s",
        passed.len(),
        failed.len(),
        failed,
        skipped.len(),
        skipped,
        started.elapsed().as_secs_f64()
    );
    println!("{}", tally::snapshot());
    // test.sh installs everything the cases need and says so with this
    // variable: there a skipped case is a failure, not a quiet pass
    let must_run = std::env::var_os("UBACKUP_REQUIRE_DATABASES").is_some_and(|v| v == "1");
    if must_run && !skipped.is_empty() {
        println!("skipped cases are failures here (UBACKUP_REQUIRE_DATABASES=1: test.sh installed what they need)");
    }
    if !failed.is_empty() || (must_run && !skipped.is_empty()) {
        std::process::exit(1);
    }
}
