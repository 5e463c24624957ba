//! The instance as written in JSON, its validation, and its resolution into a [`Prepared`] problem
//! (the per-layer [`PipelineProfile`], resolved nodes and the link-time tables).

use super::cost::{LinkTable, NodeP, PipelineProfile, Prepared, TypeProfile};
use crate::catalog::Catalog;
use crate::error::{close_matches, Result};
use crate::validate::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A pipeline-placement instance (the family fields of an instance file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineInstance {
    /// The model: an explicit per-layer profile table, or a catalog LLM costed by the cost model.
    pub model: ModelSpec,
    /// The workload (required for catalog models; for tables it selects training and the schedule).
    #[serde(default)]
    pub workload: Option<WorkloadSpec>,
    /// Compute nodes.
    pub nodes: Vec<NodeSpec>,
    /// Directed links (a link with `bidirectional: true` adds both directions).
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// A link between every ordered pair not listed in `links` (e.g. a uniform LAN).
    #[serde(default)]
    pub default_link: Option<LinkParams>,
    /// `direct` (only listed links; a missing link makes the hop infeasible) or `shortest_path`
    /// (store-and-forward over the fastest multi-hop route for the bytes being sent).
    #[serde(default)]
    pub routing: Routing,
    /// Node where the input lives; the input is sent from it to the first stage (free if the first
    /// stage runs on it). `None`: the input is already on whichever node runs the first stage.
    #[serde(default)]
    pub source: Option<String>,
    /// Node the final output must return to (U-shaped split: labels stay there). `None`: no return.
    #[serde(default)]
    pub sink: Option<String>,
    /// What to optimise.
    #[serde(default)]
    pub objective: Objective,
    /// Optional budget on energy per request / iteration, J (single-pipeline objectives).
    #[serde(default)]
    pub energy_budget_j: Option<f64>,
}

/// The model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelSpec {
    /// An explicit per-layer profile table (measured, e.g. PipeEdge's `models.yml` + `device_types.yml`).
    Table(ProfileTable),
    /// A catalog LLM: the per-layer table comes from the cost model (`cost::layer_table` + roofline).
    Catalog(CatalogModel),
}

/// A catalog model reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    /// LLM card name (`llama-2-70b`).
    pub name: String,
    /// Weight dtype: fp32, bf16, fp16, fp8, int8, int4 (default fp16).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Runtime profile name (efficiencies), optional.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Path of a measured per-layer CSV (`docs/cost-model.md`, "Measured profiles"): for every node
    /// type (device card), a layer with a matching row (model, device, phase, batch, seq_len) takes its
    /// time and energy from it instead of the roofline. A relative path resolves against the current
    /// directory of the process (not the instance file's folder). Read and validated with the
    /// instance: a missing or malformed file is an error at `$.model.catalog.measured`.
    #[serde(default)]
    pub measured: Option<String>,
}

/// An explicit per-layer profile: one row per layer, numbers per request (inference) or per
/// micro-batch (training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileTable {
    /// Optional layer names (default `layer{i}`).
    #[serde(default)]
    pub layer_names: Vec<String>,
    /// Static memory per layer, bytes (weights, plus gradients and optimizer state when training).
    pub weight_bytes: Vec<f64>,
    /// Bytes a layer's output occupies and sends downstream (per request / micro-batch).
    pub output_bytes: Vec<f64>,
    /// Bytes of the model input (sent from the source to the first stage).
    #[serde(default)]
    pub input_bytes: f64,
    /// Memory per in-flight micro-batch per layer (training activations), bytes; default 0.
    #[serde(default)]
    pub activation_bytes: Vec<f64>,
    /// Memory held once per layer (inference KV cache), bytes; default 0.
    #[serde(default)]
    pub kv_bytes: Vec<f64>,
    /// Extra copies of the input buffer held by every stage but the first (PipeEdge: 2).
    #[serde(default)]
    pub input_buffers: f64,
    /// Extra copies of the output buffer held by every stage (PipeEdge: 2). One processing copy of
    /// the input and of the output is always counted.
    #[serde(default)]
    pub output_buffers: f64,
    /// Per node type: time (and optionally energy) per layer.
    pub node_types: Vec<NodeTypeTable>,
}

/// Per-layer numbers of one node type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeTypeTable {
    /// Type name; nodes refer to it in `device`.
    pub name: String,
    /// Default usable memory of nodes of this type, bytes.
    #[serde(default)]
    pub memory_bytes: Option<f64>,
    /// Forward time per layer, s.
    pub time_s: Vec<f64>,
    /// Backward time per layer, s (training only; default 2 x forward when training).
    #[serde(default)]
    pub backward_time_s: Vec<f64>,
    /// Forward (+ backward when training) energy per layer, J (default: time x node power).
    #[serde(default)]
    pub energy_j: Vec<f64>,
}

