//! The error type of the SDK's fallible operations.

use std::fmt;

/// Why the host (or the test double) refused an operation, e.g. an invalid header value.
///
/// ```
/// use weir_sdk::testing::MockRequest;
/// let mut mock = MockRequest::get("/");
/// let err = mock.request().set_header("x-a", "line\nbreak").unwrap_err();
/// assert!(err.to_string().contains("control character"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub(crate) String);

impl Error {
    /// The reason, as text.
    ///
    /// ```
    /// let err = weir_sdk::header::validate_name("bad name").unwrap_err();
    /// assert!(err.message().contains("invalid character"));
    /// ```
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}
