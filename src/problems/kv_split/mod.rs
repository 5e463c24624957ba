//! # Family `kv_split`: KV-cache-aware split points for multi-user split inference
//!
//! Seeds: survey 000 §VI-A1 (split inference with KV caching: "joint optimization of model splitting
//! and KV caching ... including memory constraints"), §VI-A2 (multi-user split inference with
//! parameter sharing: a server loads shared parameters once); survey 003 §9.1–9.2 (edge inference,
//! parameter-sharing model placement).
//!
//! ## Sets
//! - layers `l ∈ {0..L-1}`: the rows of `cost::layer_table` (embedding, blocks, head) of a catalog LLM;
//! - users `u ∈ U`, servers `s ∈ S`, KV options `o ∈ O` (kinds: `full`, `none` = recompute,
//!   `quantized` 8/4 bit, `window` W tokens; each with an accuracy cost `α_o ≥ 0`).
//!
//! ## Parameters (all from `crate::cost`, computed in [`cost`])
//! Per user: device card (roofline `Hardware`), usable memory `M_u` B, compute share `σ_u`, prompt
//! `P_u` and generated `G_u` tokens, uplink/downlink `β↑_u`, `β↓_u` bit/s, link latency `λ_u` s,
//! target `τ_u` s, weight `w_u`, accuracy limit `A_u`, optional fixed server. Contexts: latency at
//! `n_u = P_u + G_u/2` (`latency_context = mean`, default) or `P_u + G_u` (`final`); memory at the final
//! context `N_u = P_u + G_u`.
//! - device time of layers `< c` under option `o`: `D_u(c,o) = Σ_{l<c} t_l / σ_u` with `t_l` the
//!   roofline time (`roofline::layer_time`) of one decode token at context `n_u` (KV dtype of `o`,
//!   context capped at W for windows), or of a prefill of `n_u` tokens for `none` (recompute);
//! - device KV `K^d_u(c,o) = Σ_{l<c} kv_l(o)·min(N_u, W_o, window_l)` (`kv_bytes_per_token` per layer in
//!   the option's dtype); server KV `K^s_u(c,o)` the same over `l ≥ c`;
//! - cut bytes per token `h_c`: token id (4 B) at `c = 0`, the hidden state `out_bytes_per_token` of
//!   layer `c−1` otherwise; with server option `none` all `n_u` hidden states are resent each step and
//!   the device holds `N_u·h_c` bytes of them;
//! - server `s`: shared step time of layers `≥ c`: `F_s(c) = Σ_{l≥c} (w_l / B_s + ops_l·δ_s)` (weight
//!   streaming once per batched step + fixed operator latency), weights `W_s(c) = Σ_{l≥c} w_l`;
//!   per-user work `a_us(c,o) = Σ_{l≥c} (flops_l / F^eff_s + attn_bytes_l / B_s)` (its KV reads and its
//!   compute; prefill of `n_u` tokens for `none`). Memory `M_s`.
//!
//! ## Decisions
//! Per user: split `c_u ∈ {0..L}` (0 = all on the server, L = all on the device), device option
//! `o^d_u` (when `c_u > 0`), server option `o^s_u` (when `c_u < L`), server `s_u` (when `c_u < L` and
//! not given), admission `x_u` (objective `admitted` only). Shared weights `y_sl = 1` iff some user of
//! `s` has `c_u ≤ l` (the server holds layer l once).
//!
//! ## Per-token latency
//! `T_u = D_u(c_u, o^d_u) + [c_u < L]·(2λ_u + h·8/β↑_u + 4·8/β↓_u + Step_{s_u})` with the batched step
//! `Step_s = F_s(min_{u on s} c_u) + Σ_{u on s} a_us` seen by every user of `s` (resent bytes `n_u·h`
//! under `none`).
//!
//! ## Objectives (`objective`)
//! `mean_latency` (`Σ w_u T_u / Σ w_u`, min), `max_latency` (`max T_u`, min; weights unused), `admitted`
//! (`Σ w_u x_u`, max; a rejected user uses nothing, an admitted one must meet its target).
//!
//! ## Constraints
//! - device memory: `Σ_{l<c} w_l + K^d_u + [o^s = none]·N_u·h_c ≤ M_u` (final context);
//! - server memory: `W_s(min c) + Σ_{u on s} K^s_u ≤ M_s` (shared weights + all KV);
//! - latency targets `T_u ≤ τ_u` (hard under latency objectives; the admission test otherwise);
//! - accuracy: `[c>0]·α_{o^d} + [c<L]·α_{o^s} ≤ A_u`; fixed associations.
//!
//! ## Simplifications
//! - The server step is additive (shared weight streaming + per-user KV/compute) rather than a
//!   roofline `max`: decode is memory-bound at the batch sizes here; the device part uses the full
//!   roofline. Prefill time and activation working sets are not counted (per-token decode latency).
//! - Accuracy costs are user-given numbers (defaults indicative, see `instance::default_kv_options`),
//!   used as a per-user limit, not traded in the objective.
//! - Identical users are not aggregated (candidate pruning already makes the MILP small).
//!
//! ## Solvers (one file each)
//! `milp` (exact, HiGHS over dominance-pruned candidates with step floors, Cauchy–Schwarz
//! congestion cuts, max-latency step rows and Lagrangian reduced-cost fixing, warm-started from
//! `priced-search`, then a sub-MILP neighbourhood search in the time HiGHS leaves), `brute-force`
//! (exact, tiny instances, unpruned), `lagrangian` (gradient: relaxes server memory, projected
//! subgradient on μ_s, valid dual bound + repaired solution), `priced-search` (heuristic: memory
//! prices, priced insertion, feasible descent with O(1) move scores, memory swaps, regime and raise
//! moves; file `search.rs`), `greedy`, `local-search`
//! (heuristics), `all-offload`, `all-local`, `fixed-split`, `cache-everywhere` (baselines).

