//! The code names that docs/lifecycle.md and docs/architecture.md cite exist in the code, so a
//! rename or a removal that leaves the docs behind fails here.
//!
//! The convention (stated at the top of docs/lifecycle.md), inside backticks:
//!
//! | written                       | checked                                                   |
//! |-------------------------------|-----------------------------------------------------------|
//! | `path/file.rs`                | the file exists (paths are from the repository root)      |
//! | `path/dir/`                   | the directory exists                                      |
//! | `path/file.rs::name`          | `name` is defined in that file (fn, type, const, ...)     |
//! | `path/file.rs::Type::method`  | `method` is defined in that file, which has `Type`        |
//! | `path/file.rs::{a, B::c}`     | each of them, as above                                    |
//! | `name()`                      | a `fn name` in some .rs file of the repository            |
//! | `Type::method()`              | a `fn method` in a file that defines or implements `Type` |
//! | `module::function()`          | a `fn function` in `module.rs` or `module/mod.rs`         |
//!
//! A leading crate name (`shards::relay()`, `corelay::...`) is not a module. Anything else in
//! backticks (flags, metric names, field names, and names from other crates, which the docs
//! write without parentheses) is not checked. Fenced code blocks are skipped.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Where names are looked up: every .rs file below these (tests are not cited).
const SOURCE_DIRS: &[&str] = &["src", "shards/src", "bench/src"];

/// Qualifiers that name a crate, not a module.
const CRATES: &[&str] = &["crate", "self", "super", "corelay", "shards"];

struct Source {
    /// From the repository root, with `/`.
    path: String,
    /// The module the file is: its stem, or its directory's name for `mod.rs`; `None` for a
    /// crate root.
    module: Option<String>,
    text: String,
}

fn load_sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<Source>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(ROOT)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let stem = p.file_stem().unwrap().to_string_lossy().to_string();
                let module = match stem.as_str() {
                    "lib" | "main" => None,
                    "mod" => p
                        .parent()
                        .and_then(|d| d.file_name())
                        .map(|d| d.to_string_lossy().to_string()),
                    _ => Some(stem),
                };
                let text = std::fs::read_to_string(&p).unwrap();
                out.push(Source {
                    path: rel,
                    module,
                    text,
                });
            }
        }
    }
    let mut out = Vec::new();
    for d in SOURCE_DIRS {
        walk(&Path::new(ROOT).join(d), &mut out);
    }
    assert!(out.len() > 20, "found only {} source files", out.len());
    out
}

#[derive(Debug, PartialEq)]
enum Cite {
    Dir(String),
    File(String),
    /// A file and the names (each a `::` path of one or two segments) defined in it.
    InFile(String, Vec<Vec<String>>),
    /// A function: `name`, `Type::name` or `module::name` (longer paths are allowed).
    Func(Vec<String>),
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f == '_' || f.is_ascii_alphabetic())
        && c.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn is_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
}

fn name_path(s: &str) -> Option<Vec<String>> {
    let segs: Vec<String> = s.split("::").map(|p| p.trim().to_string()).collect();
    segs.iter().all(|p| is_ident(p)).then_some(segs)
}

/// What a code span cites, if it follows the convention.
fn classify(span: &str) -> Option<Cite> {
    if let Some(f) = span.strip_suffix("()") {
        return name_path(f).map(Cite::Func);
    }
    if let Some(at) = span.find(".rs") {
        let (file, rest) = span.split_at(at + 3);
        if !is_path(file) {
            return None;
        }
        if rest.is_empty() {
            return Some(Cite::File(file.to_string()));
        }
        let rest = rest.strip_prefix("::")?;
        let names = match rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Some(list) => list.split(',').map(name_path).collect::<Option<Vec<_>>>()?,
            None => vec![name_path(rest)?],
        };
        return Some(Cite::InFile(file.to_string(), names));
    }
    if span.ends_with('/') && span.contains('/') && is_path(span) && !span.starts_with('/') {
        return Some(Cite::Dir(span.to_string()));
    }
    None
}

/// The code spans of a Markdown text with the line each starts on, outside fenced blocks.
/// A span may continue on the next line (Markdown joins them with a space), not across a
/// blank line.
fn spans(doc: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut open: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            open = None;
            continue;
        }
        if fenced {
            continue;
        }
        if line.trim().is_empty() {
            open = None;
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find('`') {
            match open.take() {
                Some((l, mut s)) => {
                    s.push_str(&rest[..at]);
                    out.push((l, s.split_whitespace().collect::<Vec<_>>().join(" ")));
                }
                None => open = Some((i + 1, String::new())),
            }
            rest = &rest[at + 1..];
        }
        if let Some((_, s)) = open.as_mut() {
            s.push_str(rest);
            s.push(' ');
        }
    }
    out
}

