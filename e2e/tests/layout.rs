//! The workspace's layout rules, checked on the source tree so that they
//! hold after every change, not just after the redesign that set them:
//!
//! * no crate depends on a binary crate (one with `src/main.rs`): binaries
//!   meet only through the library crates and Redis;
//! * every `main.rs` stays thin (at most 60 lines): the work lives in a
//!   library where tests can call it;
//! * no source file grows past 1,000 lines;
//! * no two modules of one crate reach each other through `crate::`/`super::`
//!   paths (an import loop), parent and child modules aside.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ubackup_e2e::repo_root;

const MAIN_MAX_LINES: usize = 60;
const FILE_MAX_LINES: usize = 1000;

/// Known, still-open breaches, listed so the check stays strict for
/// everything else: remove an entry when its file is split (and the check
/// fails if an entry is no longer needed).
const OPEN_LONG_FILES: &[&str] = &[];

/// Every workspace member directory (a folder with a Cargo.toml and src/).
fn members() -> Vec<PathBuf> {
    let root = repo_root();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file() && p.join("src").is_dir())
        .collect();
    out.sort();
    out
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .skip_while(|l| l.trim() != "[package]")
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
        })
        .expect("a [package] name")
}

/// Names of the dependencies (normal, dev, build) a manifest declares.
fn dependency_names(manifest: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_deps = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line.ends_with("dependencies]");
            continue;
        }
        if in_deps {
            if let Some((k, _)) = line.split_once('=') {
                let name = k.trim().trim_end_matches(".workspace").trim();
                if !name.is_empty() && !name.starts_with('#') {
                    out.insert(name.to_string());
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_crate_depends_on_a_binary_crate() {
    let mut binaries = BTreeSet::new();
    let mut manifests = BTreeMap::new();
    for m in members() {
        let text = std::fs::read_to_string(m.join("Cargo.toml")).unwrap();
        let name = package_name(&text);
        if m.join("src/main.rs").is_file() {
            binaries.insert(name.clone());
        }
        manifests.insert(name, text);
    }
    assert!(binaries.contains("ubackup-server"), "{binaries:?}");
    let mut bad = Vec::new();
    for (name, text) in &manifests {
        for dep in dependency_names(text) {
            if binaries.contains(&dep) && &dep != name {
                bad.push(format!("{name} depends on the binary crate {dep}"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn binaries_are_thin_and_files_are_small() {
    let mut bad = Vec::new();
    for m in members() {
        let mut files = Vec::new();
        for sub in ["src", "tests", "benches"] {
            rust_files(&m.join(sub), &mut files);
        }
        for f in files {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            let rel = f.strip_prefix(repo_root()).unwrap().display().to_string();
            if n <= FILE_MAX_LINES && OPEN_LONG_FILES.contains(&rel.as_str()) {
                bad.push(format!(
                    "{rel}: {n} lines now: drop it from OPEN_LONG_FILES"
                ));
            }
            if rel.ends_with("src/main.rs") && n > MAIN_MAX_LINES {
                bad.push(format!(
                    "{rel}: {n} lines (a main.rs keeps to {MAIN_MAX_LINES})"
                ));
            }
            if n > FILE_MAX_LINES && !OPEN_LONG_FILES.contains(&rel.as_str()) {
                bad.push(format!("{rel}: {n} lines (at most {FILE_MAX_LINES})"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The module path of a file under `src/` (`a/b.rs` and `a/b/mod.rs` are
/// `a::b`; `lib.rs`/`main.rs` are the root, the empty path).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Source text without comments and without a trailing `mod tests` block.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn idents(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The modules of one crate each module refers to (`crate::a::b…`,
/// `super::…`, `crate::{a, b}`), resolved to the longest module prefix;
/// references between a module and its ancestors are left out.
fn module_edges(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // src/bin/* are separate crates
    files.retain(|f| !f.strip_prefix(src).unwrap().starts_with("bin"));
    let texts: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| {
            let t = std::fs::read_to_string(f).unwrap();
            (module_of(f.strip_prefix(src).unwrap()), code_of(&t))
        })
        .collect();
    let mods: BTreeSet<Vec<String>> = texts.keys().cloned().collect();
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|k| path[..k].to_vec())
            .find(|p| mods.contains(p))
    };
    let mut edges = BTreeMap::new();
    for (m, code) in &texts {
        let mut to = BTreeSet::new();
        for (i, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[i..];
            let mut path: Vec<String> = if rest.starts_with("super") {
                m[..m.len().saturating_sub(1)].to_vec()
            } else {
                Vec::new()
            };
            let after = &rest[rest.find("::").unwrap() + 2..];
            if let Some(group) = after.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or("");
                for item in group.split(',') {
                    let mut p = path.clone();
                    p.extend(idents(item.split(" as ").next().unwrap()).map(String::from));
                    to.extend(resolve(&p));
                }
                continue;
            }
            let seg: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            path.extend(seg.split("::").filter(|s| !s.is_empty()).map(String::from));
            to.extend(resolve(&path));
        }
        to.retain(|t| !(t.starts_with(m) || m.starts_with(t)));
        edges.insert(m.clone(), to);
    }
    edges
}

fn reachable(
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    from: &[String],
) -> BTreeSet<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_vec()];
    while let Some(x) = stack.pop() {
        for y in edges.get(&x).into_iter().flatten() {
            if seen.insert(y.clone()) {
                stack.push(y.clone());
            }
        }
    }
    seen
}

#[test]
fn no_import_loops_between_modules() {
    let mut loops = Vec::new();
    for m in members() {
        let edges = module_edges(&m.join("src"));
        let crate_name = m.file_name().unwrap().to_string_lossy().into_owned();
        for a in edges.keys() {
            for b in reachable(&edges, a) {
                if a < &b && reachable(&edges, &b).contains(a) {
                    loops.push(format!(
                        "{crate_name}: {} <-> {}",
                        a.join("::"),
                        b.join("::")
                    ));
                }
            }
        }
    }
    assert!(
        loops.is_empty(),
        "modules that reach each other:\n{}",
        loops.join("\n")
    );
}

/// The checker itself: a two-module loop is found, a parent/child pair is not.
#[test]
fn the_loop_check_finds_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("p")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod p;").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::f;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use crate::{a::g, p};\n").unwrap();
    std::fs::write(src.join("p/mod.rs"), "mod c; use self::c::x;\n").unwrap();
    std::fs::write(src.join("p/c.rs"), "use super::Y; // crate::a\n").unwrap();
    let edges = module_edges(src);
    let a = vec!["a".to_string()];
    let b = vec!["b".to_string()];
    let p = vec!["p".to_string()];
    let c = vec!["p".to_string(), "c".to_string()];
    assert!(reachable(&edges, &a).contains(&b) && reachable(&edges, &b).contains(&a));
    assert!(
        !reachable(&edges, &c).contains(&p),
        "child -> parent is not a loop"
    );
    assert!(
        !reachable(&edges, &c).contains(&a),
        "comments are not references"
    );
}