#![allow(clippy::needless_range_loop)]

pub mod baselines;
pub mod brute_force;
pub mod cost;
pub mod generate;
pub mod heuristics;
pub mod instance;
pub mod lagrangian;
pub mod milp;
pub mod search;

pub use cost::{Choice, Prepared, UNUSED};
pub use instance::*;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::solve::{Context, Evaluation, Family, Outcome, Sense, Solver, Termination};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The family marker.
pub struct KvSplit;

fn yes() -> bool {
    true
}

/// One user's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPlan {
    pub user: String,
    /// Layers `[0, split)` on the device.
    pub split: usize,
    /// Device KV option name (`None` when `split = 0` or rejected).
    #[serde(default)]
    pub device_kv: Option<String>,
    /// Server KV option name (`None` when `split = L` or rejected).
    #[serde(default)]
    pub server_kv: Option<String>,
    /// Server name (`None` when `split = L` or rejected).
    #[serde(default)]
    pub server: Option<String>,
    /// Admitted (only the `admitted` objective may reject).
    #[serde(default = "yes")]
    pub admitted: bool,
}

/// A solution: one plan per user, in instance order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvSplitSolution {
    pub users: Vec<UserPlan>,
}

impl KvSplitSolution {
    pub fn from_plan(p: &Prepared, plan: &[Choice]) -> Self {
        let opt = |o: usize| (o != UNUSED).then(|| p.options[o].name.clone());
        KvSplitSolution {
            users: plan
                .iter()
                .enumerate()
                .map(|(u, c)| UserPlan {
                    user: p.users[u].name.clone(),
                    split: c.split,
                    device_kv: if c.admitted { opt(c.od) } else { None },
                    server_kv: if c.admitted { opt(c.os) } else { None },
                    server: if c.admitted && c.server != UNUSED {
                        Some(p.servers[c.server].name.clone())
                    } else {
                        None
                    },
                    admitted: c.admitted,
                })
                .collect(),
        }
    }

    pub fn to_plan(&self, p: &Prepared) -> std::result::Result<Vec<Choice>, String> {
        if self.users.len() != p.users.len() {
            return Err(format!(
                "{} user plans for {} users",
                self.users.len(),
                p.users.len()
            ));
        }
        let l = p.num_layers();
        let mut plan = vec![];
        for (u, x) in self.users.iter().enumerate() {
            if x.user != p.users[u].name {
                return Err(format!(
                    "plan {u} is for '{}', expected '{}'",
                    x.user, p.users[u].name
                ));
            }
            if !x.admitted {
                plan.push(Choice::reject(l));
                continue;
            }
            let find = |n: &Option<String>, what: &str| -> std::result::Result<usize, String> {
                match n {
                    None => Ok(UNUSED),
                    Some(n) => p
                        .options
                        .iter()
                        .position(|o| &o.name == n)
                        .ok_or_else(|| format!("user '{}': unknown {what} '{n}'", x.user)),
                }
            };
            let server = match &x.server {
                None => UNUSED,
                Some(n) => p
                    .servers
                    .iter()
                    .position(|s| &s.name == n)
                    .ok_or_else(|| format!("user '{}': unknown server '{n}'", x.user))?,
            };
            plan.push(Choice {
                split: x.split,
                od: find(&x.device_kv, "device KV option")?,
                os: find(&x.server_kv, "server KV option")?,
                server,
                admitted: true,
            });
        }
        Ok(plan)
    }
}

