//! # Family `pipeline`: LLM layer placement on heterogeneous edge graphs
//!
//! Seeds: survey 000 §V-B (parallelism of edge LLM training, multi-hop split learning, Fig. 5: total
//! training time vs number of edge servers) and survey 003 §8.1 (centralised edge learning: pipeline
//! parallelism across edge servers). Anchors: PipeEdge (exact DP over device types, bottleneck),
//! EdgeShard (DP, latency or throughput), Helix (MILP max-flow over replicated pipelines), Petals (greedy).
//!
//! ## Sets
//! - layers `l ∈ {0..L-1}` (a profile row each: embedding, blocks, head for catalog models);
//! - nodes `n ∈ N` (device type `τ(n)`, usable memory `M_n` bytes, availability `α_n ∈ [0,1]`,
//!   compute power `P_n` W, transmit power `P^tx_n` W);
//! - directed links `(u,v)` with bandwidth `β_uv` bits/s and latency `λ_uv` s. With
//!   `routing = shortest_path` a hop may use the fastest multi-hop route (store and forward,
//!   Floyd–Warshall on `Σ λ + bytes·8/β`); otherwise a missing link makes the hop infeasible;
//! - an optional source `σ` (where the input lives) and sink `κ` (where the output must return; U-shaped
//!   split for label privacy; may equal `σ`).
//!
//! ## Parameters (the per-layer profile, [`cost::PipelineProfile`])
//! Per layer: static memory `w_l` (weights, + gradients and optimizer state of trainable parameters when
//! training), activation memory per in-flight micro-batch `act_l`, KV cache `kv_l` (held once), output
//! bytes `o_l`; input bytes `o_{-1}`; per node type: forward + backward time `t_τ,l` s and energy `e_τ,l`
//! J (default `P_n · time`). Built from an explicit table, or from a catalog LLM via the cost model
//! (`cost::layer_table`, `cost::memory`, `cost::roofline`). Inference: a request is one prefill pass of
//! `prompt_len` tokens plus `gen_len` decode passes; times and bytes are summed over the passes and the
//! KV cache covers `prompt_len + gen_len` tokens. Training: numbers per micro-batch.
//!
//! ## Decisions
//! An ordered sequence of stages `s = 0..S-1`, stage `s` on node `n_s` (distinct) holding the contiguous
//! layer range `[a_s, b_s)`, `a_0 = 0`, `a_{s+1} = b_s`, `b_{S-1} = L`.
//!
//! ## Elements and their times (s)
//! - input `σ → n_0`: `λ + o_{-1}·8/β` (0 without a source or if `n_0 = σ`);
//! - stage `s`: `T_s = Σ_{l∈[a_s,b_s)} t_{τ(n_s),l} / α_{n_s}`;
//! - link `n_s → n_{s+1}`: `C_s = φ·(λ + o_{b_s-1}·8/β)`, `φ = 2` when training (activation forward,
//!   gradient back), else 1;
//! - output `n_{S-1} → κ`: `φ·(λ + o_{L-1}·8/β)` (0 without a sink or if `n_{S-1} = κ`).
//!
//! Energy per element: stage energy `Σ e`; transfer energy `P^tx_sender · time`.
//!
//! ## Objectives (`objective`)
//! - `bottleneck`: `max` over elements (1/throughput, PipeEdge's objective), minimise;
//! - `latency`: `Σ` over elements (one request end to end, EdgeShard's latency objective), minimise;
//! - `training_iteration`: GPipe / 1F1B with `m` micro-batches, `Σ + (m − 1)·max` (every element is a
//!   pipeline step; the fill/drain bubble plus `m − 1` steps of the slowest element), minimise;
//! - `energy`: `m · Σ e`, minimise; or `energy_budget_j` as a constraint with any single-pipeline objective;
//! - `replicated_throughput` (Helix): each node holds at most one range (or none); a node holding
//!   `[a,b)` is an arc of capacity `1/T`, it feeds nodes starting at `b` through arcs of capacity
//!   `1/C`; the source feeds nodes starting at 0, nodes ending at `L` return to the sink. Objective:
//!   max flow × tokens per pass (tokens/s), maximise. Disjoint chains are a special case.
//!
//! ## Constraints
//! - memory per stage: `Σ w + f_s·Σ act + Σ kv + o_in·(1 + c_in·[a>0]) + o_out·(1 + c_out) ≤ M_n`
//!   (PipeEdge's buffer convention with `c_in = c_out = 2`; `f_s` in-flight micro-batches: GPipe `m`,
//!   1F1B `min(m, S − s)`, inference 1; the replicated objective uses `m`);
//! - each node at most once; links exist (or a route does); source and sink fixed; optional energy budget.
//!
//! ## Solvers (one file each)
//! `exact` (bisection + subset-bitset DP for the bottleneck; label-setting branch and bound otherwise),
//! `milp` (HiGHS, range formulation, warm-started), `brute-force` (tiny instances), `order-dp`
//! (PipeEdge-style DP for the node order of the instance), `speed-dp`, `local-search`,
//! `greedy-replicas` (heuristics), `petals-greedy`, `equal-split` (baselines).

