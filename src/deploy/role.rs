//! One IAM role per destination function: trusted by Lambda only, with one
//! inline policy of least privilege (see `policy::role_policy`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::diff::statements;
use super::encryption::Keys;
use super::plan::{Action, Change, Kind};
use super::policy::{
    decode_iam_document, role_policy, trust_policy, with_kms_grants, with_owner_acl,
    with_reconcile_grants, with_tag_removal,
};
use crate::fanout::names::{
    ROLE_POLICY_NAME, TAG_DESTINATION, TAG_MANAGED_BY, TAG_SOURCE, failure_queue_name,
    function_name, role_name,
};
use crate::fanout::{Context, DeployError, aws_failure, gone_is_fine, is_code};

#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    Absent,
    Present {
        trust: Option<Value>,
        policy: Option<Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub create: bool,
    pub trust: bool,
    /// The permissions policy to write, when it must be.
    pub policy: Option<String>,
    pub delete: bool,
}

impl Op {
    const NOTHING: Op = Op {
        create: false,
        trust: false,
        policy: None,
        delete: false,
    };
}

pub async fn observe(ctx: &Context, destination: &str) -> Result<Observed, DeployError> {
    let name = role_name(destination);
    let role = match ctx.iam.get_role().role_name(&name).send().await {
        Ok(out) => out.role,
        Err(err) if is_code(&err, &["NoSuchEntity"]) => return Ok(Observed::Absent),
        Err(err) => return Err(aws_failure(format!("cannot read IAM role {name}"), &err)),
    };
    let trust = role
        .as_ref()
        .and_then(|r| r.assume_role_policy_document())
        .and_then(decode_iam_document);
    let policy = match ctx
        .iam
        .get_role_policy()
        .role_name(&name)
        .policy_name(ROLE_POLICY_NAME)
        .send()
        .await
    {
        Ok(out) => decode_iam_document(out.policy_document()),
        Err(err) if is_code(&err, &["NoSuchEntity"]) => None,
        Err(err) => {
            return Err(aws_failure(
                format!("cannot read the policy of IAM role {name}"),
                &err,
            ));
        }
    };
    Ok(Observed::Present { trust, policy })
}

fn desired_policy(ctx: &Context, keys: &Keys, destination: &str) -> Value {
    let policy = role_policy(
        &ctx.scope,
        &ctx.spec.source,
        destination,
        ctx.spec.key_prefix(destination),
        &function_name(destination),
        &failure_queue_name(&ctx.spec.source),
        ctx.spec.replicate_deletes,
    );
    let policy = with_kms_grants(
        policy,
        keys.source.as_ref(),
        keys.destinations.get(destination),
    );
    let policy = match ctx.other_account(destination) {
        Some(_) => with_owner_acl(
            policy,
            &ctx.scope,
            destination,
            ctx.spec.key_prefix(destination),
        ),
        None => policy,
    };
    let policy = if ctx.spec.replicate_tags {
        with_tag_removal(
            policy,
            &ctx.scope,
            destination,
            ctx.spec.key_prefix(destination),
        )
    } else {
        policy
    };
    match ctx.spec.reconcile_every {
        Some(_) => with_reconcile_grants(
            policy,
            &ctx.scope,
            destination,
            ctx.spec.key_prefix(destination),
        ),
        None => policy,
    }
}

pub fn plan(ctx: &Context, keys: &Keys, destination: &str, observed: &Observed) -> Change<Op> {
    let desired = desired_policy(ctx, keys, destination);
    let mut diff = Vec::new();
    let (action, op) = match observed {
        Observed::Absent => (
            Action::Create,
            Op {
                create: true,
                policy: Some(desired.to_string()),
                ..Op::NOTHING
            },
        ),
        Observed::Present { trust, policy } => {
            let op = Op {
                trust: trust.as_ref() != Some(&trust_policy()),
                policy: (policy.as_ref() != Some(&desired)).then(|| desired.to_string()),
                ..Op::NOTHING
            };
            if op.trust {
                diff.extend(statements(
                    "trust policy",
                    trust.as_ref(),
                    Some(&trust_policy()),
                ));
            }
            if op.policy.is_some() {
                diff.extend(statements("policy", policy.as_ref(), Some(&desired)));
            }
            let action = if op.trust || op.policy.is_some() {
                Action::Update
            } else {
                Action::Unchanged
            };
            (action, op)
        }
    };
    Change {
        kind: Kind::Role,
        name: role_name(destination),
        destination: Some(destination.to_owned()),
        action,
        detail: String::new(),
        diff,
        op,
    }
}

