//! Running a route's filters: `on-request` in manifest order; `on-response` in reverse over
//! the filters whose request hook ran. A local response stops the request phase and is still
//! seen by the response phase of the filters that ran (the responding one included). Hooks a
//! filter did not ask for in `init` are skipped.
//!
//! A filter that traps, runs out of a budget or returns an invalid response fails only its
//! own request, as its policy says: `fail-closed` answers with the configured status (503 by
//! default, no internal detail in the body); `fail-open` undoes what the filter changed and
//! goes on without it.
//!
//! Bodies are buffered only when a filter asked for them in `init`: the request body before
//! the request phase (beyond the smallest `body-limit` of the asking filters: 413), the
//! response body before the response phase (beyond it: 502).

use super::{CallError, Filter, HookResult, LocalResponse, RequestHead, ResponseHead, Verdict};
use crate::body::Body;
use crate::config::FailurePolicy;
use crate::error::ProxyError;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use std::fmt;
use std::sync::Arc;

/// What a filter did to a request, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Act {
    /// Changed the request or response. (The default only fills a report's unused slots.)
    #[default]
    Changed,
    /// Answered the request or replaced the response.
    Responded,
    /// Failed, and the request was answered per `fail-closed`.
    Failed,
    /// Failed, and was skipped per `fail-open`.
    Skipped,
}

