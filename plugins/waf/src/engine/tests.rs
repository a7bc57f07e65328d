use super::*;
use crate::seclang::{load, tests::MemFiles};
use crate::transaction::RequestHead;

fn run(rules: &str, uri: &str, headers: &[(&str, &str)]) -> State {
    let set = load(&mut MemFiles::default(), &[], rules).unwrap();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let data = Data::request(&RequestHead {
        method: "GET",
        raw_uri: uri,
        protocol: "HTTP/1.1",
        headers: &headers,
        client_addr: "192.0.2.1",
        host: "shop",
    });
    let mut st = State::new(&set);
    let mut cache = Cache::new(&set);
    for phase in 1..=2 {
        run_phase(&set, phase, &data, &mut st, &mut cache);
    }
    st
}

#[test]
fn transformations_then_operator_then_deny() {
    let rules = "SecRule ARGS \"@rx <script\" \"id:1,phase:1,deny,status:406,t:urlDecodeUni,t:lowercase,msg:'xss in %{MATCHED_VAR_NAME}',logdata:'%{MATCHED_VAR}'\"";
    let st = run(rules, "/?q=%3CScRiPt%3E", &[]);
    assert_eq!(
        st.interruption,
        Some(Interruption {
            status: 406,
            rule: 1
        })
    );
    assert_eq!(st.hits[0].msg, "xss in ARGS:q");
    assert_eq!(st.hits[0].data, "<script>");
    assert_eq!(run(rules, "/?q=script", &[]).interruption, None);
}

#[test]
fn exclusions_and_ctl_target_removal() {
    let rule = "SecRule ARGS|!ARGS:pwd \"@rx evil\" \"id:1,phase:2,deny\"";
    assert!(run(rule, "/?pwd=evil", &[]).interruption.is_none());
    assert!(run(rule, "/?user=evil", &[]).interruption.is_some());
    let ctl = "SecRule REQUEST_FILENAME \"@streq /login\" \"id:2,phase:1,pass,nolog,ctl:ruleRemoveTargetById=1;ARGS:user\"\n\
               SecRule ARGS \"@rx evil\" \"id:1,phase:2,deny\"";
    assert!(run(ctl, "/login?user=evil", &[]).interruption.is_none());
    assert!(run(ctl, "/other?user=evil", &[]).interruption.is_some());
}

#[test]
fn anomaly_scoring_with_setvar_macros_and_block() {
    let rules = "SecDefaultAction \"phase:2,log,pass\"\n\
        SecAction \"id:1,phase:1,pass,nolog,setvar:tx.threshold=5,setvar:tx.crit=5\"\n\
        SecRule ARGS \"@contains union\" \"id:2,phase:2,block,setvar:'tx.score=+%{tx.crit}'\"\n\
        SecRule TX:SCORE \"@ge %{tx.threshold}\" \"id:3,phase:2,deny,msg:'score %{TX.SCORE}'\"";
    let st = run(rules, "/?a=union&b=union", &[]);
    // setvar runs for every value that matched.
    assert_eq!(st.tx.get("score").map(String::as_str), Some("10"));
    assert_eq!(st.interruption.map(|i| i.rule), Some(3));
    assert_eq!(st.hits.last().unwrap().msg, "score 10");
    let st = run(rules, "/?a=fine", &[]);
    assert!(st.interruption.is_none() && st.hits.is_empty());
}

#[test]
fn chains_need_every_link_and_see_matched_vars() {
    let rules = "SecRule REQUEST_METHOD \"@streq GET\" \"id:1,phase:1,deny,chain\"\n\
                 SecRule &REQUEST_HEADERS:Host \"@eq 0\" \"\"";
    assert!(run(rules, "/", &[]).interruption.is_some());
    assert!(run(rules, "/", &[("Host", "x")]).interruption.is_none());
    let rules = "SecRule ARGS_NAMES \"@rx ^id$\" \"id:1,phase:1,deny,chain\"\n\
                 SecRule MATCHED_VARS \"@streq id\" \"\"";
    assert!(run(rules, "/?id=1", &[]).interruption.is_some());
}