/// The destinations of this fan-out whose roles exist, found by the tags
/// deploy gives every role, not through their functions: a destroy
/// interrupted after a function is deleted, or a deploy interrupted before
/// one was made, leaves a role no function leads to, and that role may
/// still read the source and write the destination.
pub async fn tagged_destinations(ctx: &Context) -> Result<Vec<String>, DeployError> {
    use futures::{StreamExt, TryStreamExt};
    // Deploy describes each role by its source: a cheap first sieve, before
    // the tags (which ListRoles does not return) decide.
    let described = format!("from s3://{} to", ctx.spec.source);
    let mut candidates = Vec::new();
    let mut pages = ctx.iam.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| aws_failure("cannot list IAM roles", &err))?;
        candidates.extend(
            page.roles()
                .iter()
                .filter(|role| role.role_name().starts_with("s3fan-"))
                .filter(|role| role.description().is_none_or(|d| d.contains(&described)))
                .map(|role| role.role_name().to_owned()),
        );
    }
    let found: Vec<Option<String>> = futures::stream::iter(candidates)
        .map(|name| async move {
            let tags = match ctx.iam.list_role_tags().role_name(&name).send().await {
                Ok(out) => out.tags,
                Err(err) if is_code(&err, &["NoSuchEntity"]) => return Ok(None),
                Err(err) => {
                    return Err(aws_failure(
                        format!("cannot read the tags of IAM role {name}"),
                        &err,
                    ));
                }
            };
            let tag = |key: &str| {
                tags.iter()
                    .find(|tag| tag.key() == key)
                    .map(|tag| tag.value().to_owned())
            };
            let ours = tag(TAG_MANAGED_BY).as_deref() == Some("s3fan")
                && tag(TAG_SOURCE).as_deref() == Some(ctx.spec.source.as_str());
            // Only a role of exactly the name deploy gives that destination.
            Ok(tag(TAG_DESTINATION).filter(|destination| ours && role_name(destination) == name))
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    let mut destinations: Vec<String> = found.into_iter().flatten().collect();
    destinations.sort();
    Ok(destinations)
}

pub fn plan_delete(destination: &str, observed: &Observed) -> Change<Op> {
    Change::removal(
        Kind::Role,
        role_name(destination),
        Some(destination.to_owned()),
        matches!(observed, Observed::Present { .. }),
        Op {
            delete: true,
            ..Op::NOTHING
        },
        Op::NOTHING,
    )
}

pub async fn apply(ctx: &Context, destination: &str, op: Op) -> Result<(), DeployError> {
    let name = role_name(destination);
    if op.delete {
        return delete(&ctx.iam, &name, ROLE_POLICY_NAME).await;
    }
    // A role made since it was read (a deploy running beside this one) is
    // written over like any other: its trust is set below.
    let created = op.create
        && create(
            &ctx.iam,
            &name,
            &trust_policy(),
            &format!(
                "s3fan: copies new objects from s3://{} to s3://{destination}",
                ctx.spec.source
            ),
            &ctx.tags(Some(destination)),
        )
        .await?;
    if (op.create && !created) || op.trust {
        update_trust(&ctx.iam, &name, &trust_policy()).await?;
    }
    if let Some(document) = &op.policy {
        put_policy(&ctx.iam, &name, ROLE_POLICY_NAME, document).await?;
    }
    Ok(())
}

// The IAM calls of every role s3fan makes: each destination's, and the one
// of `backfill --via-batch-operations` (`super::batch_role`).

/// Creates role `name`; answers false when it already exists.
pub(super) async fn create(
    iam: &aws_sdk_iam::Client,
    name: &str,
    trust: &Value,
    description: &str,
    tags: &BTreeMap<String, String>,
) -> Result<bool, DeployError> {
    let mut create = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .description(description);
    for (key, value) in tags {
        create = create.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|err| DeployError(format!("role tag {key}: {err}")))?,
        );
    }
    match create.send().await {
        Ok(_) => Ok(true),
        Err(err) if is_code(&err, &["EntityAlreadyExists"]) => Ok(false),
        Err(err) => Err(aws_failure(format!("cannot create IAM role {name}"), &err)),
    }
}

pub(super) async fn update_trust(
    iam: &aws_sdk_iam::Client,
    name: &str,
    trust: &Value,
) -> Result<(), DeployError> {
    iam.update_assume_role_policy()
        .role_name(name)
        .policy_document(trust.to_string())
        .send()
        .await
        .map_err(|err| {
            aws_failure(
                format!("cannot update the trust policy of IAM role {name}"),
                &err,
            )
        })?;
    Ok(())
}

pub(super) async fn put_policy(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy_name: &str,
    document: &str,
) -> Result<(), DeployError> {
    iam.put_role_policy()
        .role_name(name)
        .policy_name(policy_name)
        .policy_document(document)
        .send()
        .await
        .map_err(|err| aws_failure(format!("cannot write the policy of IAM role {name}"), &err))?;
    Ok(())
}

