//! The library behind `edgeplan profile`: one model (optionally on a device) → parameters, memory,
//! per-layer costs and, with a device, prefill / decode / training speed and energy.

use super::measured::{layer_times_sourced_for, MeasuredProfiles, TimeSource};
use super::memory::{
    memory, recipe_workload, trainable_params, trainable_params_per_layer, MemoryBreakdown, Recipe,
};
use super::roofline::{Hardware, LayerTime};
use super::{
    kv_bytes_per_token, layer_table, param_count, DType, LayerCost, ParamCount, Recompute, Workload,
};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

fn d_fp16() -> DType {
    DType::Fp16
}
fn d_one() -> u64 {
    1
}
fn d_seq() -> u64 {
    512
}
fn d_gen() -> u64 {
    128
}
fn d_true() -> bool {
    true
}

/// What to profile. Defaults: fp16 weights, KV in the weights' activation dtype, batch 1, a 512-token
/// prompt (llama-bench `pp512`), 128 generated tokens (`tg128`), inference, FlashAttention on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    /// Catalog model name or alias.
    pub model: String,
    /// Catalog device name or alias; without one only device-independent figures are reported.
    #[serde(default)]
    pub device: Option<String>,
    /// Runtime profile (default per device class, see `cost::roofline`).
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default = "d_fp16")]
    pub dtype: DType,
    #[serde(default)]
    pub kv_dtype: Option<DType>,
    #[serde(default = "d_one")]
    pub batch: u64,
    /// Prompt length (training: sequence length).
    #[serde(default = "d_seq")]
    pub seq_len: u64,
    /// Tokens generated after the prompt (decode report; KV memory is sized for `seq_len + gen_tokens`).
    #[serde(default = "d_gen")]
    pub gen_tokens: u64,
    #[serde(default)]
    pub recipe: Recipe,
    #[serde(default = "d_true")]
    pub flash_attention: bool,
    #[serde(default)]
    pub recompute: Recompute,
    /// Path of a measured per-layer CSV (`docs/cost-model.md`, "Measured profiles"); a layer with a
    /// matching row takes its time (and energy) from it instead of the roofline. Needs a device.
    /// Relative paths resolve against the current directory.
    #[serde(default)]
    pub measured: Option<String>,
}

impl ProfileRequest {
    /// A request with the defaults for `model`.
    pub fn new(model: impl Into<String>) -> Self {
        ProfileRequest {
            model: model.into(),
            device: None,
            runtime: None,
            dtype: DType::Fp16,
            kv_dtype: None,
            batch: 1,
            seq_len: 512,
            gen_tokens: 128,
            recipe: Recipe::Inference,
            flash_attention: true,
            recompute: Recompute::None,
            measured: None,
        }
    }
}

/// Time and energy of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseReport {
    /// Tokens processed (prefill: batch × seq_len; decode: batch × gen_tokens; training: one micro-batch).
    pub tokens: f64,
    pub seconds: f64,
    pub tokens_per_s: f64,
    pub joules: f64,
    pub joules_per_token: f64,
}

impl PhaseReport {
    fn new(tokens: f64, seconds: f64, joules: f64) -> Self {
        PhaseReport {
            tokens,
            seconds,
            tokens_per_s: if seconds > 0.0 {
                tokens / seconds
            } else {
                f64::INFINITY
            },
            joules,
            joules_per_token: if tokens > 0.0 { joules / tokens } else { 0.0 },
        }
    }
}

/// One row of the layer table with its trainable parameters and (with a device) its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProfileLayer {
    #[serde(flatten)]
    pub cost: LayerCost,
    pub trainable_params: f64,
    /// Time of the main pass (prefill for inference, one training micro-batch otherwise).
    #[serde(default)]
    pub time: Option<LayerTime>,
    /// Where `time` came from: `measured` (a row of the request's measured table) or `analytic`.
    #[serde(default)]
    pub time_source: Option<TimeSource>,
    /// Time of one decode step at the mean context (inference only).
    #[serde(default)]
    pub decode_time: Option<LayerTime>,
    /// Where `decode_time` came from.
    #[serde(default)]
    pub decode_time_source: Option<TimeSource>,
}

