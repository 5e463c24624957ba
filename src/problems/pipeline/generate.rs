//! Random instances with explicit profile tables (no cost model needed), LLaMA-2-70B-like layers.
//!
//! Sizes: `small` (8 layers, 4 nodes), `medium` (32 layers, 8 nodes), `large` (82 layers = embedding +
//! 80 LLaMA-2-70B blocks + head, 16 nodes), or `"LxN"` (e.g. `128x64`). Nodes come in 3–6 device kinds
//! drawn from an edge pool (A100, RTX 4090, RTX 3090, L4, Jetson AGX Orin, T4, roofline-style
//! per-layer times); link bandwidth is drawn per ordered pair, log-uniform in 1–25 Gbit/s, 1 ms latency.
//! The workload is a 1024-token fp16 prefill per request; objective bottleneck.
//!
//! Regime suffix `-linkbound` (e.g. `large-linkbound`, `82x16-linkbound`): the same draw, then a
//! harder edge: per-pair links log-uniform in 0.1–10 Gbit/s (100x spread, some pairs slower than a
//! stage) with 1–20 ms latency; each node's usable memory is 35–60 % of its device's (other tenants,
//! runtime overhead), so more stages are forced; nodes of the faster half (A100, RTX 4090/3090) have
//! availability 0.4–0.9 (shared). Memory is scaled back up if the nodes together could not hold 1.5x
//! the weights. The base sizes are unchanged by the regime code.

use super::instance::*;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Kind {
    name: &'static str,
    flops: f64,
    mem: f64,
    membw: f64,
    power: f64,
}

const POOL: &[Kind] = &[
    Kind {
        name: "a100-80gb",
        flops: 2.0e14,
        mem: 80e9,
        membw: 2.0e12,
        power: 400.0,
    },
    Kind {
        name: "rtx-4090",
        flops: 1.1e14,
        mem: 24e9,
        membw: 1.0e12,
        power: 450.0,
    },
    Kind {
        name: "rtx-3090",
        flops: 0.7e14,
        mem: 24e9,
        membw: 0.94e12,
        power: 350.0,
    },
    Kind {
        name: "l4",
        flops: 0.6e14,
        mem: 24e9,
        membw: 0.3e12,
        power: 72.0,
    },
    Kind {
        name: "jetson-agx-orin",
        flops: 0.2e14,
        mem: 48e9,
        membw: 0.2e12,
        power: 60.0,
    },
    Kind {
        name: "t4",
        flops: 0.3e14,
        mem: 16e9,
        membw: 0.32e12,
        power: 70.0,
    },
];