/// Deletes the role and its one inline policy; what is gone already is fine.
pub(super) async fn delete(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy_name: &str,
) -> Result<(), DeployError> {
    let result = iam
        .delete_role_policy()
        .role_name(name)
        .policy_name(policy_name)
        .send()
        .await;
    gone_is_fine(
        result,
        &["NoSuchEntity"],
        format!("cannot delete the policy of IAM role {name}"),
    )?;
    let result = iam.delete_role().role_name(name).send().await;
    gone_is_fine(
        result,
        &["NoSuchEntity"],
        format!("cannot delete IAM role {name}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::spec::Spec;
    use crate::test_endpoint::listen;

    /// Both buckets' default encryption is SSE-KMS with the AWS managed key,
    /// named by its alias ARN (as S3 reports a key chosen by alias).
    fn s3(method: &str, target: &str) -> crate::test_endpoint::Reply {
        match (method, target) {
            ("GET", t) if t.contains("?encryption") => (
                200,
                vec![],
                "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>\
                 <SSEAlgorithm>aws:kms</SSEAlgorithm>\
                 <KMSMasterKeyID>arn:aws:kms:us-east-1:123456789012:alias/aws/s3</KMSMasterKeyID>\
                 </ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
                    .into(),
            ),
            _ => (404, vec![], String::new()),
        }
    }

    /// IAM with four roles named like s3fan's: this fan-out's, another
    /// source's, one tagged for this source under a name deploy would not
    /// give its destination, and one without tags.
    fn iam(_: &str, _: &str, body: &str) -> crate::test_endpoint::Reply {
        let roles = [
            (
                "s3fan-dst",
                "s3fan: copies new objects from s3://src to s3://dst",
            ),
            (
                "s3fan-other",
                "s3fan: copies new objects from s3://elsewhere to s3://other",
            ),
            (
                "s3fan-renamed",
                "s3fan: copies new objects from s3://src to s3://dst2",
            ),
            (
                "s3fan-bare",
                "s3fan: copies new objects from s3://src to s3://bare",
            ),
        ];
        let tags = |source: &str, destination: &str| {
            format!(
                "<member><Key>managed-by</Key><Value>s3fan</Value></member>\
                 <member><Key>s3fan:source</Key><Value>{source}</Value></member>\
                 <member><Key>s3fan:destination</Key><Value>{destination}</Value></member>"
            )
        };
        let answer = if body.contains("Action=ListRoles") {
            let members: String = roles
                .iter()
                .map(|(name, description)| {
                    format!(
                        "<member><RoleName>{name}</RoleName><Description>{description}</Description>\
                         <Path>/</Path><RoleId>AROA{name}</RoleId>\
                         <Arn>arn:aws:iam::123456789012:role/{name}</Arn>\
                         <CreateDate>2026-12-01T00:00:00Z</CreateDate></member>"
                    )
                })
                .collect();
            format!(
                "<ListRolesResponse><ListRolesResult><IsTruncated>false</IsTruncated>\
                 <Roles>{members}</Roles></ListRolesResult></ListRolesResponse>"
            )
        } else {
            let role = body
                .split('&')
                .find_map(|pair| pair.strip_prefix("RoleName="))
                .unwrap_or_default();
            let tags = match role {
                "s3fan-dst" => tags("src", "dst"),
                "s3fan-other" => tags("elsewhere", "other"),
                "s3fan-renamed" => tags("src", "dst2"),
                _ => String::new(),
            };
            format!(
                "<ListRoleTagsResponse><ListRoleTagsResult><IsTruncated>false</IsTruncated>\
                 <Tags>{tags}</Tags></ListRoleTagsResult></ListRoleTagsResponse>"
            )
        };
        (200, vec![], answer)
    }

    #[tokio::test]
    async fn only_roles_tagged_for_this_source_under_their_own_name_are_found() {
        let (endpoint, seen) = crate::test_endpoint::listen_with_bodies(iam).await;
        let ctx = Context::offline(Spec::for_test("src", &["dst"]), &endpoint);
        assert_eq!(tagged_destinations(&ctx).await.unwrap(), ["dst"]);
        let asked_for_tags = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains("Action=ListRoleTags"))
            .count();
        assert_eq!(
            asked_for_tags, 3,
            "another source's role is sieved out by its description"
        );
    }

    #[tokio::test]
    async fn the_aws_managed_key_by_alias_arn_gives_no_kms_statement() {
        let (endpoint, seen) = listen(s3).await;
        let ctx = Context::offline(Spec::for_test("src", &["dst"]), &endpoint);
        let keys = crate::deploy::encryption::observe_keys(&ctx).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 2, "both buckets were read");
        let plain = role_policy(
            &ctx.scope,
            "src",
            "dst",
            None,
            "dst",
            &failure_queue_name("src"),
            false,
        );
        assert_eq!(desired_policy(&ctx, &keys, "dst"), plain);
        assert!(
            !desired_policy(&ctx, &keys, "dst")
                .to_string()
                .contains("kms:")
        );
    }
}