/// The filters that acted on one request: the first few in place, so that a request whose
/// filters change it allocates nothing for its report.
#[derive(Debug, Default)]
pub struct Report<'a> {
    first: [(&'a str, Act); INLINE_ACTS],
    /// Entries in `first`.
    len: usize,
    /// All entries, once there are more than `first` holds.
    all: Vec<(&'a str, Act)>,
}

const INLINE_ACTS: usize = 4;

impl<'a> Report<'a> {
    fn record(&mut self, filter: &'a str, act: Act) {
        // `first` fills before anything goes to `all`, so once `all` is used `first` is full.
        if let Some(slot) = self.first.get_mut(self.len) {
            *slot = (filter, act);
            self.len += 1;
        } else {
            if self.all.is_empty() {
                self.all.extend_from_slice(&self.first);
            }
            self.all.push((filter, act));
        }
    }

    /// Entries in the order they happened.
    pub fn acts(&self) -> &[(&'a str, Act)] {
        if self.all.is_empty() {
            self.first.get(..self.len).unwrap_or_default()
        } else {
            &self.all
        }
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.acts().is_empty() {
            return f.write_str("-");
        }
        for (i, (name, act)) in self.acts().iter().enumerate() {
            let act = match act {
                Act::Changed => "changed",
                Act::Responded => "responded",
                Act::Failed => "failed",
                Act::Skipped => "skipped",
            };
            write!(f, "{}{name}:{act}", if i > 0 { "," } else { "" })?;
        }
        Ok(())
    }
}

/// What one hook call came to, once the failure policy is applied.
enum Outcome {
    /// Go on (the filter may have changed things).
    Continue,
    /// The filter answered (or replaced the response) with this.
    Respond(Response<Body>),
    /// The filter failed and its policy answers with this; the filter is not called again
    /// for this request.
    Failed(Response<Body>),
}

/// Apply the filter's verdict or its failure policy. `undo` restores what the filter saw
/// before the call, for `fail-open` (a call that trapped has restored it already).
fn outcome<'a>(
    filter: &'a Filter,
    result: Result<HookResult, CallError>,
    report: &mut Report<'a>,
    undo: impl FnOnce(),
) -> Outcome {
    let error = match result {
        Ok(HookResult {
            verdict: Verdict::Continue,
            changed,
            ..
        }) => {
            if changed {
                report.record(filter.name(), Act::Changed);
            }
            return Outcome::Continue;
        }
        Ok(HookResult {
            verdict: Verdict::Respond(local),
            ..
        }) => match local_response(local) {
            Ok(resp) => {
                report.record(filter.name(), Act::Responded);
                return Outcome::Respond(resp);
            }
            Err(why) => {
                filter.record_failure();
                CallError::InvalidResponse(why)
            }
        },
        Err(e) => e,
    };
    if let CallError::StoreUnavailable(why) = &error {
        tracing::error!(filter = filter.name(), "answering 503: {why}");
        report.record(filter.name(), Act::Failed);
        let status = http::StatusCode::SERVICE_UNAVAILABLE;
        return Outcome::Failed(ProxyError::FilterFailed(status).response());
    }
    match filter.on_failure() {
        FailurePolicy::Closed(status) => {
            tracing::error!(
                filter = filter.name(),
                "filter failed, answering {}: {error}",
                status.as_u16()
            );
            report.record(filter.name(), Act::Failed);
            Outcome::Failed(ProxyError::FilterFailed(status).response())
        }
        FailurePolicy::Open => {
            tracing::warn!(
                filter = filter.name(),
                "filter failed, skipping it for this request (fail-open): {error}"
            );
            report.record(filter.name(), Act::Skipped);
            filter.record_skip();
            undo();
            Outcome::Continue
        }
    }
}

/// The internal span of one hook call of `filter` (traced requests only).
fn filter_span(
    filter: &Filter,
    hook: &'static str,
    began: std::time::SystemTime,
    decided: &Outcome,
) {
    use crate::otlp::span::{record, Kind, Value};
    let result = match decided {
        Outcome::Continue => "continue",
        Outcome::Respond(_) => "respond",
        Outcome::Failed(_) => "failed",
    };
    let attributes = vec![
        ("weir.filter", Value::Str(filter.name().to_string())),
        ("weir.filter.hook", Value::Str(hook.into())),
        ("weir.filter.result", Value::Str(result.into())),
    ];
    let failed = matches!(decided, Outcome::Failed(_));
    record(
        None,
        || format!("filter {} {hook}", filter.name()),
        Kind::Internal,
        began,
        attributes,
        failed,
    );
}

/// Buffer `body` up to `limit` bytes; `None` when it is larger (or the stream failed).
pub async fn buffer(body: Body, limit: usize) -> Option<Bytes> {
    http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// The smallest `body-limit` of the filters for which `wants` holds, if any.
pub fn body_limit<'a>(
    filters: impl IntoIterator<Item = &'a Arc<Filter>>,
    wants: impl Fn(&Filter) -> bool,
) -> Option<usize> {
    filters
        .into_iter()
        .filter(|f| wants(f))
        .map(|f| f.config().body_limit)
        .min()
}

/// Run the request phase. Returns how many filters ran their request hook and, if the
/// chain answered the request, the response. The request body must already be buffered
/// into `head.body` if a filter asked for it.
pub async fn on_request<'a>(
    filters: &'a [Arc<Filter>],
    head: &mut RequestHead,
    report: &mut Report<'a>,
) -> (usize, Option<Response<Body>>) {
    for (i, filter) in filters.iter().enumerate() {
        if !filter.wants_request() {
            continue;
        }
        let began = crate::otlp::span::active().then(std::time::SystemTime::now);
        let mut result = filter.on_request(head).await;
        // A failed call undid its changes itself; one that answered badly is undone here.
        let before = result.as_mut().ok().map(|r| std::mem::take(&mut r.undo));
        let undo = || before.unwrap_or_default().request(head);
        let decided = outcome(filter, result, report, undo);
        if let Some(began) = began {
            filter_span(filter, "on-request", began, &decided);
        }
        match decided {
            Outcome::Continue => {}
            Outcome::Respond(resp) => return (i + 1, Some(resp)),
            Outcome::Failed(resp) => return (i, Some(resp)),
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
    let (parts, mut body) = response.into_parts();
    let mut resp = ResponseHead { parts, body: None };
    let active = || filters.iter().rev().filter(|f| f.wants_response());
    if let Some(limit) = body_limit(active(), Filter::wants_response_body) {
        match buffer(body, limit).await {
            Some(bytes) => {
                resp.body = Some(bytes);
                body = Body::empty();
            }
            None => {
                tracing::warn!(
                    limit,
                    "response body over the filters' body-limit: answering 502"
                );
                return ProxyError::BadGateway.response();
            }
        }
    }
    for filter in active() {
        let began = crate::otlp::span::active().then(std::time::SystemTime::now);
        let mut result = filter.on_response(head, &mut resp).await;
        let before = result.as_mut().ok().map(|r| std::mem::take(&mut r.undo));
        let undo = || before.unwrap_or_default().response(&mut resp);
        let decided = outcome(filter, result, report, undo);
        if let Some(began) = began {
            filter_span(filter, "on-response", began, &decided);
        }
        if let Outcome::Respond(local) | Outcome::Failed(local) = decided {
            // Filters still to run may read the body: keep it buffered (it already is).
            let (parts, local_body) = local.into_parts();
            let bytes = buffer(local_body, usize::MAX).await.unwrap_or_default();
            resp = ResponseHead {
                parts,
                body: Some(bytes),
            };
        }
    }
    if let Some(bytes) = resp.body {
        body = Body::full(bytes);
    }
    Response::from_parts(resp.parts, body)
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

    #[test]
    fn report_keeps_every_act_past_the_inline_ones() {
        let mut r = Report::default();
        let names = ["a", "b", "c", "d", "e", "f"];
        for name in names {
            r.record(name, Act::Changed);
        }
        r.record("g", Act::Skipped);
        assert_eq!(r.acts().len(), 7);
        assert_eq!(
            r.to_string(),
            "a:changed,b:changed,c:changed,d:changed,e:changed,f:changed,g:skipped"
        );
    }
}
