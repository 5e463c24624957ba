//! The `kv_split` worked example: Llama-3.1-8B (int4 blocks, fp16 embedding/head and KV) for six end devices (two
//! Snapdragon 8 Gen 3 phones, two iPhone A17 Pro, two Jetson Orin Nano 8 GB) and one L4 edge server (22 GB usable),
//! with the prompt growing from 512 to 32k tokens (256 generated). Prints the markdown table of
//! `docs/kv_split.md` (per context: optimal splits, KV options, latencies, server memory) and, with
//! `--write`, the 512- and 32k-token instances to `instances/kv_split/`.
//!
//!     cargo run --release --example kv_split_context_sweep [-- --write]

use edgeplan::problems::kv_split::KvSplit;
use edgeplan::problems::kv_split::{
    default_kv_options, KvSplitInstance, ModelRef, ServerSpec, UserSpec,
};
use edgeplan::problems::{solve_document, wrap_envelope};
use edgeplan::solve::SolveOptions;

fn instance(prompt: u64) -> KvSplitInstance {
    let devices = [
        ("snapdragon-8-gen-3", 10e9),
        ("snapdragon-8-gen-3", 10e9),
        ("apple-a17-pro", 4e9),
        ("apple-a17-pro", 4e9),
        ("jetson-orin-nano-8gb", 5e9),
        ("jetson-orin-nano-8gb", 5e9),
    ];
    KvSplitInstance {
        model: ModelRef {
            name: "llama-3.1-8b".into(),
            dtype: Some("int4".into()),
            blocks: None,
        },
        users: devices
            .iter()
            .enumerate()
            .map(|(i, (d, m))| UserSpec {
                name: Some(format!("{}-{}", d.split('-').next().unwrap(), i)),
                device: (*d).into(),
                memory_bytes: Some(*m),
                compute_share: 1.0,
                prompt_len: prompt,
                gen_len: 256,
                uplink_bps: 50e6,
                downlink_bps: 100e6,
                link_latency_s: 0.01,
                latency_target_s: None,
                weight: 1.0,
                max_accuracy_cost: Some(if i % 2 == 0 { 0.0 } else { 0.15 }),
                server: Some("l4".into()),
            })
            .collect(),
        servers: vec![ServerSpec {
            name: "l4".into(),
            device: "l4".into(),
            memory_bytes: Some(22e9),
            compute_share: 1.0,
        }],
        kv_options: default_kv_options(),
        objective: Default::default(),
        latency_context: Default::default(),
    }
}

fn main() {
    let write = std::env::args().any(|a| a == "--write");
    println!("| prompt | splits (layers on device) | device KV | server KV | mean latency ms | max latency ms | server step ms | server memory GB | status |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for prompt in [512u64, 2048, 8192, 16384, 32768] {
        let inst = instance(prompt);
        let doc = wrap_envelope::<KvSplit>(&inst);
        let label = if prompt >= 1024 {
            format!("{}k", prompt / 1024)
        } else {
            prompt.to_string()
        };
        if write && (prompt == 512 || prompt == 32768) {
            let mut d = doc.clone();
            d["description"] = serde_json::Value::String(format!(
                "kv_split worked example: Llama-3.1-8B int4 on 6 end devices + 1 L4, prompt {prompt}, 256 generated"
            ));
            let path = format!("instances/kv_split/llama3.1-8b-phones-l4-{label}.json");
            std::fs::write(&path, serde_json::to_string_pretty(&d).unwrap() + "\n").unwrap();
            eprintln!("wrote {path}");
        }
        let r = solve_document(&doc, "auto", &SolveOptions::default()).unwrap();
        let Some(sol) = r.solution.as_ref().filter(|_| r.objective.is_some()) else {
            println!("| {label} | - | - | - | - | - | - | - | {} |", r.status);
            continue;
        };
        let ev = r.evaluation.as_ref().unwrap();
        let users = sol["users"].as_array().unwrap();
        let col = |k: &str| {
            users
                .iter()
                .map(|u| u[k].as_str().unwrap_or("-").to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let splits = users
            .iter()
            .map(|u| u["split"].to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let lats: Vec<f64> = ev.metrics["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["latency_s"].as_f64().unwrap())
            .collect();
        let srv = &ev.metrics["servers"][0];
        println!(
            "| {label} | {splits} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {} |",
            col("device_kv"),
            col("server_kv"),
            1e3 * lats.iter().sum::<f64>() / lats.len() as f64,
            1e3 * lats.iter().copied().fold(0.0, f64::max),
            1e3 * srv["step_s"].as_f64().unwrap(),
            srv["memory_bytes"].as_f64().unwrap() / 1e9,
            r.status
        );
    }
}
