//! The `split_finetune` worked example: how the optimal cut and freezing ratios move as the uplink
//! goes from 10 Mbit/s to 1 Gbit/s (LLaMA-2-7B LoRA, 8 phones, RTX 3090 server). Prints the markdown
//! table of `docs/split_finetune.md`. Run with `cargo run --example split_finetune_sweep`.
//! (`examples/split_finetune_sweep.py` does the same through the Python bindings.)
use edgeplan::solve::SolveOptions;

fn main() -> edgeplan::Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/instances/split_finetune/llama2-7b-8phones.json"
    );
    let text = std::fs::read_to_string(path).map_err(|e| edgeplan::Error::io(path, e))?;
    let base = edgeplan::problems::parse_document(&text)?;
    println!("| uplink Mbit/s | cut (client blocks) | client freeze (frozen blocks) | server freeze (frozen blocks) | trainable φ | client φ | rounds R | round 1 s | later rounds s | total h | SplitLoRA total h |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mbps in [10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0, 1000.0] {
        let mut doc = base.clone();
        for c in doc["clients"].as_array_mut().unwrap() {
            c["uplink_bps"] = serde_json::json!(mbps * 1e6);
        }
        let opts = SolveOptions::default();
        let r = edgeplan::problems::solve_document(&doc, "exact", &opts)?;
        let b = edgeplan::problems::solve_document(&doc, "splitlora", &opts)?;
        let s = r.solution.as_ref().unwrap();
        let m = &r.evaluation.as_ref().unwrap().metrics;
        let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {mbps} | {} | {} ({}) | {} ({}) | {:.3} | {:.3} | {:.1} | {:.2} | {:.2} | {:.2} | {} |",
            s["cut"],
            s["client_freeze"],
            m["client_frozen_blocks"],
            s["server_freeze"],
            m["server_frozen_blocks"],
            f("trainable_fraction"),
            f("client_trainable_fraction"),
            f("rounds"),
            f("first_round_s"),
            f("later_round_s"),
            f("total_time_s") / 3600.0,
            b.objective
                .map_or("infeasible".to_string(), |o| format!("{:.2}", o / 3600.0)),
        );
    }
    Ok(())
}
