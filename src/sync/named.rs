//! Backfill from a list of objects instead of a listing of the source:
//! `--files-from FILE` (one key per line, as rclone takes it) or
//! `--inventory s3://BUCKET/PATH/manifest.json` (an S3 Inventory report in
//! CSV, which S3 writes daily or weekly for a bucket of any size). Either way
//! the source is never listed: each named object is looked up in every
//! destination with HeadObject, and the rows go through the same copy
//! pipeline as a merged listing's.
//!
//! A listing of the destinations would cost fewer requests, but a merge
//! needs the source's keys in S3's order, which neither a list nor an
//! inventory's files promise; one HeadObject per object and destination
//! keeps memory flat and the order free.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, StreamExt, TryStreamExt, stream};
use serde::Deserialize;

use super::diff::{Merged, Row, Seen};
use super::listing::Entry;
use super::{Destination, Fanout, slices};
use crate::fanout::DeployError;
use crate::fanout::error::aws_failure;
use crate::handler::encoding::decode_event_key;
use crate::handler::s3::status;

/// Objects looked up at once (a HeadObject per destination each).
const LOOKUPS_AT_ONCE: usize = 64;

/// Where the list of objects comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectList {
    /// A file of keys, one per line; `-` is standard input.
    FilesFrom(std::path::PathBuf),
    /// An S3 Inventory report's manifest.json.
    Inventory { bucket: String, key: String },
}

impl ObjectList {
    /// `--inventory`'s value: `s3://BUCKET/KEY`, naming the manifest.
    pub fn inventory(url: &str) -> Result<ObjectList, String> {
        let bad = || {
            format!(
                "--inventory {url:?} is not the address of an inventory manifest: give \
                 s3://BUCKET/PATH/manifest.json (the manifest.json S3 Inventory wrote)"
            )
        };
        let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, key) = rest.split_once('/').ok_or_else(bad)?;
        if bucket.is_empty() || !key.ends_with("manifest.json") {
            return Err(bad());
        }
        Ok(ObjectList::Inventory {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// One object a list names; size and ETag when the list has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
}

/// The named objects within the fan-out's filter, each as a row of what the
/// source and every destination hold; `absent` counts those the source no
/// longer has.
pub fn rows(
    fanout: &Fanout,
    list: ObjectList,
    absent: Arc<AtomicU64>,
) -> impl Stream<Item = slices::Item> + '_ {
    let named: stream::BoxStream<'_, Result<Named, DeployError>> = match list {
        ObjectList::FilesFrom(path) => files_from(path).boxed(),
        ObjectList::Inventory { bucket, key } => {
            inventory(&fanout.s3, bucket, key, &fanout.source).boxed()
        }
    };
    named
        .try_filter(move |named| std::future::ready(fanout.filter.admits(&named.key)))
        .map_ok(move |named| {
            let absent = absent.clone();
            async move {
                let found = look_up(fanout, named).await?;
                if found.is_none() {
                    absent.fetch_add(1, Ordering::Relaxed);
                }
                Ok(stream::iter(found.into_iter().flatten().map(Ok)))
            }
        })
        .try_buffer_unordered(LOOKUPS_AT_ONCE)
        .try_flatten()
}

