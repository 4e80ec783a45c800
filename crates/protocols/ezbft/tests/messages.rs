//! The MESSAGES table of the crate docs is complete and true (issue 18):
//! every message kind `Msg::kind` reports has a row, every row names a
//! kind, and each row's handler is a fn of the file it names.

use quorate_sim::messages_table::{check, kinds_in_fn};
use std::path::Path;

#[test]
fn messages_table_is_complete_and_true() {
    let kinds = kinds_in_fn(include_str!("../src/messages.rs"), "kind");
    if let Err(problems) = check(Path::new(env!("CARGO_MANIFEST_DIR")), include_str!("../src/lib.rs"), &kinds) {
        panic!("MESSAGES table in src/lib.rs:\n{}", problems.join("\n"));
    }
}