/// A generated instance with `layers` layers and `nodes` nodes.
pub fn instance(layers: usize, nodes: usize, seed: u64) -> PipelineInstance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let layers = layers.max(3);
    let nodes = nodes.max(1);
    let tokens = 1024.0;
    let d = 8192.0;
    // LLaMA-2-70B block: 8192 hidden, 28672 MLP, GQA 8 x 128 KV.
    let block_params = 2.0 * d * d + 2.0 * d * 1024.0 + 3.0 * d * 28672.0;
    let emb_params = 32000.0 * d;
    let mut weight = vec![];
    let mut flops = vec![];
    let mut output = vec![];
    let mut names = vec![];
    for i in 0..layers {
        let (params, f, out, name) = if i == 0 {
            (emb_params, 0.0, tokens * d * 2.0, "embedding".to_string())
        } else if i + 1 == layers {
            (
                emb_params,
                2.0 * emb_params * 1.0,
                32000.0 * 2.0,
                "head".to_string(),
            )
        } else {
            (
                block_params,
                2.0 * block_params * tokens + 4.0 * tokens * tokens * d / 2.0,
                tokens * d * 2.0,
                format!("block{}", i - 1),
            )
        };
        weight.push(params * 2.0);
        flops.push(f);
        output.push(out);
        names.push(name);
    }
    let nkinds = rng.random_range(3..=6usize).min(nodes.max(3));
    let mut kinds: Vec<usize> = (0..POOL.len()).collect();
    for i in (1..kinds.len()).rev() {
        let j = rng.random_range(0..=i);
        kinds.swap(i, j);
    }
    kinds.truncate(nkinds);
    let node_types: Vec<NodeTypeTable> = kinds
        .iter()
        .map(|&k| {
            let kd = &POOL[k];
            NodeTypeTable {
                name: kd.name.into(),
                memory_bytes: Some(kd.mem),
                time_s: (0..layers)
                    .map(|i| (flops[i] / kd.flops).max(weight[i] / kd.membw))
                    .collect(),
                backward_time_s: vec![],
                energy_j: vec![],
            }
        })
        .collect();
    let mut node_list = vec![];
    for i in 0..nodes {
        let k = if i < nkinds {
            i
        } else {
            rng.random_range(0..nkinds)
        };
        node_list.push(NodeSpec {
            name: format!("n{i:02}"),
            device: POOL[kinds[k]].name.into(),
            memory_bytes: None,
            availability: 1.0,
            power_w: Some(POOL[kinds[k]].power),
            tx_power_w: 1.0,
        });
    }
    let mut links = vec![];
    for u in 0..nodes {
        for v in 0..nodes {
            if u != v {
                let gbps = (rng.random_range(0.0f64..1.0) * (25.0f64).ln()).exp();
                links.push(LinkSpec {
                    from: format!("n{u:02}"),
                    to: format!("n{v:02}"),
                    bandwidth_bps: (gbps * 1e9).round(),
                    latency_s: 1e-3,
                    bidirectional: false,
                });
            }
        }
    }
    PipelineInstance {
        model: ModelSpec::Table(ProfileTable {
            layer_names: names,
            weight_bytes: weight,
            output_bytes: output,
            input_bytes: tokens * 4.0,
            activation_bytes: vec![],
            kv_bytes: vec![],
            input_buffers: 0.0,
            output_buffers: 0.0,
            node_types,
        }),
        workload: Some(WorkloadSpec::Inference(InferenceSpec {
            batch: 1,
            prompt_len: 1024,
            gen_len: 0,
        })),
        nodes: node_list,
        links,
        default_link: None,
        routing: Routing::Direct,
        source: Some("n00".into()),
        sink: None,
        objective: Objective::Bottleneck,
        energy_budget_j: None,
    }
}

/// Applies the `-linkbound` regime to a generated instance (own RNG stream, so the base draw is
/// the same as without the suffix).
fn link_bound(mut inst: PipelineInstance, seed: u64) -> PipelineInstance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x11_4b_b0_0d);
    for lk in &mut inst.links {
        let gbps = (0.1f64.ln() + rng.random_range(0.0f64..1.0) * 100f64.ln()).exp();
        lk.bandwidth_bps = (gbps * 1e9).round();
        lk.latency_s = (rng.random_range(1.0f64..20.0) * 1e-3 * 1e6).round() / 1e6;
    }
    let kind = |d: &str| POOL.iter().position(|k| k.name == d).unwrap_or(0);
    let mut caps = vec![];
    for nd in &mut inst.nodes {
        let k = kind(&nd.device);
        caps.push(POOL[k].mem * rng.random_range(0.35f64..0.6));
        if k <= 2 {
            nd.availability = (rng.random_range(0.4f64..0.9) * 100.0).round() / 100.0;
        }
    }
    let weights: f64 = match &inst.model {
        ModelSpec::Table(t) => t.weight_bytes.iter().sum(),
        _ => 0.0,
    };
    let total: f64 = caps.iter().sum();
    let scale = (1.5 * weights / total).max(1.0);
    for (nd, c) in inst.nodes.iter_mut().zip(caps) {
        nd.memory_bytes = Some((c * scale).round());
    }
    inst
}

/// `small`, `medium`, `large` or `"LxN"`, optionally with a regime suffix `-linkbound`.
pub fn generate(size: &str, seed: u64) -> Result<PipelineInstance> {
    if let Some(base) = size.strip_suffix("-linkbound") {
        return Ok(link_bound(generate(base, seed)?, seed));
    }
    let (l, n) = match size {
        "small" => (8, 4),
        "medium" => (32, 8),
        "large" => (82, 16),
        s => {
            let parts: Vec<&str> = s.split(['x', 'X']).collect();
            match (parts.first().and_then(|x| x.parse::<usize>().ok()), parts.get(1).and_then(|x| x.parse::<usize>().ok())) {
                (Some(l), Some(n)) if parts.len() == 2 && l >= 3 && (1..=64).contains(&n) => (l, n),
                _ => {
                    return Err(Error::invalid(
                        "$.size",
                        format!("unknown size '{s}': use small, medium, large or LxN (layers >= 3, 1..=64 nodes), e.g. 128x64, optionally suffixed -linkbound"),
                    ))
                }
            }
        }
    };
    Ok(instance(l, n, seed))
}
