//! Validating the `access-log-*` keys: the access log's format, destination, fields and
//! buffer.

use super::*;
use crate::access_log::{Destination, Format, Output};

/// Most headers an access log line may carry.
const MAX_LOGGED_HEADERS: usize = 32;
/// Headers whose values are never logged.
const ALWAYS_REDACTED: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

impl Validator {
    pub(super) fn access_log_output(
        &mut self,
        m: &Manifest,
        base: &Path,
    ) -> Option<std::sync::Arc<Output>> {
        if m.access_log_format.is_none() && m.access_log_to.is_none() {
            for (given, key) in [
                (!m.access_log_headers.is_empty(), "access-log-headers"),
                (!m.access_log_redact.is_empty(), "access-log-redact"),
                (m.access_log_query.is_some(), "access-log-query"),
                (m.access_log_buffer.is_some(), "access-log-buffer"),
            ] {
                if given {
                    let why = "needs access-log-format (\"json\" or \"text\") or access-log-to";
                    self.errors.push(self.map.at(None, format!("{key}: {why}")));
                }
            }
            return None;
        }
        let format = self.access_log_format(m);
        let destination = self.access_log_destination(m, base);
        let headers = self.logged_headers(m);
        let buffer = self.access_log_buffer(m.access_log_buffer.as_ref());
        Some(std::sync::Arc::new(Output {
            format,
            destination,
            query: m.access_log_query.unwrap_or(false),
            headers,
            buffer,
        }))
    }

    /// `access-log-format`: `json` (the default) or `text`.
    fn access_log_format(&mut self, m: &Manifest) -> Format {
        let format = m.access_log_format.as_ref();
        self.one_of(
            format,
            "access-log-format",
            ("json", Format::Json),
            &[("text", Format::Text)],
        )
    }

    /// `access-log-to`: `stdout` (the default), `stderr`, or a file in a folder that exists.
    fn access_log_destination(&mut self, m: &Manifest, base: &Path) -> Destination {
        match m.access_log_to.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("stdout") => Destination::Stdout,
            Some("stderr") => Destination::Stderr,
            Some(path) => {
                let path = base.join(path);
                if let Some(span) = m.access_log_to.as_ref().map(|t| t.span()) {
                    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                    if !dir.is_dir() {
                        let why = format!("the folder {} does not exist", dir.display());
                        self.error(span, format!("access-log-to: {why}"));
                    }
                }
                Destination::File(path)
            }
        }
    }

    /// `access-log-headers` and `access-log-redact`: the headers logged, each with whether
    /// its value is redacted (always for credentials and cookies).
    fn logged_headers(&mut self, m: &Manifest) -> Vec<(http::HeaderName, bool)> {
        if m.access_log_headers.len() > MAX_LOGGED_HEADERS {
            let at = m.access_log_headers[MAX_LOGGED_HEADERS].span();
            self.error(
                at,
                format!("access-log-headers: at most {MAX_LOGGED_HEADERS}"),
            );
        }
        let mut headers = Vec::new();
        for h in m.access_log_headers.iter().take(MAX_LOGGED_HEADERS) {
            match http::HeaderName::from_bytes(h.get_ref().as_bytes()) {
                Ok(name) => headers.push(name),
                Err(_) => self.error(
                    h.span(),
                    format!("access-log-headers: {:?} is not a header name", h.get_ref()),
                ),
            }
        }
        let mut redacted: Vec<http::HeaderName> = ALWAYS_REDACTED
            .iter()
            .map(|n| http::HeaderName::from_static(n))
            .collect();
        for r in &m.access_log_redact {
            match http::HeaderName::from_bytes(r.get_ref().as_bytes()) {
                Ok(name) if headers.contains(&name) => redacted.push(name),
                Ok(_) => self.error(
                    r.span(),
                    format!(
                        "access-log-redact: {:?} is not in access-log-headers",
                        r.get_ref()
                    ),
                ),
                Err(_) => self.error(
                    r.span(),
                    format!("access-log-redact: {:?} is not a header name", r.get_ref()),
                ),
            }
        }
        headers
            .into_iter()
            .map(|h| {
                let hidden = redacted.contains(&h);
                (h, hidden)
            })
            .collect()
    }

    fn access_log_buffer(&mut self, text: Option<&toml::Spanned<String>>) -> usize {
        const DEFAULT: usize = 1 << 20;
        let Some(text) = text else { return DEFAULT };
        match parse_size(text.get_ref()) {
            Ok(n) if (4 << 10..=256 << 20).contains(&n) => n,
            Ok(_) => {
                self.error(
                    text.span(),
                    "access-log-buffer: must be between 4KiB and 256MiB",
                );
                DEFAULT
            }
            Err(why) => {
                self.error(text.span(), format!("access-log-buffer: {why}"));
                DEFAULT
            }
        }
    }
}
