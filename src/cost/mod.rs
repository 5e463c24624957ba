//! # The analytic cost model
//!
//! Per-layer parameters, FLOPs, memory traffic, KV cache, activation memory, training-memory recipes,
//! roofline time, energy and radio rates. Every problem family takes its costs from here (or from a
//! measured profile table, [`measured`]), and so does its `evaluate`.
//!
//! Notation (as in `../shared/reference/formulas.md`): `d` = d_model, `a` heads, `a_kv` KV heads,
//! `hd` head dim, `f` MLP hidden size, `V` vocabulary, `L` blocks, `b` batch, `s` new tokens per
//! sequence (`Workload::seq_len`), `c` tokens attended (`Workload::context_len`), `T = b·s`.
//!
//! ## Layers
//! [`layer_table`] returns the embedding, every block (encoder blocks, then decoder blocks) and the head
//! (final norm + LM head, or BERT's pooler). A tied head has no parameters of its own but still does the
//! logits FLOPs and reads the (shared) embedding matrix.
//!
//! ## Parameters ([`param_count`])
//! Counted from the card like a Hugging Face checkpoint: every linear `d_in × d_out` (+ `d_out` bias
//! when `linear_bias`, Q/K/V only when `qkv_bias`); LayerNorm `2d`, RMSNorm `d`, two per block (three in
//! a T5 decoder block, four in Gemma-2); learned position tables (`position_embeddings × d`); BERT token
//! types, embedding LayerNorm and pooler (`d² + d`); T5 relative-position buckets (`buckets × a` in the
//! first block of each stack) and the encoder's final norm (attached to the last encoder block).
//! MoE blocks: router `d × E`, `E` routed experts and `n_shared` shared experts (+ a `d × 1` gate when
//! `shared_gate`); *active* parameters count `top_k` routed experts. MLA (DeepSeek-V2): `q_proj`
//! (`d × a·(nope+rope)`, or the `q_a`/`q_b` low-rank pair), `kv_a_proj_with_mqa` (`d × (r + rope)`),
//! `kv_a_layernorm` (`r`), `kv_b_proj` (`r × a·(nope + v)`), `o_proj` (`a·v × d`).
//! This reproduces the checkpoint counts of the reference (e.g. LLaMA-2-7B 6,738,415,616; GPT-2 XL
//! 1,557,611,200; BERT-large 335,141,888; T5-base 222,903,552).
//!
//! ## Forward FLOPs (`LayerCost::fwd_flops`)
//! `2·T·(active matmul parameters)` for the projections and MLP (biases, norms and element-wise ops are
//! not counted), plus attention `2·b·s·c_eff·a·(qk + v)` (QKᵀ and AV; llm-analysis's `4bs²h` for MHA
//! without masking). Causal masking: the new tokens are the last `s` of `c`, so the mean number of keys
//! attended is `c_eff = c − (s−1)/2` (prefill/training `(s+1)/2`, decode `c`); encoders use `c`;
//! sliding-window layers cap `c_eff` at the window. GQA changes only the K/V projections. MLA prefill
//! uses the expanded heads (qk 192, v 128); MLA decode uses the absorbed form (scores and AV in the
//! latent space: `2·a·(2r + rope)` per query-key pair). This is the Kaplan/Narayanan count: for an MHA
//! GPT without masking it equals `24·B·s·L·h²·(1 + s/(6h) + V/(12·L·h))` (formulas.md E.3); with the
//! causal halving the `s/(6h)` term becomes `≈ s/(12h)`. Prefill computes logits for the last token of
//! each sequence only (as inference engines do); training computes them for all tokens.
//!
//! Backward: activation gradients ≈ forward (`bwd_act_flops` = matmul part + 2 × attention part),
//! weight gradients = matmul part (`bwd_weight_flops`, for all trainable weights of the layer), so a
//! full training step is `3 × fwd` (`6N` per token + attention, Narayanan's `72·B·s·L·h²(…)`); full
//! recomputation adds one more forward (`recompute_flops`, the `96·…` variant), selective recomputation
//! the attention core only.
//!
//! ## Memory traffic (`fwd_bytes`)
//! Weights read once per pass (MoE: the expected number of distinct routed experts touched by `T`
//! tokens under uniform routing, `E·(1 − (1 − k/E)^T)`), KV cache read (`b·min(c, window)` tokens) and
//! written (`b·s` tokens), activations in and out of every operator, and the materialised attention
//! scores when `flash_attention` is off (LLM-Viewer's per-operator load/store accounting, summed).
//!
//! ## KV cache ([`kv_bytes_per_token`])
//! `2·a_kv·hd` elements per token per decoder self-attention layer (formulas.md E.4); MLA caches the
//! latent plus the shared rotary key, `(kv_lora_rank + qk_rope_head_dim)`; sliding-window layers cap the
//! cached length at the window (in [`memory`] via `LayerCost::kv_window`); encoder layers cache nothing.
//! T5's cross-attention cache (K/V of the encoder output) is not counted.
//!
//! ## Activation memory for training (`train_act_bytes`)
//! Korthikanti et al. 2022 (arXiv 2205.05198) per block, no parallelism, `e` bytes per activation
//! element, 1-byte dropout masks: attention `s·b·(e·(d + a·qk + a_kv·qk + a_kv·v + a·v) + d)` (= 11sbh
//! for MHA, e = 2) plus scores `(2e + 1)·a·s²·b` (= 5as²b); MLP `s·b·(e·d + 2e·f + d)` (= 19sbh for
//! f = 4h), recounted for gated MLPs as `e·d + 3e·f + d` (gate, up and product kept) and for MoE with
//! the `top_k` routed copies; norms `e·d` per norm (4sbh). FlashAttention drops the score term and
//! keeps the output and the fp32 log-sum-exp (`e·s·b·a·v + 4·a·s·b`, llm-analysis). Selective
//! recomputation drops the score term; full recomputation keeps the block input only (`e·s·b·d`) and
//! [`memory`] adds the largest per-block working set once (the block being recomputed). The head keeps
//! the logits and an fp32 softmax (`b·s·V·(e + 4)`).
//!
//! ## Time, energy, radio
//! [`roofline`]: `max(flops / (peak·compute_eff), bytes / (bw·bandwidth_eff))` per operator group
//! (projections+MLP, attention) plus a fixed latency per operator (LLM-Viewer roofline; aiconfigurator's
//! 0.8 bandwidth factor and 3 µs per op, formulas.md E.6), with efficiencies from the runtime profiles
//! fitted in `docs/calibration.md`. [`energy`]: `P = P_idle + (P_peak − P_idle)·u`. [`radio`]: Shannon rate.

