//! Header name and value validation, the same rules the host applies.

use crate::Error;

/// Check that `name` is a valid HTTP header name (an RFC 9110 token).
///
/// ```
/// use weir_sdk::header::validate_name;
/// assert!(validate_name("x-request-id").is_ok());
/// assert!(validate_name("x request id").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error("header name is empty".into()));
    }
    match name.bytes().find(|b| !is_token_byte(*b)) {
        None => Ok(()),
        Some(b) => Err(Error(format!(
            "header name {name:?} contains an invalid character {:?}",
            b as char
        ))),
    }
}

/// Check that `value` is a valid HTTP header value (no control characters but tab).
///
/// ```
/// use weir_sdk::header::validate_value;
/// assert!(validate_value("text/html; charset=utf-8").is_ok());
/// assert!(validate_value("a\r\nInjected: 1").is_err());
/// ```
pub fn validate_value(value: &str) -> Result<(), Error> {
    match value
        .bytes()
        .find(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
    {
        None => Ok(()),
        Some(b) => Err(Error(format!(
            "header value {value:?} contains a control character (0x{b:02x})"
        ))),
    }
}

/// Check a header name and value together.
///
/// ```
/// assert!(weir_sdk::header::validate("x-user", "ada").is_ok());
/// assert!(weir_sdk::header::validate("x-user", "ada\0").is_err());
/// ```
pub fn validate(name: &str, value: &str) -> Result<(), Error> {
    validate_name(name)?;
    validate_value(value)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("x-api-key").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("bad name").is_err());
        assert!(validate_name("bad:name").is_err());
    }

    #[test]
    fn values() {
        assert!(validate_value("text/plain; q=1").is_ok());
        assert!(validate_value("a\tb").is_ok());
        assert!(validate_value("a\r\nb").is_err());
        assert!(validate_value("nul\0").is_err());
    }
}
