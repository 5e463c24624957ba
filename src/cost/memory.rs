//! Memory recipes: inference, full fine-tuning under an optimizer preset, LoRA / QLoRA.
//!
//! Bytes per parameter (formulas.md E.1, ZeRO paper, Rajbhandari et al. 2020):
//!
//! | preset | weights | gradients | optimizer state | total |
//! |---|---|---|---|---|
//! | [`OptimizerPreset::Fp32Adam`] | 4 (fp32) | 4 (fp32) | 8 (m, v fp32) | 16 |
//! | [`OptimizerPreset::MixedAdam`] | 2 (bf16/fp16) | 2 | 12 (fp32 master 4 + m 4 + v 4) | 16 |
//! | [`OptimizerPreset::Pure16Adam`] | 2 (bf16) | 2 | 8 (m, v fp32, no master copy) | 12 |
//! | [`OptimizerPreset::Sgd`] | 4 (fp32) | 4 | 0 (no momentum) | 8 |
//!
//! LoRA (Hu et al. 2021): an adapted `W ∈ R^{d_out×d_in}` adds `r·(d_in + d_out)` trainable parameters.
//! Frozen base weights are stored in `base_dtype` (bf16 by default); `Int4` means QLoRA NF4 with double
//! quantisation, `4 + 0.127` bits per parameter (Dettmers et al. 2023), applied to the blocks only (the
//! embedding and the head stay 16-bit). Adapters train under mixed-precision Adam: 2 B weights,
//! 2 B gradients, 12 B optimizer state per trainable parameter.
//!
//! Activations come on top (`LayerCost::train_act_bytes`, Korthikanti et al. 2022; with full
//! recomputation the largest per-block working set is added once). Inference memory is the weights, the
//! KV cache at `context_len` (sliding-window layers capped) and the largest per-layer transient.
//! Framework buffers, CUDA context and fragmentation are not modelled.

use super::{block_shapes, layer_table, DType, LayerCost, LayerKind, Phase, Role, Workload};
use crate::catalog::LlmCard;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Optimizer and precision of full fine-tuning (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerPreset {
    /// fp32 weights and gradients, fp32 Adam moments: 4 + 4 + 8 = 16 B/param.
    Fp32Adam,
    /// 16-bit weights and gradients, fp32 master weights and moments: 2 + 2 + 12 = 16 B/param.
    MixedAdam,
    /// bf16 weights and gradients, fp32 moments, no master copy: 2 + 2 + 8 = 12 B/param.
    Pure16Adam,
    /// fp32 SGD without momentum: 4 + 4 = 8 B/param.
    Sgd,
}

impl OptimizerPreset {
    /// `(weights, gradients, optimizer state)` bytes per parameter.
    pub fn bytes_per_param(self) -> (f64, f64, f64) {
        match self {
            OptimizerPreset::Fp32Adam => (4.0, 4.0, 8.0),
            OptimizerPreset::MixedAdam => (2.0, 2.0, 12.0),
            OptimizerPreset::Pure16Adam => (2.0, 2.0, 8.0),
            OptimizerPreset::Sgd => (4.0, 4.0, 0.0),
        }
    }

    /// Dtype of the forward/backward arithmetic.
    pub fn compute_dtype(self) -> DType {
        match self {
            OptimizerPreset::Fp32Adam | OptimizerPreset::Sgd => DType::Fp32,
            OptimizerPreset::MixedAdam | OptimizerPreset::Pure16Adam => DType::Bf16,
        }
    }
}

/// A linear layer LoRA can adapt. MLA: `k` = `kv_a_proj_with_mqa`, `v` = `kv_b_proj`.
/// Non-gated MLPs: `up` = fc1, `down` = fc2. MoE: every expert of the bank is adapted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoraTarget {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl LoraTarget {
    /// All seven linear kinds ("all-linear").
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    fn role(self) -> Role {
        match self {
            LoraTarget::Q => Role::Q,
            LoraTarget::K => Role::K,
            LoraTarget::V => Role::V,
            LoraTarget::O => Role::O,
            LoraTarget::Gate => Role::Gate,
            LoraTarget::Up => Role::Up,
            LoraTarget::Down => Role::Down,
        }
    }
}

fn default_base_dtype() -> DType {
    DType::Bf16
}

/// What is run: inference, full fine-tuning, or LoRA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipe {
    #[default]
    Inference,
    Full {
        preset: OptimizerPreset,
    },
    Lora {
        rank: u64,
        targets: Vec<LoraTarget>,
        /// Frozen base weights; `int4` = QLoRA NF4 with double quantisation (0.127 bit/param overhead).
        #[serde(default = "default_base_dtype")]
        base_dtype: DType,
    },
}

impl Recipe {
    /// Whether the recipe runs a backward pass.
    pub fn trains(&self) -> bool {
        !matches!(self, Recipe::Inference)
    }
}

/// Memory of one layer or the whole model, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct MemoryBreakdown {
    pub weights_bytes: f64,
    pub gradient_bytes: f64,
    pub optimizer_bytes: f64,
    pub activation_bytes: f64,
    pub kv_cache_bytes: f64,
    pub total_bytes: f64,
}

impl MemoryBreakdown {
    fn finish(mut self) -> Self {
        self.total_bytes = self.weights_bytes
            + self.gradient_bytes
            + self.optimizer_bytes
            + self.activation_bytes
            + self.kv_cache_bytes;
        self
    }
}

