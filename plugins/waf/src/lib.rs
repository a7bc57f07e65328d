//! `waf`: a web application firewall that runs SecLang rules — the OWASP Core Rule Set
//! unchanged — with anomaly scoring, in detection-only mode or blocking.
//!
//! ```toml
//! [filters.waf]
//! plugin = "waf.wasm"
//! files = { "/crs" = "/usr/share/modsecurity-crs", "/crs-setup" = "/etc/modsecurity/crs" }
//! memory-limit = "256MiB"
//! [filters.waf.config]
//! rules = ["/crs-setup/crs-setup.conf", "/crs/rules/*.conf"]   # loaded in order; globs sorted
//! directives = "SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.paranoia_level=1\""
//! engine = "on"                  # "on", "detection-only" or "off": overrides SecRuleEngine
//! typed-bodies = true            # JSON and XML bodies read by Content-Type (ModSecurity's
//!                                # recommended rules 200000/200001); default true
//! max-args = 255                 # more query + body arguments: 400 before rules run
//! body = "forbidden\n"           # the body of a block; the status is the rule's (default 403)
//! ```
//! Phases 1 and 2 run in `on-request` (the request body buffered up to the filter's
//! `body-limit`), 3 and 4 in `on-response` (the response body read only with
//! `SecResponseBodyAccess On`), 5 after the last of them. A request that matched rules is
//! logged in one line (rule ids, messages, matched data, score), and the outcome goes into
//! the request context: `waf.action` (`blocked`, `detected` or `passed`), `waf.score`,
//! `waf.rules`.

pub mod body;
pub mod engine;
pub mod macros;
pub mod operators;
pub mod pattern;
pub mod pcre;
pub mod prefilter;
pub mod rule;
pub mod seclang;
pub mod transaction;
pub mod transforms;
pub mod variables;

use engine::{Cache, State};
use rule::{BodyProcessor, EngineMode};
use seclang::{Files, RuleSet};
use serde::Deserialize;
use transaction::{Data, RequestHead};
use weir_sdk::{Action, Config, Filter, Hooks, LocalResponse, Request, Response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    directives: String,
    engine: Option<String>,
    #[serde(default = "yes")]
    typed_bodies: bool,
    #[serde(default = "default_body")]
    body: String,
    #[serde(default = "default_max_args")]
    max_args: usize,
}

/// CRS's suggested `tx.max_num_args`: a request's cost grows with its arguments (1000
/// cost about 33 ms natively, several times that in Wasm, against the CPU deadline).
fn default_max_args() -> usize {
    255
}

fn yes() -> bool {
    true
}

fn default_body() -> String {
    "forbidden\n".into()
}

/// The filter: a loaded rule set.
pub struct Waf {
    set: RuleSet,
    /// What transformation chains made of values seen before.
    memo: std::cell::RefCell<engine::Memo>,
    typed_bodies: bool,
    body: String,
    /// More query and body arguments than this: 400 before any rule runs.
    max_args: usize,
    /// Strings the last transaction's variables left, for the next one's.
    spare: std::cell::RefCell<Vec<String>>,
}

/// Values (per transformation chain) the memo keeps across requests: a few MiB at most.
const MEMO_ENTRIES: usize = 16_384;

/// Rule files from the directories the manifest granted this filter.
pub struct GrantedFiles;

impl Files for GrantedFiles {
    fn read(&mut self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
    }

