//! Shared end-to-end harness: real upstream servers on `127.0.0.1:0`, the real `weir`
//! binary started with a generated manifest, and a small HTTP client.
#![allow(dead_code)] // each test file uses part of the harness

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub mod browser;
/// Writes the `.mmdb` geo databases tests use (the host's own test writer).
#[path = "../../host/src/geo/writer.rs"]
pub mod mmdb;
pub mod pki;
pub mod raw;
pub mod redis;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Where `make plugins` puts the standard filters.
pub fn plugins_dir() -> PathBuf {
    require_dir(workspace().join("target/plugins"))
}

/// Where `make plugins` puts the test fixtures.
pub fn fixtures_dir() -> PathBuf {
    require_dir(workspace().join("target/fixtures"))
}

fn require_dir(dir: PathBuf) -> PathBuf {
    assert!(
        dir.is_dir(),
        "{} is missing: build the filters first with `make plugins` (or `make test`)",
        dir.display()
    );
    dir
}

type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// A real HTTP/1.1 server on 127.0.0.1 with a handler.
pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Serve `handler` on a fresh port.
    pub async fn start<F, Fut>(handler: F) -> Upstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream { addr, task }
    }

    /// An upstream that answers 200 with the request it received as text:
    /// `<METHOD> <path?query>` then one `name: value` line per header, then the body;
    /// and the response header `x-upstream: <name>`.
    pub async fn echo(name: &'static str) -> Upstream {
        Upstream::start(move |req: Request<Incoming>| async move {
            let mut text = format!("{} {}\n", req.method(), req.uri());
            for (n, v) in req.headers() {
                text.push_str(&format!("{}: {}\n", n, v.to_str().unwrap_or("<binary>")));
            }
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(&body));
            Response::builder()
                .header("x-upstream", name)
                .header("server", "echo")
                .body(Full::new(Bytes::from(text)))
                .expect("valid response")
        })
        .await
    }

    /// An upstream that answers every request (HTTP/1.1, one per connection) with a chunked
    /// 200 whose chunks are sent one by one, each after its delay.
    pub async fn streaming(chunks: Vec<(Duration, &'static str)>) -> Upstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("local addr");
        let chunks = Arc::new(chunks);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let chunks = chunks.clone();
                tokio::spawn(async move {
                    // Read the request head.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let start = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                    if stream.write_all(start).await.is_err() {
                        return;
                    }
                    for (delay, text) in chunks.iter() {
                        tokio::time::sleep(*delay).await;
                        let chunk = format!("{:x}\r\n{text}\r\n", text.len());
                        if stream.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                });
            }
        });
        Upstream { addr, task }
    }

    /// An upstream that waits `delay` before answering 200.
    pub async fn slow(delay: Duration) -> Upstream {
        Upstream::start(move |_req| async move {
            tokio::time::sleep(delay).await;
            Response::new(Full::new(Bytes::from_static(b"late\n")))
        })
        .await
    }
}

