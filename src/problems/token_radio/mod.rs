//! # Family `token_radio`: token pruning with radio and compute allocation for multi-user edge inference
//!
//! Seeds: survey 003 §9.1 (centralised edge inference: cross-modal input-token reduction; "the
//! optimization problem can be formulated as maximizing accuracy (or fairness) under
//! computation-communication latency constraints, by jointly optimizing users' token pruning ratios
//! and radio resource allocation"; allocate more spectrum and compute to latency-sensitive users) and
//! §8.1 (importance-aware token upload: more radio resource to more important data). Anchor row F5 of
//! `reference/anchors.md`: no public LLM anchor; the structure (convex resource allocation, closed-form
//! per-user response, bisection on a multiplier) follows You–Huang–Chae–Kim (TWC 2017, row F6).
//!
//! ## Sets and parameters
//! - users `k = 1..K`: input tokens `N_k = text_k + image_k` (image patches and text), bits per
//!   uploaded token `s_k` (bit), deadline `D_k` (s), weight `w_k ≥ 0`, minimum kept fraction
//!   `ρ_min,k ∈ [0,1]` (e.g. `text_k / N_k` so text is never pruned), accuracy curve `A_k(ρ)`
//!   (nondecreasing; profiled points linearly interpolated, or `floor + (max − floor)(1 − e^{−aρ}) /
//!   (1 − e^{−a})`), rate model: linear `r_k(b) = η_k b` (η_k bit/s/Hz) or Shannon
//!   `r_k(b) = b log2(1 + p_k g_k / (N0 b))` (`cost::shannon_rate_bps`; p W, g linear gain, N0 W/Hz);
//! - the edge server: total uplink bandwidth `B` (Hz); the served model's prefill work
//!   `W(n) = w1 n + w2 n²` FLOPs for `n` kept tokens, fitted exactly to `cost::layer_table` of a
//!   prefill `Workload` of the catalog model, embedding and blocks (`w2 n²` is the attention core,
//!   quadratic in the kept tokens); effective FLOP/s `F` of the device card
//!   (`roofline::Hardware::effective_flops`); a fixed overhead `τ0` s per request (runtime
//!   per-operator latency × operators + the roofline time of the last-token LM head, which is
//!   memory-bound and independent of `n`), or explicit numbers.
//!
//! ## Decisions
//! Per user: served or dropped (only when `allow_drop`), kept fraction `ρ_k ∈ [ρ_min,k, 1]`
//! (`n_k = ρ_k N_k` tokens, continuous), bandwidth `b_k ≥ 0` Hz, compute share `φ_k ≥ 0` of the server.
//!
//! ## Constraints
//! - bandwidth `Σ b_k ≤ B`; compute `Σ φ_k ≤ 1`;
//! - deadline: `T_k = n_k s_k / r_k(b_k) + W(n_k) / (φ_k F) + τ0 ≤ D_k` (upload of the kept tokens,
//!   then prefill on the user's share; processor sharing);
//! - kept-fraction bounds; a dropped user gets `b = φ = 0`, accuracy 0.
//!
//! ## Objectives (`objective`)
//! - `weighted_sum`: maximise `Σ w_k A_k(ρ_k)`;
//! - `max_min`: maximise `min_k A_k(ρ_k)` (fairness; all users served).
//!
//! ## Convexity (and where it fails)
//! Write `D'_k = D_k − τ0`.
//! 1. *Fixed kept tokens.* For fixed `n`, `{(b, φ): n s / r(b) + W(n)/(φF) ≤ D'}` is convex: `1/r` is
//!    convex for `r` concave positive, `1/φ` is convex. So "can kept tokens `n_1..n_K` be served" is a
//!    convex feasibility problem, solved by [`cost::Prepared::allocate`] (bisection on the price κ of
//!    compute; each user minimises `b + κφ` in closed form).
//! 2. *Linear prefill work (`w2 = 0`).* The deadline reads `n ≤ h(b, φ) = D' / (s/r(b) + w1/(Fφ))`,
//!    the parallel sum of the concave functions `D' r(b)/s` and `D' F φ / w1`; a parallel sum of
//!    nonnegative concave functions is concave (it is `min_{t_u+t_c=D'}`-type infimal structure:
//!    `1/(1/x + 1/y)` is concave and nondecreasing), so the hypograph `{(n,b,φ): n ≤ h}` is convex and
//!    maximising the concave `Σ w_k A_k(n_k/N_k)` over it with linear budgets is a convex program.
//! 3. *With the attention term (`w2 > 0`)* the joint set is **not** convex in general (random
//!    midpoint tests of `h` find violations up to ~7e-4 relative). What survives, and what the exact
//!    solver uses: the per-user price function `C_k(n; λ, μ) = min {λb + μφ : T_k ≤ D_k}` equals,
//!    for the linear rate, `(√(λ n s/η) + √(μ W(n)/F))² / D'` (optimal split `t_u/t_c = √(λns/η) /
//!    √(μW/F)`), i.e. `p²n + 2pq n√(w1 + w2 n) + q² W(n)`, a sum of convex functions of `n`. The
//!    Lagrangian subproblem `max_n w A(n/N) − C(n)` is therefore a concave 1-D problem solved to
//!    machine precision, the dual function is a valid upper bound, and at a differentiable dual
//!    minimiser the best responses use exactly `B` and the whole server, so primal = dual (zero gap).
//!    The solver does not assume this: it recovers a feasible primal and *reports the gap*.
//! 4. *Shannon rate.* `C_k` is a 1-D convex minimisation over the upload time (`β(ns/t)` is convex
//!    nondecreasing of the convex `ns/t`, with `β = r^{-1}` convex); convexity of `C_k` in `n` is not
//!    proved here; the Shannon best response (root of `f'`) assumes `f'` is nonincreasing (checked
//!    against a fine grid in the unit tests and against the brute force in the tests).
//! 5. *Non-concave accuracy curves* (profiled points with increasing slopes) break convexity for any
//!    work model: `exact` is not applicable; `milp` solves a discretisation and takes its bound from the
//!    dual of the concave envelope (valid for the original curve since the envelope majorises it).
//!    Dropping users (`allow_drop`) is likewise a non-convex choice, handled in the best response
//!    (value `max(0, ·)`); the gap is reported honestly.
//!
//! ## Solvers
//! | name | kind | method |
//! |---|---|---|
//! | `exact` | exact | weighted sum: dual decomposition; prices by damped Newton on `(log λ, log μ)`, nested safeguarded secant (Illinois) as fallback; best responses by safeguarded Newton on `f'` with analytic `C'`, `C''` (linear rate; per-user upper bound from concavity) or Illinois on `f'` with the envelope-theorem slope of `C` (Shannon; no certificate); primal recovery, duality gap as bound; max-min: bisection on the accuracy level with the convex feasibility check of (1) |
//! | `milp` | exact | multiple-choice MILP over a grid of kept fractions × upload-time splits (HiGHS), bound = concave-envelope dual; any curve |
//! | `dual-gradient` | gradient | projected gradient on the log-prices, same recovery, best dual value as bound |
//! | `brute-force` | exact (within grid) | grid of kept fractions (K ≤ 3) with the convex allocation of (1) |
//! | `no-prune-equal` | baseline | ρ = 1, equal bandwidth and compute; users missing the deadline are dropped |
//! | `equal-prune` | baseline | equal bandwidth and compute, each user keeps the most tokens its share carries |
//! | `prop-fair` | baseline | proportional fairness `max Σ w log A` (same dual machinery) |
//!
//! ## Simplifications
//! Tokens are continuous; pruning acts on the total token count (text protection via `ρ_min`);
//! the vision encoder and the decode phase are not costed (only the prefill that gates the first
//! token); the memory-traffic side of the roofline is ignored (a batched prefill is compute-bound);
//! downlink of the answer is not modelled.

