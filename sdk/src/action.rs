//! What a hook returns: go on, or answer with a local response.

/// The outcome of a hook.
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
    pub const ALL: Hooks = Hooks {
        on_request: true,
        on_response: true,
        request_body: false,
        response_body: false,
    };
    /// Only the request hook.
    pub const REQUEST: Hooks = Hooks {
        on_request: true,
        on_response: false,
        request_body: false,
        response_body: false,
    };
    /// Only the response hook.
    pub const RESPONSE: Hooks = Hooks {
        on_request: false,
        on_response: true,
        request_body: false,
        response_body: false,
    };

    /// Also buffer the request body (up to the filter's `body-limit`) before `on_request`.
    pub const fn with_request_body(mut self) -> Self {
        self.request_body = true;
        self
    }

    /// Also buffer the response body (up to the filter's `body-limit`) before `on_response`.
    pub const fn with_response_body(mut self) -> Self {
        self.response_body = true;
        self
    }
}

/// A response made by a filter.
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
    pub fn new(status: u16) -> Self {
        LocalResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response with `status` and `body`.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        LocalResponse::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive), if any.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Action {
    /// Shorthand for `Action::Respond(LocalResponse::text(status, body))`.
    pub fn respond_text(status: u16, body: impl Into<String>) -> Self {
        Action::Respond(LocalResponse::text(status, body))
    }

    /// The local response, if this action is one.
    pub fn response(&self) -> Option<&LocalResponse> {
        match self {
            Action::Continue => None,
            Action::Respond(r) => Some(r),
        }
    }
}
