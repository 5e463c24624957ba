//! `ils` (heuristic): per layer (in parallel), an iterated local search over the holdings that scores
//! every trial with the layer objective of `cost.rs` (dispatch + combine, step window × busiest
//! server, migration) under a home-aware routing, started from the `greedy` plan.
//!
//! Why `greedy` is far off on the latency objective (DeepSeek-V2-Lite, 16 heterogeneous servers):
//! its local search only moves the busiest server's experts and compares the exact maximum, so
//! where several servers share the maximum (water-filling equalises the holders of a replicated
//! expert) no single move lowers it, and a move that lowers the dispatch time by bringing an expert
//! nearer its homes is rejected when it raises a load anywhere near the maximum; its routing also
//! uses one share vector for every home. Layer 0: greedy 0.02759 (load term 0.01740, 32 % above
//! the balanced 0.01319, three L40S servers at half the load of the others), `ils` ≈ 0.0219 (load
//! term 0.0134).
//!
//! Routing during the search: an expert held once goes to its holder; a replicated expert's demand
//! is water-filled over its holders (lowest common utilisation given the other experts' loads), or,
//! in the exact descent, sent into the room below the busiest other server; the homes are assigned
//! to the resulting amounts by row regret (Vogel), so a home's own copy serves its own tokens
//! first. After every accepted move the replicated experts are re-routed. The final routing is the
//! routing LP on the final holdings where small enough (`greedy::polish`).
//!
//! Moves (all keep slots, coverage and the replication budget): relocate a copy to a server with a
//! free slot, swap two copies between servers, add a copy (budget left), drop an extra copy, and
//! re-replicate (drop an extra copy, add a copy of one of the [`HEAVY`] heaviest experts anywhere).
//! A descent scans the whole neighbourhood in random order and applies every improving trial
//! (first improvement; relocations and swaps of experts held once are scored without applying
//! them). The smooth descents score the objective with the busiest utilisation replaced by the
//! `2^q`-norm of the utilisations (`q` in [`Q`], coarse to sharp), which credits a lower load on
//! any server near the maximum and so walks plateaus of tied servers; the exact descent then takes
//! the moves that lower the objective itself (ties: the smooth score), e.g. dispatch savings that
//! do not raise the busiest server (a trial that adds or drops a copy re-routes every replicated
//! expert). Then [`ROUNDS`] kicks ([`KICK`] random relocations and swaps, then both descents),
//! restarting from the best holdings when a kick does not improve them. At most [`TRIALS`] trial
//! moves per layer; under a deadline each layer gets its fair share of the time left when it
//! starts.
//!
//! Per layer the better of this and the `greedy` plan is kept, so it is never worse than `greedy`
//! (hence never worse than EPLB) layer by layer. `lp-round` runs the same search from its rounded
//! LP holdings.

use super::cost::{LayerPlan, Prepared, Route};
use super::greedy::{self, Move};
use super::{eplb, finish, MoePlacement};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, StopFlag, Termination};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::time::Instant;

/// Norms `2^q` of the smooth maximum in the first descents (coarse to sharp); the kicks use the
/// last.
pub const Q: &[u32] = &[4, 5, 6];

/// Kicks (perturbation + descents) per layer (`--iterations` overrides).
pub const ROUNDS: usize = 3;

/// Relocations and swaps per kick.
pub const KICK: usize = 3;

/// Most trial moves per layer.
pub const TRIALS: usize = 400_000;

/// Re-replication moves add a copy of one of this many heaviest experts.
pub const HEAVY: usize = 8;

/// Strictly lower, beyond rounding.
fn lower(a: f64, b: f64) -> bool {
    a < b - 1e-12 * a.abs().max(b.abs())
}

fn key_lower(a: (f64, f64), b: (f64, f64)) -> bool {
    lower(a.0, b.0) || (!lower(b.0, a.0) && lower(a.1, b.1))
}

/// The best holdings seen (true objective).
struct Best {
    obj: f64,
    hold: Vec<Vec<bool>>,
}

impl Best {
    fn offer(&mut self, st: &State<'_>) {
        let o = st.objective();
        if lower(o, self.obj) {
            self.obj = o;
            self.hold.clone_from(&st.hold);
        }
    }
}

