//! A request's (and its response's) variables as SecLang names them, read once per phase
//! and then only borrowed by the rules.

use crate::body;
use crate::rule::BodyProcessor;
use crate::variables::{multi, scalar, MULTI, SCALAR};

/// One member of a collection.
#[derive(Debug, Clone)]
pub struct Item {
    /// The name as sent (`User-Agent`, `id`).
    pub name: String,
    /// The name in lower case, as selectors compare it.
    pub lower: String,
    /// The value.
    pub value: Vec<u8>,
}

impl Item {
    /// An item named `name` with `value`.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Item {
        let name = name.into();
        Item {
            lower: name.to_ascii_lowercase(),
            name,
            value: value.into(),
        }
    }
}

/// Where a value is in a transaction's [`Data`]: a single value, or a collection member by
/// position. It names the value for as long as the data is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct At(u64);

impl At {
    /// Single value `i` ([`SCALAR`]).
    pub fn scalar(i: usize) -> At {
        At(i as u64)
    }

    /// Member `pos` of collection `i` ([`MULTI`]).
    pub fn member(i: usize, pos: usize) -> At {
        At(((i as u64 + 1) << 40) | pos as u64)
    }

    /// As one number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The variables rules read: single values and collections.
#[derive(Debug, Clone)]
pub struct Data {
    scalars: Vec<Option<Vec<u8>>>,
    multi: Vec<Vec<Item>>,
}

/// What the request phase reads of a request.
#[derive(Debug, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// Path and query as the client sent them.
    pub raw_uri: &'a str,
    pub protocol: &'a str,
    pub headers: &'a [(String, String)],
    pub client_addr: &'a str,
    pub host: &'a str,
}

impl Data {
    /// Nothing set.
    pub fn empty() -> Data {
        Data {
            scalars: vec![None; SCALAR.len()],
            multi: vec![Vec::new(); MULTI.len()],
        }
    }

    /// Single value `i` ([`SCALAR`]).
    pub fn scalar(&self, i: usize) -> Option<&[u8]> {
        self.scalars.get(i).and_then(|v| v.as_deref())
    }

    /// Collection `i` ([`MULTI`]).
    pub fn multi(&self, i: usize) -> &[Item] {
        self.multi.get(i).map_or(&[], Vec::as_slice)
    }

