//! The README's compliance table (section "Compliance table (PIPL requirements)", issue 16)
//! stays true to the suite: every REQ-01 … REQ-48 has exactly one row, each row has one of the
//! four statuses, a `proven` row names at least one test, a `partial` or `out of scope` row says
//! what is missing or why, and every test a row names still exists as a test function
//! (`#[test]`, `#[tokio::test]`, or inside a `proptest!` block) in the file it names, inside
//! the `mod`s its path names. A plain integration test: no server, no database.
//!
//! What it cannot check is whether a named test still proves what the row claims; that is on
//! whoever changes the test (README says so next to the table).

use std::collections::BTreeMap;
use std::path::Path;

const SECTION: &str = "## Compliance table (PIPL requirements)";
const STATUSES: [&str; 4] = ["proven", "partial", "not yet", "out of scope"];
const REQS: u32 = 48;

/// One row of the table as written.
#[derive(Debug)]
struct Row {
    /// 1-based line number in the README.
    line: usize,
    req: String,
    status: String,
    tests: Vec<String>,
    note: String,
}

/// The rows of the table in `readme`, or why it could not be read.
fn parse(readme: &str) -> Result<Vec<Row>, Vec<String>> {
    let lines: Vec<&str> = readme.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == SECTION) else {
        return Err(vec![format!("README has no section `{SECTION}`")]);
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## ") || l.starts_with("# "))
        .map_or(lines.len(), |i| start + 1 + i);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut header = false;
    for (i, raw) in lines.iter().enumerate().take(end).skip(start + 1) {
        let line = raw.trim();
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.first() == Some(&"REQ") {
            header = true;
            continue;
        }
        if cells
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        let at = format!("README.md line {}", i + 1);
        if cells.len() != 5 {
            errors.push(format!(
                "{at}: a row has 5 cells (REQ, obligation, status, tests, note), this one {}",
                cells.len()
            ));
            continue;
        }
        let mut tests = Vec::new();
        let mut rest = cells[3];
        while let Some(open) = rest.find('`') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('`') else {
                errors.push(format!(
                    "{at} ({}): unbalanced backquote in tests",
                    cells[0]
                ));
                break;
            };
            tests.push(after[..close].to_string());
            rest = &after[close + 1..];
        }
        rows.push(Row {
            line: i + 1,
            req: cells[0].to_string(),
            status: cells[2].trim_matches('*').trim().to_string(),
            tests,
            note: cells[4].to_string(),
        });
    }
    if !header {
        errors.push(format!(
            "section `{SECTION}` has no table with a `| REQ | … |` header"
        ));
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Byte offsets of the `{ … }` body of every `proptest!` invocation in `src`, found by
/// matching braces outside comments, string and character literals.
fn proptest_blocks(src: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    // (depth at which the block's `{` opened, its offset)
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut armed = false;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let (off, c) = chars[i];
        let next = chars.get(i + 1).map(|x| x.1);
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i].1 != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i].1 == '*' && chars[i + 1].1 == '/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i].1 != '"' {
                    if chars[i].1 == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            'r' if (i == 0 || !ident(chars[i - 1].1)) && matches!(next, Some('"') | Some('#')) => {
                let mut j = i + 1;
                let mut hashes = 0;
                while j < chars.len() && chars[j].1 == '#' {
                    hashes += 1;
                    j += 1;
                }
                if j < chars.len() && chars[j].1 == '"' {
                    j += 1;
                    loop {
                        if j >= chars.len() {
                            break;
                        }
                        if chars[j].1 == '"'
                            && (1..=hashes).all(|h| chars.get(j + h).map(|x| x.1) == Some('#'))
                        {
                            j += 1 + hashes;
                            break;
                        }
                        j += 1;
                    }
                    i = j;
                    continue;
                }
            }
            '\'' => {
                if next == Some('\\') {
                    i += 2;
                    while i < chars.len() && chars[i].1 != '\'' {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                if chars.get(i + 2).map(|x| x.1) == Some('\'') {
                    i += 3;
                    continue;
                }
                // A lifetime or label.
            }
            'p' if (i == 0 || !ident(chars[i - 1].1)) && src[off..].starts_with("proptest!") => {
                armed = true;
                i += "proptest!".len();
                continue;
            }
            '{' => {
                if armed {
                    open.push((depth, off));
                    armed = false;
                }
                depth += 1;
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if open.last().is_some_and(|&(d, _)| d == depth) {
                    let (_, start) = open.pop().unwrap_or_default();
                    blocks.push((start, off));
                }
            }
            _ => {}
        }
        i += 1;
    }
    blocks
}

