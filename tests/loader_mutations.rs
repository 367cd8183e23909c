//! The loader survives any input: every compose file of both conformance corpora, mutated in
//! deterministic ways (truncations, byte flips, inserted `${`, `$$`, non-ASCII, NUL, aliases,
//! deep nesting, hostile values), must load or fail with an error, never panic, within a bounded
//! time and a bounded amount of memory. This is the CI-sized sibling of the `cargo fuzz` target
//! in `fuzz/` (which explores further, but not in CI).
//!
//! Memory is measured by a counting allocator (per thread, so that parallel tests do not mix):
//! the peak of live bytes while one mutated file loads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth::project::{LoadOptions, load};

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn add(n: usize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + n;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}
fn sub(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add(l.size());
        // SAFETY: the caller's layout is passed on as is.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        sub(l.size());
        // SAFETY: `p` was allocated by `System` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        add(l.size());
        // SAFETY: as for alloc.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        sub(l.size());
        add(new);
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// No single load may take longer (a debug build, on a shared 2-core machine).
const MAX_TIME: Duration = Duration::from_secs(10);
/// Nor hold more live memory at once.
const MAX_PEAK: usize = 256 << 20;

/// A small deterministic generator (xorshift), seeded per file so that a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Text inserted at random places.
const INSERTS: &[&str] = &[
    "${",
    "$$",
    "${A",
    "${A:-${B:-",
    "}",
    "${é}",
    "${Aé}",
    "$${A:/x",
    "é",
    "\u{1F600}",
    "\0",
    "\u{1b}",
    "\u{feff}",
    "\t",
    "\n",
    ":",
    "- ",
    "&a ",
    "*a",
    "<<: *a\n",
    "!reset ",
    "!override ",
    "[",
    "{",
    "'",
    "\"",
    "\\",
    "#",
    "---\n",
    "? ",
    "|\n",
    ">-\n",
];

/// Values put in place of a scalar (after the first `: ` of a line).
const VALUES: &[&str] = &[
    "\"$${A:/x\"",
    "\"${Aé}\"",
    "\"${A:é}\"",
    "99999999999999999999999",
    "-1",
    "0",
    ".inf",
    "0x",
    "\"20000-29999:20000-29999\"",
    "\"[::1]:0-9999:0-9999/sctp\"",
    "\"C:\"",
    "\"${UNSET:?}\"",
    "[]",
    "{}",
    "null",
    "!reset",
    "\"a:b:c:d:e\"",
    "\"::::\"",
    "\"~\"",
    "\"../../../../\"",
    "[[[[[]]]]]",
    "\"1e400\"",
    "\"10000000000000000000000000000000gb\"",
    "\"-9223372036854775808ns\"",
    "\"9223372036854775807h\"",
    "\"\\u00e9:\\u00e9\"",
];

/// The mutations of `text`: (what was done, the mutated bytes).
fn mutations(text: &[u8], seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut r = Rng(seed | 1);
    let mut out = Vec::new();
    let n = text.len();
    for k in 1..8 {
        let at = n * k / 8;
        out.push((format!("truncated at {at}"), text[..at].to_vec()));
    }
    for _ in 0..8 {
        let at = r.below(n);
        let mut t = text.to_vec();
        if let Some(b) = t.get_mut(at) {
            *b ^= 1 << r.below(8);
        }
        out.push((format!("bit flipped at {at}"), t));
    }
    for _ in 0..16 {
        let at = r.below(n + 1);
        let ins = INSERTS[r.below(INSERTS.len())];
        let mut t = text[..at].to_vec();
        t.extend_from_slice(ins.as_bytes());
        t.extend_from_slice(&text[at..]);
        out.push((format!("{ins:?} inserted at {at}"), t));
    }
    // each hostile value in place of a scalar (after `: ` or `- `), on a line chosen at random
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let scalar_at = |l: &[u8]| {
        let dash = l.iter().position(|b| *b != b' ').filter(|&i| l[i..].starts_with(b"- ")).map(|i| i + 2);
        dash.or_else(|| l.windows(2).position(|w| w == b": ").map(|i| i + 2))
    };
    let eligible: Vec<(usize, usize)> = lines.iter().enumerate().filter_map(|(i, l)| scalar_at(l).map(|at| (i, at))).collect();
    for v in VALUES {
        if eligible.is_empty() {
            break;
        }
        let (li, at) = eligible[r.below(eligible.len())];
        let mut t = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i == li {
                t.extend_from_slice(&l[..at]);
                t.extend_from_slice(v.as_bytes());
            } else {
                t.extend_from_slice(l);
            }
            t.push(b'\n');
        }
        out.push((format!("line {} set to {v}", li + 1), t));
    }
    // a line duplicated, a line removed
    if !lines.is_empty() {
        let li = r.below(lines.len());
        let mut dup: Vec<&[u8]> = lines.clone();
        dup.insert(li, lines[li]);
        out.push((format!("line {} doubled", li + 1), dup.join(&b'\n')));
        let mut del = lines.clone();
        del.remove(li);
        out.push((format!("line {} removed", li + 1), del.join(&b'\n')));
    }
    // deep nesting, in flow and block style, and a big anchor aliased many times
    let mut deep = b"x-deep: ".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 10_000));
    deep.push(b'\n');
    deep.extend_from_slice(text);
    out.push(("10 000 nested [ prepended".into(), deep));
    let mut block = Vec::new();
    for i in 0..400 {
        block.extend(std::iter::repeat_n(b' ', i));
        block.extend_from_slice(b"x-a:\n");
    }
    out.push(("400 nested mappings".into(), block));
    let mut bomb = format!("x-big: &big \"{}\"\nx-many: [", "${A}".repeat(1 << 16)).into_bytes();
    for _ in 0..2000 {
        bomb.extend_from_slice(b"*big, ");
    }
    bomb.extend_from_slice(b"*big]\n");
    bomb.extend_from_slice(text);
    out.push(("a 256 KiB anchor aliased 2000 times".into(), bomb));
    out
}

