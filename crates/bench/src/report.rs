//! Report rows: printed as a table per scenario and written as JSON.

use serde_json::{Map, Value};

pub struct Row {
    pub target: String,
    pub scenario: String,
    /// Fields in the order they were added.
    pub fields: Vec<(String, Value)>,
    /// What went wrong in this step (lost messages, failed connections…); empty when clean.
    pub problems: Vec<String>,
}

impl Row {
    pub fn new(target: &str, scenario: &str) -> Row {
        Row {
            target: target.into(),
            scenario: scenario.into(),
            fields: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn num(&mut self, k: &str, v: f64) -> &mut Row {
        let v = (v * 1000.0).round() / 1000.0;
        self.fields.push((k.into(), serde_json::json!(v)));
        self
    }

    pub fn int(&mut self, k: &str, v: u64) -> &mut Row {
        self.fields.push((k.into(), Value::from(v)));
        self
    }

    pub fn text(&mut self, k: &str, v: String) -> &mut Row {
        self.fields.push((k.into(), Value::from(v)));
        self
    }

    pub fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    pub fn get(&self, k: &str) -> f64 {
        self.fields
            .iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.as_f64())
            .unwrap_or(0.0)
    }

    pub fn one_line(&self) -> String {
        let mut s = format!("  {} {}:", self.target, self.scenario);
        for (k, v) in &self.fields {
            if k == "rss_series_mib" {
                continue;
            }
            s.push_str(&format!(" {k}={}", fmt(v)));
        }
        if !self.problems.is_empty() {
            s.push_str(&format!("  PROBLEMS: {}", self.problems.join("; ")));
        }
        s
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("target".into(), self.target.clone().into());
        m.insert("scenario".into(), self.scenario.clone().into());
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        m.insert("problems".into(), self.problems.clone().into());
        Value::Object(m)
    }
}

fn fmt(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.abs() >= 100.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.2}")
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows grouped by scenario as aligned tables.
pub fn print_tables(rows: &[Row]) {
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    for sc in scenarios {
        let group: Vec<&Row> = rows.iter().filter(|r| r.scenario == sc).collect();
        let mut cols: Vec<String> = vec!["target".into()];
        for r in &group {
            for (k, _) in &r.fields {
                if k != "rss_series_mib" && !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
        let cells: Vec<Vec<String>> = group
            .iter()
            .map(|r| {
                cols.iter()
                    .map(|c| {
                        if c == "target" {
                            r.target.clone()
                        } else {
                            r.fields
                                .iter()
                                .find(|(k, _)| k == c)
                                .map_or(String::new(), |(_, v)| fmt(v))
                        }
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|row| row[i].len())
                    .max()
                    .unwrap_or(0)
                    .max(c.len())
            })
            .collect();
        println!("\n== {sc} ==");
        let line = |vals: &[String]| {
            vals.iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:>w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        println!("{}", line(&cols));
        for (r, c) in group.iter().zip(&cells) {
            println!("{}", line(c));
            for p in &r.problems {
                println!("    PROBLEM: {p}");
            }
        }
    }
}
