//! Every s3fan function in the region, found by the settings deploy gives
//! each (its source and destination, see `crate::settings`). One paginated
//! ListFunctions gives what a re-run must remove (destinations no longer
//! listed) and the fan-out graph that a new deploy must not close into a loop.

use std::collections::{BTreeMap, BTreeSet};

use super::{Context, DeployError, aws_failure};
use crate::settings::FunctionSettings;

/// One deployed edge of some fan-out: a function copying source -> destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edge {
    pub function: String,
    pub source: String,
    pub destination: String,
    /// Everything else the last deploy told the function.
    pub settings: FunctionSettings,
    pub code_sha256: String,
    pub last_modified: String,
}

impl Edge {
    /// A destination of which only the role was found (its function is
    /// gone, or was never made): its function's name is the one deploy
    /// gives, and nothing else is known.
    pub fn role_only(source: &str, destination: &str) -> Edge {
        Edge {
            function: super::names::function_name(destination),
            source: source.to_owned(),
            destination: destination.to_owned(),
            ..Edge::default()
        }
    }
}

pub async fn list(ctx: &Context) -> Result<Vec<Edge>, DeployError> {
    let mut edges = Vec::new();
    let mut pages = ctx.lambda.list_functions().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| aws_failure("cannot list Lambda functions", &err))?;
        for function in page.functions() {
            let Some(variables) = function.environment().and_then(|e| e.variables()) else {
                continue;
            };
            let settings = FunctionSettings::from_env(variables);
            if let (Some(source), Some(destination)) =
                (settings.source.clone(), settings.destination.clone())
            {
                edges.push(Edge {
                    function: function.function_name().unwrap_or_default().to_owned(),
                    source,
                    destination,
                    settings,
                    code_sha256: function.code_sha256().unwrap_or_default().to_owned(),
                    last_modified: function.last_modified().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    edges.sort_by(|a, b| a.destination.cmp(&b.destination));
    Ok(edges)
}

/// A chain of fan-outs that would lead from `source` back to itself once
/// `source -> destinations` is deployed, e.g. `[a, b, c, a]`.
pub fn find_loop(existing: &[Edge], source: &str, destinations: &[String]) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for edge in existing.iter().filter(|e| e.source != source) {
        graph
            .entry(&edge.source)
            .or_default()
            .insert(&edge.destination);
    }
    graph
        .entry(source)
        .or_default()
        .extend(destinations.iter().map(String::as_str));
    // Depth-first search for a path back to `source`.
    let mut stack: Vec<Vec<&str>> = vec![vec![source]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path[path.len() - 1];
        for next in graph.get(last).into_iter().flatten() {
            if *next == source {
                let mut cycle: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                cycle.push(source.to_owned());
                return Some(cycle);
            }
            if seen.insert(*next) {
                let mut longer = path.clone();
                longer.push(next);
                stack.push(longer);
            }
        }
    }
    None
}

/// The edges of one fan-out, among every s3fan function of the region.
pub fn of_source<'a>(edges: &'a [Edge], source: &str) -> Vec<&'a Edge> {
    edges.iter().filter(|e| e.source == source).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(source: &str, destination: &str) -> Edge {
        Edge {
            function: destination.into(),
            source: source.into(),
            destination: destination.into(),
            ..Edge::default()
        }
    }

    fn dests(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_a_direct_loop() {
        let existing = [edge("b", "a")];
        assert_eq!(
            find_loop(&existing, "a", &dests(&["b"])),
            Some(dests(&["a", "b", "a"]))
        );
    }

    #[test]
    fn finds_a_longer_loop() {
        let existing = [edge("b", "c"), edge("c", "a"), edge("x", "y")];
        assert_eq!(
            find_loop(&existing, "a", &dests(&["z", "b"])),
            Some(dests(&["a", "b", "c", "a"]))
        );
    }

    #[test]
    fn chains_without_a_cycle_are_fine() {
        let existing = [edge("b", "c"), edge("c", "d"), edge("a", "old")];
        assert_eq!(find_loop(&existing, "a", &dests(&["b"])), None);
        // a's own current edges are replaced by the new list, not added to it.
        let existing = [edge("a", "b"), edge("b", "c")];
        assert_eq!(find_loop(&existing, "a", &dests(&["c"])), None);
    }
}