/// Search state of one layer.
struct State<'a> {
    p: &'a Prepared,
    l: usize,
    /// Utilisation per activation of each server.
    k: Vec<f64>,
    /// `[h][s]` dispatch + combine time from home index `h`.
    c: Vec<Vec<f64>>,
    /// `[e][h]` activations/s of `e` from home `h`.
    dem: Vec<Vec<f64>>,
    w: Vec<f64>,
    hold: Vec<Vec<bool>>,
    holders: Vec<Vec<usize>>,
    used: Vec<usize>,
    copies: usize,
    /// Activations/s routed to each server.
    acts: Vec<f64>,
    /// Per expert: `(server, activations/s)`.
    amt: Vec<Vec<(usize, f64)>>,
    /// Per expert: Σ activations × dispatch time.
    comm_e: Vec<f64>,
    comm: f64,
    hold_cost: f64,
    /// Scratch for trials.
    saved_acts: Vec<f64>,
    /// The smooth maximum is the `2^q`-norm.
    q: u32,
    /// Descend on the objective (ties: smooth score) instead of the smooth score.
    exact: bool,
    /// Buffers of `route` (capacities, fill levels, home remainders, holder amounts).
    scratch: std::cell::RefCell<(Vec<f64>, Vec<(f64, usize)>, Vec<f64>, Vec<f64>)>,
    /// Spare amount lists (no allocation per trial).
    pool: Vec<Vec<(usize, f64)>>,
}

/// What a trial must restore.
struct Undo {
    mv: Move,
    /// `(expert, previous amounts, previous dispatch sum)` of every re-routed expert.
    old: Vec<(usize, Vec<(usize, f64)>, f64)>,
    comm: f64,
}

impl<'a> State<'a> {
    fn new(p: &'a Prepared, l: usize, hold: Vec<Vec<bool>>) -> Self {
        let ns = p.num_servers();
        let ne = p.experts;
        let nh = p.homes.len();
        let holders: Vec<Vec<usize>> = (0..ne)
            .map(|e| (0..ns).filter(|&s| hold[s][e]).collect())
            .collect();
        let used: Vec<usize> = hold
            .iter()
            .map(|h| h.iter().filter(|x| **x).count())
            .collect();
        let mut hold_cost = 0.0;
        for s in 0..ns {
            for e in 0..ne {
                if hold[s][e] {
                    hold_cost += p.hold_cost(l, s, e);
                }
            }
        }
        let mut st = State {
            p,
            l,
            k: (0..ns).map(|s| p.util_per_act(s)).collect(),
            c: p.homes.iter().map(|&h| p.comm[h].clone()).collect(),
            dem: (0..ne)
                .map(|e| (0..nh).map(|h| p.home_demand[l][h][e]).collect())
                .collect(),
            w: p.expert_demand[l].clone(),
            copies: used.iter().sum(),
            hold,
            holders,
            used,
            acts: vec![0.0; ns],
            amt: vec![vec![]; ne],
            comm_e: vec![0.0; ne],
            comm: 0.0,
            hold_cost,
            saved_acts: vec![0.0; ns],
            q: 6,
            exact: false,
            scratch: Default::default(),
            pool: vec![],
        };
        let mut order: Vec<usize> = (0..ne).collect();
        order.sort_by(|&a, &b| st.w[b].total_cmp(&st.w[a]));
        for &e in &order {
            st.refill(e);
        }
        st.reroute();
        st
    }

    /// The layer objective under the search's routing (a capacity excess is penalised).
    fn objective(&self) -> f64 {
        self.key_with(&[], self.comm, self.hold_cost, true).0
    }

    /// The descent's key: the smooth score, or with `exact` the objective first and the smooth
    /// score on ties.
    fn key(&self) -> (f64, f64) {
        self.key_with(&[], self.comm, self.hold_cost, self.exact)
    }

