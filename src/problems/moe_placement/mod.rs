//! # Family `moe_placement`: Mixture-of-Experts expert placement across edge servers
//!
//! Seeds: survey 000 §VI-A3 (SplitMoE: "optimizing expert assignment to balance accuracy, latency, and
//! network load" when split inference sends a device's tokens to the edge servers holding the right
//! experts) and survey 003 §4.1 (MoE inference at the edge). Peers (`reference/anchors.md`): DeepSeek
//! EPLB (greedy replicate-and-pack, min max GPU load), MoETuner and ExFlow (integer programs over
//! routing statistics); users ask for migration-aware rebalancing (vLLM PR #23243).
//!
//! ## Sets
//! - MoE layers `l ∈ L` (the card's MoE blocks, or the first `layers` of them), routed experts
//!   `e ∈ E` per layer (top-k of them per token);
//! - servers `s ∈ S` (device card or explicit compute and memory);
//! - user groups `g ∈ G` (region or application), each with a home server `h(g)` that runs attention
//!   and the shared experts and dispatches routed-expert work; `H` = the distinct homes.
//!
//! ## Parameters (units)
//! - expert bytes `b` (B) and FLOPs per token `f` (FLOP) from `cost::moe::moe_expert_cost` (SwiGLU:
//!   `3·d·d_ff` weights, `2·params` FLOPs), hidden bytes per token `η = d_model × activation bytes`;
//! - token rate `λ_g` (tokens/s), `Λ = Σ λ_g`; routing statistics `a_{g,l,e} ∈ [0,1]` = expected
//!   activations of `e` per token of `g` (explicit table, or generated: Zipf with exponent `s`, a
//!   layer-wide ranking mixed with a per-group ranking, scaled to `top_k` with caps at 1, seeded);
//!   demand `d_{g,l,e} = λ_g·a_{g,l,e}` activations/s;
//! - server compute `F_s` (FLOP/s; default the device's effective FLOP/s), expert memory `M_s` (B);
//! - dispatch + combine time of one activation from home `h` to `s`: `c_{hs} = 2(λ_{hs} + η·8/β_{hs})`
//!   (0 when `s = h`, no link = not allowed); access links user → home are constant per token and
//!   only reported;
//! - replication budget `B` (extra copies per layer), utilisation cap `ρ ∈ (0,1]`, step window `τ`
//!   (s), current placement `x⁰` and migration cost `μ` per byte (objective units).
//!
//! ## Decisions
//! `x_{s,l,e} ∈ {0,1}`: server `s` holds expert `e` of layer `l`; `r_{g,l,e,s} ≥ 0`: share of group
//! `g`'s activations of `(l, e)` sent to `s`.
//!
//! ## Constraints
//! - expert memory, per layer (**simplification**, the expert-parallel convention where every rank holds
//!   the same number of experts of each layer): `Σ_e x_{s,l,e} ≤ k_s = ⌊M_s / (|L|·b)⌋`; it implies
//!   `Σ_{l,e} b·x_{s,l,e} ≤ M_s`. Memory pooled across layers is not modelled;
//! - every expert held at least once: `Σ_s x_{s,l,e} ≥ 1`; replication budget `Σ_{s,e} x_{s,l,e} ≤ |E| + B`;
//! - routing: `Σ_s r_{g,l,e,s} = 1`, `r_{g,l,e,s} ≤ x_{s,l,e}`, only over existing links;
//! - server compute capacity, per layer (same convention: a server's compute is shared equally by the
//!   layers): `u_{s,l} = Σ_{g,e} d_{g,l,e}·r_{g,l,e,s}·f / F_s ≤ ρ / |L|`.
//!
//! ## Objectives (minimise)
//! Expert-parallel systems synchronise per layer: a layer's MoE step lasts as long as its busiest
//! server, so the load metric of a layer is `U_l = max_s u_{s,l}` (EPLB's metric, per layer).
//! - `max_load`: `Σ_l U_l` (s of busiest-server compute per s of traffic; the sum over layers is the
//!   utilisation of the synchronised pipeline). The per-layer maximum over all layers
//!   (`max_l U_l`) and EPLB's balancedness (mean/max) are reported in the metrics;
//! - `latency` (expected per-token latency, s): `Σ_l [ Σ_{g,e,s} d·r·c_{h(g)s} / Λ + τ·U_l ]` —
//!   dispatch + combine of every activation (traffic-weighted: the k transfers of a token are counted
//!   one after the other, not as a maximum), plus the layer step of a batch of `Λτ` tokens on the
//!   busiest server;
//! - either `+ μ·b·Σ x_{s,l,e}(1 − x⁰_{s,l,e})` (bytes moved in from the current placement).
//!
//! Without an inter-layer affinity term every term is a sum over layers of a function of layer `l`'s
//! variables only, so the problem decomposes by layer: the exact solvers solve layers independently
//! (in parallel) and the bound is the sum of the per-layer bounds. Inter-layer affinity (ExFlow,
//! MoETuner) is **not built**: a token is assumed to return to its home between layers.
//!
//! ## Solvers (one file each)
//! `milp` (exact: HiGHS per layer in parallel, warm-started from `ils`, copy-count cuts
//! `z ≥ D_T f / F_top(C_T)` on the copies `C_T` of an expert set `T`, see `model::copy_cuts`),
//! `branch-and-bound` (exact, `max_load` only: combinatorial search over holder sets with the
//! max-flow value `z*(T) = max_U f·D(U)/F(U)` of holdings, see `bnb`), `lagrangian-bnb` (exact,
//! built for `latency`: search over holder sets with a Lagrangian bound that prices the load rows
//! of the routing LP (`μ_s`, `Σ μ = τ`) and the free slots (`π_s`), the copy budget exact by a
//! dynamic programme, routing LP at the leaves, see `latbnb`), `brute-force` (exact:
//! enumerate holdings, routing LP), `lp-round` (gradient kind: LP relaxation bound + rounding +
//! repair + routing LP), `greedy` (replicate by marginal load, LPT onto heterogeneous servers,
//! water-filling routing, move/swap local search, never worse than EPLB), `ils` (iterated local
//! search per layer from `greedy`, scored with the true layer objective), `migration` (rebalancing
//! from the current placement with the fewest moves reaching a load target), `eplb` (baseline).