pub mod energy;
pub mod measured;
pub mod memory;
pub mod moe;
pub mod profile;
pub mod radio;
pub mod roofline;

pub use energy::{energy_j, power_w};
pub use measured::{
    layer_times, layer_times_for, layer_times_sourced, layer_times_sourced_for, CostModel,
    MeasuredProfiles, MeasuredRow, TimeSource,
};
pub use memory::{
    layer_memory, memory, trainable_params, trainable_params_per_layer, LoraTarget,
    MemoryBreakdown, OptimizerPreset, Recipe,
};
pub use profile::{
    profile, render_table, PhaseReport, ProfileLayer, ProfileReport, ProfileRequest,
};
pub use radio::{shannon_rate_bps, transfer_time_s, tx_energy_j};
pub use roofline::{layer_time, op_time_s, Hardware, LayerTime};

use crate::catalog::{Arch, LlmCard, NormKind, PositionKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Numeric format of weights, activations or the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    Fp32,
    Bf16,
    Fp16,
    Fp8,
    Int8,
    /// 4-bit weights (GPTQ/AWQ/llama.cpp Q4/MLC q4f16): 0.5 byte per weight; scales are absorbed in the
    /// runtime's fitted `int4_bandwidth_factor`.
    Int4,
}

impl DType {
    /// Bytes per element.
    pub fn bytes(self) -> f64 {
        match self {
            DType::Fp32 => 4.0,
            DType::Bf16 | DType::Fp16 => 2.0,
            DType::Fp8 | DType::Int8 => 1.0,
            DType::Int4 => 0.5,
        }
    }

    /// The device-card key (`"fp32"`, `"bf16"`, `"fp16"`, `"fp8"`, `"int8"`, `"int4"`).
    pub fn key(self) -> &'static str {
        match self {
            DType::Fp32 => "fp32",
            DType::Bf16 => "bf16",
            DType::Fp16 => "fp16",
            DType::Fp8 => "fp8",
            DType::Int8 => "int8",
            DType::Int4 => "int4",
        }
    }

    /// Activation dtype when weights are stored in `self`: integer weights are weight-only
    /// quantisation with fp16 activations (W4A16 / W8A16); float types keep their own width.
    pub fn activation(self) -> DType {
        match self {
            DType::Int8 | DType::Int4 => DType::Fp16,
            d => d,
        }
    }

    /// Dtype of the arithmetic: 4-bit weights are dequantised and multiplied in fp16 (W4A16); int8
    /// runs on int8 units (W8A8); float types run as themselves.
    pub fn compute(self) -> DType {
        match self {
            DType::Int4 => DType::Fp16,
            d => d,
        }
    }

    /// Default KV-cache dtype for weights in `self` (fp16 for integer weights).
    pub fn default_kv(self) -> DType {
        self.activation()
    }
}

/// What one pass does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Process a prompt of `seq_len` tokens, write the KV cache.
    Prefill,
    /// Generate one token per sequence attending `context_len` cached tokens.
    Decode,
    /// Forward and backward on micro-batches of `seq_len` tokens.
    Training,
}

/// Activation recomputation (gradient checkpointing) in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Recompute {
    #[default]
    None,
    /// Recompute the attention core (Korthikanti et al. 2022).
    Selective,
    /// Keep only each block's input; recompute the whole block in backward.
    Full,
}

