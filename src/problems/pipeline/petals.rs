//! Petals-style greedy baseline: servers (fastest first) each take the longest span of the
//! not-yet-served layers that fits their memory, starting where the previous one stopped; the next
//! server is the fastest remaining one reachable from the previous. No look-ahead, no balancing.

use super::cost::{Plan, Prepared};
use super::order_dp::{single_only, speed_order};
use super::{Pipeline, PipelineSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

/// The greedy plan (memory checked at the most conservative position), if it covers every layer.
pub fn greedy_plan(p: &Prepared) -> Option<Plan> {
    let l = p.num_layers();
    let all: Vec<usize> = (0..p.num_nodes()).collect();
    let mut order = speed_order(p, &all);
    let mut stages: Vec<(usize, usize, usize)> = vec![];
    let mut a = 0;
    while a < l {
        let pick = order.iter().position(|&v| {
            let reach = match stages.last() {
                None => p.input_time_s(v).is_finite(),
                Some(&(u, _, b)) => p.link_time_s(u, v, b).is_finite(),
            };
            reach && p.stage_ok(v, a, a + 1, usize::MAX)
        })?;
        let v = order.remove(pick);
        let mut b = a + 1;
        while b < l && p.stage_ok(v, a, b + 1, usize::MAX) {
            b += 1;
        }
        stages.push((v, a, b));
        a = b;
    }
    Some(Plan { stages })
}

/// Petals-style greedy.
pub struct PetalsGreedy;

impl Solver<Pipeline> for PetalsGreedy {
    fn name(&self) -> &'static str {
        "petals-greedy"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "Petals-style greedy: fastest reachable server takes the longest span of remaining layers that fits its memory"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        single_only(p)
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        Ok(match greedy_plan(p) {
            Some(plan) => {
                let v = p.plan_objective(&plan).unwrap_or(f64::NAN);
                let mut o = Outcome::with(
                    Termination::Completed,
                    PipelineSolution::from_plan(p, &plan),
                    v,
                );
                if v.is_nan() {
                    o.objective = None;
                    o.notes.push(
                        "greedy plan violates a constraint (e.g. a link or the energy budget)"
                            .into(),
                    );
                }
                o
            }
            None => {
                let mut o = Outcome::none(Termination::Completed);
                o.notes.push("greedy could not cover every layer".into());
                o
            }
        })
    }
}