    /// The key with the loads of some servers replaced (`(server, activations/s)`) and the given
    /// dispatch sum and holding cost. The smooth score is the objective with the busiest
    /// utilisation `m` replaced by the smooth maximum `‖u‖_P = m (Σ_s (u_s/m)^P)^{1/P}`, `P = 2^q`
    /// (at most `S^{1/P}` times `m`), which credits a lower load on any server near the maximum and
    /// so walks plateaus of tied servers.
    fn key_with(
        &self,
        over: &[(usize, f64)],
        comm: f64,
        hold_cost: f64,
        exact: bool,
    ) -> (f64, f64) {
        let p = self.p;
        let u = |s: usize| over.iter().find(|o| o.0 == s).map_or(self.acts[s], |o| o.1) * self.k[s];
        let m = (0..self.k.len()).map(u).fold(0.0f64, f64::max);
        let base = p.comm_weight() * comm + hold_cost + 1e6 * (m - p.layer_cap).max(0.0);
        let mut z = 0.0;
        if m > 0.0 {
            let inv = 1.0 / m;
            for s in 0..self.k.len() {
                let mut r = u(s) * inv;
                for _ in 0..self.q {
                    r *= r;
                }
                z += r;
            }
        }
        let smooth = if m > 0.0 {
            m * z.powf(1.0 / (1u64 << self.q) as f64)
        } else {
            0.0
        };
        let soft = base + p.load_weight() * smooth;
        if exact {
            (base + p.load_weight() * m, soft)
        } else {
            (soft, 0.0)
        }
    }

    /// The key after a relocation or swap of experts held once, without applying it (their
    /// routing is their one holder); `None` for other moves.
    fn quick_key(&self, mv: &Move) -> Option<(f64, f64)> {
        let ch = mv.changes();
        let single = |e: usize| self.holders[e].len() == 1;
        let (s, e, t) = match ch.len() {
            2 if ch[0].1 == ch[1].1 && !ch[0].2 && ch[1].2 => (ch[0].0, ch[0].1, ch[1].0),
            4 if !ch[0].2 && ch[1].2 && !ch[2].2 && ch[3].2 => (ch[0].0, ch[0].1, ch[1].0),
            _ => return None,
        };
        if !single(e) {
            return None;
        }
        let l = self.l;
        let p = self.p;
        let mut ds = -self.w[e];
        let mut comm = self.comm;
        let mut hc = self.hold_cost - p.hold_cost(l, s, e) + p.hold_cost(l, t, e);
        for (h, &d) in self.dem[e].iter().enumerate() {
            comm += d * (self.c[h][t] - self.c[h][s]);
        }
        if ch.len() == 4 {
            let f = ch[2].1;
            if !single(f) || ch[2].0 != t || ch[3].0 != s || ch[3].1 != f {
                return None;
            }
            ds += self.w[f];
            hc += p.hold_cost(l, s, f) - p.hold_cost(l, t, f);
            for (h, &d) in self.dem[f].iter().enumerate() {
                comm += d * (self.c[h][s] - self.c[h][t]);
            }
        }
        let over = [(s, self.acts[s] + ds), (t, self.acts[t] - ds)];
        Some(self.key_with(&over, comm, hc, self.exact))
    }