/// One pass over the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Workload {
    /// Sequences processed together (micro-batch in training).
    pub batch: u64,
    /// New tokens per sequence in this pass (prefill/training: prompt length; decode: 1).
    pub seq_len: u64,
    /// Tokens attended (decode: KV length including the new token; prefill/training: = seq_len).
    pub context_len: u64,
    pub phase: Phase,
    /// Weight dtype (activations follow [`DType::activation`]).
    pub dtype: DType,
    /// KV-cache dtype.
    pub kv_dtype: DType,
    /// Fused attention that never materialises the score matrix.
    pub flash_attention: bool,
    #[serde(default)]
    pub recompute: Recompute,
}

impl Workload {
    /// Prefill of `batch` prompts of `seq` tokens.
    pub fn prefill(batch: u64, seq: u64, dtype: DType) -> Self {
        Workload {
            batch,
            seq_len: seq,
            context_len: seq,
            phase: Phase::Prefill,
            dtype,
            kv_dtype: dtype.default_kv(),
            flash_attention: true,
            recompute: Recompute::None,
        }
    }

    /// One decode step of `batch` sequences with `context` tokens in the KV cache (incl. the new one).
    pub fn decode(batch: u64, context: u64, dtype: DType) -> Self {
        Workload {
            batch,
            seq_len: 1,
            context_len: context.max(1),
            phase: Phase::Decode,
            dtype,
            kv_dtype: dtype.default_kv(),
            flash_attention: true,
            recompute: Recompute::None,
        }
    }

    /// One training micro-batch of `micro_batch` sequences of `seq` tokens.
    pub fn training(micro_batch: u64, seq: u64, dtype: DType) -> Self {
        Workload {
            batch: micro_batch,
            seq_len: seq,
            context_len: seq,
            phase: Phase::Training,
            dtype,
            kv_dtype: dtype.default_kv(),
            flash_attention: true,
            recompute: Recompute::None,
        }
    }

    /// New tokens in the pass, `b·s`.
    pub fn tokens(&self) -> f64 {
        self.batch as f64 * self.seq_len as f64
    }
}

/// Which part of the model a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    Embedding,
    Block,
    Head,
}

/// Costs of one layer for one [`Workload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LayerCost {
    /// `embedding`, `block.3`, `encoder.3` / `decoder.3` (T5), `head`.
    pub name: String,
    pub kind: LayerKind,
    /// Block index (0-based over all blocks, encoder first) for blocks.
    pub block: Option<u32>,
    /// Parameters stored in the layer.
    pub params: f64,
    /// Parameters used per token (MoE: `top_k` routed experts).
    pub active_params: f64,
    /// Bytes of the stored weights in the workload's dtype (norm weights, and the embedding and head
    /// of weight-only-quantised int4/int8 models, are counted at the activation width).
    pub weight_bytes: f64,
    /// Forward FLOPs for the whole workload (`b·s` tokens).
    pub fwd_flops: f64,
    /// Activation-gradient FLOPs of the backward pass (≈ forward).
    pub bwd_act_flops: f64,
    /// Weight-gradient FLOPs for all weights of the layer (≈ forward matmul part).
    pub bwd_weight_flops: f64,
    /// Extra forward FLOPs in backward from recomputation (training only).
    pub recompute_flops: f64,
    /// Memory traffic of one forward pass, bytes.
    pub fwd_bytes: f64,
    /// Attention-core part of `fwd_flops` (scores and AV).
    pub attn_fwd_flops: f64,
    /// Attention-core part of `fwd_bytes` (KV read/write, Q/O, scores).
    pub attn_fwd_bytes: f64,
    /// Activation leaving the layer for the whole workload, bytes.
    pub out_bytes: f64,
    /// Activation leaving the layer per token of one sequence, bytes.
    pub out_bytes_per_token: f64,
    /// KV cache per token per sequence, in `kv_dtype` (0 for embedding, head, encoder blocks).
    pub kv_bytes_per_token: f64,
    /// Sliding window capping the cached tokens of this layer (None = full context).
    pub kv_window: Option<u64>,
    /// Activation memory stored for backward for this micro-batch (training workloads; 0 otherwise).
    pub train_act_bytes: f64,
    /// Working set while this block is recomputed (full recomputation only; 0 otherwise).
    pub recompute_peak_bytes: f64,
    /// Peak transient activation memory of the layer in an inference pass.
    pub infer_act_bytes: f64,
}

/// Parameter totals of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ParamCount {
    pub total: f64,
    /// Parameters used per token (MoE: `top_k` routed experts), including embedding and head.
    pub active: f64,
    /// Input embedding (+ learned positions, token types, embedding norm).
    pub embedding: f64,
    /// Final norm + untied LM head (+ BERT pooler).
    pub head: f64,
    pub per_block: Vec<f64>,
}

// ------------------------------------------------------------------------------------------------
// Block shapes (internal, shared with `memory` for LoRA)
// ------------------------------------------------------------------------------------------------

