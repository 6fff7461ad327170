//! The plan: one list of changes, each a resource and what must happen to it.
//! `--dry-run`, the text and JSON output and the apply all read this list,
//! so what deploy says it will do and what it does cannot disagree.

use serde::Serialize;

pub use super::diff::Diff;

/// The kinds of resource deploy manages, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Topic,
    Role,
    Queue,
    QueuePolicy,
    Function,
    InvokeConfig,
    Permission,
    Subscription,
    DestinationPolicy,
    Notification,
    Schedule,
    AlarmTopic,
    Alarm,
    Upload,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Topic => "topic",
            Kind::Role => "role",
            Kind::Queue => "queue",
            Kind::QueuePolicy => "queue policy",
            Kind::Function => "function",
            Kind::InvokeConfig => "async config",
            Kind::Permission => "permission",
            Kind::Subscription => "subscription",
            Kind::DestinationPolicy => "bucket policy",
            Kind::Notification => "notification",
            Kind::Schedule => "schedule",
            Kind::AlarmTopic => "alarm topic",
            Kind::Alarm => "alarm",
            Kind::Upload => "upload",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

impl Action {
    pub fn changes_something(self) -> bool {
        self != Action::Unchanged
    }

    fn past(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Delete => "deleted",
            Action::Unchanged => "unchanged",
        }
    }

    fn future(self) -> &'static str {
        match self {
            Action::Create => "would create",
            Action::Update => "would update",
            Action::Delete => "would delete",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One resource and what must happen to it. `Op` carries what the apply
/// needs; it is not part of the output.
#[derive(Debug, Clone, Serialize)]
pub struct Change<Op> {
    pub kind: Kind,
    pub name: String,
    /// The destination bucket this resource serves, if it serves one.
    pub destination: Option<String>,
    pub action: Action,
    /// What differs, or why: "code", "policy", "no longer listed", ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Each attribute an update changes, its value now and after.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<Diff>,
    #[serde(skip)]
    pub op: Op,
}

impl<Op> Change<Op> {
    /// What the change is, apart from what its apply needs.
    pub fn split(self) -> (Change<()>, Op) {
        let Change {
            kind,
            name,
            destination,
            action,
            detail,
            diff,
            op,
        } = self;
        let change = Change {
            kind,
            name,
            destination,
            action,
            detail,
            diff,
            op: (),
        };
        (change, op)
    }

    /// Removing a resource: `Delete` while it is there, else `Unchanged`
    /// ("already gone"), which makes every removal idempotent.
    pub fn removal(
        kind: Kind,
        name: String,
        destination: Option<String>,
        present: bool,
        delete: Op,
        nothing: Op,
    ) -> Change<Op> {
        Change {
            kind,
            name,
            destination,
            action: if present {
                Action::Delete
            } else {
                Action::Unchanged
            },
            detail: if present {
                String::new()
            } else {
                "already gone".into()
            },
            diff: Vec::new(),
            op: if present { delete } else { nothing },
        }
    }
}

/// How far a change got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "error")]
pub enum Status {
    /// Dry run: nothing was attempted.
    Planned,
    Done,
    Failed(String),
    /// An earlier change it depends on failed, or Ctrl-C came first.
    NotAttempted,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub kind: Kind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    pub action: Action,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<Diff>,
    #[serde(flatten)]
    pub status: Status,
}

impl Outcome {
    pub fn of<Op>(change: &Change<Op>, status: Status) -> Outcome {
        Outcome {
            kind: change.kind,
            name: change.name.clone(),
            destination: change.destination.clone(),
            action: change.action,
            detail: change.detail.clone(),
            diff: change.diff.clone(),
            status,
        }
    }
}

/// Counts of actions, for the summary line.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub failed: usize,
}