/// Whether `src` defines `name` as a test: a `fn name` whose attributes (above it, past doc
/// comments and other attributes) include `#[test]`, `#[tokio::test…]` or `#[proptest…]`,
/// or that lies inside a `proptest!` block.
fn defines_test(src: &str, name: &str) -> bool {
    let lines: Vec<&str> = src.lines().collect();
    let blocks = proptest_blocks(src);
    let mut offset = 0;
    let mut offsets = Vec::with_capacity(lines.len());
    for l in &lines {
        offsets.push(offset);
        offset += l.len() + 1;
    }
    for (i, line) in lines.iter().enumerate() {
        let mut t = line.trim_start();
        for prefix in ["pub(crate) ", "pub(super) ", "pub ", "async "] {
            t = t.strip_prefix(prefix).unwrap_or(t);
        }
        let Some(after) = t.strip_prefix("fn ").and_then(|r| r.strip_prefix(name)) else {
            continue;
        };
        if !after.starts_with('(') && !after.starts_with('<') {
            continue;
        }
        let at = offsets[i];
        if blocks.iter().any(|&(s, e)| s < at && at < e) {
            return true;
        }
        for above in lines[..i].iter().rev() {
            let a = above.trim();
            if a.starts_with("#[test]")
                || a.starts_with("#[tokio::test")
                || a.starts_with("#[proptest")
            {
                return true;
            }
            if a.is_empty() || a.starts_with("//") || a.starts_with("#[") {
                continue;
            }
            break;
        }
    }
    false
}

/// Whether `src` declares an inline `mod name { … }` (any visibility).
fn declares_mod(src: &str, name: &str) -> bool {
    src.lines().any(|l| {
        let mut t = l.trim_start();
        for prefix in ["pub(crate) ", "pub(super) ", "pub "] {
            t = t.strip_prefix(prefix).unwrap_or(t);
        }
        t.strip_prefix("mod ")
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| r.trim_start().starts_with('{'))
    })
}

/// Everything wrong with the table in `readme`; `read` gives a repository file's text.
fn check(readme: &str, read: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let rows = match parse(readme) {
        Ok(rows) => rows,
        Err(errors) => return errors,
    };
    let mut errors = Vec::new();
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for row in &rows {
        let at = format!("row {} (README.md line {})", row.req, row.line);
        let number = row
            .req
            .strip_prefix("REQ-")
            .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=REQS).contains(n));
        match number {
            None => errors.push(format!(
                "{at}: `{}` is not one of REQ-01 … REQ-{REQS}",
                row.req
            )),
            Some(n) => {
                if let Some(first) = seen.insert(n, row.line) {
                    errors.push(format!(
                        "{at}: duplicate row, {} already has one at README.md line {first}",
                        row.req
                    ));
                }
            }
        }
        if !STATUSES.contains(&row.status.as_str()) {
            errors.push(format!(
                "{at}: status `{}` is not one of {STATUSES:?}",
                row.status
            ));
        }
        if row.status == "proven" && row.tests.is_empty() {
            errors.push(format!("{at}: `proven` but no test is named"));
        }
        if matches!(row.status.as_str(), "partial" | "out of scope") && row.note.is_empty() {
            errors.push(format!(
                "{at}: `{}` needs a note (what is missing, or why it is out of scope)",
                row.status
            ));
        }
        for test in &row.tests {
            let mut parts = test.split("::");
            let file = parts.next().unwrap_or_default();
            let path: Vec<&str> = parts.collect();
            let Some((name, mods)) = path.split_last() else {
                errors.push(format!(
                    "{at}: `{test}` is not `path/file.rs::[mod::]fn_name`"
                ));
                continue;
            };
            if !file.ends_with(".rs") || file.starts_with('/') || file.contains("..") {
                errors.push(format!(
                    "{at}: `{test}`: `{file}` is not a .rs file in the repository"
                ));
                continue;
            }
            let Some(src) = read(file) else {
                errors.push(format!("{at}: `{test}`: file {file} does not exist"));
                continue;
            };
            for m in mods {
                if !declares_mod(&src, m) {
                    errors.push(format!("{at}: `{test}`: no `mod {m}` in {file}"));
                }
            }
            if !defines_test(&src, name) {
                errors.push(format!(
                    "{at}: `{test}`: no #[test], #[tokio::test] or proptest! fn `{name}` in {file}"
                ));
            }
        }
    }
    for n in 1..=REQS {
        if !seen.contains_key(&n) {
            errors.push(format!("row REQ-{n:02} is missing from the table"));
        }
    }
    errors
}

