//! Random instances.
//!
//! - `tiny`: 2–3 users, GPT-2 small cut to 1–3 blocks (3–5 layers), 1–2 servers, 2–3 KV options,
//!   memories of tens to hundreds of MB so that weights and KV compete (brute-force tests);
//! - `small` (8 users, Llama-3.2-1B fp16, 2 servers), `medium` (50 users, Llama-3.1-8B int4, 3
//!   servers), `large` (200 users, LLaMA-2-13B int4 = 40 blocks + embedding + head, 4 servers; the
//!   bench size);
//! - a number `N` (N users, LLaMA-2-13B int4, 4 servers).
//!
//! Users: phones (Snapdragon 8 Gen 3, A17 Pro, A18) and Jetson Orin Nano boards with 40–80 % of their
//! memory usable, prompts 256–8192 tokens and 64–1024 generated (log-uniform), uplink 20–200 Mbit/s,
//! downlink 50–500 Mbit/s, 5–20 ms one-way latency, weight 1–3, half of them with a fixed server,
//! targets 0.6–1.5 s per token for a third of them. Servers: L4, A10, RTX 4090, Jetson AGX Orin,
//! usable memory 50–90 %. Suffixes: `-max` (max latency), `-admit` (admission, targets for all),
//! `-fixed` (every association given), e.g. `large-fixed-max`.

use super::instance::*;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PHONES: &[(&str, f64)] = &[
    ("snapdragon-8-gen-3", 16e9),
    ("apple-a17-pro", 8e9),
    ("apple-a18", 8e9),
    ("jetson-orin-nano-8gb", 8e9),
];
const SERVERS: &[(&str, f64)] = &[
    ("l4", 24e9),
    ("a10", 24e9),
    ("rtx-4090", 24e9),
    ("jetson-agx-orin-64gb", 64e9),
];

fn log_uniform(r: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (r.random_range(lo.ln()..hi.ln())).exp()
}

pub fn generate(size: &str, seed: u64) -> Result<KvSplitInstance> {
    let mut base = size;
    let mut objective = Objective::MeanLatency;
    let mut all_fixed = false;
    while let Some((b, suffix)) = base.rsplit_once('-') {
        match suffix {
            "max" => objective = Objective::MaxLatency,
            "admit" => objective = Objective::Admitted,
            "fixed" => all_fixed = true,
            _ => break,
        }
        base = b;
    }
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    if base == "tiny" {
        return Ok(tiny(&mut r, objective));
    }
    let (users, model, servers) = match base {
        "small" => (8, "llama-3.2-1b", 2),
        "medium" => (50, "llama-3.1-8b", 3),
        "large" => (200, "llama-2-13b", 4),
        n => match n.parse::<usize>() {
            Ok(n) if n >= 1 => (n, "llama-2-13b", 4),
            _ => {
                return Err(Error::invalid(
                    "$.size",
                    format!("unknown size '{size}' (tiny, small, medium, large, or a user count; suffix -max / -admit)"),
                ))
            }
        },
    };
    let servers: Vec<ServerSpec> = (0..servers)
        .map(|i| {
            let (d, m) = SERVERS[i % SERVERS.len()];
            ServerSpec {
                name: format!("edge{i}"),
                device: d.into(),
                memory_bytes: Some(m * r.random_range(0.5..0.9)),
                compute_share: 1.0,
            }
        })
        .collect();
    let users = (0..users)
        .map(|i| {
            let (d, m) = PHONES[r.random_range(0..PHONES.len())];
            let fixed = r.random_bool(0.5) || all_fixed;
            let target = objective == Objective::Admitted || r.random_bool(1.0 / 3.0);
            UserSpec {
                name: Some(format!("u{i}")),
                device: d.into(),
                memory_bytes: Some(m * r.random_range(0.4..0.8)),
                compute_share: 1.0,
                prompt_len: log_uniform(&mut r, 256.0, 8192.0) as u64,
                gen_len: log_uniform(&mut r, 64.0, 1024.0) as u64,
                uplink_bps: log_uniform(&mut r, 20e6, 200e6),
                downlink_bps: log_uniform(&mut r, 50e6, 500e6),
                link_latency_s: r.random_range(0.005..0.02),
                latency_target_s: target.then(|| r.random_range(0.6..1.5)),
                weight: r.random_range(1..=3) as f64,
                max_accuracy_cost: None,
                server: fixed.then(|| servers[r.random_range(0..servers.len())].name.clone()),
            }
        })
        .collect();
    Ok(KvSplitInstance {
        model: ModelRef {
            name: model.into(),
            dtype: (model != "llama-3.2-1b").then(|| "int4".into()),
            blocks: None,
        },
        users,
        servers,
        kv_options: default_kv_options(),
        objective,
        latency_context: LatencyContext::Mean,
    })
}

fn tiny(r: &mut ChaCha8Rng, objective: Objective) -> KvSplitInstance {
    let ns = r.random_range(1..=2);
    let servers: Vec<ServerSpec> = (0..ns)
        .map(|i| ServerSpec {
            name: format!("s{i}"),
            device: SERVERS[r.random_range(0..SERVERS.len())].0.into(),
            memory_bytes: Some(log_uniform(r, 60e6, 1.5e9)),
            compute_share: r.random_range(0.2..1.0),
        })
        .collect();
    let nu = r.random_range(2..=3);
    let all = default_kv_options();
    let mut opts = vec![all[0].clone()];
    for o in &all[1..] {
        if opts.len() < if nu == 3 { 2 } else { 3 } && r.random_bool(0.5) {
            opts.push(o.clone());
        }
    }
    if r.random_bool(0.5) {
        opts.push(KvOptionSpec {
            name: "window-512".into(),
            kind: KvKind::Window { tokens: 512 },
            accuracy_cost: 0.3,
        });
        if nu == 3 {
            opts.truncate(2);
        }
    }
    let users = (0..nu)
        .map(|i| UserSpec {
            name: None,
            device: PHONES[r.random_range(0..PHONES.len())].0.into(),
            memory_bytes: Some(log_uniform(r, 30e6, 600e6)),
            compute_share: r.random_range(0.2..1.0),
            prompt_len: log_uniform(r, 128.0, 16384.0) as u64,
            gen_len: log_uniform(r, 16.0, 2048.0) as u64,
            uplink_bps: log_uniform(r, 1e6, 100e6),
            downlink_bps: log_uniform(r, 5e6, 200e6),
            link_latency_s: r.random_range(0.0..0.01),
            latency_target_s: (objective == Objective::Admitted || r.random_bool(0.3))
                .then(|| log_uniform(r, 0.002, 0.1)),
            weight: r.random_range(1..=3) as f64,
            max_accuracy_cost: r.random_bool(0.2).then_some(0.2),
            server: (ns > 1 && r.random_bool(0.5)).then(|| format!("s{}", i % ns)),
        })
        .collect();
    KvSplitInstance {
        model: ModelRef {
            name: "gpt2-small".into(),
            dtype: None,
            blocks: Some(r.random_range(1..=3)),
        },
        users,
        servers,
        kv_options: opts,
        objective,
        latency_context: if r.random_bool(0.5) {
            LatencyContext::Mean
        } else {
            LatencyContext::Final
        },
    }
}
