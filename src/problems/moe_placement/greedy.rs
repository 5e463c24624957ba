//! `greedy` (heuristic): per layer, replicate by marginal load (each extra copy to the expert of
//! largest demand per copy, at most one copy per server), LPT packing of the copies onto the
//! heterogeneous servers (heaviest copy to the server whose utilisation after adding it is lowest,
//! within its memory slots), water-filling routing, then a best-improvement local search over
//! moves, added copies and swaps of the busiest server's experts (moves and copies only to the
//! [`TARGETS`] most promising servers, swaps only with the [`COLD`] least-loaded ones; every trial is
//! applied in place and undone). Where `E × S ≤` [`EPLB_SEARCH_LIMIT`] it also runs the local search
//! from EPLB's placement; per layer it keeps the best of {own, EPLB-started, EPLB itself}, so its
//! layer objectives (hence its max load under `max_load`) are never worse than EPLB's. Layers run in
//! parallel (rayon). On instances of moderate size a routing LP on the final holdings replaces the
//! water-filling routing when better.

use super::cost::{LayerPlan, Prepared, ShareState};
use super::model::{self, Mode};
use super::{eplb, finish, MoePlacement};
use crate::error::Result;
use crate::solve::milp::MilpStatus;
use crate::solve::{Context, Outcome, SolveOptions, Solver, SolverKind, StopFlag, Termination};
use rayon::prelude::*;
use std::time::Instant;

/// Largest `E × S` for which the local search also starts from EPLB's holdings.
pub const EPLB_SEARCH_LIMIT: usize = 4096;

/// Largest `homes × E × S` for which the routing LP polish runs.
pub const POLISH_LIMIT: usize = 20_000;

/// The greedy holdings of layer `l` (before local search).
pub fn construct(p: &Prepared, l: usize) -> Vec<Vec<bool>> {
    let ns = p.num_servers();
    let ne = p.experts;
    let w = &p.expert_demand[l];
    let total_slots: usize = p.servers.iter().map(|s| s.slots).sum();
    let copies = p.max_replicas.min(total_slots).min(ne * ns);
    let mut cnt = vec![1usize; ne];
    for _ in ne..copies {
        let mut best: Option<usize> = None;
        for e in 0..ne {
            if cnt[e] < ns && best.is_none_or(|b| w[e] / cnt[e] as f64 > w[b] / cnt[b] as f64) {
                best = Some(e);
            }
        }
        match best {
            Some(b) => cnt[b] += 1,
            None => break,
        }
    }
    // first copies before extra copies, each group heaviest first
    let mut items: Vec<(usize, usize, f64)> = vec![];
    for e in 0..ne {
        for c in 0..cnt[e] {
            items.push((c.min(1), e, w[e] / cnt[e] as f64));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.total_cmp(&a.2)));
    let mut hold = vec![vec![false; ne]; ns];
    let mut free: Vec<usize> = p.servers.iter().map(|s| s.slots).collect();
    let mut acts = vec![0.0; ns];
    for (_, e, a) in items {
        let mut best: Option<usize> = None;
        let key = |s: usize| (acts[s] + a) * p.util_per_act(s);
        for s in 0..ns {
            if free[s] > 0
                && !hold[s][e]
                && best.is_none_or(|b| {
                    let (ks, kb) = (key(s), key(b));
                    ks < kb || (ks == kb && free[s] > free[b])
                })
            {
                best = Some(s);
            }
        }
        if let Some(s) = best {
            hold[s][e] = true;
            free[s] -= 1;
            acts[s] += a;
        }
    }
    hold
}

/// A local search move: up to four `(server, expert, held)` changes (also `ils`'s).
#[derive(Clone, Copy, Debug)]
pub(super) struct Move {
    n: usize,
    c: [(usize, usize, bool); 4],
}

impl Move {
    pub(super) fn of(changes: &[(usize, usize, bool)]) -> Self {
        let mut c = [(0, 0, false); 4];
        c[..changes.len()].copy_from_slice(changes);
        Move {
            n: changes.len(),
            c,
        }
    }
    pub(super) fn changes(&self) -> &[(usize, usize, bool)] {
        &self.c[..self.n]
    }
    /// The distinct experts touched (a move touches at most two).
    pub(super) fn experts(&self) -> ([usize; 2], usize) {
        let mut es = [usize::MAX; 2];
        let mut n = 0;
        for &(_, e, _) in self.changes() {
            if !es[..n].contains(&e) {
                es[n] = e;
                n += 1;
            }
        }
        (es, n)
    }
}