/// Trainable parameters per layer, aligned with [`layer_table`].
pub fn trainable_params_per_layer(card: &LlmCard, recipe: &Recipe) -> Vec<f64> {
    let shapes = block_shapes(card);
    let mut v = Vec::with_capacity(shapes.len() + 2);
    match recipe {
        Recipe::Inference => v.resize(shapes.len() + 2, 0.0),
        Recipe::Full { .. } => {
            let p = super::param_count(card);
            v.push(p.embedding);
            v.extend(p.per_block);
            v.push(p.head);
        }
        Recipe::Lora { rank, targets, .. } => {
            v.push(0.0);
            for sh in &shapes {
                let mut n = 0.0;
                for l in &sh.linears {
                    if targets.iter().any(|t| t.role() == l.role) {
                        n += (*rank * (l.d_in + l.d_out)) as f64 * l.count;
                    }
                }
                v.push(n);
            }
            v.push(0.0);
        }
    }
    v
}

/// Total trainable parameters.
pub fn trainable_params(card: &LlmCard, recipe: &Recipe) -> f64 {
    trainable_params_per_layer(card, recipe).iter().sum()
}

/// QLoRA NF4 with double quantisation: 4.127 bits per parameter.
pub const NF4_DQ_BYTES_PER_PARAM: f64 = (4.0 + 0.127) / 8.0;

/// Memory of one layer (`trainable` from [`trainable_params_per_layer`]). For inference the KV cache is
/// `kv_bytes_per_token · batch · min(context_len, window)` and activations are the layer's transient;
/// for training recipes activations are `train_act_bytes` (recompute working set not included).
pub fn layer_memory(
    layer: &LayerCost,
    trainable: f64,
    recipe: &Recipe,
    w: &Workload,
) -> MemoryBreakdown {
    let mut m = MemoryBreakdown::default();
    match recipe {
        Recipe::Inference => {
            m.weights_bytes = layer.weight_bytes;
            let ctx = layer
                .kv_window
                .map_or(w.context_len, |win| w.context_len.min(win));
            m.kv_cache_bytes = layer.kv_bytes_per_token * w.batch as f64 * ctx as f64;
            m.activation_bytes = layer.infer_act_bytes;
        }
        Recipe::Full { preset } => {
            let (pw, pg, po) = preset.bytes_per_param();
            m.weights_bytes = layer.params * pw;
            m.gradient_bytes = layer.params * pg;
            m.optimizer_bytes = layer.params * po;
            m.activation_bytes = layer.train_act_bytes;
        }
        Recipe::Lora { base_dtype, .. } => {
            let base = match (base_dtype, layer.kind) {
                (DType::Int4, LayerKind::Block) => NF4_DQ_BYTES_PER_PARAM,
                (DType::Int4, _) => 2.0,
                (d, _) => d.bytes(),
            };
            m.weights_bytes = layer.params * base + trainable * 2.0;
            m.gradient_bytes = trainable * 2.0;
            m.optimizer_bytes = trainable * 12.0;
            m.activation_bytes = layer.train_act_bytes;
        }
    }
    m.finish()
}

/// The workload a recipe actually runs: training recipes force the training phase (and full
/// fine-tuning computes in the preset's dtype).
pub fn recipe_workload(recipe: &Recipe, w: &Workload) -> Workload {
    let mut w = w.clone();
    match recipe {
        Recipe::Inference => {}
        Recipe::Full { preset } => {
            w.phase = Phase::Training;
            w.dtype = preset.compute_dtype();
            w.context_len = w.seq_len;
        }
        Recipe::Lora { .. } => {
            w.phase = Phase::Training;
            w.context_len = w.seq_len;
            if matches!(w.dtype, DType::Int4 | DType::Int8) {
                w.dtype = DType::Bf16; // adapters and activations run in bf16
            }
        }
    }
    w
}

/// Memory of the whole model: weights, gradients, optimizer state and KV summed over layers;
/// activations summed over layers in training (+ the largest recompute working set once) and the
/// largest layer transient in inference.
pub fn memory(card: &LlmCard, recipe: &Recipe, w: &Workload) -> MemoryBreakdown {
    let w = recipe_workload(recipe, w);
    let table = layer_table(card, &w);
    let trainable = trainable_params_per_layer(card, recipe);
    let mut m = MemoryBreakdown::default();
    let mut act_max: f64 = 0.0;
    let mut recompute_max: f64 = 0.0;
    for (l, &tr) in table.iter().zip(&trainable) {
        let lm = layer_memory(l, tr, recipe, &w);
        m.weights_bytes += lm.weights_bytes;
        m.gradient_bytes += lm.gradient_bytes;
        m.optimizer_bytes += lm.optimizer_bytes;
        m.kv_cache_bytes += lm.kv_cache_bytes;
        if recipe.trains() {
            m.activation_bytes += lm.activation_bytes;
        } else {
            act_max = act_max.max(lm.activation_bytes);
        }
        recompute_max = recompute_max.max(l.recompute_peak_bytes);
    }
    if recipe.trains() {
        m.activation_bytes += recompute_max;
    } else {
        m.activation_bytes = act_max;
    }
    m.finish()
}
