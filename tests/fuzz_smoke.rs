//! The fuzz targets' checks in `cargo test` (stable): every check in
//! fuzz/checks/ (the code the cargo-fuzz targets call) runs on each seed in
//! fuzz/seeds/<target>/ and then on a fixed number of mutants of those
//! seeds. Most mutants change bytes: bit flips, byte changes, insertions
//! and deletions, copies, splices between seeds and tokens of
//! fuzz/json.dict. The others (on seeds that are JSON) change values: to
//! edge cases (huge, negative, empty, of the wrong type) or near numbers,
//! members removed, or members of other seeds and keys of the dictionary
//! added; being JSON, and often valid, they get past the parsers into the
//! checks further on. The mutants come from `StdRng` with a fixed seed:
//! every run tries the same inputs. Not coverage-guided:
//! scripts/fuzz-smoke.sh does that (nightly, cargo-fuzz).
//!
//! A check that fails (panics), or a panic on any other thread while it
//! runs (a server or client thread: under libFuzzer every panic is a
//! crash), fails the test with the input shown and written to
//! <target dir>/fuzz-smoke-failures/<target>-<n>, which `cargo +nightly
//! fuzz run <target> <file>` reproduces. The targets run one at a time, so
//! a panic on another thread belongs to the input being run (or the one
//! just before).

#[path = "../fuzz/checks/mod.rs"]
#[allow(clippy::undocumented_unsafe_blocks)]
// the fuzz targets' checks, calling the C ABI as C would
mod checks;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::Instant;

/// Mutants per target (the seeds run as well). Most checks take well under
/// a millisecond in a debug build.
const MUTATIONS: usize = 2_000;

/// Mutants for `ffi_server_start`, which starts a server and has a client
/// use it for each valid config (about 1 mutant in 20; a few milliseconds
/// each, but a request may wait for its timeout of 2 s).
const SERVER_MUTATIONS: usize = 500;

/// The seed of the mutations.
const RNG_SEED: u64 = 0x5eed_f022;

/// At most this many mutations are stacked on one seed.
const MAX_STACK: usize = 5;

/// The share of mutants made by changing the JSON of a seed (the rest
/// change its bytes).
const JSON_SHARE: f64 = 0.4;

/// Mutants are cut to this length (the seeds are well under it).
const MAX_LEN: usize = 8 * 1024;

#[test]
fn frame_decode() {
    run("frame_decode", checks::frame_decode, MUTATIONS);
}

#[test]
fn client_frame_decode() {
    run(
        "client_frame_decode",
        checks::client_frame_decode,
        MUTATIONS,
    );
}

#[test]
fn ffi_client_new() {
    run("ffi_client_new", checks::ffi_client_new, MUTATIONS);
}

#[test]
fn ffi_requests() {
    run("ffi_requests", checks::ffi_requests, MUTATIONS);
}

#[test]
fn ffi_server_start() {
    run(
        "ffi_server_start",
        checks::ffi_server_start,
        SERVER_MUTATIONS,
    );
}

/// Runs `check` on the seeds of `target`, then on `mutations` mutants.
fn run(target: &str, check: fn(&[u8]), mutations: usize) {
    let _one_at_a_time = serial();
    watch_panics();
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "no seeds in fuzz/seeds/{target}/");
    let start = Instant::now();
    for (n, seed) in seeds.iter().enumerate() {
        run_one(target, check, n, seed);
    }
    let mut m = Mutator::new(&seeds, dict());
    for n in seeds.len()..seeds.len() + mutations {
        let input = m.mutant();
        run_one(target, check, n, &input);
    }
    eprintln!(
        "fuzz_smoke: {target}: {} inputs ({} seeds, {mutations} mutations) in {:.1?}",
        seeds.len() + mutations,
        seeds.len(),
        start.elapsed()
    );
}

/// Runs `check` on input number `n`; on a failure, saves the input and
/// panics with it.
fn run_one(target: &str, check: fn(&[u8]), n: usize, input: &[u8]) {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(input)));
    let other = std::mem::take(&mut *lock(&OTHER_PANICS));
    let what = match outcome {
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into()),
        Ok(()) if !other.is_empty() => format!("a panic on another thread: {}", other.join("; ")),
        Ok(()) => return,
    };
    let file = failure_dir().join(format!("{target}-{n}"));
    let saved = std::fs::create_dir_all(failure_dir())
        .and_then(|()| std::fs::write(&file, input))
        .map(|()| {
            format!(
                "saved to {}; reproduce with `cargo +nightly fuzz run {target} {}`",
                file.display(),
                file.display()
            )
        })
        .unwrap_or_else(|e| format!("could not be saved to {}: {e}", file.display()));
    panic!(
        "fuzz_smoke: check {target} failed on input #{n} ({} bytes): {what}\n\
         input (lossy UTF-8): {:?}{}\n\
         input (hex): {}{}\n\
         input {saved}",
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(2048)]),
        if input.len() > 2048 { " ..." } else { "" },
        hex(&input[..input.len().min(1024)]),
        if input.len() > 1024 { " ..." } else { "" },
    );
}