/// Moves and added copies of a busiest-server expert are tried on this many target servers, the
/// best by a one-expert estimate (target utilisation after receiving the expert's share, plus the
/// change of dispatch time); swaps with the experts of this many least-loaded servers.
pub const TARGETS: usize = 6;
pub const COLD: usize = 4;

/// Local search state: routing shares plus cached objective parts. Moves are tried in place and
/// undone (no allocation per trial beyond the refilled experts' share lists).
struct Ls<'a> {
    p: &'a Prepared,
    l: usize,
    st: ShareState,
    /// Utilisation per activation of each server.
    k: Vec<f64>,
    comm_e: Vec<f64>,
    comm: f64,
    hold_cost: f64,
    copies: usize,
    used: Vec<usize>,
    /// Scratch: server loads before a trial.
    saved_acts: Vec<f64>,
}

/// What a trial must restore.
struct Undo {
    mv: Move,
    shares: [(usize, Vec<(usize, f64)>, f64); 2],
    n: usize,
    comm: f64,
}

impl<'a> Ls<'a> {
    fn new(p: &'a Prepared, l: usize, hold: Vec<Vec<bool>>) -> Self {
        let st = ShareState::new(p, l, hold);
        let ns = p.num_servers();
        let mut ls = Ls {
            p,
            l,
            k: (0..ns).map(|s| p.util_per_act(s)).collect(),
            comm_e: vec![0.0; p.experts],
            comm: 0.0,
            hold_cost: 0.0,
            copies: 0,
            used: st
                .hold
                .iter()
                .map(|h| h.iter().filter(|x| **x).count())
                .collect(),
            saved_acts: vec![0.0; ns],
            st,
        };
        for e in 0..p.experts {
            ls.comm_e[e] = ls.expert_comm(e);
        }
        ls.comm = ls.comm_e.iter().sum();
        ls.copies = ls.used.iter().sum();
        for s in 0..ns {
            for e in 0..p.experts {
                if ls.st.hold[s][e] {
                    ls.hold_cost += p.hold_cost(l, s, e);
                }
            }
        }
        ls
    }

    fn expert_comm(&self, e: usize) -> f64 {
        let p = self.p;
        let mut c = 0.0;
        for (h, &hs) in p.homes.iter().enumerate() {
            let d = p.home_demand[self.l][h][e];
            if d > 0.0 {
                for &(s, f) in &self.st.shares[e] {
                    c += d * f * p.comm[hs][s];
                }
            }
        }
        c
    }

    fn util(&self, s: usize) -> f64 {
        self.st.acts[s] * self.k[s]
    }

    /// (max utilisation, busiest server, sum of squared utilisations).
    fn max_util(&self) -> (f64, usize, f64) {
        let mut best = (f64::NEG_INFINITY, 0, 0.0);
        for s in 0..self.k.len() {
            let u = self.util(s);
            best.2 += u * u;
            if u > best.0 {
                best.0 = u;
                best.1 = s;
            }
        }
        best
    }

    /// (objective, sum of squared utilisations).
    fn score(&self) -> (f64, f64) {
        let (m, _, sq) = self.max_util();
        (
            self.p.comm_weight() * self.comm + self.p.load_weight() * m + self.hold_cost,
            sq,
        )
    }

    fn set(&mut self, s: usize, e: usize, v: bool) {
        if self.st.hold[s][e] != v {
            self.st.hold[s][e] = v;
            let c = self.p.hold_cost(self.l, s, e);
            if v {
                self.used[s] += 1;
                self.copies += 1;
                self.hold_cost += c;
            } else {
                self.used[s] -= 1;
                self.copies -= 1;
                self.hold_cost -= c;
            }
        }
    }

    /// Applies a move and refills the experts touched; returns what undoes it.
    fn apply(&mut self, mv: Move) -> Undo {
        self.saved_acts.copy_from_slice(&self.st.acts);
        let comm = self.comm;
        for &(s, e, v) in mv.changes() {
            self.set(s, e, v);
        }
        let (es, n) = mv.experts();
        let mut shares = [(0, vec![], 0.0), (0, vec![], 0.0)];
        for (i, &e) in es[..n].iter().enumerate() {
            let old = self.st.refill(self.p, e);
            let c = self.expert_comm(e);
            shares[i] = (e, old, self.comm_e[e]);
            self.comm += c - self.comm_e[e];
            self.comm_e[e] = c;
        }
        Undo {
            mv,
            shares,
            n,
            comm,
        }
    }

