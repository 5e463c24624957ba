//! Random instances. Sizes: `small` (2 layers × 6 experts, 3 servers), `medium` (8 × 16, 6 servers),
//! `large` (26 × 64, 16 servers: DeepSeek-V2-Lite's shape), or `"LxExS"` (e.g. `58x256x32`); suffix
//! `-maxload` for the `max_load` objective. Explicit expert sizes (a Mixtral-like expert scaled so the
//! bytes stay moderate: 44 MB, 88 MFLOP per token, 8 KiB hidden state); servers drawn from four
//! compute classes (200 / 110 / 70 / 60 TFLOP/s), memory for `⌈E/S⌉ + {0,1,2}` experts per layer;
//! `min(S, 4)` groups on distinct homes with token rates scaled so the mean utilisation is 35 % of
//! the per-layer cap; per home-server link 1–25 Gbit/s (log-uniform), 0.2–2 ms; default link
//! 10 Gbit/s, 1 ms; routing statistics Zipf(1.0), half layer-wide, half per group; replication budget
//! `max(1, S/2)`; `step_window_s` set so the load and network terms are of the same size.

use super::instance::*;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Expert sizes of a generated instance.
struct Sizes {
    layers: usize,
    experts: usize,
    top_k: usize,
    expert_bytes: f64,
    flops: f64,
    hidden: f64,
}

/// The instance around a model: servers of compute `flops[s]` (device names optional), memory for
/// `⌈E/S⌉ + {0,1,2}` experts per layer, groups, links, loads, step window.
fn build(
    model: MoeModelSpec,
    z: &Sizes,
    flops: &[f64],
    devices: &[Option<String>],
    rng: &mut ChaCha8Rng,
    seed: u64,
) -> MoePlacementInstance {
    let servers = flops.len();
    let base = z.experts.div_ceil(servers);
    let specs: Vec<ServerSpec> = (0..servers)
        .map(|s| {
            let slots = (base + rng.random_range(0..=2)).min(z.experts);
            ServerSpec {
                name: format!("s{s}"),
                device: devices[s].clone(),
                runtime: None,
                memory_bytes: Some(slots as f64 * z.layers as f64 * z.expert_bytes),
                compute_flops: if devices[s].is_some() {
                    None
                } else {
                    Some(flops[s])
                },
            }
        })
        .collect();
    let total_flops: f64 = flops.iter().sum();
    let h = servers.min(4);
    let raw: Vec<f64> = (0..h).map(|_| rng.random_range(0.5..2.0)).collect();
    let cap = 1.0 / z.layers as f64;
    let lambda = 0.35 * cap * total_flops / (z.top_k as f64 * z.flops);
    let sum: f64 = raw.iter().sum();
    let groups = raw
        .iter()
        .enumerate()
        .map(|(g, r)| GroupSpec {
            name: format!("g{g}"),
            home: format!("s{}", g * servers / h),
            tokens_per_s: lambda * r / sum,
            access: Some(LinkParams {
                bandwidth_bps: 1e8,
                latency_s: 0.005,
            }),
        })
        .collect();
    let mut links = vec![];
    let mut cbar = 0.0;
    for g in 0..h {
        let home = g * servers / h;
        for s in (0..servers).filter(|&s| s != home) {
            let bw = 10f64.powf(rng.random_range(9.0..(2.5e10f64).log10()));
            let lat = rng.random_range(0.0002..0.002);
            cbar += 2.0 * (lat + z.hidden * 8.0 / bw);
            links.push(LinkSpec {
                from: format!("s{home}"),
                to: format!("s{s}"),
                bandwidth_bps: bw,
                latency_s: lat,
                bidirectional: false,
            });
        }
    }
    cbar /= links.len().max(1) as f64;
    let util_mean = 0.35 * cap;
    MoePlacementInstance {
        model,
        servers: specs,
        groups,
        loads: LoadSpec::Zipf(ZipfSpec {
            exponent: 1.0,
            shared: 0.5,
            seed: seed ^ 0x5eed,
        }),
        links,
        default_link: Some(LinkParams {
            bandwidth_bps: 1e10,
            latency_s: 0.001,
        }),
        replication_budget: (servers / 2).max(1),
        max_utilization: 1.0,
        objective: Objective::Latency,
        step_window_s: (z.top_k as f64 * cbar / util_mean).max(1e-3),
        current_placement: None,
        migration_cost_per_byte: 0.0,
        load_slack: 0.05,
    }
}