/// `bytes` in hexadecimal.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// <target dir>/fuzz-smoke-failures (the target dir as cargo has it).
fn failure_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("fuzz-smoke-failures")
}

/// fuzz/ of this crate.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of fuzz/seeds/<target>/, in name order.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("seeds").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("seed directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// The tokens of fuzz/json.dict (libFuzzer's format: `"..."` or
/// `name="..."` a line, with `\\`, `\"` and `\xNN` escapes).
fn dict() -> Vec<Vec<u8>> {
    let path = fuzz_dir().join("json.dict");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tokens = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (Some(open), Some(close)) = (line.find('"'), line.rfind('"')) else {
            panic!("json.dict: not a token: {line}");
        };
        assert!(open < close, "json.dict: not a token: {line}");
        tokens.push(unescape(&line[open + 1..close]));
    }
    assert!(!tokens.is_empty(), "json.dict has no tokens");
    tokens
}

/// A dictionary token's bytes.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'x' && i + 3 < b.len() {
                if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Bytes that matter to JSON (and to C strings), for byte changes.
const INTERESTING: &[u8] = b"\0\x01\x7f\x80\xff \t\n\"\\{}[],:-+.0123456789eEtfnu";

struct Mutator<'a> {
    rng: StdRng,
    seeds: &'a [Vec<u8>],
    dict: Vec<Vec<u8>>,
    /// The dictionary's quoted names (`"account"`), as keys to add.
    dict_keys: Vec<String>,
    /// Every member (key and value) of the objects in the seeds that are
    /// JSON, to add to others (which mostly keeps a config valid).
    members: Vec<(String, Value)>,
}

impl<'a> Mutator<'a> {
    fn new(seeds: &'a [Vec<u8>], dict: Vec<Vec<u8>>) -> Self {
        let dict_keys = dict
            .iter()
            .filter_map(|t| serde_json::from_slice::<Value>(t).ok())
            .filter_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect();
        let mut members = Vec::new();
        for seed in seeds {
            if let Ok(v) = serde_json::from_slice::<Value>(seed) {
                collect_members(&v, &mut members);
            }
        }
        Mutator {
            rng: StdRng::seed_from_u64(RNG_SEED),
            seeds,
            dict,
            dict_keys,
            members,
        }
    }

    /// A seed with 1 to MAX_STACK mutations: of its JSON (JSON_SHARE of
    /// the time, when it is JSON) or of its bytes.
    fn mutant(&mut self) -> Vec<u8> {
        let mut data = self.seeds.choose(&mut self.rng).expect("seeds").clone();
        let stack = self.rng.gen_range(1..=MAX_STACK);
        if self.rng.gen_bool(JSON_SHARE) {
            if let Ok(mut v) = serde_json::from_slice::<Value>(&data) {
                for _ in 0..stack {
                    self.mutate_json(&mut v);
                }
                return serde_json::to_vec(&v).expect("serialize a mutant");
            }
        }
        for _ in 0..stack {
            self.mutate(&mut data);
        }
        data.truncate(MAX_LEN);
        data
    }

    /// Changes one value of `v` (the whole of it, a member or an element):
    /// a number or string to a near or an edge one, any value to an edge
    /// case; or removes a member or element, or adds one (a member of a
    /// seed, or a key of the dictionary with an edge value).
    fn mutate_json(&mut self, v: &mut Value) {
        let rng = &mut self.rng;
        let node = nth_node(v, rng.gen_range(0..count_nodes(v)));
        let changed = match (rng.gen_range(0..5), &mut *node) {
            (0, Value::Object(m)) if !m.is_empty() => {
                let key = m.keys().nth(rng.gen_range(0..m.len())).cloned();
                m.remove(&key.expect("a key"));
                None
            }
            (1, Value::Object(m)) if !self.members.is_empty() => {
                let (key, value) = self.members.choose(rng).expect("members").clone();
                m.insert(key, value);
                None
            }
            (2, Value::Object(m)) => {
                let key = self.dict_keys.choose(rng).expect("keys").clone();
                m.insert(key, edge_value(rng));
                None
            }
            (0, Value::Array(a)) if !a.is_empty() => {
                a.remove(rng.gen_range(0..a.len()));
                None
            }
            (1 | 2, Value::Array(a)) => {
                a.push(edge_value(rng));
                None
            }
            (3, Value::Number(n)) => {
                let n = n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
                Some(near_number(rng, n.unwrap_or(0)))
            }
            (3, Value::String(s)) => Some(match rng.gen_range(0..3) {
                0 => Value::from(""),
                1 => Value::from(s.repeat(rng.gen_range(2..40))),
                _ => Value::from(format!("{s}{}", rng.gen::<char>())),
            }),
            _ => Some(edge_value(rng)),
        };
        if let Some(value) = changed {
            *node = value;
        }
    }

