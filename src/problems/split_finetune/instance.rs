//! The instance as written in JSON, its validation, and its resolution into a [`Prepared`] problem.

use super::cost::{Bandwidth, ClientP, Convergence, DeviceTable, Link, Prepared, Row};
use crate::catalog::Catalog;
use crate::cost::memory::{layer_memory, recipe_workload, trainable_params_per_layer};
use crate::cost::roofline::{layer_time, Hardware};
use crate::cost::{layer_table, DType, LoraTarget, Recipe, Workload};
use crate::error::Result;
use crate::validate::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A split LoRA fine-tuning instance (the family fields of an instance file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitFinetuneInstance {
    /// Catalog LLM (`llama-2-7b`).
    pub model: String,
    /// Base-weight / compute dtype: fp32, bf16, fp16 (default bf16).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Runtime profile for every device (efficiencies); default per device class.
    #[serde(default)]
    pub runtime: Option<String>,
    /// LoRA configuration.
    pub lora: LoraSpec,
    /// Tokens per sequence.
    pub seq_len: u64,
    /// Sequences per micro-batch (one smashed-data exchange per micro-batch).
    #[serde(default = "one_u")]
    pub micro_batch: u64,
    /// Clients (at least one).
    pub clients: Vec<ClientSpec>,
    /// The edge server.
    pub server: ServerSpec,
    /// Shared wireless bandwidth in Hz split among clients (Shannon rates from each client's channel);
    /// absent: every client has fixed `uplink_bps` / `downlink_bps`.
    #[serde(default)]
    pub bandwidth_hz: Option<f64>,
    /// Noise power spectral density, W/Hz (default 4e-21, thermal noise at 290 K).
    #[serde(default = "default_n0")]
    pub noise_psd_w_per_hz: f64,
    /// Server (base station) transmit power for the downlink, W (default 1).
    #[serde(default = "one_f")]
    pub server_tx_power_w: f64,
    /// Training protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Admissible cut layers = number of transformer blocks on the client side (default: all
    /// `0..L-1`; `0` = the client keeps only the embedding).
    #[serde(default)]
    pub cuts: Option<Vec<usize>>,
    /// Admissible client freezing ratios in [0, 1] (default 0, 0.1, ..., 1).
    #[serde(default)]
    pub client_freeze_levels: Option<Vec<f64>>,
    /// Admissible server freezing ratios in [0, 1] (default 0, 0.1, ..., 1).
    #[serde(default)]
    pub server_freeze_levels: Option<Vec<f64>>,
    /// Rounds to reach the target accuracy as a function of the trainable fraction.
    pub convergence: ConvergenceSpec,
    /// Weight `w ∈ [0, 1]` of the client side in the convergence model: rounds are `R(φ_eff)` with
    /// `φ_eff = (1 − w)·φ + w·φ_client` (`φ_client` = trained share of the client's LoRA parameters, 0
    /// when the client holds no block). Default 0 (only the overall fraction matters).
    #[serde(default)]
    pub convergence_client_weight: f64,
    /// Minimum trainable fraction of the LoRA parameters (default: > 0, something must train).
    #[serde(default)]
    pub min_trainable_fraction: Option<f64>,
    /// What to optimise.
    #[serde(default)]
    pub objective: Objective,
    /// Cut of the `splitlora` baseline (default: the admissible cut nearest L/4).
    #[serde(default)]
    pub baseline_cut: Option<usize>,
    /// Whether all clients share the cut and the client freezing level (`common`, default) or each
    /// client picks its own (`per_client`; the server level stays common).
    #[serde(default)]
    pub decisions: Decisions,
}

/// Who shares the cut and the client freezing level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Decisions {
    /// One cut and one client level for every client.
    #[default]
    Common,
    /// Client `k` picks its own cut `c_k` and client level `f_k`; the server level is common.
    PerClient,
}

fn one_u() -> u64 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn default_n0() -> f64 {
    4.0e-21
}
fn default_tx() -> f64 {
    0.2
}

/// LoRA on the transformer blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    pub rank: u64,
    /// Adapted linears (default q, k, v, o).
    #[serde(default)]
    pub targets: Option<Vec<LoraTarget>>,
}