/// The workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadSpec {
    /// One request: a prefill of `prompt_len` tokens then `gen_len` decode steps, batch `batch`.
    Inference(InferenceSpec),
    /// One training iteration of `micro_batches` micro-batches.
    Training(TrainingSpec),
}

/// Inference workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InferenceSpec {
    pub batch: u64,
    pub prompt_len: u64,
    #[serde(default)]
    pub gen_len: u64,
}

/// Training workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    pub micro_batch: u64,
    pub micro_batches: u64,
    pub seq_len: u64,
    /// `full` (mixed-precision Adam) or `lora`.
    #[serde(default)]
    pub recipe: RecipeSpec,
    #[serde(default)]
    pub schedule: Schedule,
}

/// Training recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RecipeSpec {
    /// Full fine-tuning with mixed-precision Adam.
    #[default]
    Full,
    /// LoRA of the given rank on the attention projections, frozen base weights.
    Lora { rank: u64 },
}

/// Pipeline schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// All forwards then all backwards: every stage holds `m` micro-batches of activations.
    #[default]
    Gpipe,
    /// One-forward-one-backward: stage `s` of `S` holds `min(m, S - s)` micro-batches.
    #[serde(rename = "1f1b")]
    OneFOneB,
}

/// Multi-hop routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    #[default]
    Direct,
    ShortestPath,
}

/// The objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Max over stages and links of the element time (1 / throughput), s. Minimise.
    #[default]
    Bottleneck,
    /// End-to-end time of one request (sum of all element times), s. Minimise.
    Latency,
    /// Training iteration: `sum + (m - 1) * max` over elements, s. Minimise.
    TrainingIteration,
    /// Energy per request / iteration, J. Minimise.
    Energy,
    /// Helix-style: total throughput of replicated pipelines as a flow, tokens/s. Maximise.
    ReplicatedThroughput,
}

/// A compute node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique node name.
    pub name: String,
    /// Catalog device (catalog models) or node-type name of the table (table models).
    pub device: String,
    /// Usable memory, bytes (default: the device card's or the node type's memory).
    #[serde(default)]
    pub memory_bytes: Option<f64>,
    /// Share of the node's compute available to us, in (0, 1]; 0 = unavailable. Times are divided by it.
    #[serde(default = "one")]
    pub availability: f64,
    /// Compute power while busy, W (default: device card's peak power; 0 for tables without it).
    #[serde(default)]
    pub power_w: Option<f64>,
    /// Transmit power while sending, W (transfer energy = power x transfer time).
    #[serde(default)]
    pub tx_power_w: f64,
}

fn one() -> f64 {
    1.0
}

/// Link parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkParams {
    /// Bandwidth, bits/s.
    pub bandwidth_bps: f64,
    /// Latency, s.
    #[serde(default)]
    pub latency_s: f64,
}

/// A directed link (or both directions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub from: String,
    pub to: String,
    /// Bandwidth, bits/s.
    pub bandwidth_bps: f64,
    /// Latency, s.
    #[serde(default)]
    pub latency_s: f64,
    /// Also add the reverse direction.
    #[serde(default)]
    pub bidirectional: bool,
}

fn node_index(c: &Check, names: &BTreeMap<String, usize>, name: &str) -> Result<usize> {
    names.get(name).copied().ok_or_else(|| {
        let s = close_matches(name, names.keys().map(|s| s.as_str()));
        c.err(if s.is_empty() {
            format!("unknown node '{name}'")
        } else {
            format!("unknown node '{name}'; did you mean: {}?", s.join(", "))
        })
    })
}

