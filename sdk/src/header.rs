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

/// The value of cookie `name` in `Cookie` header values (RFC 6265 §5.4: `a=1; b=2`, over
/// one header or several, as HTTP/2 clients send them): the first one of that exact name,
/// with surrounding double quotes removed.
///
/// ```
/// let headers = ["theme=dark; session=\"abc\"", "lang=en"];
/// assert_eq!(weir_sdk::header::cookie(headers, "session"), Some("abc"));
/// assert_eq!(weir_sdk::header::cookie(headers, "lang"), Some("en"));
/// assert_eq!(weir_sdk::header::cookie(headers, "Session"), None);
/// ```
pub fn cookie<'a, I>(cookie_headers: I, name: &str) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
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

    #[test]
    fn cookies() {
        let h = ["a=1;b=2 ;  c = 3", "d=\"q\"; e=", "=anon; f"];
        assert_eq!(cookie(h, "a"), Some("1"));
        assert_eq!(cookie(h, "b"), Some("2"));
        assert_eq!(cookie(h, "c"), Some("3"));
        assert_eq!(cookie(h, "d"), Some("q"));
        assert_eq!(cookie(h, "e"), Some(""));
        assert_eq!(cookie(h, "f"), None);
        assert_eq!(cookie(h, ""), Some("anon"));
        assert_eq!(cookie(["x=1; x=2"], "x"), Some("1"));
    }
}
