//! Greedy replicated pipelines (Helix-style objective): repeatedly build the best-bottleneck pipeline
//! from the remaining nodes (local search + fixed-order DP) and keep it while the max flow of the
//! union grows.

use super::cost::{Plan, Prepared};
use super::local_search::{default_moves, search};
use super::{is_replicated, Pipeline, PipelineSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind};

/// The greedy placement and its tokens/s.
pub fn greedy(p: &Prepared, seed: u64, ctx: Option<&Context<'_>>) -> (Plan, f64) {
    let mut remaining: Vec<usize> = (0..p.num_nodes()).collect();
    let mut chosen: Vec<(usize, usize, usize)> = vec![];
    let mut flow = 0.0;
    while !remaining.is_empty() {
        if ctx.is_some_and(|c| c.should_stop()) {
            break;
        }
        let Some((plan, _)) = search(p, &remaining, default_moves(p, remaining.len()), seed, ctx)
        else {
            break;
        };
        let mut cand = chosen.clone();
        cand.extend(plan.stages.iter().copied());
        match p.replicated_flow(&cand) {
            Ok((f, _)) if f > flow * (1.0 + 1e-12) => {
                flow = f;
                chosen = cand;
                remaining.retain(|v| !plan.stages.iter().any(|s| s.0 == *v));
            }
            _ => break,
        }
    }
    let plan = Plan { stages: chosen };
    let v = p.tokens_per_s(flow);
    (plan, v)
}

/// Greedy replicated pipelines.
pub struct GreedyReplicas;

impl Solver<Pipeline> for GreedyReplicas {
    fn name(&self) -> &'static str {
        "greedy-replicas"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "replicated throughput: repeatedly add the best-bottleneck pipeline over the remaining nodes while the max flow grows"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if is_replicated(p) {
            Ok(())
        } else {
            Err("only for the replicated_throughput objective".into())
        }
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        let (plan, v) = greedy(p, ctx.options.seed, Some(ctx));
        Ok(Outcome::with(
            ctx.early_termination(),
            PipelineSolution::from_plan(p, &plan),
            v,
        ))
    }
}
