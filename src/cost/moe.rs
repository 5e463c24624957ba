//! Mixture-of-Experts expert sizes: bytes and FLOPs of one routed expert, the MoE blocks of a card,
//! and the hidden-state bytes a token carries to a remote expert (dispatch) and back (combine).
//!
//! One routed expert is an MLP of hidden size `expert_d_ff` with the card's MLP shape (SwiGLU: gate,
//! up, down = `3·d·f` weights; plain: `2·d·f`; plus biases when the card has linear biases), the same
//! shape `layer_table` counts for the expert bank. Forward FLOPs per token routed to it = `2 × params`
//! (one multiply-add per weight). Shared experts are always active and run next to attention on the
//! token's home server; they are reported here but not placed.

use super::DType;
use crate::catalog::LlmCard;

/// Sizes of the routed experts of a MoE card.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeExpertCost {
    /// 0-based indices of the blocks with a MoE MLP.
    pub moe_blocks: Vec<u32>,
    /// Routed experts per MoE block.
    pub n_experts: u32,
    /// Routed experts per token.
    pub top_k: u32,
    /// Always-active shared experts per MoE block.
    pub n_shared: u32,
    /// Parameters of one routed expert.
    pub expert_params: f64,
    /// Bytes of one routed expert's weights in the weight dtype.
    pub expert_bytes: f64,
    /// Forward FLOPs of one routed expert for one token.
    pub expert_flops_per_token: f64,
    /// Parameters of one shared expert (0 without shared experts).
    pub shared_params: f64,
    /// Hidden-state bytes per token sent to an expert (and the same back), activation dtype.
    pub hidden_bytes_per_token: f64,
}

fn mlp_params(card: &LlmCard, f: u64) -> f64 {
    let d = card.d_model;
    let mats = if card.gated_mlp { 3 } else { 2 };
    let mut p = mats * d * f;
    if card.linear_bias {
        p += (mats - 1) * f + d;
    }
    p as f64
}

/// The routed-expert sizes of a MoE card (`None` for a dense card).
pub fn moe_expert_cost(card: &LlmCard, dtype: DType) -> Option<MoeExpertCost> {
    let m = card.moe.as_ref()?;
    let moe_blocks: Vec<u32> = (0..card.total_blocks())
        .filter(|&i| card.is_moe_block(i))
        .collect();
    let expert_params = mlp_params(card, m.expert_d_ff);
    let shared_params = if m.n_shared > 0 {
        mlp_params(card, m.shared_d_ff.unwrap_or(m.expert_d_ff))
    } else {
        0.0
    };
    Some(MoeExpertCost {
        moe_blocks,
        n_experts: m.n_experts,
        top_k: m.top_k,
        n_shared: m.n_shared,
        expert_params,
        expert_bytes: expert_params * dtype.bytes(),
        expert_flops_per_token: 2.0 * expert_params,
        shared_params,
        hidden_bytes_per_token: card.d_model as f64 * dtype.activation().bytes(),
    })
}
