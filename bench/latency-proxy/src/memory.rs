//! `latency-proxy memory DELAY_MS LIST_DELAY_MS`: an S3 held in memory,
//! fast enough not to be what the peer benchmark measures. SeaweedFS and
//! s3s-fs on the same two cores as the tools cap every tool's copies near
//! 800 a second; this answers a copy in microseconds, so what is left is
//! each tool's own concurrency and CPU against the latency it is given.
//!
//! Just what the four tools call for a server-side copy and a check:
//! CreateBucket, HeadBucket, GetBucketLocation, ListBuckets,
//! ListObjects (V1 and V2: prefix, delimiter, marker / start-after /
//! continuation token, max-keys), PutObject (plain, chunked or
//! aws-chunked bodies), CopyObject (with x-amz-copy-source-if-match),
//! HeadObject, GetObject, GetObjectTagging (no tags), DeleteObject.
//! Signatures are not checked. Path-style addressing only.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::Delays;

#[derive(Clone)]
struct Object {
    etag: String,
    body: Arc<Vec<u8>>,
    /// As a listing says it, and as a Last-Modified header does.
    modified: (String, String),
}

#[derive(Default)]
struct Store {
    buckets: HashMap<String, BTreeMap<String, Object>>,
}

type Shared = Arc<Mutex<Store>>;

pub async fn serve(listener: TcpListener, delays: Delays) {
    let store: Shared = Arc::default();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let store = store.clone();
        tokio::spawn(async move {
            let _ = connection(client, store, delays).await;
        });
    }
}

struct Request {
    method: String,
    bucket: String,
    key: String,
    query: BTreeMap<String, String>,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// HEAD: the length of what GET would send, and no body.
    head_length: Option<usize>,
}

impl Answer {
    fn xml(status: u16, body: String) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/xml".into())],
            body: body.into_bytes(),
            head_length: None,
        }
    }

    fn error(status: u16, code: &str) -> Answer {
        Answer::xml(
            status,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
            ),
        )
    }

    fn empty(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: vec![],
            head_length: None,
        }
    }
}

async fn connection(client: TcpStream, store: Shared, delays: Delays) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let (read, mut write) = client.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Some(request) = read_request(&mut read, &mut write).await? else {
            return Ok(());
        };
        let lists = request.method == "GET"
            && !request.bucket.is_empty()
            && request.key.is_empty()
            && !request.query.contains_key("location");
        tokio::time::sleep(if lists { delays.list } else { delays.request }).await;
        let answer = answer(&store, &request);
        let reason = match answer.status {
            200 => "OK",
            500 => "Internal Server Error",
            204 => "No Content",
            404 => "Not Found",
            412 => "Precondition Failed",
            _ => "Bad Request",
        };
        let length = answer.head_length.unwrap_or(answer.body.len());
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Length: {length}\r\nx-amz-request-id: memory\r\n",
            answer.status
        );
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        write.write_all(head.as_bytes()).await?;
        if request.method != "HEAD" {
            write.write_all(&answer.body).await?;
        }
    }
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    read: &mut R,
    write: &mut W,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if read.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let target = words.next().unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if read.read_line(&mut header).await? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    // botocore asks before it sends a body.
    if headers
        .get("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        body = read_chunks(read).await?;
    } else if let Some(length) = headers.get("content-length").and_then(|l| l.parse().ok()) {
        body = vec![0; length];
        read.read_exact(&mut body).await?;
    }
    if headers
        .get("content-encoding")
        .is_some_and(|e| e.contains("aws-chunked"))
    {
        body = read_chunks(&mut &body[..]).await?;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = decode(path.trim_start_matches('/'));
    let (bucket, key) = path.split_once('/').unwrap_or((&path, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name, true), percent_decode(value, true))
        })
        .collect();
    Ok(Some(Request {
        method,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        query,
        headers,
        body,
    }))
}

/// An HTTP chunked (or aws-chunked) body: `SIZE[;ext]\r\nDATA\r\n`..., a
/// zero-sized chunk, then trailers up to an empty line.
async fn read_chunks<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        read.read_line(&mut line).await?;
        let size = line.trim().split(';').next().unwrap_or("0");
        let size = usize::from_str_radix(size, 16).unwrap_or(0);
        if size == 0 {
            loop {
                let mut trailer = String::new();
                if read.read_line(&mut trailer).await? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        read.read_exact(&mut body[start..]).await?;
        let mut end = String::new();
        read.read_line(&mut end).await?;
    }
}