    fn revert(&mut self, u: Undo) {
        for &(s, e, v) in u.mv.changes() {
            self.set(s, e, !v);
        }
        for (e, sh, c) in u.shares.into_iter().take(u.n) {
            self.st.shares[e] = sh;
            self.comm_e[e] = c;
        }
        self.st.acts.copy_from_slice(&self.saved_acts);
        self.comm = u.comm;
    }

    fn better(a: (f64, f64), b: (f64, f64)) -> bool {
        let tol = 1e-12 * a.0.abs().max(b.0.abs()).max(1e-300);
        a.0 < b.0 - tol || (a.0 <= b.0 + tol && a.1 < b.1 * (1.0 - 1e-9))
    }

    /// Candidate moves around the busiest server `hot`: each of its experts moved to, or copied
    /// onto, the [`TARGETS`] most promising servers, dropped when it has another copy, or swapped
    /// with an expert of one of the [`COLD`] least-loaded servers.
    fn candidates(&self, hot: usize, out: &mut Vec<Move>) {
        out.clear();
        let p = self.p;
        let ns = p.num_servers();
        let cw = p.comm_weight();
        let lw = p.load_weight();
        let mut cold: Vec<usize> = (0..ns).filter(|&s| s != hot).collect();
        cold.sort_by(|&a, &b| self.util(a).total_cmp(&self.util(b)));
        cold.truncate(COLD);
        let mut est: Vec<(f64, usize)> = Vec::with_capacity(ns);
        for e in 0..p.experts {
            if !self.st.hold[hot][e] || self.st.demand[e] <= 0.0 {
                continue;
            }
            let f_hot = self.st.shares[e]
                .iter()
                .find(|x| x.0 == hot)
                .map_or(0.0, |x| x.1);
            let a = self.st.demand[e] * f_hot;
            est.clear();
            for t in 0..ns {
                if t == hot || self.st.hold[t][e] || self.used[t] >= p.servers[t].slots {
                    continue;
                }
                let mut dc = 0.0;
                if cw > 0.0 {
                    for (h, &hs) in p.homes.iter().enumerate() {
                        dc +=
                            p.home_demand[self.l][h][e] * f_hot * (p.comm[hs][t] - p.comm[hs][hot]);
                    }
                }
                est.push((lw * (self.util(t) + a * self.k[t]) + cw * dc, t));
            }
            if est.len() > TARGETS {
                est.select_nth_unstable_by(TARGETS - 1, |x, y| x.0.total_cmp(&y.0));
                est.truncate(TARGETS);
            }
            for &(_, t) in &est {
                out.push(Move::of(&[(hot, e, false), (t, e, true)]));
                if self.copies < p.max_replicas {
                    out.push(Move::of(&[(t, e, true)]));
                }
            }
            if (0..ns).any(|s| s != hot && self.st.hold[s][e]) {
                out.push(Move::of(&[(hot, e, false)]));
            }
            for &t in &cold {
                if self.st.hold[t][e] {
                    continue;
                }
                for f in 0..p.experts {
                    if self.st.hold[t][f] && !self.st.hold[hot][f] {
                        out.push(Move::of(&[
                            (hot, e, false),
                            (t, e, true),
                            (t, f, false),
                            (hot, f, true),
                        ]));
                    }
                }
            }
        }
    }

    /// Best-improvement descent; returns the number of accepted moves.
    fn descend(&mut self, max_iter: usize, deadline: Option<Instant>) -> usize {
        let mut moves = 0;
        let mut cur = self.score();
        let mut cands = vec![];
        for _ in 0..max_iter {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let mut best: Option<(Move, (f64, f64))> = None;
            let hot = self.max_util().1;
            self.candidates(hot, &mut cands);
            for &c in &cands {
                let u = self.apply(c);
                let sc = self.score();
                if Self::better(sc, best.as_ref().map_or(cur, |b| b.1)) {
                    best = Some((c, sc));
                }
                self.revert(u);
            }
            match best {
                Some((c, sc)) => {
                    self.apply(c);
                    cur = sc;
                    moves += 1;
                }
                None => break,
            }
        }
        moves
    }
}

