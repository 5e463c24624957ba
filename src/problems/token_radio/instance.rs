//! The instance as written in JSON, and its validation into [`Prepared`].

use super::cost::{Compute, Curve, Prepared, RateModel, User};
use crate::catalog::Catalog;
use crate::cost::roofline::{layer_time, Hardware};
use crate::cost::{layer_table, DType, LayerKind, Workload};
use crate::error::Result;
use crate::validate::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What is maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// `Σ_k w_k A_k(ρ_k)` (dropped users count 0).
    #[default]
    WeightedSum,
    /// `min_k A_k(ρ_k)` (fairness; every user served).
    MaxMin,
}

/// How the uplink rate depends on the bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum RateSpec {
    /// `r = η_k b` with the user's `spectral_efficiency` η_k (bit/s/Hz).
    #[default]
    Linear,
    /// `r = b log2(1 + p_k g_k / (N0 b))`.
    Shannon,
}

/// The prefill cost of the served model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Device card of the edge server (e.g. `a100-80gb-sxm`); gives the effective FLOP/s.
    pub device: Option<String>,
    /// Runtime profile (default per device class).
    pub runtime: Option<String>,
    /// Catalog LLM served (e.g. `llama-2-7b`, the LLaVA-1.5-7B language backbone).
    pub model: Option<String>,
    /// Weight dtype (`fp16` default).
    pub dtype: Option<String>,
    /// Explicit alternative to the catalog: prefill FLOPs per kept token (linear part).
    pub flops_per_token: Option<f64>,
    /// Explicit alternative: FLOPs per kept token squared (attention part).
    pub flops_per_token_sq: Option<f64>,
    /// Explicit alternative: effective server FLOP/s.
    pub effective_flops: Option<f64>,
    /// Fixed compute overhead per request, s (default: the runtime's per-operator latency × operators
    /// plus the roofline time of the last-token LM head, see [`fit_prefill_flops`]).
    pub overhead_s: Option<f64>,
}

/// An accuracy curve of the kept fraction ρ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AccuracySpec {
    /// Profiled points `[ρ, A]`, ρ strictly increasing in [0, 1], linearly interpolated; the
    /// first point's ρ must be ≤ the user's minimum kept fraction and the last must be 1.
    Points(Vec<[f64; 2]>),
    /// `A(ρ) = floor + (max − floor)·(1 − e^{−rate·ρ}) / (1 − e^{−rate})`, concave for rate > 0.
    Saturating { floor: f64, max: f64, rate: f64 },
}

/// One user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    /// Text tokens of the prompt.
    pub text_tokens: f64,
    /// Image-patch tokens of the prompt.
    #[serde(default)]
    pub image_tokens: f64,
    /// Bits per uploaded token.
    pub bits_per_token: f64,
    /// bit/s/Hz (linear rate model).
    #[serde(default)]
    pub spectral_efficiency: Option<f64>,
    /// Linear channel power gain (Shannon rate model).
    #[serde(default)]
    pub channel_gain: Option<f64>,
    /// Transmit power, W (Shannon rate model).
    #[serde(default)]
    pub tx_power_w: Option<f64>,
    /// End-to-end deadline (upload + prefill), s.
    pub deadline_s: f64,
    #[serde(default = "one")]
    pub weight: f64,
    /// Minimum kept fraction of the tokens (e.g. text_tokens / total to never prune text).
    #[serde(default)]
    pub min_kept_fraction: f64,
    pub accuracy: AccuracySpec,
}

fn one() -> f64 {
    1.0
}

/// The instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRadioInstance {
    /// Total uplink bandwidth of the cell, Hz.
    pub bandwidth_hz: f64,
    /// Noise power spectral density N0, W/Hz (Shannon model; default 4e-21, −174 dBm/Hz).
    #[serde(default)]
    pub noise_psd_w_per_hz: Option<f64>,
    #[serde(default)]
    pub rate_model: RateSpec,
    #[serde(default)]
    pub objective: Objective,
    /// Whether a user may be dropped (not served, accuracy 0, no resources).
    #[serde(default)]
    pub allow_drop: bool,
    pub server: ServerSpec,
    pub users: Vec<UserSpec>,
}