// Index loops follow the math (users k).
#![allow(clippy::needless_range_loop)]

pub mod baselines;
pub mod brute_force;
pub mod cost;
pub mod exact;
pub mod generate;
pub mod gradient;
pub mod instance;
pub mod milp;

pub use cost::Prepared;
pub use instance::*;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::solve::{Evaluation, Family, Sense, Solver};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The family marker.
pub struct TokenRadio;

/// One user's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDecision {
    pub name: String,
    pub served: bool,
    /// Kept fraction ρ (ignored when not served).
    pub kept_fraction: f64,
    pub bandwidth_hz: f64,
    /// Fraction of the server's compute.
    pub compute_share: f64,
}

/// A solution: one decision per user, in instance order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRadioSolution {
    pub users: Vec<UserDecision>,
}

/// An internal decision: `None` = dropped, else (kept tokens, bandwidth, share).
pub type Decision = Option<(f64, f64, f64)>;

impl TokenRadioSolution {
    /// From internal decisions.
    pub fn from_decisions(p: &Prepared, d: &[Decision]) -> Self {
        TokenRadioSolution {
            users: p
                .users
                .iter()
                .zip(d)
                .map(|(u, x)| match *x {
                    None => UserDecision {
                        name: u.name.clone(),
                        served: false,
                        kept_fraction: 0.0,
                        bandwidth_hz: 0.0,
                        compute_share: 0.0,
                    },
                    Some((n, b, f)) => UserDecision {
                        name: u.name.clone(),
                        served: true,
                        kept_fraction: (n / u.tokens).clamp(u.rho_min, 1.0),
                        bandwidth_hz: b,
                        compute_share: f,
                    },
                })
                .collect(),
        }
    }
}

/// The objective of internal decisions (no feasibility check), as `evaluate` computes it.
pub fn decisions_objective(p: &Prepared, d: &[Decision]) -> f64 {
    let acc: Vec<Option<f64>> = d
        .iter()
        .enumerate()
        .map(|(k, x)| x.map(|(n, _, _)| p.accuracy(k, n)))
        .collect();
    p.objective_value(&acc)
}

/// Relative tolerance of the resource and deadline checks.
pub const FEAS_RTOL: f64 = 1e-9;

