//! Fuzzes the compose loader as `berth config` runs it: the input is a compose file, optionally
//! followed by a line `#ENV` and the text of the project's `.env`. Loading must give a project or
//! an error, never a panic, an abort or a runaway allocation (run with `-rss_limit_mb`).
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use berth::project::{LoadOptions, load};
use libfuzzer_sys::fuzz_target;

/// A project folder of our own, in memory when /dev/shm exists.
fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let d = base.join(format!("berth-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz project folder");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let (compose, env) = match data.windows(6).position(|w| w == b"\n#ENV\n") {
        Some(i) => (&data[..i + 1], Some(&data[i + 6..])),
        None => (data, None),
    };
    std::fs::write(d.join("compose.yaml"), compose).expect("write compose.yaml");
    match env {
        Some(e) => std::fs::write(d.join(".env"), e).expect("write .env"),
        None => {
            let _ = std::fs::remove_file(d.join(".env"));
        }
    }
    let opts = LoadOptions {
        files: vec![d.join("compose.yaml")],
        interpolate: true,
        environment: HashMap::from([("HOME".to_string(), "/nonexistent".to_string())]),
        cwd: Some(d.clone()),
        ..Default::default()
    };
    if let Ok(p) = load(&opts) {
        let _ = (p.to_json(), p.to_yaml(), p.graph().map(|g| g.render_text()));
    }
});
