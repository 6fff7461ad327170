//! Every policy document deploy writes, built from the names alone so that
//! each can be asserted exactly (moto does not evaluate IAM, so tests of the
//! documents are the only proof of least privilege).

use serde_json::{Value, json};

use super::encryption::KmsKey;
use crate::fanout::names::Scope;

/// The topic's policy: only S3, only for the source bucket, only from the
/// caller's account, may publish.
pub fn topic_policy(scope: &Scope, topic_arn: &str, source: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Id": "s3fan-topic-policy",
        "Statement": [{
            "Sid": "S3PublishesSourceEvents",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "SNS:Publish",
            "Resource": topic_arn,
            "Condition": {
                "ArnLike": {"aws:SourceArn": scope.bucket_arn(source)},
                "StringEquals": {"aws:SourceAccount": scope.account}
            }
        }]
    })
}

/// The failure queue's policy: only the fan-out's function roles may send to
/// it (Lambda sends a failed event to an on-failure destination as the
/// function's role).
pub fn queue_policy(queue_arn: &str, role_arns: &[String]) -> Value {
    let mut roles = role_arns.to_vec();
    roles.sort();
    json!({
        "Version": "2012-10-17",
        "Id": "s3fan-failure-queue-policy",
        "Statement": [{
            "Sid": "FunctionsSendFailedEvents",
            "Effect": "Allow",
            "Principal": {"AWS": roles},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn
        }]
    })
}

/// Lambda, and only Lambda, may assume a function's role.
pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
}

/// What one destination's function may do: read objects and their tags in
/// the source, write objects and tags under its key prefix in the
/// destination, and write its own logs. `s3:ListBucket` on the source is
/// there because without it S3 answers 403, not 404, for an object deleted
/// since its event, and the handler could not tell a late event from a
/// missing permission; `s3:AbortMultipartUpload` because a failed multipart
/// copy must not leave billed parts behind. Copies always take the current
/// object, so no `s3:GetObjectVersion*`. `sqs:SendMessage` on the failure
/// queue is how Lambda delivers a failed event there.
pub fn role_policy(
    scope: &Scope,
    source: &str,
    destination: &str,
    key_prefix: Option<&str>,
    function: &str,
    failure_queue: &str,
    replicate_deletes: bool,
) -> Value {
    let log_group = scope.log_group_arn(function);
    let destination_objects = format!(
        "{}/{}*",
        scope.bucket_arn(destination),
        key_prefix.unwrap_or("")
    );
    let mut statements = vec![
        json!({
            "Sid": "ReadSourceObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectTagging"],
            "Resource": format!("{}/*", scope.bucket_arn(source))
        }),
        json!({
            "Sid": "TellDeletedSourceObjectsFromDenied",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": scope.bucket_arn(source)
        }),
        json!({
            "Sid": "WriteDestinationObjects",
            "Effect": "Allow",
            // ListMultipartUploadParts: a multipart copy handed on to a
            // fresh invocation asks S3 which parts are done.
            "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload",
                       "s3:ListMultipartUploadParts"],
            "Resource": destination_objects
        }),
        // A multipart copy near the deadline hands the rest on to a fresh
        // invocation of this function (as does a reconcile, its next slice).
        json!({
            "Sid": "InvokeItselfToGoOn",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": scope.function_arn(function)
        }),
    ];
    // Only with --replicate-deletes may a function delete anything.
    if replicate_deletes {
        statements.push(json!({
            "Sid": "DeleteDestinationObjects",
            "Effect": "Allow",
            "Action": "s3:DeleteObject",
            "Resource": destination_objects
        }));
    }
    statements.push(json!({
        "Sid": "SendFailedEventsToQueue",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": scope.queue_arn(failure_queue)
    }));
    statements.push(json!({
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [log_group.clone(), format!("{log_group}:*")]
    }));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The role policy plus what KMS-encrypted buckets need, on those keys only:
