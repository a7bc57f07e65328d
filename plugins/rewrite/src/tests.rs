use super::*;
use weir_sdk::testing::{self, MockRequest};

fn filter(rules: &str) -> Rewrite {
    testing::init::<Rewrite>(&format!(r#"{{"rules":[{rules}]}}"#)).unwrap()
}

fn location(f: &Rewrite, req: &mut MockRequest, status: u16) -> String {
    let act = testing::on_request(f, req);
    let resp = testing::assert_responds(&act, status);
    resp.header_value("location").unwrap().to_string()
}

#[test]
fn prefix_redirects_keep_the_rest_and_the_query() {
    let f = filter(r#"{"prefix":"/old/","redirect":"/new{rest}","status":301}"#);
    let mut req = MockRequest::get("/old/a/b?x=1");
    assert_eq!(location(&f, &mut req, 301), "/new/a/b?x=1");
    assert_eq!(location(&f, &mut MockRequest::get("/old"), 301), "/new");
    // Segment-wise: /older is not under /old.
    testing::assert_continues(&testing::on_request(&f, &mut MockRequest::get("/older")));
}

#[test]
fn regex_redirects_to_absolute_urls_with_captures_and_variables() {
    let f = filter(
        r#"{"regex":"^/u/(?P<id>\\d+)$","redirect":"https://{host}/users/{id}","status":308}"#,
    );
    let mut req = MockRequest::get("/u/42").with_authority("example.com");
    assert_eq!(location(&f, &mut req, 308), "https://example.com/users/42");
    testing::assert_continues(&testing::on_request(&f, &mut MockRequest::get("/u/x")));
}

#[test]
fn relative_targets_never_leave_the_site_and_loops_are_not_sent() {
    let f = filter(r#"{"prefix":"/go","redirect":"/{rest}"}"#);
    // {rest} is "/evil.example": "//evil.example" would be another host.
    assert_eq!(
        location(&f, &mut MockRequest::get("/go/evil.example"), 302),
        "/evil.example"
    );
    let f = filter(r#"{"prefix":"/","redirect":"{path}"}"#);
    let _ = testing::take_logs();
    testing::assert_continues(&testing::on_request(&f, &mut MockRequest::get("/same?q=1")));
    assert!(testing::take_logs()
        .iter()
        .any(|(_, m)| m.contains("redirect loop")));
    let f = filter(r#"{"exact":"/a","redirect":"http://{host}/a"}"#);
    let mut req = MockRequest::get("/a").with_authority("h");
    testing::assert_continues(&testing::on_request(&f, &mut req));
}

#[test]
fn rewrites_change_path_query_and_host_for_the_upstream() {
    let f = filter(
        r#"{"regex":"^/api/v1/(.*)$","rewrite":"/v2/{1}","host":"api.internal",
            "query-set":{"src":"weir"},"query-remove":["debug"]}"#,
    );
    let mut req = MockRequest::get("/api/v1/items?debug=1&page=2").with_authority("example.com");
    testing::assert_continues(&testing::on_request(&f, &mut req));
    let r = req.request();
    assert_eq!(r.path(), "/v2/items");
    assert_eq!(r.query().as_deref(), Some("page=2&src=weir"));
    assert_eq!(r.header("host").as_deref(), Some("api.internal"));
}

#[test]
fn rules_apply_in_order_each_once_and_stop_unless_continue() {
    let f = filter(
        r#"{"prefix":"/a","rewrite":"/b{rest}","continue":true},
           {"prefix":"/b","rewrite":"/c{rest}"},
           {"prefix":"/c","rewrite":"/a{rest}"}"#,
    );
    let mut req = MockRequest::get("/a/x");
    testing::assert_continues(&testing::on_request(&f, &mut req));
    assert_eq!(
        req.request().path(),
        "/c/x",
        "a→b, then b→c, and the chain stops"
    );
    let f = filter(r#"{"exact":"/x","rewrite":"/y"},{"exact":"/y","rewrite":"/z"}"#);
    let mut req = MockRequest::get("/x");
    testing::assert_continues(&testing::on_request(&f, &mut req));
    assert_eq!(req.request().path(), "/y");
}

#[test]
fn host_conditions() {
    let f = filter(
        r#"{"prefix":"/","hosts":["old.example"],"redirect":"https://new.example{path}","status":301}"#,
    );
    let mut req = MockRequest::get("/p").with_authority("old.example:8080");
    assert_eq!(location(&f, &mut req, 301), "https://new.example/p");
    let mut other = MockRequest::get("/p").with_authority("new.example");
    testing::assert_continues(&testing::on_request(&f, &mut other));
}

#[test]
fn bad_rules_name_the_rule_and_field() {
    let err = |r: &str| {
        testing::init::<Rewrite>(&format!(r#"{{"rules":[{r}]}}"#))
            .err()
            .unwrap()
    };
    assert!(err(r#"{"prefix":"/a","exact":"/b","rewrite":"/c"}"#)
        .contains("rules[0]: give exactly one"));
    assert!(err(r#"{"regex":"(","rewrite":"/c"}"#).contains("rules[0]: regex"));
    assert!(err(r#"{"regex":"^/(a)$","rewrite":"/{2}"}"#).contains("1 capture group"));
    assert!(err(r#"{"exact":"/a","rewrite":"/{rest}"}"#).contains("prefix rule"));
    assert!(err(r#"{"exact":"/a","redirect":"/b","status":200}"#).contains("not a redirect"));
    assert!(err(r#"{"exact":"/a","redirect":"/b","rewrite":"/c"}"#).contains("cannot also"));
    assert!(err(r#"{"exact":"/a"}"#).contains("give redirect"));
    assert!(err(r#"{"exact":"a","rewrite":"/b"}"#).contains("start with '/'"));
    assert!(err(r#"{"exact":"/a","rewrite":"b"}"#).contains("start with '/'"));
    assert!(err(r#"{"exact":"/a","query-set":{"k":"a b"}}"#).contains("percent-encoding"));
    assert!(testing::init::<Rewrite>(r#"{"rules":[]}"#)
        .err()
        .unwrap()
        .contains("at least one"));
}
