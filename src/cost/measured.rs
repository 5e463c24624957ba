//! Measured per-layer profiles, used in place of the analytic roofline where a row exists.
//!
//! CSV columns (header required, `docs/cost-model.md` and `models/measured/example.csv`):
//! `model,device,runtime,dtype,phase,batch,seq_len,layer,time_s,energy_j,memory_bytes`.
//! `layer` is an index into [`layer_table`] (`0` = embedding) or a layer name (`block.3`, `head`);
//! `energy_j` and `memory_bytes` may be empty. For `phase = training`, `time_s` / `energy_j` cover
//! forward + backward and are split in the analytic ratio. Lookups are exact matches (model and device
//! names as in the catalog, case-insensitive; `seq_len` is the context length for decode rows).
//! Every row is validated on reading (known columns and phase, `batch`/`seq_len` >= 1, finite
//! non-negative `time_s`/`energy_j`/`memory_bytes`, no duplicate keys); errors name the CSV line.

use super::memory::{recipe_workload, trainable_params_per_layer, Recipe};
use super::roofline::{layer_time, Hardware, LayerTime};
use super::{layer_table, LayerCost, Phase, Workload};
use crate::catalog::LlmCard;
use crate::error::{Error, Result};
use schemars::JsonSchema;
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

/// Where a layer's time (and energy) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// A row of the measured table.
    Measured,
    /// The analytic roofline.
    Analytic,
}

/// The CSV columns, in the documented order; the first seven are required.
pub const COLUMNS: [&str; 11] = [
    "model",
    "device",
    "phase",
    "batch",
    "seq_len",
    "layer",
    "time_s",
    "runtime",
    "dtype",
    "energy_j",
    "memory_bytes",
];
const REQUIRED: usize = 7;
const PHASES: [&str; 3] = ["prefill", "decode", "training"];

/// A table of measured rows.
#[derive(Debug, Clone, Default)]
pub struct MeasuredProfiles {
    pub rows: Vec<MeasuredRow>,
}

fn bad(message: String) -> Error {
    Error::invalid("$", message)
}

impl MeasuredProfiles {
    /// Reads a CSV file. Errors are [`Error::Io`] (file cannot be opened) or [`Error::Invalid`] at `$`
    /// whose message names the file, the CSV line and the column.
    pub fn from_csv_path(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let f = std::fs::File::open(p).map_err(|e| Error::io(p.display(), e))?;
        Self::from_reader(f).map_err(|e| match e {
            Error::Invalid { path, message } => Error::Invalid {
                path,
                message: format!("{}: {message}", p.display()),
            },
            other => other,
        })
    }

    /// Reads a CSV file named in an input field: like [`Self::from_csv_path`] but a missing or
    /// unreadable file is also an [`Error::Invalid`] at `$` (callers prefix the field's JSON path with
    /// [`Error::at`]).
    pub fn load(path: &str) -> Result<Self> {
        if path.trim().is_empty() {
            return Err(bad("must name a CSV file".into()));
        }
        Self::from_csv_path(path).map_err(|e| match e {
            Error::Io { path, source } => {
                bad(format!("cannot read measured profile '{path}': {source}"))
            }
            other => other,
        })
    }

