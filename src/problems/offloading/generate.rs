//! Random instances. Sizes `small` (3 devices), `medium` (50), `large` (1000), or a number; prefix
//! `classic-` (e.g. `classic-30`) gives You et al.'s classic TDMA model (partitionable tasks, fixed
//! energy per cycle, no power caps, unlimited server), which the `threshold` policy solves; prefix
//! `ofdma-` (e.g. `ofdma-large`, `ofdma-classic-30`) the same instance with OFDMA bandwidth sharing.
//!
//! Mixed instances: frame T = 1 s, bandwidth 0.1 MHz per device (classic: 60 kHz per device), N0 = −174 dBm/Hz; channel gain from
//! the 3GPP path loss `128.1 + 37.6 log10(d km)` with d ∈ [0.05, 0.5] km; R ∈ [0.1, 1] Mbit,
//! C ∈ [500, 1500] cycles/bit; half the tasks fixed energy per cycle ∈ [1, 20]e-11 J, half DVFS with
//! κ = 1e-28 and f_max ∈ [1, 2] GHz; transmit power cap 0.1–1 W on half the devices; every fifth
//! device an LLM request instead (qwen2.5-0.5b on a Snapdragon 8 Gen 3 or Jetson Orin Nano, prompt
//! 64–256, 8–32 generated tokens, deadline 2–6 s, qwen-small alternative none). Server: L4,
//! 1e10 cycles/s, capacity 60 % of the server time of offloading every partitionable task.

use super::instance::*;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn instance(k: usize, classic: bool, seed: u64) -> OffloadingInstance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = k.max(1);
    let mut devices = vec![];
    let mut work = 0.0;
    for i in 0..k {
        let d_km: f64 = rng.random_range(0.05..0.5);
        let pl_db = 128.1 + 37.6 * d_km.log10();
        let gain = 10f64.powf(-pl_db / 10.0);
        let llm = !classic && i % 5 == 4;
        let task = if llm {
            Task::Llm(LlmTask {
                model: "qwen2.5-0.5b".into(),
                dtype: None,
                device: if rng.random_bool(0.5) {
                    "snapdragon-8-gen-3".into()
                } else {
                    "jetson-orin-nano-8gb".into()
                },
                runtime: None,
                prompt_tokens: rng.random_range(64..=256),
                gen_tokens: rng.random_range(8..=32),
                accuracy: None,
                allow_split: rng.random_bool(0.5),
                small_model: None,
            })
        } else {
            let bits = rng.random_range(1e5..1e6);
            let cpb = rng.random_range(500.0..1500.0);
            work += bits * cpb / 1e10;
            let dvfs = !classic && rng.random_bool(0.5);
            Task::Partitionable(PartitionableTask {
                bits,
                cycles_per_bit: cpb,
                local: if dvfs {
                    LocalEnergy::Dvfs { kappa: 1e-28 }
                } else {
                    LocalEnergy::Fixed {
                        energy_per_cycle_j: rng.random_range(1e-11..2e-10),
                    }
                },
                max_cycles_per_s: (!classic && dvfs).then(|| rng.random_range(1e9..2e9)),
            })
        };
        devices.push(DeviceSpec {
            name: format!("d{i}"),
            weight: if classic {
                rng.random_range(0.5..1.5)
            } else {
                1.0
            },
            deadline_s: llm.then(|| rng.random_range(2.0..6.0)),
            channel_gain: gain,
            max_tx_power_w: (!classic && rng.random_bool(0.5)).then(|| rng.random_range(0.1..1.0)),
            task,
        });
    }
    OffloadingInstance {
        spectrum: Spectrum {
            bandwidth_hz: if classic { 6e4 } else { 1e5 } * k as f64,
            frame_s: 1.0,
            access: Access::Tdma,
            noise_psd_w_per_hz: 4e-21,
        },
        server: Server {
            device: (!classic).then(|| "l4".into()),
            runtime: None,
            capacity_s: (!classic).then_some(0.6 * work + 1e-3),
            cycles_per_s: Some(1e10),
            energy_per_cycle_j: Some(1e-11),
            energy_weight: None,
        },
        objective: Objective::DeviceEnergy,
        min_accuracy: None,
        devices,
    }
}

pub fn generate(size: &str, seed: u64) -> Result<OffloadingInstance> {
    let (ofdma, size) = match size.strip_prefix("ofdma-") {
        Some(r) => (true, r),
        None => (false, size),
    };
    let mut inst = generate_tdma(size, seed)?;
    if ofdma {
        inst.spectrum.access = Access::Ofdma;
    }
    Ok(inst)
}

fn generate_tdma(size: &str, seed: u64) -> Result<OffloadingInstance> {
    let (classic, s) = match size.strip_prefix("classic-") {
        Some(r) => (true, r),
        None => (false, size),
    };
    let k = match s {
        "small" => 3,
        "medium" => 50,
        "large" => 1000,
        n => n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            Error::invalid(
                "$.size",
                format!(
                    "unknown size '{size}' (small, medium, large, a number, or classic-<size>; prefix ofdma- for OFDMA)"
                ),
            )
        })?,
    };
    Ok(instance(k, classic, seed))
}
