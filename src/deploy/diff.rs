//! What an update changes, attribute by attribute: the value in AWS and the
//! value deploy would set, as terraform's plan shows them (`memory 128 ->
//! 256`, `prefix "" -> "in/"`, a policy statement added or removed). The
//! JSON output carries them as `before` and `after`.

use serde::Serialize;
use serde_json::Value;

/// One attribute that differs. `Null` on a side means "not set there": a
/// statement added has no `before`, one removed no `after`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub attribute: String,
    pub before: Value,
    pub after: Value,
}

impl Diff {
    /// The attribute, when `before` and `after` differ.
    pub fn of(
        attribute: impl Into<String>,
        before: impl Into<Value>,
        after: impl Into<Value>,
    ) -> Option<Diff> {
        let (before, after) = (before.into(), after.into());
        (before != after).then(|| Diff {
            attribute: attribute.into(),
            before,
            after,
        })
    }

    /// One indented line under the resource's line.
    pub fn render(&self) -> String {
        match (&self.before, &self.after) {
            (Value::Null, after @ (Value::Object(_) | Value::Array(_))) => {
                format!("      + {} {}", self.attribute, show(after))
            }
            (before @ (Value::Object(_) | Value::Array(_)), Value::Null) => {
                format!("      - {} {}", self.attribute, show(before))
            }
            (before, after) => format!(
                "      ~ {} {} -> {}",
                self.attribute,
                show(before),
                show(after)
            ),
        }
    }
}

/// Strings quoted (so an empty one shows), numbers bare, anything else as
/// compact JSON; a value not set as `(none)`.
fn show(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

/// The statements of two IAM-style policy documents compared by `Sid` (by
/// position where a statement has none): each added, removed or changed
/// statement as one diff named `{label} statement {sid}`. A policy that
/// is not there counts as one without statements.
pub fn statements(
    label: &str,
    before_policy: Option<&Value>,
    after_policy: Option<&Value>,
) -> Vec<Diff> {
    let keyed = |policy: Option<&Value>| -> Vec<(String, Value)> {
        let list = match policy.map(|p| &p["Statement"]) {
            Some(Value::Array(list)) => list.clone(),
            // A single statement may stand without the list around it.
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        list.into_iter()
            .enumerate()
            .map(|(at, statement)| {
                let sid = statement["Sid"]
                    .as_str()
                    .map_or_else(|| format!("#{}", at + 1), str::to_owned);
                (sid, statement)
            })
            .collect()
    };
    let (before, after) = (keyed(before_policy), keyed(after_policy));
    let find = |list: &[(String, Value)], sid: &str| {
        list.iter()
            .find(|(key, _)| key == sid)
            .map(|(_, statement)| statement.clone())
            .unwrap_or(Value::Null)
    };
    let mut sids: Vec<&String> = before.iter().map(|(sid, _)| sid).collect();
    sids.extend(
        after
            .iter()
            .map(|(sid, _)| sid)
            .filter(|sid| !before.iter().any(|(key, _)| key == *sid)),
    );
    let mut diffs: Vec<Diff> = sids
        .into_iter()
        .filter_map(|sid| {
            Diff::of(
                format!("{label} statement {sid}"),
                find(&before, sid),
                find(&after, sid),
            )
        })
        .collect();
    // Same statements, other document (its Version or Id): name that.
    if diffs.is_empty() {
        let rest = |policy: Option<&Value>| {
            policy.map_or(Value::Null, |policy| {
                let mut rest = policy.clone();
                if let Some(map) = rest.as_object_mut() {
                    map.remove("Statement");
                }
                rest
            })
        };
        diffs.extend(Diff::of(label, rest(before_policy), rest(after_policy)));
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_show_before_and_after_quoted_when_strings() {
        assert_eq!(Diff::of("memory", 128, 128), None);
        let memory = Diff::of("memory", 128, 256).unwrap();
        assert_eq!(memory.render().trim(), "~ memory 128 -> 256");
        let prefix = Diff::of("prefix", "", "in/").unwrap();
        assert_eq!(prefix.render().trim(), r#"~ prefix "" -> "in/""#);
        let unset = Diff::of("suffix", Value::Null, ".jpg").unwrap();
        assert_eq!(unset.render().trim(), r#"~ suffix (none) -> ".jpg""#);
    }

    #[test]
    fn statements_added_removed_and_changed_by_sid() {
        let before = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject"},
            {"Sid": "Old", "Effect": "Allow", "Action": "s3:ListBucket"},
        ]});
        let after = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectTagging"]},
            {"Sid": "New", "Effect": "Allow", "Action": "kms:Decrypt"},
        ]});
        let diffs = statements("policy", Some(&before), Some(&after));
        let lines: Vec<String> = diffs.iter().map(|d| d.render().trim().to_owned()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with("~ policy statement Read {"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("- policy statement Old {"),
            "{lines:?}"
        );
        assert!(
            lines[2].starts_with("+ policy statement New {"),
            "{lines:?}"
        );
        assert_eq!(diffs[2].before, Value::Null);
        assert_eq!(diffs[1].after, Value::Null);
        assert_eq!(diffs[2].after["Action"], "kms:Decrypt");
    }

    #[test]
    fn a_missing_policy_has_no_statements_and_unnamed_ones_go_by_position() {
        let after = json!({"Statement": [{"Effect": "Allow", "Action": "sns:Publish"}]});
        let diffs = statements("policy", None, Some(&after));
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].attribute, "policy statement #1");
        assert!(statements("policy", Some(&after), Some(&after)).is_empty());
    }

    #[test]
    fn json_names_before_and_after() {
        let json = serde_json::to_value(Diff::of("timeout", 30, 60).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({"attribute": "timeout", "before": 30, "after": 60})
        );
    }
}
