//! The docs cannot drift from the code: every TOML snippet in README.md and docs/*.md (fenced
//! ```toml blocks) and docs/corelay.example.toml pass `corelay check`, and every default the
//! docs state for a flag is the one `corelay --help` prints.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, as (path relative to the repository, text).
fn markdown() -> Vec<(String, String)> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let rel = p.strip_prefix(repo()).unwrap().display().to_string();
            (rel, text)
        })
        .collect()
}

/// The ```toml blocks of `text`: (line of the opening fence, contents).
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            None if line.trim_start().starts_with("```toml") => open = Some((i + 1, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.push(open.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unclosed ```toml block");
    blocks
}

/// The directory the docs use for the access log. A test machine has none, and `check`
/// rightly refuses a log in a missing directory, so snippets are checked with a writable
/// temporary directory in its place: the one environment-dependent value in them.
const DOCUMENTED_LOG_DIR: &str = "/var/log/corelay/";

/// Runs `corelay check` on `text`; the error lines, if any.
fn check(name: &str, text: &str) -> Result<(), String> {
    let log_dir = TempConfig::new("placeholder", "");
    let dir = format!("{}/", log_dir.path.parent().unwrap().display());
    let cfg = TempConfig::new(name, &text.replace(DOCUMENTED_LOG_DIR, &dir));
    let (st, out, err) = run_corelay_to_exit(&["check", "--config", cfg.path_str()]);
    if st.success() && out == "config ok\n" && err.is_empty() {
        Ok(())
    } else {
        Err(format!("{out}{err}"))
    }
}

#[test]
fn every_toml_snippet_passes_check() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (file, text) in markdown() {
        for (line, block) in toml_blocks(&text) {
            checked += 1;
            if let Err(e) = check("snippet.toml", &block) {
                failures.push(format!(
                    "{file}:{line}: ```toml block fails `corelay check`:\n{e}"
                ));
            }
        }
    }
    let example = std::fs::read_to_string(repo().join("docs/corelay.example.toml")).unwrap();
    if let Err(e) = check("corelay.example.toml", &example) {
        failures.push(format!(
            "docs/corelay.example.toml fails `corelay check`:\n{e}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 3, "only {checked} ```toml blocks found");
}

/// `--flag` -> its `[default: ...]` in `corelay --help`.
fn help_defaults() -> BTreeMap<String, String> {
    let (st, help, _) = run_corelay_to_exit(&["--help"]);
    assert!(st.success());
    // An entry is the flag's line plus its wrapped description, up to the next flag.
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--") {
            let flag = rest.split([' ', ',', '[']).next().unwrap();
            entries.push((format!("--{flag}"), t.to_string()));
        } else if t.starts_with("-") && t.contains(", --") {
            let rest = &t[t.find(", --").unwrap() + 4..];
            let flag = rest.split([' ', ',', '[']).next().unwrap();
            entries.push((format!("--{flag}"), t.to_string()));
        } else if let Some((_, text)) = entries.last_mut() {
            text.push(' ');
            text.push_str(t);
        }
    }
    entries
        .into_iter()
        .filter_map(|(flag, text)| {
            let at = text.rfind("[default: ")?;
            let value = &text[at + "[default: ".len()..];
            Some((flag, value[..value.find(']')?].to_string()))
        })
        .collect()
}

/// Spelling-insensitive form of a value: `64 KiB` = `64KiB`, `32,768` = `32768`, `10 s` = `10s`.
fn normal(v: &str) -> String {
    v.chars()
        .filter(|c| !matches!(c, ' ' | ',' | '"' | '\'' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every default the prose states for a flag: "`--flag` (default V)", "`--flag`, default V",
/// "`--flag` (default: V)", "`--flag` (V by default", and "`--flag` (V)" with V a number, as
/// (flag, V, line).
fn documented_defaults(text: &str) -> Vec<(String, String, usize)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // README's table: | `--flag VALUE` | default | meaning |
        if let Some(row) = line.strip_prefix("| `--") {
            let cols: Vec<&str> = row.split(" | ").collect();
            if cols.len() >= 2 {
                let flag = cols[0].split([' ', '`', '[']).next().unwrap();
                // `0 (off)` is 0; backticks are markup.
                let value = cols[1].split(" (").next().unwrap().trim_matches('`');
                if is_value(value) {
                    found.push((format!("--{flag}"), value.to_string(), i + 1));
                }
            }
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("`--") {
            let after = &rest[at + 1..];
            let Some(close) = after.find('`') else { break };
            let flag = after[..close].split([' ', '=']).next().unwrap().to_string();
            let tail = &after[close + 1..];
            rest = tail;
            let value = if let Some(v) = tail
                .strip_prefix(" (default: ")
                .or_else(|| tail.strip_prefix(" (default "))
            {
                v.split([')', ',', ';']).next()
            } else if let Some(v) = tail.strip_prefix(", default ") {
                v.split([')', ',', ';', '.']).next()
            } else if let Some(v) = tail.strip_prefix(" (") {
                // "(V)" with V a number, or "(V by default...)".
                let inside = v.split(')').next().unwrap_or("");
                match inside.split_once(" by default") {
                    Some((v, _)) => Some(v),
                    None => Some(inside).filter(|v| v.starts_with(|c: char| c.is_ascii_digit())),
                }
            } else {
                None
            };
            if let Some(v) = value.map(str::trim).filter(|v| is_value(v)) {
                found.push((flag, v.to_string(), i + 1));
            }
        }
    }
    found
}

/// A value as the docs write one: a word (`off`), or a number with an optional unit
/// (`1024`, `32,768`, `10 s`, `64 KiB`); not a phrase.
fn is_value(v: &str) -> bool {
    let words: Vec<&str> = v.split(' ').collect();
    match words.as_slice() {
        [one] => !one.is_empty(),
        [n, unit] => {
            n.starts_with(|c: char| c.is_ascii_digit())
                && n.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, ',' | '.' | '_'))
                && unit.len() <= 3
                && unit.chars().all(|c| c.is_ascii_alphabetic())
        }
        _ => false,
    }
}

