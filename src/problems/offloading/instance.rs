//! The instance as written in JSON and its validation into a [`Prepared`] problem (every field
//! checked with its JSON path, catalog names resolved, LLM modes costed by `cost::build_llm_modes`).

use super::cost::{self, Dev, Local, Mode, Prepared};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::validate::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An offloading instance (the family fields of an instance file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffloadingInstance {
    /// The shared uplink (TDMA frame).
    pub spectrum: Spectrum,
    /// The edge server.
    #[serde(default)]
    pub server: Server,
    /// What to minimise.
    #[serde(default)]
    pub objective: Objective,
    /// Accuracy floor: every request must run in a mode of accuracy at least this (LLM requests:
    /// the main model's `accuracy` or the small model's; partitionable tasks count as 1).
    #[serde(default)]
    pub min_accuracy: Option<f64>,
    /// The devices, one task each.
    pub devices: Vec<DeviceSpec>,
}

/// The shared uplink: bandwidth `B` within a frame `T`, time-shared (TDMA) or split (OFDMA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spectrum {
    /// Uplink bandwidth B, Hz.
    pub bandwidth_hz: f64,
    /// Frame length T, s. TDMA: `Σ_k t_k ≤ T`; OFDMA: every upload within the frame, `t_k ≤ T`.
    pub frame_s: f64,
    /// Multiple access (default `tdma`): `tdma` (each device uses the whole band B for its slot
    /// `t_k`, `Σ_k t_k ≤ T`) or `ofdma` (device k gets bandwidth `b_k`, `Σ_k b_k ≤ B`, and
    /// uploads over its whole window).
    #[serde(default)]
    pub access: Access,
    /// Noise power spectral density N0, W/Hz (default 4e-21, −174 dBm/Hz).
    #[serde(default = "default_n0")]
    pub noise_psd_w_per_hz: f64,
}

/// Multiple access on the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Time sharing of the whole band: `Σ_k t_k ≤ T`.
    #[default]
    Tdma,
    /// Bandwidth sharing: `Σ_k b_k ≤ B`, simultaneous uploads.
    Ofdma,
}

fn default_n0() -> f64 {
    4.0e-21
}

/// The edge server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Catalog device card of the server (needed by LLM requests), e.g. `l4`, `a100-80gb-sxm`.
    #[serde(default)]
    pub device: Option<String>,
    /// Runtime profile of the server (default per device class).
    #[serde(default)]
    pub runtime: Option<String>,
    /// Server compute seconds available per frame, `Σ_k w_k ≤ F` (default unlimited).
    #[serde(default)]
    pub capacity_s: Option<f64>,
    /// Server speed for partitionable tasks, cycles/s (default 1e10).
    #[serde(default)]
    pub cycles_per_s: Option<f64>,
    /// Server energy per cycle of partitionable tasks, J (default 0).
    #[serde(default)]
    pub energy_per_cycle_j: Option<f64>,
    /// Weight of server energy in `total_energy` (default 1).
    #[serde(default)]
    pub energy_weight: Option<f64>,
}

/// Objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// `Σ_k β_k E^dev_k` (battery view).
    #[default]
    DeviceEnergy,
    /// `Σ_k β_k E^dev_k + β_s E^srv` (operator view).
    TotalEnergy,
}

/// A device and its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub name: String,
    /// Energy weight β_k (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Deadline D_k, s (default: the frame length).
    #[serde(default)]
    pub deadline_s: Option<f64>,
    /// Linear channel power gain g_k = h_k².
    pub channel_gain: f64,
    /// Maximum transmit power, W (default unlimited).
    #[serde(default)]
    pub max_tx_power_w: Option<f64>,
    pub task: Task,
}

fn one() -> f64 {
    1.0
}

/// The task of a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// A data-partitionable task (You et al. 2017): any share of the bits may be offloaded.
    Partitionable(PartitionableTask),
    /// An LLM request run locally, split at a layer, or offloaded.
    Llm(LlmTask),
}

/// A data-partitionable task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionableTask {
    /// Input bits R_k.
    pub bits: f64,
    /// CPU cycles per bit C_k (on the device and on the server).
    pub cycles_per_bit: f64,
    /// Local energy model.
    pub local: LocalEnergy,
    /// Maximum local CPU frequency, cycles/s (default unlimited): forces `ℓ ≥ R − f_max·D/C`.
    #[serde(default)]
    pub max_cycles_per_s: Option<f64>,
}

/// Local computing energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LocalEnergy {
    /// Fixed energy per cycle P_k, J (You et al.): `E = (R − ℓ)·C·P`.
    Fixed { energy_per_cycle_j: f64 },
    /// DVFS with effective capacitance κ: the CPU runs the `(R − ℓ)·C` cycles at the lowest
    /// frequency meeting the deadline, `f = (R − ℓ)C/D`, energy `κ f²` per cycle = `κ((R−ℓ)C)³/D²`.
    Dvfs { kappa: f64 },
}

/// An LLM request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmTask {
    /// Catalog LLM (`llama-3.1-8b`).
    pub model: String,
    /// Weight dtype (default fp16).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Catalog device card of the device (`snapdragon-8-gen-3`, `jetson-orin-nx-16gb`).
    pub device: String,
    /// Device runtime profile (default per device class).
    #[serde(default)]
    pub runtime: Option<String>,
    pub prompt_tokens: u64,
    pub gen_tokens: u64,
    /// Accuracy of the main model (default 1).
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// Allow splits at intermediate layers (default true); otherwise local or full offload only.
    #[serde(default = "yes")]
    pub allow_split: bool,
    /// Optional smaller on-device model as an extra local mode.
    #[serde(default)]
    pub small_model: Option<SmallModel>,
}