/// The source's object and each destination's copy of it; `None` when
/// the source does not have it (any more). A destination's failed lookup
/// is that destination's error, as a failed listing would be.
async fn look_up(
    fanout: &Fanout,
    named: Named,
) -> Result<Option<Vec<Merged<DeployError>>>, DeployError> {
    let source = match (named.size, named.etag) {
        (Some(size), Some(etag)) => Entry {
            key: named.key,
            size,
            etag,
        },
        _ => match head(
            &fanout.s3,
            &fanout.source,
            &named.key,
            "",
            fanout.request_payer,
        )
        .await
        {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(None),
            Err(err) => return Err(err),
        },
    };
    let copies = futures::future::join_all(
        fanout
            .destinations
            .iter()
            .map(|destination| copy_of(destination, &source.key, fanout.request_payer)),
    )
    .await;
    let mut out = Vec::new();
    let mut seen = Vec::with_capacity(copies.len());
    for (copy, found) in copies.into_iter().enumerate() {
        match found {
            Ok(Some(entry)) => seen.push(Seen::Listed(entry)),
            Ok(None) => seen.push(Seen::Absent),
            Err(error) => {
                seen.push(Seen::Unknown);
                out.push(Merged::CopyFailed { copy, error });
            }
        }
    }
    out.push(Merged::Row(Row {
        source: Some(source),
        copies: seen,
    }));
    Ok(Some(out))
}

async fn copy_of(
    destination: &Destination,
    key: &str,
    request_payer: bool,
) -> Result<Option<Entry>, DeployError> {
    let at = format!("{}{key}", destination.key_prefix);
    head(
        &destination.s3,
        &destination.bucket,
        &at,
        &destination.key_prefix,
        request_payer,
    )
    .await
}

/// HeadObject of `key`: its size and ETag, with `strip` taken off the key;
/// `None` when there is no such object.
async fn head(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    strip: &str,
    request_payer: bool,
) -> Result<Option<Entry>, DeployError> {
    let answer = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .set_request_payer(request_payer.then_some(aws_sdk_s3::types::RequestPayer::Requester))
        .send()
        .await;
    match answer {
        Ok(head) => Ok(Some(Entry {
            key: key.strip_prefix(strip).unwrap_or(key).to_owned(),
            size: head
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            etag: head
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned(),
        })),
        Err(err) if status(&err) == Some(404) => Ok(None),
        Err(err) => Err(aws_failure(
            format!("cannot look up s3://{bucket}/{key}"),
            &err,
        )),
    }
}

/// The keys of a file, one per line, exactly as in the bucket (a line's
/// `\r\n` ending is taken off; empty lines are skipped).
pub(super) fn files_from(
    path: std::path::PathBuf,
) -> impl Stream<Item = Result<Named, DeployError>> {
    use tokio::io::AsyncBufReadExt;
    let shown = path.display().to_string();
    let opened = async move {
        // `-` is standard input, opened as the file it is on Linux and
        // macOS (tokio's own stdin needs a feature the SDK build lacks).
        let file = if path.as_os_str() == "-" {
            std::path::Path::new("/dev/stdin")
        } else {
            path.as_path()
        };
        let reader = tokio::fs::File::open(file).await.map_err(|err| {
            DeployError(format!(
                "cannot read --files-from {}: {err}; give a file of keys, one per line",
                path.display()
            ))
        })?;
        Ok::<_, DeployError>(tokio::io::BufReader::new(reader).lines())
    };
    stream::once(opened)
        .map_ok(move |lines| {
            let shown = shown.clone();
            stream::unfold(lines, |mut lines| async move {
                let line = lines.next_line().await.transpose()?;
                Some((line, lines))
            })
            .map_err(move |err| DeployError(format!("cannot read --files-from {shown}: {err}")))
        })
        .try_flatten()
        .try_filter_map(|line| {
            let key = line.strip_suffix('\r').unwrap_or(&line);
            std::future::ready(Ok((!key.is_empty()).then(|| Named {
                key: key.to_owned(),
                size: None,
                etag: None,
            })))
        })
}

/// What S3 Inventory's manifest.json says (the fields s3fan reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    source_bucket: String,
    /// `arn:aws:s3:::BUCKET`: where the data files are.
    destination_bucket: String,
    file_format: String,
    #[serde(default)]
    file_schema: String,
    files: Vec<DataFile>,
}

#[derive(Debug, Deserialize)]
struct DataFile {
    key: String,
}

/// Which columns of the inventory's CSV hold what s3fan needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    key: usize,
    size: Option<usize>,
    etag: Option<usize>,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
}

