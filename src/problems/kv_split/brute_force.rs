//! Exact brute force for tiny instances: every user's every (split, device option, server option,
//! server[, reject]) choice, unpruned, each plan scored by the plan evaluator.

use super::cost::Prepared;
use super::{KvSplit, KvSplitSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Sense, Solver, SolverKind, Termination};

/// Largest number of plans enumerated.
pub const MAX_PLANS: f64 = 2e6;

pub struct BruteForce;

impl Solver<KvSplit> for BruteForce {
    fn name(&self) -> &'static str {
        "brute-force"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "enumerates every user's unpruned choice (tiny instances, for tests)"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        let n: f64 = (0..p.users.len())
            .map(|u| p.all_choices(u).len() as f64)
            .product();
        if n > MAX_PLANS {
            Err(format!("{n:.3e} plans > {MAX_PLANS:.0e}"))
        } else {
            Ok(())
        }
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<KvSplitSolution>> {
        let sense = if p.uses_admission() {
            Sense::Maximize
        } else {
            Sense::Minimize
        };
        let choices: Vec<_> = (0..p.users.len()).map(|u| p.all_choices(u)).collect();
        let mut idx = vec![0usize; choices.len()];
        let mut best: Option<(Vec<super::Choice>, f64)> = None;
        let mut n = 0u64;
        loop {
            if n.is_multiple_of(4096) && ctx.should_stop() {
                break;
            }
            n += 1;
            let plan: Vec<_> = idx
                .iter()
                .enumerate()
                .map(|(u, &j)| choices[u][j])
                .collect();
            if let Some(v) = p.plan_value(&plan) {
                if best.as_ref().is_none_or(|(_, b)| sense.better(v, *b)) {
                    best = Some((plan, v));
                }
            }
            // next
            let mut u = 0;
            loop {
                if u == idx.len() {
                    let mut o = finish(p, best, Termination::Optimal);
                    o.nodes = n;
                    return Ok(o);
                }
                idx[u] += 1;
                if idx[u] < choices[u].len() {
                    break;
                }
                idx[u] = 0;
                u += 1;
            }
        }
        let mut o = finish(p, best, ctx.early_termination());
        o.nodes = n;
        Ok(o)
    }
}

fn finish(
    p: &Prepared,
    best: Option<(Vec<super::Choice>, f64)>,
    t: Termination,
) -> Outcome<KvSplitSolution> {
    match best {
        Some((plan, v)) => {
            let mut o = Outcome::with(t, KvSplitSolution::from_plan(p, &plan), v);
            if t == Termination::Optimal {
                o.bound = Some(v);
            }
            o
        }
        None if t == Termination::Optimal => Outcome::none(Termination::Infeasible),
        None => Outcome::none(t),
    }
}
