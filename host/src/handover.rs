//! Zero-downtime binary upgrade (SIGUSR2): the running process starts the binary at its
//! path again, handing over its listening sockets (and the admin socket) as inherited file
//! descriptors; once the new process says it is ready, the old one stops accepting, lets
//! its requests finish and exits. The sockets are the same kernel objects in both
//! processes, so no connection waiting to be accepted is lost. If the new process fails to
//! start, the old one keeps serving.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

/// Names the inherited sockets: `admin=<fd>` and `<listener index>=<fd>` pairs, comma
/// separated.
const SOCKETS_ENV: &str = "WEIR_INHERITED_SOCKETS";
/// The write end of a pipe the new process writes one byte to once it serves.
const READY_ENV: &str = "WEIR_READY_FD";
/// Longest the old process waits for the new one to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The command line this process was started with (the binary is started the same way).
static ARGS: OnceLock<(OsString, Vec<OsString>, std::path::PathBuf)> = OnceLock::new();

/// Remember how this process was started; call first thing in `main`.
pub fn remember_command_line() {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "weir".into());
    let cwd = std::env::current_dir().unwrap_or_default();
    let _ = ARGS.set((program, args.collect(), cwd));
}

/// The sockets this process inherited from the one it replaces, by listener index (and the
/// admin socket); empty when it was started afresh. Taken once.
pub struct Inherited {
    listeners: HashMap<usize, Vec<TcpListener>>,
    /// Sockets not (or no longer) at their index's address, for another listener to take.
    spare: Vec<TcpListener>,
    admin: Option<TcpListener>,
}

impl Inherited {
    /// Read the inherited descriptors named in the environment (once per process).
    pub fn take() -> Inherited {
        static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let mut out = Inherited {
            listeners: HashMap::new(),
            spare: Vec::new(),
            admin: None,
        };
        if TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return out;
        }
        let Ok(list) = std::env::var(SOCKETS_ENV) else {
            return out;
        };
        for item in list.split(',').filter(|i| !i.is_empty()) {
            let Some((name, fd)) = item.split_once('=') else {
                continue;
            };
            let Ok(fd) = fd.parse::<RawFd>() else {
                continue;
            };
            if !is_listening_socket(fd) {
                tracing::warn!(
                    fd,
                    "inherited descriptor is not a listening socket: ignored"
                );
                continue;
            }
            // SAFETY: the old process passed this descriptor to this one for its sole use,
            // and it was checked above to be an open socket; nothing else here owns it.
            let socket = unsafe { TcpListener::from_raw_fd(fd) };
            let _ = socket.set_nonblocking(true);
            match name {
                "admin" => out.admin = Some(socket),
                index => {
                    if let Ok(i) = index.parse::<usize>() {
                        out.listeners.entry(i).or_default().push(socket);
                    }
                }
            }
        }
        out
    }

    /// The inherited sockets for listener `index` at `addr`: those of the same index if
    /// they listen there, else any inherited socket bound to exactly `addr` (a manifest that
    /// reordered its listeners). Sockets no listener takes are closed when this is dropped.
    pub fn listener(&mut self, index: usize, addr: std::net::SocketAddr) -> Vec<TcpListener> {
        if let Some(sockets) = self.listeners.remove(&index) {
            let (mine, others): (Vec<_>, Vec<_>) =
                sockets.into_iter().partition(|s| listens_at(s, addr));
            if !others.is_empty() {
                self.spare.extend(others);
            }
            if !mine.is_empty() {
                return mine;
            }
        }
        let exact = |s: &TcpListener| addr.port() != 0 && s.local_addr().is_ok_and(|a| a == addr);
        let mut found = Vec::new();
        for sockets in self
            .listeners
            .values_mut()
            .chain(std::iter::once(&mut self.spare))
        {
            let (mine, rest): (Vec<_>, Vec<_>) =
                std::mem::take(sockets).into_iter().partition(exact);
            found.extend(mine);
            *sockets = rest;
        }
        found
    }

    /// The inherited admin socket, if it listens where `addr` says.
    pub fn admin(&mut self, addr: std::net::SocketAddr) -> Option<TcpListener> {
        self.admin.take().filter(|s| listens_at(s, addr))
    }
}

/// Whether `socket` is bound to `addr` (any port, for port 0: the one it was given).
fn listens_at(socket: &TcpListener, addr: std::net::SocketAddr) -> bool {
    socket
        .local_addr()
        .is_ok_and(|a| a.ip() == addr.ip() && (a.port() == addr.port() || addr.port() == 0))
}

fn is_listening_socket(fd: RawFd) -> bool {
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `accepting`, a valid c_int.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && accepting == 1
}

/// Tell the process that started this one (in an upgrade) that this one serves now.
pub fn announce_ready() {
    let Ok(fd) = std::env::var(READY_ENV) else {
        return;
    };
    let Ok(fd) = fd.parse::<RawFd>() else { return };
    // SAFETY: the old process passed this pipe end to this one only to be written once.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = std::io::Write::write_all(&mut pipe, b"1");
}

/// The sockets to hand over: (name, socket) with name `admin` or a listener index.
pub type Handed = Vec<(String, OwnedFd)>;

/// Start the binary again with `sockets`; wait (on a blocking thread) until it is ready.
/// `Ok(pid)` when it is, else why not (the caller keeps serving).
pub async fn upgrade(sockets: &Handed) -> Result<u32, String> {
    let (program, args, cwd) = ARGS
        .get()
        .cloned()
        .ok_or("the command line was not recorded")?;
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe writes two descriptors into the array it is given.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let [read_fd, write_fd] = fds;
    // SAFETY: both ends were just made by pipe and are owned here.
    let (read_end, write_end) = unsafe {
        (
            OwnedFd::from_raw_fd(read_fd),
            OwnedFd::from_raw_fd(write_fd),
        )
    };
    let list: Vec<String> = sockets
        .iter()
        .map(|(name, fd)| format!("{name}={}", fd.as_raw_fd()))
        .collect();
    let mut keep: Vec<RawFd> = sockets.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    keep.push(write_end.as_raw_fd());
    let mut command = std::process::Command::new(&program);
    command
        .args(&args)
        .current_dir(&cwd)
        .env(SOCKETS_ENV, list.join(","))
        .env(READY_ENV, write_end.as_raw_fd().to_string());
    // SAFETY: between fork and exec the child only calls fcntl (async-signal-safe) to let the
    // handed-over descriptors survive exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            for &fd in &keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.to_string_lossy()))?;
    drop(write_end);
    let pid = child.id();
    let waited = tokio::task::spawn_blocking(move || {
        let mut pipe = std::fs::File::from(read_end);
        let mut byte = [0u8; 1];
        // A ready process writes one byte; one that exits closes the pipe (0 bytes).
        pipe.read(&mut byte)
    });
    if let Ok(Ok(Ok(1))) = tokio::time::timeout(READY_TIMEOUT, waited).await {
        return Ok(pid);
    }
    // Not ready: it must not serve beside this process.
    let _ = child.kill();
    let status = tokio::task::spawn_blocking(move || child.wait()).await;
    Err(match status {
        Ok(Ok(s)) if s.code().is_some() => {
            format!("the new process (pid {pid}) exited ({s}) before it was ready")
        }
        _ => format!("the new process (pid {pid}) was not ready within {READY_TIMEOUT:?}: stopped"),
    })
}
