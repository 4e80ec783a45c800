//! The MESSAGES tables of the protocols' crate docs, checked (issue 18: a
//! newcomer should find where a message is handled from its name).
//!
//! Each protocol's crate docs (an engine's module docs) carry, under a
//! heading named `MESSAGES`, a markdown table
//!
//! ```text
//! | message | from → to | handler | file | source section |
//! |---|---|---|---|---|
//! | `PROPOSE` | leader → all | `on_propose` | `src/replica/normal.rs` | thesis Alg. 5 l.22 |
//! ```
//!
//! with one row or more for every message kind the protocol reports
//! (`Message::kind`), the handler fn and the file (relative to the crate)
//! it is defined in. A kind may have several rows (one per receiver: a
//! replica's and a client's handler). [`check`] fails when a kind has no
//! row, a row names a kind that does not exist, the file does not exist or
//! the handler is not defined in it (`fn <name>`); a protocol crate's
//! `tests/messages.rs` runs it, so the table cannot rot.

use std::collections::BTreeSet;
use std::path::Path;

/// The columns, in order.
pub const COLUMNS: [&str; 5] = ["message", "from → to", "handler", "file", "source section"];

/// One row of a MESSAGES table (cells without their backticks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The message kind, as `Message::kind` reports it.
    pub kind: String,
    /// Who sends it to whom.
    pub route: String,
    /// The fn that handles it on receipt.
    pub handler: String,
    /// The file that fn is defined in, relative to the crate.
    pub file: String,
    /// Where the source describes it.
    pub section: String,
}

/// The doc text of `src`: the lines of `//!` (or `///`) comments without
/// their markers; text that is not Rust source is returned as it is.
pub fn doc_text(src: &str) -> String {
    let doc: Vec<&str> = src
        .lines()
        .filter_map(|l| {
            let t = l.trim_start();
            t.strip_prefix("//!").or_else(|| t.strip_prefix("///"))
        })
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    if doc.is_empty() {
        src.to_string()
    } else {
        doc.join("\n")
    }
}

fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().trim_matches('`').trim().to_string()).collect())
}

/// The rows of the markdown table under the heading named `MESSAGES` in
/// `doc` (Rust source with `//!` docs, or markdown), or why there is none.
pub fn table_rows(doc: &str) -> Result<Vec<Row>, String> {
    let text = doc_text(doc);
    let mut lines = text.lines().map(str::trim);
    lines
        .by_ref()
        .find(|l| l.starts_with('#') && l.trim_start_matches('#').split_whitespace().any(|w| w == "MESSAGES"))
        .ok_or("no MESSAGES heading")?;
    let mut lines = lines.skip_while(|l| !l.starts_with('|'));
    let header = lines.next().ok_or("no table under the MESSAGES heading")?;
    let header = cells(header).ok_or_else(|| format!("malformed header row: {header}"))?;
    if header != COLUMNS {
        return Err(format!("header is {header:?}, not {COLUMNS:?}"));
    }
    let sep = lines.next().unwrap_or_default();
    match cells(sep) {
        Some(c)
            if c.len() == COLUMNS.len() && c.iter().all(|c| !c.is_empty() && c.chars().all(|ch| "-:".contains(ch))) => {
        }
        _ => return Err(format!("malformed separator row: {sep}")),
    }
    let mut rows = Vec::new();
    for line in lines.take_while(|l| l.starts_with('|')) {
        let c = cells(line).ok_or_else(|| format!("malformed row: {line}"))?;
        if c.len() != COLUMNS.len() {
            return Err(format!("row has {} cells, not {}: {line}", c.len(), COLUMNS.len()));
        }
        if let Some(i) = c.iter().position(String::is_empty) {
            return Err(format!("empty {} cell: {line}", COLUMNS[i]));
        }
        let mut c = c.into_iter();
        let mut next = || c.next().unwrap_or_default();
        rows.push(Row { kind: next(), route: next(), handler: next(), file: next(), section: next() });
    }
    if rows.is_empty() {
        return Err("the MESSAGES table has no rows".into());
    }
    Ok(rows)
}

