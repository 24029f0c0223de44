//! Every `cargo run -p …` command the project prints for a reader — in the README, in `docs/`,
//! in each example's header, in the support crates — must pick the program it means.
//!
//! Why: these commands are the first thing a customer types. A package with variant binaries and
//! no `default-run` makes `cargo run -p shared-subscription` fail with "could not determine which
//! binary to run"; a `--bin` behind a feature fails without that `--features`. Neither shows up
//! when the tests run the binaries directly, so this test reads the commands from the text and
//! checks each against `cargo metadata` (fast, no build).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// One binary target of a package: its name and the features it needs.
struct Bin {
    name: String,
    required_features: Vec<String>,
}

/// What `cargo run -p <package>` can choose from.
struct Package {
    bins: Vec<Bin>,
    default_run: Option<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn packages() -> BTreeMap<String, Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let mut packages = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let bins = package["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .filter(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|k| k.contains(&"bin".into()))
            })
            .map(|target| Bin {
                name: target["name"].as_str().expect("name").to_owned(),
                required_features: target["required-features"]
                    .as_array()
                    .map(|features| {
                        features
                            .iter()
                            .filter_map(|f| f.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        packages.insert(
            package["name"].as_str().expect("name").to_owned(),
            Package {
                bins,
                default_run: package["default_run"].as_str().map(str::to_owned),
            },
        );
    }
    packages
}

/// The text files a reader sees commands in.
fn documents() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "examples", "crates", "common"] {
        collect(&root.join(dir), &mut files);
    }
    files
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("rs" | "md")) {
            files.push(path);
        }
    }
}

/// The cargo part of each `cargo run` in `text`: up to the program's own `--`, a comment, the end
/// of inline code, or the end of the line.
fn commands(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("cargo run") {
            rest = &rest[at + "cargo run".len()..];
            let end = rest.find(['`', '#', '"', '\\']).unwrap_or(rest.len());
            let words: Vec<String> = rest[..end]
                .split_whitespace()
                .take_while(|word| *word != "--")
                .map(str::to_owned)
                .collect();
            found.push(words);
        }
    }
    found
}

/// Why `cargo run <words>` would not run one program, or `None` when it would.
fn problem(words: &[String], packages: &BTreeMap<String, Package>) -> Option<String> {
    let value_of = |flags: &[&str]| {
        words
            .iter()
            .position(|w| flags.contains(&w.as_str()))
            .and_then(|i| words.get(i + 1).cloned())
    };
    let Some(name) = value_of(&["-p", "--package"]) else {
        return None; // Not a command for one package (prose such as "a bare `cargo run`").
    };
    if name.contains('<') {
        return None; // A placeholder: `cargo run -p <scenario>`.
    }
    let features: Vec<String> = value_of(&["--features", "-F"])
        .map(|list| list.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let Some(package) = packages.get(&name) else {
        return Some(format!("there is no package {name}"));
    };
    let bin_name = match value_of(&["--bin"]) {
        Some(bin) => bin,
        None => match (&package.default_run, package.bins.as_slice()) {
            (Some(default), _) => default.clone(),
            (None, [only]) => only.name.clone(),
            (None, bins) => {
                return Some(format!(
                    "{name} has {} binaries and no default-run: cargo cannot choose",
                    bins.len()
                ))
            }
        },
    };
    let Some(bin) = package.bins.iter().find(|bin| bin.name == bin_name) else {
        return Some(format!("{name} has no binary {bin_name}"));
    };
    let missing: Vec<&String> = bin
        .required_features
        .iter()
        .filter(|feature| !features.contains(feature))
        .collect();
    if !missing.is_empty() {
        return Some(format!("{bin_name} needs --features {missing:?}"));
    }
    None
}

#[test]
fn every_cargo_run_command_in_the_docs_picks_one_program() {
    let packages = packages();
    let root = workspace_root();
    let mut checked = 0;
    let mut problems = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("readable");
        for words in commands(&text) {
            checked += 1;
            if let Some(why) = problem(&words, &packages) {
                let shown = file.strip_prefix(&root).unwrap_or(&file).display();
                problems.push(format!("{shown}: `cargo run {}`: {why}", words.join(" ")));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} commands found: is the parser broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_refuses_what_cargo_refuses() {
    let packages = BTreeMap::from([(
        "demo".to_owned(),
        Package {
            bins: vec![
                Bin {
                    name: "demo".to_owned(),
                    required_features: vec![],
                },
                Bin {
                    name: "demo-paho".to_owned(),
                    required_features: vec!["paho".to_owned()],
                },
            ],
            default_run: None,
        },
    )]);
    let check = |command: &str| problem(&commands(command)[0], &packages);
    assert!(check("cargo run -p demo").is_some(), "no default-run");
    assert!(
        check("cargo run -p demo --bin demo-paho").is_some(),
        "feature"
    );
    assert!(
        check("cargo run -p demo --bin nope").is_some(),
        "no such bin"
    );
    assert!(check("cargo run -p nope").is_some(), "no such package");
    assert!(check("`cargo run -p demo --features paho --bin demo-paho -- --count 3`").is_none());
    assert!(check("cargo run -p demo --bin demo -- --bin demo-paho").is_none());
}