/// Checks a solution against the instance alone.
pub fn evaluate(p: &Prepared, s: &TokenRadioSolution) -> Evaluation {
    let mut v: Vec<String> = vec![];
    if s.users.len() != p.num_users() {
        return Evaluation {
            feasible: false,
            objective: f64::NAN,
            violations: vec![format!(
                "{} user decisions for {} users",
                s.users.len(),
                p.num_users()
            )],
            metrics: serde_json::Value::Null,
        };
    }
    let (mut sb, mut sf) = (0.0, 0.0);
    let mut acc = vec![];
    let mut rows = vec![];
    for (k, (d, u)) in s.users.iter().zip(&p.users).enumerate() {
        if d.name != u.name {
            v.push(format!("user {k}: name '{}' != '{}'", d.name, u.name));
        }
        let nums = [d.kept_fraction, d.bandwidth_hz, d.compute_share];
        if nums.iter().any(|x| !x.is_finite() || *x < 0.0) {
            v.push(format!("user {k}: values must be finite and >= 0"));
            acc.push(None);
            continue;
        }
        if !d.served {
            if !p.allow_drop {
                v.push(format!(
                    "user {k} ({}): dropped but allow_drop is false",
                    u.name
                ));
            }
            if d.bandwidth_hz > 0.0 || d.compute_share > 0.0 {
                v.push(format!("user {k}: dropped but holds resources"));
            }
            acc.push(None);
            rows.push(json!({"name": u.name, "served": false, "accuracy": 0.0}));
            continue;
        }
        sb += d.bandwidth_hz;
        sf += d.compute_share;
        let rho = d.kept_fraction;
        if rho < u.rho_min * (1.0 - FEAS_RTOL) - 1e-12 || rho > 1.0 + FEAS_RTOL {
            v.push(format!(
                "user {k}: kept fraction {rho} outside [{}, 1]",
                u.rho_min
            ));
        }
        let n = rho.clamp(0.0, 1.0) * u.tokens;
        let up = p.upload_s(k, n, d.bandwidth_hz);
        let cmp = p.compute.time_s(n, d.compute_share);
        let t = up + cmp + p.compute.overhead_s;
        if t.is_nan() || t > u.deadline * (1.0 + FEAS_RTOL) {
            v.push(format!(
                "user {k} ({}): latency {t} s > deadline {} s",
                u.name, u.deadline
            ));
        }
        let a = u.curve.value(rho);
        acc.push(Some(a));
        rows.push(json!({"name": u.name, "served": true, "kept_fraction": rho,
            "kept_tokens": n, "bandwidth_hz": d.bandwidth_hz, "compute_share": d.compute_share,
            "upload_s": up, "prefill_s": cmp, "latency_s": t, "accuracy": a}));
    }
    if sb > p.bandwidth_hz * (1.0 + FEAS_RTOL) {
        v.push(format!("bandwidth {sb} Hz > budget {} Hz", p.bandwidth_hz));
    }
    if sf > 1.0 + FEAS_RTOL {
        v.push(format!("compute shares sum to {sf} > 1"));
    }
    let objective = p.objective_value(&acc);
    let served = acc.iter().filter(|a| a.is_some()).count();
    let mean = acc.iter().map(|a| a.unwrap_or(0.0)).sum::<f64>() / acc.len().max(1) as f64;
    Evaluation {
        feasible: v.is_empty(),
        objective,
        violations: v,
        metrics: json!({
            "objective_kind": p.objective,
            "served_users": served,
            "mean_accuracy": mean,
            "min_accuracy": acc.iter().map(|a| a.unwrap_or(0.0)).fold(f64::INFINITY, f64::min),
            "bandwidth_used_hz": sb,
            "compute_used": sf,
            "prefill_flops_per_token": p.compute.w1,
            "prefill_flops_per_token_sq": p.compute.w2,
            "server_flops_per_s": p.compute.flops_per_s,
            "compute_source": p.compute.source,
            "users": rows,
        }),
    }
}

impl Family for TokenRadio {
    const NAME: &'static str = "token_radio";
    type Instance = TokenRadioInstance;
    type Prepared = Prepared;
    type Solution = TokenRadioSolution;

    fn prepare(instance: &TokenRadioInstance, catalog: &Catalog) -> Result<Prepared> {
        instance.prepare(catalog)
    }

    fn sense(_p: &Prepared) -> Sense {
        Sense::Maximize
    }

    fn evaluate(p: &Prepared, solution: &TokenRadioSolution) -> Evaluation {
        evaluate(p, solution)
    }

    fn solvers() -> Vec<Box<dyn Solver<Self>>> {
        vec![
            Box::new(exact::Exact),
            Box::new(milp::MilpSolver),
            Box::new(gradient::DualGradient),
            Box::new(brute_force::BruteForce),
            Box::new(baselines::NoPruneEqual),
            Box::new(baselines::EqualPrune),
            Box::new(baselines::PropFair),
        ]
    }

    fn auto_solver(p: &Prepared) -> &'static str {
        if p.users.iter().all(|u| u.curve.is_concave()) || p.objective == Objective::MaxMin {
            "exact"
        } else {
            "milp"
        }
    }

    fn generate(size: &str, seed: u64) -> Result<TokenRadioInstance> {
        generate::generate(size, seed)
    }
}
