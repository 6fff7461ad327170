use std::io::Write;

use super::*;

const SCHEMA: &str =
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag";

#[test]
fn csv_fields_follow_rfc_4180() {
    assert_eq!(
        csv_fields(r#""b","a ""quoted"" key",,plain,"""#).unwrap(),
        ["b", "a \"quoted\" key", "", "plain", ""]
    );
    assert_eq!(csv_fields("one").unwrap(), ["one"]);
    assert!(csv_fields(r#""open"#).is_err());
}

#[test]
fn an_inventory_line_gives_the_decoded_key_its_size_and_etag() {
    let columns = Columns::of(SCHEMA).unwrap();
    let line = r#""src","dir+1/caf%C3%A9%2B.txt","v1","true","false","1234","2026-12-01T00:00:00.000Z","d41d8cd98f00b204e9800998ecf8427e""#;
    assert_eq!(
        columns.named(line).unwrap(),
        Some(Named {
            key: "dir 1/café+.txt".into(),
            size: Some(1234),
            etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
        })
    );
    // An older version and a delete marker are not objects to copy.
    let old = r#""src","k","v0","false","false","1","2026-12-01T00:00:00.000Z","e""#;
    let marker = r#""src","k","v2","true","true","","2026-12-01T00:00:00.000Z","""#;
    assert_eq!(columns.named(old).unwrap(), None);
    assert_eq!(columns.named(marker).unwrap(), None);
    // Without Size and ETag in the schema, the object is looked up.
    let keys_only = Columns::of("Bucket, Key").unwrap();
    assert_eq!(
        keys_only.named(r#""src","k""#).unwrap(),
        Some(Named {
            key: "k".into(),
            size: None,
            etag: None
        })
    );
    let err = columns
        .named(r#""src","k","v","true","false","lots","d","e""#)
        .unwrap_err();
    assert!(err.contains("\"lots\""), "{err}");
}

fn manifest(source: &str, format: &str, schema: &str) -> Vec<u8> {
    serde_json::json!({
        "sourceBucket": source,
        "destinationBucket": "arn:aws:s3:::inventories",
        "version": "2016-11-30",
        "fileFormat": format,
        "fileSchema": schema,
        "files": [{"key": "src/inv/data/1.csv.gz", "size": 1, "MD5checksum": "x"}],
    })
    .to_string()
    .into_bytes()
}

#[test]
fn a_manifest_names_its_data_files_and_refuses_what_s3fan_cannot_read() {
    let at = "s3://inventories/src/inv/manifest.json";
    let (parsed, columns) = Manifest::parse(&manifest("src", "CSV", SCHEMA), at, "src").unwrap();
    assert_eq!(parsed.data_bucket(), "inventories");
    assert_eq!(parsed.files[0].key, "src/inv/data/1.csv.gz");
    assert_eq!(
        (columns.key, columns.size, columns.etag),
        (1, Some(5), Some(7))
    );
    let other = Manifest::parse(&manifest("other", "CSV", SCHEMA), at, "src").unwrap_err();
    assert!(
        other
            .0
            .contains("lists bucket other, not the source bucket src"),
        "{other}"
    );
    let parquet = Manifest::parse(&manifest("src", "Parquet", SCHEMA), at, "src").unwrap_err();
    assert!(
        parquet.0.contains("Parquet format") && parquet.0.contains("CSV"),
        "{parquet}"
    );
    let keyless = Manifest::parse(&manifest("src", "CSV", "Bucket, Size"), at, "src").unwrap_err();
    assert!(keyless.0.contains("no Key column"), "{keyless}");
    let garbage = Manifest::parse(b"<html>", at, "src").unwrap_err();
    assert!(
        garbage.0.contains("is not an S3 Inventory manifest"),
        "{garbage}"
    );
}

#[test]
fn inventory_addresses_must_name_a_manifest() {
    assert_eq!(
        ObjectList::inventory("s3://inv/src/cfg/2026-12-01T01-00Z/manifest.json"),
        Ok(ObjectList::Inventory {
            bucket: "inv".into(),
            key: "src/cfg/2026-12-01T01-00Z/manifest.json".into()
        })
    );
    for bad in [
        "inv/manifest.json",
        "s3://inv",
        "s3:///manifest.json",
        "s3://inv/data.csv.gz",
    ] {
        let err = ObjectList::inventory(bad).unwrap_err();
        assert!(err.contains(bad) && err.contains("manifest.json"), "{err}");
    }
}

#[test]
fn lines_come_whole_whatever_the_chunks_of_a_gzip_stream() {
    let text: String = (0..500).map(|i| format!("\"b\",\"key-{i}\"\r\n")).collect();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    let gzip = encoder.finish().unwrap();
    for chunk in [1, 7, 100, gzip.len()] {
        let mut lines = Lines::new(true);
        let mut got = Vec::new();
        for piece in gzip.chunks(chunk) {
            lines.feed(piece).unwrap();
            got.extend(std::iter::from_fn(|| lines.next_line()));
        }
        lines.end().unwrap();
        got.extend(std::iter::from_fn(|| lines.next_line()));
        assert_eq!(got.len(), 500, "chunks of {chunk}");
        assert_eq!(got[499], "\"b\",\"key-499\"");
    }
    // Plain text, its last line without a newline.
    let mut lines = Lines::new(false);
    lines.feed(b"a\n\nb").unwrap();
    lines.end().unwrap();
    assert_eq!(
        std::iter::from_fn(|| lines.next_line()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let mut not_gzip = Lines::new(true);
    assert!(not_gzip.feed(b"plain text, not gzip").is_err());
    // A stream cut short is an error, not fewer objects.
    let mut truncated = Lines::new(true);
    truncated.feed(&gzip[..gzip.len() / 2]).unwrap();
    assert!(truncated.end().is_err());
}

#[tokio::test]
async fn files_from_reads_keys_exactly_and_names_a_missing_file() {
    let dir = std::env::temp_dir().join(format!("s3fan-files-from-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.txt");
    std::fs::write(&path, "a key with spaces\r\n\n#not a comment\n  lead\nlast").unwrap();
    let keys: Vec<String> = files_from(path.clone())
        .map_ok(|named| named.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        keys,
        ["a key with spaces", "#not a comment", "  lead", "last"]
    );
    let missing = dir.join("nope.txt");
    let err: Vec<Result<Named, DeployError>> = files_from(missing.clone()).collect().await;
    let err = err[0].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("--files-from") && err.contains("nope.txt"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
