//! The protocol between the runtime's operations and a container's supervisor: the "started"
//! report on fd 3 ([`Started`]) and the control socket, `containers/<id>/ctl.sock` (one JSON
//! request line, one JSON response line; `stop` is answered once the container is down). It lives
//! in the runtime, which the supervisor builds on, so that the runtime never imports the
//! supervisor.
//!
//! Paths under a deep state root exceed the 108 bytes a socket address holds, so both ends reach
//! the socket relative to a directory fd (`/proc/self/fd/N/ctl.sock`).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the supervisor tells the CLI on fd 3 once the container started, or why it did not.
#[derive(Debug, Serialize, Deserialize)]
pub struct Started {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub pid: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Send `signal`, wait `timeout_ms`, then SIGKILL; answered when the container is down.
    Stop {
        signal: i32,
        timeout_ms: u64,
    },
    Kill {
        signal: i32,
    },
    Pause,
    Unpause,
    Ping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    #[serde(default)]
    pub error: Option<String>,
}

/// The socket path as reachable through an open directory fd.
pub fn via_fd(dir: &OwnedFd, name: &str) -> String {
    format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), name)
}

/// Sends `req` to the supervisor of the container whose directory is `dir` and waits up to
/// `timeout` for the answer.
pub fn request(dir: &Path, req: &Request, timeout: Duration) -> std::io::Result<Response> {
    let dirfd = crate::util::sys::file::open(dir, libc::O_PATH | libc::O_DIRECTORY)?;
    let mut s = UnixStream::connect(via_fd(&dirfd, "ctl.sock"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut r = BufReader::new(s);
    let mut out = String::new();
    r.read_line(&mut out)?;
    if out.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the supervisor closed the connection"));
    }
    serde_json::from_str(&out).map_err(std::io::Error::other)
}