// Index loops follow the math (sets N, L and their indices).
#![allow(clippy::needless_range_loop)]

pub mod brute_force;
pub mod catalog_profile;
pub mod cost;
pub mod equal_split;
pub mod exact;
pub mod generate;
pub mod instance;
pub mod local_search;
pub mod milp;
pub mod order_dp;
pub mod petals;
pub mod replicas;

pub use cost::{Agg, Plan, Prepared};
pub use instance::*;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::solve::{Evaluation, Family, Sense, Solver};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The family marker.
pub struct Pipeline;

/// One stage of a solution: a node and the inclusive, 0-based layer range it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageAssignment {
    pub node: String,
    pub first_layer: usize,
    pub last_layer: usize,
}

/// A solution: the stages in pipeline order (for `replicated_throughput`: the ranges held by the
/// nodes, in any order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSolution {
    pub stages: Vec<StageAssignment>,
}

impl PipelineSolution {
    /// From an internal plan.
    pub fn from_plan(p: &Prepared, plan: &Plan) -> Self {
        PipelineSolution {
            stages: plan
                .stages
                .iter()
                .map(|&(n, a, b)| StageAssignment {
                    node: p.nodes[n].name.clone(),
                    first_layer: a,
                    last_layer: b - 1,
                })
                .collect(),
        }
    }

    /// To an internal plan (unknown nodes or reversed ranges are errors).
    pub fn to_plan(&self, p: &Prepared) -> std::result::Result<Plan, String> {
        let mut stages = vec![];
        for (i, s) in self.stages.iter().enumerate() {
            let n = p
                .nodes
                .iter()
                .position(|x| x.name == s.node)
                .ok_or_else(|| format!("stage {i}: unknown node '{}'", s.node))?;
            if s.last_layer < s.first_layer {
                return Err(format!("stage {i}: last_layer < first_layer"));
            }
            stages.push((n, s.first_layer, s.last_layer + 1));
        }
        Ok(Plan { stages })
    }
}

fn bad(msg: String) -> Evaluation {
    Evaluation {
        feasible: false,
        objective: f64::NAN,
        violations: vec![msg],
        metrics: serde_json::Value::Null,
    }
}

/// Evaluates a plan (single-pipeline objectives): feasibility, objective, and a per-stage timeline
/// of one request / micro-batch forward (start, end, compute, communication).
pub fn evaluate_plan(p: &Prepared, plan: &Plan) -> Evaluation {
    let (feasible, violations, g) = match p.plan_agg(plan) {
        Ok(g) => (true, vec![], Some(g)),
        Err(e) => (false, vec![e], None),
    };
    let l = p.num_layers();
    let s_count = plan.stages.len();
    let mut t = plan.stages.first().map_or(0.0, |s| p.input_time_s(s.0));
    let input_s = t;
    let mut stages = vec![];
    let mut bottleneck = ("input".to_string(), input_s);
    for (s, &(n, a, b)) in plan.stages.iter().enumerate() {
        if n >= p.num_nodes() || b > l || a >= b {
            break;
        }
        let compute = p.stage_time_s(n, a, b);
        let comm_out = if s + 1 < s_count {
            p.link_time_s(n, plan.stages[s + 1].0, b)
        } else {
            p.output_time_s(n)
        };
        let comm_in = if s == 0 {
            input_s
        } else {
            p.link_time_s(plan.stages[s - 1].0, n, a)
        };
        let start = t;
        let end = start + compute;
        if compute > bottleneck.1 {
            bottleneck = (format!("stage {s}"), compute);
        }
        if comm_out > bottleneck.1 {
            bottleneck = (format!("link {s}"), comm_out);
        }
        let r = s_count - s;
        stages.push(json!({
            "index": s,
            "node": p.nodes[n].name,
            "device_type": p.profile.types[p.nodes[n].type_idx].name,
            "first_layer": a,
            "last_layer": b - 1,
            "layers": b - a,
            "start_s": start,
            "end_s": end,
            "compute_s": compute,
            "comm_in_s": comm_in,
            "comm_out_s": comm_out,
            "comm_start_s": end,
            "comm_end_s": end + comm_out,
            "memory_bytes": p.stage_memory_bytes(a, b, r),
            "memory_capacity_bytes": p.nodes[n].memory_bytes,
            "in_flight_micro_batches": p.in_flight(r),
            "energy_j": p.stage_energy_j(n, a, b) * p.micro_batches,
        }));
        t = end + comm_out;
    }
    let objective = g.map_or(f64::NAN, |g| p.objective_of(&g));
    let metrics = json!({
        "objective_kind": p.objective,
        "num_stages": s_count,
        "sum_element_time_s": g.map(|g| g.sum_s),
        "bottleneck_s": g.map(|g| g.max_s),
        "bottleneck_element": bottleneck.0,
        "throughput_per_s": g.map(|g| Prepared::capacity(g.max_s)),
        "tokens_per_s": g.map(|g| p.tokens_per_s(Prepared::capacity(g.max_s))),
        "energy_j": g.map(|g| p.energy_total_j(&g)),
        "input_transfer_s": input_s,
        "request_end_s": t,
        "micro_batches": p.micro_batches,
        "stages": stages,
    });
    Evaluation {
        feasible,
        objective,
        violations,
        metrics,
    }
}

