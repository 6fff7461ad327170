//! The topic `SRC-fanout-alarms` that `--alarm-email` asks for, and the
//! address's subscription to it. With `--alarm-topic` the user's own topic
//! is used as it is, and s3fan makes none.
//!
//! An email subscription waits for its owner to confirm the mail SNS
//! sends; until then SNS lists it as `PendingConfirmation`, and a redeploy
//! counts it as made rather than sending the mail again.

use super::plan::{Action, Change, Diff, Kind};
use super::subscription;
use crate::fanout::names::alarm_topic_name;
use crate::fanout::spec::AlarmsTo;
use crate::fanout::{Context, DeployError, aws_failure, gone_is_fine};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Absent,
    /// The topic, and each email subscription: (address, subscription ARN,
    /// which is `PendingConfirmation` until confirmed).
    Present {
        emails: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Nothing,
    /// Make the topic (if need be) and subscribe the address; unsubscribe
    /// these confirmed subscriptions of other addresses.
    Subscribe {
        address: String,
        unsubscribe: Vec<String>,
    },
    Delete,
}

fn arn(ctx: &Context) -> String {
    ctx.scope.topic_arn(&alarm_topic_name(&ctx.spec.source))
}

pub async fn observe(ctx: &Context) -> Result<Observed, DeployError> {
    Ok(
        match subscription::of_topic(ctx, &arn(ctx), "email").await? {
            None => Observed::Absent,
            Some(found) => Observed::Present {
                emails: found.into_iter().map(|s| (s.endpoint, s.arn)).collect(),
            },
        },
    )
}

/// The topic and subscription `--alarm-email` asks for; the topic's
/// removal when it is no longer asked for; `None` where there is none and
/// none is wanted.
pub fn plan(ctx: &Context, observed: &Observed) -> Option<Change<Op>> {
    let name = alarm_topic_name(&ctx.spec.source);
    let change = |action, detail: String, op| Change {
        kind: Kind::AlarmTopic,
        name: name.clone(),
        destination: None,
        action,
        detail,
        diff: Vec::new(),
        op,
    };
    let Some(AlarmsTo::Email(address)) = &ctx.spec.alarms else {
        return match observed {
            Observed::Absent => None,
            Observed::Present { .. } => Some(change(
                Action::Delete,
                "--alarm-email is no longer given".into(),
                Op::Delete,
            )),
        };
    };
    let subscribe = |unsubscribe| Op::Subscribe {
        address: address.clone(),
        unsubscribe,
    };
    Some(match observed {
        Observed::Absent => change(
            Action::Create,
            format!("email to {address}, to be confirmed"),
            subscribe(Vec::new()),
        ),
        Observed::Present { emails } => {
            let subscribed = emails.iter().any(|(email, _)| email == address);
            // A pending subscription has no ARN to unsubscribe with; SNS
            // forgets it after three days unconfirmed.
            let others: Vec<String> = emails
                .iter()
                .filter(|(email, arn)| email != address && arn.starts_with("arn:"))
                .map(|(_, arn)| arn.clone())
                .collect();
            if subscribed && others.is_empty() {
                change(Action::Unchanged, String::new(), Op::Nothing)
            } else {
                // The addresses, before and after; pending ones stay.
                let before: Vec<&str> = emails.iter().map(|(email, _)| email.as_str()).collect();
                let mut after: Vec<&str> = emails
                    .iter()
                    .filter(|(email, arn)| email == address || !arn.starts_with("arn:"))
                    .map(|(email, _)| email.as_str())
                    .collect();
                if !subscribed {
                    after.push(address);
                }
                let mut update = change(Action::Update, String::new(), subscribe(others));
                update
                    .diff
                    .extend(Diff::of("email subscriptions", before, after));
                update
            }
        }
    })
}

/// The removal of the topic, by destroy.
pub fn plan_delete(ctx: &Context, observed: &Observed) -> Option<Change<Op>> {
    match observed {
        Observed::Absent => None,
        Observed::Present { .. } => Some(Change::removal(
            Kind::AlarmTopic,
            alarm_topic_name(&ctx.spec.source),
            None,
            true,
            Op::Delete,
            Op::Nothing,
        )),
    }
}

