//! Brute-force enumeration (tiny instances; the reference the tests compare every exact solver with).
//!
//! Single pipeline: every ordered sequence of distinct nodes and every composition of the layers into
//! that many non-empty contiguous ranges, scored by [`Prepared::plan_agg`]. Replicated: every
//! assignment of "nothing or one range" to each node, scored by the max flow.

use super::cost::{Plan, Prepared};
use super::{is_replicated, plan_value, Pipeline, PipelineSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

/// Size limits (plans enumerated).
pub const MAX_PLANS: f64 = 5.0e6;

fn count_single(n: usize, l: usize) -> f64 {
    // sum_k P(n, k) * C(l-1, k-1)
    let mut total = 0.0;
    let mut perm = 1.0;
    for k in 1..=n.min(l) {
        perm *= (n - k + 1) as f64;
        let mut c = 1.0;
        for i in 0..(k - 1) {
            c = c * (l - 1 - i) as f64 / (i + 1) as f64;
        }
        total += perm * c;
    }
    total
}

fn count_replicated(n: usize, l: usize) -> f64 {
    ((1 + l * (l + 1) / 2) as f64).powi(n as i32)
}

/// Enumerates every single-pipeline plan; returns the best (objective, plan) or `None`.
pub fn best_single(p: &Prepared) -> Option<(Plan, f64)> {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let mut best: Option<(Plan, f64)> = None;
    let mut stages = vec![];
    let mut used = vec![false; n];
    fn rec(
        p: &Prepared,
        a: usize,
        l: usize,
        stages: &mut Vec<(usize, usize, usize)>,
        used: &mut Vec<bool>,
        best: &mut Option<(Plan, f64)>,
    ) {
        if a == l {
            let plan = Plan {
                stages: stages.clone(),
            };
            if let Some(v) = p.plan_objective(&plan) {
                if best.as_ref().is_none_or(|b| v < b.1) {
                    *best = Some((plan, v));
                }
            }
            return;
        }
        for v in 0..used.len() {
            if used[v] {
                continue;
            }
            used[v] = true;
            for b in a + 1..=l {
                stages.push((v, a, b));
                rec(p, b, l, stages, used, best);
                stages.pop();
            }
            used[v] = false;
        }
    }
    rec(p, 0, l, &mut stages, &mut used, &mut best);
    best
}

/// Enumerates every replicated placement; returns the best (plan, tokens/s).
pub fn best_replicated(p: &Prepared) -> Option<(Plan, f64)> {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let mut ranges = vec![None];
    for a in 0..l {
        for b in a + 1..=l {
            ranges.push(Some((a, b)));
        }
    }
    let mut choice = vec![0usize; n];
    let mut best: Option<(Plan, f64)> = None;
    loop {
        let stages: Vec<(usize, usize, usize)> = choice
            .iter()
            .enumerate()
            .filter_map(|(v, &c)| ranges[c].map(|(a, b)| (v, a, b)))
            .collect();
        let plan = Plan { stages };
        if let Some(x) = plan_value(p, &plan) {
            if best.as_ref().is_none_or(|b| x > b.1) {
                best = Some((plan, x));
            }
        }
        let mut i = 0;
        loop {
            if i == n {
                return best;
            }
            choice[i] += 1;
            if choice[i] < ranges.len() {
                break;
            }
            choice[i] = 0;
            i += 1;
        }
    }
}

/// Brute force.
pub struct BruteForce;

impl Solver<Pipeline> for BruteForce {
    fn name(&self) -> &'static str {
        "brute-force"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "enumerates every plan (tiny instances only): the reference for tests"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        let (n, l) = (p.num_nodes(), p.num_layers());
        let c = if is_replicated(p) {
            count_replicated(n, l)
        } else {
            count_single(n, l)
        };
        if c > MAX_PLANS {
            Err(format!(
                "{c:.3e} plans to enumerate (limit {MAX_PLANS:.0e})"
            ))
        } else {
            Ok(())
        }
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        let r = if is_replicated(p) {
            best_replicated(p)
        } else {
            best_single(p)
        };
        Ok(match r {
            Some((plan, v)) => {
                let mut o = Outcome::with(
                    Termination::Optimal,
                    PipelineSolution::from_plan(p, &plan),
                    v,
                );
                o.bound = Some(v);
                o
            }
            None => Outcome::none(Termination::Infeasible),
        })
    }
}