    fn glob(&mut self, pattern: &str) -> Result<Vec<String>, String> {
        if !pattern.contains(['*', '?', '[']) {
            return Ok(vec![pattern.to_string()]);
        }
        let mut out = Vec::new();
        for entry in glob::glob(pattern).map_err(|e| format!("{pattern}: {e}"))? {
            let path = entry.map_err(|e| format!("{pattern}: {e}"))?;
            out.push(path.to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }
}

impl Waf {
    /// Build from settings JSON, reading files through `files`.
    pub fn with_files(config: &Config, files: &mut dyn Files) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.rules.is_empty() && s.directives.trim().is_empty() {
            return Err("no rules: set `rules` (files or globs) or `directives`".into());
        }
        let mut set = seclang::load(files, &s.rules, &s.directives)?;
        if let Some(e) = &s.engine {
            set.settings.engine = match e.as_str() {
                "on" => EngineMode::On,
                "detection-only" => EngineMode::DetectionOnly,
                "off" => EngineMode::Off,
                other => {
                    return Err(format!(
                        "engine: {other:?} is not \"on\", \"detection-only\" or \"off\""
                    ))
                }
            };
        }
        Ok(Waf {
            set,
            memo: std::cell::RefCell::new(engine::Memo::new(MEMO_ENTRIES)),
            typed_bodies: s.typed_bodies,
            body: s.body,
            max_args: s.max_args,
            spare: Default::default(),
        })
    }

    /// The loaded rules.
    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    fn default_processor(&self, content_type: &str) -> Option<BodyProcessor> {
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("application/x-www-form-urlencoded") {
            Some(BodyProcessor::UrlEncoded)
        } else if ct.starts_with("multipart/form-data") {
            Some(BodyProcessor::Multipart)
        } else if self.typed_bodies && ct.contains("application/json") {
            Some(BodyProcessor::Json)
        } else if self.typed_bodies && (ct.contains("/xml") || ct.contains("application/soap+xml"))
        {
            Some(BodyProcessor::Xml)
        } else {
            None
        }
    }

    /// Phases 1 and 2 over `req`: the state they leave.
    pub fn inspect_request(&self, req: &Request<'_>) -> State {
        let mut st = State::with_spare(&self.set, self.spare.take());
        let mut cache = Cache::with_memo(&self.set, &self.memo);
        let data = request_data(req);
        if self.too_many_args(&data, &mut st) {
            return st;
        }
        let content_type = req.header("content-type").unwrap_or_default();
        st.body_processor = self.default_processor(&content_type);
        engine::run_phase(&self.set, 1, &data, &mut st, &mut cache);
        if st.done() {
            return st;
        }
        let mut data = data;
        if st.body_access {
            if let Some(b) = req.body().filter(|b| !b.is_empty()) {
                cache.clear();
                data.add_body(&b, st.body_processor, &content_type, st.force_body_variable);
                if self.too_many_args(&data, &mut st) {
                    return st;
                }
            }
        }
        engine::run_phase(&self.set, 2, &data, &mut st, &mut cache);
        if !self.wants_response() {
            engine::run_phase(&self.set, 5, &data, &mut st, &mut cache);
        }
        st
    }

    /// Refuse (400) a request with more arguments than `max-args`, before rules run over
    /// them: every rule reads every argument, so their number bounds a request's cost (as
    /// ModSecurity's recommended rule 200007 does at 1000, and CRS's `tx.max_num_args` at
    /// 255).
    fn too_many_args(&self, data: &Data, st: &mut State) -> bool {
        let n = data.multi(variables::multi("ARGS")).len();
        if n <= self.max_args {
            return false;
        }
        st.hits.push(engine::Hit {
            id: 0,
            msg: format!("{n} arguments, over max-args ({})", self.max_args),
            data: String::new(),
            severity: Some(2),
        });
        let refusal = engine::Interruption {
            status: 400,
            rule: 0,
        };
        match st.engine {
            EngineMode::On => st.interruption = Some(refusal),
            EngineMode::DetectionOnly => st.would_interrupt = Some(refusal),
            EngineMode::Off => return false,
        }
        true
    }

    /// Phases 3, 4 and 5 over a response, continuing `st`.
    pub fn inspect_response(&self, req: &Request<'_>, resp: &Response<'_>, st: &mut State) {
        let mut data = request_data(req);
        let headers = resp.headers();
        let body = if self.set.settings.response_body_access && self.mime_inspected(resp) {
            resp.body()
        } else {
            None
        };
        data.add_response(resp.status(), &headers, body.as_deref());
        let mut cache = Cache::with_memo(&self.set, &self.memo);
        for phase in [3, 4, 5] {
            engine::run_phase(&self.set, phase, &data, st, &mut cache);
        }
    }

    fn mime_inspected(&self, resp: &Response<'_>) -> bool {
        let ct = resp
            .header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let base = ct.split(';').next().unwrap_or("").trim();
        self.set
            .settings
            .response_mime_types
            .iter()
            .any(|m| m == base)
    }

    /// Whether the response phases run: with `SecResponseBodyAccess On`, or when phase 3
    /// has rules that do more than skip (CRS's response rules all read the body, so with body
    /// access off they would only cost time).
    fn wants_response(&self) -> bool {
        (self.set.settings.response_body_access && self.set.has_rules(4))
            || self.set.has_working_rules(3)
    }

    /// Log, count and record the outcome; the block response if there is one.
    fn decide(&self, req: &mut Request<'_>, st: &State, phase: &str) -> Action {
        let action = st.outcome();
        let score = st
            .tx
            .get("anomaly_score")
            .or_else(|| st.tx.get("inbound_anomaly_score"))
            .cloned()
            .unwrap_or_else(|| "0".into());
        weir_sdk::metrics::counter_add("inspected", 1);
        if action != "passed" {
            weir_sdk::metrics::counter_add(action, 1);
        }
        if !st.hits.is_empty() {
            let ids: Vec<String> = st.hits.iter().map(|h| h.id.to_string()).collect();
            // Per-rule hit counters (the proxy keeps the first 256 metric names a filter
            // uses).
            for id in &ids {
                weir_sdk::metrics::counter_add(&format!("rule.{id}"), 1);
            }
            let _ = req.set_context("waf.rules", &ids.join(","));
            audit_line(req, st, action, &score, phase);
        }
        let _ = req.set_context("waf.action", action);
        let _ = req.set_context("waf.score", &score);
        match st.interruption {
            Some(i) => Action::Respond(LocalResponse::text(i.status, self.body.clone())),
            None => Action::Continue,
        }
    }
}

/// The request's variables: the path and query as the client sent them, every header (with
/// `Host` from the authority when the request had none, as over HTTP/2).
fn request_data(req: &Request<'_>) -> Data {
    let mut headers = req.headers();
    let authority = req.authority().unwrap_or_default();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) && !authority.is_empty() {
        headers.insert(0, ("host".into(), authority.clone()));
    }
    let method = req.method();
    let raw = req.raw_path_and_query();
    let client = req.client_addr();
    Data::request(&RequestHead {
        method: &method,
        raw_uri: &raw,
        protocol: "HTTP/1.1",
        headers: &headers,
        client_addr: &client,
        host: &authority,
    })
}

