//! The instance as written in JSON and its validation into a [`Prepared`] problem.

use super::cost::{build, Prepared};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::validate::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A KV-cache-aware multi-user split-inference instance (the family fields of an instance file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvSplitInstance {
    /// The model (a catalog LLM, costed by the cost model).
    pub model: ModelRef,
    /// The users (end devices), each running one generation.
    pub users: Vec<UserSpec>,
    /// The edge servers.
    pub servers: Vec<ServerSpec>,
    /// KV-cache options a side may pick (default: full, none, int8, int4, window-2048).
    #[serde(default = "default_kv_options")]
    pub kv_options: Vec<KvOptionSpec>,
    /// What to optimise.
    #[serde(default)]
    pub objective: Objective,
    /// Context at which the per-token decode latency is costed (memory always uses the final context).
    #[serde(default)]
    pub latency_context: LatencyContext,
}

/// A catalog model reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// LLM card name (`llama-2-13b`).
    pub name: String,
    /// Weight dtype: fp32, bf16, fp16, fp8, int8, int4 (default fp16). The full KV cache is kept in the
    /// activation dtype (`DType::default_kv`).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Use only the first `blocks` transformer blocks (tiny test instances, what-if studies;
    /// decoder-only models).
    #[serde(default)]
    pub blocks: Option<u32>,
}

/// One user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Name (default `user{i}`).
    #[serde(default)]
    pub name: Option<String>,
    /// Device card name (`snapdragon-8-gen-3`).
    pub device: String,
    /// Usable memory for this app, bytes (default: the card's memory).
    #[serde(default)]
    pub memory_bytes: Option<f64>,
    /// Share of the device's compute and bandwidth this app gets, in (0, 1] (default 1).
    #[serde(default = "one")]
    pub compute_share: f64,
    /// Prompt tokens.
    pub prompt_len: u64,
    /// Generated tokens.
    pub gen_len: u64,
    /// Uplink rate, bit/s.
    pub uplink_bps: f64,
    /// Downlink rate, bit/s.
    pub downlink_bps: f64,
    /// One-way radio + backhaul latency per message, s (default 0).
    #[serde(default)]
    pub link_latency_s: f64,
    /// Per-token latency target, s (a hard constraint under latency objectives; the admission test
    /// under `admitted`).
    #[serde(default)]
    pub latency_target_s: Option<f64>,
    /// Weight in the mean and admission objectives (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Largest accepted accuracy cost (sum over the two sides' KV options; default unlimited).
    #[serde(default)]
    pub max_accuracy_cost: Option<f64>,
    /// Fixed association (server name); `None` = decided by the solver.
    #[serde(default)]
    pub server: Option<String>,
}

/// One edge server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub name: String,
    /// Device card name (`l4`, `jetson-agx-orin-64gb`).
    pub device: String,
    /// Usable memory, bytes (default: the card's memory).
    #[serde(default)]
    pub memory_bytes: Option<f64>,
    /// Share of the card's compute and bandwidth given to this model, in (0, 1] (default 1).
    #[serde(default = "one")]
    pub compute_share: f64,
}

/// A KV-cache option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvOptionSpec {
    /// Name used in solutions (`full`, `int8`, ...).
    pub name: String,
    pub kind: KvKind,
    /// Accuracy cost of using this option on one side (e.g. perplexity increase; user units), >= 0.
    #[serde(default)]
    pub accuracy_cost: f64,
}

/// What a KV option does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KvKind {
    /// Cache every token's K and V in the model's KV dtype.
    Full,
    /// No cache: the side recomputes every step (the server side needs all hidden states resent).
    None,
    /// Quantized cache, 8 or 4 bits.
    Quantized { bits: u32 },
    /// Keep only the last `tokens` tokens (StreamingLLM-style window).
    Window { tokens: u64 },
}

/// Objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Weighted mean per-token latency, minimise (every user served, targets hard).
    #[default]
    MeanLatency,
    /// Maximum per-token latency, minimise (every user served, targets hard).
    MaxLatency,
    /// Weighted number of admitted users meeting their targets, maximise (rejected users use nothing).
    Admitted,
}

/// Context length used for the per-token latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LatencyContext {
    /// `prompt_len + gen_len / 2` (the mean over the generation).
    #[default]
    Mean,
    /// `prompt_len + gen_len` (the last token, worst case).
    Final,
}

fn one() -> f64 {
    1.0
}

