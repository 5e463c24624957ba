//! Deadline sweep of the worked example (`instances/offloading/llama8b_phones_jetsons_l4.json`):
//! phones and Jetsons running Llama-3.1-8B (int4) requests against an L4 edge server. For each
//! deadline, solves with `exact` and prints the device energy per request and the chosen modes
//! (markdown table, pasted into docs/offloading.md). Then a bandwidth sweep of the OFDMA instance
//! (`instances/offloading/cameras_phones_ofdma_5mhz.json`) under OFDMA and TDMA: device energy and
//! how many devices transmit at their power cap.
//!
//! Run: `cargo run --release --example offloading_deadline_sweep`

use edgeplan::problems::solve_document;
use edgeplan::solve::SolveOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/instances/offloading/llama8b_phones_jetsons_l4.json"
    );
    let base: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let names: Vec<String> = base["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    println!(
        "| deadline s | status | mean device J/request | {} |",
        names.join(" | ")
    );
    println!("|---|---|---|{}|", vec!["---"; names.len()].join("|"));
    for deadline in [40.0, 20.0, 10.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0] {
        let mut doc = base.clone();
        for d in doc["devices"].as_array_mut().unwrap() {
            d["deadline_s"] = serde_json::json!(deadline);
        }
        let r = solve_document(&doc, "exact", &SolveOptions::default())?;
        let cells: Vec<String> = match &r.evaluation {
            Some(e) if e.feasible => e.metrics["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    format!(
                        "{} {:.2} J",
                        d["mode"].as_str().unwrap(),
                        d["device_energy_j"].as_f64().unwrap()
                    )
                })
                .collect(),
            _ => vec!["–".into(); names.len()],
        };
        let mean = r
            .evaluation
            .as_ref()
            .filter(|e| e.feasible)
            .map(|e| {
                format!(
                    "{:.3}",
                    e.metrics["device_energy_j"].as_f64().unwrap() / names.len() as f64
                )
            })
            .unwrap_or("–".into());
        println!(
            "| {deadline} | {} | {mean} | {} |",
            r.status,
            cells.join(" | ")
        );
    }
    bandwidth_sweep()
}

/// TDMA vs OFDMA on the camera / phone instance as the band narrows.
fn bandwidth_sweep() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/instances/offloading/cameras_phones_ofdma_5mhz.json"
    );
    let base: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    println!();
    println!("| band MHz | OFDMA J | at cap | TDMA J | at cap | OFDMA/TDMA |");
    println!("|---|---|---|---|---|---|");
    for mhz in [20.0, 10.0, 5.0, 3.0, 2.0] {
        let mut row = vec![];
        let mut objs = vec![];
        for access in ["ofdma", "tdma"] {
            let mut doc = base.clone();
            doc["spectrum"]["bandwidth_hz"] = serde_json::json!(mhz * 1e6);
            doc["spectrum"]["access"] = serde_json::json!(access);
            let r = solve_document(&doc, "exact", &SolveOptions::default())?;
            match (&r.evaluation, r.objective) {
                (Some(e), Some(o)) if e.feasible => {
                    let at_cap = e.metrics["devices"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .zip(base["devices"].as_array().unwrap())
                        .filter(|(d, s)| {
                            s["max_tx_power_w"].as_f64().is_some_and(|pm| {
                                d["tx_power_w"].as_f64().unwrap() >= pm * (1.0 - 1e-6)
                            })
                        })
                        .count();
                    row.push(format!("{o:.4} | {at_cap}"));
                    objs.push(o);
                }
                _ => row.push(format!("{} | –", r.status)),
            }
        }
        let ratio = match objs[..] {
            [o, t] => format!("{:.4}", o / t),
            _ => "–".into(),
        };
        println!("| {mhz} | {} | {ratio} |", row.join(" | "));
    }
    Ok(())
}
