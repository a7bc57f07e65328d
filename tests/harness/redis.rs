//! Real `redis-server` processes on 127.0.0.1 ports for the shared-store tests, and a tiny
//! RESP client to look inside them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` without persistence (a restart comes back empty); killed on drop.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start one on a free port with extra `args` (e.g. `["--requirepass", "pw"]`).
    pub fn start(args: &[&str]) -> RedisServer {
        let port = super::closed_port().port();
        let mut server = RedisServer {
            port,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        server.spawn();
        server
    }

    /// Start one that speaks only TLS on its port, with a certificate for `127.0.0.1`
    /// issued by `ca` (the CA's PEM is written to `ca.pem` in [`RedisServer::dir`]).
    pub fn start_tls(ca: &super::pki::Ca) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        ca.write(&dir.path().join("ca.pem"));
        ca.leaf(&["127.0.0.1"], dir.path(), "server");
        let file = |f: &str| dir.path().join(f).display().to_string();
        let port = super::closed_port().port();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &file("server.pem"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.pem"),
            "--tls-auth-clients",
            "no",
        ];
        let mut server = RedisServer {
            port,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
            dir,
        };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server (Debian package redis-server)");
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not listen on {port}");
    }

    /// Kill it (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Stop (SIGSTOP) or continue (SIGCONT) it: a Redis that accepts but never answers.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig}");
    }

    /// Run one command (with `auth` if given) and return the reply as text: a bulk or
    /// simple string as is, an integer in decimal, an array as its items one per line.
    pub fn command(&self, auth: Option<(&str, &str)>, args: &[&str]) -> String {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut reader = BufReader::new(conn.try_clone().expect("clone"));
        if let Some((user, pw)) = auth {
            send(&mut conn, &["AUTH", user, pw]);
            read(&mut reader);
        }
        send(&mut conn, args);
        read(&mut reader)
    }

    /// A counter of `INFO commandstats`, e.g. `calls` of `evalsha`.
    pub fn command_calls(&self, command: &str) -> u64 {
        let info = self.command(None, &["INFO", "commandstats"]);
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Its folder (for config files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A Redis Cluster of `n` masters (no replicas), formed by `redis-cli --cluster create`.
pub fn cluster(n: usize) -> Vec<RedisServer> {
    let nodes: Vec<RedisServer> = (0..n)
        .map(|_| {
            RedisServer::start(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|r| format!("127.0.0.1:{}", r.port))
        .collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for _ in 0..100 {
        if nodes.iter().all(|r| {
            r.command(None, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        }) {
            return nodes;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the cluster did not form");
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A frozen server would not die of SIGKILL before SIGCONT on some kernels.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}

fn send(conn: &mut TcpStream, args: &[&str]) {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.write_all(out.as_bytes()).expect("write to redis");
}

fn read(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read from redis");
    let line = line.trim_end().to_string();
    let (kind, rest) = line.split_at(1.min(line.len()));
    match kind {
        "$" => {
            let n: i64 = rest.parse().expect("bulk length");
            if n < 0 {
                return String::new();
            }
            let mut buf = vec![0; n as usize + 2];
            reader.read_exact(&mut buf).expect("bulk");
            String::from_utf8_lossy(&buf[..n as usize]).into_owned()
        }
        "*" => {
            let n: i64 = rest.parse().expect("array length");
            (0..n.max(0))
                .map(|_| read(reader))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => rest.to_string(),
    }
}