/// The evaluation of a plan with per-user and per-server metrics.
pub fn evaluate_plan(p: &Prepared, plan: &[Choice]) -> Evaluation {
    let ev = p.evaluate_plan(plan);
    let users: Vec<_> = plan
        .iter()
        .enumerate()
        .filter(|(u, _)| *u < ev.costs.len())
        .map(|(u, c)| {
            json!({
                "user": p.users[u].name,
                "split": c.split,
                "admitted": c.admitted,
                "latency_s": ev.latency[u].is_finite().then_some(ev.latency[u]),
                "device_and_link_s": ev.costs[u].lat,
                "device_memory_bytes": ev.costs[u].dev_mem,
                "device_memory_capacity_bytes": p.users[u].memory_bytes,
                "server_kv_bytes": ev.costs[u].srv_mem,
                "accuracy_cost": ev.costs[u].acc,
            })
        })
        .collect();
    let servers: Vec<_> = p
        .servers
        .iter()
        .enumerate()
        .map(|(s, sv)| {
            json!({
                "server": sv.name,
                "users": ev.users_on[s],
                "lowest_split": ev.min_split[s],
                "step_s": ev.step_s[s],
                "memory_bytes": ev.server_mem[s],
                "memory_capacity_bytes": sv.memory_bytes,
            })
        })
        .collect();
    Evaluation {
        feasible: ev.violations.is_empty(),
        objective: ev.objective,
        violations: ev.violations,
        metrics: json!({
            "objective_kind": p.objective,
            "layers": p.num_layers(),
            "users": users,
            "servers": servers,
        }),
    }
}

/// An outcome carrying a plan (heuristics, baselines): `Completed` unless stopped early.
pub(crate) fn outcome_from_plan(
    p: &Prepared,
    plan: &[Choice],
    ctx: &Context<'_>,
    iterations: u64,
) -> Outcome<KvSplitSolution> {
    let ev = p.evaluate_plan(plan);
    let mut o = Outcome::with(
        ctx.early_termination(),
        KvSplitSolution::from_plan(p, plan),
        ev.objective,
    );
    o.iterations = iterations;
    if !ev.violations.is_empty() {
        o.notes.push(format!("infeasible: {}", ev.violations[0]));
    }
    o
}

/// `Some(outcome)` when some user has no candidate at all (proves infeasibility under latency
/// objectives: the pruning filters are exact constraints).
pub(crate) fn no_candidates(p: &Prepared) -> Option<Outcome<KvSplitSolution>> {
    p.users.iter().position(|u| u.cands.is_empty()).map(|u| {
        let mut o = Outcome::none(Termination::Infeasible);
        o.notes.push(format!(
            "user '{}' has no choice meeting its device memory, accuracy, target and server memory limits",
            p.users[u].name
        ));
        o
    })
}

impl Family for KvSplit {
    const NAME: &'static str = "kv_split";
    type Instance = KvSplitInstance;
    type Prepared = Prepared;
    type Solution = KvSplitSolution;

    fn prepare(instance: &KvSplitInstance, catalog: &Catalog) -> Result<Prepared> {
        instance.prepare(catalog)
    }

    fn sense(p: &Prepared) -> Sense {
        if p.uses_admission() {
            Sense::Maximize
        } else {
            Sense::Minimize
        }
    }

    fn evaluate(p: &Prepared, solution: &KvSplitSolution) -> Evaluation {
        match solution.to_plan(p) {
            Ok(plan) => evaluate_plan(p, &plan),
            Err(e) => Evaluation {
                feasible: false,
                objective: f64::NAN,
                violations: vec![e],
                metrics: serde_json::Value::Null,
            },
        }
    }

    fn solvers() -> Vec<Box<dyn Solver<Self>>> {
        vec![
            Box::new(milp::MilpSolver),
            Box::new(brute_force::BruteForce),
            Box::new(lagrangian::Lagrangian),
            Box::new(heuristics::Greedy),
            Box::new(heuristics::LocalSearch),
            Box::new(search::PricedSearch),
            Box::new(baselines::AllOffload),
            Box::new(baselines::AllLocal),
            Box::new(baselines::FixedSplit),
            Box::new(baselines::CacheEverywhere),
        ]
    }

    fn auto_solver(_p: &Prepared) -> &'static str {
        "milp"
    }

    fn generate(size: &str, seed: u64) -> Result<KvSplitInstance> {
        generate::generate(size, seed)
    }
}
