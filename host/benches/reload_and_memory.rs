//! Filter-runtime benchmarks that need the real binary (release build, run by `cargo bench`):
//!
//! - reload latency, from the write of a plugin file to the new version being live (the
//!   admin status shows its hash), for a component never seen (compiled) and for one in
//!   the compile cache; includes the watcher's debounce (`reload::QUIET`);
//! - idle RSS of the proxy with no filters and with 10 filters loaded.
//!
//! Figures are printed with ratios; like every benchmark here they are for comparison in
//! one run, not absolute truths of a shared machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `bytes` with a custom section appended: the same component, another content hash.
fn with_custom_section(bytes: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"weir-bench";
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

struct Proxy {
    child: Child,
    admin: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(manifest: &Path) -> Proxy {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(manifest)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start weir");
    let mut admin = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("stdout");
        if let Some(a) = line.strip_prefix("weir: admin on http://") {
            admin = Some(a.parse().unwrap());
        }
        if line.starts_with("weir: listening") {
            break;
        }
    }
    Proxy {
        child,
        admin: admin.expect("admin address"),
    }
}

fn status(admin: SocketAddr) -> String {
    let mut s = TcpStream::connect(admin).expect("admin");
    s.write_all(b"GET /status HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write `bytes` as the plugin and time until the status shows its hash live.
fn reload_latency(proxy: &Proxy, plugin: &Path, bytes: &[u8]) -> Duration {
    let hash = sha256_hex(bytes);
    let start = Instant::now();
    std::fs::write(plugin, bytes).unwrap();
    while !status(proxy.admin).contains(&hash) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "reload never happened"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

fn manifest(dir: &Path, cache: &Path, filters: &[(&str, &str, &str)]) -> PathBuf {
    let mut m = format!(
        "plugins-dir = \"plugins\"\nadmin = \"127.0.0.1:0\"\ncompile-cache-dir = \"{}\"\n\
         access-log = false\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"127.0.0.1:9\"]\n\n[[routes]]\nupstream = \"app\"\nfilters = [{}]\n\n",
        cache.display(),
        filters
            .iter()
            .map(|(n, _, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (name, plugin, config) in filters {
        m.push_str(&format!(
            "[filters.{name}]\nplugin = \"{plugin}\"\nconfig = {config}\n\n"
        ));
    }
    let path = dir.join("weir.toml");
    std::fs::write(&path, m).unwrap();
    path
}

fn main() {
    let fixtures = workspace().join("target/fixtures");
    let plugins_src = workspace().join("target/plugins");
    assert!(
        fixtures.is_dir() && plugins_src.is_dir(),
        "run `make plugins` first"
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for p in ["headers.wasm", "block.wasm", "api-key.wasm"] {
        std::fs::copy(plugins_src.join(p), plugins.join(p)).unwrap();
    }

    // Reload latency, with the `services` fixture (the largest component here).
    let base = std::fs::read(fixtures.join("services.wasm")).unwrap();
    let plugin = plugins.join("services.wasm");
    std::fs::write(&plugin, with_custom_section(&base, "start")).unwrap();
    let m = manifest(dir.path(), cache.path(), &[("svc", "services.wasm", "{}")]);
    let proxy = start(&m);
    let rounds = 5;
    let mut fresh = Vec::new();
    let mut cached = Vec::new();
    for i in 0..rounds {
        let a = with_custom_section(&base, &format!("a{i}-{}", std::process::id()));
        let b = with_custom_section(&base, &format!("b{i}-{}", std::process::id()));
        fresh.push(reload_latency(&proxy, &plugin, &a));
        fresh.push(reload_latency(&proxy, &plugin, &b));
        // `a` is now only in the on-disk cache.
        cached.push(reload_latency(&proxy, &plugin, &a));
    }
    drop(proxy);
    fresh.sort();
    cached.sort();
    println!(
        "reload latency, write to live ({} KiB component; includes the {:?} debounce):",
        base.len() / 1024,
        weir::reload::QUIET
    );
    println!(
        "  fresh (compiled):  median {:?}, max {:?} over {} reloads (target <= 3s)",
        fresh[fresh.len() / 2],
        fresh[fresh.len() - 1],
        fresh.len()
    );
    println!(
        "  cached:            median {:?}, max {:?} over {} reloads (target <= 1s)",
        cached[cached.len() / 2],
        cached[cached.len() - 1],
        cached.len()
    );

    // Idle RSS: no filters vs 10 filters.
    let none = start(&manifest(dir.path(), cache.path(), &[]));
    std::thread::sleep(Duration::from_millis(500));
    let rss_none = rss_kib(none.child.id());
    drop(none);
    let ten: Vec<(String, &str, String)> = (0..10)
        .map(|i| match i % 3 {
            0 => (
                format!("h{i}"),
                "headers.wasm",
                format!("{{ request = {{ set = {{ \"x-{i}\" = \"1\" }} }} }}"),
            ),
            1 => (
                format!("b{i}"),
                "block.wasm",
                format!("{{ paths = [\"/p{i}\"] }}"),
            ),
            _ => (
                format!("k{i}"),
                "api-key.wasm",
                format!("{{ keys = [\"k{i}\"] }}"),
            ),
        })
        .collect();
    let refs: Vec<(&str, &str, &str)> = ten
        .iter()
        .map(|(n, p, c)| (n.as_str(), *p, c.as_str()))
        .collect();
    let loaded = start(&manifest(dir.path(), cache.path(), &refs));
    std::thread::sleep(Duration::from_millis(500));
    let rss_ten = rss_kib(loaded.child.id());
    drop(loaded);
    println!("idle RSS: no filters {} MiB; 10 filters loaded {} MiB ({:.2}x, +{:.1} MiB, {:.2} MiB per filter)",
        rss_none / 1024,
        rss_ten / 1024,
        rss_ten as f64 / rss_none as f64,
        (rss_ten - rss_none) as f64 / 1024.0,
        (rss_ten - rss_none) as f64 / 10240.0,
    );
}
