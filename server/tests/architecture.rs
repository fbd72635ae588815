//! The layers of docs/architecture.md, checked: every `crate::<module>` path in chatd's
//! non-test source names a module of a strictly lower layer than the module it is
//! written in, so dependencies run one way and no two top-level modules form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. A module may use only modules of an earlier row.
const LAYERS: &[&[&str]] = &[
    &["model", "config"],
    &["metrics"],
    &["redis_breaker", "slots", "telemetry"],
    &["store"],
    &["error"],
    &["auth", "ratelimit", "media", "push"],
    &["domain"],
    &["realtime"],
    &["http"],
    &["app", "admin"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/domain/service/send.rs` -> `domain`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The modules named by `crate::<name>` in code (comments and `#[cfg(test)] mod` blocks
/// at the end of a file are not code the server runs).
fn used_modules(text: &str) -> BTreeSet<String> {
    let code = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut used = BTreeSet::new();
    for line in code.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

/// Every (from, to) use between different top-level modules.
fn module_uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // The crate roots wire everything; unit-test files compose whole worlds.
        if matches!(module.as_str(), "lib" | "main") || name == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        for used in used_modules(&text) {
            if used != module {
                uses.entry(module.clone()).or_default().insert(used);
            }
        }
    }
    uses
}

#[test]
fn every_module_has_a_layer() {
    let uses = module_uses();
    let mut unknown = BTreeSet::new();
    for (from, tos) in &uses {
        for m in std::iter::once(from).chain(tos) {
            if layer_of(m).is_none() {
                unknown.insert(m.clone());
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS (and docs/architecture.md): {unknown:?}"
    );
}

#[test]
fn dependencies_run_one_way() {
    let mut wrong = Vec::new();
    for (from, tos) in module_uses() {
        let Some(f) = layer_of(&from) else { continue };
        for to in tos {
            if layer_of(&to).is_some_and(|t| t >= f) {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the layers of docs/architecture.md: {wrong:?}"
    );
}

#[test]
fn the_scanner_sees_uses_and_skips_comments_and_tests() {
    let text = "use crate::store::X;\n// crate::app in a comment\nfn f() { crate::metrics::M.inc(); }\n#[cfg(test)]\nmod tests { use crate::http::Y; }\n";
    let used = used_modules(text);
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        vec!["metrics".to_string(), "store".to_string()]
    );
}
