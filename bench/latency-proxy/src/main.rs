//! `latency-proxy UPSTREAM DELAY_MS LIST_DELAY_MS`: listens on a free
//! loopback port (printed on stdout), and relays every connection to
//! UPSTREAM (host:port), holding each request for DELAY_MS before it goes
//! on, or LIST_DELAY_MS when it lists a bucket. Answers come back at once:
//! the delay stands for the whole round trip, as a far-away S3 would add.
//!
//! A request is a chunk that starts with an HTTP method: clients write a
//! request's head in one go and wait for its answer before the next
//! (HTTP/1.1 without pipelining), so body chunks pass undelayed.
//!
//! `latency-proxy memory DELAY_MS LIST_DELAY_MS` is an S3 of its own,
//! held in memory (`memory.rs`), for a server that is not the bottleneck.
//!
//! One request is answered here, not forwarded: GetBucketLocation
//! (`GET /bucket?location`), with S3's own document for us-east-1.
//! SeaweedFS answers it with another root element, which the Rust SDK
//! rejects; the region is all any client here asks it for.

mod memory;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

pub(crate) const LOCATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>";

#[derive(Clone, Copy)]
pub(crate) struct Delays {
    request: Duration,
    list: Duration,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [upstream, delay, list] = &args[..] else {
        eprintln!("usage: latency-proxy UPSTREAM_HOST:PORT|memory DELAY_MS LIST_DELAY_MS");
        std::process::exit(2);
    };
    let ms = |text: &str| match text.parse::<f64>() {
        Ok(ms) if ms >= 0.0 => Duration::from_secs_f64(ms / 1000.0),
        _ => {
            eprintln!("latency-proxy: {text:?} is not a number of milliseconds");
            std::process::exit(2);
        }
    };
    let delays = Delays {
        request: ms(delay),
        list: ms(list),
    };
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("latency-proxy: cannot listen on loopback: {err}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(address) => println!("{}", address.port()),
        Err(err) => {
            eprintln!("latency-proxy: no local address: {err}");
            std::process::exit(1);
        }
    }
    if upstream == "memory" {
        return memory::serve(listener, delays).await;
    }
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let _ = relay(client, &upstream, delays).await;
        });
    }
}

async fn relay(client: TcpStream, upstream: &str, delays: Delays) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (mut from_client, to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Shared by the answers and the location shim: the client waits for
    // one answer before its next request, so the two never interleave.
    let to_client = std::sync::Arc::new(Mutex::new(to_client));
    let answering = to_client.clone();
    let requests = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = from_client.read(&mut buffer).await?;
            if n == 0 {
                return to_server.shutdown().await;
            }
            let chunk = &buffer[..n];
            if let Some(target) = request_target(chunk) {
                if std::env::var_os("LATENCY_PROXY_LOG").is_some() {
                    eprintln!("{target}");
                }
                if chunk.starts_with(b"GET ") && target.ends_with("?location") {
                    tokio::time::sleep(delays.request).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n\
                         Content-Length: {}\r\n\r\n{LOCATION}",
                        LOCATION.len()
                    );
                    to_client.lock().await.write_all(answer.as_bytes()).await?;
                    continue;
                }
                let wait = if lists_a_bucket(chunk, target) {
                    delays.list
                } else {
                    delays.request
                };
                tokio::time::sleep(wait).await;
            }
            to_server.write_all(chunk).await?;
        }
    };
    let answers = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = from_server.read(&mut buffer).await?;
            let mut to_client = answering.lock().await;
            if n == 0 {
                return to_client.shutdown().await;
            }
            to_client.write_all(&buffer[..n]).await?;
        }
    };
    tokio::try_join!(requests, answers).map(|_| ())
}

/// The target of the request line a chunk starts with, if it starts one.
fn request_target(chunk: &[u8]) -> Option<&str> {
    let line = chunk.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let method = words.next()?;
    let target = words.next()?;
    let known = ["GET", "PUT", "POST", "HEAD", "DELETE"].contains(&method);
    (known && target.starts_with('/') && words.next()?.starts_with("HTTP/")).then_some(target)
}

/// `GET /bucket?list-type=2...` (or V1's `GET /bucket/?prefix=...`): a
/// listing, in the path-style addressing every client here uses.
fn lists_a_bucket(chunk: &[u8], target: &str) -> bool {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let one_segment = path.trim_matches('/').split('/').count() == 1 && path.len() > 1;
    let bucket_query = [
        "location",
        "uploads",
        "tagging",
        "versioning",
        "policy",
        "acl",
    ]
    .iter()
    .any(|sub| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(*sub))
    });
    chunk.starts_with(b"GET ") && one_segment && !bucket_query
}