fn yes() -> bool {
    true
}

/// A smaller on-device model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmallModel {
    pub model: String,
    #[serde(default)]
    pub dtype: Option<String>,
    /// Its accuracy (relative to the same scale as the main model's).
    pub accuracy: f64,
}

impl OffloadingInstance {
    /// Validates and resolves the instance.
    pub fn prepare(&self, catalog: &Catalog) -> Result<Prepared> {
        let r = Check::root();
        let sp = r.field("spectrum");
        let bw = sp
            .field("bandwidth_hz")
            .positive(self.spectrum.bandwidth_hz)?;
        let frame = sp.field("frame_s").positive(self.spectrum.frame_s)?;
        let n0 = sp
            .field("noise_psd_w_per_hz")
            .positive(self.spectrum.noise_psd_w_per_hz)?;
        let sv = r.field("server");
        let cap = match self.server.capacity_s {
            Some(x) => sv.field("capacity_s").positive(x)?,
            None => f64::INFINITY,
        };
        let cps = match self.server.cycles_per_s {
            Some(x) => sv.field("cycles_per_s").positive(x)?,
            None => 1e10,
        };
        let epc = match self.server.energy_per_cycle_j {
            Some(x) => sv.field("energy_per_cycle_j").nonneg(x)?,
            None => 0.0,
        };
        let bs = match self.server.energy_weight {
            Some(x) => sv.field("energy_weight").nonneg(x)?,
            None => 1.0,
        };
        let server_weight = match self.objective {
            Objective::DeviceEnergy => 0.0,
            Objective::TotalEnergy => bs,
        };
        let min_acc = match self.min_accuracy {
            Some(a) => r.field("min_accuracy").finite(a)?,
            None => f64::NEG_INFINITY,
        };
        r.field("devices").non_empty(&self.devices)?;
        let mut devs = vec![];
        let mut seen = std::collections::BTreeSet::new();
        for (k, d) in self.devices.iter().enumerate() {
            let c = r.field("devices").index(k);
            c.field("name")
                .ensure(!d.name.is_empty(), || "must not be empty".into())?;
            c.field("name").ensure(seen.insert(d.name.clone()), || {
                format!("duplicate device name '{}'", d.name)
            })?;
            let weight = c.field("weight").positive(d.weight)?;
            let deadline = match d.deadline_s {
                Some(x) => c.field("deadline_s").positive(x)?,
                None => frame,
            };
            let gain = c.field("channel_gain").positive(d.channel_gain)?;
            let pmax = match d.max_tx_power_w {
                Some(x) => Some(c.field("max_tx_power_w").positive(x)?),
                None => None,
            };
            let rmax = pmax.map_or(f64::INFINITY, |p| {
                crate::cost::shannon_rate_bps(bw, p, gain, n0)
            });
            let tc = c.field("task");
            let modes = match &d.task {
                Task::Partitionable(t) => {
                    let tc = tc.field("partitionable");
                    let bits = tc.field("bits").positive(t.bits)?;
                    let cpb = tc.field("cycles_per_bit").positive(t.cycles_per_bit)?;
                    let local = match &t.local {
                        LocalEnergy::Fixed { energy_per_cycle_j } => Local::Linear {
                            j_per_bit: tc
                                .field("local")
                                .field("fixed")
                                .field("energy_per_cycle_j")
                                .nonneg(*energy_per_cycle_j)?
                                * cpb,
                        },
                        LocalEnergy::Dvfs { kappa } => Local::Cubic {
                            coef: tc
                                .field("local")
                                .field("dvfs")
                                .field("kappa")
                                .nonneg(*kappa)?
                                * cpb.powi(3)
                                / (deadline * deadline),
                        },
                    };
                    let lo = match t.max_cycles_per_s {
                        Some(f) => {
                            let f = tc.field("max_cycles_per_s").positive(f)?;
                            (bits - f * deadline / cpb).max(0.0)
                        }
                        None => 0.0,
                    };
                    vec![Mode {
                        label: "partial".into(),
                        split: None,
                        e0: 0.0,
                        tau_loc: 0.0,
                        lo,
                        hi: bits,
                        total_bits: bits,
                        local,
                        w0: 0.0,
                        w_per_bit: cpb / cps,
                        es0: 0.0,
                        es_per_bit: cpb * epc,
                        accuracy: 1.0,
                        tmax: deadline.min(frame),
                        deadline_includes_server: false,
                        allowed: Ok(()),
                        cycles_per_bit: cpb,
                    }]
                }
                Task::Llm(t) => {
                    let tc = tc.field("llm");
                    cost::build_llm_modes(t, &tc, &self.server, catalog, deadline, frame)?
                }
            };
            let mut modes = modes;
            for m in &mut modes {
                if m.allowed.is_ok() && m.accuracy < min_acc {
                    m.allowed = Err(format!("accuracy {} below the floor {min_acc}", m.accuracy));
                }
                if m.allowed.is_ok() && m.tmin(rmax) > m.tmax * (1.0 + 1e-12) {
                    m.allowed = Err("cannot meet the deadline".into());
                }
            }
            devs.push(Dev {
                name: d.name.clone(),
                weight,
                deadline,
                gain,
                a: n0 * bw / gain,
                rmax,
                pmax,
                modes,
            });
        }
        Ok(Prepared {
            devs,
            bandwidth_hz: bw,
            frame_s: frame,
            access: self.spectrum.access,
            noise_psd: n0,
            capacity_s: cap,
            server_weight,
            objective: self.objective,
        })
    }
}
