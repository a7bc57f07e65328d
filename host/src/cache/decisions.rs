//! What filters decided about caching and compressing their request (the `cache` import):
//! gathered on the request as its hooks run, read by the cache and compression.

/// Most parts a request's filters may add to its key.
pub const MAX_KEY_PARTS: usize = 8;
/// Most tags filters may add to a response.
pub const MAX_TAGS: usize = 32;
/// Longest key part or tag, in bytes.
pub const MAX_PART: usize = 256;

/// A request's caching decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// Neither looked up nor stored.
    pub bypass: bool,
    /// Added to the key, in order.
    pub key_parts: Vec<String>,
    /// Not stored.
    pub uncacheable: bool,
    /// Fresh for this many seconds from when it came.
    pub ttl: Option<u32>,
    /// `stale-while-revalidate` and `stale-if-error` windows, seconds.
    pub stale: Option<(u32, u32)>,
    /// Tags to purge it by.
    pub tags: Vec<String>,
    /// Not compressed.
    pub no_compress: bool,
}

impl Decisions {
    /// Add a key part, within the bounds.
    pub fn add_key_part(&mut self, part: String) -> Result<(), String> {
        bounded(&mut self.key_parts, part, MAX_KEY_PARTS, "key parts")
    }

    /// Add a tag, within the bounds.
    pub fn add_tag(&mut self, tag: String) -> Result<(), String> {
        if tag.is_empty() || tag.contains([' ', ',']) {
            return Err("a tag is non-empty, without spaces or commas".into());
        }
        bounded(&mut self.tags, tag, MAX_TAGS, "tags")
    }

    /// Whether any decision concerns what is stored (response-phase decisions).
    pub fn shapes_storage(&self) -> bool {
        self.uncacheable || self.ttl.is_some() || self.stale.is_some() || !self.tags.is_empty()
    }
}

fn bounded(list: &mut Vec<String>, item: String, most: usize, what: &str) -> Result<(), String> {
    if item.len() > MAX_PART {
        return Err(format!("{what} are at most {MAX_PART} bytes"));
    }
    if list.contains(&item) {
        return Ok(());
    }
    if list.len() >= most {
        return Err(format!("at most {most} {what} per request"));
    }
    list.push(item);
    Ok(())
}
