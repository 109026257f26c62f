//! Checks of the source tree's shape that the compiler cannot make: the
//! lifecycle states are spelled only in [`crate::domain::lifecycle`] (and
//! the job states in [`crate::domain::job`]), the
//! top-level modules import each other without cycles, the lower layers
//! never import the upper ones, and `docs/architecture.md` maps every
//! source file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::domain::job::JobStatus;
use crate::domain::lifecycle::{
    ClipStatus, EventStatus, ExportStatus, FootageStatus, LeaseEnd, PosterStatus, RouteName,
    SessionStatus, TaskStatus,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, relative to the repository root, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(
                    path.strip_prefix(root())
                        .expect("under the root")
                        .to_path_buf(),
                );
            }
        }
    }
    out.sort();
    out
}

/// The lines of a file that are not tests or comments: what ships.
fn shipped_lines(source: &str) -> impl Iterator<Item = (usize, &str)> {
    source
        .lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

#[test]
fn no_state_is_spelled_outside_the_lifecycle_mapping() {
    let mut states: BTreeSet<&str> = BTreeSet::new();
    states.extend(TaskStatus::ALL.iter().map(|s| s.as_str()));
    states.extend(SessionStatus::ALL.iter().map(|s| s.as_str()));
    states.extend(EventStatus::ALL.iter().map(|s| s.as_str()));
    states.extend(RouteName::ALL.iter().map(|s| s.as_str()));
    states.extend(ClipStatus::ALL.iter().map(|s| s.as_str()));
    states.extend(FootageStatus::ALL.iter().map(|s| s.as_str()));
    states.extend(PosterStatus::ALL.iter().map(|s| s.as_str()));
    states.extend(LeaseEnd::ALL.iter().map(|s| s.as_str()));
    states.extend(ExportStatus::ALL.iter().map(|s| s.as_str()));
    states.extend(JobStatus::ALL.iter().map(|s| s.as_str()));
    let mappings = [
        Path::new("server/domain/lifecycle.rs"),
        Path::new("server/domain/job.rs"),
    ];
    let mut found = Vec::new();
    for file in rust_files(&root().join("server")) {
        if mappings.contains(&file.as_path()) {
            continue;
        }
        let source = std::fs::read_to_string(root().join(&file)).expect("readable source");
        for (n, line) in shipped_lines(&source) {
            // A state in SQL text is a quoted literal: 'ready'; in Rust, a
            // column value compared with its spelling: == "ready".
            for state in &states {
                let spelled = [
                    format!("'{state}'"),
                    format!("== \"{state}\""),
                    format!("!= \"{state}\""),
                    format!("Some(\"{state}\")"),
                ];
                if let Some(s) = spelled.iter().find(|s| line.contains(s.as_str())) {
                    found.push(format!("{}:{n}: {s}", file.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "states spelled outside domain::lifecycle (use the enums):\n{}",
        found.join("\n")
    );
}

/// The top-level module a `crate::x` path names, if `x` is one.
fn top_level_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(root().join("server/lib.rs")).expect("lib.rs");
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .chain(lib.lines().filter_map(|l| l.trim().strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect()
}

/// Which top-level modules each top-level module imports (`crate::x…`).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = top_level_modules();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in &modules {
        let dir = root().join("server").join(module);
        let files = if dir.is_dir() {
            rust_files(&dir)
        } else {
            vec![PathBuf::from(format!("server/{module}.rs"))]
        };
        let uses = graph.entry(module.clone()).or_default();
        for file in files {
            let Ok(source) = std::fs::read_to_string(root().join(&file)) else {
                continue;
            };
            for (_, line) in shipped_lines(&source) {
                let mut rest = line;
                while let Some(at) = rest.find("crate::") {
                    rest = &rest[at + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if modules.contains(&name) && &name != module {
                        uses.insert(name);
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let graph = import_graph();
    // Depth-first search; a module met again while still on the path closes
    // a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            cycles.push(cycle.join(" -> "));
            return;
        }
        if !done.insert(m.to_string()) {
            return;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done, cycles);
        }
        path.pop();
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// What each lower layer must never import: the layers above it, and for
/// storage also the request-level error, metrics and blobs (docs/architecture.md,
/// "Layers").
const FORBIDDEN_IMPORTS: &[(&str, &[&str])] = &[
    (
        "db",
        &[
            "api", "web", "http", "review", "jobs", "login", "export", "error", "metrics",
            "storage", "demo", "bench",
        ],
    ),
    (
        "review",
        &["api", "web", "http", "jobs", "login", "demo", "bench"],
    ),
    ("http", &["api", "web", "review", "jobs"]),
    // The simulator runs the domain's rules and nothing else: no database,
    // no HTTP, no clock.
    (
        "sim",
        &[
            "api", "web", "http", "review", "jobs", "login", "db", "storage", "clock", "metrics",
            "demo", "bench", "export", "error",
        ],
    ),
    ("api", &["web"]),
    ("web", &["api"]),
];

#[test]
fn lower_layers_never_import_upper_ones() {
    let graph = import_graph();
    let mut found = Vec::new();
    for (module, forbidden) in FORBIDDEN_IMPORTS {
        for used in graph.get(*module).into_iter().flatten() {
            if forbidden.contains(&used.as_str()) {
                found.push(format!("{module} imports {used}"));
            }
        }
    }
    assert!(found.is_empty(), "layer violations:\n{}", found.join("\n"));
}

#[test]
fn storage_does_row_io_only() {
    // db/ runs statements in the transactions it is given: it opens none
    // (`Db::begin` is defined in db/mod.rs, called from review/ and jobs/),
    // and it defines no wire types: those live with the API.
    let mut found = Vec::new();
    for file in rust_files(&root().join("server/db")) {
        let source = std::fs::read_to_string(root().join(&file)).expect("readable source");
        for (n, line) in shipped_lines(&source) {
            let opens = (line.contains(".begin()") || line.contains(".begin_snapshot()"))
                && !file.ends_with("mod.rs");
            if opens || line.contains("utoipa") || line.contains("ToSchema") {
                found.push(format!("{}:{n}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "db/ must stay row I/O:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_module_map_names_every_source_file_and_no_other() {
    let doc =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("architecture.md");
    let section = doc
        .split("## Module map")
        .nth(1)
        .expect("docs/architecture.md has a \"## Module map\" section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the module map is a code block");
    let mapped: BTreeSet<PathBuf> = block
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.ends_with(".rs"))
        .map(PathBuf::from)
        .collect();
    let files: BTreeSet<PathBuf> = rust_files(&root().join("server")).into_iter().collect();
    let unmapped: Vec<_> = files.difference(&mapped).collect();
    let stale: Vec<_> = mapped.difference(&files).collect();
    assert!(
        unmapped.is_empty() && stale.is_empty(),
        "docs/architecture.md module map: missing {unmapped:?}, no longer in the tree {stale:?}"
    );
}