/// An address where nothing listens.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The real `weir` binary, running with a manifest; killed on drop.
pub struct Weir {
    /// The first listener's address.
    pub addr: SocketAddr,
    /// Every listener's address, in manifest order.
    pub addrs: Vec<SocketAddr>,
    /// The admin endpoint, when the manifest has `admin`.
    pub admin: Option<SocketAddr>,
    child: Child,
    dir: tempfile::TempDir,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Weir {
    /// Start `weir run` with `manifest` (TOML). `{plugins}` and `{fixtures}` in it are
    /// replaced by the filter directories. The first listener should use port 0.
    pub fn start(manifest: &str) -> Weir {
        Weir::start_in(tempfile::tempdir().expect("tempdir"), manifest)
    }

    /// Start with the manifest written to `dir/weir.toml` (`dir` may hold plugins too);
    /// `{dir}` in the manifest is replaced by `dir`.
    pub fn start_in(dir: tempfile::TempDir, manifest: &str) -> Weir {
        Weir::launch(dir, manifest, false)
    }

    /// As [`Weir::start_in`], but run from `dir` with the manifest named relatively.
    pub fn start_relative_in(dir: tempfile::TempDir, manifest: &str) -> Weir {
        Weir::launch(dir, manifest, true)
    }

    fn launch(dir: tempfile::TempDir, manifest: &str, relative: bool) -> Weir {
        let path = dir.path().join("weir.toml");
        let text = expand(manifest).replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&path, text).expect("write manifest");
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .current_dir(dir.path())
            .arg("run")
            .arg(if relative {
                Path::new("weir.toml")
            } else {
                path.as_path()
            })
            .env("RUST_LOG", "info")
            // Tests share one compile cache inside the build folder, not the user's.
            .env("XDG_CACHE_HOME", workspace().join("target/test-cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weir");
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[weir] {line}");
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        let mut admin = None;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("weir: admin on http://") {
                        admin = Some(a.parse().expect("admin address"));
                    }
                    if let Some(a) = line
                        .strip_prefix("weir: listening on http://")
                        .or_else(|| line.strip_prefix("weir: listening on https://"))
                    {
                        addrs.push(a.parse().expect("listen address"));
                    }
                    if line == "weir: ready" {
                        break;
                    }
                }
                _ => {
                    let status = child.wait().expect("wait");
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "weir exited ({status}) before listening:\n{}",
                        stderr.lock().unwrap_or_else(|p| p.into_inner())
                    );
                }
            }
        }
        Weir {
            addr: addrs[0],
            addrs,
            admin,
            child,
            dir,
            stderr,
        }
    }

    /// The folder holding the manifest.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("weir.toml")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// CPU time the process's threads have used, in nanoseconds as the scheduler counts it
    /// (`/proc/<pid>/task/*/schedstat`; `/proc/<pid>/stat`'s utime + stime are 10 ms ticks,
    /// sampled, too coarse for a per-call figure).
    pub fn cpu_time(&self) -> Duration {
        self.threads_cpu_time(|_| true)
    }

    /// CPU time of the process's threads named `name` (`/proc/<pid>/task/*/comm`), in
    /// nanoseconds as the scheduler counts it.
    pub fn thread_cpu_time(&self, name: &str) -> Duration {
        self.threads_cpu_time(|comm| comm == name)
    }

    fn threads_cpu_time(&self, wanted: impl Fn(&str) -> bool) -> Duration {
        let tasks =
            std::fs::read_dir(format!("/proc/{}/task", self.pid())).expect("read /proc tasks");
        let mut nanos = 0u64;
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !wanted(comm.trim()) {
                continue;
            }
            // A thread that just ended has no schedstat left: it counts 0.
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            nanos += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Duration::from_nanos(nanos)
    }

    /// Send a signal (e.g. "HUP") to the process.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// `GET /status` of the admin endpoint, as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let admin = self.admin.expect("the manifest has no `admin` address");
        let r = get(&format!("http://{admin}/status"), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).expect("status JSON")
    }

    /// Poll the admin status until `done` holds (up to 10 s); returns the last status.
    pub async fn wait_for_status(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..200 {
            last = self.status().await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "status never showed {what}: {last:#}
logs:
{}",
            self.logs()
        );
    }

    /// Everything weir logged so far.
    pub fn logs(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait until the logs contain `needle` (up to 10 s).
    pub fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..200 {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("weir never logged {needle:?}; logs:\n{}", self.logs());
    }

    /// `http://<addr><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The exit status, once the process has exited by itself within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replace `{plugins}` and `{fixtures}` in a manifest.
pub fn expand(manifest: &str) -> String {
    manifest
        .replace("{plugins}", &plugins_dir().display().to_string())
        .replace("{fixtures}", &fixtures_dir().display().to_string())
}

/// A received response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// First value of a header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Send a request built by `req` over HTTP/1.1 (a fresh client each time).
pub async fn send(req: Request<Full<Bytes>>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    collect(client.request(req).await.expect("request")).await
}

/// A client that keeps connections alive across requests, for load.
pub fn keep_alive_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>
{
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

/// Send over HTTP/2 with prior knowledge (h2c).
pub async fn send_h2(req: Request<Full<Bytes>>) -> Reply {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    collect(client.request(req).await.expect("h2 request")).await
}

async fn collect(resp: Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// POST `body` to `url` with `headers`.
pub async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut b = Request::post(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    send(
        b.body(Full::new(Bytes::from(body.to_string())))
            .expect("request"),
    )
    .await
}

/// The `version` fixture with its version marker (`v1` as built) set to `v` (two characters):
/// the same component with other bytes, for reload tests.
pub fn version_fixture(v: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixtures_dir().join("version.wasm")).expect("version.wasm");
    let marker = b"weir-fixture-version:v1";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("version marker in the fixture");
    let mut out = bytes;
    out[at + marker.len() - 2..at + marker.len()].copy_from_slice(v.as_bytes());
    out
}

/// The status of each of `n` GET requests to `/`, in order.
pub async fn statuses(weir: &Weir, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get(&weir.url("/"), &[]).await.status.as_u16());
    }
    out
}

/// How many files in `dir` have names ending in `suffix`.
pub fn files_ending(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                .count()
        })
        .unwrap_or(0)
}

/// Copy a built fixture or plugin (`{fixtures}/name` or `{plugins}/name`) into `dir`.
pub fn copy_filter(from: &Path, name: &str, dir: &Path, as_name: &str) {
    std::fs::copy(from.join(name), dir.join(as_name)).expect("copy filter");
}

/// `weir check` of `manifest` (expanded as by [`Weir::start`]) written to `dir/weir.toml`:
/// (success, stdout, stderr).
pub fn check_in(dir: &Path, manifest: &str) -> (bool, String, String) {
    let path = dir.join("weir.toml");
    std::fs::write(&path, expand(manifest)).expect("write manifest");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("check")
        .arg(&path)
        .output()
        .expect("run weir check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `weir check` of `manifest` in a fresh folder.
pub fn check(manifest: &str) -> (bool, String, String) {
    check_in(tempfile::tempdir().expect("tempdir").path(), manifest)
}

/// GET `url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::get(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    send(b.body(Full::new(Bytes::new())).expect("request")).await
}

/// A manifest with one listener on port 0, one upstream `app` with `targets`, one catch-all
/// route through `filters`, plus `extra` TOML (filter definitions etc.).
pub fn manifest(targets: &[SocketAddr], filters: &[&str], extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let filters: Vec<String> = filters.iter().map(|f| format!("\"{f}\"")).collect();
    format!(
        "plugins-dir = \"{{plugins}}\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [{}]\n\n[[routes]]\nupstream = \"app\"\nfilters = [{}]\n\n{extra}\n",
        targets.join(", "),
        filters.join(", ")
    )
}
