//! The per-layer profile of a catalog LLM, from the cost model (`crate::cost`): one row per entry of
//! `cost::layer_table` (embedding, blocks, head), one node type per distinct device card.
//!
//! - inference: a request = prefill of `prompt_len` tokens + `gen_len` decode steps (each costed at the
//!   mean context `prompt_len + gen_len / 2`); times, energies and output bytes are summed over the
//!   passes; static memory = weights; KV cache for `prompt_len + gen_len` tokens; activation memory =
//!   the prefill working set (`infer_act_bytes`, one in flight);
//! - training: per micro-batch; recipe `full` = mixed-precision Adam, `lora` = rank `r` on Q, K, V, O
//!   with bf16 base weights; static memory = weights + gradients + optimizer state
//!   (`cost::memory::layer_memory`), activation memory per in-flight micro-batch = `train_act_bytes`.
//!
//! Input bytes: token ids, 4 bytes per token.
//!
//! `model.catalog.measured` (a CSV, `cost::measured`) replaces the roofline time / energy of every
//! layer with a matching row, on every node type: prefill rows at (`batch`, `prompt_len`), decode rows
//! at (`batch`, context `prompt_len + gen_len / 2`, integer division), training rows at
//! (`micro_batch`, `seq_len`), forward + backward split in the analytic ratio.

use super::cost::{PipelineProfile, TypeProfile};
use super::instance::{CatalogModel, PipelineInstance, RecipeSpec, WorkloadSpec};
use crate::catalog::Catalog;
use crate::cost::measured::{layer_times_for, MeasuredProfiles};
use crate::cost::memory::{
    layer_memory, recipe_workload, trainable_params_per_layer, LoraTarget, OptimizerPreset, Recipe,
};
use crate::cost::roofline::Hardware;
use crate::cost::{layer_table, DType, Workload};
use crate::error::{Error, Result};
use crate::validate::Check;
use std::collections::BTreeMap;

/// Profile, per-node type index, default memory, default power, tokens per pass.
pub type Built = (
    PipelineProfile,
    Vec<usize>,
    Vec<Option<f64>>,
    Vec<Option<f64>>,
    f64,
);