/// Whether `text` has `word` as a whole word at `at`.
fn word_at(text: &str, at: usize, word: &str) -> bool {
    let before = text[..at].chars().next_back();
    let after = text[at + word.len()..].chars().next();
    !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char)
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word)
        .any(|(at, _)| word_at(text, at, word))
}

/// `keyword name` as whole words somewhere in `text`.
fn has_item(text: &str, keyword: &str, name: &str) -> bool {
    let needle = format!("{keyword} {name}");
    text.match_indices(&needle)
        .any(|(at, _)| word_at(text, at, &needle))
}

fn defines_fn(text: &str, name: &str) -> bool {
    has_item(text, "fn", name)
}

fn defines_type(text: &str, name: &str) -> bool {
    ["struct", "enum", "trait", "type", "union"]
        .iter()
        .any(|k| has_item(text, k, name))
}

fn defines_item(text: &str, name: &str) -> bool {
    defines_fn(text, name)
        || defines_type(text, name)
        || ["const", "static", "mod"]
            .iter()
            .any(|k| has_item(text, k, name))
}

/// The file defines `ty`, or has an `impl` line that names it.
fn has_type(text: &str, ty: &str) -> bool {
    defines_type(text, ty)
        || text
            .lines()
            .map(str::trim_start)
            .any(|l| l.starts_with("impl") && has_word(l, ty))
}

/// `variant` is a line of its own in the file (`Variant,`, `Variant {`, `Variant(..)`,
/// `Variant = 1,`), and `ty` is an enum defined there.
fn defines_variant(text: &str, ty: &str, variant: &str) -> bool {
    has_item(text, "enum", ty)
        && text.lines().map(str::trim_start).any(|l| {
            l.strip_prefix(variant)
                .is_some_and(|r| r.is_empty() || r.starts_with([',', ' ', '(', '{']))
        })
}

fn is_type_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
}

/// What is wrong with one citation, if anything.
fn check_cite(cite: &Cite, sources: &[Source]) -> Option<String> {
    match cite {
        Cite::Dir(d) => (!Path::new(ROOT).join(d).is_dir()).then(|| "no such directory".into()),
        Cite::File(f) => (!Path::new(ROOT).join(f).is_file()).then(|| "no such file".into()),
        Cite::InFile(f, names) => {
            if !Path::new(ROOT).join(f).is_file() {
                return Some("no such file".into());
            }
            let text = match sources.iter().find(|s| &s.path == f) {
                Some(s) => s.text.clone(),
                None => std::fs::read_to_string(Path::new(ROOT).join(f)).unwrap(),
            };
            let module = Path::new(f)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let missing: Vec<String> = names
                .iter()
                .filter(|segs| {
                    let name = segs.last().unwrap();
                    let qual = segs.len().checked_sub(2).map(|i| &segs[i]);
                    let found = match qual {
                        None => defines_item(&text, name),
                        Some(q) if is_type_name(q) => {
                            (defines_item(&text, name) && has_type(&text, q))
                                || defines_variant(&text, q, name)
                        }
                        Some(q) => defines_item(&text, name) && *q == module,
                    };
                    !found
                })
                .map(|segs| segs.join("::"))
                .collect();
            (!missing.is_empty()).then(|| format!("not defined in {f}: {}", missing.join(", ")))
        }
        Cite::Func(segs) => {
            let name = segs.last().unwrap();
            let qual = segs.len().checked_sub(2).map(|i| segs[i].as_str());
            let found = sources.iter().any(|s| {
                defines_fn(&s.text, name)
                    && match qual {
                        None => true,
                        Some(q) if CRATES.contains(&q) => true,
                        Some(q) if is_type_name(q) => has_type(&s.text, q),
                        Some(q) => s.module.as_deref() == Some(q),
                    }
            });
            (!found).then(|| match qual {
                None => format!("no `fn {name}` in {}", SOURCE_DIRS.join(", ")),
                Some(q) if is_type_name(q) => {
                    format!("no `fn {name}` in a file that defines or implements `{q}`")
                }
                Some(q) => format!("no `fn {name}` in module `{q}`"),
            })
        }
    }
}

/// Checks every citation of `doc`; returns the errors (`name:LINE: `span`: what`) and the
/// citations it checked.
fn check_doc(name: &str, doc: &str, sources: &[Source]) -> (Vec<String>, Vec<Cite>) {
    let mut errors = Vec::new();
    let mut cites = Vec::new();
    for (line, span) in spans(doc) {
        let Some(cite) = classify(&span) else {
            continue;
        };
        if let Some(e) = check_cite(&cite, sources) {
            errors.push(format!("{name}:{line}: `{span}`: {e}"));
        }
        cites.push(cite);
    }
    (errors, cites)
}