/// One client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub name: String,
    /// Catalog device card.
    pub device: String,
    /// Usable memory, bytes (default: the card's).
    #[serde(default)]
    pub memory_bytes: Option<f64>,
    /// Energy budget per round, J (compute + transmit).
    #[serde(default)]
    pub energy_budget_j: Option<f64>,
    /// Micro-batches per round.
    #[serde(default = "one_u")]
    pub batches_per_round: u64,
    /// Fixed uplink rate, bit/s (fixed-rate mode).
    #[serde(default)]
    pub uplink_bps: Option<f64>,
    /// Fixed downlink rate, bit/s (fixed-rate mode).
    #[serde(default)]
    pub downlink_bps: Option<f64>,
    /// Linear uplink channel power gain (shared-bandwidth mode).
    #[serde(default)]
    pub channel_gain: Option<f64>,
    /// Linear downlink channel power gain (default = `channel_gain`).
    #[serde(default)]
    pub downlink_channel_gain: Option<f64>,
    /// Transmit power, W (default 0.2).
    #[serde(default = "default_tx")]
    pub tx_power_w: f64,
}

/// The edge server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub device: String,
    /// Usable memory, bytes (default: the card's).
    #[serde(default)]
    pub memory_bytes: Option<f64>,
}

/// Training protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Vanilla split learning: clients train one after another (round = sum over clients).
    Vanilla,
    /// Split federated / parallel split learning: clients in parallel, a shared server, client
    /// adapters aggregated every round.
    #[default]
    Sfl,
    /// U-shaped SFL: the LM head (and the loss) also on the client, for label privacy.
    UShaped,
}

/// Convergence model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConvergenceSpec {
    /// Profiled table: rounds at given trainable fractions, linear interpolation (constant outside).
    Table {
        trainable_fraction: Vec<f64>,
        rounds: Vec<f64>,
    },
    /// `R(φ) = r_min + a·(1 − φ)^b`.
    Power { r_min: f64, a: f64, b: f64 },
}

/// The objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Total fine-tuning time to target: first round + (R − 1) later rounds, s.
    #[default]
    TotalTime,
    /// Latency of the longest (first) round, s (use with `min_trainable_fraction`).
    RoundLatency,
    /// Total client energy over the fine-tuning, J, with the total time at most `deadline_s`.
    Energy { deadline_s: f64 },
}

fn levels(c: &Check, v: &Option<Vec<f64>>) -> Result<Vec<f64>> {
    let v = v
        .clone()
        .unwrap_or_else(|| (0..=10).map(|i| i as f64 / 10.0).collect());
    c.non_empty(&v)?;
    for (i, &x) in v.iter().enumerate() {
        c.index(i).in_range(x, 0.0, 1.0)?;
    }
    Ok(v)
}

fn parse_dtype(c: &Check, s: &Option<String>) -> Result<DType> {
    match s.as_deref() {
        None => Ok(DType::Bf16),
        Some(s) => match serde_json::from_value::<DType>(serde_json::Value::String(s.into())) {
            Ok(d @ (DType::Fp32 | DType::Bf16 | DType::Fp16)) => Ok(d),
            _ => Err(c.err(format!("unsupported dtype '{s}' (fp32, bf16, fp16)"))),
        },
    }
}

/// Per-layer rows of one device: forward only / activation gradient / full LoRA step.
fn device_table(
    card: &crate::catalog::LlmCard,
    hw: &Hardware,
    w: &Workload,
    trainable: &[f64],
) -> DeviceTable {
    let table = layer_table(card, w);
    let rows = table
        .iter()
        .enumerate()
        .map(|(l, lc)| {
            let tr = trainable.get(l).copied().unwrap_or(0.0);
            let tf = if lc.params > 0.0 { tr / lc.params } else { 0.0 };
            let fwd = layer_time(lc, hw, w, 0.0, true);
            let act = layer_time(lc, hw, w, 0.0, false);
            let full = layer_time(lc, hw, w, tf, false);
            Row {
                fwd_s: fwd.fwd_s,
                act_s: act.total_s(),
                full_s: full.total_s(),
                fwd_j: fwd.fwd_j,
                act_j: act.total_j(),
                full_j: full.total_j(),
            }
        })
        .collect();
    DeviceTable {
        name: hw.device.name.clone(),
        rows,
    }
}

