//! Running a route's filters: `on-request` in manifest order; `on-response` in reverse over
//! the filters whose request hook ran. A local response stops the request phase and is still
//! seen by the response phase of the filters that ran (the responding one included). A
//! failing filter answers the request with 500 and the proxy keeps serving. Hooks a filter
//! did not ask for in `init` are skipped.

use super::{CallError, Filter, LocalResponse, RequestHead, Verdict};
use crate::body::Body;
use crate::error::ProxyError;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use std::fmt;
use std::sync::Arc;

/// What a filter did to a request, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Changed the request or response.
    Changed,
    /// Answered the request or replaced the response.
    Responded,
    /// Trapped or returned something invalid.
    Failed,
}

/// The filters that acted on one request.
#[derive(Debug, Default)]
pub struct Report<'a> {
    acts: Vec<(&'a str, Act)>,
}

impl<'a> Report<'a> {
    fn record(&mut self, filter: &'a str, act: Act) {
        self.acts.push((filter, act));
    }

    /// Entries in the order they happened.
    pub fn acts(&self) -> &[(&'a str, Act)] {
        &self.acts
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.acts.is_empty() {
            return f.write_str("-");
        }
        for (i, (name, act)) in self.acts.iter().enumerate() {
            let act = match act {
                Act::Changed => "changed",
                Act::Responded => "responded",
                Act::Failed => "failed",
            };
            write!(f, "{}{name}:{act}", if i > 0 { "," } else { "" })?;
        }
        Ok(())
    }
}

/// Run the request phase. Returns how many filters ran their request hook and, if the
/// chain answered the request, the response.
pub async fn on_request<'a>(
    filters: &'a [Arc<Filter>],
    head: &mut RequestHead,
    report: &mut Report<'a>,
) -> (usize, Option<Response<Body>>) {
    for (i, filter) in filters.iter().enumerate() {
        if !filter.wants_request() {
            continue;
        }
        match filter.on_request(head).await {
            Ok(r) => {
                if let Verdict::Respond(local) = r.verdict {
                    return (i + 1, Some(respond(filter, local, report)));
                }
                if r.changed {
                    report.record(filter.name(), Act::Changed);
                }
            }
            Err(e) => return (i, Some(failed(filter, e, report))),
        }
    }
    (filters.len(), None)
}

/// Run the response phase over `filters` (those whose request hook ran), last first.
pub async fn on_response<'a>(
    filters: &'a [Arc<Filter>],
    head: &mut RequestHead,
    response: Response<Body>,
    report: &mut Report<'a>,
) -> Response<Body> {
    let (mut parts, mut body) = response.into_parts();
    for filter in filters.iter().rev().filter(|f| f.wants_response()) {
        match filter.on_response(head, &mut parts).await {
            Ok(r) => match r.verdict {
                Verdict::Respond(local) => {
                    (parts, body) = respond(filter, local, report).into_parts();
                }
                Verdict::Continue if r.changed => report.record(filter.name(), Act::Changed),
                Verdict::Continue => {}
            },
            Err(e) => (parts, body) = failed(filter, e, report).into_parts(),
        }
    }
    Response::from_parts(parts, body)
}

fn respond<'a>(
    filter: &'a Filter,
    local: LocalResponse,
    report: &mut Report<'a>,
) -> Response<Body> {
    match local_response(local) {
        Ok(resp) => {
            report.record(filter.name(), Act::Responded);
            resp
        }
        Err(why) => failed(filter, CallError::InvalidResponse(why), report),
    }
}

fn failed<'a>(filter: &'a Filter, error: CallError, report: &mut Report<'a>) -> Response<Body> {
    tracing::error!(
        filter = filter.name(),
        "filter failed, answering 500: {error}"
    );
    report.record(filter.name(), Act::Failed);
    ProxyError::FilterFailed.response()
}

/// Turn a filter's local response into an HTTP response, refusing invalid parts.
pub fn local_response(local: LocalResponse) -> Result<Response<Body>, String> {
    let status = StatusCode::from_u16(local.status)
        .map_err(|_| format!("status {} is not in 100..=999", local.status))?;
    let mut resp = Response::new(Body::full(local.body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    for (name, value) in local.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let v = HeaderValue::try_from(value)
            .map_err(|_| format!("invalid value for header {name:?}"))?;
        headers.append(n, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_responses_are_validated() {
        let ok = local_response(LocalResponse {
            status: 403,
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("x-a".into(), "1".into()),
                ("x-a".into(), "2".into()),
            ],
            body: b"no".to_vec(),
        })
        .unwrap();
        assert_eq!(ok.status(), 403);
        assert_eq!(ok.headers().get_all("x-a").iter().count(), 2);
        let bad = |status, name: &str, value: &str| {
            local_response(LocalResponse {
                status,
                headers: vec![(name.into(), value.into())],
                body: vec![],
            })
            .unwrap_err()
        };
        assert!(bad(42, "x", "y").contains("status 42"));
        assert!(bad(200, "bad name", "y").contains("invalid header name"));
        assert!(bad(200, "x", "a\nb").contains("invalid value"));
    }

    #[test]
    fn report_lists_acts_in_order() {
        let mut r = Report::default();
        assert_eq!(r.to_string(), "-");
        r.record("tag", Act::Changed);
        r.record("auth", Act::Responded);
        assert_eq!(r.to_string(), "tag:changed,auth:responded");
    }
}