    /// Changes the bytes of `data` once.
    fn mutate(&mut self, data: &mut Vec<u8>) {
        let rng = &mut self.rng;
        let len = data.len();
        match rng.gen_range(0..9) {
            // Flip a bit.
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                data[i] ^= 1 << rng.gen_range(0..8);
            }
            // Change a byte: to one JSON cares about, or any.
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                data[i] = if rng.gen_bool(0.7) {
                    *INTERESTING.choose(rng).expect("bytes")
                } else {
                    rng.gen()
                };
            }
            // Insert a few bytes.
            2 => {
                let at = rng.gen_range(0..=len);
                let n = rng.gen_range(1..=4);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| {
                        if rng.gen_bool(0.7) {
                            *INTERESTING.choose(rng).expect("bytes")
                        } else {
                            rng.gen()
                        }
                    })
                    .collect();
                data.splice(at..at, bytes);
            }
            // Delete a range.
            3 if len > 0 => {
                let at = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - at).min(32));
                data.drain(at..at + n);
            }
            // Copy a range elsewhere (repeats keys, nests values).
            4 if len > 0 => {
                let from = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - from).min(64));
                let copy = data[from..from + n].to_vec();
                let at = rng.gen_range(0..=len);
                data.splice(at..at, copy);
            }
            // Splice: the start of this one, the end of another seed.
            5 => {
                let other = self.seeds.choose(rng).expect("seeds");
                let at = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            // Insert a dictionary token.
            6 => {
                let token = self.dict.choose(rng).expect("tokens");
                let at = rng.gen_range(0..=len);
                data.splice(at..at, token.iter().copied());
            }
            // Overwrite with a dictionary token.
            7 => {
                let token = self.dict.choose(rng).expect("tokens");
                let at = rng.gen_range(0..=len);
                let end = (at + token.len()).min(len);
                data.splice(at..end, token.iter().copied());
            }
            // Cut the end off.
            8 if len > 0 => data.truncate(rng.gen_range(0..len)),
            // Empty input and a mutation that needs bytes: another one.
            _ => self.mutate(data),
        }
    }
}

/// An edge case of JSON values (for numbers, of the integer types a value
/// is read into).
fn edge_value(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..25) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(1),
        3 => json!(i64::MAX),
        4 => json!(i64::MIN),
        5 => json!(u64::MAX),
        6 => json!(u32::MAX),
        7 => json!(1u64 << 31),
        8 => json!((1u64 << 53) + 1),
        9 => json!(1u64 << 61),
        10 => json!(1.5),
        11 => json!(-0.0),
        12 => json!(1e300),
        13 => json!(""),
        14 => json!("x".repeat(rng.gen_range(1..600))),
        15 => json!("\0nul"),
        16 => json!("\u{200b}zero width"),
        17 => json!("ws://127.0.0.1:9"),
        18 => json!("\u{1F600}"),
        19 => Value::Null,
        20 => json!(true),
        21 => json!(false),
        22 => json!({}),
        23 => json!([]),
        _ => json!(rng.gen::<i64>() >> rng.gen_range(0..64)),
    }
}

/// A number near `n` (off by one, doubled, halved, negated) or at an edge
/// of an integer type, as JSON.
fn near_number(rng: &mut StdRng, n: i128) -> Value {
    let near = match rng.gen_range(0..8) {
        0 => n + 1,
        1 => n - 1,
        2 => n * 2,
        3 => n / 2,
        4 => -n,
        5 => n * 1000,
        6 => i128::from(u32::MAX) + rng.gen_range(-1..=1),
        _ => i128::from(u64::MAX) >> rng.gen_range(0..64),
    };
    u64::try_from(near)
        .map(Value::from)
        .or_else(|_| i64::try_from(near).map(Value::from))
        .unwrap_or_else(|_| Value::from(u64::MAX))
}

/// Every member of every object in `v`.
fn collect_members(v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push((k.clone(), x.clone()));
                collect_members(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_members(x, out)),
        _ => {}
    }
}

/// The number of values in `v`, itself included.
fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(m) => m.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The `k`-th value of `v` in pre-order (0 is `v` itself).
fn nth_node(v: &mut Value, k: usize) -> &mut Value {
    fn walk<'v>(v: &'v mut Value, k: &mut usize) -> Option<&'v mut Value> {
        if *k == 0 {
            return Some(v);
        }
        *k -= 1;
        match v {
            Value::Array(a) => a.iter_mut().find_map(|x| walk(x, k)),
            Value::Object(m) => m.values_mut().find_map(|x| walk(x, k)),
            _ => None,
        }
    }
    walk(v, &mut { k }).expect("k is below count_nodes")
}

/// One target at a time (see the file's doc).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    lock(&SERIAL)
}

/// A lock whether or not an earlier test failed while holding it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Panics on threads other than the tests' own since the last input.
static OTHER_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// Set on a test's thread: its panics are the check's (caught and
    /// reported with the input) or the test's own failure.
    static TEST_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Records every panic on a thread that is not a test's (and still prints
/// it as usual).
fn watch_panics() {
    TEST_THREAD.with(|t| t.set(true));
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let print = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !TEST_THREAD.with(Cell::get) {
                let thread = std::thread::current();
                let name = thread.name().unwrap_or("unnamed").to_string();
                lock(&OTHER_PANICS).push(format!("thread {name}: {info}"));
            }
            print(info);
        }));
    });
}