    /// Routes expert `e` given the other experts' loads `acts` (without `e`): per-server amounts
    /// and, when `per_home` is given, the `(home, server, activations)` assignment. Returns
    /// Σ activations × dispatch time.
    fn route(
        &self,
        e: usize,
        acts: &[f64],
        amounts: &mut Vec<(usize, f64)>,
        mut per_home: Option<&mut Vec<(usize, usize, f64)>>,
    ) -> f64 {
        amounts.clear();
        let hs = &self.holders[e];
        let w = self.w[e];
        if hs.is_empty() {
            return 0.0;
        }
        if hs.len() == 1 || w <= 0.0 {
            let s = hs[0];
            amounts.push((s, w));
            let mut c = 0.0;
            for (h, &d) in self.dem[e].iter().enumerate() {
                if d > 0.0 {
                    c += d * self.c[h][s];
                    if let Some(ph) = per_home.as_deref_mut() {
                        ph.push((h, s, d));
                    }
                }
            }
            return c;
        }
        let util = |s: usize| acts[s] * self.k[s];
        let mut guard = self.scratch.borrow_mut();
        let (cap, lv, rem, got) = &mut *guard;
        cap.clear();
        if self.exact {
            // the room below the busiest other server (the objective sees only the maximum)
            let top = (0..self.k.len()).map(util).fold(0.0f64, f64::max);
            cap.extend(hs.iter().map(|&s| (top / self.k[s] - acts[s]).max(0.0)));
        } else {
            cap.resize(hs.len(), 0.0);
        }
        if cap.iter().sum::<f64>() < w {
            // water-fill to the level lambda: Σ max(0, lambda/k_s − acts_s) = w
            lv.clear();
            lv.extend(hs.iter().map(|&s| (util(s), s)));
            lv.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (mut inv_k, mut base, mut lambda) = (0.0, 0.0, 0.0);
            for j in 0..lv.len() {
                let s = lv[j].1;
                inv_k += 1.0 / self.k[s];
                base += acts[s];
                lambda = (w + base) / inv_k;
                if lv.get(j + 1).is_none_or(|n| lambda <= n.0) {
                    break;
                }
            }
            for (i, &s) in hs.iter().enumerate() {
                cap[i] = (lambda / self.k[s] - acts[s]).max(0.0);
            }
            let tot: f64 = cap.iter().sum();
            if tot > 0.0 {
                cap.iter_mut().for_each(|c| *c *= w / tot);
            } else {
                cap[0] = w;
            }
        }
        // homes to holders within the capacities, largest regret first (Vogel)
        let nh = self.dem[e].len();
        rem.clear();
        rem.extend_from_slice(&self.dem[e]);
        got.clear();
        got.resize(hs.len(), 0.0);
        let eps = 1e-12 * w;
        let mut comm = 0.0;
        loop {
            // (regret, home, best holder index)
            let mut pick: Option<(f64, usize, usize)> = None;
            let mut any = false;
            for h in 0..nh {
                if rem[h] <= eps {
                    continue;
                }
                any = true;
                let (mut b1, mut b2, mut bi) = (f64::INFINITY, f64::INFINITY, usize::MAX);
                for (i, &s) in hs.iter().enumerate() {
                    if cap[i] - got[i] <= eps {
                        continue;
                    }
                    let c = self.c[h][s];
                    if c < b1 {
                        b2 = b1;
                        b1 = c;
                        bi = i;
                    } else if c < b2 {
                        b2 = c;
                    }
                }
                if bi != usize::MAX && pick.is_none_or(|p| b2 - b1 > p.0) {
                    pick = Some((b2 - b1, h, bi));
                }
            }
            if !any {
                break;
            }
            let Some((_, h, i)) = pick else {
                // capacities used up by rounding: the rest to each home's cheapest holder
                for h in 0..nh {
                    if rem[h] > eps {
                        let i = (0..hs.len())
                            .min_by(|&a, &b| self.c[h][hs[a]].total_cmp(&self.c[h][hs[b]]))
                            .unwrap_or(0);
                        got[i] += rem[h];
                        comm += rem[h] * self.c[h][hs[i]];
                        if let Some(ph) = per_home.as_deref_mut() {
                            ph.push((h, hs[i], rem[h]));
                        }
                        rem[h] = 0.0;
                    }
                }
                break;
            };
            let x = rem[h].min(cap[i] - got[i]);
            got[i] += x;
            rem[h] -= x;
            comm += x * self.c[h][hs[i]];
            if let Some(ph) = per_home.as_deref_mut() {
                ph.push((h, hs[i], x));
            }
        }
        for (i, &s) in hs.iter().enumerate() {
            if got[i] > 0.0 {
                amounts.push((s, got[i]));
            }
        }
        if amounts.is_empty() {
            amounts.push((hs[0], w));
        }
        comm
    }

    fn take_out(&mut self, e: usize) {
        for &(s, a) in &self.amt[e] {
            self.acts[s] -= a;
        }
    }

    /// Re-routes `e`; returns its previous amounts.
    fn refill(&mut self, e: usize) -> Vec<(usize, f64)> {
        self.take_out(e);
        let mut a = Vec::with_capacity(self.holders[e].len());
        let c = self.route(e, &self.acts, &mut a, None);
        self.put_in(e, a, c)
    }

    fn put_in(&mut self, e: usize, a: Vec<(usize, f64)>, c: f64) -> Vec<(usize, f64)> {
        for &(s, x) in &a {
            self.acts[s] += x;
        }
        self.comm += c - self.comm_e[e];
        self.comm_e[e] = c;
        std::mem::replace(&mut self.amt[e], a)
    }