    /// Set a single value by name.
    pub fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        if let Some(slot) = self.scalars.get_mut(scalar(name)) {
            *slot = Some(value.into());
        }
    }

    /// Add a member to a collection by name.
    pub fn push(&mut self, coll: &str, item: Item) {
        if let Some(list) = self.multi.get_mut(multi(coll)) {
            list.push(item);
        }
    }

    /// Add argument `name` = `value` to `ARGS` and `ARGS_NAMES`, and to the query's or the
    /// body's own pair of collections (`ARGS_GET`, `ARGS_GET_NAMES` or the `_POST` ones).
    fn push_arg(&mut self, (values, names): (&str, &str), name: String, value: Vec<u8>) {
        self.push(values, Item::new(name.clone(), value.clone()));
        self.push(names, Item::new(name.clone(), name.clone()));
        self.push("ARGS", Item::new(name.clone(), value));
        self.push("ARGS_NAMES", Item::new(name.clone(), name));
    }

    /// The variables of a request head (phase 1).
    pub fn request(head: &RequestHead<'_>) -> Data {
        let mut d = Data::empty();
        let query = head.raw_uri.split_once('?').map(|(_, q)| q);
        // As ModSecurity v3: REQUEST_URI and the file names are percent-decoded (not `+`),
        // REQUEST_URI_RAW, REQUEST_LINE and QUERY_STRING are as sent.
        let decoded = body::percent_decode(head.raw_uri.as_bytes());
        let path = decoded.split(|&b| b == b'?').next().unwrap_or(&[]);
        let basename = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        d.set("REQUEST_METHOD", head.method);
        d.set("REQUEST_PROTOCOL", head.protocol);
        d.set("REQUEST_FILENAME", path);
        d.set("REQUEST_BASENAME", basename);
        d.set("REQUEST_URI", decoded.as_slice());
        d.set("REQUEST_URI_RAW", head.raw_uri);
        d.set(
            "REQUEST_LINE",
            format!("{} {} {}", head.method, head.raw_uri, head.protocol),
        );
        d.set("QUERY_STRING", query.unwrap_or(""));
        d.set("REMOTE_ADDR", head.client_addr);
        d.set("REMOTE_HOST", head.client_addr);
        d.set("SERVER_NAME", head.host);
        d.set("REQBODY_PROCESSOR", "");
        if let Some(q) = query {
            for (k, v) in body::urlencoded(q.as_bytes()) {
                d.push_arg(("ARGS_GET", "ARGS_GET_NAMES"), k, v);
            }
        }
        for (name, value) in head.headers {
            d.push("REQUEST_HEADERS", Item::new(name.clone(), value.clone()));
            d.push(
                "REQUEST_HEADERS_NAMES",
                Item::new(name.clone(), name.clone()),
            );
            if name.eq_ignore_ascii_case("cookie") {
                for (k, v) in cookies(value) {
                    d.push("REQUEST_COOKIES", Item::new(k.clone(), v));
                    d.push("REQUEST_COOKIES_NAMES", Item::new(k.clone(), k));
                }
            }
        }
        d.set_sizes();
        d
    }

    /// `ARGS_COMBINED_SIZE`: the lengths of every argument name and value.
    fn set_sizes(&mut self) {
        let total: usize = self
            .multi(multi("ARGS"))
            .iter()
            .map(|i| i.name.len() + i.value.len())
            .sum();
        self.set("ARGS_COMBINED_SIZE", total.to_string());
    }

    /// Add a request body as `processor` reads it (phase 2). `keep_raw`: also set
    /// `REQUEST_BODY` (ModSecurity does for URL-encoded bodies, bodies with no processor,
    /// and with `forceRequestBodyVariable`).
    pub fn add_body(
        &mut self,
        raw: &[u8],
        processor: Option<BodyProcessor>,
        content_type: &str,
        keep_raw: bool,
    ) {
        self.set("REQUEST_BODY_LENGTH", raw.len().to_string());
        if keep_raw || matches!(processor, None | Some(BodyProcessor::UrlEncoded)) {
            self.set("REQUEST_BODY", raw);
        }
        let Some(p) = processor else { return };
        self.set("REQBODY_PROCESSOR", p.name());
        self.set("REQBODY_ERROR", "0");
        let parsed = match p {
            BodyProcessor::UrlEncoded => Ok(body::Parsed {
                args: body::urlencoded(raw),
                ..Default::default()
            }),
            BodyProcessor::Multipart => body::multipart(raw, content_type),
            BodyProcessor::Json => body::json(raw),
            BodyProcessor::Xml => Ok(body::Parsed {
                xml_text: Some(body::xml_text(raw)),
                ..Default::default()
            }),
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(why) => {
                self.set("REQBODY_ERROR", "1");
                self.set("REQBODY_PROCESSOR_ERROR", "1");
                self.set("REQBODY_ERROR_MSG", why);
                return;
            }
        };
        for (k, v) in parsed.args {
            self.push_arg(("ARGS_POST", "ARGS_POST_NAMES"), k, v);
        }
        let mut files_size = 0usize;
        for f in parsed.files {
            files_size += f.size;
            self.push("FILES", Item::new(f.field.clone(), f.filename.clone()));
            self.push("FILES_NAMES", Item::new(f.field.clone(), f.field.clone()));
            self.push(
                "FILES_SIZES",
                Item::new(f.field.clone(), f.size.to_string()),
            );
        }
        for (field, header) in parsed.part_headers {
            self.push("MULTIPART_PART_HEADERS", Item::new(field, header));
        }
        if let Some(text) = parsed.xml_text {
            self.push("XML", Item::new("/*", text));
        }
        if parsed.strict_error {
            self.set("MULTIPART_STRICT_ERROR", "1");
        }
        self.set("FILES_COMBINED_SIZE", files_size.to_string());
        self.set_sizes();
    }

    /// Add a response head (phase 3) and, if read, its body (phase 4).
    pub fn add_response(&mut self, status: u16, headers: &[(String, String)], body: Option<&[u8]>) {
        self.set("RESPONSE_STATUS", status.to_string());
        self.set("RESPONSE_PROTOCOL", "HTTP/1.1");
        self.set("STATUS_LINE", format!("HTTP/1.1 {status}"));
        for (name, value) in headers {
            self.push("RESPONSE_HEADERS", Item::new(name.clone(), value.clone()));
            self.push(
                "RESPONSE_HEADERS_NAMES",
                Item::new(name.clone(), name.clone()),
            );
            if name.eq_ignore_ascii_case("content-type") {
                self.set("RESPONSE_CONTENT_TYPE", value.as_str());
            }
            if name.eq_ignore_ascii_case("content-length") {
                self.set("RESPONSE_CONTENT_LENGTH", value.as_str());
            }
        }
        if let Some(b) = body {
            self.set("RESPONSE_BODY", b);
        }
    }
}

