//! The Docker Engine API, served on a Unix socket by `berth system service`.
//!
//! Half of the tooling around containers (the docker CLI, Compose, docker-py, Testcontainers,
//! editors) does not run commands: it speaks this API. berth serves it without becoming a daemon:
//! the server owns no state (the state root is the state, exactly as for the CLI), answers each
//! request with the same library functions the CLI calls, and exits after `--timeout` seconds
//! without a connection, as `podman system service` does; the containers keep running under their
//! supervisors. Like `src/cli`, this is a front end: it parses a request, calls one library
//! function, and renders Docker's JSON (the words come from `cli::render`, shared by both).
//!
//! [`routes`] is the table of every Engine API endpoint with its status in berth; `docs/api.md`
//! is generated from the same rows and a test keeps the two equal.

mod handlers;
pub mod routes;
mod server;

pub use server::{DEFAULT_SOCKET, ServeError, ServeOptions, serve};
