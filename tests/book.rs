//! The book (`docs/`, an mdBook) cannot drift from the code, and works without mdbook.
//!
//! - Every `{{#include path:anchor}}` resolves: the file exists and has `ANCHOR: name` and
//!   `ANCHOR_END: name` lines around a non-empty snippet. So a refactor that drops or renames an
//!   anchor in an example fails here instead of silently emptying a page.
//! - Every internal link resolves: a relative link names an existing file, and its `#anchor` a
//!   heading (or an `id`) in that file. Checked over the Markdown itself, so it also runs on
//!   GitHub's view of the pages, where mdbook never runs.
//! - `SUMMARY.md` lists every page, and every page it lists exists.
//! - The troubleshooting page's generated block is `common::catalogue::render_markdown()`
//!   (`UPDATE_BOOK=1 cargo test -p scenario-tests --test book` rewrites it).
//! - Every practice page has its six parts and at least one snippet from the code, and every
//!   example's header links its page.
//!
//! `scripts/test` also builds the book with mdbook.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn book_src() -> PathBuf {
    workspace_root().join("docs/src")
}

/// Every Markdown page of the book.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(book_src())
        .expect("docs/src exists")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn shown(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The lines of `text` outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// Removes `inline code` spans, so a link shown as code is not checked as a link.
fn without_inline_code(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The anchor id mdBook and GitHub give a heading: lower case, spaces to `-`, punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

/// Every anchor a Markdown file offers: its headings' ids and explicit `id="…"` attributes.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            let heading = trimmed.trim_start_matches('#');
            found.insert(slug(heading));
        }
        let mut rest = line;
        while let Some(at) = rest.find("id=\"") {
            rest = &rest[at + 4..];
            if let Some(end) = rest.find('"') {
                found.insert(rest[..end].to_owned());
            }
        }
    }
    found
}

/// `(line, target)` of every Markdown link and image in the prose of `text`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_inline_code(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or_default();
            found.push((number, target.to_owned()));
            rest = &rest[end..];
        }
    }
    found
}

/// Why the link `target` in `from` leads nowhere, or `None` when it resolves.
fn broken(from: &Path, target: &str) -> Option<String> {
    if target.is_empty()
        || target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:")
    {
        return None;
    }
    let (file, fragment) = match target.split_once('#') {
        Some((file, fragment)) => (file, Some(fragment)),
        None => (target, None),
    };
    let path = if file.is_empty() {
        from.to_path_buf()
    } else {
        normalize(&from.parent().expect("a file has a folder").join(file))
    };
    if !path.exists() {
        return Some(format!("{} does not exist", shown(&path)));
    }
    if let Some(fragment) = fragment {
        if path.extension().is_some_and(|e| e == "md") && !anchors(&read(&path)).contains(fragment)
        {
            return Some(format!("{} has no heading #{fragment}", shown(&path)));
        }
    }
    None
}

/// `(line, path, anchor)` of every `{{#include …}}` in `text` (fenced blocks included: that is
/// where they live).
fn includes(text: &str) -> Vec<(usize, String, Option<String>)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("{{#") {
            rest = &rest[at + 3..];
            let Some(end) = rest.find("}}") else { break };
            let directive = rest[..end].trim();
            rest = &rest[end..];
            let Some(argument) = directive
                .strip_prefix("include ")
                .or_else(|| directive.strip_prefix("rustdoc_include "))
            else {
                continue;
            };
            let argument = argument.trim();
            let (path, anchor) = match argument.split_once(':') {
                Some((path, anchor)) => (path, Some(anchor.to_owned())),
                None => (argument, None),
            };
            found.push((index + 1, path.to_owned(), anchor));
        }
    }
    found
}

/// The lines between `ANCHOR: name` and `ANCHOR_END: name` (mdBook's rule: any line that
/// contains the marker), or why there are none.
fn snippet(text: &str, name: &str) -> Result<String, String> {
    let marker = |line: &str, tag: &str| {
        line.split_once(tag).is_some_and(|(_, rest)| {
            rest.trim_start()
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .next()
                == Some(name)
        })
    };
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|line| marker(line, "ANCHOR:"))
        .ok_or_else(|| format!("no `ANCHOR: {name}` line"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|line| marker(line, "ANCHOR_END:"))
        .map(|offset| start + 1 + offset)
        .ok_or_else(|| format!("`ANCHOR: {name}` has no `ANCHOR_END: {name}` after it"))?;
    let body: Vec<&str> = lines[start + 1..end]
        .iter()
        .filter(|line| !line.contains("ANCHOR:") && !line.contains("ANCHOR_END:"))
        .copied()
        .collect();
    if body.iter().all(|line| line.trim().is_empty()) {
        return Err(format!("anchor {name} is empty"));
    }
    Ok(body.join("\n"))
}