/// The body of each `fn name` in `src` (from its `{` to the matching `}`).
fn fn_bodies<'a>(src: &'a str, name: &str) -> Vec<&'a str> {
    let mut bodies = Vec::new();
    let pat = format!("fn {name}");
    let mut from = 0;
    while let Some(at) = src[from..].find(&pat).map(|i| from + i) {
        from = at + pat.len();
        if src[from..].starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(open) = src[from..].find(['{', ';']).map(|i| from + i) else { break };
        if src[open..].starts_with(';') {
            continue; // a declaration without a body
        }
        let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
        for (i, ch) in src[open..].char_indices() {
            match (in_str, ch) {
                (true, _) if escaped => escaped = false,
                (true, '\\') => escaped = true,
                (true, '"') => in_str = false,
                (true, _) => {}
                (false, '"') => in_str = true,
                (false, '{') => depth += 1,
                (false, '}') => {
                    depth -= 1;
                    if depth == 0 {
                        bodies.push(&src[open..=open + i]);
                        from = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    bodies
}

/// The message kinds `fn name` in `src` returns: the string literals right
/// after a `=>` in its body (a `fn kind` matching every variant of the
/// message enum to its name), deduplicated, in order of appearance. Arms
/// that delegate (`Msg::Inner(m) => m.kind()`) give no kind: add the inner
/// enum's kinds from its own source.
pub fn kinds_in_fn(src: &str, name: &str) -> Vec<String> {
    let mut kinds = Vec::new();
    for body in fn_bodies(src, name) {
        for arm in body.split("=>").skip(1) {
            let arm = arm.trim_start();
            if let Some(rest) = arm.strip_prefix('"') {
                if let Some(end) = rest.find('"') {
                    let kind = rest[..end].to_string();
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
            }
        }
    }
    kinds
}

/// Whether `src` defines `fn name` (followed by `(` or `<`).
pub fn defines_fn(src: &str, name: &str) -> bool {
    let pat = format!("fn {name}");
    src.match_indices(&pat).any(|(at, _)| {
        let before_ok = at == 0 || !src[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        before_ok && src[at + pat.len()..].trim_start().starts_with(['(', '<'])
    })
}

/// Check the MESSAGES table in `lib_doc` (the crate's or module's source,
/// or its docs) against `message_kinds` and the sources under `crate_dir`:
/// every kind has a row, every row's kind exists, its file exists and
/// defines its handler. Every problem found, or `Ok`.
pub fn check(crate_dir: &Path, lib_doc: &str, message_kinds: &[impl AsRef<str>]) -> Result<(), Vec<String>> {
    let rows = table_rows(lib_doc).map_err(|e| vec![e])?;
    let kinds: BTreeSet<&str> = message_kinds.iter().map(AsRef::as_ref).collect();
    let mut problems = Vec::new();
    if kinds.is_empty() {
        problems.push("no message kinds given (did `kinds_in_fn` find the fn?)".to_string());
    }
    let named: BTreeSet<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    for k in kinds.difference(&named) {
        problems.push(format!("message kind {k} has no row"));
    }
    for r in &rows {
        if !kinds.contains(r.kind.as_str()) {
            problems.push(format!("row names {}, which is not a message kind", r.kind));
        }
        let path = crate_dir.join(&r.file);
        match std::fs::read_to_string(&path) {
            Err(e) => problems.push(format!("{}: file {} cannot be read: {e}", r.kind, path.display())),
            Ok(src) if !defines_fn(&src, &r.handler) => {
                problems.push(format!("{}: no `fn {}` in {}", r.kind, r.handler, r.file))
            }
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS_SRC: &str = r#"
trait Message {
    fn kind(&self) -> &'static str;
}
impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Ping { .. } => "PING",
            Msg::Pong(_) => "PONG",
            Msg::Inner(m) => m.kind(),
        }
    }
    fn kinder(&self) -> &'static str {
        match self { _ => "NOT-A-KIND" }
    }
}
"#;

    const HANDLERS: &str = "impl R {\n    pub(crate) fn on_ping(&mut self) {}\n    fn on_pong<T>(&mut self) {}\n}\n";

    fn crate_dir() -> &'static Path {
        static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        DIR.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("quorate-messages-table-{}", std::process::id()));
            std::fs::create_dir_all(dir.join("src")).unwrap();
            std::fs::write(dir.join("src/handlers.rs"), HANDLERS).unwrap();
            dir
        })
    }

    fn lib(rows: &str) -> String {
        let mut s = String::from("//! A protocol.\n//!\n//! # MESSAGES\n//!\n");
        s += "//! | message | from → to | handler | file | source section |\n//! |---|---|---|---|---|\n";
        for r in rows.lines() {
            s += &format!("//! {r}\n");
        }
        s + "//!\n//! More docs.\n\npub mod handlers;\n"
    }

    const GOOD: &str = "| `PING` | client → replica | `on_ping` | `src/handlers.rs` | §1 |\n\
                        | `PONG` | replica → client | `on_pong` | `src/handlers.rs` | §2 |";

    fn kinds() -> Vec<String> {
        kinds_in_fn(KINDS_SRC, "kind")
    }

    #[test]
    fn kinds_are_the_literals_after_arrows() {
        assert_eq!(kinds(), ["PING", "PONG"]);
        assert_eq!(kinds_in_fn(KINDS_SRC, "absent"), Vec::<String>::new());
    }

    #[test]
    fn rows_are_parsed_without_backticks() {
        let rows = table_rows(&lib(GOOD)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            Row {
                kind: "PING".into(),
                route: "client → replica".into(),
                handler: "on_ping".into(),
                file: "src/handlers.rs".into(),
                section: "§1".into(),
            }
        );
    }

    #[test]
    fn a_true_table_passes() {
        assert_eq!(check(crate_dir(), &lib(GOOD), &kinds()), Ok(()));
    }

    #[test]
    fn a_kind_without_a_row_fails() {
        let doc = lib("| `PING` | client → replica | `on_ping` | `src/handlers.rs` | §1 |");
        assert_eq!(check(crate_dir(), &doc, &kinds()), Err(vec!["message kind PONG has no row".to_string()]));
    }

    #[test]
    fn a_row_of_an_unknown_kind_fails() {
        let doc = lib(&format!("{GOOD}\n| `PANG` | client → replica | `on_ping` | `src/handlers.rs` | §1 |"));
        assert_eq!(
            check(crate_dir(), &doc, &kinds()),
            Err(vec!["row names PANG, which is not a message kind".to_string()])
        );
    }

    #[test]
    fn a_missing_handler_fails() {
        let doc = lib(&GOOD.replace("on_pong", "on_pongg"));
        assert_eq!(
            check(crate_dir(), &doc, &kinds()),
            Err(vec!["PONG: no `fn on_pongg` in src/handlers.rs".to_string()])
        );
        // A prefix of a defined fn's name is not defined.
        let doc = lib(&GOOD.replace("on_pong", "on_pon"));
        assert!(check(crate_dir(), &doc, &kinds()).is_err());
    }

    #[test]
    fn a_missing_file_fails() {
        let doc = lib(&GOOD.replace("`src/handlers.rs` | §2", "`src/gone.rs` | §2"));
        let errs = check(crate_dir(), &doc, &kinds()).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("PONG: file ") && errs[0].contains("gone.rs"), "{errs:?}");
    }

    #[test]
    fn malformed_tables_fail() {
        let dir = crate_dir();
        let fails = |doc: &str| check(dir, doc, &kinds()).unwrap_err();
        assert_eq!(fails("//! No table here.\n"), ["no MESSAGES heading"]);
        assert_eq!(fails("//! # MESSAGES\n//!\n//! Nothing.\n"), ["no table under the MESSAGES heading"]);
        assert!(fails(&lib(GOOD).replace("| handler |", "| fn |"))[0].starts_with("header is"));
        assert!(fails(&lib(GOOD).replace("|---|---|---|---|---|", "|---|---|"))[0].starts_with("malformed separator"));
        assert!(fails(&lib(&GOOD.replace(" §2 |", " §2 | extra |")))[0].starts_with("row has 6 cells"));
        assert!(fails(&lib(&GOOD.replace("§2", "")))[0].starts_with("empty source section cell"));
        assert!(fails(&lib(&GOOD.replace(" §2 |", " §2")))[0].starts_with("malformed row"));
        assert_eq!(fails(&lib("")), ["the MESSAGES table has no rows"]);
        assert!(check(dir, &lib(GOOD), &Vec::<String>::new()).unwrap_err()[0].starts_with("no message kinds"));
    }
}