#![allow(clippy::needless_range_loop)]

pub mod bnb;
pub mod brute_force;
pub mod cost;
pub mod eplb;
pub mod generate;
pub mod greedy;
pub mod ils;
pub mod instance;
pub mod latbnb;
pub mod lp_round;
pub mod migration;
pub mod milp;
pub mod model;

pub use cost::{LayerPlan, Prepared};
pub use instance::*;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::solve::{Evaluation, Family, Outcome, Sense, Solver, Termination};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The family marker.
pub struct MoePlacement;

/// One MoE layer of a solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerAssignment {
    /// For each server (instance order): the experts of this layer it holds.
    pub experts: Vec<Vec<u32>>,
    /// For each group (instance order), for each expert: `[server index, fraction]` pairs.
    pub routing: Vec<Vec<Vec<(u32, f64)>>>,
}

/// A solution: one assignment per MoE layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoeSolution {
    pub layers: Vec<LayerAssignment>,
}

impl MoeSolution {
    /// From internal layer plans (each group uses its home's routing).
    pub fn from_plans(p: &Prepared, plans: &[LayerPlan]) -> Self {
        MoeSolution {
            layers: plans
                .iter()
                .map(|lp| LayerAssignment {
                    experts: lp
                        .hold
                        .iter()
                        .map(|h| (0..p.experts).filter(|&e| h[e]).map(|e| e as u32).collect())
                        .collect(),
                    routing: p
                        .group_home
                        .iter()
                        .map(|&h| {
                            lp.route[h]
                                .iter()
                                .map(|r| r.iter().map(|&(s, f)| (s as u32, f)).collect())
                                .collect()
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// An outcome from layer plans, with the objective recomputed by `cost.rs`.
pub fn finish(
    p: &Prepared,
    plans: &[LayerPlan],
    termination: Termination,
    bound: Option<f64>,
) -> Outcome<MoeSolution> {
    let mut o = Outcome::with(
        termination,
        MoeSolution::from_plans(p, plans),
        p.plan_objective(plans),
    );
    o.bound = bound;
    o
}

fn bad(msg: String) -> Evaluation {
    Evaluation {
        feasible: false,
        objective: f64::NAN,
        violations: vec![msg],
        metrics: serde_json::Value::Null,
    }
}

/// The independent check: holdings and routing from the solution, demands per group.
pub fn evaluate_solution(p: &Prepared, sol: &MoeSolution) -> Evaluation {
    let ns = p.num_servers();
    if sol.layers.len() != p.layers {
        return bad(format!(
            "expected {} layers, got {}",
            p.layers,
            sol.layers.len()
        ));
    }
    let mut violations = vec![];
    let mut objective = 0.0;
    let mut layer_rows = vec![];
    let (mut comm_total, mut load_total, mut mig_total, mut worst) = (0.0, 0.0, 0.0, 0.0f64);
    let mut balancedness = vec![];
    for (l, la) in sol.layers.iter().enumerate() {
        if la.experts.len() != ns {
            return bad(format!(
                "layer {l}: expected {ns} server lists, got {}",
                la.experts.len()
            ));
        }
        if la.routing.len() != p.groups.len() {
            return bad(format!(
                "layer {l}: expected {} group routings",
                p.groups.len()
            ));
        }
        let mut hold = vec![vec![false; p.experts]; ns];
        for (s, list) in la.experts.iter().enumerate() {
            for &e in list {
                if e as usize >= p.experts {
                    return bad(format!("layer {l}: server {s} holds unknown expert {e}"));
                }
                if hold[s][e as usize] {
                    violations.push(format!("layer {l}: server {s} lists expert {e} twice"));
                }
                hold[s][e as usize] = true;
            }
        }
        let mut routes = vec![];
        for (g, r) in la.routing.iter().enumerate() {
            if r.len() != p.experts {
                return bad(format!(
                    "layer {l}: group {g}: expected {} expert routings",
                    p.experts
                ));
            }
            let mut rr: cost::Route = vec![];
            for (e, pairs) in r.iter().enumerate() {
                let mut v = vec![];
                for &(s, f) in pairs {
                    if s as usize >= ns {
                        return bad(format!(
                            "layer {l}: group {g} expert {e}: unknown server {s}"
                        ));
                    }
                    v.push((s as usize, f));
                }
                rr.push(v);
            }
            routes.push(rr);
        }
        let units: Vec<(usize, &[f64], &cost::Route)> = p
            .groups
            .iter()
            .enumerate()
            .map(|(g, gp)| (gp.home, p.group_demand[l][g].as_slice(), &routes[g]))
            .collect();
        let v = p.layer_value(l, &hold, &units);
        violations.extend(p.layer_violations(l, &hold, &units, &v));
        objective += v.objective;
        comm_total += v.comm_s;
        load_total += v.max_util;
        mig_total += v.migration_bytes;
        worst = worst.max(v.max_util);
        let mean = v.util.iter().sum::<f64>() / ns as f64;
        balancedness.push(if v.max_util > 0.0 {
            mean / v.max_util
        } else {
            1.0
        });
        layer_rows.push(json!({
            "layer": l,
            "comm_s": v.comm_s,
            "max_utilization": v.max_util,
            "utilization": v.util,
            "copies": hold.iter().map(|h| h.iter().filter(|x| **x).count()).sum::<usize>(),
            "migration_bytes": v.migration_bytes,
        }));
    }
    let access: f64 = p
        .groups
        .iter()
        .map(|g| g.rate * 2.0 * g.access_s)
        .sum::<f64>()
        / p.total_rate;
    Evaluation {
        feasible: violations.is_empty(),
        objective,
        violations,
        metrics: json!({
            "objective_kind": p.objective,
            "comm_s_per_token": comm_total,
            "compute_s_per_token": p.tau * load_total,
            "sum_layer_max_utilization": load_total,
            "max_layer_utilization": worst,
            "mean_balancedness": balancedness.iter().sum::<f64>() / balancedness.len().max(1) as f64,
            "migration_bytes": mig_total,
            "access_s_per_token": access,
            "slots_per_server": p.servers.iter().map(|s| s.slots).collect::<Vec<_>>(),
            "layers": layer_rows,
        }),
    }
}

impl Family for MoePlacement {
    const NAME: &'static str = "moe_placement";
    type Instance = MoePlacementInstance;
    type Prepared = Prepared;
    type Solution = MoeSolution;

    fn prepare(instance: &MoePlacementInstance, catalog: &Catalog) -> Result<Prepared> {
        instance.prepare(catalog)
    }

    fn sense(_p: &Prepared) -> Sense {
        Sense::Minimize
    }

    fn evaluate(p: &Prepared, solution: &MoeSolution) -> Evaluation {
        evaluate_solution(p, solution)
    }

    fn solvers() -> Vec<Box<dyn Solver<Self>>> {
        vec![
            Box::new(milp::MilpSolver),
            Box::new(bnb::BranchAndBound),
            Box::new(latbnb::LagrangianBnb),
            Box::new(brute_force::BruteForce),
            Box::new(lp_round::LpRound),
            Box::new(greedy::Greedy),
            Box::new(ils::Ils),
            Box::new(migration::Migration),
            Box::new(eplb::Eplb),
        ]
    }

    fn auto_solver(p: &Prepared) -> &'static str {
        // min-max MILPs with many interchangeable holdings are slow to prove (the root bound is the
        // perfectly balanced load); beyond tiny layers `lp-round` gives a solution and a certified
        // LP bound quickly
        // max_load with up to 12 experts per layer: the combinatorial search proves the optimum
        // quickly (Mixtral 32 × 8 on 8 servers, the EPLB README instance); with more experts the
        // near-balanced plans are too many to enumerate
        // latency with up to 8 experts per layer: the Lagrangian branch and bound proves Mixtral's
        // 32 × 8 on 8 servers optimal (12 s of CPU, 6.3 s on 2 free cores) where HiGHS stops at a
        // 4.3 % gap after 5 s
        if bnb::applicable(p).is_ok() && p.experts <= bnb::AUTO_MAX_EXPERTS {
            "branch-and-bound"
        } else if p.objective == Objective::Latency
            && latbnb::applicable(p).is_ok()
            && p.experts <= latbnb::AUTO_MAX_EXPERTS
        {
            "lagrangian-bnb"
        } else if p.experts * p.num_servers() <= 24 {
            "milp"
        } else {
            "lp-round"
        }
    }

    fn generate(size: &str, seed: u64) -> Result<MoePlacementInstance> {
        generate::generate(size, seed)
    }
}
