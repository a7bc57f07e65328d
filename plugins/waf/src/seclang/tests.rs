use super::*;
use std::collections::BTreeMap;

/// Files held in memory.
#[derive(Default)]
pub struct MemFiles(pub BTreeMap<String, String>);

impl Files for MemFiles {
    fn read(&mut self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("{path}: no such file"))
    }
    fn glob(&mut self, pattern: &str) -> Result<Vec<String>, String> {
        match pattern.split_once('*') {
            Some((head, tail)) => Ok(self
                .0
                .keys()
                .filter(|k| k.starts_with(head) && k.ends_with(tail))
                .cloned()
                .collect()),
            None => Ok(vec![pattern.to_string()]),
        }
    }
}

fn load_text(text: &str) -> Result<RuleSet, String> {
    load(&mut MemFiles::default(), &[], text)
}

fn ids(set: &RuleSet, phase: usize) -> Vec<u32> {
    set.phases[phase - 1]
        .iter()
        .filter_map(|e| match e {
            Entry::Rule(r) => Some(r.id),
            Entry::Marker(_) => None,
        })
        .collect()
}

#[test]
fn rules_chains_markers_and_defaults() {
    let set = load_text(
        "SecDefaultAction \"phase:1,log,auditlog,deny,status:406\"\n\
         SecRule ARGS \"@rx a\" \"id:1,phase:1,block,t:lowercase,chain\"\n\
         SecRule ARGS_NAMES \"@rx b\" \"t:none,setvar:tx.x=+1\"\n\
         SecMarker END\n\
         SecAction \"id:2,phase:2,nolog,pass\"\n",
    )
    .unwrap();
    assert_eq!(ids(&set, 1), [1]);
    assert_eq!(ids(&set, 2), [2]);
    assert_eq!(set.rules, 2);
    let Entry::Rule(r) = &set.phases[0][0] else {
        panic!()
    };
    assert_eq!(
        (r.default_disruptive, r.default_status),
        (Disruptive::Deny, Some(406))
    );
    assert!(r.chained.is_some());
    assert!(set.phases[1]
        .iter()
        .any(|e| matches!(e, Entry::Marker(m) if m == "END")));
}

#[test]
fn removals_and_target_updates_apply_wherever_written() {
    let set = load_text(
        "SecRuleRemoveById 3-4\n\
         SecRule ARGS \"@rx a\" \"id:3,phase:2,pass\"\n\
         SecRule ARGS \"@rx a\" \"id:5,phase:2,pass,tag:'attack-sqli'\"\n\
         SecRule ARGS \"@rx a\" \"id:6,phase:2,pass\"\n\
         SecRuleRemoveByTag attack-sqli\n\
         SecRuleUpdateTargetById 6 \"!ARGS:pwd\"\n",
    )
    .unwrap();
    assert_eq!(ids(&set, 2), [6]);
    let Entry::Rule(r) = &set.phases[1][0] else {
        panic!()
    };
    assert!(r.test.as_ref().unwrap().vars.iter().any(|v| v.exclude));
}

#[test]
fn includes_resolve_relative_to_their_file_and_data_files_too() {
    let mut files = MemFiles::default();
    files
        .0
        .insert("/r/main.conf".into(), "Include sub/*.conf\n".into());
    files.0.insert(
        "/r/sub/a.conf".into(),
        "SecRule ARGS \"@pmFromFile words.data\" \"id:10,phase:2,pass\"\n".into(),
    );
    files.0.insert(
        "/r/sub/words.data".into(),
        "# comment\nselect\nunion\n".into(),
    );
    let set = load(&mut files, &["/r/main.conf".into()], "").unwrap();
    assert_eq!(ids(&set, 2), [10]);
}

#[test]
fn errors_name_file_line_and_problem() {
    let mut files = MemFiles::default();
    files.0.insert(
        "/r/a.conf".into(),
        "SecRuleEngine On\n\nSecRule ARGS \"@rx (\" \"id:1,phase:2\"\n".into(),
    );
    let e = load(&mut files, &["/r/a.conf".into()], "").unwrap_err();
    assert!(e.starts_with("/r/a.conf:3: SecRule: "), "{e}");
    for (text, expect) in [
        ("SecBogus On", "inline:1: SecBogus: unknown directive"),
        ("SecRule ARGS \"@rx a\" \"phase:2\"", "needs an id"),
        (
            "SecRule ARGS \"@rx a\" \"id:1\"\nSecRule ARGS \"@rx a\" \"id:1\"",
            "already used at inline:1",
        ),
        ("SecRule ARGS \"@rx a\" \"id:1,chain\"", "has no last link"),
        (
            "SecRule ARGS \"@rx a\" \"id:1,chain\"\nSecMarker X",
            "a chain is open",
        ),
        ("SecRule NOPE \"@rx a\" \"id:1\"", "unknown variable"),
        ("SecRule ARGS \"@nope a\" \"id:1\"", "unknown operator"),
        ("SecRuleEngine Maybe", "DetectionOnly"),
        ("Include /missing.conf", "/missing.conf: no such file"),
        ("SecDefaultAction \"phase:2,block\"", "cannot be block"),
    ] {
        let e = load_text(text).unwrap_err();
        assert!(e.contains(expect), "{text}: {e}");
    }
}
