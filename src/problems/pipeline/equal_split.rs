//! Equal-split baseline: the `k` fastest nodes (source first) each take `L/k` consecutive layers
//! (the first `L mod k` one more), for the best feasible `k`.

use super::cost::{Plan, Prepared};
use super::order_dp::{single_only, speed_order};
use super::{Pipeline, PipelineSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

/// The equal split over the first `k` nodes of `order`.
pub fn equal_plan(order: &[usize], k: usize, l: usize) -> Plan {
    let (q, r) = (l / k, l % k);
    let mut a = 0;
    let mut stages = vec![];
    for (i, &v) in order.iter().take(k).enumerate() {
        let b = a + q + usize::from(i < r);
        stages.push((v, a, b));
        a = b;
    }
    Plan { stages }
}

/// Equal layer split.
pub struct EqualSplit;

impl Solver<Pipeline> for EqualSplit {
    fn name(&self) -> &'static str {
        "equal-split"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "equal layer split over the k fastest nodes, best feasible k"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        single_only(p)
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        let l = p.num_layers();
        let all: Vec<usize> = (0..p.num_nodes()).collect();
        let order = speed_order(p, &all);
        let mut best: Option<(Plan, f64)> = None;
        for k in 1..=order.len().min(l) {
            let plan = equal_plan(&order, k, l);
            if let Some(v) = p.plan_objective(&plan) {
                if best.as_ref().is_none_or(|b| v < b.1) {
                    best = Some((plan, v));
                }
            }
        }
        Ok(match best {
            Some((plan, v)) => Outcome::with(
                Termination::Completed,
                PipelineSolution::from_plan(p, &plan),
                v,
            ),
            None => {
                let mut o = Outcome::none(Termination::Completed);
                o.notes.push("no equal split is feasible".into());
                o
            }
        })
    }
}
