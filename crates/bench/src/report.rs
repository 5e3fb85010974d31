//! One measured case ([`Bench`]): its `BENCH {json}` line and the human table.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

/// One measured case of a benchmark.
#[derive(Debug, Clone)]
pub struct Bench {
    /// `benchmark/case`, e.g. `idb_write/batch10_strict`.
    pub name: String,
    /// What was measured with what (counts, batch size, durability...).
    pub params: Map<String, Value>,
    /// The headline number.
    pub value: f64,
    /// Its unit (`ops/s`, `us/dispatch`...).
    pub unit: &'static str,
    /// Other numbers measured in this case.
    pub numbers: Map<String, Value>,
    /// The case compared against, and `value / baseline value`.
    pub ratio: Option<(String, f64)>,
}

impl Bench {
    /// A case measuring `value` `unit`.
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Bench {
            name: name.into(),
            params: Map::new(),
            value,
            unit,
            numbers: Map::new(),
            ratio: None,
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// Adds a secondary number (rounded to 3 decimals).
    pub fn number(mut self, key: &str, value: f64) -> Self {
        self.numbers.insert(key.into(), json!(round3(value)));
        self
    }

    /// Compares this case with `baseline` (same unit): ratio = this value / baseline value.
    pub fn against(mut self, baseline: &Bench) -> Self {
        let ratio = if baseline.value == 0.0 { f64::NAN } else { self.value / baseline.value };
        self.ratio = Some((baseline.name.clone(), ratio));
        self
    }

    /// The machine-readable line: `BENCH {json}`.
    pub fn line(&self) -> String {
        let (baseline, ratio) = match &self.ratio {
            Some((name, ratio)) => (json!(name), json!(significant4(*ratio))),
            None => (Value::Null, Value::Null),
        };
        let line = json!({
            "name": self.name,
            "params": self.params,
            "value": round3(self.value),
            "unit": self.unit,
            "numbers": self.numbers,
            "baseline": baseline,
            "ratio": ratio,
        });
        format!("BENCH {line}")
    }
}

/// `value` with four significant digits (ratios far below 1 keep their information).
fn significant4(value: f64) -> f64 {
    format!("{value:.3e}").parse().unwrap_or(value)
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

/// The human table of `benches`, with a title line.
pub fn table(title: &str, benches: &[Bench]) -> String {
    let mut out = format!("\n{title}\n");
    let _ = writeln!(
        out,
        "| {:<36} | {:>10} | {:<11} | {:>7} | {:<31} | other numbers",
        "benchmark/case", "value", "unit", "ratio", "vs"
    );
    let _ = writeln!(out, "|{:-<38}|{:->12}|{:-<13}|{:->9}|{:-<33}|---", "", "", "", "", "");
    for bench in benches {
        let (ratio, baseline) = match &bench.ratio {
            Some((name, ratio)) => (format_ratio(*ratio), name.as_str()),
            None => (String::from("-"), "-"),
        };
        let others: Vec<String> =
            bench.numbers.iter().map(|(key, value)| format!("{key}={}", short(value))).collect();
        let _ = writeln!(
            out,
            "| {:<36} | {:>10} | {:<11} | {:>7} | {:<31} | {}",
            bench.name,
            format_value(bench.value),
            bench.unit,
            ratio,
            baseline,
            others.join(" ")
        );
    }
    out
}

/// A number without a useless `.0`, other values as JSON.
fn short(value: &Value) -> String {
    match value.as_f64() {
        Some(number) if number.fract() == 0.0 => format!("{number:.0}"),
        _ => value.to_string(),
    }
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// A ratio with three significant digits (`0.00314x` rather than `0.00x`).
fn format_ratio(ratio: f64) -> String {
    if !ratio.is_finite() || ratio == 0.0 {
        return format!("{ratio}x");
    }
    let digits = (2 - ratio.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{ratio:.digits$}x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_prints_its_json_line_and_a_table_row() {
        let base = Bench::new("idb/one", 1_000.0, "ops/s");
        let case = Bench::new("idb/ten", 5_000.0, "ops/s").param("n", 2_000).against(&base);
        let line = case.line();
        let parsed: Value = serde_json::from_str(line.strip_prefix("BENCH ").unwrap()).unwrap();
        assert_eq!(parsed["ratio"], json!(5.0));
        assert_eq!(parsed["params"]["n"], json!(2_000));
        assert!(table("t", &[base, case]).contains("5.00x"));
    }
}