/// The default KV options. Accuracy costs are indicative perplexity increases: 8-bit KV is reported
/// near-lossless and 4-bit costs ≈0.1 ppl (KIVI, KVQuant); a 2048-token window loses long-range recall
/// (StreamingLLM) and is given a larger cost. Override them per instance.
pub fn default_kv_options() -> Vec<KvOptionSpec> {
    vec![
        KvOptionSpec {
            name: "full".into(),
            kind: KvKind::Full,
            accuracy_cost: 0.0,
        },
        KvOptionSpec {
            name: "none".into(),
            kind: KvKind::None,
            accuracy_cost: 0.0,
        },
        KvOptionSpec {
            name: "int8".into(),
            kind: KvKind::Quantized { bits: 8 },
            accuracy_cost: 0.01,
        },
        KvOptionSpec {
            name: "int4".into(),
            kind: KvKind::Quantized { bits: 4 },
            accuracy_cost: 0.1,
        },
        KvOptionSpec {
            name: "window-2048".into(),
            kind: KvKind::Window { tokens: 2048 },
            accuracy_cost: 0.5,
        },
    ]
}

impl KvSplitInstance {
    /// Validates every field (JSON paths in errors) and builds the cost tables.
    pub fn prepare(&self, catalog: &Catalog) -> Result<Prepared> {
        let root = Check::root();
        root.field("users").non_empty(&self.users)?;
        root.field("servers").non_empty(&self.servers)?;
        root.field("kv_options").non_empty(&self.kv_options)?;
        for (i, o) in self.kv_options.iter().enumerate() {
            let c = root.field("kv_options").index(i);
            c.field("accuracy_cost").nonneg(o.accuracy_cost)?;
            c.field("name")
                .ensure(!o.name.is_empty(), || "must not be empty".into())?;
            c.field("name").ensure(
                self.kv_options[..i].iter().all(|p| p.name != o.name),
                || format!("duplicate option name '{}'", o.name),
            )?;
            match o.kind {
                KvKind::Quantized { bits } => c
                    .field("kind")
                    .field("quantized")
                    .field("bits")
                    .ensure(bits == 8 || bits == 4, || {
                        format!("must be 8 or 4, got {bits}")
                    })?,
                KvKind::Window { tokens } => c
                    .field("kind")
                    .field("window")
                    .field("tokens")
                    .at_least_one(tokens)
                    .map(|_| ())?,
                _ => {}
            }
        }
        for (i, s) in self.servers.iter().enumerate() {
            let c = root.field("servers").index(i);
            c.field("name")
                .ensure(!s.name.is_empty(), || "must not be empty".into())?;
            c.field("name")
                .ensure(self.servers[..i].iter().all(|p| p.name != s.name), || {
                    format!("duplicate server name '{}'", s.name)
                })?;
            if let Some(m) = s.memory_bytes {
                c.field("memory_bytes").positive(m)?;
            }
            c.field("compute_share")
                .positive(s.compute_share)
                .and_then(|x| c.field("compute_share").in_range(x, 0.0, 1.0))?;
        }
        for (i, u) in self.users.iter().enumerate() {
            let c = root.field("users").index(i);
            if let Some(m) = u.memory_bytes {
                c.field("memory_bytes").positive(m)?;
            }
            c.field("compute_share")
                .positive(u.compute_share)
                .and_then(|x| c.field("compute_share").in_range(x, 0.0, 1.0))?;
            c.field("prompt_len").at_least_one(u.prompt_len)?;
            c.field("uplink_bps").positive(u.uplink_bps)?;
            c.field("downlink_bps").positive(u.downlink_bps)?;
            c.field("link_latency_s").nonneg(u.link_latency_s)?;
            c.field("weight").positive(u.weight)?;
            if let Some(t) = u.latency_target_s {
                c.field("latency_target_s").positive(t)?;
            }
            if let Some(a) = u.max_accuracy_cost {
                c.field("max_accuracy_cost").nonneg(a)?;
            }
            if let Some(s) = &u.server {
                c.field("server")
                    .ensure(self.servers.iter().any(|x| &x.name == s), || {
                        let names: Vec<&str> =
                            self.servers.iter().map(|x| x.name.as_str()).collect();
                        format!("unknown server '{s}'; servers: {}", names.join(", "))
                    })?;
            }
        }
        if self.objective == Objective::Admitted {
            for (i, u) in self.users.iter().enumerate() {
                root.field("users")
                    .index(i)
                    .field("latency_target_s")
                    .ensure(u.latency_target_s.is_some(), || {
                        "the admitted objective needs a latency target for every user".into()
                    })?;
            }
        }
        build(self, catalog)
    }
}
