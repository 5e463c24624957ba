//! `migration` (heuristic): rebalancing from the current placement with few moves. Per layer: repair
//! the current holdings (drop the least-demanded surplus copies beyond the slots or the budget, place
//! missing experts on the least-utilised server with a free slot, or in place of a surplus copy);
//! the load target is `(1 + load_slack) ×` the greedy's max utilisation of that layer; then, while
//! the layer's max utilisation is above the target, the single expert transfer (add a copy on a
//! server with a free slot, move a copy there, or replace a surplus copy) that lowers it most is
//! made. Each transfer moves one expert's bytes; it stops at the target or when nothing helps.

use super::cost::{LayerPlan, Prepared, ShareState};
use super::greedy::{self, deadline_of, heuristic_supports};
use super::{finish, MoePlacement};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};
use rayon::prelude::*;

fn max_util(p: &Prepared, st: &ShareState) -> (f64, usize, f64) {
    let mut best = (0.0, 0, 0.0);
    for (s, &a) in st.acts.iter().enumerate() {
        let u = a * p.util_per_act(s);
        best.2 += u * u;
        if u > best.0 || s == 0 {
            best = (u, s, best.2);
        }
    }
    best
}

/// Repairs `hold` to satisfy slots, coverage and the budget, changing as little as it can.
pub fn repair(p: &Prepared, l: usize, mut hold: Vec<Vec<bool>>) -> Vec<Vec<bool>> {
    let ns = p.num_servers();
    let dem = &p.expert_demand[l];
    let copies = |h: &Vec<Vec<bool>>, e: usize| (0..ns).filter(|&s| h[s][e]).count();
    // surplus beyond slots: drop least-demanded experts, duplicates first
    for s in 0..ns {
        while hold[s].iter().filter(|x| **x).count() > p.servers[s].slots {
            let e = (0..p.experts)
                .filter(|&e| hold[s][e])
                .min_by(|&a, &b| {
                    (copies(&hold, a) == 1)
                        .cmp(&(copies(&hold, b) == 1))
                        .then(dem[a].total_cmp(&dem[b]))
                })
                .unwrap_or(0);
            hold[s][e] = false;
        }
    }
    // missing experts
    for e in 0..p.experts {
        if copies(&hold, e) > 0 {
            continue;
        }
        let free = (0..ns)
            .filter(|&s| hold[s].iter().filter(|x| **x).count() < p.servers[s].slots)
            .min_by_key(|&s| hold[s].iter().filter(|x| **x).count());
        if let Some(s) = free {
            hold[s][e] = true;
            continue;
        }
        // replace the least-demanded duplicate copy
        let mut best: Option<(usize, usize)> = None;
        for s in 0..ns {
            for f in 0..p.experts {
                if hold[s][f] && copies(&hold, f) > 1 && best.is_none_or(|(_, bf)| dem[f] < dem[bf])
                {
                    best = Some((s, f));
                }
            }
        }
        if let Some((s, f)) = best {
            hold[s][f] = false;
            hold[s][e] = true;
        }
    }
    // budget
    loop {
        let total: usize = hold.iter().map(|h| h.iter().filter(|x| **x).count()).sum();
        if total <= p.max_replicas {
            break;
        }
        let mut best: Option<(usize, usize)> = None;
        for s in 0..ns {
            for f in 0..p.experts {
                if hold[s][f] && copies(&hold, f) > 1 && best.is_none_or(|(_, bf)| dem[f] < dem[bf])
                {
                    best = Some((s, f));
                }
            }
        }
        match best {
            Some((s, f)) => hold[s][f] = false,
            None => break,
        }
    }
    hold
}

/// Rebalances layer `l` from `current` towards `target` max utilisation; returns (plan, transfers).
pub fn rebalance(
    p: &Prepared,
    l: usize,
    current: Vec<Vec<bool>>,
    target: f64,
) -> (LayerPlan, usize) {
    let ns = p.num_servers();
    let mut st = ShareState::new(p, l, repair(p, l, current));
    let mut moves = 0;
    for _ in 0..(p.experts * ns) {
        let (cur, hot, sq) = max_util(p, &st);
        if cur <= target {
            break;
        }
        let total: usize = st
            .hold
            .iter()
            .map(|h| h.iter().filter(|x| **x).count())
            .sum();
        let mut best: Option<(Vec<(usize, usize, bool)>, (f64, f64))> = None;
        for e in (0..p.experts).filter(|&e| st.hold[hot][e] && st.demand[e] > 0.0) {
            for t in (0..ns).filter(|&t| t != hot && !st.hold[t][e]) {
                let used = st.hold[t].iter().filter(|x| **x).count();
                let mut cands = vec![];
                if used < p.servers[t].slots {
                    cands.push(vec![(t, e, true), (hot, e, false)]);
                    if total < p.max_replicas {
                        cands.push(vec![(t, e, true)]);
                    }
                }
                for f in (0..p.experts).filter(|&f| st.hold[t][f] && f != e) {
                    if (0..ns).filter(|&s| st.hold[s][f]).count() > 1 {
                        cands.push(vec![(t, e, true), (t, f, false)]);
                    }
                }
                for c in cands {
                    let mut trial = st.clone();
                    for &(s, x, v) in &c {
                        trial.hold[s][x] = v;
                    }
                    for &(_, x, _) in &c {
                        trial.refill(p, x);
                    }
                    let (m, _, q) = max_util(p, &trial);
                    let key = (m, q);
                    if (m < cur - 1e-15 || (m <= cur && q < sq))
                        && best.as_ref().is_none_or(|b| key < b.1)
                    {
                        best = Some((c, key));
                    }
                }
            }
        }
        match best {
            Some((c, _)) => {
                for &(s, x, v) in &c {
                    st.hold[s][x] = v;
                }
                for &(_, x, _) in &c {
                    st.refill(p, x);
                }
                moves += 1;
            }
            None => break,
        }
    }
    (st.plan(p), moves)
}

/// The `migration` solver.
pub struct Migration;

impl Solver<MoePlacement> for Migration {
    fn name(&self) -> &'static str {
        "migration"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "migration-aware rebalancing: fewest expert transfers from the current placement reaching (1 + load_slack) x greedy's load"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        heuristic_supports(p)?;
        if p.current.is_none() {
            return Err("needs a current_placement".into());
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        if !p.enough_slots() {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let Some(cur) = p.current.as_ref() else {
            return Ok(Outcome::none(Termination::Error));
        };
        let (gplans, _) = greedy::plans(p, deadline_of(ctx), ctx.stop_flag());
        let res: Vec<(LayerPlan, usize)> = (0..p.layers)
            .into_par_iter()
            .map(|l| {
                let target = p.plan_layer_value(l, &gplans[l]).max_util * (1.0 + p.load_slack);
                rebalance(p, l, cur[l].clone(), target)
            })
            .collect();
        let moves: usize = res.iter().map(|r| r.1).sum();
        let plans: Vec<LayerPlan> = res.into_iter().map(|r| r.0).collect();
        let mut o = finish(p, &plans, ctx.early_termination(), None);
        o.iterations = moves as u64;
        o.notes
            .push(format!("{moves} expert transfers after repair"));
        Ok(o)
    }
}
