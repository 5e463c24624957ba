//! `brute-force` (exact, tiny instances): per layer, every holding matrix within the memory slots,
//! covering every expert and within the replication budget; routing by the LP of
//! [`super::model`] with the holdings fixed; the best per layer. Used to check `milp` in the tests.

use super::cost::{LayerPlan, Prepared};
use super::model::{self, Mode};
use super::{finish, MoePlacement};
use crate::error::Result;
use crate::solve::milp::MilpStatus;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

/// Largest number of holding matrices enumerated per layer.
pub const MAX_PLACEMENTS: f64 = 20_000.0;

fn subsets(e: usize, k: usize) -> Vec<u32> {
    (0u32..(1 << e))
        .filter(|m| m.count_ones() as usize <= k)
        .collect()
}

fn count(p: &Prepared) -> f64 {
    p.servers
        .iter()
        .map(|s| subsets(p.experts, s.slots).len() as f64)
        .product()
}

/// The `brute-force` solver.
pub struct BruteForce;

impl Solver<MoePlacement> for BruteForce {
    fn name(&self) -> &'static str {
        "brute-force"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "enumerates every holding per layer with a routing LP each (tiny instances)"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.experts <= 12 && count(p) <= MAX_PLACEMENTS {
            Ok(())
        } else {
            Err(format!("more than {MAX_PLACEMENTS} holdings per layer"))
        }
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        let ns = p.num_servers();
        let full = (1u32 << p.experts) - 1;
        let per: Vec<Vec<u32>> = p
            .servers
            .iter()
            .map(|s| subsets(p.experts, s.slots))
            .collect();
        let mut plans = vec![];
        let mut iters = 0;
        for l in 0..p.layers {
            let mut best: Option<(f64, LayerPlan)> = None;
            let mut idx = vec![0usize; ns];
            'outer: loop {
                if ctx.should_stop() {
                    return Ok(Outcome::none(ctx.early_termination()));
                }
                let masks: Vec<u32> = (0..ns).map(|s| per[s][idx[s]]).collect();
                let union = masks.iter().fold(0, |a, m| a | m);
                let copies: u32 = masks.iter().map(|m| m.count_ones()).sum();
                if union == full && copies as usize <= p.max_replicas {
                    let hold: Vec<Vec<bool>> = masks
                        .iter()
                        .map(|m| (0..p.experts).map(|e| m >> e & 1 == 1).collect())
                        .collect();
                    iters += 1;
                    let r = model::solve_layer(
                        p,
                        l,
                        Mode::Fixed(&hold),
                        ctx.options,
                        None,
                        ctx.stop_flag(),
                        None,
                    )?;
                    if r.status == MilpStatus::Optimal {
                        if let Some(pl) = r.plan {
                            let v = p.plan_layer_value(l, &pl).objective;
                            if best.as_ref().is_none_or(|b| v < b.0) {
                                best = Some((v, pl));
                            }
                        }
                    }
                }
                for s in 0..ns {
                    idx[s] += 1;
                    if idx[s] < per[s].len() {
                        continue 'outer;
                    }
                    idx[s] = 0;
                }
                break;
            }
            match best {
                Some((_, pl)) => plans.push(pl),
                None => return Ok(Outcome::none(Termination::Infeasible)),
            }
        }
        let obj = p.plan_objective(&plans);
        let mut o = finish(p, &plans, Termination::Optimal, Some(obj));
        o.iterations = iters;
        Ok(o)
    }
}
