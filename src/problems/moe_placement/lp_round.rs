//! `lp-round` (gradient kind: LP relaxation): per layer (in parallel) the LP relaxation of the
//! layer model (holdings in [0, 1]) gives a lower bound; rounding keeps, for each expert in order of
//! demand, the server with the largest fractional holding that has a free slot, then adds copies by
//! decreasing fractional value within the slots and the replication budget; repair: the routing LP
//! on the rounded holdings, and the greedy local search then the `ils` search (with routing LP
//! polish) from the rounded holdings, the best kept (the LP's holdings are a better start for
//! `ils` than greedy's on the latency objective: DeepSeek-V2-Lite on 16 servers 0.5761 against
//! 0.5797). The reported bound is the sum of the per-layer LP bounds.

use super::cost::{LayerPlan, Prepared};
use super::model::{self, Mode};
use super::{finish, MoePlacement};
use super::{greedy, ils};
use crate::error::Result;
use crate::solve::milp::MilpStatus;
use crate::solve::{Context, NoObserver, Outcome, Solver, SolverKind, StopFlag, Termination};
use rayon::prelude::*;
use std::time::Instant;

/// Rounds fractional holdings `xf[s][e]` to a feasible holding matrix.
pub fn round(p: &Prepared, l: usize, xf: &[Vec<f64>]) -> Vec<Vec<bool>> {
    let ns = p.num_servers();
    let mut hold = vec![vec![false; p.experts]; ns];
    let mut free: Vec<usize> = p.servers.iter().map(|s| s.slots).collect();
    let mut order: Vec<usize> = (0..p.experts).collect();
    order.sort_by(|&a, &b| p.expert_demand[l][b].total_cmp(&p.expert_demand[l][a]));
    for &e in &order {
        let s = (0..ns)
            .filter(|&s| free[s] > 0)
            .max_by(|&a, &b| xf[a][e].total_cmp(&xf[b][e]).then(free[a].cmp(&free[b])));
        if let Some(s) = s {
            hold[s][e] = true;
            free[s] -= 1;
        }
    }
    let mut extra: Vec<(f64, usize, usize)> = vec![];
    for s in 0..ns {
        for e in 0..p.experts {
            if !hold[s][e] && xf[s][e] > 1e-6 {
                extra.push((xf[s][e], s, e));
            }
        }
    }
    extra.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut copies = p.experts;
    for (_, s, e) in extra {
        if copies >= p.max_replicas {
            break;
        }
        if free[s] > 0 {
            hold[s][e] = true;
            free[s] -= 1;
            copies += 1;
        }
    }
    hold
}

fn layer(
    p: &Prepared,
    l: usize,
    opts: &crate::solve::SolveOptions,
    deadline: Option<Instant>,
    stop: StopFlag,
) -> Result<(Option<LayerPlan>, Option<f64>, bool)> {
    let lm = model::build(p, l, Mode::Relaxed);
    let mut o = opts.clone();
    o.threads = Some(1);
    o.time_limit_s = deadline.map(|d| {
        d.saturating_duration_since(Instant::now())
            .as_secs_f64()
            .max(1e-3)
    });
    let mut obs = NoObserver;
    let mut ctx = Context::new(&o, &mut obs, stop.clone());
    let relax = lm.milp.solve(&mut ctx, None)?;
    if relax.status == MilpStatus::Infeasible {
        return Ok((None, None, true));
    }
    let (Some(x), MilpStatus::Optimal) = (relax.x.as_ref(), relax.status) else {
        return Ok((None, None, false));
    };
    let hold = round(p, l, &lm.holding_values(p, x));
    let r = model::solve_layer(p, l, Mode::Fixed(&hold), opts, deadline, stop.clone(), None)?;
    let mut plan = match (r.status, r.plan) {
        (MilpStatus::Optimal, Some(pl)) => Some(pl),
        _ => None,
    };
    // repair and improvement: the `greedy` and `ils` local searches from the rounded holdings
    // (kept when better)
    if p.fully_connected() {
        let (rep, _) = greedy::improve(p, l, hold, deadline);
        let (its, _) = ils::search(p, l, &rep, &ils::Params::default(), deadline, stop.clone());
        let its = greedy::polish(p, l, its, deadline, stop);
        let rep = greedy::pick(p, l, rep, its);
        plan = Some(match plan {
            Some(pl) => greedy::pick(p, l, pl, rep),
            None => rep,
        });
    }
    Ok((plan, relax.objective, false))
}

/// The `lp-round` solver.
pub struct LpRound;

impl Solver<MoePlacement> for LpRound {
    fn name(&self) -> &'static str {
        "lp-round"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Gradient
    }
    fn description(&self) -> &'static str {
        "LP relaxation per layer (bound), rounding by fractional holdings, routing LP, greedy and ils repair"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        if !p.enough_slots() {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let deadline = greedy::deadline_of(ctx);
        let stop = ctx.stop_flag();
        let opts = ctx.options.clone();
        let res: Vec<Result<(Option<LayerPlan>, Option<f64>, bool)>> = (0..p.layers)
            .into_par_iter()
            .map(|l| layer(p, l, &opts, deadline, stop.clone()))
            .collect();
        let res: Vec<_> = res.into_iter().collect::<Result<_>>()?;
        if res.iter().any(|r| r.2) {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let bound: Option<f64> = res.iter().map(|r| r.1).sum();
        let plans: Option<Vec<LayerPlan>> = res.into_iter().map(|r| r.0).collect();
        Ok(match plans {
            Some(pl) => finish(p, &pl, ctx.early_termination(), bound),
            None => {
                let mut o = Outcome::none(ctx.early_termination());
                o.bound = bound;
                o
            }
        })
    }
}