fn repo_file(rel: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).ok()
}

#[test]
fn the_readme_compliance_table_has_every_req_once_and_names_only_tests_that_exist() {
    let readme = repo_file("README.md").expect("README.md");
    let errors = check(&readme, &repo_file);
    assert!(
        errors.is_empty(),
        "the README compliance table has drifted from the suite ({} problem(s)):\n{}",
        errors.len(),
        errors.join("\n")
    );
    let rows = parse(&readme).unwrap_or_default();
    assert_eq!(rows.len(), REQS as usize);
    assert!(
        rows.iter().map(|r| r.tests.len()).sum::<usize>() > 50,
        "the parser found the named tests"
    );
}

// The checker itself, on made-up READMEs and sources: each rule can fail.

const FAKE_SRC: &str = r##"
//! A file with tests of every kind, and things that look like tests but are not.
fn helper() {}

#[test]
fn plain_test() {}

/// Documented, with more attributes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::unwrap_used)]
async fn async_test() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_test() { let _ = "}{"; let _ = '}'; }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10))]
        fn strategy_built_inside(s in "[a-z]{1,3}") { let _ = r#"{"#; }
    }

    fn not_a_test_either() {}
}

// fn commented_out() {}
"##;

fn fake_read(rel: &str) -> Option<String> {
    (rel == "src/fake.rs").then(|| FAKE_SRC.to_string())
}

/// A table with all 48 rows, `proven` by `src/fake.rs::plain_test`, with `edit` applied to
/// the row text of each REQ number (return `None` to drop the row).
fn readme_with(edit: impl Fn(u32, String) -> Option<String>) -> String {
    let mut s = format!(
        "# X\n\n{SECTION}\n\nText.\n\n| REQ | Obligation | Status | Tests | Missing / note |\n|---|---|---|---|---|\n"
    );
    for n in 1..=REQS {
        let row = format!("| REQ-{n:02} | duty {n} | proven | `src/fake.rs::plain_test` | |");
        if let Some(r) = edit(n, row) {
            s.push_str(&r);
            s.push('\n');
        }
    }
    s.push_str("\n## Next section\n\n| REQ-99 | outside the section | nonsense | | |\n");
    s
}

#[test]
fn a_complete_table_of_existing_tests_passes() {
    assert_eq!(
        check(&readme_with(|_, r| Some(r)), &fake_read),
        Vec::<String>::new()
    );
}

