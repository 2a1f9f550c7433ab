//! Proptest strategies for the message parsers' property tests (the node's
//! intake, the indexer's result parser): hostile names, JSON values of any
//! shape, and the fields of a backup message. Behind the `props` feature,
//! so only the crates with property tests build proptest.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::fixtures::ORIGINAL_MESSAGE_FIELDS;

/// Names built from the pieces an attacker would use.
pub fn hostile_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("/".to_string()),
        Just("-".to_string()),
        Just("--rsh=sh".to_string()),
        Just("*".to_string()),
        Just("?".to_string()),
        Just("[a]".to_string()),
        Just("\\".to_string()),
        Just("\n".to_string()),
        Just("\0".to_string()),
        Just(":".to_string()),
        Just("@".to_string()),
        Just(" ".to_string()),
        Just("$(id)".to_string()),
        Just(";".to_string()),
        Just("`".to_string()),
        Just("etc".to_string()),
        Just("passwd".to_string()),
        Just("备份".to_string()),
        "[a-z0-9_.]{1,8}",
        "\\PC{1,4}",
        Just("x".repeat(300)),
    ];
    prop::collection::vec(piece, 1..8).prop_map(|v| v.concat())
}

/// A JSON value of any shape, for fields that should be strings or numbers.
pub fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::from),
        hostile_name().prop_map(Value::from),
        Just(json!([1, 2])),
        Just(json!({"a": 1})),
    ]
}

/// The backup message's fields: the original client's, then the two a
/// ubackup client may add.
pub const FIELDS: &[&str] = &with_new_fields(ORIGINAL_MESSAGE_FIELDS);

const fn with_new_fields(original: [&'static str; 15]) -> [&'static str; 17] {
    let mut out = [""; 17];
    let mut i = 0;
    while i < original.len() {
        out[i] = original[i];
        i += 1;
    }
    out[15] = "rsync_port";
    out[16] = "checksum";
    out
}