    /// Re-routes the replicated experts (twice) when that does not worsen the score.
    fn reroute(&mut self) {
        let multi: Vec<usize> = (0..self.w.len())
            .filter(|&e| self.holders[e].len() > 1)
            .collect();
        if multi.is_empty() {
            return;
        }
        let before = self.key();
        let acts = self.acts.clone();
        let comm = self.comm;
        let saved: Vec<(Vec<(usize, f64)>, f64)> = multi
            .iter()
            .map(|&e| (self.amt[e].clone(), self.comm_e[e]))
            .collect();
        for _ in 0..2 {
            for &e in &multi {
                self.refill(e);
            }
        }
        if key_lower(before, self.key()) {
            self.acts = acts;
            self.comm = comm;
            for (&e, (a, c)) in multi.iter().zip(saved) {
                self.amt[e] = a;
                self.comm_e[e] = c;
            }
        }
    }

    fn set(&mut self, s: usize, e: usize, v: bool) {
        if self.hold[s][e] == v {
            return;
        }
        self.hold[s][e] = v;
        let c = self.p.hold_cost(self.l, s, e);
        if v {
            self.used[s] += 1;
            self.copies += 1;
            self.hold_cost += c;
            self.holders[e].push(s);
        } else {
            self.used[s] -= 1;
            self.copies -= 1;
            self.hold_cost -= c;
            self.holders[e].retain(|&x| x != s);
        }
    }

    /// Whether a move is valid in the current state.
    fn valid(&self, mv: &Move) -> bool {
        let p = self.p;
        let ch = mv.changes();
        let mut d_copies = 0i64;
        for (i, &(s, e, v)) in ch.iter().enumerate() {
            if self.hold[s][e] == v {
                return false;
            }
            d_copies += if v { 1 } else { -1 };
            // slots: net change on this server (counted once, at its first change)
            if ch[..i].iter().all(|c| c.0 != s) {
                let net: i64 = ch
                    .iter()
                    .filter(|c| c.0 == s)
                    .map(|c| if c.2 { 1 } else { -1 })
                    .sum();
                if self.used[s] as i64 + net > p.servers[s].slots as i64 {
                    return false;
                }
            }
            // coverage: an expert dropped keeps a holder
            if !v
                && !ch.iter().any(|c| c.1 == e && c.2)
                && self.holders[e]
                    .iter()
                    .all(|&t| ch.iter().any(|c| c.0 == t && c.1 == e))
            {
                return false;
            }
        }
        self.copies as i64 + d_copies <= p.max_replicas as i64
    }

    fn apply(&mut self, mv: Move) -> Undo {
        self.saved_acts.copy_from_slice(&self.acts);
        let comm = self.comm;
        for &(s, e, v) in mv.changes() {
            self.set(s, e, v);
        }
        let (es, n) = mv.experts();
        for &e in &es[..n] {
            self.take_out(e);
        }
        let mut old = Vec::with_capacity(n);
        for &e in &es[..n] {
            let o = self.reroute_out(e);
            old.push(o);
        }
        let ch = mv.changes();
        let recount = ch.len() % 2 == 1 || (ch.len() == 2 && ch[0].1 != ch[1].1);
        if self.exact && recount {
            // a copy added or dropped: the objective sees the joint routing, so the other
            // replicated experts are re-routed too
            for e in 0..self.w.len() {
                if self.holders[e].len() > 1 && !es[..n].contains(&e) {
                    self.take_out(e);
                    let o = self.reroute_out(e);
                    old.push(o);
                }
            }
        }
        Undo { mv, old, comm }
    }

    /// Routes `e` (already out of `acts`) and puts it back; returns its previous state.
    fn reroute_out(&mut self, e: usize) -> (usize, Vec<(usize, f64)>, f64) {
        let mut a = self.pool.pop().unwrap_or_default();
        let c = self.route(e, &self.acts, &mut a, None);
        let prev_c = self.comm_e[e];
        for &(s, x) in &a {
            self.acts[s] += x;
        }
        self.comm += c - prev_c;
        self.comm_e[e] = c;
        (e, std::mem::replace(&mut self.amt[e], a), prev_c)
    }

    /// Keeps a trial (its previous amount lists go back to the pool).
    fn commit(&mut self, u: Undo) {
        for (_, a, _) in u.old {
            self.pool.push(a);
        }
    }