/// Evaluates a replicated placement (max flow).
pub fn evaluate_replicated(p: &Prepared, plan: &Plan) -> Evaluation {
    match p.replicated_flow(&plan.stages) {
        Err(e) => bad(e),
        Ok((flow, per)) => {
            let ranges: Vec<_> = plan
                .stages
                .iter()
                .zip(&per)
                .map(|(&(n, a, b), f)| {
                    json!({
                        "node": p.nodes[n].name,
                        "first_layer": a,
                        "last_layer": b - 1,
                        "compute_s": p.stage_time_s(n, a, b),
                        "capacity_per_s": Prepared::capacity(p.stage_time_s(n, a, b)),
                        "flow_per_s": f,
                        "memory_bytes": p.stage_memory_bytes(a, b, usize::MAX),
                        "memory_capacity_bytes": p.nodes[n].memory_bytes,
                    })
                })
                .collect();
            Evaluation {
                feasible: true,
                objective: p.tokens_per_s(flow),
                violations: vec![],
                metrics: json!({
                    "objective_kind": p.objective,
                    "flow_passes_per_s": flow,
                    "tokens_per_pass": p.tokens_per_pass,
                    "tokens_per_s": p.tokens_per_s(flow),
                    "ranges": ranges,
                }),
            }
        }
    }
}

/// Whether the instance asks for replicated pipelines.
pub fn is_replicated(p: &Prepared) -> bool {
    p.objective == Objective::ReplicatedThroughput
}

/// Objective of an internal plan under the instance's objective (`None` when infeasible); the one
/// function solvers use to score candidate plans.
pub fn plan_value(p: &Prepared, plan: &Plan) -> Option<f64> {
    if is_replicated(p) {
        p.replicated_flow(&plan.stages)
            .ok()
            .map(|(f, _)| p.tokens_per_s(f))
    } else {
        p.plan_objective(plan)
    }
}

impl Family for Pipeline {
    const NAME: &'static str = "pipeline";
    type Instance = PipelineInstance;
    type Prepared = Prepared;
    type Solution = PipelineSolution;

    fn prepare(instance: &PipelineInstance, catalog: &Catalog) -> Result<Prepared> {
        instance.prepare(catalog)
    }

    fn sense(p: &Prepared) -> Sense {
        if is_replicated(p) {
            Sense::Maximize
        } else {
            Sense::Minimize
        }
    }

    fn evaluate(p: &Prepared, solution: &PipelineSolution) -> Evaluation {
        let plan = match solution.to_plan(p) {
            Ok(x) => x,
            Err(e) => return bad(e),
        };
        if plan
            .stages
            .iter()
            .any(|&(_, a, b)| b > p.num_layers() || a >= b)
        {
            return bad(format!(
                "a layer range exceeds the model's {} layers",
                p.num_layers()
            ));
        }
        if is_replicated(p) {
            evaluate_replicated(p, &plan)
        } else {
            evaluate_plan(p, &plan)
        }
    }

    fn solvers() -> Vec<Box<dyn Solver<Self>>> {
        vec![
            Box::new(exact::Exact),
            Box::new(milp::MilpSolver),
            Box::new(brute_force::BruteForce),
            Box::new(order_dp::OrderDp),
            Box::new(order_dp::SpeedDp),
            Box::new(local_search::LocalSearch),
            Box::new(replicas::GreedyReplicas),
            Box::new(petals::PetalsGreedy),
            Box::new(equal_split::EqualSplit),
        ]
    }

    fn auto_solver(p: &Prepared) -> &'static str {
        if is_replicated(p) {
            if p.num_nodes() * p.num_layers() <= 200 {
                "milp"
            } else {
                "greedy-replicas"
            }
        } else if p.num_nodes() <= exact::MAX_BITSET_NODES {
            "exact"
        } else {
            "local-search"
        }
    }

    fn generate(size: &str, seed: u64) -> Result<PipelineInstance> {
        generate::generate(size, seed)
    }
}
