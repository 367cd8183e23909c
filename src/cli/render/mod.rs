//! The output toolkit: how berth prints what the engine and the planner return, exactly as the
//! Docker CLI and Docker Compose print it. One implementation of each rule, shared by every
//! command and by every front end to come (the compose commands, `container`, the API's text
//! forms), so that two commands can never print the same thing two ways:
//!
//! - [`tabwriter`]: Go's `text/tabwriter`, which lays out every table;
//! - [`template`]: Go templates for `--format` and `inspect -f`;
//! - [`format`]: `--format` for listings (`table`, `table TEMPLATE`, `json`, `TEMPLATE`);
//! - [`units`]: go-units' `HumanDuration`, `HumanSize` and `BytesSize`;
//! - [`text`]: Go quoting, Docker's ellipsis and command lines, Go's time layouts;
//! - [`container`]: a container's status text and published ports.
//!
//! Nothing here reads state or decides anything: it turns data into text. The engine never
//! depends on it (it returns data, the front end words it).

pub mod container;
pub mod format;
pub mod tabwriter;
pub mod template;
pub mod text;
pub mod units;

pub use format::Format;
pub use tabwriter::Style;
pub use template::{Row, Template, TemplateError};

/// JSON indented by four spaces, as docker prints `inspect` output.
pub fn pretty4<T: serde::Serialize>(v: &T) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("JSON values serialize");
    String::from_utf8(buf).expect("JSON is UTF-8")
}