/// Everything `edgeplan profile` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProfileReport {
    pub model: String,
    pub device: Option<String>,
    pub runtime: Option<String>,
    pub request: ProfileRequest,
    /// Total parameters.
    pub params: f64,
    /// Parameters used per token (MoE).
    pub active_params: f64,
    pub param_count: ParamCount,
    /// Stored weights in the request dtype.
    pub weight_bytes: f64,
    /// KV cache per token per sequence in the KV dtype.
    pub kv_bytes_per_token: f64,
    pub trainable_params: f64,
    pub memory: MemoryBreakdown,
    /// Whether `memory.total_bytes` fits the device memory.
    pub fits_in_memory: Option<bool>,
    pub layers: Vec<ProfileLayer>,
    /// Layers whose main-pass `time` came from the measured table (0 without one).
    #[serde(default)]
    pub measured_layers: usize,
    /// Layers whose `decode_time` came from the measured table.
    #[serde(default)]
    pub measured_decode_layers: usize,
    pub prefill: Option<PhaseReport>,
    pub decode: Option<PhaseReport>,
    pub training: Option<PhaseReport>,
}

fn sum_times(ts: &[LayerTime]) -> (f64, f64) {
    ts.iter()
        .fold((0.0, 0.0), |(s, j), t| (s + t.total_s(), j + t.total_j()))
}

fn count_measured(s: impl Iterator<Item = Option<TimeSource>>) -> usize {
    s.filter(|x| *x == Some(TimeSource::Measured)).count()
}

/// Profiles one model (and device).
pub fn profile(cat: &Catalog, req: &ProfileRequest) -> Result<ProfileReport> {
    if req.batch == 0 {
        return Err(Error::invalid("$.batch", "must be >= 1"));
    }
    if req.seq_len == 0 {
        return Err(Error::invalid("$.seq_len", "must be >= 1"));
    }
    if let Recipe::Lora { rank, targets, .. } = &req.recipe {
        if *rank == 0 {
            return Err(Error::invalid("$.recipe.rank", "must be >= 1"));
        }
        if targets.is_empty() {
            return Err(Error::invalid(
                "$.recipe.targets",
                "must name at least one target",
            ));
        }
    }
    let card = cat.llm(&req.model).map_err(|e| e.at("$.model"))?;
    let hw = match &req.device {
        Some(d) => Some(
            Hardware::from_catalog(cat, d, req.runtime.as_deref()).map_err(|e| e.at("$.device"))?,
        ),
        None => None,
    };
    let measured = match &req.measured {
        None => None,
        Some(_) if hw.is_none() => {
            return Err(Error::invalid(
                "$.measured",
                "a measured table replaces layer times, which need a device ($.device)",
            ))
        }
        Some(p) => Some(MeasuredProfiles::load(p).map_err(|e| e.at("$.measured"))?),
    };
    let measured = measured.as_ref();
    let kv_dtype = req.kv_dtype.unwrap_or(req.dtype.default_kv());
    let mut base = Workload::prefill(req.batch, req.seq_len, req.dtype);
    base.kv_dtype = kv_dtype;
    base.flash_attention = req.flash_attention;
    base.recompute = req.recompute;
    let main_w = recipe_workload(&req.recipe, &base);
    let table = layer_table(&card, &main_w);
    let trainable = trainable_params_per_layer(&card, &req.recipe);
    let pc = param_count(&card);

    let mut mem_w = base.clone();
    mem_w.context_len = req.seq_len + req.gen_tokens;
    let mem = memory(&card, &req.recipe, &mem_w);

    let mut layers: Vec<ProfileLayer> = table
        .iter()
        .zip(&trainable)
        .map(|(c, &t)| ProfileLayer {
            cost: c.clone(),
            trainable_params: t,
            time: None,
            time_source: None,
            decode_time: None,
            decode_time_source: None,
        })
        .collect();
    let (mut prefill, mut decode, mut training) = (None, None, None);
    if let Some(hw) = &hw {
        let main_st = layer_times_sourced_for(&card, hw, &main_w, &req.recipe, measured);
        for (l, (t, src)) in layers.iter_mut().zip(&main_st) {
            l.time = Some(*t);
            l.time_source = Some(*src);
        }
        let main_t: Vec<LayerTime> = main_st.iter().map(|(t, _)| *t).collect();
        let (s, j) = sum_times(&main_t);
        if req.recipe.trains() {
            training = Some(PhaseReport::new(main_w.tokens(), s, j));
        } else {
            prefill = Some(PhaseReport::new(main_w.tokens(), s, j));
            if req.gen_tokens > 0 {
                let mut dw = Workload::decode(
                    req.batch,
                    req.seq_len + req.gen_tokens.div_ceil(2),
                    req.dtype,
                );
                dw.kv_dtype = kv_dtype;
                dw.flash_attention = req.flash_attention;
                let dst = layer_times_sourced_for(&card, hw, &dw, &Recipe::Inference, measured);
                for (l, (t, src)) in layers.iter_mut().zip(&dst) {
                    l.decode_time = Some(*t);
                    l.decode_time_source = Some(*src);
                }
                let dt: Vec<LayerTime> = dst.iter().map(|(t, _)| *t).collect();
                let (s1, j1) = sum_times(&dt);
                let n = req.gen_tokens as f64;
                decode = Some(PhaseReport::new(req.batch as f64 * n, s1 * n, j1 * n));
            }
        }
    }
    Ok(ProfileReport {
        model: card.name.clone(),
        device: hw.as_ref().map(|h| h.device.name.clone()),
        runtime: hw.as_ref().map(|h| h.runtime.name.clone()),
        request: req.clone(),
        params: pc.total,
        active_params: pc.active,
        weight_bytes: table.iter().map(|l| l.weight_bytes).sum(),
        kv_bytes_per_token: kv_bytes_per_token(&card, kv_dtype),
        trainable_params: trainable_params(&card, &req.recipe),
        memory: mem,
        fits_in_memory: hw
            .as_ref()
            .map(|h| mem.total_bytes <= h.device.memory_bytes.value),
        param_count: pc,
        measured_layers: count_measured(layers.iter().map(|l| l.time_source)),
        measured_decode_layers: count_measured(layers.iter().map(|l| l.decode_time_source)),
        layers,
        prefill,
        decode,
        training,
    })
}