fn decode(text: &str) -> String {
    percent_decode(text, false)
}

/// Percent-decoding; in a query, `+` is a space too.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) if plus_is_space => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    let (hh, mm, ss) = (rest / 3600, rest / 60 % 60, rest % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    (
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.000Z"),
        format!("{weekday}, {d:02} {month} {y:04} {hh:02}:{mm:02}:{ss:02} GMT"),
    )
}

/// Days since 1970-01-01 as a date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Not MD5, but as long as one and the same for the same bytes, which is
/// all a comparison of ETags needs.
fn etag_of(body: &[u8]) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for &byte in body {
        a = (a ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        b = (b ^ u64::from(byte))
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(5);
    }
    format!("{a:016x}{b:016x}")
}

fn answer(store: &Shared, request: &Request) -> Answer {
    let Ok(mut store) = store.lock() else {
        return Answer::error(500, "InternalError");
    };
    let method = request.method.as_str();
    if request.bucket.is_empty() {
        let names: String = store
            .buckets
            .keys()
            .map(|name| {
                format!("<Bucket><Name>{name}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket>")
            })
            .collect();
        return Answer::xml(
            200,
            format!(
                "<ListAllMyBucketsResult><Owner><ID>me</ID></Owner><Buckets>{names}</Buckets></ListAllMyBucketsResult>"
            ),
        );
    }
    if request.key.is_empty() {
        return match method {
            "PUT" => {
                store.buckets.entry(request.bucket.clone()).or_default();
                Answer::empty(200)
            }
            _ if !store.buckets.contains_key(&request.bucket) => Answer::error(404, "NoSuchBucket"),
            "HEAD" => {
                let mut answer = Answer::empty(200);
                answer
                    .headers
                    .push(("x-amz-bucket-region".into(), "us-east-1".into()));
                answer
            }
            "GET" if request.query.contains_key("location") => {
                Answer::xml(200, crate::LOCATION.to_owned())
            }
            "GET" => list(
                &request.bucket,
                &store.buckets[&request.bucket],
                &request.query,
            ),
            _ => Answer::error(400, "NotImplemented"),
        };
    }
    let Some(bucket) = store.buckets.get(&request.bucket) else {
        return Answer::error(404, "NoSuchBucket");
    };
    match method {
        "PUT" => {
            let object = match request.headers.get("x-amz-copy-source") {
                Some(source) => {
                    let source = decode(source.trim_start_matches('/'));
                    let (from_bucket, from_key) = source.split_once('/').unwrap_or((&source, ""));
                    let from_key = from_key.split("?versionId=").next().unwrap_or_default();
                    let Some(found) = store
                        .buckets
                        .get(from_bucket)
                        .and_then(|b| b.get(from_key))
                        .cloned()
                    else {
                        return Answer::error(404, "NoSuchKey");
                    };
                    let wanted = request.headers.get("x-amz-copy-source-if-match");
                    if wanted.is_some_and(|w| w.trim_matches('"') != found.etag) {
                        return Answer::error(412, "PreconditionFailed");
                    }
                    found
                }
                None => Object {
                    etag: etag_of(&request.body),
                    body: Arc::new(request.body.clone()),
                    modified: now(),
                },
            };
            let modified = now();
            let etag = object.etag.clone();
            let copy = request.headers.contains_key("x-amz-copy-source");
            if let Some(bucket) = store.buckets.get_mut(&request.bucket) {
                bucket.insert(
                    request.key.clone(),
                    Object {
                        modified: modified.clone(),
                        ..object
                    },
                );
            }
            if copy {
                Answer::xml(
                    200,
                    format!(
                        "<CopyObjectResult><ETag>\"{etag}\"</ETag><LastModified>{}</LastModified></CopyObjectResult>",
                        modified.0
                    ),
                )
            } else {
                let mut answer = Answer::empty(200);
                answer.headers.push(("ETag".into(), format!("\"{etag}\"")));
                answer
            }
        }
        "DELETE" => {
            if let Some(bucket) = store.buckets.get_mut(&request.bucket) {
                bucket.remove(&request.key);
            }
            Answer::empty(204)
        }
        "GET" | "HEAD" => {
            let Some(object) = bucket.get(&request.key) else {
                return Answer::error(404, "NoSuchKey");
            };
            if request.query.contains_key("tagging") {
                return Answer::xml(200, "<Tagging><TagSet></TagSet></Tagging>".into());
            }
            let mut answer = Answer {
                status: 200,
                headers: vec![
                    ("ETag".into(), format!("\"{}\"", object.etag)),
                    ("Last-Modified".into(), object.modified.1.clone()),
                    ("Content-Type".into(), "binary/octet-stream".into()),
                ],
                body: if method == "GET" {
                    object.body.to_vec()
                } else {
                    vec![]
                },
                head_length: None,
            };
            if method == "HEAD" {
                answer.head_length = Some(object.body.len());
            }
            answer
        }
        _ => Answer::error(400, "NotImplemented"),
    }
}