    fn revert(&mut self, u: Undo) {
        for &(s, e, v) in u.mv.changes().iter().rev() {
            self.set(s, e, !v);
        }
        for (e, a, c) in u.old.into_iter().rev() {
            let new = std::mem::replace(&mut self.amt[e], a);
            self.pool.push(new);
            self.comm_e[e] = c;
        }
        self.acts.copy_from_slice(&self.saved_acts);
        self.comm = u.comm;
    }

    /// The whole neighbourhood of the current state.
    fn neighbourhood(&self, heavy: &[usize], out: &mut Vec<Move>) {
        out.clear();
        let p = self.p;
        let ns = self.k.len();
        let ne = self.w.len();
        let copies: Vec<(usize, usize)> = (0..ns)
            .flat_map(|s| {
                (0..ne)
                    .filter(move |&e| self.hold[s][e])
                    .map(move |e| (s, e))
            })
            .collect();
        let free: Vec<usize> = (0..ns)
            .filter(|&s| self.used[s] < p.servers[s].slots)
            .collect();
        for &(s, e) in &copies {
            for &t in &free {
                if t != s && !self.hold[t][e] {
                    out.push(Move::of(&[(s, e, false), (t, e, true)]));
                }
            }
            if self.holders[e].len() > 1 {
                out.push(Move::of(&[(s, e, false)]));
                for &f in heavy {
                    for t in 0..ns {
                        if !self.hold[t][f] && (t == s || self.used[t] < p.servers[t].slots) {
                            out.push(Move::of(&[(s, e, false), (t, f, true)]));
                        }
                    }
                }
            }
        }
        for (i, &(s, e)) in copies.iter().enumerate() {
            for &(t, f) in &copies[i + 1..] {
                if s != t && e != f && !self.hold[s][f] && !self.hold[t][e] {
                    out.push(Move::of(&[
                        (s, e, false),
                        (t, e, true),
                        (t, f, false),
                        (s, f, true),
                    ]));
                }
            }
        }
        if self.copies < p.max_replicas {
            for &t in &free {
                for e in 0..ne {
                    if !self.hold[t][e] {
                        out.push(Move::of(&[(t, e, true)]));
                    }
                }
            }
        }
    }

    /// First-improvement descent (smooth score) over the whole neighbourhood until a pass finds
    /// nothing; every accepted state is offered to `best`.
    fn descend(&mut self, w: &mut Walk<'_>) -> usize {
        let mut cur = self.key();
        let mut moves = 0;
        let mut cands = vec![];
        loop {
            if w.stop.now() || w.trials >= w.budget {
                break;
            }
            self.neighbourhood(w.heavy, &mut cands);
            cands.shuffle(&mut w.rng);
            let mut improved = false;
            for &mv in &cands {
                if !self.valid(&mv) {
                    continue;
                }
                w.trials += 1;
                if w.trials > w.budget {
                    break;
                }
                if let Some(k) = self.quick_key(&mv) {
                    if !key_lower(k, cur) {
                        continue;
                    }
                }
                let u = self.apply(mv);
                let sc = self.key();
                if key_lower(sc, cur) {
                    self.commit(u);
                    self.reroute();
                    cur = self.key();
                    w.best.offer(self);
                    moves += 1;
                    improved = true;
                } else {
                    self.revert(u);
                }
            }
            if !improved {
                break;
            }
        }
        moves
    }

    /// A descent on the objective (ties: smooth score) with the room routing: takes the moves
    /// that lower the dispatch time without raising the busiest server.
    fn exact_descent(&mut self, w: &mut Walk<'_>) -> usize {
        self.exact = true;
        self.reroute();
        w.best.offer(self);
        let m = self.descend(w);
        self.exact = false;
        self.reroute();
        m
    }

    /// A few random valid relocations and swaps, applied whatever their effect.
    fn kick(&mut self, rng: &mut ChaCha8Rng, n: usize) {
        let ns = self.k.len();
        let ne = self.w.len();
        let mut done = 0;
        for _ in 0..50 * n {
            if done >= n {
                break;
            }
            let s = rng.random_range(0..ns);
            let t = rng.random_range(0..ns);
            let e = rng.random_range(0..ne);
            if s == t || !self.hold[s][e] || self.hold[t][e] {
                continue;
            }
            let mv = if rng.random_bool(0.5) {
                Move::of(&[(s, e, false), (t, e, true)])
            } else {
                let fs: Vec<usize> = (0..ne)
                    .filter(|&f| self.hold[t][f] && !self.hold[s][f])
                    .collect();
                let Some(&f) = fs.get(rng.random_range(0..fs.len().max(1))) else {
                    continue;
                };
                Move::of(&[(s, e, false), (t, e, true), (t, f, false), (s, f, true)])
            };
            if self.valid(&mv) {
                self.apply(mv);
                done += 1;
            }
        }
        self.reroute();
    }

