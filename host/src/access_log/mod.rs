//! One access-log line per request: through the process log (`weir::access`, text), or as
//! JSON or text lines handed to the [`sink`], which writes them off the request path.

use crate::json;
pub mod sink;
mod time;

use crate::filter::chain::Report;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

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
    /// Host, user agent, referer and the configured headers (in [`Output::headers`]'s
    /// order), as the client sent them.
    host: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    headers: Vec<Option<HeaderValue>>,
    /// The request id, once settled (refused requests may have none).
    pub request_id: Option<HeaderValue>,
    /// The settled W3C `traceparent` (its trace id is logged).
    pub traceparent: Option<HeaderValue>,
}

/// How a request was answered, as its log line reports it.
pub struct Served<'a> {
    /// The response's status.
    pub status: StatusCode,
    /// The route that took it, the upstream it went to and the target that answered.
    pub route: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub target: Option<&'a Authority>,
    /// What the filters did.
    pub filters: &'a Report<'a>,
}

/// The line's fields.
struct Line<'a> {
    time: &'a str,
    request_id: &'a str,
    trace_id: &'a str,
    client: IpAddr,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    protocol: &'a str,
    scheme: &'a str,
    status: u16,
    duration_us: u64,
    route: &'a str,
    upstream: &'a str,
    target: &'a str,
    filters: &'a Report<'a>,
    user_agent: &'a str,
    referer: &'a str,
    /// The configured headers (name, redacted) and the request's values of them.
    header_names: &'a [(HeaderName, bool)],
    headers: &'a [Option<HeaderValue>],
}

fn text(v: &Option<HeaderValue>) -> &str {
    v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-")
}

impl Line<'_> {
    /// The configured headers the request had, as logged: (name, value or `[redacted]`).
    fn logged_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_names
            .iter()
            .zip(self.headers)
            .filter(|(_, v)| v.is_some())
            .map(|((name, hidden), value)| {
                let shown = if *hidden { "[redacted]" } else { text(value) };
                (name.as_str(), shown)
            })
    }
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
                o.headers.iter().map(|(name, _)| header(name)).collect(),
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
            traceparent: None,
        }
    }

    /// Write the line once the response head is known, at `now`. The duration runs to the
    /// response head; bodies stream on afterwards.
    pub fn finish(self, now: Instant, output: Option<&Output>, served: Served<'_>) {
        let Served {
            status,
            route,
            upstream,
            target,
            filters,
        } = served;
        let micros = now.saturating_duration_since(self.start).as_micros();
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
        let time = time::rfc3339_millis(time::wall(now));
        let target = target.map_or("-", |t| t.as_str());
        let line = Line {
            time: time.as_str(),
            request_id: id,
            trace_id: self
                .traceparent
                .as_ref()
                .and_then(crate::request::trace::trace_id_of)
                .unwrap_or("-"),
            client: self.client,
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
            duration_us: u64::try_from(micros).unwrap_or(u64::MAX),
            route: route.unwrap_or("-"),
            upstream: upstream.unwrap_or("-"),
            target,
            filters,
            user_agent: text(&self.user_agent),
            referer: text(&self.referer),
            header_names: &output.headers,
            headers: &self.headers,
        };
        // Formatted straight into this worker's buffer: no copy of the line.
        sink::global().push_with(output.buffer, |bytes| {
            let start = bytes.len();
            let written = match output.format {
                Format::Json => {
                    write_json(bytes, &line);
                    true
                }
                Format::Text => write_text(bytes, &line).is_ok(),
            };
            if written {
                bytes.push(b'\n');
            } else {
                bytes.truncate(start);
            }
        });
    }
}

/// One JSON object.
fn write_json(out: &mut Vec<u8>, l: &Line<'_>) {
    let mut o = json::Object::open(out);
    o.str("time", l.time);
    o.str("request_id", l.request_id);
    o.str("trace_id", l.trace_id);
    o.ip("client", l.client);
    o.str("method", l.method);
    o.str("host", l.host);
    o.str("path", l.path);
    if let Some(query) = l.query {
        o.str("query", query);
    }
    o.str("protocol", l.protocol);
    o.str("scheme", l.scheme);
    o.uint("status", u64::from(l.status));
    o.millis("duration_ms", l.duration_us);
    o.str("route", l.route);
    o.str("upstream", l.upstream);
    o.str("target", l.target);
    if l.filters.acts().is_empty() {
        o.str("filters", "-");
    } else {
        o.display("filters", l.filters);
    }
    o.str("user_agent", l.user_agent);
    o.str("referer", l.referer);
    let mut headers = l.logged_headers().peekable();
    if headers.peek().is_some() {
        let mut h = o.object("headers");
        for (name, value) in headers {
            h.str(name, value);
        }
        h.close();
    }
    o.close();
}

/// `key=value` pairs, values quoted when they hold spaces or quotes.
fn write_text(out: &mut Vec<u8>, l: &Line<'_>) -> std::io::Result<()> {
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
        l.client,
        q(l.method),
        q(l.host),
        q(l.path)
    )?;
    if let Some(query) = l.query {
        write!(out, " query={}", q(query))?;
    }
    write!(
        out,
        " protocol={} status={} duration_ms={}.{:03} route={} upstream={} target={} filters={} user_agent={} referer={}",
        l.protocol,
        l.status,
        l.duration_us / 1000,
        l.duration_us % 1000,
        q(l.route),
        q(l.upstream),
        q(l.target),
        q(&l.filters.to_string()),
        q(l.user_agent),
        q(l.referer)
    )?;
    for (name, value) in l.logged_headers() {
        write!(out, " {name}={}", q(value))?;
    }
    Ok(())
}
