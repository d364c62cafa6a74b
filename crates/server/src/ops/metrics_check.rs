//! A strict reader of our `/metrics` text, for the tests: what the
//! Prometheus text format 0.0.4 and OpenMetrics 1.0 parsers check that
//! bites in practice (prometheus_client's parsers, which docs/OPERATORS.md
//! names for checking by hand, found the counter naming this catches).
//!
//! - names `[a-zA-Z_:][a-zA-Z0-9_:]*`, labels `name="value"`, values floats;
//! - one `# HELP` and one `# TYPE` per family, before its samples, and a
//!   family's samples together;
//! - counters: OpenMetrics families without `_total`, their samples with
//!   it; Prometheus text families and samples both with it; gauges: the
//!   family's own name;
//! - histograms: per label set, buckets in ascending `le` with counts that
//!   never go down, the last `+Inf` and equal to `_count`, and a `_sum`;
//! - OpenMetrics: `# EOF` last, and only there.

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name{a="1",b="2"} value` → (name, labels in order, value).
fn sample(line: &str) -> Result<(String, Vec<(String, String)>, f64), String> {
    let (head, value) = line
        .rsplit_once(' ')
        .ok_or_else(|| format!("no value: {line:?}"))?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value: {line:?}"))?,
    };
    let (name, labels) = match head.split_once('{') {
        None => (head, Vec::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .ok_or_else(|| format!("unclosed labels: {line:?}"))?;
            let mut labels = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (k, after) = rest
                    .split_once("=\"")
                    .ok_or_else(|| format!("bad label: {line:?}"))?;
                let end = after
                    .find('"')
                    .ok_or_else(|| format!("unclosed label value: {line:?}"))?;
                if !valid_name(k) || after[..end].contains('\\') {
                    return Err(format!("bad label: {line:?}"));
                }
                labels.push((k.to_string(), after[..end].to_string()));
                rest = &after[end + 1..];
                rest = match rest.strip_prefix(',') {
                    Some(r) => r,
                    None if rest.is_empty() => rest,
                    None => return Err(format!("bad label separator: {line:?}")),
                };
            }
            (name, labels)
        }
    };
    if !valid_name(name) {
        return Err(format!("bad metric name: {line:?}"));
    }
    Ok((name.to_string(), labels, value))
}

#[derive(Default)]
struct Hist {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: bool,
}

/// Every problem found, one per line; empty when the text is valid.
pub fn problems(text: &str, format: Format) -> Vec<String> {
    let mut bad = Vec::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut hists: BTreeMap<(String, String), Hist> = BTreeMap::new();
    let mut lines = text.lines().peekable();
    if !text.ends_with('\n') {
        bad.push("the text does not end with a newline".into());
    }
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            if format == Format::Prometheus {
                bad.push("# EOF in Prometheus text".into());
            } else if lines.peek().is_some() {
                bad.push("lines after # EOF".into());
            }
            continue;
        }
        if lines.peek().is_none() && format == Format::OpenMetrics {
            bad.push(format!("last line {line:?}, not # EOF"));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let tail = words.next().unwrap_or("");
            if !valid_name(name) {
                bad.push(format!("bad family name: {line:?}"));
            }
            if current.as_deref() != Some(name) {
                if let Some(c) = current.take() {
                    finished.insert(c);
                }
                if finished.contains(name) {
                    bad.push(format!("family {name} comes back: {line:?}"));
                }
                current = Some(name.to_string());
            }
            match kind {
                "HELP" => {
                    if !helps.insert(name.to_string()) {
                        bad.push(format!("second HELP of {name}"));
                    }
                }
                "TYPE" => {
                    if types.insert(name.to_string(), tail.to_string()).is_some() {
                        bad.push(format!("second TYPE of {name}"));
                    }
                    let total = name.ends_with("_total");
                    match (tail, format) {
                        ("counter", Format::OpenMetrics) if total => bad.push(format!(
                            "OpenMetrics counter family {name} named with _total"
                        )),
                        ("counter", Format::Prometheus) if !total => {
                            bad.push(format!("counter {name} without _total"))
                        }
                        ("counter" | "gauge" | "histogram", _) => {}
                        _ => bad.push(format!("unexpected type: {line:?}")),
                    }
                }
                _ => bad.push(format!("unknown comment: {line:?}")),
            }
            continue;
        }
        let (name, labels, value) = match sample(line) {
            Ok(s) => s,
            Err(e) => {
                bad.push(e);
                continue;
            }
        };
        let Some(family) = current.clone() else {
            bad.push(format!("sample before any TYPE: {line:?}"));
            continue;
        };
        let kind = types.get(&family).map(String::as_str).unwrap_or("");
        let suffix = name.strip_prefix(family.as_str());
        match (kind, format, suffix) {
            ("gauge", _, Some("")) => {}
            ("counter", Format::Prometheus, Some("")) => {}
            ("counter", Format::OpenMetrics, Some("_total")) => {}
            ("histogram", _, Some(s @ ("_bucket" | "_sum" | "_count"))) => {
                let key_labels: Vec<String> = labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let h = hists
                    .entry((family.clone(), key_labels.join(",")))
                    .or_default();
                match s {
                    "_bucket" => {
                        let le = labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v);
                        match le.map(|v| {
                            if v == "+Inf" {
                                Ok(f64::INFINITY)
                            } else {
                                v.parse::<f64>()
                            }
                        }) {
                            Some(Ok(le)) => h.buckets.push((le, value)),
                            _ => bad.push(format!("bucket without a numeric le: {line:?}")),
                        }
                    }
                    "_sum" => h.sum = true,
                    _ => h.count = Some(value),
                }
            }
            _ => bad.push(format!("sample {name} does not belong to {kind} {family}")),
        }
        if kind == "counter" && value < 0.0 {
            bad.push(format!("negative counter: {line:?}"));
        }
    }
    for ((family, labels), h) in hists {
        let at = format!("{family}{{{labels}}}");
        if h.buckets
            .windows(2)
            .any(|w| w[1].0 <= w[0].0 || w[1].1 < w[0].1)
        {
            bad.push(format!("{at}: buckets out of order or counts going down"));
        }
        match h.buckets.last() {
            Some((le, n)) if le.is_infinite() => {
                if h.count != Some(*n) {
                    bad.push(format!("{at}: +Inf bucket {n} but _count {:?}", h.count));
                }
            }
            _ => bad.push(format!("{at}: no +Inf bucket last")),
        }
        if !h.sum {
            bad.push(format!("{at}: no _sum"));
        }
    }
    bad
}
