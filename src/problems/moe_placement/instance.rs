//! The instance as written in JSON, its validation, and its resolution into a [`Prepared`] problem.

use super::cost::{GroupP, Prepared, ServerP};
use crate::catalog::Catalog;
use crate::cost::moe::moe_expert_cost;
use crate::cost::roofline::Hardware;
use crate::cost::DType;
use crate::error::{close_matches, Result};
use crate::validate::Check;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A MoE expert-placement instance (the family fields of an instance file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoePlacementInstance {
    /// The MoE model: a catalog card, or explicit expert sizes.
    pub model: MoeModelSpec,
    /// Edge servers that may hold experts.
    pub servers: Vec<ServerSpec>,
    /// User groups (regions or applications) and their home servers.
    pub groups: Vec<GroupSpec>,
    /// Routing statistics: expected activations of each expert per token, per group and layer.
    pub loads: LoadSpec,
    /// Links between servers (a link with `bidirectional: true` adds both directions).
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// A link between every ordered pair of servers not listed in `links`.
    #[serde(default)]
    pub default_link: Option<LinkParams>,
    /// Extra replicas allowed per layer beyond one copy of each expert (EPLB's redundant experts).
    #[serde(default)]
    pub replication_budget: usize,
    /// Share of each server's compute the MoE layers may use, in (0, 1] (default 1).
    #[serde(default = "one")]
    pub max_utilization: f64,
    /// What to optimise.
    #[serde(default)]
    pub objective: Objective,
    /// Latency objective: tokens of one expert-parallel step arrive over this window, s (default 0.02).
    /// A layer's compute time is then `step_window_s × max_s u_s`.
    #[serde(default = "default_window")]
    pub step_window_s: f64,
    /// Current placement, per MoE layer, per server (instance order): the experts it holds.
    #[serde(default)]
    pub current_placement: Option<Vec<Vec<Vec<u32>>>>,
    /// Cost per byte of expert weights moved onto a server that did not hold them, in objective units.
    #[serde(default)]
    pub migration_cost_per_byte: f64,
    /// Migration heuristic: accept a per-layer max load up to `(1 + load_slack) ×` the greedy's.
    #[serde(default = "default_slack")]
    pub load_slack: f64,
}

fn one() -> f64 {
    1.0
}
fn default_window() -> f64 {
    0.02
}
fn default_slack() -> f64 {
    0.05
}

/// The model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MoeModelSpec {
    /// A catalog MoE card (`mixtral-8x7b`, `deepseek-v2-lite`, `qwen1.5-moe-a2.7b`).
    Catalog(CatalogMoe),
    /// Explicit sizes.
    Table(MoeTable),
}

/// A catalog MoE card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogMoe {
    pub name: String,
    /// Weight dtype: fp32, bf16, fp16, fp8, int8, int4 (default fp16).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Use only the first `layers` MoE blocks (default: all).
    #[serde(default)]
    pub layers: Option<usize>,
}

/// Explicit MoE sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoeTable {
    /// MoE layers.
    pub layers: usize,
    /// Routed experts per layer.
    pub experts: usize,
    /// Routed experts per token.
    pub top_k: usize,
    /// Bytes of one expert.
    pub expert_bytes: f64,
    /// Forward FLOPs of one expert per token.
    pub expert_flops_per_token: f64,
    /// Hidden-state bytes per token sent to an expert (and back).
    pub hidden_bytes_per_token: f64,
}

/// An edge server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub name: String,
    /// Catalog device (gives compute and memory defaults).
    #[serde(default)]
    pub device: Option<String>,
    /// Runtime profile for the device's efficiency (default per device class).
    #[serde(default)]
    pub runtime: Option<String>,
    /// Memory for routed experts, bytes (default: the device card's memory).
    #[serde(default)]
    pub memory_bytes: Option<f64>,
    /// Effective FLOP/s for expert MLPs (default: the device's effective FLOP/s in the compute dtype).
    #[serde(default)]
    pub compute_flops: Option<f64>,
}

/// A user group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    /// Server the group's tokens arrive at (runs attention and shared experts).
    pub home: String,
    /// Tokens per second of the group.
    pub tokens_per_s: f64,
    /// Access link user -> home (constant per token; reported, not optimised).
    #[serde(default)]
    pub access: Option<LinkParams>,
}

