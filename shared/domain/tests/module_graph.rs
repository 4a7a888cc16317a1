//! The domain's modules import each other without a cycle (issue 15).
//!
//! Granularity: one node per top-level module of `src/` (`war`, `ports`, ...); a module's
//! children (`realtime::memory`, `war::fixtures`) fold into it, and `services` — the service
//! layer — is one node, so cycles among the services themselves are allowed but nothing below
//! may reach up into them. Edges are the `crate::<module>` paths (in `use` items and inline
//! paths) of production code: comments and `#[cfg(test)]` items are not counted, test-only
//! imports do not shape the layering. `super::x` inside `services/` stays inside the node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level module a file under `src/` belongs to (`None` for `lib.rs`).
fn node_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

/// The source without comments and without the items under `#[cfg(test)]`.
fn production_code(source: &str) -> String {
    let mut out = String::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the item that follows: up to its `;` or its balanced braces.
            let mut depth = 0i32;
            let mut opened = false;
            for next in lines.by_ref() {
                for c in next.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if (opened && depth == 0) || (!opened && next.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The modules named by `crate::<module>` paths, including grouped `use crate::{a::X, b}`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn domain_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph = Graph::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        // A `tests.rs` beside a module is its `#[cfg(test)] mod tests;`.
        if relative.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(node) = node_of(relative) else {
            continue;
        };
        let source = std::fs::read_to_string(file).expect("read source");
        let edges = graph.entry(node.clone()).or_default();
        edges.extend(referenced_modules(&production_code(&source)));
        edges.remove(&node);
    }
    let nodes: BTreeSet<String> = graph.keys().cloned().collect();
    for edges in graph.values_mut() {
        // Re-exported crate roots (`crate::DomainError`, `crate::async_trait`) are not modules.
        edges.retain(|m| nodes.contains(m));
    }
    graph
}

/// One cycle of the graph, as the path `a -> b -> ... -> a`, if there is any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path
                    .iter()
                    .position(|n| n == node)
                    .expect("open is on path");
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph
            .entry((*from).to_owned())
            .or_default()
            .insert((*to).to_owned());
        graph.entry((*to).to_owned()).or_default();
    }
    graph
}

#[test]
fn the_domain_modules_import_each_other_without_a_cycle() {
    let graph = domain_graph();
    // The scan sees the modules it must: an empty graph would pass for the wrong reason.
    for expected in ["ports", "war", "error", "services", "scoring", "ledger"] {
        assert!(
            graph.contains_key(expected),
            "module {expected} not scanned"
        );
    }
    assert!(graph["ports"].contains("war"), "ports -> war edge not seen");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle in shared/domain: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_names_a_cycle_and_accepts_a_layering() {
    let layered = graph_of(&[("ports", "war"), ("war", "error"), ("ports", "error")]);
    assert_eq!(find_cycle(&layered), None);
    let cyclic = graph_of(&[
        ("ports", "war"),
        ("war", "ledger"),
        ("ledger", "ports"),
        ("error", "ids"),
    ]);
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec![
            "ledger".to_owned(),
            "ports".to_owned(),
            "war".to_owned(),
            "ledger".to_owned()
        ])
    );
    assert_eq!(
        find_cycle(&graph_of(&[("a", "a")])),
        Some(vec!["a".to_owned(), "a".to_owned()])
    );
}

#[test]
fn the_scan_reads_use_paths_and_skips_tests_and_comments() {
    let source = "use crate::war::War;\nuse crate::{ledger::Void, ids};\n// crate::memory\n\
                  fn f() { crate::retry::optimistic(); }\n#[cfg(test)]\nmod tests {\n    use crate::testkit;\n}\n";
    let found = referenced_modules(&production_code(source));
    let expected: BTreeSet<String> = ["war", "ledger", "ids", "retry"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(found, expected);
}
