//! One access-log line per request: through the process log (`weir::access`, text), or as
//! JSON or text lines handed to the [`sink`], which writes them off the request path.

pub mod sink;
mod time;

use crate::filter::chain::Report;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use serde::Serialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// How access log lines are written when they bypass the process log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// JSON objects or text.
    pub format: Format,
    /// Where they go.
    pub destination: Destination,
    /// Whether the query string is logged.
    pub query: bool,
    /// Request headers logged, each with whether its value is redacted.
    pub headers: Vec<(HeaderName, bool)>,
    /// Bytes of lines each worker may hold before the writer takes them.
    pub buffer: usize,
}

/// A line's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// `key=value` text.
    Text,
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The process's standard output.
    Stdout,
    /// Its standard error.
    Stderr,
    /// A file, appended to (reopened on SIGUSR1, for logrotate).
    File(PathBuf),
}

/// What the log line needs from the start of a request.
pub struct AccessLog {
    start: Instant,
    /// The client: the peer until the request's client address is settled.
    pub client: IpAddr,
    method: Method,
    uri: Uri,
    version: Version,
    /// Host, user agent, referer and the configured headers, as the client sent them.
    host: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    headers: Vec<(HeaderName, Option<HeaderValue>, bool)>,
    /// The request id, once settled (refused requests may have none).
    pub request_id: Option<HeaderValue>,
    /// The W3C trace id, once settled.
    pub trace_id: Option<HeaderValue>,
}

/// A value written through its `Display` (no `String` made for it).
struct Shown<T>(T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// The logged request headers, as a JSON object.
struct Headers<'a>(&'a [(HeaderName, Option<HeaderValue>, bool)]);

impl Serialize for Headers<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (name, value, hidden) in self.0 {
            if value.is_some() {
                let shown = if *hidden { "[redacted]" } else { text(value) };
                map.serialize_entry(name.as_str(), shown)?;
            }
        }
        map.end()
    }
}

impl Headers<'_> {
    fn is_empty(&self) -> bool {
        self.0.iter().all(|(_, v, _)| v.is_none())
    }
}

/// The line as JSON.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    request_id: &'a str,
    trace_id: &'a str,
    client: Shown<IpAddr>,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    protocol: &'a str,
    scheme: &'a str,
    status: u16,
    duration_ms: f64,
    route: &'a str,
    upstream: &'a str,
    target: Shown<&'a dyn std::fmt::Display>,
    filters: Shown<&'a Report<'a>>,
    user_agent: &'a str,
    referer: &'a str,
    #[serde(skip_serializing_if = "Headers::is_empty")]
    headers: Headers<'a>,
}

fn text(v: &Option<HeaderValue>) -> &str {
    v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-")
}

impl AccessLog {
    /// Remember the request as the client sent it; `output` is where the line goes (`None`:
    /// the process log).
    pub fn begin(
        client: IpAddr,
        parts: &http::request::Parts,
        start: Instant,
        output: Option<&Arc<Output>>,
    ) -> Self {
        let header = |name: &HeaderName| parts.headers.get(name).cloned();
        let (host, user_agent, referer, headers) = match output {
            None => (None, None, None, Vec::new()),
            Some(o) => (
                parts
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                    .or_else(|| header(&http::header::HOST)),
                header(&http::header::USER_AGENT),
                header(&http::header::REFERER),
                o.headers
                    .iter()
                    .map(|(name, hidden)| (name.clone(), header(name), *hidden))
                    .collect(),
            ),
        };
        AccessLog {
            start,
            client,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            host,
            user_agent,
            referer,
            headers,
            request_id: None,
            trace_id: None,
        }
    }

    /// Write the line once the response head is known. The duration runs to the response
    /// head; bodies stream on afterwards.
    pub fn finish(
        self,
        output: Option<&Output>,
        status: StatusCode,
        route: Option<&str>,
        upstream: Option<&str>,
        target: Option<&Authority>,
        filters: &Report<'_>,
    ) {
        let micros = self.start.elapsed().as_micros();
        let id = self
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let Some(output) = output else {
            tracing::info!(
                target: "weir::access",
                id = %id,
                client = %self.client,
                method = %self.method,
                path = self.uri.path(),
                status = status.as_u16(),
                upstream = upstream.unwrap_or("-"),
                target = %target.map_or("-", |t| t.as_str()),
                duration_ms = format_args!("{}.{:03}", micros / 1000, micros % 1000),
                filters = %filters,
            );
            return;
        };
        let time = time::rfc3339_millis(SystemTime::now());
        let target: &dyn std::fmt::Display = match target {
            Some(t) => t,
            None => &"-",
        };
        let line = JsonLine {
            time: time.as_str(),
            request_id: id,
            trace_id: text(&self.trace_id),
            client: Shown(self.client),
            method: self.method.as_str(),
            host: text(&self.host),
            path: self.uri.path(),
            query: if output.query { self.uri.query() } else { None },
            protocol: match self.version {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_3 => "HTTP/3",
                _ => "HTTP/1.1",
            },
            scheme: self.uri.scheme_str().unwrap_or("http"),
            status: status.as_u16(),
            duration_ms: micros as f64 / 1000.0,
            route: route.unwrap_or("-"),
            upstream: upstream.unwrap_or("-"),
            target: Shown(target),
            filters: Shown(filters),
            user_agent: text(&self.user_agent),
            referer: text(&self.referer),
            headers: Headers(&self.headers),
        };
        LINE.with(|buf| {
            let mut bytes = buf.borrow_mut();
            bytes.clear();
            let written = match output.format {
                Format::Json => serde_json::to_writer(&mut *bytes, &line).is_ok(),
                Format::Text => write_text(&mut bytes, &line).is_ok(),
            };
            if written {
                bytes.push(b'\n');
                sink::global().push(&bytes, output.buffer);
            }
        });
    }
}

thread_local! {
    /// The line being formatted, reused.
    static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

/// `key=value` pairs, values quoted when they hold spaces or quotes.
fn write_text(out: &mut Vec<u8>, l: &JsonLine<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let q = |v: &str| {
        if v.is_empty() || v.contains([' ', '"', '\\']) || v.chars().any(char::is_control) {
            serde_json::to_string(v).unwrap_or_default()
        } else {
            v.to_string()
        }
    };
    write!(
        out,
        "time={} id={} trace={} client={} method={} host={} path={}",
        l.time,
        q(l.request_id),
        l.trace_id,
        l.client.0,
        q(l.method),
        q(l.host),
        q(l.path)
    )?;
    if let Some(query) = l.query {
        write!(out, " query={}", q(query))?;
    }
    write!(
        out,
        " protocol={} status={} duration_ms={:.3} route={} upstream={} target={} filters={} user_agent={} referer={}",
        l.protocol,
        l.status,
        l.duration_ms,
        q(l.route),
        q(l.upstream),
        q(&l.target.0.to_string()),
        q(&l.filters.0.to_string()),
        q(l.user_agent),
        q(l.referer)
    )?;
    for (name, value, hidden) in l.headers.0 {
        if value.is_some() {
            let shown = if *hidden { "[redacted]" } else { text(value) };
            write!(out, " {name}={}", q(shown))?;
        }
    }
    Ok(())
}
