//! Measured per-layer profiles, used in place of the analytic roofline where a row exists.
//!
//! CSV columns (header required, `docs/cost-model.md` and `models/measured/example.csv`):
//! `model,device,runtime,dtype,phase,batch,seq_len,layer,time_s,energy_j,memory_bytes`.
//! `layer` is an index into [`layer_table`] (`0` = embedding) or a layer name (`block.3`, `head`);
//! `energy_j` and `memory_bytes` may be empty. For `phase = training`, `time_s` / `energy_j` cover
//! forward + backward and are split in the analytic ratio. Lookups are exact matches (model and device
//! names as in the catalog, case-insensitive; `seq_len` is the context length for decode rows).

use super::memory::{recipe_workload, trainable_params_per_layer, Recipe};
use super::roofline::{layer_time, Hardware, LayerTime};
use super::{layer_table, LayerCost, Phase, Workload};
use crate::catalog::LlmCard;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One measured row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRow {
    pub model: String,
    pub device: String,
    #[serde(default)]
    pub runtime: String,
    #[serde(default)]
    pub dtype: String,
    pub phase: Phase,
    pub batch: u64,
    pub seq_len: u64,
    pub layer: String,
    pub time_s: f64,
    #[serde(default)]
    pub energy_j: Option<f64>,
    #[serde(default)]
    pub memory_bytes: Option<f64>,
}

/// A table of measured rows.
#[derive(Debug, Clone, Default)]
pub struct MeasuredProfiles {
    pub rows: Vec<MeasuredRow>,
}

impl MeasuredProfiles {
    /// Reads a CSV file.
    pub fn from_csv_path(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let f = std::fs::File::open(p).map_err(|e| Error::io(p.display(), e))?;
        Self::from_reader(f).map_err(|e| e.at(&p.display().to_string()))
    }

    /// Reads CSV text from any reader.
    pub fn from_reader<R: std::io::Read>(r: R) -> Result<Self> {
        let mut rd = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(r);
        let mut rows = Vec::new();
        for (i, rec) in rd.deserialize::<MeasuredRow>().enumerate() {
            let row =
                rec.map_err(|e| Error::invalid(format!("$[{i}]"), format!("bad CSV row: {e}")))?;
            if !(row.time_s.is_finite() && row.time_s >= 0.0) {
                return Err(Error::invalid(
                    format!("$[{i}].time_s"),
                    "must be a finite number >= 0",
                ));
            }
            rows.push(row);
        }
        Ok(MeasuredProfiles { rows })
    }

    /// Exact-match lookup (`layer` compared with the stored string: an index or a name).
    pub fn lookup(
        &self,
        model: &str,
        device: &str,
        phase: Phase,
        batch: u64,
        seq_len: u64,
        layer: &str,
    ) -> Option<&MeasuredRow> {
        self.rows.iter().find(|r| {
            r.phase == phase
                && r.batch == batch
                && r.seq_len == seq_len
                && r.layer == layer
                && r.model.eq_ignore_ascii_case(model)
                && r.device.eq_ignore_ascii_case(device)
        })
    }

    /// Lookup of a layer by its index in the table or its name.
    pub fn lookup_layer(
        &self,
        model: &str,
        device: &str,
        w: &Workload,
        index: usize,
        layer: &LayerCost,
    ) -> Option<&MeasuredRow> {
        let seq = if w.phase == Phase::Decode {
            w.context_len
        } else {
            w.seq_len
        };
        self.lookup(model, device, w.phase, w.batch, seq, &index.to_string())
            .or_else(|| self.lookup(model, device, w.phase, w.batch, seq, &layer.name))
    }
}

/// Layer times from measured rows where present, analytic roofline otherwise (inference, or full
/// training of every layer).
pub fn layer_times(
    card: &LlmCard,
    hw: &Hardware,
    w: &Workload,
    measured: Option<&MeasuredProfiles>,
) -> Vec<LayerTime> {
    let recipe = if w.phase == Phase::Training {
        // Full training at the workload's dtype: every layer trainable.
        Recipe::Full {
            preset: super::OptimizerPreset::MixedAdam,
        }
    } else {
        Recipe::Inference
    };
    times(card, hw, w, &recipe, measured)
}

/// Layer times under a recipe (LoRA: weight gradients scaled by the trainable fraction, backward
/// stops below the lowest trainable layer).
pub fn layer_times_for(
    card: &LlmCard,
    hw: &Hardware,
    w: &Workload,
    recipe: &Recipe,
    measured: Option<&MeasuredProfiles>,
) -> Vec<LayerTime> {
    let w = recipe_workload(recipe, w);
    times(card, hw, &w, recipe, measured)
}

fn times(
    card: &LlmCard,
    hw: &Hardware,
    w: &Workload,
    recipe: &Recipe,
    measured: Option<&MeasuredProfiles>,
) -> Vec<LayerTime> {
    let table = layer_table(card, w);
    let trainable = trainable_params_per_layer(card, recipe);
    let first_trainable = trainable
        .iter()
        .position(|&t| t > 0.0)
        .unwrap_or(usize::MAX);
    table
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let frac = if l.params > 0.0 {
                (trainable[i] / l.params).min(1.0)
            } else {
                0.0
            };
            // Backward stops at the lowest trainable layer: layers below it (and frozen itself) skip it.
            let frozen = i < first_trainable;
            let analytic = layer_time(l, hw, w, frac, frozen);
            match measured.and_then(|m| m.lookup_layer(&card.name, &hw.device.name, w, i, l)) {
                None => analytic,
                Some(r) => {
                    let tot = analytic.total_s();
                    let fwd_share = if tot > 0.0 { analytic.fwd_s / tot } else { 1.0 };
                    let e = r.energy_j.unwrap_or_else(|| {
                        if tot > 0.0 {
                            analytic.total_j() * r.time_s / tot
                        } else {
                            0.0
                        }
                    });
                    LayerTime {
                        fwd_s: r.time_s * fwd_share,
                        bwd_s: r.time_s * (1.0 - fwd_share),
                        fwd_j: e * fwd_share,
                        bwd_j: e * (1.0 - fwd_share),
                    }
                }
            }
        })
        .collect()
}

/// A model on a device with optional measured rows.
#[derive(Debug, Clone)]
pub struct CostModel {
    pub card: std::sync::Arc<LlmCard>,
    pub hw: Hardware,
    pub measured: Option<MeasuredProfiles>,
}

impl CostModel {
    pub fn new(
        card: std::sync::Arc<LlmCard>,
        hw: Hardware,
        measured: Option<MeasuredProfiles>,
    ) -> Self {
        CostModel { card, hw, measured }
    }
    /// The layer table for `w`.
    pub fn layers(&self, w: &Workload) -> Vec<LayerCost> {
        layer_table(&self.card, w)
    }
    /// Per-layer times for `w` (see [`layer_times`]).
    pub fn layer_times(&self, w: &Workload) -> Vec<LayerTime> {
        layer_times(&self.card, &self.hw, w, self.measured.as_ref())
    }
    /// Per-layer times under a recipe (see [`layer_times_for`]).
    pub fn layer_times_for(&self, w: &Workload, recipe: &Recipe) -> Vec<LayerTime> {
        layer_times_for(&self.card, &self.hw, w, recipe, self.measured.as_ref())
    }
}
