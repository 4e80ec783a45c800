//! The MESSAGES table of the crate docs is complete and true (issue 18):
//! every message kind `Msg::kind` reports (its own, and the D- and O-
//! kinds `instance_kind` names an instance's messages by) has a row, every
//! row names a kind, and each row's handler is a fn of the file it names.

use quorate_sim::messages_table::{check, kinds_in_fn};
use std::path::Path;

const MESSAGES: &str = include_str!("../src/messages.rs");

#[test]
fn messages_table_is_complete_and_true() {
    let mut kinds = kinds_in_fn(MESSAGES, "kind");
    // `D-OTHER` and `O-OTHER` are `instance_kind`'s fallbacks, for a kind
    // no engine has (checked below), so they need no row.
    kinds.extend(kinds_in_fn(MESSAGES, "instance_kind").into_iter().filter(|k| !k.ends_with("-OTHER")));
    if let Err(problems) = check(Path::new(env!("CARGO_MANIFEST_DIR")), include_str!("../src/lib.rs"), &kinds) {
        panic!("MESSAGES table in src/lib.rs:\n{}", problems.join("\n"));
    }
}

/// Every kind of both engines has a D- and an O- name: the fallbacks are
/// never reported.
#[test]
fn every_engine_kind_has_instance_names() {
    let mut engine = kinds_in_fn(include_str!("../../../engines/src/pbft/messages.rs"), "kind");
    engine.extend(kinds_in_fn(include_str!("../../../engines/src/hybster/messages.rs"), "kind"));
    assert!(engine.len() > 10, "{engine:?}");
    for k in engine {
        for d in ["true", "false"] {
            let arm = format!("({d}, \"{k}\") =>");
            assert!(MESSAGES.contains(&arm), "instance_kind has no arm {arm}");
        }
    }
}