/// Role of a linear layer (maps to LoRA targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    Router,
}

/// Where a linear's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    /// The block's new tokens.
    Tokens,
    /// Encoder output (T5 cross-attention K/V).
    Encoder,
}

/// One linear layer (or a bank of `count` identical experts, `active` of them used per token).
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub role: Role,
    pub d_in: u64,
    pub d_out: u64,
    pub count: f64,
    pub active: f64,
    pub bias: bool,
    /// Routed expert bank (weights read = expected distinct experts).
    pub routed: bool,
    pub src: Src,
}

impl Linear {
    fn new(role: Role, d_in: u64, d_out: u64, bias: bool) -> Self {
        Linear {
            role,
            d_in,
            d_out,
            count: 1.0,
            active: 1.0,
            bias,
            routed: false,
            src: Src::Tokens,
        }
    }
    /// Parameters of one copy.
    pub fn params_one(&self) -> f64 {
        (self.d_in * self.d_out + if self.bias { self.d_out } else { 0 }) as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockType {
    Decoder,
    Encoder,
    /// T5 decoder block: self-attention + cross-attention.
    CrossDecoder,
}

/// Everything the formulas need about one block.
#[derive(Debug, Clone)]
pub(crate) struct BlockShape {
    pub ty: BlockType,
    pub linears: Vec<Linear>,
    /// Norm weights, bias tables and other non-matmul parameters.
    pub other_params: f64,
    pub n_norms: u32,
    pub heads: u64,
    pub kv_heads: u64,
    /// Per-head Q/K and V dims (MLA: expanded dims).
    pub qk_dim: u64,
    pub v_dim: u64,
    /// Cached elements per token (0 for encoder blocks).
    pub kv_elems: u64,
    /// MLA latent rank and rotary dim (absorbed decode attention).
    pub mla: Option<(u64, u64)>,
    pub window: Option<u64>,
    /// Sum over active MLPs of their hidden size per token (for activation counts).
    pub mlp_hidden_active: f64,
    pub gated: bool,
    pub n_experts: u64,
}

fn norm_params(card: &LlmCard) -> u64 {
    match card.norm {
        NormKind::Layernorm => 2 * card.d_model,
        NormKind::Rmsnorm => card.d_model,
    }
}

fn attention_linears(card: &LlmCard, src_kv: Src) -> (Vec<Linear>, f64) {
    let d = card.d_model;
    let lb = card.linear_bias;
    let qb = lb || card.qkv_bias;
    let mut v = Vec::new();
    let mut other = 0.0;
    if let Some(m) = &card.mla {
        let a = card.n_heads;
        let qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
        match m.q_lora_rank {
            None => v.push(Linear::new(Role::Q, d, a * qk, qb)),
            Some(qr) => {
                v.push(Linear::new(Role::Q, d, qr, qb));
                other += qr as f64; // q_a_layernorm
                v.push(Linear::new(Role::Q, qr, a * qk, qb));
            }
        }
        v.push(Linear::new(
            Role::K,
            d,
            m.kv_lora_rank + m.qk_rope_head_dim,
            qb,
        ));
        other += m.kv_lora_rank as f64; // kv_a_layernorm
        v.push(Linear::new(
            Role::V,
            m.kv_lora_rank,
            a * (m.qk_nope_head_dim + m.v_head_dim),
            qb,
        ));
        v.push(Linear::new(Role::O, a * m.v_head_dim, d, lb));
    } else {
        let q = card.n_heads * card.head_dim;
        let kv = card.n_kv_heads * card.head_dim;
        v.push(Linear::new(Role::Q, d, q, qb));
        let mut k = Linear::new(Role::K, d, kv, qb);
        k.src = src_kv;
        let mut vv = Linear::new(Role::V, d, kv, qb);
        vv.src = src_kv;
        v.push(k);
        v.push(vv);
        v.push(Linear::new(Role::O, q, d, lb));
    }
    (v, other)
}

fn mlp_linears(card: &LlmCard, block: u32) -> (Vec<Linear>, f64, f64, u64) {
    let d = card.d_model;
    let lb = card.linear_bias;
    let dense = |f: u64, count: f64, routed: bool, active: f64| -> Vec<Linear> {
        let mut v = Vec::new();
        if card.gated_mlp {
            v.push(Linear::new(Role::Gate, d, f, lb));
        }
        v.push(Linear::new(Role::Up, d, f, lb));
        v.push(Linear::new(Role::Down, f, d, lb));
        for l in &mut v {
            l.count = count;
            l.active = active;
            l.routed = routed;
        }
        v
    };
    match &card.moe {
        Some(m) if card.is_moe_block(block) => {
            let mut v = dense(m.expert_d_ff, m.n_experts as f64, true, m.top_k as f64);
            let mut other = 0.0;
            v.push(Linear::new(Role::Router, d, m.n_experts as u64, false));
            let sf = m.shared_d_ff.unwrap_or(m.expert_d_ff);
            if m.n_shared > 0 {
                v.extend(dense(sf, m.n_shared as f64, false, m.n_shared as f64));
                if m.shared_gate {
                    other += d as f64;
                }
            }
            let hidden = m.top_k as f64 * m.expert_d_ff as f64 + m.n_shared as f64 * sf as f64;
            (v, other, hidden, m.n_experts as u64)
        }
        _ => (dense(card.d_ff, 1.0, false, 1.0), 0.0, card.d_ff as f64, 0),
    }
}

/// Blocks in order (encoder first), with their shapes.
pub(crate) fn block_shapes(card: &LlmCard) -> Vec<BlockShape> {
    let n_enc = card.n_layers;
    let n_total = card.total_blocks();
    let mut out = Vec::with_capacity(n_total as usize);
    for i in 0..n_total {
        let ty = match card.arch {
            Arch::Decoder => BlockType::Decoder,
            Arch::Encoder => BlockType::Encoder,
            Arch::EncoderDecoder => {
                if i < n_enc {
                    BlockType::Encoder
                } else {
                    BlockType::CrossDecoder
                }
            }
        };
        let (mut linears, mut other) = attention_linears(card, Src::Tokens);
        let mut n_norms = 2;
        if ty == BlockType::CrossDecoder {
            let (cross, o2) = attention_linears(card, Src::Encoder);
            linears.extend(cross);
            other += o2;
            n_norms = 3;
        }
        if card.family == "gemma" {
            // Gemma-2: pre- and post-norms around attention and MLP.
            n_norms = 4;
        }
        // MoE configs index decoder blocks; encoder-decoder models have no MoE in the catalog.
        let (mlp, o3, hidden, n_experts) = mlp_linears(card, i);
        linears.extend(mlp);
        other += o3;
        other += n_norms as f64 * norm_params(card) as f64;
        if card.position == PositionKind::Relative && (i == 0 || i == n_enc) {
            other += (card.position_embeddings.unwrap_or(32) * card.n_heads) as f64;
        }
        if card.arch == Arch::EncoderDecoder && i + 1 == n_enc {
            other += norm_params(card) as f64; // encoder final norm
        }
        let (qk_dim, v_dim, kv_elems, mla) = match &card.mla {
            Some(m) => (
                m.qk_nope_head_dim + m.qk_rope_head_dim,
                m.v_head_dim,
                m.kv_lora_rank + m.qk_rope_head_dim,
                Some((m.kv_lora_rank, m.qk_rope_head_dim)),
            ),
            None => (
                card.head_dim,
                card.head_dim,
                2 * card.n_kv_heads * card.head_dim,
                None,
            ),
        };
        let kv_elems = if ty == BlockType::Encoder {
            0
        } else {
            kv_elems
        };
        // Blocks count from 0 within the decoder for window parity.
        let dec_index = if card.arch == Arch::EncoderDecoder {
            i.saturating_sub(n_enc)
        } else {
            i
        };
        let window = card
            .sliding_window
            .as_ref()
            .and_then(|w| match w.global_every {
                None => Some(w.window),
                // Gemma-2: even layers local, odd layers global (every `every`-th layer global).
                Some(e) if e >= 1 && (dec_index + 1) % e == 0 => None,
                Some(_) => Some(w.window),
            });
        out.push(BlockShape {
            ty,
            linears,
            other_params: other,
            n_norms,
            heads: card.n_heads,
            kv_heads: card.n_kv_heads,
            qk_dim,
            v_dim,
            kv_elems,
            mla,
            window: if ty == BlockType::Encoder {
                None
            } else {
                window
            },
            mlp_hidden_active: hidden,
            gated: card.gated_mlp,
            n_experts,
        });
    }
    out
}

impl BlockShape {
    pub(crate) fn params(&self) -> f64 {
        self.linears
            .iter()
            .map(|l| l.params_one() * l.count)
            .sum::<f64>()
            + self.other_params
    }
    pub(crate) fn active_params(&self) -> f64 {
        self.linears
            .iter()
            .map(|l| l.params_one() * l.active)
            .sum::<f64>()
            + self.other_params
    }
}

fn embedding_params(card: &LlmCard) -> f64 {
    let d = card.d_model;
    let mut p = card.vocab_size * d;
    if card.position == PositionKind::Learned {
        p += card.position_embeddings.unwrap_or(card.max_context) * d;
    }
    if let Some(tt) = card.token_type_vocab {
        p += tt * d + norm_params(card); // token types + embedding LayerNorm (BERT)
    }
    p as f64
}

fn head_params(card: &LlmCard) -> f64 {
    let d = card.d_model;
    let mut p = 0;
    if card.arch != Arch::Encoder {
        p += norm_params(card); // final norm (post-LN encoders have none)
        if !card.tied_embeddings {
            p += card.vocab_size * d;
        }
    }
    if card.token_type_vocab.is_some() {
        p += d * d + d; // BERT pooler
    }
    p as f64
}

/// Parameter totals of a card (see the module doc for what is counted).
pub fn param_count(card: &LlmCard) -> ParamCount {
    let shapes = block_shapes(card);
    let per_block: Vec<f64> = shapes.iter().map(|s| s.params()).collect();
    let embedding = embedding_params(card);
    let head = head_params(card);
    let active = embedding + head + shapes.iter().map(|s| s.active_params()).sum::<f64>();
    ParamCount {
        total: embedding + head + per_block.iter().sum::<f64>(),
        active,
        embedding,
        head,
        per_block,
    }
}

/// KV-cache bytes per token per sequence for the whole model (sum over decoder self-attention layers;
/// no window cap — a per-token figure).
pub fn kv_bytes_per_token(card: &LlmCard, kv_dtype: DType) -> f64 {
    block_shapes(card)
        .iter()
        .map(|s| s.kv_elems as f64 * kv_dtype.bytes())
        .sum()
}

/// KV-cache bytes of one sequence of `context` tokens (sliding-window layers capped at the window).
pub fn kv_cache_bytes(card: &LlmCard, kv_dtype: DType, context: u64) -> f64 {
    block_shapes(card)
        .iter()
        .map(|s| {
            let c = s.window.map_or(context, |w| context.min(w));
            s.kv_elems as f64 * kv_dtype.bytes() * c as f64
        })
        .sum()
}

/// Expected number of distinct experts hit by `tokens` tokens routed `k`-of-`e` uniformly.
pub fn expected_experts_touched(e: f64, k: f64, tokens: f64) -> f64 {
    if e <= 0.0 {
        return 0.0;
    }
    e * (1.0 - (1.0 - k / e).powf(tokens.max(0.0)))
}

/// The per-layer cost table: embedding, blocks (encoder then decoder), head.
pub fn layer_table(card: &LlmCard, w: &Workload) -> Vec<LayerCost> {
    let d = card.d_model as f64;
    let vocab = card.vocab_size as f64;
    let b = w.batch as f64;
    let s = w.seq_len as f64;
    let c = w.context_len.max(w.seq_len) as f64;
    let t = w.tokens();
    let wb = w.dtype.bytes();
    let act = w.dtype.activation().bytes();
    let kvb = w.kv_dtype.bytes();
    let training = w.phase == Phase::Training;
    let decode = w.phase == Phase::Decode;
    // Weight-only quantisation (int4/int8) applies to the blocks; the embedding and the LM head stay
    // in the activation dtype (AWQ/GPTQ/bitsandbytes keep lm_head in fp16; llama.cpp keeps the output
    // matrix at 6 bits; calibration.md B4 assumes an fp16 lm_head).
    let ewb = w.dtype.activation().bytes().max(wb);
    let mut out = Vec::new();

    // ---- embedding
    let ep = embedding_params(card);
    let emb_out = t * d * act;
    out.push(LayerCost {
        name: "embedding".into(),
        kind: LayerKind::Embedding,
        block: None,
        params: ep,
        active_params: ep,
        weight_bytes: ep * ewb,
        fwd_flops: 0.0,
        bwd_act_flops: 0.0,
        bwd_weight_flops: 0.0,
        recompute_flops: 0.0,
        fwd_bytes: t * d * ewb + emb_out,
        attn_fwd_flops: 0.0,
        attn_fwd_bytes: 0.0,
        out_bytes: emb_out,
        out_bytes_per_token: d * act,
        kv_bytes_per_token: 0.0,
        kv_window: None,
        train_act_bytes: 0.0,
        recompute_peak_bytes: 0.0,
        infer_act_bytes: 2.0 * emb_out,
    });

    // ---- blocks
    let shapes = block_shapes(card);
    let n_enc = card.n_layers;
    for (i, sh) in shapes.iter().enumerate() {
        let i = i as u32;
        let name = match (card.arch, sh.ty) {
            (Arch::EncoderDecoder, BlockType::Encoder) => format!("encoder.{i}"),
            (Arch::EncoderDecoder, _) => format!("decoder.{}", i - n_enc),
            _ => format!("block.{i}"),
        };
        // Encoder blocks of an encoder-decoder model do not run during decode (encoder output cached).
        let idle = decode && sh.ty == BlockType::Encoder && card.arch == Arch::EncoderDecoder;
        let params = sh.params();
        let active_params = sh.active_params();
        let weight_bytes = (params - sh.other_params) * wb + sh.other_params * act;
        let mut cost = LayerCost {
            name,
            kind: LayerKind::Block,
            block: Some(i),
            params,
            active_params,
            weight_bytes,
            fwd_flops: 0.0,
            bwd_act_flops: 0.0,
            bwd_weight_flops: 0.0,
            recompute_flops: 0.0,
            fwd_bytes: 0.0,
            attn_fwd_flops: 0.0,
            attn_fwd_bytes: 0.0,
            out_bytes: 0.0,
            out_bytes_per_token: d * act,
            kv_bytes_per_token: sh.kv_elems as f64 * kvb,
            kv_window: sh.window,
            train_act_bytes: 0.0,
            recompute_peak_bytes: 0.0,
            infer_act_bytes: 0.0,
        };
        if idle {
            out.push(cost);
            continue;
        }
        // Tokens seen by the cross-attention K/V projections (encoder length = context in prefill /
        // training; cached during decode).
        let t_enc = if decode { 0.0 } else { b * c };
        // ---- linear part
        let mut lin_flops = 0.0;
        let mut lin_weight_read = 0.0;
        for l in &sh.linears {
            let tok = match l.src {
                Src::Tokens => t,
                Src::Encoder => t_enc,
            };
            lin_flops += 2.0 * tok * (l.d_in * l.d_out) as f64 * l.active;
            let copies = if l.routed {
                expected_experts_touched(l.count, l.active, t)
            } else {
                l.count
            };
            lin_weight_read += l.params_one() * copies * wb;
        }
        lin_weight_read += sh.other_params * act;
        // ---- attention core
        let causal = sh.ty != BlockType::Encoder;
        let mut c_eff = if causal { c - (s - 1.0) / 2.0 } else { c };
        if let Some(win) = sh.window {
            c_eff = c_eff.min(win as f64);
        }
        let a = sh.heads as f64;
        let pair = match (sh.mla, decode) {
            (Some((r, rope)), true) => 2.0 * a * (2 * r + rope) as f64,
            _ => 2.0 * a * (sh.qk_dim + sh.v_dim) as f64,
        };
        let mut attn_flops = b * s * c_eff * pair;
        let kv_tok = sh.kv_elems as f64 * kvb;
        let c_kv = sh.window.map_or(c, |win| c.min(win as f64));
        let q_o_bytes = t * a * (sh.qk_dim + sh.v_dim) as f64 * act;
        let mut attn_bytes = q_o_bytes
            + if decode {
                b * c_kv * kv_tok + t * kv_tok
            } else if sh.ty == BlockType::Encoder {
                // K and V written and read once (not cached).
                2.0 * t * 2.0 * sh.kv_heads as f64 * sh.qk_dim as f64 * act
            } else {
                t * kv_tok + b * c_kv * kv_tok
            };
        if !w.flash_attention && !decode {
            attn_bytes += 4.0 * b * a * s * c_eff * act;
        }
        if sh.ty == BlockType::CrossDecoder {
            let pair_x = 2.0 * a * (sh.qk_dim + sh.v_dim) as f64;
            attn_flops += b * s * c * pair_x;
            attn_bytes += q_o_bytes + b * c * 2.0 * (sh.kv_heads * sh.qk_dim) as f64 * act;
        }
        // ---- activations in/out of operators (projections + MLP)
        let qkv_out = (a * sh.qk_dim as f64 + 2.0 * (sh.kv_heads * sh.qk_dim) as f64).max(0.0);
        let mlp_traffic = sh.mlp_hidden_active * if sh.gated { 6.0 } else { 4.0 };
        let act_traffic = t
            * act
            * (2.0 * d + 2.0 * qkv_out + 2.0 * d + mlp_traffic + 4.0 * d * sh.n_norms as f64 / 2.0);
        cost.fwd_flops = lin_flops + attn_flops;
        cost.attn_fwd_flops = attn_flops;
        cost.attn_fwd_bytes = attn_bytes;
        cost.fwd_bytes = lin_weight_read + act_traffic + attn_bytes;
        cost.out_bytes = t * d * act;
        cost.infer_act_bytes = t
            * act
            * (2.0 * d + qkv_out.max(sh.mlp_hidden_active * if sh.gated { 3.0 } else { 2.0 }))
            + if w.flash_attention || decode {
                0.0
            } else {
                b * a * s * c_eff * act
            };
        if training {
            cost.bwd_act_flops = lin_flops + 2.0 * attn_flops;
            cost.bwd_weight_flops = lin_flops;
            let e = act;
            let kvh = sh.kv_heads as f64;
            let (qk, vd) = (sh.qk_dim as f64, sh.v_dim as f64);
            let attn_lin = |s_: f64| s_ * b * (e * (d + a * qk + kvh * qk + kvh * vd + a * vd) + d);
            let scores = |c_: f64| (2.0 * e + 1.0) * a * s * c_ * b;
            let flash_keep = s * b * (e * a * vd) + 4.0 * a * s * b;
            let n_attn = if sh.ty == BlockType::CrossDecoder {
                2.0
            } else {
                1.0
            };
            let base_attn = n_attn * attn_lin(s);
            let score_term = if sh.ty == BlockType::CrossDecoder {
                scores(c) + scores(c)
            } else {
                scores(c)
            };
            let mlp =
                s * b * (e * d + (if sh.gated { 3.0 } else { 2.0 }) * e * sh.mlp_hidden_active + d)
                    + if sh.n_experts > 0 {
                        s * b * e * sh.n_experts as f64
                    } else {
                        0.0
                    };
            let norms = sh.n_norms as f64 * s * b * e * d;
            let full = base_attn
                + mlp
                + norms
                + if w.flash_attention {
                    n_attn * flash_keep
                } else {
                    score_term
                };
            cost.train_act_bytes = match w.recompute {
                Recompute::None => full,
                Recompute::Selective => {
                    base_attn
                        + mlp
                        + norms
                        + if w.flash_attention {
                            n_attn * flash_keep
                        } else {
                            0.0
                        }
                }
                Recompute::Full => e * s * b * d,
            };
            match w.recompute {
                Recompute::Full => {
                    cost.recompute_peak_bytes = full;
                    cost.recompute_flops = cost.fwd_flops;
                }
                Recompute::Selective => cost.recompute_flops = attn_flops,
                Recompute::None => {}
            }
        }
        out.push(cost);
    }

    // ---- head
    let hp = head_params(card);
    let encoder_only = card.arch == Arch::Encoder;
    let mut head = LayerCost {
        name: "head".into(),
        kind: LayerKind::Head,
        block: None,
        params: hp,
        active_params: hp,
        weight_bytes: hp * ewb,
        fwd_flops: 0.0,
        bwd_act_flops: 0.0,
        bwd_weight_flops: 0.0,
        recompute_flops: 0.0,
        fwd_bytes: 0.0,
        attn_fwd_flops: 0.0,
        attn_fwd_bytes: 0.0,
        out_bytes: 0.0,
        out_bytes_per_token: 0.0,
        kv_bytes_per_token: 0.0,
        kv_window: None,
        train_act_bytes: 0.0,
        recompute_peak_bytes: 0.0,
        infer_act_bytes: 0.0,
    };
    if encoder_only {
        // Pooler on the first token of each sequence.
        let flops = 2.0 * b * d * d;
        head.fwd_flops = flops;
        head.fwd_bytes = hp * ewb + t * d * act + b * d * act;
        head.out_bytes = b * d * act;
        head.out_bytes_per_token = if s > 0.0 { d * act / s } else { 0.0 };
        head.infer_act_bytes = t * d * act + b * d * act;
        if training {
            head.bwd_act_flops = flops;
            head.bwd_weight_flops = flops;
            head.train_act_bytes = b * d * act;
        }
    } else {
        // Logits: all tokens in training and decode, last token per sequence in prefill.
        let rows = if w.phase == Phase::Prefill { b } else { t };
        let flops = 2.0 * rows * d * vocab;
        let lm_read = vocab * d * ewb; // tied heads read the shared embedding matrix
        head.fwd_flops = flops;
        head.fwd_bytes =
            lm_read + norm_params(card) as f64 * act + 2.0 * t * d * act + rows * vocab * act;
        head.out_bytes = rows * vocab * act;
        head.out_bytes_per_token = vocab * act;
        head.infer_act_bytes = 2.0 * t * d * act + rows * vocab * act;
        if training {
            head.bwd_act_flops = flops;
            head.bwd_weight_flops = flops;
            head.train_act_bytes = t * d * act + t * vocab * (act + 4.0);
        }
    }
    out.push(head);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn card(n: &str) -> std::sync::Arc<LlmCard> {
        Catalog::builtin().llm(n).unwrap()
    }

    #[test]
    fn llama2_7b_exact_count() {
        let p = param_count(&card("llama-2-7b"));
        assert_eq!(p.total, 6_738_415_616.0);
        assert_eq!(
            kv_bytes_per_token(&card("llama-2-7b"), DType::Fp16),
            512.0 * 1024.0
        );
    }

    #[test]
    fn checkpoint_counts() {
        assert_eq!(param_count(&card("gpt2-xl")).total, 1_557_611_200.0);
        assert_eq!(param_count(&card("bert-base")).total, 109_482_240.0);
        assert_eq!(param_count(&card("bert-large")).total, 335_141_888.0);
        assert_eq!(param_count(&card("t5-base")).total, 222_903_552.0);
    }

    #[test]
    fn table_is_ordered_and_sums_to_total() {
        for c in Catalog::builtin().llms() {
            let t = layer_table(c, &Workload::prefill(1, 16, DType::Fp16));
            assert_eq!(t.len(), c.total_blocks() as usize + 2);
            assert_eq!(t[0].kind, LayerKind::Embedding);
            assert_eq!(t.last().unwrap().kind, LayerKind::Head);
            let sum: f64 = t.iter().map(|l| l.params).sum();
            assert!((sum - param_count(c).total).abs() < 1.0, "{}", c.name);
        }
    }

    #[test]
    fn sliding_window_layers() {
        let g = card("gemma-2-2b");
        let t = layer_table(&g, &Workload::decode(1, 8192, DType::Bf16));
        assert_eq!(t[1].kv_window, Some(4096));
        assert_eq!(t[2].kv_window, None);
        let m = card("mistral-7b");
        assert_eq!(
            kv_cache_bytes(&m, DType::Fp16, 32768),
            kv_bytes_per_token(&m, DType::Fp16) * 4096.0
        );
    }
}