#[test]
fn documented_defaults_match_help() {
    let defaults = help_defaults();
    assert!(defaults.len() >= 25, "{defaults:?}");
    let mut seen = 0;
    let mut wrong = Vec::new();
    for (file, text) in markdown() {
        for (flag, value, line) in documented_defaults(&text) {
            seen += 1;
            match defaults.get(&flag) {
                // "none": the docs say there is no default, and --help shows none.
                None if value == "none" => {}
                Some(d) if normal(d) == normal(&value) => {}
                Some(d) => wrong.push(format!(
                    "{file}:{line}: `{flag}` documented as {value:?}, but --help says {d:?}"
                )),
                None => wrong.push(format!(
                    "{file}:{line}: `{flag}` has a documented default {value:?} but none in --help"
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // As many as the docs state today (a floor that catches a scanner gone blind).
    assert!(seen >= 40, "only {seen} documented defaults found");
}

/// docs/corelay.example.toml says every key it sets is at its default.
#[test]
fn example_config_keys_are_the_defaults() {
    let defaults = help_defaults();
    let example = std::fs::read_to_string(repo().join("docs/corelay.example.toml")).unwrap();
    let mut compared = 0;
    let mut wrong = Vec::new();
    for (i, line) in example.lines().enumerate() {
        // Top-level keys only: they end at the first table.
        if line.starts_with('[') {
            break;
        }
        if line.starts_with('#') || !line.contains(" = ") {
            continue;
        }
        let (key, value) = line.split_once(" = ").unwrap();
        let flag = format!("--{}", key.trim().replace('_', "-"));
        let value = value.split(" #").next().unwrap().trim();
        if let Some(d) = defaults.get(&flag) {
            compared += 1;
            if normal(d) != normal(value) {
                wrong.push(format!(
                    "docs/corelay.example.toml:{}: {key} = {value}, but the default is {d:?}",
                    i + 1
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(compared >= 25, "only {compared} keys compared");
}

#[test]
fn the_scanners_find_what_they_should() {
    assert_eq!(
        toml_blocks("a\n```toml\nx = 1\n```\n```sh\nno\n```\n```toml\n```\n"),
        [(2, "x = 1\n".to_string()), (8, String::new())]
    );
    assert_eq!(
        documented_defaults(
            "`--a` (default 10 s), `--b`, default 1024, then `--c` (64 KiB) x `--d` (see) \
             and `--e` (default: off), `--f` (4 s by default), `--g` (8 MiB per shard)"
        ),
        [
            ("--a".to_string(), "10 s".to_string(), 1),
            ("--b".to_string(), "1024".to_string(), 1),
            ("--c".to_string(), "64 KiB".to_string(), 1),
            ("--e".to_string(), "off".to_string(), 1),
            ("--f".to_string(), "4 s".to_string(), 1),
        ]
    );
    assert_eq!(
        documented_defaults(
            "| `--x N` | 0 (off) | m |\n| `--y[=BOOL]` | `auto` | m |\n| `--z` | all CPUs | m |"
        ),
        [
            ("--x".to_string(), "0".to_string(), 1),
            ("--y".to_string(), "auto".to_string(), 2),
        ]
    );
    assert_eq!(normal("32,768"), normal("32768"));
    assert_eq!(normal("\"64KiB\""), normal("64 KiB"));
}