/// Routing statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadSpec {
    /// `[group][layer][expert]`: expected activations of the expert per token of the group (each in
    /// [0, 1]; a row sums to top-k for a trace of top-k routing).
    Table(Vec<Vec<Vec<f64>>>),
    /// Generated skew (see [`zipf_loads`]).
    Zipf(ZipfSpec),
}

/// Zipf skew: per layer a random expert ranking shared by all groups, and per (group, layer) a
/// private ranking; popularity `p_e ∝ α·rank_shared(e)^{-s} + (1-α)·rank_group(e)^{-s}`
/// (ranks from 1), scaled to top-k activations per token with each expert capped at 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZipfSpec {
    /// Zipf exponent `s >= 0` (0 = uniform).
    pub exponent: f64,
    /// Weight `α ∈ [0, 1]` of the layer-wide ranking (1 = all groups alike).
    #[serde(default = "half")]
    pub shared: f64,
    pub seed: u64,
}

fn half() -> f64 {
    0.5
}

/// What to optimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Expected per-token latency: dispatch + combine + `step_window_s` × Σ_l max_s u_sl, s.
    #[default]
    Latency,
    /// Σ over layers of the busiest server's utilisation (EPLB's metric, per layer), s/s.
    MaxLoad,
}

/// Link parameters and server-to-server links: the same types as the `pipeline` family's.
pub use crate::problems::pipeline::{LinkParams, LinkSpec};

/// The Zipf loads `[group][layer][expert]` of [`ZipfSpec`].
pub fn zipf_loads(
    z: &ZipfSpec,
    groups: usize,
    layers: usize,
    experts: usize,
    k: usize,
) -> Vec<Vec<Vec<f64>>> {
    let mut rng = ChaCha8Rng::seed_from_u64(z.seed);
    let perm = |rng: &mut ChaCha8Rng| {
        let mut v: Vec<usize> = (0..experts).collect();
        for i in (1..experts).rev() {
            v.swap(i, rng.random_range(0..=i));
        }
        v
    };
    let shared: Vec<Vec<usize>> = (0..layers).map(|_| perm(&mut rng)).collect();
    (0..groups)
        .map(|_| {
            (0..layers)
                .map(|l| {
                    let own = perm(&mut rng);
                    let mut p = vec![0.0; experts];
                    for r in 0..experts {
                        let w = ((r + 1) as f64).powf(-z.exponent);
                        p[shared[l][r]] += z.shared * w;
                        p[own[r]] += (1.0 - z.shared) * w;
                    }
                    cap_to_top_k(&mut p, k as f64);
                    p
                })
                .collect()
        })
        .collect()
}

