//! LLM architecture cards (`models/llm/*.json`).

use crate::error::Result;
use crate::validate::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Overall architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Decoder-only (GPT, LLaMA, ...).
    #[default]
    Decoder,
    /// Encoder-only (BERT).
    Encoder,
    /// Encoder-decoder (T5): `n_layers` encoder blocks plus `decoder_layers` decoder blocks.
    EncoderDecoder,
}

/// Normalisation layers (LayerNorm has a bias, RMSNorm does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    #[default]
    Rmsnorm,
    Layernorm,
}

/// Position encoding (learned absolute positions add `max_position_embeddings x d_model` parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum PositionKind {
    #[default]
    Rope,
    Learned,
    /// T5-style relative attention bias (`relative_attention_num_buckets x n_heads` per stack).
    Relative,
    Alibi,
}

/// Mixture-of-Experts configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoeConfig {
    /// Routed experts per MoE layer.
    pub n_experts: u32,
    /// Routed experts activated per token.
    pub top_k: u32,
    /// Always-active shared experts per MoE layer.
    #[serde(default)]
    pub n_shared: u32,
    /// Hidden size of one routed expert's MLP.
    pub expert_d_ff: u64,
    /// Hidden size of one shared expert (defaults to `expert_d_ff`).
    #[serde(default)]
    pub shared_d_ff: Option<u64>,
    /// Whether the shared experts have a sigmoid gate (Qwen-MoE: a `d_model x 1` gate).
    #[serde(default)]
    pub shared_gate: bool,
    /// Indices of blocks that keep a dense MLP of `d_ff` (DeepSeek: `[0]`).
    #[serde(default)]
    pub dense_layers: Vec<u32>,
}

/// Multi-head latent attention (DeepSeek-V2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MlaConfig {
    /// Rank of the compressed KV latent (cached per token per layer).
    pub kv_lora_rank: u64,
    /// Rank of the compressed query (None = full-rank query projection).
    #[serde(default)]
    pub q_lora_rank: Option<u64>,
    /// Per-head query/key dimension without rotary part.
    pub qk_nope_head_dim: u64,
    /// Rotary part of query/key (the rotary key is shared by heads and cached).
    pub qk_rope_head_dim: u64,
    /// Per-head value dimension.
    pub v_head_dim: u64,
}

/// Sliding-window attention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlidingWindow {
    /// Window length in tokens.
    pub window: u64,
    /// Every `every`-th layer is global (Gemma-2 alternates: `every = 2`); `None` = all layers windowed.
    #[serde(default)]
    pub global_every: Option<u32>,
}