impl Manifest {
    fn parse(text: &[u8], at: &str, source: &str) -> Result<(Manifest, Columns), DeployError> {
        let manifest: Manifest = serde_json::from_slice(text).map_err(|err| {
            DeployError(format!(
                "{at} is not an S3 Inventory manifest ({err}); give the manifest.json of an \
                 inventory report"
            ))
        })?;
        if manifest.source_bucket != source {
            return Err(DeployError(format!(
                "the inventory at {at} lists bucket {}, not the source bucket {source}: give the \
                 manifest of {source}'s inventory",
                manifest.source_bucket
            )));
        }
        if !manifest.file_format.eq_ignore_ascii_case("CSV") {
            return Err(DeployError(format!(
                "the inventory at {at} is in {} format; s3fan reads CSV inventories: configure \
                 the bucket's inventory with the CSV output format, or list the keys in a file \
                 for --files-from",
                manifest.file_format
            )));
        }
        let columns = Columns::of(&manifest.file_schema).ok_or_else(|| {
            DeployError(format!(
                "the inventory at {at} has no Key column in its schema {:?}",
                manifest.file_schema
            ))
        })?;
        Ok((manifest, columns))
    }

    fn data_bucket(&self) -> &str {
        self.destination_bucket
            .strip_prefix("arn:aws:s3:::")
            .or_else(|| self.destination_bucket.rsplit(':').next())
            .unwrap_or(&self.destination_bucket)
    }
}

impl Columns {
    /// From the schema's names, `Bucket, Key, Size, ...`.
    fn of(schema: &str) -> Option<Columns> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let at = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        Some(Columns {
            key: at("Key")?,
            size: at("Size"),
            etag: at("ETag"),
            is_latest: at("IsLatest"),
            is_delete_marker: at("IsDeleteMarker"),
        })
    }

    /// One CSV line of a data file: the current object it names, or `None`
    /// for an older version or a delete marker (in an inventory of all
    /// versions).
    fn named(&self, line: &str) -> Result<Option<Named>, String> {
        let fields = csv_fields(line)?;
        let field = |i: usize| fields.get(i).map(String::as_str);
        if self.is_latest.and_then(field) == Some("false")
            || self.is_delete_marker.and_then(field) == Some("true")
        {
            return Ok(None);
        }
        let encoded = field(self.key).ok_or("it has no Key field")?;
        // S3 Inventory URL-encodes keys in CSV, as S3 does in events.
        let key = decode_event_key(encoded).map_err(|err| format!("its key: {err}"))?;
        let size = match self.size.and_then(field) {
            Some(size) if !size.is_empty() => {
                Some(size.parse().map_err(|_| format!("its Size {size:?}"))?)
            }
            _ => None,
        };
        let etag = self
            .etag
            .and_then(field)
            .filter(|etag| !etag.is_empty())
            .map(|etag| etag.trim_matches('"').to_owned());
        Ok(Some(Named { key, size, etag }))
    }
}

/// The fields of one CSV line (RFC 4180: quoted fields, `""` for a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field does not end".into()),
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == ',' {
                break;
            }
            field.push(c);
            chars.next();
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

/// Every current object an inventory report names, data file by data file,
/// each read as it downloads (gzip, as S3 Inventory writes them).
fn inventory<'a>(
    s3: &'a aws_sdk_s3::Client,
    bucket: String,
    key: String,
    source: &'a str,
) -> impl Stream<Item = Result<Named, DeployError>> + 'a {
    let at = format!("s3://{bucket}/{key}");
    let manifest = async move {
        let text = download(s3, &bucket, &key).await?;
        Manifest::parse(&text, &at, source)
    };
    stream::once(manifest)
        .map_ok(move |(manifest, columns)| {
            let data = manifest.data_bucket().to_owned();
            stream::iter(manifest.files)
                .then(move |file| data_file(s3, data.clone(), file.key, columns))
                .try_flatten()
        })
        .try_flatten()
}

