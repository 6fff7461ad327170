//! An in-process AWS endpoint for unit tests: it answers each request by
//! route and records it, so tests can see exactly what s3fan sent (moto
//! ignores some of it, such as `x-amz-copy-source-if-match`, and cannot show
//! a request's exact body).

use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Status, extra headers and body. A header `x-test-delay-ms` makes the
/// answer come that late, to outlast a deadline.
pub type Reply = (u16, Vec<(&'static str, String)>, String);
pub type Route = fn(&str, &str) -> Reply;

/// Serves `route` on a free loopback port; returns an S3 client for it and
/// the requests received, each as `METHOD target`, then the raw request head
/// and its body.
pub async fn serve(route: Route) -> (Client, Arc<Mutex<Vec<String>>>) {
    let (endpoint, seen) = listen(route).await;
    (client(&endpoint), seen)
}

/// A route that also reads the request's body: query-protocol APIs (IAM,
/// SQS, STS) send every action as `POST /`, named in the body.
pub type BodyRoute = fn(&str, &str, &str) -> Reply;

/// Serves `route` on a free loopback port; returns its endpoint URL and the
/// requests received, as `serve` does.
pub async fn listen(route: Route) -> (String, Arc<Mutex<Vec<String>>>) {
    listen_answering(Arc::new(move |method, target, _| route(method, target))).await
}

/// `listen`, for a route that reads bodies.
pub async fn listen_with_bodies(route: BodyRoute) -> (String, Arc<Mutex<Vec<String>>>) {
    listen_answering(Arc::new(route)).await
}

pub type Answer = Arc<dyn Fn(&str, &str, &str) -> Reply + Send + Sync>;

/// The most requests the endpoint was answering at once.
pub type MostInFlight = Arc<std::sync::atomic::AtomicUsize>;

/// Serves a route that may hold state (a closure); also counts the most
/// requests in flight at once, to show that a client overlaps them.
pub async fn serve_answering(route: Answer) -> (Client, Arc<Mutex<Vec<String>>>, MostInFlight) {
    let most = MostInFlight::default();
    let (endpoint, seen) = listen_counting(route, most.clone()).await;
    (client(&endpoint), seen, most)
}

async fn listen_answering(route: Answer) -> (String, Arc<Mutex<Vec<String>>>) {
    listen_counting(route, MostInFlight::default()).await
}

async fn listen_counting(route: Answer, most: MostInFlight) -> (String, Arc<Mutex<Vec<String>>>) {
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            let route = route.clone();
            let (most, in_flight) = (most.clone(), in_flight.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let length = header(&head, "content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                let _ = stream.read_exact(&mut body).await;
                let mut request_line = head.lines().next().unwrap_or_default().split(' ');
                let method = request_line.next().unwrap_or_default().to_owned();
                let target = request_line.next().unwrap_or_default().to_owned();
                log.lock().unwrap().push(format!(
                    "{method} {target}\n{head}{}",
                    String::from_utf8_lossy(&body)
                ));
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let (status, headers, body) =
                    route(&method, &target, &String::from_utf8_lossy(&body));
                if let Some((_, ms)) = headers.iter().find(|(name, _)| *name == "x-test-delay-ms") {
                    let ms = ms.parse().unwrap_or(0);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                let mut response = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                for (name, value) in headers {
                    response.push_str(&format!("{name}: {value}\r\n"));
                }
                if method != "HEAD" {
                    response.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                response.push_str("\r\n");
                response.push_str(&body);
                let _ = stream.write_all(response.as_bytes()).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (endpoint, seen)
}

/// A client for `endpoint` with retries off, so each failure is seen once.
pub fn client(endpoint: &str) -> Client {
    Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .force_path_style(true)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// The body of a recorded request.
pub fn body(recorded: &str) -> &str {
    recorded.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// A header's value in a recorded request head; names match in any case.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
}
