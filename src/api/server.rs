//! The listener: hyper 1 over HTTP/1.1 on a Unix socket, no TCP. The socket is mode 0660, owned by
//! root and the `docker` group when that group exists, as dockerd's is: a request on it is as
//! privileged as the user running berth. Connections are served on one thread (a current-thread
//! tokio runtime: the server is small and mostly idle); each
//! request's library call runs on a blocking thread (the engine's calls are synchronous).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::state::StateRoot;

/// Where `berth system service` listens when not told (`DOCKER_HOST=unix:///run/berth/docker.sock`).
pub const DEFAULT_SOCKET: &str = "/run/berth/docker.sock";

/// What `berth system service` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub root: StateRoot,
    pub socket: PathBuf,
    /// Exit after this long without a connection; `None` serves until killed.
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the folder of the API socket {path}: {source}; create it or pass --socket PATH")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error("another server is listening on {0}: stop it, or pass another --socket PATH")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket: remove it or pass another --socket PATH")]
    NotASocket(PathBuf),
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: std::io::Error },
    #[error("cannot set the owner or mode of {path}: {source}")]
    Permissions { path: PathBuf, source: std::io::Error },
    #[error("cannot start the API server's runtime: {0}")]
    Runtime(std::io::Error),
}

/// Serves the Engine API on `opts.socket` until the idle timeout passes with no connection open.
/// The socket file is removed on the way out.
///
/// Under systemd socket activation (`LISTEN_PID`/`LISTEN_FDS`, see contrib/systemd/) it serves the
/// socket it was given instead, and leaves that socket's file, mode and owner to systemd.
pub fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    // Before any thread starts: taking the socket clears the activation variables.
    let activated = crate::util::sys::take_listen_socket();
    let path = opts.socket.clone();
    if activated.is_none() {
        prepare_path(&path)?;
    }
    let own_file = activated.is_none();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ServeError::Runtime)?;
    let result = rt.block_on(run(opts, activated));
    if own_file {
        let _ = std::fs::remove_file(&path);
    }
    result
}

/// Checks everything about the socket path before binding: its folder exists (made 0755 if not),
/// and what is there already is a dead socket (removed) or nothing.
fn prepare_path(path: &Path) -> Result<(), ServeError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::Folder { path: dir.to_path_buf(), source })?;
    }
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(ServeError::NotASocket(path.to_path_buf()));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(|source| ServeError::Listen { path: path.to_path_buf(), source })
        }
    }
}

/// The gid of the `docker` group in /etc/group, if there is one.
fn docker_gid() -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == "docker").then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

async fn run(opts: ServeOptions, activated: Option<std::os::unix::net::UnixListener>) -> Result<(), ServeError> {
    let path = opts.socket.clone();
    let listen = |source| ServeError::Listen { path: path.clone(), source };
    let listener = match activated {
        Some(l) => {
            l.set_nonblocking(true).map_err(listen)?;
            UnixListener::from_std(l).map_err(listen)?
        }
        None => {
            let l = UnixListener::bind(&path).map_err(listen)?;
            let perm = |source| ServeError::Permissions { path: path.clone(), source };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).map_err(perm)?;
            if let Some(gid) = docker_gid() {
                std::os::unix::fs::chown(&path, Some(0), Some(gid)).map_err(perm)?;
            }
            l
        }
    };
    let root = Arc::new(opts.root);
    // The number of open connections; the idle clock runs only while it is zero.
    let (open, _) = tokio::sync::watch::channel(0usize);
    loop {
        let mut seen = open.subscribe();
        let idle = async {
            match opts.idle_timeout {
                Some(t) => loop {
                    if seen.wait_for(|n| *n == 0).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(t) => return,
                        _ = seen.changed() => {}
                    }
                },
                None => std::future::pending().await,
            }
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // A failed accept (EMFILE, a peer gone) costs that connection only.
                Err(_) => continue,
            },
            _ = idle => return Ok(()),
        };
        open.send_modify(|n| *n += 1);
        let (root, open) = (root.clone(), open.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let root = root.clone();
                async move { Ok::<_, std::convert::Infallible>(super::handlers::handle(root, req).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).with_upgrades().await;
            open.send_modify(|n| *n -= 1);
        });
    }
}
