//! End to end: what changes after the write replicates too. Tag changes
//! (`--replicate-tags`) make each copy's tags the source's current ones,
//! and a late tag event never puts older tags back; a delete in a
//! versioned source (a delete marker) deletes the copy. The local AWS sends
//! `DeleteMarkerCreated` as S3 does (moto sends nothing for it).
//!
//! A delete of one version names that version in its event; moto's records
//! carry no version ids, so that case is proved by the planner's unit test
//! (`a_delete_marker_is_a_delete_and_a_deleted_version_is_not`).

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_s3::types::{BucketVersioningStatus, Tag, Tagging, VersioningConfiguration};

use crate::common::{Clients, access_key, assert_ok, function_name_for, local_aws, unique};

async fn tags_of(clients: &Clients, bucket: &str, key: &str) -> Vec<(String, String)> {
    let tags = clients
        .s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|err| panic!("tags of s3://{bucket}/{key}: {err:?}"));
    let mut tags: Vec<(String, String)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    tags
}

async fn set_tags(clients: &Clients, bucket: &str, key: &str, tags: &[(&str, &str)]) {
    let tag_set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag"))
        .collect();
    clients
        .s3
        .put_object_tagging()
        .bucket(bucket)
        .key(key)
        .tagging(
            Tagging::builder()
                .set_tag_set(Some(tag_set))
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("put tags");
}

fn pairs(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    tags.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn tag_changes_and_delete_markers_reach_every_copy_and_late_tag_events_lose() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("changes-src");
    let (plain, prefixed) = (unique("changes-dst"), unique("changes-pre"));
    for bucket in [&source, &plain, &prefixed] {
        clients.create_bucket(bucket).await;
    }
    clients
        .s3
        .put_bucket_versioning()
        .bucket(&source)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning on");
    let prefixed_dest = format!("{prefixed}:copies/");
    let flags = ["--replicate-tags", "--replicate-deletes"];
    aws.deploy_json(&access_key(), &source, &[&plain, &prefixed_dest], &flags)
        .await;
    let copies = [
        (plain.clone(), "k.txt".to_owned()),
        (prefixed.clone(), "copies/k.txt".to_owned()),
    ];

    clients
        .put(&source, "k.txt", b"tagged".to_vec(), "text/plain", &[])
        .await;
    set_tags(&clients, &source, "k.txt", &[("stage", "raw")]).await;
    aws.drain();
    for (bucket, key) in &copies {
        assert_eq!(
            tags_of(&clients, bucket, key).await,
            pairs(&[("stage", "raw")]),
            "{bucket}"
        );
    }
    let first_tag_event = aws
        .invocations()
        .into_iter()
        .find(|i| {
            i.function == function_name_for(&plain)
                && i.event.to_string().contains("ObjectTagging:Put")
        })
        .expect("the first tag event")
        .event;

    // Changed, then removed: each copy follows.
    set_tags(
        &clients,
        &source,
        "k.txt",
        &[("stage", "done"), ("team", "media")],
    )
    .await;
    aws.drain();
    for (bucket, key) in &copies {
        assert_eq!(
            tags_of(&clients, bucket, key).await,
            pairs(&[("stage", "done"), ("team", "media")]),
            "{bucket}"
        );
    }
    clients
        .s3
        .delete_object_tagging()
        .bucket(&source)
        .key("k.txt")
        .send()
        .await
        .expect("delete tags");
    aws.drain();
    for (bucket, key) in &copies {
        assert_eq!(tags_of(&clients, bucket, key).await, vec![], "{bucket}");
    }

    // The first tag event again, late: the copy keeps the source's current
    // tags, not the ones that event was sent for.
    set_tags(&clients, &source, "k.txt", &[("stage", "final")]).await;
    aws.drain();
    let lambda = aws_sdk_lambda::Client::new(&aws.sdk_config_in("us-east-1").await);
    let answer = lambda
        .invoke()
        .function_name(function_name_for(&plain))
        .payload(Blob::new(first_tag_event.to_string()))
        .send()
        .await
        .expect("the late event");
    assert!(answer.function_error().is_none(), "{answer:?}");
    assert_eq!(
        tags_of(&clients, &plain, "k.txt").await,
        pairs(&[("stage", "final")]),
        "a late tag event does not put older tags back"
    );

    // Another object, and then the deletes.
    let before = aws.invocations().len();
    clients
        .s3
        .put_object()
        .bucket(&source)
        .key("untagged.txt")
        .body(b"u".to_vec().into())
        .send()
        .await
        .expect("put");
    aws.drain();

    // A delete in the versioned source makes a delete marker: the copies go.
    clients
        .s3
        .delete_object()
        .bucket(&source)
        .key("k.txt")
        .send()
        .await
        .expect("delete");
    aws.drain();
    for (bucket, key) in &copies {
        assert!(
            clients.get(bucket, key).await.is_none(),
            "{bucket}/{key} deleted"
        );
    }
    assert!(clients.get(&plain, "untagged.txt").await.is_some());
    let deletes: Vec<_> = aws.invocations()[before..]
        .iter()
        .filter(|i| {
            i.event
                .to_string()
                .contains("ObjectRemoved:DeleteMarkerCreated")
        })
        .map(|i| i.is_error)
        .collect();
    assert_eq!(
        deletes,
        [false, false],
        "one delete-marker event per function, each done"
    );
    assert_ok(
        &aws.s3fan(&access_key(), &["destroy", "--yes", "--source", &source])
            .await,
    );
}
