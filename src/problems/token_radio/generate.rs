//! Random instances: a vision-language workload (LLaVA-1.5-style: one 336 px image = 576 patch
//! tokens, or none, plus 16–96 text tokens) served by `llama-2-7b` (the LLaVA-1.5-7B language
//! backbone) on `a100-80gb-sxm` under `vllm`. Per-user draws: 400–1200 bits per token, spectral
//! efficiency 1–6 bit/s/Hz, deadline 0.6–2.0 s, weight 0.5–2, saturating accuracy (floor 0.2–0.4,
//! max 0.75–0.95, rate 2–8), minimum kept fraction = the text share. Cell: 0.4 MHz per user (20 MHz
//! for 50 users). The server is the catalog card for K ≤ 50; beyond, the prefill work is still the
//! catalog fit and the FLOP/s are those of K/50 such cards (a pooled server), so that the instance
//! stays in the regime of the worked example. Sizes: `small` (3 users), `medium` (50), `large`
//! (1000), or a number of users.

use super::cost::Compute;
use super::instance::*;
use crate::catalog::Catalog;
use crate::cost::roofline::Hardware;
use crate::cost::DType;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Catalog device of the generated server.
pub const DEVICE: &str = "a100-80gb-sxm";
/// Catalog model of the generated server.
pub const MODEL: &str = "llama-2-7b";

/// The catalog compute model of the generated server.
pub fn catalog_compute() -> Result<Compute> {
    let cat = Catalog::builtin();
    let hw = Hardware::from_catalog(cat, DEVICE, None)?;
    let card = cat.llm(MODEL)?;
    let (w1, w2, ops) = fit_prefill_flops(&card, DType::Fp16, &hw);
    Ok(Compute {
        w1,
        w2,
        flops_per_s: hw.effective_flops(DType::Fp16.compute()),
        overhead_s: ops,
        source: format!("{MODEL} on {DEVICE}"),
    })
}

/// Users drawn as in the module doc.
pub fn users(k: usize, rng: &mut ChaCha8Rng) -> Vec<UserSpec> {
    (0..k)
        .map(|i| {
            let text = rng.random_range(16..=96) as f64;
            let image = if rng.random_bool(0.85) { 576.0 } else { 0.0 };
            let floor = rng.random_range(0.2..0.4);
            UserSpec {
                name: format!("u{i}"),
                text_tokens: text,
                image_tokens: image,
                bits_per_token: rng.random_range(400.0..1200.0),
                spectral_efficiency: Some(rng.random_range(1.0..6.0)),
                channel_gain: None,
                tx_power_w: None,
                deadline_s: rng.random_range(0.6..2.0),
                weight: rng.random_range(0.5..2.0),
                min_kept_fraction: text / (text + image),
                accuracy: AccuracySpec::Saturating {
                    floor,
                    max: rng.random_range(0.75..0.95),
                    rate: rng.random_range(2.0..8.0),
                },
            }
        })
        .collect()
}

/// A random instance.
pub fn generate(size: &str, seed: u64) -> Result<TokenRadioInstance> {
    let k: usize = match size {
        "small" => 3,
        "medium" => 50,
        "large" => 1000,
        s => s.parse().ok().filter(|&k| k >= 1).ok_or_else(|| {
            Error::invalid(
                "$.size",
                format!("unknown size '{s}' (small, medium, large, or a number of users)"),
            )
        })?,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let server = if k <= 50 {
        ServerSpec {
            device: Some(DEVICE.into()),
            runtime: None,
            model: Some(MODEL.into()),
            dtype: None,
            flops_per_token: None,
            flops_per_token_sq: None,
            effective_flops: None,
            overhead_s: None,
        }
    } else {
        let c = catalog_compute()?;
        ServerSpec {
            device: None,
            runtime: None,
            model: None,
            dtype: None,
            flops_per_token: Some(c.w1),
            flops_per_token_sq: Some(c.w2),
            effective_flops: Some(c.flops_per_s * k as f64 / 50.0),
            overhead_s: Some(c.overhead_s),
        }
    };
    Ok(TokenRadioInstance {
        bandwidth_hz: 0.4e6 * k as f64,
        noise_psd_w_per_hz: None,
        rate_model: RateSpec::Linear,
        objective: Objective::WeightedSum,
        allow_drop: false,
        server,
        users: users(k, &mut rng),
    })
}
