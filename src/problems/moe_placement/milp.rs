//! `milp` (exact): the per-layer MILP of [`super::model`] with binary holdings, one HiGHS model per
//! layer (one thread each), layers solved in parallel (rayon), each warm-started from `ils`
//! (at most [`WARM_SHARE`] of the time limit).
//! Layers share no variable or constraint, so the optimum is the sum of the per-layer optima and the
//! bound is the sum of the per-layer dual bounds; the run is optimal only when every layer is. A
//! requested relative gap `g` per layer gives at most `g` on the sum. Under a time limit each layer
//! gets the time left when it starts × threads / layers not started yet.

use super::cost::{LayerPlan, Prepared};
use super::greedy;
use super::model::{self, LayerSolve, Mode};
use super::{finish, MoePlacement};
use crate::error::Result;
use crate::solve::milp::MilpStatus;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};
use rayon::prelude::*;

/// Combines per-layer results: termination, plans (when every layer has one), summed bound.
pub fn combine(
    p: &Prepared,
    res: Vec<LayerSolve>,
    fallback: Option<&[LayerPlan]>,
    ctx: &Context<'_>,
) -> Outcome<super::MoeSolution> {
    let statuses: Vec<MilpStatus> = res.iter().map(|r| r.status).collect();
    let nodes: u64 = res.iter().map(|r| r.nodes).sum();
    if statuses.contains(&MilpStatus::Infeasible) {
        let mut o = Outcome::none(Termination::Infeasible);
        o.nodes = nodes;
        return o;
    }
    // a layer stopped before its root LP has no dual bound: use the trivial one there
    let bound: f64 = res
        .iter()
        .enumerate()
        .map(|(l, r)| {
            r.bound
                .unwrap_or(f64::NEG_INFINITY)
                .max(p.layer_lower_bound(l))
        })
        .sum();
    let bound = Some(bound);
    let mut plans = vec![];
    for (l, r) in res.into_iter().enumerate() {
        match (r.plan, fallback) {
            (Some(pl), Some(fb)) => plans.push(greedy::pick(p, l, pl, fb[l].clone())),
            (Some(pl), None) => plans.push(pl),
            (None, Some(fb)) => plans.push(fb[l].clone()),
            (None, None) => {
                let mut o = Outcome::none(ctx.early_termination().max_with(&statuses));
                o.bound = bound;
                o.nodes = nodes;
                return o;
            }
        }
    }
    let term = if statuses.iter().all(|s| *s == MilpStatus::Optimal) {
        Termination::Optimal
    } else {
        ctx.early_termination().max_with(&statuses)
    };
    let mut o = finish(p, &plans, term, bound);
    o.nodes = nodes;
    o
}

trait Worst {
    fn max_with(self, s: &[MilpStatus]) -> Termination;
}

impl Worst for Termination {
    /// The termination a set of non-optimal layer statuses amounts to.
    fn max_with(self, s: &[MilpStatus]) -> Termination {
        for st in s {
            if *st != MilpStatus::Optimal {
                let t = st.termination();
                if t != Termination::Completed {
                    return t;
                }
            }
        }
        if self == Termination::Completed {
            Termination::TimeLimit
        } else {
            self
        }
    }
}

/// The deadline of a layer that starts now while `waiting` layers (itself included) have not
/// started: its share `threads / waiting` of the time left (all of it when fewer layers than threads
/// are left), so that every layer gets time and time saved on easy layers goes to later ones.
pub fn fair_share(
    deadline: Option<std::time::Instant>,
    threads: f64,
    waiting: usize,
) -> Option<std::time::Instant> {
    deadline.map(|d| {
        let now = std::time::Instant::now();
        let left = d.saturating_duration_since(now);
        d.min(now + left.mul_f64((threads / waiting.max(1) as f64).min(1.0)))
    })
}

/// Largest share of the time limit the `ils` warm start may use.
pub const WARM_SHARE: f64 = 0.25;

/// The `milp` solver.
pub struct MilpSolver;

impl Solver<MoePlacement> for MilpSolver {
    fn name(&self) -> &'static str {
        "milp"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "per-layer MILP (HiGHS), layers in parallel, warm-started from ils; bound = sum of layer bounds"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        if !p.enough_slots() {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let deadline = greedy::deadline_of(ctx);
        let stop = ctx.stop_flag();
        // the warm start (`ils`, never worse than `greedy`) gets at most a quarter of the time
        let ils_deadline = deadline.map(|d| {
            let now = std::time::Instant::now();
            now + d.saturating_duration_since(now).mul_f64(WARM_SHARE)
        });
        let warm = (ctx.options.warm_start && p.fully_connected())
            .then(|| super::ils::plans(p, ils_deadline, stop.clone()));
        let opts = ctx.options.clone();
        // under a time limit each layer gets a fair share of the time left when it starts (threads /
        // layers not started yet), so that every layer reaches at least its root bound and time
        // saved on easy layers goes to the later ones
        let threads = rayon::current_num_threads().max(1) as f64;
        let started = std::sync::atomic::AtomicUsize::new(0);
        let res: Vec<Result<LayerSolve>> = (0..p.layers)
            .into_par_iter()
            .map(|l| {
                let w = warm.as_ref().map(|w| &w[l]);
                let k = started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let dl = fair_share(deadline, threads, p.layers - k);
                model::solve_layer(p, l, Mode::Integer, &opts, dl, stop.clone(), w)
            })
            .collect();
        let res: Vec<LayerSolve> = res.into_iter().collect::<Result<_>>()?;
        let mut o = combine(p, res, warm.as_deref(), ctx);
        if warm.is_some() {
            o.notes.push("warm-started from ils".into());
        }
        Ok(o)
    }
}
