//! What the differential tests share: building a C harness against the system's
//! libmodsecurity (which carries libinjection too) and feeding it stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Build `tests/<source>` into `dir` as `name`, linked with libmodsecurity.
pub fn build_c(dir: &Path, source: &str, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(source);
    let exe = dir.join(name);
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-lmodsecurity")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "building {source} failed (apt-get install libmodsecurity-dev):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Run `exe` with `args`, `input` on its stdin: its stdout, which must be UTF-8.
pub fn run(exe: &Path, args: &[&Path], input: String) -> String {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the harness");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("harness output");
    assert!(out.status.success(), "{} failed", exe.display());
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
