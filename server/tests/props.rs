//! Property tests of the message parser and validator (issue 8, item 14):
//! whatever bytes a list element holds, the node's intake never panics,
//! every rejection carries a reason, and whatever intake accepts stays
//! inside its destination tree and cannot be read by rsync as an option, a
//! wildcard or a host. (The indexer's result parser has the same kind of
//! test in es-indexer/tests/props.rs.)
//!
//! cargo-fuzz needs a nightly toolchain, which cannot be installed on the
//! build machines (no downloads besides the package registries), so these
//! proptest strategies are the fuzzing: random text, random JSON-ish
//! mutations of a valid message, and hostile names built from the
//! characters that matter.

use std::path::{Component, Path};

use proptest::prelude::*;
use serde_json::{json, Value};
use ubackup_common::Taken;
use ubackup_server::intake::{intake, Intake};
use ubackup_server::ServerConfig;
use ubackup_testkit::props::{any_json, hostile_name, FIELDS};

fn cfg() -> ServerConfig {
    ServerConfig::parse(
        Path::new("/props.conf"),
        "[global]\nserver_root_path=/backup/root\nredis_host=127.0.0.1\nredis_queue=q\nmyip=10.9.9.9\nnode_id=n1\nallow_sources=10.0.0.0/8 127.0.0.1\n",
    )
    .expect("config")
}

fn valid() -> Value {
    json!({"filename": "db_3306.tar.gz", "last_all_filename": null, "size": 10, "log": "ok",
        "create_time": 1763800000, "success": true, "server_id": "7", "game_id": 1, "op_id": 1,
        "game_server_ip": "10.1.2.3", "back_type": "mysql", "instance": 3306, "rsync_model": "backup/database_3306",
        "last_all_time": 0, "interval": 3600})
}

/// Checks one intake outcome; the properties every outcome must have.
fn check(payload: &str) -> Result<(), TestCaseError> {
    let c = cfg();
    let taken = Taken {
        queue: "q".into(),
        payload: payload.to_string(),
    };
    match intake(&taken, &c) {
        Intake::Illegal { reason, result } => {
            prop_assert!(
                !reason.trim().is_empty(),
                "a rejection without a reason: {payload:?}"
            );
            prop_assert_eq!(result.succeed, 0);
            prop_assert_eq!(result.illegal.as_deref(), Some(reason.as_str()));
            // the result must be storable: its address parses as an IP
            prop_assert!(result.game_server_ip.parse::<std::net::IpAddr>().is_ok());
            prop_assert!(serde_json::to_string(&*result).is_ok());
        }
        Intake::ClientFailure(m) => prop_assert!(!m.success),
        Intake::Pull(job) => {
            let root = Path::new("/backup/root");
            let fin = job.final_path();
            prop_assert!(fin.starts_with(root), "{} escapes the root", fin.display());
            prop_assert!(
                fin.components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
                "{} has `.`/`..`",
                fin.display()
            );
            prop_assert_eq!(fin.parent(), Some(job.dest_dir.as_path()));
            for part in [
                job.remote_path.as_str(),
                job.source.module.as_str(),
                job.file_name.as_str(),
            ] {
                prop_assert!(!part.is_empty());
                prop_assert!(
                    !part.starts_with('-') && !part.contains("/-"),
                    "option-like: {part:?}"
                );
                prop_assert!(
                    !part.contains(['*', '?', '[', '\\', '\0', '\n']),
                    "wildcard/control: {part:?}"
                );
                prop_assert!(
                    !part.split('/').any(|c| c == ".." || c == "."),
                    "dot component: {part:?}"
                );
            }
            prop_assert!(
                !job.source.module.contains([':', '@', ' ']),
                "host-like module {:?}",
                job.source.module
            );
            prop_assert!(job.remote_path.len() <= 2048);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any text at all.
    #[test]
    fn arbitrary_text_never_panics_and_rejections_have_reasons(s in "\\PC{0,200}") {
        check(&s)?;
    }

    /// A valid message with one field replaced by anything.
    #[test]
    fn one_field_of_any_shape(field in prop::sample::select(FIELDS), v in any_json()) {
        let mut m = valid();
        m[field] = v;
        check(&m.to_string())?;
    }

    /// A valid message with one field removed.
    #[test]
    fn one_field_missing(field in prop::sample::select(FIELDS)) {
        let mut m = valid();
        m.as_object_mut().unwrap().remove(field);
        check(&m.to_string())?;
    }

    /// Hostile names in the three fields that reach a path or an argument.
    #[test]
    fn hostile_names_never_escape(f in hostile_name(), model in hostile_name(), t in hostile_name(), which in 0u8..7) {
        let mut m = valid();
        if which & 1 != 0 { m["filename"] = f.into(); }
        if which & 2 != 0 { m["rsync_model"] = model.into(); }
        if which & 4 != 0 { m["back_type"] = t.into(); }
        check(&m.to_string())?;
    }
}

/// The non-UTF-8 case cannot be a `&str`: the queue dead-letters such an
/// element at take (common/src/queue.rs); here the lossy text a dead letter
/// holds is itself checked like any other payload.
#[test]
fn lossy_non_utf8_payload_keeps_the_properties() {
    let mut raw = valid().to_string().into_bytes();
    let at = raw.windows(6).position(|w| w == b"db_330").unwrap();
    raw[at] = 0xff;
    let text = String::from_utf8_lossy(&raw).into_owned();
    check(&text).unwrap();
}