fn list(name: &str, bucket: &BTreeMap<String, Object>, query: &BTreeMap<String, String>) -> Answer {
    let v2 = query.get("list-type").map(String::as_str) == Some("2");
    let empty = String::new();
    let prefix = query.get("prefix").unwrap_or(&empty);
    let delimiter = query.get("delimiter").filter(|d| !d.is_empty());
    let max = query
        .get("max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000usize)
        .min(1000);
    let url = query.get("encoding-type").map(String::as_str) == Some("url");
    let after = match (v2, query.get("continuation-token")) {
        (true, Some(token)) => unhex(token),
        (true, None) => query.get("start-after").cloned().unwrap_or_default(),
        (false, _) => query.get("marker").cloned().unwrap_or_default(),
    };
    let show = |text: &str| {
        if url { encode(text) } else { escape(text) }
    };
    let mut contents = String::new();
    let mut prefixes = String::new();
    let mut count = 0;
    let mut last = String::new();
    let mut truncated = false;
    // A page that ended on a common prefix goes on past all of it, as S3's
    // does (its marker is the prefix itself).
    let mut skip_under: Option<String> = delimiter.and_then(|d| {
        (after.starts_with(prefix.as_str())
            && after.ends_with(d.as_str())
            && after.len() > prefix.len())
        .then(|| after.clone())
    });
    let start = std::ops::Bound::Excluded(after.clone());
    for (key, object) in bucket.range::<String, _>((start, std::ops::Bound::Unbounded)) {
        if !key.starts_with(prefix.as_str()) {
            if key.as_str() > prefix.as_str() {
                break;
            }
            continue;
        }
        if skip_under
            .as_ref()
            .is_some_and(|under| key.starts_with(under.as_str()))
        {
            continue;
        }
        let common = delimiter.and_then(|d| {
            key[prefix.len()..]
                .find(d.as_str())
                .map(|at| key[..prefix.len() + at + d.len()].to_owned())
        });
        if count == max {
            truncated = true;
            break;
        }
        count += 1;
        match common {
            Some(common) => {
                prefixes.push_str(&format!(
                    "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                    show(&common)
                ));
                last = common.clone();
                skip_under = Some(common);
            }
            None => {
                contents.push_str(&format!(
                    "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>\"{}\"</ETag>\
                     <Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                    show(key),
                    object.modified.0,
                    object.etag,
                    object.body.len()
                ));
                last = key.clone();
            }
        }
    }
    let next = last;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>");
    xml.push_str(&format!(
        "<Name>{name}</Name><Prefix>{}</Prefix><MaxKeys>{max}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
        show(prefix)
    ));
    if let Some(d) = delimiter {
        xml.push_str(&format!("<Delimiter>{}</Delimiter>", show(d)));
    }
    if url {
        xml.push_str("<EncodingType>url</EncodingType>");
    }
    if v2 {
        xml.push_str(&format!("<KeyCount>{count}</KeyCount>"));
        if truncated {
            xml.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                hex(&next)
            ));
        }
    } else {
        xml.push_str(&format!("<Marker>{}</Marker>", show(&after)));
        if truncated {
            xml.push_str(&format!("<NextMarker>{}</NextMarker>", show(&next)));
        }
    }
    xml.push_str(&contents);
    xml.push_str(&prefixes);
    xml.push_str("</ListBucketResult>");
    Answer::xml(200, xml)
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(token: &str) -> String {
    let bytes: Vec<u8> = (0..token.len() / 2)
        .filter_map(|i| u8::from_str_radix(token.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Percent-encodes all but unreserved characters and `/`.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