/// Builds the profile of a catalog model for the instance's nodes and workload.
pub fn build(inst: &PipelineInstance, m: &CatalogModel, catalog: &Catalog) -> Result<Built> {
    let c = Check::root().field("model").field("catalog");
    let card = catalog
        .llm(&m.name)
        .map_err(|e| e.at(c.field("name").path()))?;
    let dtype: DType = match &m.dtype {
        None => DType::Fp16,
        Some(s) => serde_json::from_value(serde_json::Value::String(s.clone())).map_err(|_| {
            c.field("dtype").err(format!(
                "unknown dtype '{s}' (fp32, bf16, fp16, fp8, int8, int4)"
            ))
        })?,
    };
    let measured = match &m.measured {
        None => None,
        Some(p) => Some(MeasuredProfiles::load(p).map_err(|e| e.at(c.field("measured").path()))?),
    };
    let measured = measured.as_ref();
    let workload = inst.workload.as_ref().ok_or_else(|| {
        Error::invalid(
            "$.workload",
            "a catalog model needs a workload (inference or training)",
        )
    })?;
    // node types = distinct device cards
    let mut type_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut hws: Vec<Hardware> = vec![];
    let mut node_type = vec![];
    let mut mem = vec![];
    let mut power = vec![];
    for (i, n) in inst.nodes.iter().enumerate() {
        let path = format!("$.nodes[{i}].device");
        let hw = Hardware::from_catalog(catalog, &n.device, m.runtime.as_deref())
            .map_err(|e| e.at(&path))?;
        let key = hw.device.name.clone();
        let t = *type_of.entry(key).or_insert_with(|| {
            hws.push(hw.clone());
            hws.len() - 1
        });
        node_type.push(t);
        mem.push(Some(hw.device.memory_bytes.value));
        power.push(Some(hw.device.peak_power_w.value));
    }
    let (profile, tokens) = match workload {
        WorkloadSpec::Inference(w) => {
            let wp = Workload::prefill(w.batch, w.prompt_len, dtype);
            let table = layer_table(&card, &wp);
            let total_ctx = w.prompt_len + w.gen_len;
            let wd = Workload::decode(w.batch, w.prompt_len + w.gen_len / 2, dtype);
            let table_d = layer_table(&card, &wd);
            let wkv = Workload::decode(w.batch, total_ctx, dtype);
            let g = w.gen_len as f64;
            let mut weight = vec![];
            let mut kv = vec![];
            let mut act = vec![];
            let mut out = vec![];
            for (l, lc) in table.iter().enumerate() {
                let mb = layer_memory(lc, 0.0, &Recipe::Inference, &wkv);
                weight.push(mb.weights_bytes);
                kv.push(mb.kv_cache_bytes);
                act.push(lc.infer_act_bytes);
                out.push(lc.out_bytes + g * table_d.get(l).map_or(0.0, |d| d.out_bytes));
            }
            let types = hws
                .iter()
                .map(|hw| {
                    let tp = layer_times_for(&card, hw, &wp, &Recipe::Inference, measured);
                    let td = if w.gen_len > 0 {
                        layer_times_for(&card, hw, &wd, &Recipe::Inference, measured)
                    } else {
                        vec![]
                    };
                    let at = |v: &Vec<crate::cost::roofline::LayerTime>, l: usize| {
                        v.get(l).copied().unwrap_or_default()
                    };
                    TypeProfile {
                        name: hw.device.name.clone(),
                        fwd_s: (0..table.len())
                            .map(|l| at(&tp, l).fwd_s + g * at(&td, l).fwd_s)
                            .collect(),
                        bwd_s: vec![0.0; table.len()],
                        energy_j: Some(
                            (0..table.len())
                                .map(|l| at(&tp, l).fwd_j + g * at(&td, l).fwd_j)
                                .collect(),
                        ),
                    }
                })
                .collect();
            let names = table.iter().map(|x| x.name.clone()).collect();
            (
                PipelineProfile {
                    layer_names: names,
                    weight_bytes: weight,
                    activation_bytes: act,
                    kv_bytes: kv,
                    output_bytes: out,
                    input_bytes: (w.batch * w.prompt_len) as f64 * 4.0,
                    input_buffers: 0.0,
                    output_buffers: 0.0,
                    types,
                },
                (w.batch * total_ctx) as f64,
            )
        }
        WorkloadSpec::Training(t) => {
            let recipe = match t.recipe {
                RecipeSpec::Full => Recipe::Full {
                    preset: OptimizerPreset::MixedAdam,
                },
                RecipeSpec::Lora { rank } => Recipe::Lora {
                    rank,
                    targets: vec![LoraTarget::Q, LoraTarget::K, LoraTarget::V, LoraTarget::O],
                    base_dtype: DType::Bf16,
                },
            };
            let w = Workload::training(t.micro_batch, t.seq_len, dtype);
            let wr = recipe_workload(&recipe, &w);
            let table = layer_table(&card, &wr);
            let trainable = trainable_params_per_layer(&card, &recipe);
            let mut weight = vec![];
            let mut act = vec![];
            let mut out = vec![];
            for (l, lc) in table.iter().enumerate() {
                let mb = layer_memory(lc, trainable.get(l).copied().unwrap_or(0.0), &recipe, &wr);
                weight.push(mb.weights_bytes + mb.gradient_bytes + mb.optimizer_bytes);
                act.push(mb.activation_bytes);
                out.push(lc.out_bytes);
            }
            let types = hws
                .iter()
                .map(|hw| {
                    let tt = layer_times_for(&card, hw, &w, &recipe, measured);
                    TypeProfile {
                        name: hw.device.name.clone(),
                        fwd_s: tt.iter().map(|x| x.fwd_s).collect(),
                        bwd_s: tt.iter().map(|x| x.bwd_s).collect(),
                        energy_j: Some(tt.iter().map(|x| x.fwd_j + x.bwd_j).collect()),
                    }
                })
                .collect();
            let names = table.iter().map(|x| x.name.clone()).collect();
            (
                PipelineProfile {
                    layer_names: names,
                    weight_bytes: weight,
                    activation_bytes: act,
                    kv_bytes: vec![0.0; table.len()],
                    output_bytes: out,
                    input_bytes: (t.micro_batch * t.seq_len) as f64 * 4.0,
                    input_buffers: 0.0,
                    output_buffers: 0.0,
                    types,
                },
                (t.micro_batch * t.seq_len) as f64,
            )
        }
    };
    // sanity: every table has one entry per layer
    let l = profile.num_layers();
    if l == 0
        || profile
            .types
            .iter()
            .any(|t| t.fwd_s.len() != l || t.bwd_s.len() != l)
    {
        return Err(Error::Solver(format!(
            "cost model returned an inconsistent layer table for {}",
            m.name
        )));
    }
    for (ti, t) in profile.types.iter().enumerate() {
        if t.fwd_s
            .iter()
            .chain(&t.bwd_s)
            .any(|x| !x.is_finite() || *x < 0.0)
        {
            return Err(Error::Solver(format!(
                "cost model returned a non-finite time for {} on {}",
                m.name, profile.types[ti].name
            )));
        }
    }
    Ok((profile, node_type, mem, power, tokens))
}