/// One LLM architecture. Field names follow Hugging Face `config.json` where one exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmCard {
    /// Canonical catalog name, lower-case with dashes (`llama-2-7b`).
    pub name: String,
    /// Other names that resolve to this card (`LLaMA-2-7B`, `meta-llama/Llama-2-7b-hf`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Always `"llm"` in files (lets a flat directory mix card kinds).
    #[serde(default)]
    pub kind: Option<String>,
    /// Model family (gpt2, gpt3, opt, llama, mistral, qwen, phi, gemma, mobilellm, deepseek, bert, t5).
    pub family: String,
    #[serde(default)]
    pub arch: Arch,
    /// Transformer blocks (the encoder's for encoder-decoder models).
    pub n_layers: u32,
    /// Decoder blocks of an encoder-decoder model.
    #[serde(default)]
    pub decoder_layers: Option<u32>,
    pub d_model: u64,
    pub n_heads: u64,
    /// Key/value heads (GQA); equal to `n_heads` for MHA.
    pub n_kv_heads: u64,
    pub head_dim: u64,
    /// MLP hidden size (of dense blocks).
    pub d_ff: u64,
    pub vocab_size: u64,
    /// Context length the model supports.
    pub max_context: u64,
    /// Input embedding shared with the output head.
    #[serde(default)]
    pub tied_embeddings: bool,
    /// SwiGLU/GeGLU MLP with three matrices (gate, up, down) instead of two.
    #[serde(default)]
    pub gated_mlp: bool,
    #[serde(default)]
    pub norm: NormKind,
    #[serde(default)]
    pub position: PositionKind,
    /// Learned position table rows (GPT-2, OPT (+2 offset), BERT); relative buckets for T5.
    #[serde(default)]
    pub position_embeddings: Option<u64>,
    /// Biases on Q, K, V projections (Qwen).
    #[serde(default)]
    pub qkv_bias: bool,
    /// Biases on every linear layer (GPT-2/3, OPT, BERT).
    #[serde(default)]
    pub linear_bias: bool,
    /// BERT token-type embeddings and pooler are counted when set.
    #[serde(default)]
    pub token_type_vocab: Option<u64>,
    #[serde(default)]
    pub moe: Option<MoeConfig>,
    #[serde(default)]
    pub mla: Option<MlaConfig>,
    #[serde(default)]
    pub sliding_window: Option<SlidingWindow>,
    /// Published total parameter count (checked against the computed one within 1%).
    pub published_params: f64,
    /// Published active parameters per token (MoE).
    #[serde(default)]
    pub published_active_params: Option<f64>,
    /// Where the configuration comes from.
    pub source: String,
    #[serde(default)]
    pub confidence: super::Confidence,
    #[serde(default)]
    pub notes: Option<String>,
}

impl LlmCard {
    /// Checks the card's numbers (positive sizes, consistent heads).
    pub fn validate(&self) -> Result<()> {
        let c = Check::root();
        c.field("name")
            .ensure(!self.name.trim().is_empty(), || "must not be empty".into())?;
        for (f, v) in [
            ("n_layers", self.n_layers as u64),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("head_dim", self.head_dim),
            ("d_ff", self.d_ff),
            ("vocab_size", self.vocab_size),
            ("max_context", self.max_context),
        ] {
            c.field(f).at_least_one(v)?;
        }
        c.field("n_kv_heads").ensure(
            self.n_kv_heads <= self.n_heads && self.n_heads.is_multiple_of(self.n_kv_heads),
            || {
                format!(
                    "must divide n_heads ({}), got {}",
                    self.n_heads, self.n_kv_heads
                )
            },
        )?;
        c.field("published_params")
            .positive(self.published_params)?;
        if let Some(m) = &self.moe {
            let mc = c.field("moe");
            mc.field("n_experts").at_least_one(m.n_experts as u64)?;
            mc.field("top_k")
                .ensure(m.top_k >= 1 && m.top_k <= m.n_experts, || {
                    format!(
                        "must be in [1, n_experts = {}], got {}",
                        m.n_experts, m.top_k
                    )
                })?;
            mc.field("expert_d_ff").at_least_one(m.expert_d_ff)?;
            for (i, &l) in m.dense_layers.iter().enumerate() {
                mc.field("dense_layers")
                    .index(i)
                    .ensure(l < self.n_layers, || {
                        format!(
                            "block index {l} out of range (n_layers = {})",
                            self.n_layers
                        )
                    })?;
            }
        }
        if self.arch == Arch::EncoderDecoder {
            c.field("decoder_layers")
                .ensure(self.decoder_layers.is_some_and(|d| d >= 1), || {
                    "encoder_decoder needs decoder_layers >= 1".into()
                })?;
        }
        Ok(())
    }

    /// Total transformer blocks (encoder + decoder for encoder-decoder models).
    pub fn total_blocks(&self) -> u32 {
        self.n_layers + self.decoder_layers.unwrap_or(0)
    }

    /// Whether block `i` (0-based) has a MoE MLP.
    pub fn is_moe_block(&self, i: u32) -> bool {
        self.moe
            .as_ref()
            .is_some_and(|m| !m.dense_layers.contains(&i))
    }
}