/// Local search from `hold`; returns the plan and the number of accepted moves.
pub fn improve(
    p: &Prepared,
    l: usize,
    hold: Vec<Vec<bool>>,
    deadline: Option<Instant>,
) -> (LayerPlan, usize) {
    let mut ls = Ls::new(p, l, hold);
    let moves = ls.descend(4 * p.experts + 50, deadline);
    // re-route every expert from scratch on the new holdings, then a short second descent
    let mut ls2 = Ls::new(p, l, ls.st.hold.clone());
    let m2 = ls2.descend(p.experts + 10, deadline);
    let a = ls.st.plan(p);
    let b = ls2.st.plan(p);
    (pick(p, l, a, b), moves + m2)
}

/// Whether a layer plan satisfies every constraint.
pub fn layer_feasible(p: &Prepared, l: usize, plan: &LayerPlan) -> bool {
    let units = p.home_units(l, plan);
    let v = p.layer_value(l, &plan.hold, &units);
    p.layer_violations(l, &plan.hold, &units, &v).is_empty()
}

/// Picks the better plan (feasible first, then objective).
pub fn pick(p: &Prepared, l: usize, a: LayerPlan, b: LayerPlan) -> LayerPlan {
    let fa = layer_feasible(p, l, &a);
    let fb = layer_feasible(p, l, &b);
    if fa != fb {
        return if fa { a } else { b };
    }
    if p.plan_layer_value(l, &b).objective < p.plan_layer_value(l, &a).objective {
        b
    } else {
        a
    }
}

/// The routing LP on fixed holdings, when small enough; keeps the better plan.
pub fn polish(
    p: &Prepared,
    l: usize,
    plan: LayerPlan,
    deadline: Option<Instant>,
    stop: StopFlag,
) -> LayerPlan {
    if p.homes.len() * p.experts * p.num_servers() > POLISH_LIMIT {
        return plan;
    }
    let opts = SolveOptions::default();
    match model::solve_layer(p, l, Mode::Fixed(&plan.hold), &opts, deadline, stop, None) {
        Ok(r) if r.status == MilpStatus::Optimal => match r.plan {
            Some(q) => pick(p, l, plan, q),
            None => plan,
        },
        _ => plan,
    }
}

/// The greedy + local search layer plan, never worse than EPLB's for that layer.
pub fn layer_plan(
    p: &Prepared,
    l: usize,
    eplb: Option<&LayerPlan>,
    deadline: Option<Instant>,
    stop: StopFlag,
) -> (LayerPlan, usize) {
    let (mut best, mut moves) = improve(p, l, construct(p, l), deadline);
    if let Some(e) = eplb {
        // the second search from EPLB's holdings only where layers are small; EPLB's plan itself is
        // always a candidate, so the result is never worse than EPLB's
        if p.experts * p.num_servers() <= EPLB_SEARCH_LIMIT {
            let (from_e, m) = improve(p, l, e.hold.clone(), deadline);
            moves += m;
            best = pick(p, l, best, from_e);
        }
        best = pick(p, l, best, e.clone());
    }
    (polish(p, l, best, deadline, stop), moves)
}

/// Greedy plans for every layer (in parallel).
pub fn plans(p: &Prepared, deadline: Option<Instant>, stop: StopFlag) -> (Vec<LayerPlan>, usize) {
    let ep = eplb::eplb_plans(p);
    let res: Vec<(LayerPlan, usize)> = (0..p.layers)
        .into_par_iter()
        .map(|l| layer_plan(p, l, ep.as_ref().map(|v| &v[l]), deadline, stop.clone()))
        .collect();
    let moves = res.iter().map(|r| r.1).sum();
    (res.into_iter().map(|r| r.0).collect(), moves)
}

/// The deadline of a context.
pub fn deadline_of(ctx: &Context<'_>) -> Option<Instant> {
    ctx.remaining_s()
        .map(|r| Instant::now() + std::time::Duration::from_secs_f64(r))
}

/// Shared `supports` of the heuristics.
pub fn heuristic_supports(p: &Prepared) -> std::result::Result<(), String> {
    if p.fully_connected() {
        Ok(())
    } else {
        Err("the heuristics need a link from every home server to every server".into())
    }
}

/// The `greedy` solver.
pub struct Greedy;

impl Solver<MoePlacement> for Greedy {
    fn name(&self) -> &'static str {
        "greedy"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "replicate by marginal load, LPT onto heterogeneous servers, water-filling routing, move/swap local search; never worse than EPLB"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        heuristic_supports(p)
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        if !p.enough_slots() {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let (plans, moves) = plans(p, deadline_of(ctx), ctx.stop_flag());
        let mut o = finish(p, &plans, ctx.early_termination(), None);
        o.iterations = moves as u64;
        Ok(o)
    }
}
