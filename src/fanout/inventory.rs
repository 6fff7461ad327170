//! Every s3fan function in the region, found by the settings deploy gives
//! each (its source and destination, see `crate::settings`). One paginated
//! ListFunctions gives what a re-run must remove (destinations no longer
//! listed) and the fan-out graph that a new deploy must not close into a loop.

use std::collections::{BTreeMap, BTreeSet};

use super::context::Session;
use super::error::{DeployError, aws_failure};
use super::names;
use super::spec::{DestinationSpec, Spec};
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
            function: names::function_name(destination),
            source: source.to_owned(),
            destination: destination.to_owned(),
            ..Edge::default()
        }
    }
}

pub async fn list(session: &Session) -> Result<Vec<Edge>, DeployError> {
    let mut edges = Vec::new();
    let mut pages = session.lambda.list_functions().into_paginator().send();
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

/// The fan-out as its deployed functions record it: their destinations,
/// with the settings the last deploy gave each, and the fan-out's key
/// filter and switches. Where an older s3fan kept no record of memory,
/// timeout and retries, `asked`'s values stand (the file's, or defaults).
pub fn deployed_spec(asked: Spec, ours: &[&Edge]) -> Spec {
    let mut spec = Spec {
        destinations: ours
            .iter()
            .map(|e| DestinationSpec {
                key_prefix: e.settings.key_prefix.clone(),
                storage_class: e.settings.storage_class.clone(),
                kms_key: e.settings.kms_key.clone(),
                account: e.settings.owner.clone(),
                ..DestinationSpec::new(e.destination.clone())
            })
            .collect(),
        ..asked
    };
    if let Some(first) = ours.first().map(|e| &e.settings) {
        spec.prefix = first.filter_prefix.clone();
        spec.suffix = first.filter_suffix.clone();
        spec.replicate_deletes = first.replicate_deletes;
        spec.replicate_tags = first.replicate_tags;
        spec.metrics = first.metrics;
        spec.request_payer = first.request_payer;
        spec.reconcile_every = first
            .reconcile_every
            .as_deref()
            .and_then(|every| super::spec::Every::parse(every).ok());
        let recorded = first.deployed;
        spec.memory = recorded.memory.unwrap_or(spec.memory);
        spec.timeout = recorded.timeout.unwrap_or(spec.timeout);
        spec.retry_attempts = recorded.retry_attempts.unwrap_or(spec.retry_attempts);
        spec.max_event_age = recorded.max_event_age.unwrap_or(spec.max_event_age);
        spec.reserved_concurrency = recorded.reserved_concurrency;
        spec.alarms = first
            .alarms
            .as_deref()
            .and_then(super::spec::AlarmsTo::from_record);
        if let Some(seconds) = recorded.lag_slo.and_then(|s| u32::try_from(s).ok()) {
            spec.lag_slo = super::spec::Lag { seconds };
        }
    }
    spec
}

/// Where each deployed function writes: its destination's region as the
/// function records it, else the function's own (`home`).
pub fn deployed_regions(ours: &[&Edge], home: &str) -> BTreeMap<String, String> {
    ours.iter()
        .map(|e| {
            let region = e.settings.destination_region.as_deref().unwrap_or(home);
            (e.destination.clone(), region.to_owned())
        })
        .collect()
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