fn read_doc(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_doc_names(name: &str, min_files: usize, min_names: usize) {
    let sources = load_sources();
    let (errors, cites) = check_doc(name, &read_doc(name), &sources);
    assert!(
        errors.is_empty(),
        "{} citation(s) in {name} name nothing in the code (see the convention at the top of \
         tests/docs_names.rs):\n{}",
        errors.len(),
        errors.join("\n")
    );
    // A page that stopped following the convention would pass vacuously.
    let files = cites
        .iter()
        .filter(|c| matches!(c, Cite::File(_) | Cite::InFile(..)))
        .count();
    let names = cites
        .iter()
        .map(|c| match c {
            Cite::InFile(_, n) => n.len(),
            Cite::Func(_) => 1,
            _ => 0,
        })
        .sum::<usize>();
    assert!(
        files >= min_files && names >= min_names,
        "{name} cites only {files} files and {names} names; expected at least {min_files} and \
         {min_names}"
    );
}

#[test]
fn lifecycle_names_exist() {
    assert_doc_names("docs/lifecycle.md", 30, 100);
}

#[test]
fn architecture_names_exist() {
    assert_doc_names("docs/architecture.md", 20, 30);
}

#[test]
fn spans_and_citations_are_read_by_the_convention() {
    let doc = "a `src/lib.rs` b `x.rs::{f, T::g}` `c()`, `m::T::h()` and `--flag`\n\
               a span `Peer::fill_until()` and `across\nlines`\n\n```\n`fenced()`\n```\n\
               `src/proxy/` `shards::relay` `glommio::spawn_local` `io_uring_enter(a, b)`";
    let got: Vec<(usize, Option<Cite>)> = spans(doc)
        .into_iter()
        .map(|(l, s)| (l, classify(&s)))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            (1, Some(Cite::File("src/lib.rs".into()))),
            (
                1,
                Some(Cite::InFile("x.rs".into(), vec![s(&["f"]), s(&["T", "g"])]))
            ),
            (1, Some(Cite::Func(s(&["c"])))),
            (1, Some(Cite::Func(s(&["m", "T", "h"])))),
            (1, None),
            (2, Some(Cite::Func(s(&["Peer", "fill_until"])))),
            (2, None),
            (8, Some(Cite::Dir("src/proxy/".into()))),
            (8, None),
            (8, None),
            (8, None),
        ]
    );
}

/// The check is not vacuous: names that do not exist, or not where cited, are reported, and
/// removing a cited function from the code makes the lifecycle page fail.
#[test]
fn missing_names_are_reported() {
    let sources = load_sources();
    let good = "`src/proxy/client.rs::serve` `src/proxy/pool.rs::Pool::take` `Conn::is_quiet()` \
                `client::read_head()` `shards::relay()` `src/access_log/` \
                `shards/src/engine/bufs.rs::Group::Head` `parse_request()`";
    let (errors, cites) = check_doc("good", good, &sources);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(cites.len(), 8);

    let bad = [
        "`src/proxy/no_such_file.rs`",
        "`src/no_such_dir/`",
        "`src/proxy/client.rs::no_such_function`",
        // Defined, but in another file than the one cited.
        "`src/proxy/client.rs::transfer`",
        "`no_such_function_anywhere()`",
        "`Conn::no_such_method()`",
        // `exchange` is defined in exchange.rs; client.rs only imports it.
        "`client::exchange()`",
        // `take` exists, but not in an impl of this type.
        "`NoSuchType::take()`",
        "`src/proxy/pool.rs::{take, no_such_either}`",
    ];
    for b in bad {
        let (errors, cites) = check_doc("bad", b, &sources);
        assert_eq!(cites.len(), 1, "{b} was not read as a citation");
        assert_eq!(errors.len(), 1, "{b} was not reported: {errors:?}");
    }

    let name = "docs/lifecycle.md";
    let doc = read_doc(name);
    assert!(doc.contains("`shards/src/shard.rs::accept_loop`"));
    let renamed: Vec<Source> = load_sources()
        .into_iter()
        .map(|mut s| {
            if s.path == "shards/src/shard.rs" {
                s.text = s.text.replace("fn accept_loop", "fn accept_loop_renamed");
            }
            s
        })
        .collect();
    let (errors, _) = check_doc(name, &doc, &renamed);
    assert!(
        errors.iter().any(|e| e.contains("accept_loop")),
        "removing accept_loop went unnoticed: {errors:?}"
    );
}