impl TokenRadioInstance {
    /// Validates and resolves the instance.
    pub fn prepare(&self, catalog: &Catalog) -> Result<Prepared> {
        let root = Check::root();
        let bw = root.field("bandwidth_hz").positive(self.bandwidth_hz)?;
        let n0 = match self.noise_psd_w_per_hz {
            Some(v) => root.field("noise_psd_w_per_hz").positive(v)?,
            None => 4.0e-21,
        };
        let compute = self.compute(catalog)?;
        let uc = root.field("users");
        uc.non_empty(&self.users)?;
        let mut users = Vec::with_capacity(self.users.len());
        for (k, u) in self.users.iter().enumerate() {
            let c = uc.index(k);
            let text = c.field("text_tokens").nonneg(u.text_tokens)?;
            let image = c.field("image_tokens").nonneg(u.image_tokens)?;
            let tokens = text + image;
            c.ensure(tokens > 0.0, || "a user needs at least one token".into())?;
            let bits = c.field("bits_per_token").positive(u.bits_per_token)?;
            let deadline = c.field("deadline_s").positive(u.deadline_s)?;
            let weight = c.field("weight").nonneg(u.weight)?;
            let rho_min = c
                .field("min_kept_fraction")
                .in_range(u.min_kept_fraction, 0.0, 1.0)?;
            let rate = match self.rate_model {
                RateSpec::Linear => {
                    let e = u.spectral_efficiency.ok_or_else(|| {
                        c.field("spectral_efficiency")
                            .err("required by the linear rate model")
                    })?;
                    RateModel::Linear {
                        efficiency: c.field("spectral_efficiency").positive(e)?,
                    }
                }
                RateSpec::Shannon => {
                    let g = u.channel_gain.ok_or_else(|| {
                        c.field("channel_gain")
                            .err("required by the Shannon rate model")
                    })?;
                    let p = u.tx_power_w.ok_or_else(|| {
                        c.field("tx_power_w")
                            .err("required by the Shannon rate model")
                    })?;
                    let g = c.field("channel_gain").positive(g)?;
                    let p = c.field("tx_power_w").positive(p)?;
                    RateModel::Shannon {
                        power_w: p,
                        gain: g,
                        n0,
                    }
                }
            };
            let curve = prepare_curve(&u.accuracy, rho_min, &c.field("accuracy"))?;
            users.push(User {
                name: u.name.clone(),
                tokens,
                bits,
                deadline,
                weight,
                rho_min,
                rate,
                curve,
            });
        }
        Ok(Prepared {
            bandwidth_hz: bw,
            compute,
            objective: self.objective,
            allow_drop: self.allow_drop,
            users,
        })
    }

    fn compute(&self, catalog: &Catalog) -> Result<Compute> {
        let c = Check::root().field("server");
        let s = &self.server;
        let overhead = match s.overhead_s {
            Some(v) => Some(c.field("overhead_s").nonneg(v)?),
            None => None,
        };
        if let (Some(w1), Some(f)) = (s.flops_per_token, s.effective_flops) {
            let w2 = s.flops_per_token_sq.unwrap_or(0.0);
            return Ok(Compute {
                w1: c.field("flops_per_token").positive(w1)?,
                w2: c.field("flops_per_token_sq").nonneg(w2)?,
                flops_per_s: c.field("effective_flops").positive(f)?,
                overhead_s: overhead.unwrap_or(0.0),
                source: "explicit".into(),
            });
        }
        let dev = s.device.as_deref().ok_or_else(|| {
            c.field("device")
                .err("give device + model, or flops_per_token + effective_flops")
        })?;
        let model = s
            .model
            .as_deref()
            .ok_or_else(|| c.field("model").err("required with a device card"))?;
        let hw = Hardware::from_catalog(catalog, dev, s.runtime.as_deref())
            .map_err(|e| e.at(c.field("device").path()))?;
        let card = catalog
            .llm(model)
            .map_err(|e| e.at(c.field("model").path()))?;
        let dtype: DType = match &s.dtype {
            None => DType::Fp16,
            Some(d) => {
                serde_json::from_value(serde_json::Value::String(d.clone())).map_err(|_| {
                    c.field("dtype").err(format!(
                        "unknown dtype '{d}' (fp32, bf16, fp16, fp8, int8, int4)"
                    ))
                })?
            }
        };
        let (w1, w2, ops) = fit_prefill_flops(&card, dtype, &hw);
        Ok(Compute {
            w1,
            w2,
            flops_per_s: hw.effective_flops(dtype.compute()),
            overhead_s: overhead.unwrap_or(ops),
            source: format!("{model} on {dev} ({dtype:?}), cost::layer_table prefill fit"),
        })
    }
}

