//! Random instances on catalog models and devices.
//!
//! Sizes: `small` (GPT-2 small, 12 blocks, 2 clients, levels {0, 0.5, 1} per side, fixed rates),
//! `medium` (LLaMA-3.2-1B, 16 blocks, 8 clients, levels {0, 0.25, ..., 1}, shared 40 MHz),
//! `large` (LLaMA-2-7B, 32 blocks, 64 clients, 11 levels per side, shared 100 MHz: the bench size),
//! or a number `K` (LLaMA-2-7B, `K` clients, 11 levels, shared `max(20, 1.5·K)` MHz).
//! Clients are phone / embedded SoCs (Snapdragon 8 Gen 3, A17 Pro, A18, Jetson Orin Nano 8 GB) with
//! 1–4 micro-batches per round at 50–500 m from the base station (3GPP urban macro path loss
//! `128.1 + 37.6·log10(d/km)` dB, 0.2 W transmit power); the server is an RTX 3090. Objective
//! total time; convergence `R(φ) = r_min + r_min·(1 − φ)^1.5`, `r_min ∈ [50, 200]`, client weight 0.3.

use super::instance::*;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PHONES: &[&str] = &[
    "snapdragon-8-gen-3",
    "apple-a17-pro",
    "apple-a18",
    "jetson-orin-nano-8gb",
];

/// Linear channel gain at `d_m` metres (3GPP UMa-like path loss).
pub fn path_gain(d_m: f64) -> f64 {
    let db = 128.1 + 37.6 * (d_m / 1000.0).log10();
    10f64.powf(-db / 10.0)
}

fn levels(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 / (n - 1) as f64).collect()
}

pub fn generate(size: &str, seed: u64) -> Result<SplitFinetuneInstance> {
    let (model, k, nlev, shared): (&str, usize, usize, Option<f64>) = match size {
        "small" => ("gpt2-small", 2, 3, None),
        "medium" => ("llama-3.2-1b", 8, 5, Some(40e6)),
        "large" => ("llama-2-7b", 64, 11, Some(100e6)),
        s => match s.parse::<usize>() {
            Ok(k) if (1..=1024).contains(&k) => {
                ("llama-2-7b", k, 11, Some((1.5e6 * k as f64).max(20e6)))
            }
            _ => {
                return Err(Error::invalid(
                    "$.size",
                    format!("unknown size '{s}' (small, medium, large, or a client count 1..1024)"),
                ))
            }
        },
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clients = (0..k)
        .map(|i| {
            let d = rng.random_range(50.0..500.0);
            let up = rng.random_range(10e6..200e6);
            ClientSpec {
                name: format!("client-{i}"),
                device: PHONES[rng.random_range(0..PHONES.len())].into(),
                memory_bytes: None,
                energy_budget_j: None,
                batches_per_round: rng.random_range(1..=4),
                uplink_bps: shared.is_none().then_some(up),
                downlink_bps: shared.is_none().then_some(2.0 * up),
                channel_gain: shared.map(|_| path_gain(d)),
                downlink_channel_gain: None,
                tx_power_w: 0.2,
            }
        })
        .collect();
    let r_min = rng.random_range(50.0..200.0);
    Ok(SplitFinetuneInstance {
        model: model.into(),
        dtype: None,
        runtime: None,
        lora: LoraSpec {
            rank: 8,
            targets: None,
        },
        seq_len: if size == "small" { 128 } else { 512 },
        micro_batch: 1,
        clients,
        server: ServerSpec {
            device: "rtx-3090".into(),
            memory_bytes: None,
        },
        bandwidth_hz: shared,
        noise_psd_w_per_hz: 4e-21,
        server_tx_power_w: 1.0,
        protocol: Protocol::Sfl,
        cuts: None,
        client_freeze_levels: Some(levels(nlev)),
        server_freeze_levels: Some(levels(nlev)),
        convergence: ConvergenceSpec::Power {
            r_min,
            a: r_min,
            b: 1.5,
        },
        convergence_client_weight: 0.3,
        min_trainable_fraction: None,
        objective: Objective::TotalTime,
        baseline_cut: None,
        decisions: Decisions::Common,
    })
}