impl PipelineInstance {
    /// Checks every field and builds the prepared problem.
    pub fn prepare(&self, catalog: &Catalog) -> Result<Prepared> {
        let root = Check::root();
        let cn = root.field("nodes");
        cn.non_empty(&self.nodes)?;
        let mut names = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let c = cn.index(i);
            c.field("name")
                .ensure(!n.name.trim().is_empty(), || "must not be empty".into())?;
            if names.insert(n.name.clone(), i).is_some() {
                return Err(c
                    .field("name")
                    .err(format!("duplicate node name '{}'", n.name)));
            }
            if let Some(m) = n.memory_bytes {
                c.field("memory_bytes").nonneg(m)?;
            }
            c.field("availability").in_range(n.availability, 0.0, 1.0)?;
            if let Some(p) = n.power_w {
                c.field("power_w").nonneg(p)?;
            }
            c.field("tx_power_w").nonneg(n.tx_power_w)?;
        }
        if names.len() > 64 {
            return Err(cn.err("at most 64 nodes are supported"));
        }
        let source = match &self.source {
            Some(s) => Some(node_index(&root.field("source"), &names, s)?),
            None => None,
        };
        let sink = match &self.sink {
            Some(s) => Some(node_index(&root.field("sink"), &names, s)?),
            None => None,
        };
        if let Some(b) = self.energy_budget_j {
            root.field("energy_budget_j").nonneg(b)?;
            if self.objective == Objective::ReplicatedThroughput {
                return Err(root
                    .field("energy_budget_j")
                    .err("an energy budget applies to single-pipeline objectives only"));
            }
        }
        // Workload.
        let (micro_batches, schedule, training) = match &self.workload {
            Some(WorkloadSpec::Training(t)) => {
                let c = root.field("workload").field("training");
                c.field("micro_batch").at_least_one(t.micro_batch)?;
                c.field("micro_batches").at_least_one(t.micro_batches)?;
                c.field("seq_len").at_least_one(t.seq_len)?;
                if let RecipeSpec::Lora { rank } = t.recipe {
                    c.field("recipe").field("rank").at_least_one(rank)?;
                }
                (t.micro_batches, t.schedule, true)
            }
            Some(WorkloadSpec::Inference(w)) => {
                let c = root.field("workload").field("inference");
                c.field("batch").at_least_one(w.batch)?;
                c.field("prompt_len").at_least_one(w.prompt_len)?;
                (1, Schedule::Gpipe, false)
            }
            None => (1, Schedule::Gpipe, false),
        };
        if self.objective == Objective::TrainingIteration && !training {
            return Err(root
                .field("objective")
                .err("training_iteration needs a training workload ($.workload.training)"));
        }
        // Profile and node types.
        let (profile, node_type, default_mem, default_power, tokens_per_pass) = match &self.model {
            ModelSpec::Table(t) => {
                let p = table_profile(t, training, &root.field("model").field("table"))?;
                let mut tn = BTreeMap::new();
                for (i, ty) in t.node_types.iter().enumerate() {
                    tn.insert(ty.name.clone(), i);
                }
                let mut node_type = vec![];
                let mut mem = vec![];
                for (i, n) in self.nodes.iter().enumerate() {
                    let c = cn.index(i).field("device");
                    let ti = match tn.get(&n.device) {
                        Some(&ti) => ti,
                        None => {
                            let s = close_matches(&n.device, tn.keys().map(|s| s.as_str()));
                            return Err(c.err(format!(
                                "unknown node type '{}' (the table's node_types){}",
                                n.device,
                                if s.is_empty() {
                                    String::new()
                                } else {
                                    format!("; did you mean: {}?", s.join(", "))
                                }
                            )));
                        }
                    };
                    node_type.push(ti);
                    mem.push(t.node_types[ti].memory_bytes);
                }
                let tokens = match &self.workload {
                    Some(WorkloadSpec::Inference(w)) => {
                        (w.batch * (w.prompt_len + w.gen_len)) as f64
                    }
                    Some(WorkloadSpec::Training(w)) => (w.micro_batch * w.seq_len) as f64,
                    None => 1.0,
                };
                (p, node_type, mem, vec![None; self.nodes.len()], tokens)
            }
            ModelSpec::Catalog(m) => super::catalog_profile::build(self, m, catalog)?,
        };
        let mut nodes = vec![];
        for (i, n) in self.nodes.iter().enumerate() {
            let c = cn.index(i);
            let memory_bytes = match n.memory_bytes.or(default_mem[i]) {
                Some(m) => m,
                None => {
                    return Err(c
                        .field("memory_bytes")
                        .err("required (the node type has no default memory)"))
                }
            };
            nodes.push(NodeP {
                name: n.name.clone(),
                type_idx: node_type[i],
                memory_bytes,
                availability: n.availability,
                power_w: n.power_w.or(default_power[i]).unwrap_or(0.0),
                tx_power_w: n.tx_power_w,
            });
        }
        // Links.
        let nn = self.nodes.len();
        let mut bw = vec![vec![0.0f64; nn]; nn];
        let mut lat = vec![vec![f64::INFINITY; nn]; nn];
        if let Some(d) = &self.default_link {
            let c = root.field("default_link");
            c.field("bandwidth_bps").positive(d.bandwidth_bps)?;
            c.field("latency_s").nonneg(d.latency_s)?;
            for (u, row) in bw.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    if u != v {
                        *x = d.bandwidth_bps;
                        lat[u][v] = d.latency_s;
                    }
                }
            }
        }
        for (i, l) in self.links.iter().enumerate() {
            let c = root.field("links").index(i);
            let u = node_index(&c.field("from"), &names, &l.from)?;
            let v = node_index(&c.field("to"), &names, &l.to)?;
            c.field("to")
                .ensure(u != v, || "a link must join two different nodes".into())?;
            c.field("bandwidth_bps").positive(l.bandwidth_bps)?;
            c.field("latency_s").nonneg(l.latency_s)?;
            bw[u][v] = l.bandwidth_bps;
            lat[u][v] = l.latency_s;
            if l.bidirectional {
                bw[v][u] = l.bandwidth_bps;
                lat[v][u] = l.latency_s;
            }
        }
        let links = LinkTable::new(bw, lat, self.routing == Routing::ShortestPath);
        Ok(Prepared::new(
            profile,
            nodes,
            links,
            source,
            sink,
            self.objective,
            self.energy_budget_j,
            micro_batches as f64,
            schedule,
            training,
            tokens_per_pass,
        ))
    }
}