    /// The layer plan (per-home routing from the search's assignment).
    fn plan(&self) -> LayerPlan {
        let ne = self.w.len();
        let nh = self.c.len();
        let mut route: Vec<Route> = vec![vec![vec![]; ne]; nh];
        let mut scratch = self.acts.clone();
        let mut amounts = vec![];
        let mut ph = vec![];
        for e in 0..ne {
            for &(s, a) in &self.amt[e] {
                scratch[s] -= a;
            }
            ph.clear();
            self.route(e, &scratch, &mut amounts, Some(&mut ph));
            for &(s, a) in &amounts {
                scratch[s] += a;
            }
            for h in 0..nh {
                let d = self.dem[e][h];
                let mut v: Vec<(usize, f64)> = vec![];
                if d > 0.0 {
                    for &(hh, s, x) in &ph {
                        if hh == h && x > 0.0 {
                            match v.iter_mut().find(|y| y.0 == s) {
                                Some(y) => y.1 += x / d,
                                None => v.push((s, x / d)),
                            }
                        }
                    }
                    let tot: f64 = v.iter().map(|y| y.1).sum();
                    if tot > 0.0 {
                        v.iter_mut().for_each(|y| y.1 /= tot);
                    }
                }
                if v.is_empty() {
                    v.push((self.holders[e][0], 1.0));
                }
                route[h][e] = v;
            }
        }
        LayerPlan {
            hold: self.hold.clone(),
            route,
        }
    }
}

/// What the descents share: the random stream, the heavy experts, the stop, the best holdings.
struct Walk<'h> {
    rng: ChaCha8Rng,
    /// Trials evaluated so far, and the most allowed.
    trials: usize,
    budget: usize,
    heavy: &'h [usize],
    stop: Stop,
    best: Best,
}

/// Deadline and stop flag.
struct Stop {
    deadline: Option<Instant>,
    flag: StopFlag,
}

impl Stop {
    fn now(&self) -> bool {
        self.flag.is_stopped() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Search parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// Kicks (perturbation + descents) per layer.
    pub rounds: usize,
    /// Random relocations and swaps per kick.
    pub kick: usize,
    /// Re-replication adds a copy of one of this many heaviest experts.
    pub heavy: usize,
    /// Norm exponents `q` (`P = 2^q`) of the first smooth descents, coarse to sharp; the kicks use
    /// the last.
    pub q: Vec<u32>,
    pub seed: u64,
    /// Most trial moves evaluated per layer (bounds the time on large layers).
    pub trials: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            rounds: ROUNDS,
            kick: KICK,
            heavy: HEAVY,
            q: Q.to_vec(),
            seed: 0,
            trials: TRIALS,
        }
    }
}

