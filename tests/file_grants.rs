//! `files` grants a filter read-only access to host directories at guest paths it names:
//! it reads and lists what is granted and nothing else (no writes, no `..` out, no other
//! path); a filter without a grant sees no file system; a bad grant is refused with its line;
//! a change inside a granted tree reloads the filter.

mod harness;
use harness::*;

fn grant_manifest(up: std::net::SocketAddr, files: &str) -> String {
    format!(
        "plugins-dir = \"{{fixtures}}\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n[[routes]]\nupstream = \"app\"\n\
         filters = [\"fs\"]\n\n[filters.fs]\nplugin = \"files.wasm\"\nfiles = {files}\n"
    )
}

#[tokio::test]
async fn a_filter_reads_what_is_granted_and_nothing_else() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("sub")).unwrap();
    std::fs::write(rules.join("a.conf"), "SecRuleEngine On\n").unwrap();
    std::fs::write(rules.join("sub/b.data"), "word\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not for filters\n").unwrap();
    // Links inside the grant are followed; links that lead out of it are not.
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, rules.join(name));
    link("a.conf", "inside").unwrap();
    link("sub", "sub-link").unwrap();
    link("../secret.txt", "out").unwrap();
    link("..", "up").unwrap();
    link(
        dir.path().join("secret.txt").to_str().unwrap(),
        "absolute-out",
    )
    .unwrap();
    link("missing", "dangling").unwrap();
    let weir = Weir::start_in(dir, &grant_manifest(up.addr, "{ \"/rules\" = \"rules\" }"));
    let read = |path: &str| {
        let url = weir.url("/");
        let path = path.to_string();
        async move { get(&url, &[("x-read", &path)]).await }
    };

    let r = read("/rules/a.conf").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (200, "SecRuleEngine On\n")
    );
    let r = read("/rules/sub/b.data").await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "word\n"));
    let r = read("/rules/inside").await;
    assert_eq!(r.body, "SecRuleEngine On\n", "a link inside the grant");
    let r = read("/rules/sub-link/b.data").await;
    assert_eq!(r.body, "word\n", "a folder link inside the grant");
    let r = get(&weir.url("/"), &[("x-list", "/rules")]).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (200, "a.conf\ninside\nsub\nsub-link")
    );

    // Out of the grant: by `..`, by an absolute host path, by another guest path, by links.
    for outside in [
        "/rules/../secret.txt",
        "/rules/sub/../../secret.txt",
        "/etc/passwd",
        "/secret.txt",
        "/rules/out",
        "/rules/up/secret.txt",
        "/rules/absolute-out",
        "/rules/dangling",
    ] {
        let r = read(outside).await;
        assert_eq!(r.status.as_u16(), 500, "{outside}: {}", r.body);
        assert!(r.body.starts_with("error: "), "{outside}: {}", r.body);
    }
    // Read-only: neither a new file nor an existing one can be written.
    for target in ["/rules/new.conf", "/rules/a.conf"] {
        let r = get(&weir.url("/"), &[("x-write", target)]).await;
        assert_eq!(r.status.as_u16(), 500, "{target}: {}", r.body);
    }
    let r = read("/rules/a.conf").await;
    assert_eq!(r.body, "SecRuleEngine On\n", "unchanged");
    assert!(!weir.dir().join("rules/new.conf").exists());
}

#[tokio::test]
async fn a_filter_without_a_grant_sees_no_file_system() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&grant_manifest(up.addr, "{}"));
    for path in ["/", "/etc/passwd", "/rules/a.conf", "."] {
        let r = get(&weir.url("/"), &[("x-read", path)]).await;
        assert_eq!(r.status.as_u16(), 500, "{path}: {}", r.body);
    }
    let r = get(&weir.url("/"), &[("x-list", "/")]).await;
    assert_eq!(r.status.as_u16(), 500, "{}", r.body);
}

#[test]
fn bad_grants_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain-file"), "x").unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let up: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (files, expect) in [
        (
            "{ \"rules\" = \"rules\" }",
            "filters.fs.files.\"rules\": the guest path must be absolute",
        ),
        (
            "{ \"/a/../b\" = \"rules\" }",
            "filters.fs.files.\"/a/../b\": the guest path must be normalised",
        ),
        (
            "{ \"/\" = \"rules\" }",
            "filters.fs.files.\"/\": the guest path cannot be / itself",
        ),
        ("{ \"/r\" = \"missing\" }", "filters.fs.files.\"/r\": "),
        (
            "{ \"/r\" = \"plain-file\" }",
            "plain-file is not a directory",
        ),
        (
            "{ \"/r\" = \"rules\", \"/r/x\" = \"rules\" }",
            "filters.fs.files.\"/r/x\": overlaps \"/r\"",
        ),
    ] {
        let (ok, _, stderr) = check_in(dir.path(), &grant_manifest(up, files));
        assert!(!ok, "{files}");
        assert!(stderr.contains(expect), "{files}: {stderr}");
        assert!(
            stderr.contains("weir.toml:15:"),
            "{files}: names the line: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_change_inside_a_granted_tree_reloads_the_filter() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("deep")).unwrap();
    std::fs::write(rules.join("deep/x.conf"), "one").unwrap();
    let weir = Weir::start_in(dir, &grant_manifest(up.addr, "{ \"/rules\" = \"rules\" }"));
    let r = get(&weir.url("/"), &[("x-read", "/rules/deep/x.conf")]).await;
    assert_eq!(r.body, "one");
    // A file two levels down: the poll sees it and reloads.
    let file = weir.dir().join("rules/deep/x.conf");
    std::fs::write(&file, "two").unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let log = weir.wait_for_log("a file the manifest names changed: reloading");
    assert!(log.contains("rules"), "{log}");
    let log = weir.wait_for_log("reloaded:");
    assert!(
        log.contains("fs@") && log.contains("(loaded)"),
        "the filter is loaded again: {log}"
    );
    let r = get(&weir.url("/"), &[("x-read", "/rules/deep/x.conf")]).await;
    assert_eq!(r.body, "two");
}