/// Every compose file of the corpora: (the folder it is loaded in, its name, its bytes).
fn corpus_files() -> Vec<(PathBuf, String, Vec<u8>)> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for corpus in ["compose-corpus", "compose-e2e"] {
        let root = fixtures.join(corpus);
        let cases: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("cases.json")).unwrap()).unwrap();
        for c in cases.as_array().unwrap() {
            let dir = root.join("trees").join(c["tree"].as_str().unwrap()).join(c["dir"].as_str().unwrap());
            for f in c["files"].as_array().unwrap() {
                let f = f.as_str().unwrap();
                let text = std::fs::read(dir.join(f)).unwrap();
                out.push((dir.clone(), format!("{}/{}", c["name"].as_str().unwrap(), f), text));
            }
        }
    }
    out
}

/// Loads `text` as the compose file of a project in `dir`; returns what went wrong, if anything
/// did (a panic, or too much time or memory).
fn check(dir: &Path, scratch: &Path, text: &[u8], loaded: &mut usize, slowest: &mut Duration) -> Option<String> {
    let file = scratch.join("compose.yaml");
    std::fs::write(&file, text).unwrap();
    let opts = LoadOptions {
        files: vec![file],
        project_directory: Some(dir.to_path_buf()),
        interpolate: true,
        environment: HashMap::from([("HOME".to_string(), "/nonexistent".to_string())]),
        cwd: Some(dir.to_path_buf()),
        ..Default::default()
    };
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let t = Instant::now();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let p = load(&opts);
        // what `config` does with a loaded project
        if let Ok(p) = &p {
            let _ = (p.to_json(), p.to_yaml(), p.graph().map(|g| g.render_text()));
        }
        p.map(|_| ()).map_err(|e| e.to_string())
    }));
    let took = t.elapsed();
    *slowest = (*slowest).max(took);
    let peak = PEAK.with(Cell::get).saturating_sub(base);
    match r {
        Err(p) => Some(format!(
            "panicked: {}",
            p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
        )),
        Ok(_) if took > MAX_TIME => Some(format!("took {took:?}")),
        Ok(_) if peak > MAX_PEAK => Some(format!("held {} MiB at once", peak >> 20)),
        Ok(Err(e)) if e.is_empty() => Some("an empty error".into()),
        Ok(Ok(())) => {
            *loaded += 1;
            None
        }
        Ok(Err(_)) => None,
    }
}

#[test]
fn mutated_corpus_files_never_panic_and_stay_bounded() {
    let files = corpus_files();
    assert!(files.len() > 150, "corpora not found: {} files", files.len());
    let scratch = tempfile::tempdir().unwrap();
    // panics are caught and reported below; keep their messages off the output
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut loaded = 0;
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    for (i, (dir, name, text)) in files.iter().enumerate() {
        for (what, m) in mutations(text, 0x9e37_79b9_7f4a_7c15 ^ i as u64) {
            runs += 1;
            if let Some(f) = check(dir, scratch.path(), &m, &mut loaded, &mut slowest) {
                failures.push(format!("{name}, {what}: {f}"));
            }
        }
    }
    std::panic::set_hook(hook);
    println!("{runs} mutated files ({loaded} loaded, the others refused) in {:?}, the slowest {slowest:?}", start.elapsed());
    assert!(failures.is_empty(), "{} of {runs} mutated files failed:\n{}", failures.len(), failures.join("\n"));
}
