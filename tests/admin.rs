//! The admin endpoint: loopback unless a bearer token guards it; with a token, every request
//! must carry it.

mod harness;
use harness::*;

#[tokio::test]
async fn a_token_guards_the_admin_endpoint() {
    let up = Upstream::echo("app").await;
    let m = manifest(&[up.addr], &[], "").replace(
        "[[listeners]]",
        "admin = \"127.0.0.1:0\"\nadmin-token = \"s3cret-admin-token-0123\"\n\n[[listeners]]",
    );
    let weir = Weir::start(&m);
    let url = format!("http://{}/status", weir.admin.expect("admin address"));
    let r = get(&url, &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    for wrong in [
        "Bearer s3cret-admin-token-0124",
        "Bearer s3cret",
        "s3cret-admin-token-0123",
    ] {
        assert_eq!(
            get(&url, &[("authorization", wrong)]).await.status,
            401,
            "{wrong}"
        );
    }
    let r = get(&url, &[("authorization", "Bearer s3cret-admin-token-0123")]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"generation\""), "{}", r.body);
}

#[test]
fn a_public_admin_address_needs_a_token() {
    let base =
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n\
                [[routes]]\nupstream = \"app\"\n";
    let (ok, _, err) = check(&format!("admin = \"0.0.0.0:9901\"\n{base}"));
    assert!(!ok);
    assert!(
        err.contains("weir.toml:1:9: admin: 0.0.0.0:9901 is not a loopback address"),
        "{err}"
    );
    let (ok, _, err) = check(&format!(
        "admin = \"0.0.0.0:9901\"\nadmin-token = \"short\"\n{base}"
    ));
    assert!(!ok);
    assert!(
        err.contains("weir.toml:2:15: admin-token: must be at least 16"),
        "{err}"
    );
    let (ok, _, err) = check(&format!(
        "admin = \"0.0.0.0:9901\"\nadmin-token = \"a-long-enough-token\"\n{base}"
    ));
    assert!(ok, "{err}");
}

fn admin_url(weir: &Weir, path: &str) -> String {
    format!("http://{}{path}", weir.admin.expect("admin address"))
}

async fn post(url: &str) -> Reply {
    let req = http::Request::post(url)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    send(req).await
}

fn two_targets(one: std::net::SocketAddr, two: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "plugins-dir = \"{{plugins}}\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{one}\", \"{two}\"]\n{extra}\n\n\
         [[routes]]\nupstream = \"app\"\n"
    )
}