/// kms:Decrypt on the source's key, to read its objects; on the key the
/// copies are encrypted with, kms:GenerateDataKey and kms:Encrypt to write
/// them, and kms:Decrypt too, which completing a multipart upload requires.
pub fn with_kms_grants(
    mut policy: Value,
    source_key: Option<&KmsKey>,
    destination_key: Option<&KmsKey>,
) -> Value {
    if let Some(statements) = policy["Statement"].as_array_mut() {
        if let Some(key) = source_key {
            statements.push(key.statement("DecryptSourceObjects", &["kms:Decrypt"]));
        }
        if let Some(key) = destination_key {
            statements.push(key.statement(
                "EncryptDestinationObjects",
                &["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            ));
        }
    }
    policy
}

/// A reconcile: the role may also list its destination (under its key
/// prefix), to compare it with the source, and invoke its own function,
/// to hand a run's next slice on.
pub fn with_reconcile_grants(
    mut policy: Value,
    scope: &Scope,
    destination: &str,
    key_prefix: Option<&str>,
) -> Value {
    let mut list = json!({
        "Sid": "ListDestinationToReconcile",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": scope.bucket_arn(destination)
    });
    if let Some(prefix) = key_prefix {
        list["Condition"] = json!({"StringLike": {"s3:prefix": format!("{prefix}*")}});
    }
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements.push(list);
    }
    policy
}

/// `--replicate-tags`: a copy whose source lost all its tags loses its own
/// with DeleteObjectTagging (PutObjectTagging is already granted).
pub fn with_tag_removal(
    mut policy: Value,
    scope: &Scope,
    destination: &str,
    key_prefix: Option<&str>,
) -> Value {
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements.push(json!({
            "Sid": "RemoveTagsOfCopies",
            "Effect": "Allow",
            "Action": "s3:DeleteObjectTagging",
            "Resource": format!("{}/{}*", scope.bucket_arn(destination), key_prefix.unwrap_or(""))
        }));
    }
    policy
}

/// A destination in another account: the role may also set the ACL that
/// hands each copy to the bucket's owner (bucket-owner-full-control).
pub fn with_owner_acl(
    mut policy: Value,
    scope: &Scope,
    destination: &str,
    key_prefix: Option<&str>,
) -> Value {
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements.push(json!({
            "Sid": "HandCopiesToDestinationOwner",
            "Effect": "Allow",
            "Action": "s3:PutObjectAcl",
            "Resource": format!("{}/{}*", scope.bucket_arn(destination), key_prefix.unwrap_or(""))
        }));
    }
    policy
}

/// The statement a destination in another account needs in its bucket
/// policy, for one role: the role's own policy is not enough across
/// accounts. Its Sid names the role, so each source's statement is found
/// and replaced on its own.
pub fn destination_bucket_statement(
    scope: &Scope,
    role: &str,
    destination: &str,
    key_prefix: Option<&str>,
    replicate_deletes: bool,
    replicate_tags: bool,
) -> Value {
    let mut actions = vec![
        "s3:PutObject",
        "s3:PutObjectTagging",
        "s3:PutObjectAcl",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ];
    if replicate_deletes {
        actions.push("s3:DeleteObject");
    }
    if replicate_tags {
        actions.push("s3:DeleteObjectTagging");
    }
    let role_arn = scope.role_arn(role);
    json!({
        "Sid": crate::fanout::names::bucket_statement_id(&role_arn),
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": actions,
        "Resource": format!("{}/{}*", scope.bucket_arn(destination), key_prefix.unwrap_or(""))
    })
}

/// The second statement such a bucket needs when the destination reconciles
/// (`--reconcile-every`): its role lists the bucket, under the key prefix
/// only, to find what events missed. Its Sid is the first's plus `List`.
pub fn destination_list_statement(
    scope: &Scope,
    role: &str,
    destination: &str,
    key_prefix: Option<&str>,
) -> Value {
    let role_arn = scope.role_arn(role);
    let mut statement = json!({
        "Sid": format!("{}List", crate::fanout::names::bucket_statement_id(&role_arn)),
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": "s3:ListBucket",
        "Resource": scope.bucket_arn(destination)
    });
    if let Some(prefix) = key_prefix {
        statement["Condition"] = json!({"StringLike": {"s3:prefix": format!("{prefix}*")}});
    }
    statement
}

