//! Errors the proxy answers itself, as small plain-text responses without internal details.

use crate::body::Body;
use http::{header, HeaderValue, Response, StatusCode};

/// Why the proxy answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No route matches the host and path.
    #[error("no route matches")]
    NoRoute,
    /// The upstream refused or dropped the connection, or sent a bad response.
    #[error("upstream unavailable")]
    BadGateway,
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    GatewayTimeout,
    /// No backend can take the request (all drained).
    #[error("service unavailable")]
    Unavailable,
    /// A fail-closed filter failed; the request is answered with this status.
    #[error("filter failed")]
    FilterFailed(StatusCode),
    /// The request body is larger than a filter that buffers it allows.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request could not be forwarded (e.g. an unrepresentable header after filtering).
    #[error("request could not be forwarded")]
    Internal,
}

impl ProxyError {
    /// The status this error answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BadGateway => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::FilterFailed(status) => status,
            ProxyError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: status line text as a plain-text body.
    pub fn response(self) -> Response<Body> {
        let status = self.status();
        let text = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let mut resp = Response::new(Body::full(text));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}
