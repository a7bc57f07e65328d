//! Targets given by host name: resolved in the background (and again every
//! `resolve-interval`), used for new connections; a name that does not resolve is reported
//! and its requests fail as connect failures (502), not as crashes.

mod harness;
use harness::*;

#[tokio::test]
async fn a_target_given_by_name_is_resolved_and_served() {
    let up = Upstream::echo("by-name").await;
    let weir = Weir::start(&format!(
        "admin = \"127.0.0.1:0\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"localhost:{}\"]\nresolve-interval = \"200ms\"\n\n\
         [[routes]]\nupstream = \"app\"\n",
        up.addr.port()
    ));
    let log = weir.wait_for_log("target name resolved");
    assert!(
        log.contains("host=\"localhost\"") || log.contains("host=localhost"),
        "{log}"
    );
    assert!(log.contains("127.0.0.1"), "{log}");
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-upstream"), Some("by-name"));

    // The admin status shows the target with its addresses and health.
    let status = weir.status().await;
    let target = &status["upstreams"][0]["targets"][0];
    assert_eq!(target["address"], format!("localhost:{}", up.addr.port()));
    assert!(
        target["resolved"]
            .as_array()
            .is_some_and(|a| a.iter().any(|ip| ip == "127.0.0.1")),
        "{status:#}"
    );
    assert_eq!(target["up"], true);
    assert_eq!(target["ejected"], false);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_reported_and_answers_502() {
    let weir = Weir::start(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"no-such-host.invalid:80\"]\nretries = 0\n\n\
         [[routes]]\nupstream = \"app\"\n",
    );
    weir.wait_for_log("cannot resolve target name");
    assert_eq!(get(&weir.url("/"), &[]).await.status, 502);
}