/// The cookies of one `Cookie` header: `a=1; b=2`, names and values as sent.
pub fn cookies(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .map(str::trim_start)
        .filter(|c| !c.is_empty())
        .map(|c| match c.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (c.to_string(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: &Data, coll: &str) -> Vec<String> {
        d.multi(multi(coll))
            .iter()
            .map(|i| i.name.clone())
            .collect()
    }

    #[test]
    fn a_request_head_becomes_variables() {
        let headers = vec![
            ("Host".to_string(), "shop".to_string()),
            ("Cookie".to_string(), "a=1; sid=x y".to_string()),
        ];
        let d = Data::request(&RequestHead {
            method: "GET",
            raw_uri: "/p/a%20b.php?id=1&x=%27or+1&id=2",
            protocol: "HTTP/1.1",
            headers: &headers,
            client_addr: "192.0.2.1",
            host: "shop",
        });
        assert_eq!(
            d.scalar(scalar("REQUEST_FILENAME")),
            Some(&b"/p/a b.php"[..])
        );
        assert_eq!(d.scalar(scalar("REQUEST_BASENAME")), Some(&b"a b.php"[..]));
        assert_eq!(
            d.scalar(scalar("REQUEST_URI")),
            Some(&b"/p/a b.php?id=1&x='or+1&id=2"[..])
        );
        assert_eq!(
            d.scalar(scalar("QUERY_STRING")),
            Some(&b"id=1&x=%27or+1&id=2"[..])
        );
        assert_eq!(names(&d, "ARGS"), ["id", "x", "id"]);
        assert_eq!(d.multi(multi("ARGS"))[1].value, b"'or 1");
        assert_eq!(names(&d, "REQUEST_COOKIES"), ["a", "sid"]);
        assert_eq!(d.multi(multi("REQUEST_COOKIES"))[1].value, b"x y");
        assert_eq!(d.scalar(scalar("ARGS_COMBINED_SIZE")), Some(&b"12"[..]));
        assert_eq!(
            d.scalar(scalar("REQUEST_LINE")),
            Some(&b"GET /p/a%20b.php?id=1&x=%27or+1&id=2 HTTP/1.1"[..])
        );
    }

    #[test]
    fn bodies_by_processor() {
        let mut d = Data::empty();
        d.add_body(
            b"a=1&b=%3Cscript",
            Some(BodyProcessor::UrlEncoded),
            "",
            false,
        );
        assert_eq!(names(&d, "ARGS_POST"), ["a", "b"]);
        assert_eq!(
            d.scalar(scalar("REQUEST_BODY")),
            Some(&b"a=1&b=%3Cscript"[..])
        );
        let mut d = Data::empty();
        d.add_body(
            br#"{"user":{"name":"x"},"ids":[1,2]}"#,
            Some(BodyProcessor::Json),
            "",
            false,
        );
        assert_eq!(
            names(&d, "ARGS"),
            ["json.user.name", "json.ids.array_0", "json.ids.array_1"]
        );
        assert_eq!(d.scalar(scalar("REQUEST_BODY")), None);
        let mut d = Data::empty();
        d.add_body(b"{nope", Some(BodyProcessor::Json), "", true);
        assert_eq!(d.scalar(scalar("REQBODY_ERROR")), Some(&b"1"[..]));
        assert_eq!(d.scalar(scalar("REQUEST_BODY")), Some(&b"{nope"[..]));
    }
}
