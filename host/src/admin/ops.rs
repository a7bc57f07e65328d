//! Operating the proxy from the admin endpoint: liveness (`/healthz`), readiness
//! (`/readyz`), reloading (`POST /reload`), and draining and undraining upstream targets.

use super::{json, text, Admin, Answer};
use crate::live::Live;
use http::StatusCode;
use serde::Serialize;

/// Why the proxy is or is not ready.
#[derive(Serialize)]
struct Readiness {
    ready: bool,
    generation: u64,
    /// Upstreams with active health checks and no target up.
    upstreams_down: Vec<String>,
}

/// `GET /readyz`: 200 once the listeners are bound (the admin endpoint starts after them)
/// and a generation is loaded, while every upstream with an active health check has a target
/// up; else 503, naming the upstreams without one.
pub fn ready(live: &Live) -> Answer {
    let g = live.current();
    let upstreams_down: Vec<String> = g
        .upstreams
        .iter()
        .filter(|u| u.has_active_check() && !u.targets().iter().any(|t| t.health.is_up()))
        .map(|u| u.name().to_string())
        .collect();
    let readiness = Readiness {
        ready: upstreams_down.is_empty(),
        generation: g.id,
        upstreams_down,
    };
    let (_, content_type, body) = json(&readiness);
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, content_type, body)
}

/// `POST /reload`: reload now (as SIGHUP does) and say how it went.
pub async fn reload(admin: &Admin) -> Answer {
    match crate::reload::reload(&admin.live, &admin.engine, &admin.manifest).await {
        Ok(generation) => json(&serde_json::json!({ "reloaded": true, "generation": generation })),
        Err(why) => {
            let (_, content_type, body) =
                json(&serde_json::json!({ "reloaded": false, "error": why }));
            (StatusCode::UNPROCESSABLE_ENTITY, content_type, body)
        }
    }
}

/// `POST /upstreams/{name}/targets/{host:port}/drain` (or `/undrain`): a drained target takes
/// no new requests (those in flight finish), across reloads, until undrained.
pub fn drain(live: &Live, path: &str) -> Answer {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (upstream, target, drained) = match parts.as_slice() {
        ["upstreams", u, "targets", t, "drain"] => (*u, *t, true),
        ["upstreams", u, "targets", t, "undrain"] => (*u, *t, false),
        _ => {
            let why = "use POST /upstreams/{name}/targets/{host:port}/drain or /undrain\n";
            return text(StatusCode::NOT_FOUND, why);
        }
    };
    let g = live.current();
    let Some(u) = g.upstreams.iter().find(|u| u.name() == upstream) else {
        return text(StatusCode::NOT_FOUND, format!("no upstream {upstream:?}\n"));
    };
    let Some(t) = u.targets().iter().find(|t| t.authority.as_str() == target) else {
        let known: Vec<&str> = u.targets().iter().map(|t| t.authority.as_str()).collect();
        let why = format!(
            "upstream {upstream:?} has no target {target:?} (its targets: {})\n",
            known.join(", ")
        );
        return text(StatusCode::NOT_FOUND, why);
    };
    crate::health::set_drained(upstream, target, drained);
    t.health.set_drained(drained);
    let verb = if drained { "drained" } else { "undrained" };
    tracing::info!(upstream, target, "{verb} from the admin endpoint");
    json(&serde_json::json!({ "upstream": upstream, "target": target, "drained": drained }))
}
