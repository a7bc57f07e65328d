//! What a hook returns: go on, or answer with a local response.

/// The outcome of a hook.
///
/// ```
/// use weir_sdk::{Action, LocalResponse};
/// let go_on = Action::Continue;
/// let answer = Action::Respond(LocalResponse::text(403, "forbidden\n"));
/// assert!(go_on.response().is_none());
/// assert_eq!(answer.response().map(|r| r.status), Some(403));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Go on: the next filter, then the upstream (request phase) or the client
    /// (response phase).
    Continue,
    /// Answer with this response. In the request phase the upstream is not called and the
    /// remaining request filters are skipped (filters that already ran still see it in
    /// their response phase). In the response phase it replaces the response.
    Respond(LocalResponse),
}

/// Which hooks of a filter the proxy calls (see [`crate::Filter::hooks`]), and which bodies
/// it buffers for them.
///
/// ```
/// use weir_sdk::Hooks;
/// // Only the request hook, with the request body buffered for it.
/// let hooks = Hooks::REQUEST.with_request_body();
/// assert!(hooks.on_request && hooks.request_body && !hooks.on_response);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hooks {
    /// Call `on_request`.
    pub on_request: bool,
    /// Call `on_response`.
    pub on_response: bool,
    /// Buffer the request body for `on_request` ([`crate::Request::body`]).
    pub request_body: bool,
    /// Buffer the response body for `on_response` ([`crate::Response::body`]).
    pub response_body: bool,
}

impl Hooks {
    /// Both hooks, no bodies.
    ///
    /// ```
    /// assert!(weir_sdk::Hooks::ALL.on_request && weir_sdk::Hooks::ALL.on_response);
    /// ```
    pub const ALL: Hooks = Hooks {
        on_request: true,
        on_response: true,
        request_body: false,
        response_body: false,
    };
    /// Only the request hook.
    ///
    /// ```
    /// let h = weir_sdk::Hooks::REQUEST;
    /// assert!(h.on_request && !h.on_response);
    /// ```
    pub const REQUEST: Hooks = Hooks {
        on_request: true,
        on_response: false,
        request_body: false,
        response_body: false,
    };
    /// Only the response hook.
    ///
    /// ```
    /// let h = weir_sdk::Hooks::RESPONSE;
    /// assert!(!h.on_request && h.on_response);
    /// ```
    pub const RESPONSE: Hooks = Hooks {
        on_request: false,
        on_response: true,
        request_body: false,
        response_body: false,
    };

    /// Also buffer the request body (up to the filter's `body-limit`) before `on_request`.
    ///
    /// ```
    /// assert!(weir_sdk::Hooks::REQUEST.with_request_body().request_body);
    /// ```
    pub const fn with_request_body(mut self) -> Self {
        self.request_body = true;
        self
    }

    /// Also buffer the response body (up to the filter's `body-limit`) before `on_response`.
    ///
    /// ```
    /// assert!(weir_sdk::Hooks::RESPONSE.with_response_body().response_body);
    /// ```
    pub const fn with_response_body(mut self) -> Self {
        self.response_body = true;
        self
    }
}

/// A response made by a filter.
///
/// ```
/// use weir_sdk::{Action, LocalResponse};
/// let r = LocalResponse::new(302).header("location", "/login");
/// let action = Action::Respond(r);
/// assert_eq!(action.response().and_then(|r| r.header_value("Location")), Some("/login"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// Status code, 100..=999.
    pub status: u16,
    /// Headers in order; repeated names are appended.
    pub headers: Vec<(String, String)>,
    /// The full body.
    pub body: Vec<u8>,
}

impl LocalResponse {
    /// An empty response with `status`.
    ///
    /// ```
    /// let r = weir_sdk::LocalResponse::new(204);
    /// assert!(r.headers.is_empty() && r.body.is_empty());
    /// ```
    pub fn new(status: u16) -> Self {
        LocalResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response with `status` and `body`.
    ///
    /// ```
    /// let r = weir_sdk::LocalResponse::text(404, "no such item\n");
    /// assert_eq!(r.header_value("content-type"), Some("text/plain; charset=utf-8"));
    /// assert_eq!(r.body, b"no such item\n");
    /// ```
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        LocalResponse::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// Add a header.
    ///
    /// ```
    /// let r = weir_sdk::LocalResponse::new(200)
    ///     .header("set-cookie", "a=1")
    ///     .header("set-cookie", "b=2"); // repeated names are both sent
    /// assert_eq!(r.headers.len(), 2);
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    ///
    /// ```
    /// let r = weir_sdk::LocalResponse::new(200)
    ///     .header("content-type", "application/json")
    ///     .body(r#"{"ok":true}"#);
    /// assert_eq!(r.body, br#"{"ok":true}"#);
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive), if any.
    ///
    /// ```
    /// let r = weir_sdk::LocalResponse::new(429).header("Retry-After", "30");
    /// assert_eq!(r.header_value("retry-after"), Some("30"));
    /// assert_eq!(r.header_value("x-missing"), None);
    /// ```
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Action {
    /// Shorthand for `Action::Respond(LocalResponse::text(status, body))`.
    ///
    /// ```
    /// use weir_sdk::Action;
    /// assert_eq!(Action::respond_text(401, "who are you?\n").response().map(|r| r.status), Some(401));
    /// ```
    pub fn respond_text(status: u16, body: impl Into<String>) -> Self {
        Action::Respond(LocalResponse::text(status, body))
    }

    /// The local response, if this action is one.
    ///
    /// ```
    /// use weir_sdk::Action;
    /// assert!(Action::Continue.response().is_none());
    /// assert_eq!(Action::respond_text(503, "").response().map(|r| r.status), Some(503));
    /// ```
    pub fn response(&self) -> Option<&LocalResponse> {
        match self {
            Action::Continue => None,
            Action::Respond(r) => Some(r),
        }
    }
}