/// Smooth descents, an exact descent, then `rounds` kicks: the best holdings found.
fn search_hold(
    p: &Prepared,
    l: usize,
    start: &[Vec<bool>],
    prm: &Params,
    stop: Stop,
) -> (Vec<Vec<bool>>, usize) {
    let mut heavy: Vec<usize> = (0..p.experts).collect();
    heavy.sort_by(|&a, &b| p.expert_demand[l][b].total_cmp(&p.expert_demand[l][a]));
    heavy.truncate(prm.heavy);
    let qs: &[u32] = if prm.q.is_empty() { Q } else { &prm.q };
    let q_last = qs[qs.len() - 1];
    let mut st = State::new(p, l, start.to_vec());
    let mut w = Walk {
        rng: ChaCha8Rng::seed_from_u64(prm.seed ^ (l as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        heavy: &heavy,
        trials: 0,
        budget: prm.trials,
        stop,
        best: Best {
            obj: st.objective(),
            hold: st.hold.clone(),
        },
    };
    let mut moves = 0;
    for &q in qs {
        st.q = q;
        moves += st.descend(&mut w);
    }
    moves += st.exact_descent(&mut w);
    for _ in 0..prm.rounds {
        if w.stop.now() || w.trials >= w.budget {
            break;
        }
        let before = w.best.obj;
        st.kick(&mut w.rng, prm.kick);
        moves += st.descend(&mut w);
        moves += st.exact_descent(&mut w);
        if !lower(w.best.obj, before) {
            // restart from the best holdings
            st = State::new(p, l, w.best.hold.clone());
            st.q = q_last;
        }
    }
    (w.best.hold, moves)
}

/// Iterated local search on layer `l` from the holdings of `start`; returns the plan (the search's
/// routing, not polished) and the accepted moves.
pub fn search(
    p: &Prepared,
    l: usize,
    start: &LayerPlan,
    prm: &Params,
    deadline: Option<Instant>,
    stop: StopFlag,
) -> (LayerPlan, usize) {
    let stop = Stop {
        deadline,
        flag: stop,
    };
    let (hold, moves) = search_hold(p, l, &start.hold, prm, stop);
    (State::new(p, l, hold).plan(), moves)
}

/// The `ils` layer plan: search from `greedy`'s plan (the search until `search_deadline`, the rest
/// until `deadline`), routing LP polish, never worse than `greedy`.
pub fn layer_plan(
    p: &Prepared,
    l: usize,
    eplb: Option<&LayerPlan>,
    prm: &Params,
    search_deadline: Option<Instant>,
    deadline: Option<Instant>,
    stop: StopFlag,
) -> (LayerPlan, usize) {
    let (g, gm) = greedy::layer_plan(p, l, eplb, deadline, stop.clone());
    let (s, m) = search(p, l, &g, prm, search_deadline, stop.clone());
    let s = greedy::polish(p, l, s, deadline, stop);
    (greedy::pick(p, l, g, s), gm + m)
}

/// `ils` plans for every layer (in parallel); also the accepted moves.
pub fn plans_with(
    p: &Prepared,
    prm: &Params,
    deadline: Option<Instant>,
    stop: StopFlag,
) -> (Vec<LayerPlan>, usize) {
    let ep = eplb::eplb_plans(p);
    // under a deadline each layer's search gets its fair share of the time left when it starts
    // (threads / layers not started yet), so late layers are searched too
    let threads = rayon::current_num_threads().max(1) as f64;
    let started = std::sync::atomic::AtomicUsize::new(0);
    let res: Vec<(LayerPlan, usize)> = (0..p.layers)
        .into_par_iter()
        .map(|l| {
            let k = started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let share = deadline.map(|d| {
                let now = Instant::now();
                let left = d.saturating_duration_since(now);
                d.min(now + left.mul_f64((threads / (p.layers - k) as f64).min(1.0)))
            });
            layer_plan(
                p,
                l,
                ep.as_ref().map(|v| &v[l]),
                prm,
                share,
                deadline,
                stop.clone(),
            )
        })
        .collect();
    let moves = res.iter().map(|r| r.1).sum();
    (res.into_iter().map(|r| r.0).collect(), moves)
}

/// `ils` plans for every layer with the default parameters, e.g. as a MILP warm start (each layer
/// never worse than `greedy`'s).
pub fn plans(p: &Prepared, deadline: Option<Instant>, stop: StopFlag) -> Vec<LayerPlan> {
    plans_with(p, &Params::default(), deadline, stop).0
}

/// The `ils` solver.
pub struct Ils;

impl Solver<MoePlacement> for Ils {
    fn name(&self) -> &'static str {
        "ils"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "greedy start, per-layer iterated local search (relocate, swap, add/drop/re-replicate copies) scored with the layer objective under load-first home-aware routing, routing LP polish; never worse than greedy"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        greedy::heuristic_supports(p)
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        if !p.enough_slots() {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let prm = Params {
            seed: ctx.options.seed,
            rounds: ctx
                .options
                .iteration_limit
                .map_or(ROUNDS, |n| n.min(usize::MAX as u64) as usize),
            ..Default::default()
        };
        let (plans, moves) = plans_with(p, &prm, greedy::deadline_of(ctx), ctx.stop_flag());
        let mut o = finish(p, &plans, ctx.early_termination(), None);
        o.iterations = moves as u64;
        Ok(o)
    }
}