/// A generated table instance (explicit expert sizes, servers from four compute classes).
pub fn table_instance(
    layers: usize,
    experts: usize,
    servers: usize,
    seed: u64,
) -> MoePlacementInstance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let z = Sizes {
        layers: layers.max(1),
        experts: experts.max(2),
        top_k: 2, // `experts.max(2)` above: at least two experts
        expert_bytes: 44e6,
        flops: 88e6,
        hidden: 8192.0,
    };
    let classes = [2.0e14, 1.1e14, 0.7e14, 0.6e14];
    let n = servers.max(1);
    let flops: Vec<f64> = (0..n)
        .map(|_| classes[rng.random_range(0..classes.len())])
        .collect();
    let model = MoeModelSpec::Table(MoeTable {
        layers: z.layers,
        experts: z.experts,
        top_k: z.top_k,
        expert_bytes: z.expert_bytes,
        expert_flops_per_token: z.flops,
        hidden_bytes_per_token: z.hidden,
    });
    build(model, &z, &flops, &vec![None; n], &mut rng, seed)
}

/// A generated instance of a catalog MoE card (fp16) on `servers` servers whose devices cycle
/// through `devices` (catalog names); expert memory per server as in [`build`].
pub fn catalog_instance(
    model: &str,
    devices: &[&str],
    servers: usize,
    seed: u64,
) -> Result<MoePlacementInstance> {
    let cat = crate::catalog::Catalog::builtin();
    let card = cat.llm(model)?;
    let mc =
        crate::cost::moe::moe_expert_cost(&card, crate::cost::DType::Fp16).ok_or_else(|| {
            Error::invalid(
                "$.model.catalog.name",
                format!("'{model}' is not a MoE model"),
            )
        })?;
    let z = Sizes {
        layers: mc.moe_blocks.len(),
        experts: mc.n_experts as usize,
        top_k: mc.top_k as usize,
        expert_bytes: mc.expert_bytes,
        flops: mc.expert_flops_per_token,
        hidden: mc.hidden_bytes_per_token,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut flops = vec![];
    let mut devs = vec![];
    for s in 0..servers.max(1) {
        let d = devices[s % devices.len().max(1)];
        let hw = crate::cost::roofline::Hardware::from_catalog(cat, d, None)?;
        flops.push(hw.effective_flops(crate::cost::DType::Fp16));
        devs.push(Some(d.to_string()));
    }
    let spec = MoeModelSpec::Catalog(CatalogMoe {
        name: model.to_string(),
        dtype: None,
        layers: None,
    });
    Ok(build(spec, &z, &flops, &devs, &mut rng, seed))
}

/// An instance of a named size.
pub fn generate(size: &str, seed: u64) -> Result<MoePlacementInstance> {
    let (base, maxload) = match size.strip_suffix("-maxload") {
        Some(b) => (b, true),
        None => (size, false),
    };
    let (l, e, s) = match base {
        "small" => (2, 6, 3),
        "medium" => (8, 16, 6),
        "large" => (26, 64, 16),
        other => {
            let v: Vec<usize> = other
                .split('x')
                .map(|t| t.parse::<usize>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad_size(size))?;
            if v.len() != 3 || v.contains(&0) {
                return Err(bad_size(size));
            }
            (v[0], v[1], v[2])
        }
    };
    let mut inst = table_instance(l, e, s, seed);
    if maxload {
        inst.objective = Objective::MaxLoad;
    }
    Ok(inst)
}

fn bad_size(size: &str) -> Error {
    Error::invalid(
        "$.size",
        format!("unknown size '{size}': small, medium, large or LxExS (e.g. 58x256x32), optional -maxload"),
    )
}