impl Summary {
    pub fn of(outcomes: &[Outcome]) -> Summary {
        let mut summary = Summary::default();
        for outcome in outcomes {
            if matches!(outcome.status, Status::Failed(_)) {
                summary.failed += 1;
                continue;
            }
            if matches!(outcome.status, Status::NotAttempted) {
                continue;
            }
            match outcome.action {
                Action::Create => summary.created += 1,
                Action::Update => summary.updated += 1,
                Action::Delete => summary.deleted += 1,
                Action::Unchanged => summary.unchanged += 1,
            }
        }
        summary
    }
}

/// One line per resource (kind, name, what happened or would, why), then
/// a line per attribute that changes. No newline after the last.
pub fn render(outcome: &Outcome) -> String {
    let mut out = render_line(outcome);
    for diff in &outcome.diff {
        out.push('\n');
        out.push_str(&diff.render());
    }
    out
}

fn render_line(outcome: &Outcome) -> String {
    let what = match &outcome.status {
        Status::Planned => outcome.action.future().to_owned(),
        Status::Done => outcome.action.past().to_owned(),
        Status::Failed(error) => format!("FAILED to {}: {error}", verb(outcome.action)),
        Status::NotAttempted => format!("not attempted ({})", outcome.action.future()),
    };
    let detail = if outcome.detail.is_empty() || matches!(outcome.status, Status::Failed(_)) {
        String::new()
    } else {
        format!(" ({})", outcome.detail)
    };
    format!(
        "  {:<13} {:<40} {what}{detail}",
        outcome.kind.label(),
        outcome.name
    )
}

/// What the progress says while a step runs: `creating function dst`.
pub fn under_way(change: &Change<()>) -> String {
    let doing = match change.action {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Delete => "deleting",
        Action::Unchanged => "checking",
    };
    format!("{doing} {} {}", change.kind.label(), change.name)
}

/// The line the progress keeps once a step is done: `function dst
/// created (2s)`, or why it failed.
pub fn progress_line(outcome: &Outcome, took: std::time::Duration) -> String {
    let what = format!("{} {}", outcome.kind.label(), outcome.name);
    match &outcome.status {
        Status::Failed(error) => format!("{what}: FAILED to {}: {error}", verb(outcome.action)),
        _ => format!(
            "{what} {} ({})",
            outcome.action.past(),
            crate::progress::human::duration(took)
        ),
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::Unchanged => "check",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(action: Action, status: Status) -> Outcome {
        Outcome {
            kind: Kind::Function,
            name: "dst".into(),
            destination: Some("dst".into()),
            action,
            detail: "code".into(),
            diff: Vec::new(),
            status,
        }
    }

    #[test]
    fn lines_say_what_happened_or_would() {
        assert!(render_line(&outcome(Action::Update, Status::Done)).ends_with("updated (code)"));
        assert!(
            render_line(&outcome(Action::Create, Status::Planned)).ends_with("would create (code)")
        );
        let failed = render_line(&outcome(
            Action::Create,
            Status::Failed("AccessDenied".into()),
        ));
        assert!(
            failed.ends_with("FAILED to create: AccessDenied"),
            "{failed}"
        );
    }

    #[test]
    fn summary_counts_what_was_done_and_what_failed() {
        let outcomes = [
            outcome(Action::Create, Status::Done),
            outcome(Action::Create, Status::Done),
            outcome(Action::Unchanged, Status::Done),
            outcome(Action::Delete, Status::Failed("x".into())),
            outcome(Action::Update, Status::NotAttempted),
        ];
        assert_eq!(
            Summary::of(&outcomes),
            Summary {
                created: 2,
                updated: 0,
                deleted: 0,
                unchanged: 1,
                failed: 1
            }
        );
    }

    #[test]
    fn json_carries_status_and_error() {
        let json =
            serde_json::to_value(outcome(Action::Delete, Status::Failed("boom".into()))).unwrap();
        assert_eq!(json["status"], "failed");
        assert_eq!(json["error"], "boom");
        assert_eq!(json["action"], "delete");
        assert_eq!(json["kind"], "function");
        let json = serde_json::to_value(outcome(Action::Create, Status::Planned)).unwrap();
        assert_eq!(json["status"], "planned");
        assert!(json.get("error").is_none());
    }
}