/// Validates a table and turns it into a profile.
fn table_profile(t: &ProfileTable, training: bool, c: &Check) -> Result<PipelineProfile> {
    let l = t.weight_bytes.len();
    c.field("weight_bytes").non_empty(&t.weight_bytes)?;
    c.field("weight_bytes").all_nonneg(&t.weight_bytes)?;
    c.field("output_bytes")
        .len_eq(&t.output_bytes, l, "one per layer")?;
    c.field("output_bytes").all_nonneg(&t.output_bytes)?;
    c.field("input_bytes").nonneg(t.input_bytes)?;
    c.field("input_buffers").nonneg(t.input_buffers)?;
    c.field("output_buffers").nonneg(t.output_buffers)?;
    let opt = |v: &Vec<f64>, name: &str| -> Result<Vec<f64>> {
        if v.is_empty() {
            Ok(vec![0.0; l])
        } else {
            c.field(name).len_eq(v, l, "one per layer")?;
            c.field(name).all_nonneg(v)?;
            Ok(v.clone())
        }
    };
    let activation_bytes = opt(&t.activation_bytes, "activation_bytes")?;
    let kv_bytes = opt(&t.kv_bytes, "kv_bytes")?;
    if !t.layer_names.is_empty() {
        c.field("layer_names")
            .len_eq(&t.layer_names, l, "one per layer")?;
    }
    let ct = c.field("node_types");
    ct.non_empty(&t.node_types)?;
    let mut types = vec![];
    let mut seen = BTreeMap::new();
    for (i, ty) in t.node_types.iter().enumerate() {
        let c = ct.index(i);
        if seen.insert(ty.name.clone(), i).is_some() {
            return Err(c
                .field("name")
                .err(format!("duplicate node type '{}'", ty.name)));
        }
        if let Some(m) = ty.memory_bytes {
            c.field("memory_bytes").nonneg(m)?;
        }
        c.field("time_s").len_eq(&ty.time_s, l, "one per layer")?;
        c.field("time_s").all_nonneg(&ty.time_s)?;
        let bwd = if ty.backward_time_s.is_empty() {
            if training {
                ty.time_s.iter().map(|x| 2.0 * x).collect()
            } else {
                vec![0.0; l]
            }
        } else {
            c.field("backward_time_s")
                .len_eq(&ty.backward_time_s, l, "one per layer")?;
            c.field("backward_time_s").all_nonneg(&ty.backward_time_s)?;
            if training {
                ty.backward_time_s.clone()
            } else {
                vec![0.0; l]
            }
        };
        let energy = if ty.energy_j.is_empty() {
            None
        } else {
            c.field("energy_j")
                .len_eq(&ty.energy_j, l, "one per layer")?;
            c.field("energy_j").all_nonneg(&ty.energy_j)?;
            Some(ty.energy_j.clone())
        };
        types.push(TypeProfile {
            name: ty.name.clone(),
            fwd_s: ty.time_s.clone(),
            bwd_s: bwd,
            energy_j: energy,
        });
    }
    Ok(PipelineProfile {
        layer_names: if t.layer_names.is_empty() {
            (0..l).map(|i| format!("layer{i}")).collect()
        } else {
            t.layer_names.clone()
        },
        weight_bytes: t.weight_bytes.clone(),
        activation_bytes,
        kv_bytes,
        output_bytes: t.output_bytes.clone(),
        input_bytes: t.input_bytes,
        input_buffers: t.input_buffers,
        output_buffers: t.output_buffers,
        types,
    })
}