fn si(x: f64) -> String {
    let a = x.abs();
    if a >= 1e12 {
        format!("{:.2}T", x / 1e12)
    } else if a >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Human-readable summary and layer table for the CLI.
pub fn render_table(r: &ProfileReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "model {}{}",
        r.model,
        match (&r.device, &r.runtime) {
            (Some(d), Some(rt)) => format!(" on {d} ({rt})"),
            _ => String::new(),
        }
    );
    let _ = writeln!(
        s,
        "params {} (active {}), weights {}B, KV {}B/token, trainable {}",
        si(r.params),
        si(r.active_params),
        si(r.weight_bytes),
        si(r.kv_bytes_per_token),
        si(r.trainable_params)
    );
    let m = &r.memory;
    let _ = writeln!(
        s,
        "memory {}B = weights {}B + grads {}B + optimizer {}B + activations {}B + KV {}B{}",
        si(m.total_bytes),
        si(m.weights_bytes),
        si(m.gradient_bytes),
        si(m.optimizer_bytes),
        si(m.activation_bytes),
        si(m.kv_cache_bytes),
        match r.fits_in_memory {
            Some(true) => " (fits)",
            Some(false) => " (DOES NOT FIT)",
            None => "",
        }
    );
    for (name, p) in [
        ("prefill", &r.prefill),
        ("decode", &r.decode),
        ("training step", &r.training),
    ] {
        if let Some(p) = p {
            let _ = writeln!(
                s,
                "{name}: {:.4} s, {:.1} tok/s, {:.3} J/token",
                p.seconds, p.tokens_per_s, p.joules_per_token
            );
        }
    }
    if let Some(p) = &r.request.measured {
        let _ = writeln!(
            s,
            "measured ({p}): {} of {} layer times{} (* = measured)",
            r.measured_layers,
            r.layers.len(),
            if r.decode.is_some() {
                format!(", {} decode", r.measured_decode_layers)
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(
        s,
        "{:<12} {:>9} {:>10} {:>10} {:>11} {:>10} {:>10}",
        "layer", "params", "fwd FLOP", "fwd bytes", "out B/tok", "KV B/tok", "time ms"
    );
    for l in &r.layers {
        let c = &l.cost;
        let mark = if l.time_source == Some(TimeSource::Measured) {
            "*"
        } else {
            ""
        };
        let t = l.time.map_or("-".to_string(), |t| {
            format!("{:.3}{mark}", t.total_s() * 1e3)
        });
        let _ = writeln!(
            s,
            "{:<12} {:>9} {:>10} {:>10} {:>11} {:>10} {:>10}",
            c.name,
            si(c.params),
            si(c.fwd_flops),
            si(c.fwd_bytes),
            si(c.out_bytes_per_token),
            si(c.kv_bytes_per_token),
            t
        );
    }
    s
}
