//! The MESSAGES tables of the engines' module docs are complete and true
//! (issue 18): every message kind has a row, and each row's handler is a
//! fn of the file it names.

use quorate_sim::messages_table::{check, kinds_in_fn};
use std::path::Path;

fn assert_table(module_doc: &str, messages_src: &str) {
    let kinds = kinds_in_fn(messages_src, "kind");
    if let Err(problems) = check(Path::new(env!("CARGO_MANIFEST_DIR")), module_doc, &kinds) {
        panic!("MESSAGES table:\n{}", problems.join("\n"));
    }
}

#[test]
fn pbft_messages_table_is_complete_and_true() {
    assert_table(include_str!("../src/pbft/mod.rs"), include_str!("../src/pbft/messages.rs"));
}

#[test]
fn hybster_messages_table_is_complete_and_true() {
    assert_table(include_str!("../src/hybster/mod.rs"), include_str!("../src/hybster/messages.rs"));
}