pub async fn apply(ctx: &Context, op: &Op) -> Result<(), DeployError> {
    let name = alarm_topic_name(&ctx.spec.source);
    match op {
        Op::Nothing => Ok(()),
        Op::Subscribe {
            address,
            unsubscribe,
        } => {
            let tags = ctx
                .tags(None)
                .into_iter()
                .map(|(key, value)| {
                    aws_sdk_sns::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build()
                        .map_err(|err| DeployError(format!("cannot describe a tag: {err}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // CreateTopic of an existing topic with the same tags returns it.
            let topic = ctx
                .sns
                .create_topic()
                .name(&name)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|err| aws_failure(format!("cannot create SNS topic {name}"), &err))?;
            let arn = topic.topic_arn().map_or_else(|| arn(ctx), str::to_owned);
            ctx.sns
                .subscribe()
                .topic_arn(&arn)
                .protocol("email")
                .endpoint(address)
                .send()
                .await
                .map_err(|err| {
                    aws_failure(
                        format!("cannot subscribe {address} to SNS topic {name}"),
                        &err,
                    )
                })?;
            for subscription in unsubscribe {
                let result = ctx
                    .sns
                    .unsubscribe()
                    .subscription_arn(subscription)
                    .send()
                    .await;
                gone_is_fine(
                    result,
                    &["NotFound", "NotFoundException"],
                    format!("cannot unsubscribe {subscription} from SNS topic {name}"),
                )?;
            }
            Ok(())
        }
        // Deleting a topic deletes its subscriptions.
        Op::Delete => {
            let result = ctx.sns.delete_topic().topic_arn(arn(ctx)).send().await;
            gone_is_fine(
                result,
                &["NotFound", "NotFoundException"],
                format!("cannot delete SNS topic {name}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::spec::Spec;

    fn ctx(alarms: Option<AlarmsTo>) -> Context {
        let mut spec = Spec::for_test("src", &["dst"]);
        spec.alarms = alarms;
        Context::offline(spec, "http://127.0.0.1:9")
    }

    fn email(address: &str) -> Option<AlarmsTo> {
        Some(AlarmsTo::Email(address.into()))
    }

    #[test]
    fn the_topic_is_made_for_an_email_and_only_for_one() {
        let asked = ctx(email("ops@example.com"));
        let made = plan(&asked, &Observed::Absent).unwrap();
        assert_eq!(made.name, "src-fanout-alarms");
        assert_eq!(
            (made.action, made.op),
            (
                Action::Create,
                Op::Subscribe {
                    address: "ops@example.com".into(),
                    unsubscribe: vec![]
                }
            )
        );
        // Pending confirmation counts as subscribed: no second mail.
        let pending = Observed::Present {
            emails: vec![("ops@example.com".into(), "PendingConfirmation".into())],
        };
        assert_eq!(plan(&asked, &pending).unwrap().action, Action::Unchanged);
        // A user's own topic: s3fan makes none, and removes its own.
        let topic = ctx(Some(AlarmsTo::Topic(
            "arn:aws:sns:us-east-1:123456789012:pager".into(),
        )));
        assert!(plan(&topic, &Observed::Absent).is_none());
        assert_eq!(plan(&topic, &pending).unwrap().op, Op::Delete);
        assert!(plan(&ctx(None), &Observed::Absent).is_none());
    }

    #[test]
    fn a_new_address_is_subscribed_and_the_old_confirmed_one_let_go() {
        let asked = ctx(email("new@example.com"));
        let old = "arn:aws:sns:us-east-1:123456789012:src-fanout-alarms:1f2e";
        let observed = Observed::Present {
            emails: vec![
                ("old@example.com".into(), old.into()),
                ("stale@example.com".into(), "PendingConfirmation".into()),
            ],
        };
        let change = plan(&asked, &observed).unwrap();
        assert_eq!(change.action, Action::Update);
        assert_eq!(
            change.diff,
            [Diff::of(
                "email subscriptions",
                vec!["old@example.com", "stale@example.com"],
                vec!["stale@example.com", "new@example.com"]
            )
            .unwrap()]
        );
        assert_eq!(
            change.op,
            Op::Subscribe {
                address: "new@example.com".into(),
                unsubscribe: vec![old.into()]
            }
        );
    }
}