#[test]
fn missing_duplicated_and_unknown_rows_are_named() {
    let readme = readme_with(|n, r| match n {
        7 => None,
        8 => Some(format!("{r}\n{}", r.replace("duty 8", "again"))),
        9 => Some(r.replace("REQ-09", "REQ-9")),
        _ => Some(r),
    });
    let errors = check(&readme, &fake_read);
    assert!(
        errors
            .iter()
            .any(|e| e == "row REQ-07 is missing from the table"),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("row REQ-08 (README.md line ")
                && e.contains("duplicate row, REQ-08 already has one")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`REQ-9` is not one of REQ-01")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e == "row REQ-09 is missing from the table"),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[test]
fn statuses_notes_and_proven_rows_without_tests_are_named() {
    let readme = readme_with(|n, r| match n {
        1 => Some(r.replace(" `src/fake.rs::plain_test` ", " ")),
        2 => Some(r.replace("proven", "partial")),
        3 => Some(r.replace("proven", "out of scope")),
        4 => Some(r.replace("proven", "mostly")),
        5 => Some(r.replace("proven | `src/fake.rs::plain_test` |", "not yet | |")),
        6 => Some(r.replace("proven", "partial").replace("| |", "| no PDF |")),
        _ => Some(r),
    });
    let errors = check(&readme, &fake_read);
    let expect = [
        ("REQ-01", "`proven` but no test is named"),
        ("REQ-02", "`partial` needs a note"),
        ("REQ-03", "`out of scope` needs a note"),
        ("REQ-04", "status `mostly` is not one of"),
    ];
    for (req, what) in expect {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("row {req} ")) && e.contains(what)),
            "{req}: {errors:?}"
        );
    }
    assert_eq!(errors.len(), expect.len(), "{errors:?}");
}

#[test]
fn a_named_test_that_does_not_exist_is_named_with_its_row() {
    let cases = [
        (
            "src/fake.rs::renamed_test",
            "no #[test], #[tokio::test] or proptest! fn `renamed_test` in src/fake.rs",
        ),
        ("src/fake.rs::helper", "fn `helper`"),
        (
            "src/fake.rs::tests::not_a_test_either",
            "fn `not_a_test_either`",
        ),
        ("src/fake.rs::commented_out", "fn `commented_out`"),
        ("src/fake.rs::plain", "fn `plain`"),
        (
            "src/fake.rs::other::inner_test",
            "no `mod other` in src/fake.rs",
        ),
        ("src/gone.rs::plain_test", "file src/gone.rs does not exist"),
        ("plain_test", "is not `path/file.rs::[mod::]fn_name`"),
        (
            "../fake.rs::plain_test",
            "is not a .rs file in the repository",
        ),
    ];
    for (name, what) in cases {
        let readme = readme_with(|n, r| {
            Some(if n == 12 {
                r.replace(
                    "`src/fake.rs::plain_test`",
                    &format!("`src/fake.rs::plain_test`<br>`{name}`"),
                )
            } else {
                r
            })
        });
        let errors = check(&readme, &fake_read);
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert!(
            errors[0].starts_with("row REQ-12 (README.md line ")
                && errors[0].contains(&format!("`{name}`"))
                && errors[0].contains(what),
            "{name}: {errors:?}"
        );
    }
}

#[test]
fn tests_are_recognised_by_attribute_or_proptest_block() {
    for name in [
        "plain_test",
        "async_test",
        "inner_test",
        "strategy_built_inside",
    ] {
        assert!(defines_test(FAKE_SRC, name), "{name}");
    }
    for name in [
        "helper",
        "not_a_test_either",
        "commented_out",
        "plain",
        "missing",
    ] {
        assert!(!defines_test(FAKE_SRC, name), "{name}");
    }
    assert!(declares_mod(FAKE_SRC, "tests"));
    assert!(!declares_mod(FAKE_SRC, "test"));
}

#[test]
fn a_readme_without_the_section_or_its_header_is_refused() {
    assert_eq!(
        check("# X\n\n## Something else\n", &fake_read),
        vec![format!("README has no section `{SECTION}`")]
    );
    let errors = check(
        &format!("{SECTION}\n\n| REQ-01 | a | proven |\n"),
        &fake_read,
    );
    assert!(
        errors.iter().any(|e| e.contains("a row has 5 cells")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("has no table with a `| REQ | … |` header")),
        "{errors:?}"
    );
}
