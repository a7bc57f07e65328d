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