/// Scales `p` to sum `k` with every entry at most 1 (water-filling the excess over the rest).
fn cap_to_top_k(p: &mut [f64], k: f64) {
    let k = k.min(p.len() as f64);
    let mut fixed = vec![false; p.len()];
    for _ in 0..p.len() {
        let free: f64 = p.iter().zip(&fixed).filter(|x| !*x.1).map(|x| *x.0).sum();
        let nfixed = fixed.iter().filter(|f| **f).count() as f64;
        if free <= 0.0 {
            break;
        }
        let scale = (k - nfixed) / free;
        let mut changed = false;
        for (v, f) in p.iter_mut().zip(fixed.iter_mut()) {
            if !*f {
                *v *= scale;
                if *v > 1.0 {
                    *v = 1.0;
                    *f = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

fn name_index(c: &Check, names: &BTreeMap<String, usize>, name: &str) -> Result<usize> {
    names.get(name).copied().ok_or_else(|| {
        let s = close_matches(name, names.keys().map(|s| s.as_str()));
        c.err(if s.is_empty() {
            format!("unknown server '{name}'")
        } else {
            format!("unknown server '{name}'; did you mean: {}?", s.join(", "))
        })
    })
}

fn link_cost(c: &Check, bw: f64, lat: f64, bytes: f64) -> Result<f64> {
    c.field("bandwidth_bps").positive(bw)?;
    c.field("latency_s").nonneg(lat)?;
    // dispatch + combine: the hidden state goes there and comes back
    Ok(2.0 * (lat + bytes * 8.0 / bw))
}

impl MoePlacementInstance {
    /// Checks every field and builds the prepared problem.
    pub fn prepare(&self, catalog: &Catalog) -> Result<Prepared> {
        let root = Check::root();
        // ---- model
        let (layers, experts, top_k, expert_bytes, flops, hidden, dtype) = match &self.model {
            MoeModelSpec::Catalog(m) => {
                let c = root.field("model").field("catalog");
                let card = catalog
                    .llm(&m.name)
                    .map_err(|e| e.at(c.field("name").path()))?;
                let dtype: DType = match &m.dtype {
                    None => DType::Fp16,
                    Some(s) => serde_json::from_value(serde_json::Value::String(s.clone()))
                        .map_err(|_| {
                            c.field("dtype").err(format!(
                                "unknown dtype '{s}' (fp32, bf16, fp16, fp8, int8, int4)"
                            ))
                        })?,
                };
                let mc = moe_expert_cost(&card, dtype).ok_or_else(|| {
                    c.field("name")
                        .err(format!("'{}' is not a Mixture-of-Experts model", card.name))
                })?;
                let all = mc.moe_blocks.len();
                let layers = match m.layers {
                    None => all,
                    Some(n) => {
                        c.field("layers").at_least_one(n as u64)?;
                        c.field("layers").ensure(n <= all, || {
                            format!("'{}' has {all} MoE blocks, got {n}", card.name)
                        })?;
                        n
                    }
                };
                (
                    layers,
                    mc.n_experts as usize,
                    mc.top_k as usize,
                    mc.expert_bytes,
                    mc.expert_flops_per_token,
                    mc.hidden_bytes_per_token,
                    Some(dtype),
                )
            }
            MoeModelSpec::Table(t) => {
                let c = root.field("model").field("table");
                c.field("layers").at_least_one(t.layers as u64)?;
                c.field("experts").at_least_one(t.experts as u64)?;
                c.field("top_k")
                    .ensure(t.top_k >= 1 && t.top_k <= t.experts, || {
                        format!("must be in [1, experts = {}], got {}", t.experts, t.top_k)
                    })?;
                c.field("expert_bytes").positive(t.expert_bytes)?;
                c.field("expert_flops_per_token")
                    .positive(t.expert_flops_per_token)?;
                c.field("hidden_bytes_per_token")
                    .nonneg(t.hidden_bytes_per_token)?;
                (
                    t.layers,
                    t.experts,
                    t.top_k,
                    t.expert_bytes,
                    t.expert_flops_per_token,
                    t.hidden_bytes_per_token,
                    None,
                )
            }
        };
        // ---- servers
        let cs = root.field("servers");
        cs.non_empty(&self.servers)?;
        let mut names = BTreeMap::new();
        let mut servers = vec![];
        for (i, s) in self.servers.iter().enumerate() {
            let c = cs.index(i);
            c.field("name")
                .ensure(!s.name.trim().is_empty(), || "must not be empty".into())?;
            if names.insert(s.name.clone(), i).is_some() {
                return Err(c
                    .field("name")
                    .err(format!("duplicate server name '{}'", s.name)));
            }
            let hw = match &s.device {
                Some(d) => Some(
                    Hardware::from_catalog(catalog, d, s.runtime.as_deref())
                        .map_err(|e| e.at(c.field("device").path()))?,
                ),
                None => None,
            };
            let memory = match (s.memory_bytes, &hw) {
                (Some(m), _) => c.field("memory_bytes").nonneg(m)?,
                (None, Some(h)) => h.device.memory_bytes.value,
                (None, None) => {
                    return Err(c
                        .field("memory_bytes")
                        .err("required when no device is given"))
                }
            };
            let fl = match (s.compute_flops, &hw) {
                (Some(f), _) => c.field("compute_flops").positive(f)?,
                (None, Some(h)) => h.effective_flops(dtype.unwrap_or(DType::Fp16).compute()),
                (None, None) => {
                    return Err(c
                        .field("compute_flops")
                        .err("required when no device is given"))
                }
            };
            let slots = ((memory / (layers as f64 * expert_bytes)) + 1e-9).floor();
            servers.push(ServerP {
                name: s.name.clone(),
                flops: fl,
                memory_bytes: memory,
                slots: slots.min(experts as f64) as usize,
            });
        }
        let ns = servers.len();
        // ---- links
        let inf = f64::INFINITY;
        let mut comm = vec![vec![inf; ns]; ns];
        if let Some(d) = &self.default_link {
            let v = link_cost(
                &root.field("default_link"),
                d.bandwidth_bps,
                d.latency_s,
                hidden,
            )?;
            for row in comm.iter_mut() {
                row.iter_mut().for_each(|x| *x = v);
            }
        }
        for (i, l) in self.links.iter().enumerate() {
            let c = root.field("links").index(i);
            let a = name_index(&c.field("from"), &names, &l.from)?;
            let b = name_index(&c.field("to"), &names, &l.to)?;
            let v = link_cost(&c, l.bandwidth_bps, l.latency_s, hidden)?;
            comm[a][b] = v;
            if l.bidirectional {
                comm[b][a] = v;
            }
        }
        for (s, row) in comm.iter_mut().enumerate() {
            row[s] = 0.0;
        }
        // ---- groups
        let cg = root.field("groups");
        cg.non_empty(&self.groups)?;
        let mut gnames = BTreeMap::new();
        let mut groups = vec![];
        for (i, g) in self.groups.iter().enumerate() {
            let c = cg.index(i);
            c.field("name")
                .ensure(!g.name.trim().is_empty(), || "must not be empty".into())?;
            if gnames.insert(g.name.clone(), i).is_some() {
                return Err(c
                    .field("name")
                    .err(format!("duplicate group name '{}'", g.name)));
            }
            let home = name_index(&c.field("home"), &names, &g.home)?;
            c.field("tokens_per_s").positive(g.tokens_per_s)?;
            let access_s = match &g.access {
                Some(a) => {
                    link_cost(&c.field("access"), a.bandwidth_bps, a.latency_s, hidden)? / 2.0
                }
                None => 0.0,
            };
            groups.push(GroupP {
                name: g.name.clone(),
                home,
                rate: g.tokens_per_s,
                access_s,
            });
        }
        // ---- loads
        let loads = match &self.loads {
            LoadSpec::Table(t) => {
                let c = root.field("loads").field("table");
                c.len_eq(t, groups.len(), "one per group")?;
                for (g, tg) in t.iter().enumerate() {
                    c.index(g).len_eq(tg, layers, "one per MoE layer")?;
                    for (l, tl) in tg.iter().enumerate() {
                        let cl = c.index(g).index(l);
                        cl.len_eq(tl, experts, "one per expert")?;
                        for (e, &v) in tl.iter().enumerate() {
                            cl.index(e).in_range(v, 0.0, 1.0)?;
                        }
                    }
                }
                t.clone()
            }
            LoadSpec::Zipf(z) => {
                let c = root.field("loads").field("zipf");
                c.field("exponent").nonneg(z.exponent)?;
                c.field("shared").in_range(z.shared, 0.0, 1.0)?;
                zipf_loads(z, groups.len(), layers, experts, top_k)
            }
        };
        // ---- scalars
        root.field("max_utilization")
            .positive(self.max_utilization)?;
        root.field("max_utilization")
            .in_range(self.max_utilization, 0.0, 1.0)?;
        root.field("step_window_s").nonneg(self.step_window_s)?;
        root.field("migration_cost_per_byte")
            .nonneg(self.migration_cost_per_byte)?;
        root.field("load_slack").nonneg(self.load_slack)?;
        let current = match &self.current_placement {
            None => None,
            Some(cp) => {
                let c = root.field("current_placement");
                c.len_eq(cp, layers, "one per MoE layer")?;
                let mut out = vec![vec![vec![false; experts]; ns]; layers];
                for (l, cl) in cp.iter().enumerate() {
                    c.index(l).len_eq(cl, ns, "one per server")?;
                    for (s, list) in cl.iter().enumerate() {
                        for (k, &e) in list.iter().enumerate() {
                            c.index(l)
                                .index(s)
                                .index(k)
                                .ensure((e as usize) < experts, || {
                                    format!("expert {e} out of range (model has {experts})")
                                })?;
                            out[l][s][e as usize] = true;
                        }
                    }
                }
                Some(out)
            }
        };
        Ok(Prepared::new(
            self.objective,
            servers,
            groups,
            comm,
            layers,
            experts,
            top_k,
            expert_bytes,
            flops,
            hidden,
            &loads,
            self.replication_budget,
            self.max_utilization,
            self.step_window_s,
            current,
            self.migration_cost_per_byte,
            self.load_slack,
        ))
    }
}