    /// Reads CSV text from any reader and validates every row. Errors are [`Error::Invalid`] at `$`
    /// with the CSV line (1 = header) and the column in the message.
    pub fn from_reader<R: std::io::Read>(r: R) -> Result<Self> {
        let mut rd = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(r);
        let headers = rd
            .headers()
            .map_err(|e| bad(format!("line 1 (header): {e}")))?
            .clone();
        for (i, h) in headers.iter().enumerate() {
            if !COLUMNS.contains(&h) {
                return Err(bad(format!(
                    "line 1 (header), column {}: unknown column '{h}'; expected {}",
                    i + 1,
                    COLUMNS.join(", ")
                )));
            }
            if headers.iter().take(i).any(|x| x == h) {
                return Err(bad(format!("line 1 (header): column '{h}' appears twice")));
            }
        }
        for c in &COLUMNS[..REQUIRED] {
            if !headers.iter().any(|h| h == *c) {
                return Err(bad(format!(
                    "line 1 (header): missing column '{c}' (required: {})",
                    COLUMNS[..REQUIRED].join(", ")
                )));
            }
        }
        let phase_col = headers.iter().position(|h| h == "phase");
        let mut rows = Vec::new();
        let mut seen: std::collections::HashMap<(String, String, Phase, u64, u64, String), u64> =
            std::collections::HashMap::new();
        let mut rec = csv::StringRecord::new();
        loop {
            match rd.read_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Err(bad(match e.kind() {
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } => format!("line {line}: {len} fields, the header has {expected_len}"),
                        _ => format!("line {line}: {e}"),
                    }));
                }
            }
            let line = rec.position().map_or(0, |p| p.line());
            // serde's enum errors carry no column: check the phase first
            if let Some(ph) = phase_col.and_then(|i| rec.get(i)) {
                if !PHASES.contains(&ph) {
                    return Err(bad(format!(
                        "line {line}, column 'phase': unknown phase '{ph}'; expected {}",
                        PHASES.join(", ")
                    )));
                }
            }
            let row: MeasuredRow = rec.deserialize(Some(&headers)).map_err(|e| {
                bad(match e.kind() {
                    csv::ErrorKind::Deserialize { err, .. } => {
                        let col = err
                            .field()
                            .and_then(|f| headers.get(f as usize))
                            .map_or(String::new(), |c| format!(", column '{c}'"));
                        format!("line {line}{col}: {}", err.kind())
                    }
                    _ => format!("line {line}: {e}"),
                })
            })?;
            let at = |col: &str, msg: String| bad(format!("line {line}, column '{col}': {msg}"));
            for (col, v) in [
                ("model", &row.model),
                ("device", &row.device),
                ("layer", &row.layer),
            ] {
                if v.is_empty() {
                    return Err(at(col, "must not be empty".into()));
                }
            }
            for (col, v) in [("batch", row.batch), ("seq_len", row.seq_len)] {
                if v == 0 {
                    return Err(at(col, "must be >= 1".into()));
                }
            }
            for (col, v) in [
                ("time_s", Some(row.time_s)),
                ("energy_j", row.energy_j),
                ("memory_bytes", row.memory_bytes),
            ] {
                if let Some(x) = v {
                    if !(x.is_finite() && x >= 0.0) {
                        return Err(at(col, format!("must be a finite number >= 0, got {x}")));
                    }
                }
            }
            let key = (
                row.model.to_ascii_lowercase(),
                row.device.to_ascii_lowercase(),
                row.phase,
                row.batch,
                row.seq_len,
                row.layer.clone(),
            );
            if let Some(prev) = seen.insert(key, line) {
                return Err(bad(format!(
                    "line {line}: same model, device, phase, batch, seq_len and layer as line {prev}"
                )));
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
    layer_times_sourced(card, hw, w, measured)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// [`layer_times`] with where each layer's time came from.
pub fn layer_times_sourced(
    card: &LlmCard,
    hw: &Hardware,
    w: &Workload,
    measured: Option<&MeasuredProfiles>,
) -> Vec<(LayerTime, TimeSource)> {
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
    layer_times_sourced_for(card, hw, w, recipe, measured)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// [`layer_times_for`] with where each layer's time came from.
pub fn layer_times_sourced_for(
    card: &LlmCard,
    hw: &Hardware,
    w: &Workload,
    recipe: &Recipe,
    measured: Option<&MeasuredProfiles>,
) -> Vec<(LayerTime, TimeSource)> {
    let w = recipe_workload(recipe, w);
    times(card, hw, &w, recipe, measured)
}

fn times(
    card: &LlmCard,
    hw: &Hardware,
    w: &Workload,
    recipe: &Recipe,
    measured: Option<&MeasuredProfiles>,
) -> Vec<(LayerTime, TimeSource)> {
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
                None => (analytic, TimeSource::Analytic),
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
                    let t = LayerTime {
                        fwd_s: r.time_s * fwd_share,
                        bwd_s: r.time_s * (1.0 - fwd_share),
                        fwd_j: e * fwd_share,
                        bwd_j: e * (1.0 - fwd_share),
                    };
                    (t, TimeSource::Measured)
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