impl SplitFinetuneInstance {
    /// Checks every field and builds the prepared problem.
    pub fn prepare(&self, catalog: &Catalog) -> Result<Prepared> {
        let root = Check::root();
        let card = catalog
            .llm(&self.model)
            .map_err(|e| e.at(root.field("model").path()))?;
        let dtype = parse_dtype(&root.field("dtype"), &self.dtype)?;
        let cl = root.field("lora");
        cl.field("rank").at_least_one(self.lora.rank)?;
        let targets =
            self.lora.targets.clone().unwrap_or_else(|| {
                vec![LoraTarget::Q, LoraTarget::K, LoraTarget::V, LoraTarget::O]
            });
        cl.field("targets").non_empty(&targets)?;
        root.field("seq_len").at_least_one(self.seq_len)?;
        root.field("micro_batch").at_least_one(self.micro_batch)?;
        root.field("noise_psd_w_per_hz")
            .positive(self.noise_psd_w_per_hz)?;
        root.field("server_tx_power_w")
            .positive(self.server_tx_power_w)?;
        let recipe = Recipe::Lora {
            rank: self.lora.rank,
            targets,
            base_dtype: dtype,
        };
        let w = recipe_workload(
            &recipe,
            &Workload::training(self.micro_batch, self.seq_len, dtype),
        );
        let table = layer_table(&card, &w);
        let trainable = trainable_params_per_layer(&card, &recipe);
        let nb = table.len().saturating_sub(2);
        if nb < 2 || table.len() != trainable.len() {
            return Err(root
                .field("model")
                .err("the model must have an embedding, at least 2 blocks and a head"));
        }
        let mut base = vec![];
        let mut state = vec![];
        let mut act = vec![];
        for (l, lc) in table.iter().enumerate() {
            let frozen = layer_memory(lc, 0.0, &recipe, &w);
            let full = layer_memory(lc, trainable[l], &recipe, &w);
            base.push(frozen.weights_bytes);
            state.push(full.total_bytes - full.activation_bytes - frozen.weights_bytes);
            act.push(lc.train_act_bytes);
        }
        let total_trainable: f64 = trainable.iter().sum();
        if total_trainable <= 0.0 {
            return Err(cl.err("LoRA adapts no parameter of this model"));
        }
        // devices
        let mut dev_index: BTreeMap<String, usize> = BTreeMap::new();
        let mut tables: Vec<DeviceTable> = vec![];
        let mut memories = vec![];
        let mut add_device = |name: &str, path: &Check| -> Result<(usize, f64)> {
            let hw = Hardware::from_catalog(catalog, name, self.runtime.as_deref())
                .map_err(|e| e.at(path.path()))?;
            let key = hw.device.name.clone();
            if let Some(&i) = dev_index.get(&key) {
                return Ok((i, memories[i]));
            }
            let t = device_table(&card, &hw, &w, &trainable);
            if t.rows.iter().any(|r| {
                [r.fwd_s, r.act_s, r.full_s, r.fwd_j, r.act_j, r.full_j]
                    .iter()
                    .any(|x| !x.is_finite() || *x < 0.0)
            }) {
                return Err(path.err(format!("cost model returned a non-finite time on '{key}'")));
            }
            tables.push(t);
            memories.push(hw.device.memory_bytes.value);
            dev_index.insert(key, tables.len() - 1);
            Ok((tables.len() - 1, hw.device.memory_bytes.value))
        };
        let cs = root.field("server");
        let (server_dev, server_card_mem) = add_device(&self.server.device, &cs.field("device"))?;
        let server_memory = match self.server.memory_bytes {
            Some(m) => cs.field("memory_bytes").nonneg(m)?,
            None => server_card_mem,
        };
        let shared = match self.bandwidth_hz {
            Some(b) => Some(root.field("bandwidth_hz").positive(b)?),
            None => None,
        };
        let cc = root.field("clients");
        cc.non_empty(&self.clients)?;
        let mut names = BTreeSet::new();
        let mut clients = vec![];
        for (i, c) in self.clients.iter().enumerate() {
            let p = cc.index(i);
            p.field("name")
                .ensure(!c.name.trim().is_empty(), || "must not be empty".into())?;
            if !names.insert(c.name.clone()) {
                return Err(p
                    .field("name")
                    .err(format!("duplicate client name '{}'", c.name)));
            }
            let (dev, card_mem) = add_device(&c.device, &p.field("device"))?;
            let memory = match c.memory_bytes {
                Some(m) => p.field("memory_bytes").nonneg(m)?,
                None => card_mem,
            };
            if let Some(e) = c.energy_budget_j {
                p.field("energy_budget_j").nonneg(e)?;
            }
            p.field("batches_per_round")
                .at_least_one(c.batches_per_round)?;
            p.field("tx_power_w").positive(c.tx_power_w)?;
            let link = if shared.is_some() {
                let g = c.channel_gain.ok_or_else(|| {
                    p.field("channel_gain")
                        .err("required when bandwidth_hz (shared bandwidth) is given")
                })?;
                let g = p.field("channel_gain").positive(g)?;
                let gd = match c.downlink_channel_gain {
                    Some(x) => p.field("downlink_channel_gain").positive(x)?,
                    None => g,
                };
                Link::Shannon {
                    gain_up: g,
                    gain_down: gd,
                }
            } else {
                let need = |v: Option<f64>, f: &str| -> Result<f64> {
                    let v = v.ok_or_else(|| {
                        p.field(f)
                            .err("required without bandwidth_hz (fixed-rate mode)")
                    })?;
                    p.field(f).positive(v)
                };
                Link::Fixed {
                    up_bps: need(c.uplink_bps, "uplink_bps")?,
                    down_bps: need(c.downlink_bps, "downlink_bps")?,
                }
            };
            clients.push(ClientP {
                name: c.name.clone(),
                dev,
                memory,
                energy_budget_j: c.energy_budget_j,
                batches: c.batches_per_round as f64,
                tx_power_w: c.tx_power_w,
                link,
            });
        }
        let cuts = match &self.cuts {
            None => (0..nb).collect::<Vec<_>>(),
            Some(v) => {
                let c = root.field("cuts");
                c.non_empty(v)?;
                for (i, &x) in v.iter().enumerate() {
                    c.index(i).ensure(x < nb, || {
                        format!("must be < {nb} (blocks of {}), got {x}", card.name)
                    })?;
                }
                let mut v = v.clone();
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        let client_levels = levels(
            &root.field("client_freeze_levels"),
            &self.client_freeze_levels,
        )?;
        let server_levels = levels(
            &root.field("server_freeze_levels"),
            &self.server_freeze_levels,
        )?;
        let cv = root.field("convergence");
        let convergence = match &self.convergence {
            ConvergenceSpec::Table {
                trainable_fraction,
                rounds,
            } => {
                let c = cv.field("table");
                c.field("trainable_fraction")
                    .non_empty(trainable_fraction)?;
                c.field("rounds").len_eq(
                    rounds,
                    trainable_fraction.len(),
                    "one per trainable_fraction",
                )?;
                for (i, &x) in trainable_fraction.iter().enumerate() {
                    c.field("trainable_fraction")
                        .index(i)
                        .in_range(x, 0.0, 1.0)?;
                    if i > 0 {
                        c.field("trainable_fraction")
                            .index(i)
                            .ensure(x > trainable_fraction[i - 1], || {
                                "must be strictly increasing".into()
                            })?;
                    }
                }
                for (i, &r) in rounds.iter().enumerate() {
                    let q = c.field("rounds").index(i);
                    q.finite(r)?;
                    q.ensure(r >= 1.0, || format!("must be >= 1, got {r}"))?;
                    if i > 0 {
                        q.ensure(r <= rounds[i - 1], || {
                            "must be non-increasing (more trainable parameters never need more rounds)"
                                .into()
                        })?;
                    }
                }
                Convergence::Table(trainable_fraction.clone(), rounds.clone())
            }
            ConvergenceSpec::Power { r_min, a, b } => {
                let c = cv.field("power");
                c.field("r_min").finite(*r_min)?;
                c.field("r_min")
                    .ensure(*r_min >= 1.0, || format!("must be >= 1, got {r_min}"))?;
                c.field("a").nonneg(*a)?;
                c.field("b").positive(*b)?;
                Convergence::Power {
                    r_min: *r_min,
                    a: *a,
                    b: *b,
                }
            }
        };
        let client_weight = root.field("convergence_client_weight").in_range(
            self.convergence_client_weight,
            0.0,
            1.0,
        )?;
        let min_trainable = match self.min_trainable_fraction {
            Some(x) => root.field("min_trainable_fraction").in_range(x, 0.0, 1.0)?,
            None => 0.0,
        };
        if let Objective::Energy { deadline_s } = self.objective {
            root.field("objective")
                .field("energy")
                .field("deadline_s")
                .positive(deadline_s)?;
        }
        let baseline_cut = match self.baseline_cut {
            Some(x) => {
                root.field("baseline_cut").ensure(cuts.contains(&x), || {
                    format!("{x} is not an admissible cut")
                })?;
                x
            }
            None => *cuts
                .iter()
                .min_by_key(|&&c| (4 * c).abs_diff(nb))
                .unwrap_or(&0),
        };
        Ok(Prepared {
            model: card.name.clone(),
            nb,
            tables,
            server_dev,
            server_memory,
            base_bytes: base,
            state_bytes: state,
            act_bytes: act,
            trainable,
            total_trainable,
            out_bytes: table.iter().map(|l| l.out_bytes).collect(),
            clients,
            bandwidth: shared.map(|total_hz| Bandwidth {
                total_hz,
                noise_psd: self.noise_psd_w_per_hz,
                server_tx_power_w: self.server_tx_power_w,
            }),
            protocol: self.protocol,
            cuts,
            client_levels,
            server_levels,
            convergence,
            min_trainable,
            client_weight,
            objective: self.objective,
            baseline_cut,
            per_client: self.decisions == Decisions::PerClient,
        })
    }
}