async fn download(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, DeployError> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|err| {
            aws_failure(
                format!("cannot read the inventory s3://{bucket}/{key}"),
                &err,
            )
        })?;
    let bytes = object.body.collect().await.map_err(|err| {
        DeployError(format!(
            "cannot read the inventory s3://{bucket}/{key}: {err}"
        ))
    })?;
    Ok(bytes.into_bytes().to_vec())
}

/// One data file's objects, decompressed and parsed chunk by chunk.
async fn data_file(
    s3: &aws_sdk_s3::Client,
    bucket: String,
    key: String,
    columns: Columns,
) -> Result<impl Stream<Item = Result<Named, DeployError>>, DeployError> {
    let at = format!("s3://{bucket}/{key}");
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(|err| aws_failure(format!("cannot read the inventory data file {at}"), &err))?;
    let lines = Lines::new(key.ends_with(".gz"));
    Ok(stream::unfold(
        (object.body, lines, at, false),
        move |(mut body, mut lines, at, mut ended)| async move {
            loop {
                if let Some(line) = lines.next_line() {
                    let parsed = columns.named(&line).map_err(|why| {
                        DeployError(format!(
                            "a line of the inventory data file {at} is unreadable ({why}): {line:?}"
                        ))
                    });
                    return Some((parsed, (body, lines, at, ended)));
                }
                if ended {
                    return None;
                }
                match body.try_next().await {
                    Ok(Some(chunk)) => {
                        if let Err(err) = lines.feed(&chunk) {
                            let err = DeployError(format!(
                                "the inventory data file {at} is not gzip: {err}"
                            ));
                            return Some((Err(err), (body, lines, at, true)));
                        }
                    }
                    Ok(None) => {
                        ended = true;
                        if let Err(err) = lines.end() {
                            let err = DeployError(format!(
                                "the inventory data file {at} ends early ({err}): is it whole?"
                            ));
                            return Some((Err(err), (body, lines, at, true)));
                        }
                    }
                    Err(err) => {
                        let err =
                            DeployError(format!("cannot read the inventory data file {at}: {err}"));
                        return Some((Err(err), (body, lines, at, true)));
                    }
                }
            }
        },
    )
    .try_filter_map(|named| std::future::ready(Ok(named))))
}

/// Bytes in (gzip or plain), whole lines out.
struct Lines {
    gzip: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    plain: Vec<u8>,
    /// Where the next line starts in `plain`.
    start: usize,
}

impl Lines {
    fn new(gzip: bool) -> Lines {
        Lines {
            gzip: gzip.then(|| flate2::write::MultiGzDecoder::new(Vec::new())),
            plain: Vec::new(),
            start: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.plain.drain(..self.start);
        self.start = 0;
        match &mut self.gzip {
            Some(decoder) => {
                decoder.write_all(chunk)?;
                self.plain.append(decoder.get_mut());
            }
            None => self.plain.extend_from_slice(chunk),
        }
        Ok(())
    }

    /// The bytes are all in: a gzip stream must be complete, and the
    /// last line needs no newline.
    fn end(&mut self) -> std::io::Result<()> {
        if let Some(decoder) = &mut self.gzip {
            decoder.try_finish()?;
            self.plain.append(decoder.get_mut());
        }
        if self.plain.len() > self.start && !self.plain.ends_with(b"\n") {
            self.plain.push(b'\n');
        }
        Ok(())
    }

    fn next_line(&mut self) -> Option<String> {
        loop {
            let rest = &self.plain[self.start..];
            let end = rest.iter().position(|&b| b == b'\n')?;
            let line = String::from_utf8_lossy(&rest[..end])
                .trim_end_matches('\r')
                .to_owned();
            self.start += end + 1;
            if !line.is_empty() {
                return Some(line);
            }
        }
    }
}

#[cfg(test)]
mod tests;