/// One log line for a request that matched rules.
fn audit_line(req: &Request<'_>, st: &State, action: &str, score: &str, phase: &str) {
    let mut line = format!(
        "waf {action} ({phase}) {} {} score={score}",
        req.method(),
        req.raw_path_and_query()
    );
    if let Some(i) = st.interruption.or(st.would_interrupt) {
        line.push_str(&format!(" status={} by={}", i.status, i.rule));
    }
    for h in &st.hits {
        line.push_str(&format!(" | {} {:?}", h.id, h.msg));
        if !h.data.is_empty() {
            line.push_str(&format!(" [{}]", h.data));
        }
    }
    if action == "passed" {
        weir_sdk::info!("{line}");
    } else {
        weir_sdk::warn!("{line}");
    }
}

/// Context keys holding the transaction's short `TX` variables between the phases.
const TX_KEYS: [&str; 4] = ["waf.tx.0", "waf.tx.1", "waf.tx.2", "waf.tx.3"];

/// Keep `st.tx` (values up to 256 bytes) in the request context for the response phase.
fn save_tx(req: &mut Request<'_>, st: &State) {
    let mut chunks: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
    let mut size = 0;
    for (k, v) in &st.tx {
        if v.len() > 256 || k.len() > 128 {
            continue;
        }
        if size + k.len() + v.len() + 8 > 3800 {
            chunks.push(Vec::new());
            size = 0;
        }
        size += k.len() + v.len() + 8;
        if let Some(c) = chunks.last_mut() {
            c.push((k, v));
        }
    }
    for (key, chunk) in TX_KEYS.iter().zip(chunks) {
        if let Ok(json) = serde_json::to_string(&chunk) {
            let _ = req.set_context(key, &json);
        }
    }
}

fn load_tx(req: &Request<'_>, st: &mut State) {
    for key in TX_KEYS {
        let Some(json) = req.context(key) else { break };
        if let Ok(pairs) = serde_json::from_str::<Vec<(String, String)>>(&json) {
            st.tx.extend(pairs);
        }
    }
}

impl Filter for Waf {
    fn init(config: Config) -> Result<Self, String> {
        Waf::with_files(&config, &mut GrantedFiles)
    }

    fn hooks(&self) -> Hooks {
        let mut h = if self.wants_response() {
            Hooks::ALL
        } else {
            Hooks::REQUEST
        };
        if self.set.settings.request_body_access && self.set.has_rules(2) {
            h = h.with_request_body();
        }
        if self.set.settings.response_body_access && self.set.has_rules(4) {
            h = h.with_response_body();
        }
        h
    }

    fn on_request(&self, req: &mut Request<'_>) -> Action {
        let st = self.inspect_request(req);
        if self.wants_response() && !st.done() {
            save_tx(req, &st);
        }
        let action = self.decide(req, &st, "request");
        self.spare.replace(st.into_spare());
        action
    }

    fn on_response(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Action {
        // A request the request phase blocked, allowed or switched off is not inspected again.
        if req.context("waf.tx.0").is_none() {
            return Action::Continue;
        }
        let mut st = State::new(&self.set);
        load_tx(req, &mut st);
        self.inspect_response(req, resp, &mut st);
        if st.hits.is_empty() {
            return Action::Continue;
        }
        let action = st.outcome();
        weir_sdk::metrics::counter_add(&format!("response_{action}"), 1);
        audit_line(
            req,
            &st,
            action,
            st.tx
                .get("outbound_anomaly_score")
                .map_or("0", String::as_str),
            "response",
        );
        match st.interruption {
            Some(i) => Action::Respond(LocalResponse::text(i.status, self.body.clone())),
            None => Action::Continue,
        }
    }
}

weir_sdk::export_filter!(Waf);

// A request allocates and frees thousands of small blocks; talc serves them faster than the
// default wasm32 allocator (dlmalloc).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(test)]
mod tests;