/// IAM hands policy documents back URL-encoded; compare them as JSON.
pub fn decode_iam_document(document: &str) -> Option<Value> {
    if let Ok(plain) = serde_json::from_str(document) {
        return Some(plain);
    }
    let decoded = percent_encoding::percent_decode_str(document)
        .decode_utf8()
        .ok()?;
    serde_json::from_str(&decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::for_test("eu-west-1")
    }

    #[test]
    fn topic_policy_admits_only_s3_for_the_source_bucket_and_account() {
        let arn = scope().topic_arn("photos-fanout");
        assert_eq!(arn, "arn:aws:sns:eu-west-1:123456789012:photos-fanout");
        let expected: Value = serde_json::from_str(
            r#"{"Version":"2012-10-17","Id":"s3fan-topic-policy","Statement":[{
                "Sid":"S3PublishesSourceEvents","Effect":"Allow",
                "Principal":{"Service":"s3.amazonaws.com"},"Action":"SNS:Publish",
                "Resource":"arn:aws:sns:eu-west-1:123456789012:photos-fanout",
                "Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::photos"},
                             "StringEquals":{"aws:SourceAccount":"123456789012"}}}]}"#,
        )
        .unwrap();
        assert_eq!(topic_policy(&scope(), &arn, "photos"), expected);
    }

    #[test]
    fn trust_policy_names_only_lambda() {
        let expected: Value = serde_json::from_str(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
                "Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .unwrap();
        assert_eq!(trust_policy(), expected);
    }

    #[test]
    fn role_policy_is_least_privilege() {
        let expected: Value = serde_json::from_str(
            r#"{"Version":"2012-10-17","Statement":[
              {"Sid":"ReadSourceObjects","Effect":"Allow",
               "Action":["s3:GetObject","s3:GetObjectTagging"],
               "Resource":"arn:aws:s3:::photos/*"},
              {"Sid":"TellDeletedSourceObjectsFromDenied","Effect":"Allow",
               "Action":"s3:ListBucket","Resource":"arn:aws:s3:::photos"},
              {"Sid":"WriteDestinationObjects","Effect":"Allow",
               "Action":["s3:PutObject","s3:PutObjectTagging","s3:AbortMultipartUpload",
                         "s3:ListMultipartUploadParts"],
               "Resource":"arn:aws:s3:::photos.eu/*"},
              {"Sid":"InvokeItselfToGoOn","Effect":"Allow","Action":"lambda:InvokeFunction",
               "Resource":"arn:aws:lambda:eu-west-1:123456789012:function:photos-eu-318a1688"},
              {"Sid":"SendFailedEventsToQueue","Effect":"Allow","Action":"sqs:SendMessage",
               "Resource":"arn:aws:sqs:eu-west-1:123456789012:photos-fanout-failures"},
              {"Sid":"WriteOwnLogs","Effect":"Allow",
               "Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],
               "Resource":["arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/photos-eu-318a1688",
                           "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/photos-eu-318a1688:*"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            role_policy(
                &scope(),
                "photos",
                "photos.eu",
                None,
                "photos-eu-318a1688",
                "photos-fanout-failures",
                false
            ),
            expected
        );
    }

    #[test]
    fn another_accounts_bucket_admits_exactly_the_role() {
        let statement = destination_bucket_statement(
            &scope(),
            "s3fan-backup",
            "backup",
            Some("photos/"),
            false,
            false,
        );
        let sid = statement["Sid"].as_str().unwrap().to_owned();
        assert!(
            sid.starts_with("s3fan") && sid.chars().all(|c| c.is_ascii_alphanumeric()),
            "{sid}"
        );
        assert_eq!(
            statement,
            json!({
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/s3fan-backup"},
                "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectAcl",
                           "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                "Resource": "arn:aws:s3:::backup/photos/*"
            })
        );
        let with_deletes =
            destination_bucket_statement(&scope(), "s3fan-backup", "backup", None, true, true);
        assert_eq!(with_deletes["Action"][5], "s3:DeleteObject");
        assert_eq!(with_deletes["Action"][6], "s3:DeleteObjectTagging");
        assert_eq!(with_deletes["Resource"], "arn:aws:s3:::backup/*");

        let list = destination_list_statement(&scope(), "s3fan-backup", "backup", Some("photos/"));
        assert_eq!(
            list,
            json!({
                "Sid": format!("{sid}List"),
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/s3fan-backup"},
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::backup",
                "Condition": {"StringLike": {"s3:prefix": "photos/*"}}
            }),
            "a reconciling role lists the bucket under its prefix only"
        );
        let plain = role_policy(&scope(), "src", "backup", None, "backup", "q", false);
        let owned = with_owner_acl(plain.clone(), &scope(), "backup", None);
        assert_eq!(
            owned["Statement"].as_array().unwrap().last().unwrap(),
            &json!({"Sid": "HandCopiesToDestinationOwner", "Effect": "Allow",
                    "Action": "s3:PutObjectAcl", "Resource": "arn:aws:s3:::backup/*"})
        );
    }

    #[test]
    fn replicated_tags_may_be_removed_from_copies_under_the_prefix_only() {
        let plain = role_policy(&scope(), "src", "dst", Some("p/"), "dst", "q", false);
        let with = with_tag_removal(plain.clone(), &scope(), "dst", Some("p/"));
        let added: Vec<&Value> = with["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !plain["Statement"].as_array().unwrap().contains(s))
            .collect();
        assert_eq!(
            added,
            [&json!({"Sid": "RemoveTagsOfCopies", "Effect": "Allow",
                     "Action": "s3:DeleteObjectTagging", "Resource": "arn:aws:s3:::dst/p/*"})]
        );
    }

    #[test]
    fn kms_encrypted_buckets_get_grants_on_their_keys_only() {
        let plain = role_policy(&scope(), "src", "dst", None, "dst", "q", false);
        assert_eq!(with_kms_grants(plain.clone(), None, None), plain);
        let source_key = KmsKey::Key(
            "arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa".into(),
        );
        let destination_key = KmsKey::Key(
            "arn:aws:kms:us-east-1:210987654321:key/2222bbbb-22bb-22bb-22bb-222222bbbbbb".into(),
        );
        let granted = with_kms_grants(plain.clone(), Some(&source_key), Some(&destination_key));
        let added = &granted["Statement"].as_array().unwrap()
            [plain["Statement"].as_array().unwrap().len()..];
        let expected: Value = serde_json::from_str(
            r#"[{"Sid":"DecryptSourceObjects","Effect":"Allow","Action":["kms:Decrypt"],
                 "Resource":"arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa"},
                {"Sid":"EncryptDestinationObjects","Effect":"Allow",
                 "Action":["kms:Decrypt","kms:Encrypt","kms:GenerateDataKey"],
                 "Resource":"arn:aws:kms:us-east-1:210987654321:key/2222bbbb-22bb-22bb-22bb-222222bbbbbb"}]"#,
        )
        .unwrap();
        assert_eq!(Value::from(added.to_vec()), expected);
    }

    #[test]
    fn only_replicating_deletes_allows_deleting_and_only_in_the_destination() {
        let without = role_policy(&scope(), "src", "dst", None, "dst", "q", false).to_string();
        assert!(!without.contains("s3:DeleteObject"), "{without}");
        let with = role_policy(&scope(), "src", "dst", Some("backup/"), "dst", "q", true);
        let deletes: Vec<&Value> = with["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s.to_string().contains("s3:DeleteObject"))
            .collect();
        assert_eq!(
            deletes,
            [
                &json!({"Sid": "DeleteDestinationObjects", "Effect": "Allow",
                     "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::dst/backup/*"})
            ]
        );
    }

    #[test]
    fn a_destination_key_prefix_narrows_every_write_to_it() {
        let policy = role_policy(&scope(), "src", "dst", Some("backup/"), "dst", "q", false);
        let writes = &policy["Statement"][2];
        assert_eq!(writes["Sid"], "WriteDestinationObjects");
        assert_eq!(writes["Resource"], "arn:aws:s3:::dst/backup/*");
        assert!(
            !policy.to_string().contains("arn:aws:s3:::dst/*"),
            "{policy}"
        );
    }

    #[test]
    fn no_document_has_a_wildcard_principal_or_a_bare_wildcard_resource() {
        let documents = [
            topic_policy(&scope(), "arn:aws:sns:eu-west-1:123456789012:t", "src"),
            trust_policy(),
            role_policy(&scope(), "src", "dst", None, "dst", "q", false),
            role_policy(&scope(), "src", "dst", Some("b/"), "dst", "q", true),
            queue_policy(
                "arn:aws:sqs:eu-west-1:123456789012:q",
                &["arn:aws:iam::123456789012:role/s3fan-dst".to_owned()],
            ),
        ];
        for document in documents {
            let text = document.to_string();
            assert!(!text.contains(r#""AWS":"*""#), "{text}");
            assert!(!text.contains(r#""Principal":"*""#), "{text}");
            assert!(!text.contains(r#""Resource":"*""#), "{text}");
            assert!(!text.contains(":*:*"), "{text}");
        }
    }

    #[test]
    fn the_failure_queue_admits_only_the_function_roles() {
        let arn = scope().queue_arn("photos-fanout-failures");
        assert_eq!(
            arn,
            "arn:aws:sqs:eu-west-1:123456789012:photos-fanout-failures"
        );
        let roles = [
            "arn:aws:iam::123456789012:role/s3fan-b".to_owned(),
            "arn:aws:iam::123456789012:role/s3fan-a".to_owned(),
        ];
        let expected: Value = serde_json::from_str(
            r#"{"Version":"2012-10-17","Id":"s3fan-failure-queue-policy","Statement":[{
                "Sid":"FunctionsSendFailedEvents","Effect":"Allow",
                "Principal":{"AWS":["arn:aws:iam::123456789012:role/s3fan-a",
                                    "arn:aws:iam::123456789012:role/s3fan-b"]},
                "Action":"sqs:SendMessage",
                "Resource":"arn:aws:sqs:eu-west-1:123456789012:photos-fanout-failures"}]}"#,
        )
        .unwrap();
        assert_eq!(
            queue_policy(&arn, &roles),
            expected,
            "sorted: stable across runs"
        );
    }

    #[test]
    fn decodes_iam_documents_url_encoded_or_not() {
        let document = trust_policy();
        let encoded: String = percent_encoding::utf8_percent_encode(
            &document.to_string(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        assert_eq!(decode_iam_document(&encoded), Some(document.clone()));
        assert_eq!(decode_iam_document(&document.to_string()), Some(document));
        assert_eq!(decode_iam_document("not json"), None);
    }

    #[test]
    fn a_reconcile_may_list_its_destination_under_its_prefix_only() {
        let plain = role_policy(&scope(), "src", "dst", Some("backup/"), "dst", "q", false);
        assert!(
            plain["Statement"].as_array().unwrap().contains(&json!({
                "Sid": "InvokeItselfToGoOn", "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:dst"})),
            "every function may invoke itself, and only itself, to go on"
        );
        let granted = with_reconcile_grants(plain.clone(), &scope(), "dst", Some("backup/"));
        let added = &granted["Statement"].as_array().unwrap()
            [plain["Statement"].as_array().unwrap().len()..];
        assert_eq!(
            added,
            [
                json!({"Sid": "ListDestinationToReconcile", "Effect": "Allow",
                       "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::dst",
                       "Condition": {"StringLike": {"s3:prefix": "backup/*"}}}),
            ]
        );
        let whole = with_reconcile_grants(plain, &scope(), "dst", None);
        assert!(
            !whole.to_string().contains("s3:prefix"),
            "no prefix: the whole bucket"
        );
    }
}