#[test]
fn every_include_and_anchor_resolves() {
    let mut problems = Vec::new();
    let mut count = 0;
    for page in pages() {
        let text = read(&page);
        for (line, path, anchor) in includes(&text) {
            count += 1;
            let file = normalize(&page.parent().expect("folder").join(&path));
            let shown_anchor = anchor
                .as_deref()
                .map(|a| format!(":{a}"))
                .unwrap_or_default();
            let at = format!(
                "{}:{line}: {{{{#include {path}{shown_anchor}}}}}",
                shown(&page)
            );
            let Ok(source) = std::fs::read_to_string(&file) else {
                problems.push(format!("{at}: {} does not exist", shown(&file)));
                continue;
            };
            if let Some(anchor) = anchor.filter(|a| !a.chars().all(|c| c.is_ascii_digit())) {
                if let Err(why) = snippet(&source, &anchor) {
                    problems.push(format!("{at}: in {}: {why}", shown(&file)));
                }
            }
        }
    }
    assert!(
        count >= 10,
        "only {count} includes found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "dangling includes:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_internal_link_resolves() {
    let root = workspace_root();
    let mut documents = pages();
    documents.push(root.join("README.md"));
    let mut problems = Vec::new();
    let mut count = 0;
    for document in documents {
        for (line, target) in links(&read(&document)) {
            count += 1;
            if let Some(why) = broken(&document, &target) {
                problems.push(format!("{}:{line}: ({target}): {why}", shown(&document)));
            }
        }
    }
    assert!(
        count >= 30,
        "only {count} links found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checkers_catch_what_they_are_for() {
    assert_eq!(slug("What we measured"), "what-we-measured");
    assert_eq!(slug("TLS on 8883: `--ca-file`"), "tls-on-8883---ca-file");
    let page = book_src().join("quick-start.md");
    assert!(broken(&page, "no-such-page.md").is_some());
    assert!(broken(&page, "sessions.md#no-such-heading").is_some());
    assert!(broken(&page, "sessions.md#why").is_none());
    assert!(broken(&page, "https://example.com/x").is_none());
    assert_eq!(
        links("see [a](b.md#c) and `[x](y)`\n```\n[d](e)\n```"),
        vec![(1, "b.md#c".to_owned())]
    );
    let source =
        "a\n// ANCHOR: knobs\nx();\n// ANCHOR_END: knobs\n// ANCHOR: empty\n// ANCHOR_END: empty\n";
    assert_eq!(snippet(source, "knobs").as_deref(), Ok("x();"));
    assert!(snippet(source, "empty").is_err());
    assert!(snippet(source, "missing").is_err());
    assert!(
        snippet(source, "knob").is_err(),
        "a prefix is not the anchor"
    );
    assert_eq!(
        includes("{{#include ../../a.rs:knobs}} {{#include b.md}}"),
        vec![
            (1, "../../a.rs".to_owned(), Some("knobs".to_owned())),
            (1, "b.md".to_owned(), None)
        ]
    );
}

/// The pages in SUMMARY.md, in order.
fn summary_pages() -> Vec<String> {
    links(&read(&book_src().join("SUMMARY.md")))
        .into_iter()
        .map(|(_, target)| target)
        .collect()
}

#[test]
fn summary_lists_every_page_once() {
    let listed = summary_pages();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a page is listed twice: {listed:?}"
    );
    for page in pages() {
        let name = page
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        if name != "SUMMARY.md" {
            assert!(
                listed.contains(&name),
                "{name} is not in SUMMARY.md (mdBook would not build it)"
            );
        }
    }
    for name in &listed {
        assert!(
            book_src().join(name).exists(),
            "SUMMARY.md lists {name}, which does not exist"
        );
    }
}

/// The pages that teach one practice, and so have the six parts.
const PRACTICE_PAGES: [&str; 7] = [
    "credentials.md",
    "tls.md",
    "sessions.md",
    "qos1.md",
    "shared-subscriptions.md",
    "client-ids.md",
    "reconnects.md",
];

const SIX_PARTS: [&str; 6] = [
    "## Why",
    "## The pitfall",
    "## The code",
    "## See it happen",
    "## What we measured",
    "## The spec",
];

#[test]
fn every_practice_page_has_the_six_parts_and_a_snippet_from_the_code() {
    let mut problems = Vec::new();
    for name in PRACTICE_PAGES {
        let text = read(&book_src().join(name));
        let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
        let mut last = 0;
        for part in SIX_PARTS {
            match headings.iter().position(|h| h.starts_with(part)) {
                Some(at) if at >= last => last = at,
                Some(_) => problems.push(format!("{name}: \"{part}\" is out of order")),
                None => problems.push(format!("{name}: no \"{part}\" section")),
            }
        }
        if !includes(&text)
            .iter()
            .any(|(_, path, anchor)| path.ends_with(".rs") && anchor.is_some())
        {
            problems.push(format!("{name}: no snippet included from the code"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_example_header_links_its_page() {
    let mut problems = Vec::new();
    let examples = workspace_root().join("examples");
    for entry in std::fs::read_dir(&examples).expect("examples/").flatten() {
        let main = entry.path().join("src/main.rs");
        let Ok(text) = std::fs::read_to_string(&main) else {
            continue;
        };
        let link = text
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .find_map(|line| line.strip_prefix("//! Read more: "));
        match link {
            None => problems.push(format!(
                "{}: no `//! Read more: docs/src/….md` line",
                shown(&main)
            )),
            Some(path) => {
                let path = path.trim();
                if !path.starts_with("docs/src/") || !workspace_root().join(path).exists() {
                    problems.push(format!(
                        "{}: links {path}, which is not a book page",
                        shown(&main)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

const START: &str = "<!-- catalogue:start (generated from common/src/catalogue.rs: UPDATE_BOOK=1 cargo test -p scenario-tests --test book) -->";
const END: &str = "<!-- catalogue:end -->";

#[test]
fn troubleshooting_page_is_the_catalogue() {
    let path = book_src().join("troubleshooting.md");
    let page = read(&path);
    let start = page
        .find(START)
        .expect("the troubleshooting page has the start marker")
        + START.len();
    let end = page
        .find(END)
        .expect("the troubleshooting page has the end marker");
    let generated = format!("\n{}\n", common::catalogue::render_markdown());
    if page[start..end] == generated {
        return;
    }
    if std::env::var_os("UPDATE_BOOK").is_some() {
        let updated = format!("{}{generated}{}", &page[..start], &page[end..]);
        std::fs::write(&path, updated).expect("write the troubleshooting page");
        return;
    }
    panic!(
        "docs/src/troubleshooting.md differs from common/src/catalogue.rs. Run\n  UPDATE_BOOK=1 cargo \
         test -p scenario-tests --test book\nand commit the page."
    );
}

#[test]
fn every_catalogue_entry_is_on_the_page_with_its_printed_words() {
    let page = read(&book_src().join("troubleshooting.md"));
    let ids = anchors(&page);
    for key in common::catalogue::Key::ALL {
        let entry = key.entry();
        assert!(
            ids.contains(entry.id),
            "no heading #{} on the page",
            entry.id
        );
        for words in entry.prints {
            assert!(page.contains(words), "the page lacks the words {words:?}");
        }
    }
}

/// The catalogue entries whose messages are not an error type's `Display` (plain `format!` /
/// `bail!` / log texts). The typed ones are checked word for word by `common/src/catalogue.rs`'s
/// own tests; these are checked here against the source text, so a reworded message fails.
const UNTYPED: [common::catalogue::Key; 6] = [
    common::catalogue::Key::PlaintextAllowed,
    common::catalogue::Key::Qos0Granted,
    common::catalogue::Key::Usage,
    common::catalogue::Key::DemoBrokerFailed,
    common::catalogue::Key::Unexpected,
    common::catalogue::Key::SimulatedCrash,
];

/// Words clap prints itself (its usage errors), not found in this repository's source.
const CLAP_WORDS: [&str; 3] = [
    "unexpected argument",
    "invalid value",
    "the following required arguments were not provided",
];

fn rust_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            // The catalogue quotes every message: it must not vouch for itself.
            && !path.ends_with("common/src/catalogue.rs")
        {
            out.push_str(&read(&path));
        }
    }
}

#[test]
fn every_untyped_catalogue_message_is_printed_by_the_code() {
    let root = workspace_root();
    let mut source = String::new();
    for dir in ["common/src", "examples", "crates/demo-broker/src"] {
        rust_sources(&root.join(dir), &mut source);
    }
    let mut problems = Vec::new();
    for key in UNTYPED {
        for words in key.entry().prints {
            if CLAP_WORDS.contains(words) {
                continue;
            }
            for part in words.split('…').map(|p| p.trim().trim_matches(':').trim()) {
                if part.len() >= 8 && !source.contains(part) {
                    problems.push(format!("{}: no source prints {part:?}", key.entry().id));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Backticked names in `text` that look like a test function (`snake_case` with at least four
/// words), the way the pages and the catalogue cite the test that shows a behaviour.
fn cited_test_names(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| {
            name.matches('_').count() >= 3
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_test_the_book_cites_exists() {
    let tests_dir = workspace_root().join("tests");
    let mut test_source = String::new();
    rust_sources(&tests_dir, &mut test_source);
    // Packages' own integration tests too (doctor's entries cite examples/doctor/tests).
    if let Ok(examples) = std::fs::read_dir(workspace_root().join("examples")) {
        for example in examples.flatten() {
            rust_sources(&example.path().join("tests"), &mut test_source);
        }
    }
    let mut cited = BTreeSet::new();
    for page in pages() {
        cited.extend(cited_test_names(&read(&page)));
    }
    for key in common::catalogue::Key::ALL {
        cited.extend(cited_test_names(key.entry().see_it));
    }
    assert!(
        cited.len() >= 20,
        "only {} test names cited: is the parser broken?",
        cited.len()
    );
    let missing: Vec<&String> = cited
        .iter()
        .filter(|name| !test_source.contains(&format!("fn {name}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "the book cites tests that do not exist (renamed?): {missing:?}"
    );
}

/// The `help:` line a failing binary prints names an entry that is on the page.
fn help_anchor(stderr: &str) -> Option<String> {
    let line = stderr.lines().find(|line| line.starts_with("help: "))?;
    let (_, anchor) = line.rsplit_once("docs/src/troubleshooting.md#")?;
    Some(anchor.trim().to_owned())
}

#[test]
fn a_failing_binary_points_at_its_troubleshooting_entry() {
    let page = anchors(&read(&book_src().join("troubleshooting.md")));

    let mut example = mosquitto_harness::ExampleProcess::spawn(
        "tls-connect",
        &["--creds", "/nonexistent/creds.json"],
        &[],
    );
    let status = example
        .wait_exit(std::time::Duration::from_secs(60))
        .expect("tls-connect exits");
    assert_eq!(status.code(), Some(3), "{}", example.transcript());
    let anchor = help_anchor(&example.stderr());
    assert_eq!(
        anchor.as_deref(),
        Some("creds-not-found"),
        "{}",
        example.transcript()
    );

    // fetch-creds, with no login in the environment and no terminal to ask on.
    let mut command = mosquitto_harness::example_command("fetch-creds");
    command
        .arg("orgs")
        .env_remove("LINKLABS_USERNAME")
        .env_remove("LINKLABS_PASSWORD")
        .env_remove("LINKLABS_TOKEN")
        .stdin(std::process::Stdio::null());
    let mut fetch =
        mosquitto_harness::ExampleProcess::spawn_command(command).expect("fetch-creds starts");
    let status = fetch
        .wait_exit(std::time::Duration::from_secs(60))
        .expect("fetch-creds exits");
    assert_eq!(status.code(), Some(2), "{}", fetch.transcript());
    let fetch_anchor = help_anchor(&fetch.stderr());
    assert_eq!(
        fetch_anchor.as_deref(),
        Some("fetch-no-login"),
        "{}",
        fetch.transcript()
    );

    for anchor in [anchor, fetch_anchor].into_iter().flatten() {
        assert!(
            page.contains(&anchor),
            "no entry #{anchor} on the troubleshooting page"
        );
    }
}