#[tokio::test]
async fn health_readiness_and_reload_from_the_admin_endpoint() {
    let (one, two) = (Upstream::echo("one").await, Upstream::echo("two").await);
    let weir = Weir::start(&two_targets(one.addr, two.addr, ""));
    let r = get(&admin_url(&weir, "/healthz"), &[]).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "ok\n"));
    let r = get(&admin_url(&weir, "/readyz"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // POST /reload: a good manifest goes live and says its generation...
    std::fs::write(
        weir.manifest_path(),
        expand(&two_targets(one.addr, two.addr, "retries = 1")),
    )
    .unwrap();
    let r = post(&admin_url(&weir, "/reload")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (v["reloaded"].as_bool(), v["generation"].as_u64()),
        (Some(true), Some(2))
    );
    // ...a broken one is refused with the reason, and the old one keeps serving.
    std::fs::write(weir.manifest_path(), "[[listeners]]\naddress = 7\n").unwrap();
    let r = post(&admin_url(&weir, "/reload")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("\"reloaded\": false") && r.body.contains("weir.toml:2:11: invalid type"),
        "{}",
        r.body
    );
    assert_eq!(get(&weir.url("/"), &[]).await.status, 200);
    assert_eq!(get(&admin_url(&weir, "/reload"), &[]).await.status, 405);
    let r = get(&admin_url(&weir, "/nope"), &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("GET /readyz"), "{}", r.body);

    // Not ready while an upstream with a health check has no target up.
    let dead = closed_port();
    let m = two_targets(
        dead,
        closed_port(),
        "health = { interval = \"100ms\", timeout = \"100ms\", fall = 1, rise = 1 }",
    );
    let down = Weir::start(&m);
    let mut last = String::new();
    for _ in 0..50 {
        let r = get(&admin_url(&down, "/readyz"), &[]).await;
        last = r.body.clone();
        if r.status == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["ready"], false, "{last}");
    assert_eq!(v["upstreams_down"], serde_json::json!(["app"]));
}

#[tokio::test]
async fn a_drained_target_takes_no_new_requests_until_undrained_even_across_reloads() {
    let (one, two) = (Upstream::echo("one").await, Upstream::echo("two").await);
    let weir = Weir::start(&two_targets(one.addr, two.addr, ""));
    let seen = |n: usize| {
        let url = weir.url("/");
        async move {
            let mut names = std::collections::BTreeSet::new();
            for _ in 0..n {
                let r = get(&url, &[]).await;
                names.insert(r.header("x-upstream").unwrap_or("?").to_string());
            }
            names
        }
    };
    assert_eq!(seen(6).await.len(), 2);
    let drain = admin_url(&weir, &format!("/upstreams/app/targets/{}/drain", two.addr));
    let r = post(&drain).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(seen(10).await, ["one".to_string()].into());
    // A reload keeps it drained.
    weir.signal("HUP");
    weir.wait_for_status("generation 2", |s| s["generation"] == 2)
        .await;
    assert_eq!(seen(10).await, ["one".to_string()].into());
    let undrain = drain.replace("/drain", "/undrain");
    assert_eq!(post(&undrain).await.status, 200);
    assert_eq!(seen(6).await.len(), 2);
    // Unknown names are refused, saying what exists.
    let r = post(&admin_url(&weir, "/upstreams/app/targets/10.9.9.9:1/drain")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains(&one.addr.to_string()), "{}", r.body);
    assert_eq!(
        post(&admin_url(&weir, "/upstreams/nope/targets/x:1/drain"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn routes_and_the_manifest_are_shown_with_secrets_redacted() {
    let up = Upstream::echo("app").await;
    let m = format!(
        "plugins-dir = \"{{plugins}}\"\nadmin = \"127.0.0.1:0\"\nadmin-token = \"tok-0123456789abcdef\"\n\
         store = {{ backend = \"redis\", url = \"redis://weir:hunter2@127.0.0.1:1/0\" }}\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nhost = \"api.example\"\npath = \"/v1\"\nupstream = \"app\"\nfilters = [\"key\"]\n\n\
         [[routes]]\nupstream = \"app\"\n\n\
         [filters.key]\nplugin = \"api-key.wasm\"\nconfig = {{ header = \"x-api-key\", keys = [\"sk-live-abc\"] }}\n",
        up.addr
    );
    let weir = Weir::start(&m);
    let auth = [("authorization", "Bearer tok-0123456789abcdef")];
    let r = get(&admin_url(&weir, "/routes"), &auth).await;
    assert_eq!(r.status, 200);
    let routes: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(routes[0]["route"], "api.example/v1");
    assert_eq!(routes[0]["filters"], serde_json::json!(["key"]));
    assert_eq!(routes[0]["upstreams"], serde_json::json!([["app", 1]]));
    assert_eq!(routes[1]["route"], "/");
    let r = get(&admin_url(&weir, "/config"), &auth).await;
    assert_eq!(r.status, 200);
    for secret in ["tok-0123456789abcdef", "hunter2", "sk-live-abc"] {
        assert!(!r.body.contains(secret), "{secret} shown:\n{}", r.body);
    }
    assert!(
        r.body.contains("redis://weir:***@127.0.0.1:1/0"),
        "{}",
        r.body
    );
    assert!(r.body.contains("header = \"x-api-key\""), "{}", r.body);
    assert_eq!(get(&admin_url(&weir, "/config"), &[]).await.status, 401);
    // A refused reload: /config still shows what is live, not the broken file.
    let live = r.body.clone();
    std::fs::write(weir.manifest_path(), "[[listeners]]\naddress = 7\n").unwrap();
    let r = post(&admin_url(&weir, "/reload")).await;
    assert_eq!(r.status, 401, "the token guards reloads too");
    let req = http::Request::post(admin_url(&weir, "/reload"))
        .header("authorization", "Bearer tok-0123456789abcdef")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.status, 422);
    assert_eq!(get(&admin_url(&weir, "/config"), &auth).await.body, live);
}
