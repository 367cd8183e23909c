//! Turns an error chain into the report the user reads: the message, then each cause on its own
//! line. Module errors keep their source out of their own message (the chain prints it once).

use std::io::{IsTerminal, Write};

pub fn print(err: &anyhow::Error) {
    let mut out = std::io::stderr().lock();
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (red, reset) = if color { ("\x1b[31m", "\x1b[0m") } else { ("", "") };
    let _ = writeln!(out, "{red}Error:{reset} {err}");
    let mut last = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        // Some foreign errors repeat their source in their message; print each text once.
        if !last.contains(&text) {
            let _ = writeln!(out, "  caused by: {text}");
        }
        last = text;
    }
}
