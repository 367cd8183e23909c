//! `berth attach SERVICE`: the running container's output from now on, live, on this terminal's
//! stdout and stderr, and (`--sig-proxy`, the default) the signals this process receives sent to
//! the container. It ends when the container stops, with its exit code.
//!
//! The supervisor takes a container's stdin only when the container is started attached
//! (`run`, `up` without -d), so `attach` forwards no input: `--no-stdin` is what it does, and
//! `--detach-keys` (keys read from stdin) has nothing to act on.
use std::io::Write;

use clap::{ArgAction, Args};

use super::OneOff;
use crate::cli::GlobalOpts;
use crate::engine::runtime::logs::ReadOptions;
use crate::engine::runtime::ops;
use crate::util::sys;

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Override the key sequence for detaching from a container.
    #[arg(long, value_name = "KEYS")]
    detach_keys: Option<String>,
    /// index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 0)]
    index: u32,
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    sig_proxy: bool,
    #[arg(value_name = "SERVICE")]
    service: String,
}

/// The signals `--sig-proxy` forwards: what a terminal or a process manager sends
/// (SIGKILL and SIGSTOP cannot be caught; SIGCHLD, SIGPIPE and SIGURG are this process's own).
const PROXIED: &[&str] = &["HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "WINCH", "ALRM", "CONT", "TSTP"];

pub fn run(g: &GlobalOpts, a: AttachArgs) -> anyhow::Result<i32> {
    let name = super::project_name(g)?;
    let root = g.state_root();
    let c = super::specified_container(&root, &name, OneOff::Include, false, &a.service, a.index)?;
    if c.cfg.open_stdin && !a.no_stdin {
        eprintln!("WARN[0000] berth attach does not forward input to {}: its stdin is taken only when it starts attached", c.cfg.name);
    }
    if a.sig_proxy {
        // Blocked here before any thread starts, so that every thread inherits the mask and
        // the forwarder alone takes these signals.
        let signals: Vec<i32> = PROXIED.iter().filter_map(|s| sys::parse_signal(s)).collect();
        let (root, id) = (root.clone(), c.cfg.id.clone());
        sys::forward_signals(&signals, move |sig| {
            // A container that is gone ends the log stream below, and with it this process.
            let _ = ops::kill(&root, &id, sig);
        });
    }
    // From now on: what the container wrote before is `logs`' business, as with Docker.
    let opts = ReadOptions { tail: None, since: Some(chrono::Utc::now()), until: None, follow: true };
    let mut closed = false;
    let r = ops::logs(&root, &c.cfg.id, &opts, &mut |rec, _| {
        let w = if rec.stream == "stderr" {
            let mut e = std::io::stderr().lock();
            e.write_all(rec.log.as_bytes()).and_then(|_| e.flush())
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(rec.log.as_bytes()).and_then(|_| o.flush())
        };
        closed = w.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
        w
    });
    if closed {
        // The reader went away: detached, as Docker's attach ends then.
        return Ok(0);
    }
    r.map_err(super::runtime_err)?;
    let st = ops::state_of(&root, &c.cfg.id).map_err(super::runtime_err)?;
    Ok(st.exit_code)
}