/// Fits `FLOPs(n) = w1·n + w2·n²` to the cost model's prefill FLOPs of the embedding and the blocks
/// (batch 1) at n = 256 and 1024: projections/MLP are linear in n, attention scores and AV quadratic,
/// so the fit is exact. The LM head runs on the last token only in prefill (a constant `2·d·V` FLOPs,
/// memory-bound: it reads the whole `V×d` matrix), so it is costed by the roofline
/// (`roofline::layer_time` on the whole device) as part of the fixed overhead, together with the
/// runtime's per-operator latency of every layer. Returns `(w1, w2, overhead_s)`.
pub fn fit_prefill_flops(
    card: &crate::catalog::LlmCard,
    dtype: DType,
    hw: &Hardware,
) -> (f64, f64, f64) {
    let body = |n: u64| -> f64 {
        layer_table(card, &Workload::prefill(1, n, dtype))
            .iter()
            .filter(|l| l.kind != LayerKind::Head)
            .map(|l| l.fwd_flops)
            .sum()
    };
    let (n1, n2) = (256.0, 1024.0);
    let (f1, f2) = (body(256), body(1024));
    // f = w1 n + w2 n²  ->  f/n = w1 + w2 n
    let w2 = ((f2 / n2 - f1 / n1) / (n2 - n1)).max(0.0);
    let w1 = (f1 / n1 - w2 * n1).max(0.0);
    let w = Workload::prefill(1, 1, dtype);
    let mut overhead = 0.0;
    for l in layer_table(card, &w) {
        overhead += if l.kind == LayerKind::Head {
            layer_time(&l, hw, &w, 0.0, true).fwd_s
        } else {
            hw.ops_for(l.kind) as f64 * hw.per_op_latency_s()
        };
    }
    (w1, w2, overhead)
}

fn prepare_curve(a: &AccuracySpec, rho_min: f64, c: &Check) -> Result<Curve> {
    match a {
        AccuracySpec::Saturating { floor, max, rate } => {
            let cc = c.field("saturating");
            let floor = cc.field("floor").in_range(*floor, 0.0, 1.0)?;
            let max = cc.field("max").in_range(*max, 0.0, 1.0)?;
            cc.ensure(max >= floor, || "max must be >= floor".into())?;
            let rate = cc.field("rate").positive(*rate)?;
            Ok(Curve::Saturating { floor, max, rate })
        }
        AccuracySpec::Points(pts) => {
            let cc = c.field("points");
            cc.ensure(pts.len() >= 2, || "needs at least two points".into())?;
            let mut xs = vec![];
            let mut ys = vec![];
            for (i, p) in pts.iter().enumerate() {
                let pc = cc.index(i);
                let x = pc.index(0).in_range(p[0], 0.0, 1.0)?;
                let y = pc.index(1).in_range(p[1], 0.0, 1.0)?;
                if let Some(&last) = xs.last() {
                    pc.index(0)
                        .ensure(x > last, || "ρ must be strictly increasing".into())?;
                    pc.index(1).ensure(y >= *ys.last().unwrap_or(&0.0), || {
                        "accuracy must be nondecreasing in ρ".into()
                    })?;
                }
                xs.push(x);
                ys.push(y);
            }
            cc.ensure(xs[0] <= rho_min + 1e-12, || {
                format!(
                    "the first point's ρ ({}) must be <= min_kept_fraction ({rho_min})",
                    xs[0]
                )
            })?;
            cc.ensure((xs[xs.len() - 1] - 1.0).abs() < 1e-12, || {
                "the last point's ρ must be 1".into()
            })?;
            Ok(Curve::Points { xs, ys })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_fit_reproduces_the_cost_model() {
        let cat = Catalog::builtin();
        for (model, dev) in [
            ("llama-2-7b", "h100-sxm"),
            ("qwen2.5-0.5b", "a100-80gb-sxm"),
        ] {
            let hw = Hardware::from_catalog(cat, dev, None).unwrap();
            let card = cat.llm(model).unwrap();
            let (w1, w2, ops) = fit_prefill_flops(&card, DType::Fp16, &hw);
            assert!(w1 > 0.0 && w2 > 0.0 && ops >= 0.0);
            for n in [64u64, 512, 2048] {
                let f: f64 = layer_table(&card, &Workload::prefill(1, n, DType::Fp16))
                    .iter()
                    .filter(|l| l.kind != LayerKind::Head)
                    .map(|l| l.fwd_flops)
                    .sum();
                let fit = w1 * n as f64 + w2 * (n * n) as f64;
                assert!(
                    (fit - f).abs() <= 1e-9 * f,
                    "{model} n={n}: fit {fit} vs {f}"
                );
            }
        }
    }
}