#[test]
fn skip_after_markers_and_paranoia_style_gates() {
    let rules = "SecRule TX:LEVEL \"@lt 2\" \"id:1,phase:1,pass,nolog,skipAfter:END-PL2\"\n\
                 SecRule ARGS \"@rx x\" \"id:2,phase:1,deny\"\n\
                 SecMarker END-PL2\n\
                 SecRule ARGS \"@rx y\" \"id:3,phase:1,deny\"";
    // TX:LEVEL is unset: no value, so rule 1 does not match and 2 runs.
    assert_eq!(
        run(rules, "/?a=x", &[]).interruption.map(|i| i.rule),
        Some(2)
    );
    let gated = format!("SecAction \"id:9,phase:1,pass,nolog,setvar:tx.level=1\"\n{rules}");
    assert!(run(&gated, "/?a=x", &[]).interruption.is_none());
    assert_eq!(
        run(&gated, "/?a=y", &[]).interruption.map(|i| i.rule),
        Some(3)
    );
}

#[test]
fn capture_negation_and_detection_only() {
    let rules = "SecRule REQUEST_HEADERS:User-Agent \"@rx (curl)/([0-9.]+)\" \"id:1,phase:1,pass,capture,setvar:tx.v=%{tx.2}\"\n\
                 SecRule REQUEST_METHOD \"!@within GET HEAD\" \"id:2,phase:1,deny\"";
    let st = run(rules, "/", &[("User-Agent", "curl/8.1")]);
    assert_eq!(st.tx.get("v").map(String::as_str), Some("8.1"));
    assert!(st.interruption.is_none());
    let detect = format!(
        "SecRuleEngine DetectionOnly\nSecRule ARGS \"@rx a\" \"id:5,phase:1,deny\"\n{rules}"
    );
    let st = run(&detect, "/?q=a", &[]);
    assert!(st.interruption.is_none());
    assert_eq!(st.would_interrupt.map(|i| i.rule), Some(5));
}

#[test]
fn ctl_rule_engine_off_and_remove_by_id() {
    let rules = "SecRule REQUEST_FILENAME \"@beginsWith /health\" \"id:1,phase:1,pass,nolog,ctl:ruleEngine=Off\"\n\
                 SecRule REQUEST_FILENAME \"@beginsWith /admin\" \"id:2,phase:1,pass,nolog,ctl:ruleRemoveById=3\"\n\
                 SecRule ARGS \"@rx bad\" \"id:3,phase:2,deny\"";
    assert!(run(rules, "/health?a=bad", &[]).interruption.is_none());
    assert!(run(rules, "/admin?a=bad", &[]).interruption.is_none());
    assert!(run(rules, "/x?a=bad", &[]).interruption.is_some());
}

#[test]
fn skip_after_an_absent_marker_skips_the_rest_of_the_phase() {
    let rules = "SecAction \"id:1,phase:1,pass,nolog,skipAfter:NOWHERE\"\n\
                 SecRule ARGS \"@rx x\" \"id:2,phase:1,deny\"\n\
                 SecRule ARGS \"@rx x\" \"id:3,phase:2,deny\"";
    // Phase 1's deny is skipped; phase 2 runs as ever.
    assert_eq!(
        run(rules, "/?a=x", &[]).interruption.map(|i| i.rule),
        Some(3)
    );
}

#[test]
fn a_transaction_made_with_the_last_ones_strings_starts_empty() {
    let rules = "SecRule &TX:seen \"@eq 0\" \"id:1,phase:1,pass,nolog,setvar:tx.fresh=1\"\n\
                 SecAction \"id:2,phase:1,pass,nolog,setvar:tx.seen=%{REQUEST_FILENAME},setvar:tx.score=+5,setvar:ip.hits=+1\"";
    let set = load(&mut MemFiles::default(), &[], rules).unwrap();
    let mut spare = Vec::new();
    for (i, uri) in ["/first/a/rather/long/path", "/b", "/c"].iter().enumerate() {
        let data = Data::request(&RequestHead {
            method: "GET",
            raw_uri: uri,
            protocol: "HTTP/1.1",
            ..Default::default()
        });
        let mut st = State::with_spare(&set, std::mem::take(&mut spare));
        run_phase(&set, 1, &data, &mut st, &mut Cache::new(&set));
        assert_eq!(st.tx.get("fresh").map(String::as_str), Some("1"), "{i}");
        assert_eq!(st.tx.get("seen").map(String::as_str), Some(*uri));
        assert_eq!(st.tx.get("score").map(String::as_str), Some("5"));
        assert_eq!(st.persistent.get("ip.hits").map(String::as_str), Some("1"));
        assert_eq!(st.tx.len(), 3);
        spare = st.into_spare();
        assert_eq!(spare.len(), 8, "every key and value back");
        assert!(spare.iter().all(String::is_empty));
    }
}
