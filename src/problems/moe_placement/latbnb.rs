//! `lagrangian-bnb` (exact, built for `latency`; valid for `max_load` too): a branch and bound per
//! layer (layers in parallel) over expert holder sets, bounded by a Lagrangian relaxation that
//! prices the load rows of the routing LP and the free slots; an LP only at the leaves that the
//! bound does not prune.
//!
//! **The value of fixed holdings** `x` (holder sets `T_e`) is the routing LP
//! `V(x) = min Σ_{h,e,s} D_{h,e} r_{h,e,s} c_{hs}/Λ + w U + Σ hold costs`, `Σ_s r = 1`, `r ≤ x`,
//! `u_s = Σ_{h,e} D_{h,e} r_{h,e,s} f/F_s ≤ U ≤ cap` (`w` = τ under `latency`; under `max_load`
//! `w` = 1 and the dispatch weight `1/Λ` is 0). Dualising `u_s ≤ U` with prices `μ_s ≥ 0`,
//! `Σ_s μ_s = w` (the simplex: `U` drops out), every activation of `(h, e)` goes to its cheapest
//! holder at the price `a_{h,s}(μ) = c_{hs}/Λ + μ_s f/F_s`, so for any such `μ`
//! `L(μ, x) = Σ_{h,e} D_{h,e} min_{s ∈ T_e} a_{h,s}(μ) + Σ hold costs ≤ V(x)` (weak duality), with
//! equality at the best `μ` (LP duality). The utilisation cap is not dualised: where it binds the
//! bound is weaker, never wrong (the leaf LP keeps it).
//!
//! **Search.** Experts are branched on one at a time, heaviest first; a branch gives the next
//! expert its whole holder set (as in [`super::bnb`]: any set of servers with a free slot, as large
//! as the replication budget and the free slots allow once every later expert has one copy; an
//! expert without demand gets one holder).
//!
//! **Bound** of a node with the experts `F` placed and `R` free: the placed experts at their exact
//! price `Σ_{e∈F} Σ_h D_{h,e} min_{s∈T_e} a_{h,s}(μ)`; each free expert takes a holder set
//! `T ⊆ Φ` (servers with a free slot, `q_s` free slots each) at the cost
//! `Σ_h D_{h,e} min_{s∈T} a_{h,s}(μ) + Σ_{s∈T} (π_s + hold cost)`, where the slot rows
//! `#{e ∈ R: s ∈ T_e} ≤ q_s` are priced by `π_s ≥ 0` (constant `−Σ_s π_s q_s`), and the copy
//! budget `Σ_{e∈R} |T_e| ≤ B_left` is kept exactly: for every free expert and size `c` its cheapest
//! set of `c` servers (all subsets of `Φ` enumerated, `|Φ| ≤` [`Params::max_phi`]), then a suffix
//! dynamic programme over the experts and the copies left. A child that gives the first free expert
//! the set `T` is bounded from its parent's tables in `O(H·|T|)` (its exact cost on `T`, `T`'s
//! slot prices, and the programme of the later experts with `B_left − |T|` copies: their sets may
//! only shrink, so the parent's terms stay lower bounds). With more than `max_phi` free servers the
//! free experts get the per-home slot bound instead (each home's heaviest free experts on its
//! cheapest free slots). The multipliers `(μ, π)` are improved by a projected subgradient ascent
//! (Polyak steps towards the incumbent with factor [`Params::theta`], directions deflected by the
//! previous one, `π` scaled by [`Params::sigma`]), from the balanced prices at the root and from the
//! parent's multipliers at every visited child; any multipliers give a valid bound, so an inexact
//! ascent costs nodes, never correctness. Children are visited in increasing bound order. At a
//! leaf not pruned, the routing LP of [`super::model`] gives `V(x)` and the routing.
//!
//! **Symmetry.** Servers with the same compute, slots, holding costs and dispatch cost from every
//! home that have received the same experts so far are interchangeable (the rule of `bnb`).
//!
//! The incumbent starts from `ils` with [`START_ROUNDS`] kicks (at most a quarter of the time
//! limit). Under a time or node
//! limit the bound of a layer is the smallest bound of the subtrees left open (never below the root
//! bound), capped by the incumbent; layers not finished in their fair share of the time get a
//! second pass with the time left.

use super::bnb::{canonical, hold_matrix, solve_layers, toggle_set, twins, LayerRun};
use super::cost::{LayerPlan, Prepared};
use super::greedy;
use super::model::{self, Mode};
use super::{ils, MoePlacement};
use crate::error::Result;
use crate::solve::milp::MilpStatus;
use crate::solve::{Context, Outcome, SolveOptions, Solver, SolverKind, StopFlag, Termination};
use std::time::Instant;

/// Most servers with expert slots (holder sets are 32-bit masks).
pub const MAX_SERVERS: usize = 16;
/// Most experts per layer (server histories are 64-bit masks).
pub const MAX_EXPERTS: usize = 64;
/// Most experts per layer for which `auto` picks this solver under `latency` (measured: Mixtral's 8).
pub const AUTO_MAX_EXPERTS: usize = 8;
/// Kicks of the `ils` search that gives the incumbent (its default is 3): a start nearer the optimum
/// prunes more. Mixtral 8x7B on 8 servers, all 32 layers, one thread: 3 kicks 10.7 M bound
/// evaluations, search + start 11.4 s; 15: 9.2 M, 8.7 s; 30: 8.3 M, 8.4 s; 50: 8.0 M, 8.8 s; 100: 7.9 M,
/// 10.3 s (`MOE_ILS_ROUNDS=k MOE_DEPTH=1 cargo run --release --example moe_placement_latbnb --
/// mixtral-8x7b 8 all 60`, load ≈ 3).
pub const START_ROUNDS: usize = 30;
/// Largest [`Params::max_phi`] (the scratch tables have `2^MAX_PHI` entries per home).
pub const MAX_PHI: usize = 10;

/// Subgradient iterations of the price ascent.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// At the root.
    pub root_iters: usize,
    /// At a visited node.
    pub node_iters: usize,
    /// At a leaf, before its routing LP.
    pub leaf_iters: usize,
    /// Scale of the slot and copy prices against `μ` in the ascent steps.
    pub sigma: f64,
    /// Non-improving steps before the step size is halved.
    pub patience: usize,
    /// Initial step factor of the ascent at a node (1 at the root).
    pub theta: f64,
    /// Steps after which a node's ascent that is not on pace to reach the incumbent stops (0: never).
    pub check: usize,
    /// Deflection of the ascent direction by the previous one (0: plain subgradient).
    pub deflect: f64,
    /// Most servers with a free slot for which the bound enumerates their subsets (at most
    /// [`MAX_PHI`]); with more, the per-home slot bound.
    pub max_phi: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            root_iters: 1000,
            node_iters: 60,
            leaf_iters: 50,
            sigma: 10.0,
            patience: 50,
            theta: 1.9,
            deflect: 0.5,
            check: 0,
            max_phi: MAX_PHI,
        }
    }
}

/// Why the search does not apply, if it does not.
pub fn applicable(p: &Prepared) -> std::result::Result<(), String> {
    if !p.fully_connected() {
        return Err("needs a link from every home server to every server".into());
    }
    let n = p.servers.iter().filter(|s| s.slots > 0).count();
    if n > MAX_SERVERS {
        return Err(format!(
            "{n} servers with expert slots (at most {MAX_SERVERS})"
        ));
    }
    if p.experts > MAX_EXPERTS {
        return Err(format!("{} experts (at most {MAX_EXPERTS})", p.experts));
    }
    if p.homes.len() * p.experts * p.num_servers() > greedy::POLISH_LIMIT {
        return Err(format!(
            "homes × experts × servers above {} (the routing LP at the leaves)",
            greedy::POLISH_LIMIT
        ));
    }
    Ok(())
}

/// The result of one layer.
pub struct LayerResult {
    /// Best plan found by the search (routing LP of its holdings), if better than the start.
    pub plan: Option<LayerPlan>,
    /// Objective of the best plan known (the start's when `plan` is `None`).
    pub value: f64,
    /// Proven lower bound on the layer objective.
    pub bound: f64,
    /// Bound at the root (after the root ascent).
    pub root_bound: f64,
    /// The search finished (the value is optimal, or no feasible holding exists).
    pub complete: bool,
    pub nodes: u64,
    /// Routing LPs solved at leaves.
    pub lps: u64,
    /// Nodes per depth (experts placed).
    pub depth_nodes: Vec<u64>,
    /// Evaluations of the Lagrangian bound.
    pub evals: u64,
}

struct Search<'a> {
    p: &'a Prepared,
    l: usize,
    prm: Params,
    n: usize,
    srv: Vec<usize>,
    nh: usize,
    /// `[h·n + s]`: dispatch weight × `c_{hs}`.
    cc: Vec<f64>,
    /// `[s]`: utilisation per activation.
    kk: Vec<f64>,
    /// `[h][k]`: demand of home `h` for the expert at position `k`.
    d: Vec<Vec<f64>>,
    /// `[k·nh + h]`: `d[h][k]` (expert-major).
    dk: Vec<f64>,
    dsum: Vec<f64>,
    order: Vec<usize>,
    /// `[h]`: positions by decreasing `d[h]`.
    by_home: Vec<Vec<usize>>,
    /// `[s][k]`.
    hc: Vec<Vec<f64>>,
    any_hold_cost: bool,
    w: f64,
    copies: usize,
    class: Vec<usize>,
    sets: Vec<u32>,
    free: Vec<usize>,
    used: usize,
    hold_sum: f64,
    hist: Vec<u64>,
    /// Scale of the slot and copy prices in the ascent (objective per slot).
    sigma: f64,
    /// Changes with every placement or removal (keys the per-node sums of `lagr`).
    ver: u64,
    /// `(ver, k)` of the sums below: per server the demand of the placed experts held only there,
    /// their dispatch cost, and the placed experts with more holders.
    placed_key: (u64, usize),
    single_w: Vec<f64>,
    single_c: f64,
    multi: Vec<usize>,
    // scratch of `lagr`: prices `[h·n + s]`, subgradient, free servers, slots left; per subset of
    // Φ (in the order of `subsets`) its slot price, its hold cost for one expert and per home its
    // cheapest price; per free expert the cost of every subset and per size the cheapest
    a: Vec<f64>,
    g: Vec<f64>,
    phi: Vec<usize>,
    left: Vec<usize>,
    pcost: Vec<f64>,
    hsum: Vec<f64>,
    cost: Vec<f64>,
    /// `[m]`: the non-empty subsets of `m` servers by increasing size (then value); `low[m][i]`:
    /// the lowest server of `subsets[m][i]`; `prev[m][i]`: the position of the subset without it
    /// (`NO_PREV` for a single server); `small[m][c]`: how many subsets have at most `c` servers.
    subsets: Vec<Vec<u32>>,
    low: Vec<Vec<u8>>,
    prev: Vec<Vec<u32>>,
    small: Vec<Vec<usize>>,
    mset: Vec<f64>,
    fc: Vec<f64>,
    sdp: Vec<f64>,
    /// After `lagr` with the subset bound: (fixed part, `Σ π_s q_s`, copies left, largest set).
    node: Option<(f64, f64, usize, usize)>,
    best: f64,
    best_plan: Option<LayerPlan>,
    nodes: u64,
    lps: u64,
    depth_nodes: Vec<u64>,
    evals: u64,
    node_limit: u64,
    deadline: Option<Instant>,
    stop: &'a StopFlag,
    aborted: bool,
}

/// `Search::prev` of a subset of one server.
const NO_PREV: usize = u32::MAX as usize;

/// The smallest element (`∞` for none), in four independent lanes (vectorised).
fn min_of(x: &[f64]) -> f64 {
    let mut m = [f64::INFINITY; 4];
    let mut it = x.chunks_exact(4);
    for c in &mut it {
        for i in 0..4 {
            if c[i] < m[i] {
                m[i] = c[i];
            }
        }
    }
    for &v in it.remainder() {
        if v < m[0] {
            m[0] = v;
        }
    }
    m[0].min(m[1]).min(m[2].min(m[3]))
}

/// Euclidean projection onto `{μ ≥ 0, Σ μ = w}`.
fn project_simplex(mu: &mut [f64], w: f64) {
    // where the uniform shift keeps every entry positive it is the projection (no sort)
    let t0 = (mu.iter().sum::<f64>() - w) / mu.len() as f64;
    if mu.iter().all(|&x| x - t0 > 0.0) {
        for m in mu.iter_mut() {
            *m -= t0;
        }
        return;
    }
    let mut buf = [0.0f64; MAX_SERVERS];
    let v = &mut buf[..mu.len()];
    v.copy_from_slice(mu);
    v.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut cum = 0.0;
    let mut theta = 0.0;
    for (i, &x) in v.iter().enumerate() {
        cum += x;
        let t = (cum - w) / (i + 1) as f64;
        if x - t > 0.0 {
            theta = t;
        }
    }
    for m in mu.iter_mut() {
        *m = (*m - theta).max(0.0);
    }
}

impl Search<'_> {
    fn better(&self, v: f64) -> bool {
        if self.best.is_finite() {
            v < self.best - 1e-9 * self.best.abs().max(1e-300)
        } else {
            v < f64::INFINITY
        }
    }

    fn assign(&mut self, k: usize, t: u32) {
        toggle_set(
            k,
            t,
            true,
            &mut self.free,
            &mut self.hist,
            &mut self.hold_sum,
            &self.hc,
        );
        self.used += t.count_ones() as usize;
        self.ver += 1;
        self.sets[k] = t;
    }

    fn unassign(&mut self, k: usize, t: u32) {
        toggle_set(
            k,
            t,
            false,
            &mut self.free,
            &mut self.hist,
            &mut self.hold_sum,
            &self.hc,
        );
        self.used -= t.count_ones() as usize;
        self.ver += 1;
    }

    /// The Lagrangian bound with experts `< k` placed, for multipliers `y` (`[μ | π]`); its
    /// subgradient in `self.g`; with the subset bound, its parts in `self.node` and `self.sdp`.
    /// `∞` when the free experts cannot all be placed.
    fn lagr(&mut self, k: usize, y: &[f64]) -> f64 {
        self.evals += 1;
        let (n, nh, ne) = (self.n, self.nh, self.order.len());
        let (mu, kk) = (&y[..n], &self.kk[..n]);
        for (ah, ch) in self.a.chunks_exact_mut(n).zip(self.cc.chunks_exact(n)) {
            for ((x, &c), (&m, &q)) in ah.iter_mut().zip(ch).zip(mu.iter().zip(kk)) {
                *x = c + m * q;
            }
        }
        self.g.iter_mut().for_each(|x| *x = 0.0);
        // the placed experts: those with one holder `s` are linear in the prices (their demand
        // `W_s` at `cc + μ_s·kk_s`), summed once per node; the others take their cheapest holder
        if self.placed_key != (self.ver, k) {
            self.placed_key = (self.ver, k);
            self.single_w.iter_mut().for_each(|x| *x = 0.0);
            self.single_c = 0.0;
            self.multi.clear();
            for (j, &t) in self.sets[..k].iter().enumerate() {
                if t.count_ones() == 1 {
                    let s = t.trailing_zeros() as usize;
                    for (h, &dh) in self.dk[j * nh..(j + 1) * nh].iter().enumerate() {
                        if dh > 0.0 {
                            self.single_w[s] += dh;
                            self.single_c += dh * self.cc[h * n + s];
                        }
                    }
                } else {
                    self.multi.push(j);
                }
            }
        }
        let mut v = self.hold_sum + self.single_c;
        for s in 0..n {
            let w = self.single_w[s] * kk[s];
            v += mu[s] * w;
            self.g[s] += w;
        }
        for &j in &self.multi {
            let t = self.sets[j];
            let dj = &self.dk[j * nh..(j + 1) * nh];
            for (ah, &dh) in self.a.chunks_exact(n).zip(dj) {
                if dh <= 0.0 {
                    continue;
                }
                let (mut bs, mut ba) = (0, f64::INFINITY);
                let mut m = t;
                while m != 0 {
                    let s = m.trailing_zeros() as usize;
                    m &= m - 1;
                    if ah[s] < ba {
                        ba = ah[s];
                        bs = s;
                    }
                }
                v += dh * ba;
                self.g[bs] += dh * kk[bs];
            }
        }
        self.node = None;
        let nr = ne - k;
        if nr == 0 {
            return v;
        }
        self.phi.clear();
        let mut slots = 0;
        for s in 0..n {
            if self.free[s] > 0 {
                self.phi.push(s);
                slots += self.free[s];
            }
        }
        let left = self.copies.saturating_sub(self.used);
        if slots < nr || left < nr {
            return f64::INFINITY;
        }
        let m = self.phi.len();
        if m > self.prm.max_phi.min(MAX_PHI) {
            return v + self.home_bound(k);
        }
        // per free expert: its cheapest holder set T ⊆ Φ (|T| ≤ the copies left for it) at the
        // prices a, slot prices π and copy price β
        let max_size = left - (nr - 1);
        // per free expert and size c ≤ mx: the cost of its cheapest set of c servers (`fc`). The
        // subsets of Φ are laid out by increasing size (`subsets[m]`), so a subset's prefix
        // `j & (j − 1)` comes first (`prev[m]`), the subsets of at most `mx` servers are a prefix
        // of `count`, and each size is a contiguous range: every pass below is contiguous
        let mx = max_size.min(m);
        let count = self.small[m][mx];
        {
            // the first m subsets are the single servers (in the order of Φ)
            let phi = &self.phi[..m];
            let sub_low = &self.low[m][..count];
            let sub_prev = &self.prev[m][..count];
            let pc = &mut self.pcost[..count];
            for (i, &s) in phi.iter().enumerate().take(count) {
                pc[i] = y[n + s];
            }
            for i in m..count {
                pc[i] = pc[sub_prev[i] as usize] + y[n + phi[sub_low[i] as usize]];
            }
            for (ah, ms) in self
                .a
                .chunks_exact(n)
                .zip(self.mset.chunks_exact_mut(count))
            {
                for (i, &s) in phi.iter().enumerate().take(count) {
                    ms[i] = ah[s];
                }
                for i in m..count {
                    let x = ah[phi[sub_low[i] as usize]];
                    let q = ms[sub_prev[i] as usize];
                    ms[i] = if x < q { x } else { q };
                }
            }
        }
        for e in k..ne {
            let row = (e - k) * (mx + 1);
            let cost = &mut self.cost[(e - k) * count..(e - k + 1) * count];
            cost.copy_from_slice(&self.pcost[..count]);
            let de = &self.dk[e * nh..(e + 1) * nh];
            for (&dh, ms) in de.iter().zip(self.mset.chunks_exact(count)) {
                if dh > 0.0 {
                    for (c, &x) in cost.iter_mut().zip(ms) {
                        *c += dh * x;
                    }
                }
            }
            if self.any_hold_cost {
                let (sub_low, sub_prev) = (&self.low[m], &self.prev[m]);
                for i in 0..count {
                    let s = self.phi[sub_low[i] as usize];
                    let pv = sub_prev[i] as usize;
                    let below = if pv == NO_PREV { 0.0 } else { self.hsum[pv] };
                    self.hsum[i] = below + self.hc[s][e];
                }
                for (c, &x) in cost.iter_mut().zip(&self.hsum[..count]) {
                    *c += x;
                }
            }
            self.fc[row] = f64::INFINITY;
            for c in 1..=mx {
                self.fc[row + c] = min_of(&cost[self.small[m][c - 1]..self.small[m][c]]);
            }
        }
        // the copies left, exactly: sdp[(j − k)][b] = cheapest sets of the experts j.. with at most b
        // copies in all (suffix dynamic programme)
        let nb = left + 1;
        let base = (ne - k) * nb;
        for b in 0..nb {
            self.sdp[base + b] = 0.0;
        }
        for e in (k..ne).rev() {
            let row = (e - k) * nb;
            let frow = (e - k) * (mx + 1);
            for b in 0..nb {
                let mut best = f64::INFINITY;
                for c in 1..=mx.min(b) {
                    let x = self.fc[frow + c] + self.sdp[row + nb + b - c];
                    if x < best {
                        best = x;
                    }
                }
                self.sdp[row + b] = best;
            }
        }
        let mut pisum = 0.0;
        for &s in &self.phi {
            pisum += y[n + s] * self.free[s] as f64;
            self.g[n + s] -= self.free[s] as f64;
        }
        self.node = Some((v, pisum, left, mx));
        v += self.sdp[left] - pisum;
        // subgradient: the sets of the cheapest choice
        let mut b = left;
        for e in k..ne {
            let row = (e - k) * nb;
            let frow = (e - k) * (mx + 1);
            let mut bc = 0;
            for c in 1..=mx.min(b) {
                let x = self.fc[frow + c] + self.sdp[row + nb + b - c];
                if x <= self.sdp[row + b] {
                    bc = c;
                    break;
                }
            }
            if bc == 0 {
                break;
            }
            b -= bc;
            // the chosen set: a cheapest subset of size bc (the first at the minimum)
            let (lo, hi) = (self.small[m][bc - 1], self.small[m][bc]);
            let cost = &self.cost[(e - k) * count..(e - k + 1) * count];
            let target = self.fc[frow + bc];
            let at = (lo..hi).find(|&i| cost[i] <= target).unwrap_or(lo);
            let bj = self.subsets[m][at] as usize;
            let de = &self.dk[e * nh..(e + 1) * nh];
            for (ah, &dh) in self.a.chunks_exact(n).zip(de) {
                if dh > 0.0 {
                    let (mut bs, mut ba) = (0, f64::INFINITY);
                    let mut m = bj;
                    while m != 0 {
                        let s = self.phi[m.trailing_zeros() as usize];
                        if ah[s] < ba {
                            ba = ah[s];
                            bs = s;
                        }
                        m &= m - 1;
                    }
                    self.g[bs] += dh * self.kk[bs];
                }
            }
            let mut m = bj;
            while m != 0 {
                self.g[n + self.phi[m.trailing_zeros() as usize]] += 1.0;
                m &= m - 1;
            }
        }
        v
    }

    /// The per-home slot bound of the free experts (from position `k`) at the prices `self.a`
    /// (used where Φ is too large to enumerate its subsets): every free expert has for each home a
    /// cheapest holder among the servers with a free slot, at most `q_s` of them on `s`: the
    /// heaviest experts on the cheapest slots. Adds its subgradient in `μ` to `self.g`.
    fn home_bound(&mut self, k: usize) -> f64 {
        let n = self.n;
        let mut v = 0.0;
        for h in 0..self.nh {
            let row = h * n;
            for i in 1..self.phi.len() {
                let mut j = i;
                while j > 0 && self.a[row + self.phi[j]] < self.a[row + self.phi[j - 1]] {
                    self.phi.swap(j, j - 1);
                    j -= 1;
                }
            }
            for &s in &self.phi {
                self.left[s] = self.free[s];
            }
            let mut idx = 0;
            for &j in &self.by_home[h] {
                if j < k {
                    continue;
                }
                let dh = self.d[h][j];
                if dh <= 0.0 {
                    break;
                }
                while self.left[self.phi[idx]] == 0 {
                    idx += 1;
                }
                let s = self.phi[idx];
                self.left[s] -= 1;
                v += dh * self.a[row + s];
                self.g[s] += dh * self.kk[s];
            }
        }
        if self.any_hold_cost {
            for j in k..self.order.len() {
                v += self
                    .phi
                    .iter()
                    .map(|&s| self.hc[s][j])
                    .fold(f64::INFINITY, f64::min);
            }
        }
        v
    }

    /// Projected subgradient ascent of the multipliers from `y` (left at the best found); returns
    /// the best bound. `μ` stays on the simplex `Σ μ = w`, `π, β ≥ 0`; the slot and copy prices
    /// are scaled by `sigma` (objective per slot) so that one Polyak step moves both blocks.
    fn ascend(&mut self, k: usize, y: &mut [f64], iters: usize, theta0: f64) -> f64 {
        let n = self.n;
        let mut v = self.lagr(k, y);
        if !v.is_finite() {
            return v;
        }
        let mut best_v = v;
        let mut best_y = y.to_vec();
        let mut theta = theta0;
        let mut stall = 0;
        let sigma = self.sigma;
        // direction in scaled coordinates (`μ`, `π/σ`), deflected by the previous one (Camerini,
        // Fratta and Maffioli) so that the ascent does not zigzag between two kinks
        let mut dir = vec![0.0; 2 * n + 1];
        let mut pg = vec![0.0; 2 * n + 1];
        let v0 = v;
        for it in 0..iters {
            if !self.better(best_v) {
                break;
            }
            // hopeless: at the pace of the first `check` steps the rest would not reach the
            // incumbent (the node is then expanded with the prices reached)
            let check = self.prm.check;
            if check > 0
                && it == check
                && self.best.is_finite()
                && (best_v - v0) * (iters as f64 / check as f64) < self.best - v0
            {
                break;
            }
            let mean = self.g[..n].iter().sum::<f64>() / n as f64;
            for s in 0..n {
                pg[s] = self.g[s] - mean;
            }
            for i in n..=2 * n {
                // only directions that stay feasible (π ≥ 0)
                pg[i] = if y[i] > 0.0 || self.g[i] > 0.0 {
                    sigma * self.g[i]
                } else {
                    0.0
                };
            }
            let dot: f64 = pg.iter().zip(&dir).map(|(a, b)| a * b).sum();
            let dn: f64 = dir.iter().map(|x| x * x).sum();
            let gamma = if it > 0 && dn > 0.0 && dot < 0.0 {
                -self.prm.deflect * dot / dn
            } else {
                0.0
            };
            for i in 0..=2 * n {
                dir[i] = pg[i] + gamma * dir[i];
            }
            let norm2: f64 = dir.iter().map(|x| x * x).sum();
            if norm2 <= 1e-30 {
                break;
            }
            let target = if self.best.is_finite() {
                self.best
            } else {
                best_v * 1.05 + 1e-12
            };
            let step = theta * (target - v).max(1e-12 * target.abs()) / norm2;
            for s in 0..n {
                y[s] += step * dir[s];
            }
            project_simplex(&mut y[..n], self.w);
            for i in n..=2 * n {
                y[i] = (y[i] + step * sigma * dir[i]).max(0.0);
            }
            v = self.lagr(k, y);
            if v > best_v * (1.0 + 1e-12) {
                best_v = v;
                best_y.copy_from_slice(y);
                stall = 0;
            } else {
                stall += 1;
                if stall >= self.prm.patience {
                    theta *= 0.5;
                    stall = 0;
                    if theta < 1e-5 {
                        break;
                    }
                }
            }
        }
        y.copy_from_slice(&best_y);
        best_v
    }

    fn hold(&self) -> Vec<Vec<bool>> {
        hold_matrix(self.p, &self.srv, &self.order, &self.sets)
    }

    /// The routing LP of the holdings of a leaf; the plan becomes the incumbent when better.
    fn leaf(&mut self) {
        let hold = self.hold();
        self.lps += 1;
        let r = model::solve_layer(
            self.p,
            self.l,
            Mode::Fixed(&hold),
            &SolveOptions::default(),
            None,
            self.stop.clone(),
            None,
        );
        if let Ok(r) = r {
            if r.status == MilpStatus::Optimal {
                if let Some(plan) = r.plan {
                    if greedy::layer_feasible(self.p, self.l, &plan) {
                        let v = self.p.plan_layer_value(self.l, &plan).objective;
                        if self.better(v) {
                            self.best = v;
                            self.best_plan = Some(plan);
                        }
                    }
                }
            }
        }
    }

    /// Explores the subtree of a node with the experts `< k` placed and prices `mu` (its bound is
    /// below the incumbent); returns the smallest bound left open (`∞` when resolved).
    fn dfs(&mut self, k: usize, y: &[f64]) -> f64 {
        self.nodes += 1;
        self.depth_nodes[k] += 1;
        if self.nodes >= self.node_limit
            || (self.nodes.is_multiple_of(64)
                && (self.stop.is_stopped() || self.deadline.is_some_and(|d| Instant::now() >= d)))
        {
            self.aborted = true;
        }
        let ne = self.order.len();
        if k == ne {
            self.leaf();
            return f64::INFINITY;
        }
        let later = ne - k - 1;
        let total_free: usize = self.free.iter().sum();
        let mut max_size = (self.copies - self.used)
            .saturating_sub(later)
            .min(total_free.saturating_sub(later));
        if self.dsum[k] <= 0.0 {
            // more holders of an expert without demand only use slots
            max_size = max_size.min(1);
        }
        if max_size == 0 {
            return f64::INFINITY;
        }
        let phi = (0..self.n)
            .filter(|&s| self.free[s] > 0)
            .fold(0u32, |m, s| m | (1 << s));
        let twin = twins(&self.class, &self.hist, &self.free);
        // the node's bound at its multipliers (sets the prices `a` and the free experts' terms):
        // a child that gives expert k the set T replaces k's term by its exact cost on T plus T's
        // slot and copy prices (the other free experts' terms stay valid: their sets may only
        // shrink), or, under the per-home bound, is bounded from scratch
        self.lagr(k, y);
        let node = self.node;
        let (n, nh) = (self.n, self.nh);
        let mut children: Vec<(f64, u32)> = vec![];
        let mut t = phi;
        while t != 0 {
            let c = t.count_ones() as usize;
            let canonical = canonical(&twin, t);
            if c <= max_size && canonical {
                let lb = if let Some((fixed, pisum, left, _)) = node {
                    let nb = left + 1;
                    let mut v = fixed - pisum + self.sdp[nb + left - c];
                    for h in 0..nh {
                        let dh = self.d[h][k];
                        if dh > 0.0 {
                            let mut ba = f64::INFINITY;
                            let mut m = t;
                            while m != 0 {
                                ba = ba.min(self.a[h * n + m.trailing_zeros() as usize]);
                                m &= m - 1;
                            }
                            v += dh * ba;
                        }
                    }
                    let mut m = t;
                    while m != 0 {
                        let s = m.trailing_zeros() as usize;
                        v += y[n + s] + self.hc[s][k];
                        m &= m - 1;
                    }
                    v
                } else {
                    self.assign(k, t);
                    let lb = self.lagr(k + 1, y);
                    self.unassign(k, t);
                    lb
                };
                if lb.is_finite() && self.better(lb) {
                    children.push((lb, t));
                }
            }
            t = (t - 1) & phi;
        }
        children.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.count_ones().cmp(&b.1.count_ones()))
        });
        let iters = if k + 1 == ne {
            self.prm.leaf_iters
        } else {
            self.prm.node_iters
        };
        let mut y_c = y.to_vec();
        for i in 0..children.len() {
            let (lb, t) = children[i];
            if self.aborted {
                return children[i..]
                    .iter()
                    .map(|c| c.0)
                    .fold(f64::INFINITY, f64::min);
            }
            if !self.better(lb) {
                break;
            }
            self.assign(k, t);
            y_c.copy_from_slice(y);
            let lb2 = self.ascend(k + 1, &mut y_c, iters, self.prm.theta).max(lb);
            let open = if self.better(lb2) {
                self.dfs(k + 1, &y_c.clone())
            } else {
                f64::INFINITY
            };
            self.unassign(k, t);
            if self.aborted {
                let later_open = children[i + 1..]
                    .iter()
                    .map(|c| c.0)
                    .fold(f64::INFINITY, f64::min);
                return open.min(later_open);
            }
        }
        f64::INFINITY
    }
}

/// Solves layer `l` exactly (or until `deadline`, or after `node_limit` nodes), starting from the
/// incumbent `warm`.
pub fn solve_layer(
    p: &Prepared,
    l: usize,
    warm: Option<&LayerPlan>,
    prm: Params,
    deadline: Option<Instant>,
    node_limit: Option<u64>,
    stop: &StopFlag,
) -> LayerResult {
    let srv: Vec<usize> = (0..p.num_servers())
        .filter(|&s| p.servers[s].slots > 0)
        .collect();
    let n = srv.len();
    let nh = p.homes.len();
    let cw = p.comm_weight();
    let mut cc = vec![0.0; nh * n];
    for (h, &hs) in p.homes.iter().enumerate() {
        for (i, &s) in srv.iter().enumerate() {
            cc[h * n + i] = if cw > 0.0 { cw * p.comm[hs][s] } else { 0.0 };
        }
    }
    let dem = &p.expert_demand[l];
    let mut order: Vec<usize> = (0..p.experts).collect();
    order.sort_by(|&a, &b| dem[b].total_cmp(&dem[a]).then(a.cmp(&b)));
    let d: Vec<Vec<f64>> = (0..nh)
        .map(|h| order.iter().map(|&e| p.home_demand[l][h][e]).collect())
        .collect();
    let dsum: Vec<f64> = order.iter().map(|&e| dem[e]).collect();
    let by_home: Vec<Vec<usize>> = d
        .iter()
        .map(|dh| {
            let mut v: Vec<usize> = (0..order.len()).collect();
            v.sort_by(|&a, &b| dh[b].total_cmp(&dh[a]).then(a.cmp(&b)));
            v
        })
        .collect();
    let hc: Vec<Vec<f64>> = srv
        .iter()
        .map(|&s| order.iter().map(|&e| p.hold_cost(l, s, e)).collect())
        .collect();
    let any_hold_cost = hc.iter().flatten().any(|&c| c != 0.0);
    let class = super::model::classes(n, |a, b| {
        let (sa, sb) = (&p.servers[srv[a]], &p.servers[srv[b]]);
        sa.flops == sb.flops
            && sa.slots == sb.slots
            && hc[a] == hc[b]
            && (0..nh).all(|h| cc[h * n + a] == cc[h * n + b])
    });
    let total_slots: usize = srv.iter().map(|&s| p.servers[s].slots).sum();
    let warm_value = warm
        .filter(|w| greedy::layer_feasible(p, l, w))
        .map(|w| p.plan_layer_value(l, w).objective);
    let w = p.load_weight();
    let subsets: Vec<Vec<u32>> = (0..=n.min(MAX_PHI))
        .map(|m| {
            let mut v: Vec<u32> = (1..1u32 << m).collect();
            v.sort_by_key(|j| (j.count_ones(), *j));
            v
        })
        .collect();
    let mut st = Search {
        p,
        l,
        prm,
        n,
        srv: srv.clone(),
        nh,
        cc,
        kk: srv.iter().map(|&s| p.util_per_act(s)).collect(),
        dk: (0..p.experts)
            .flat_map(|k| d.iter().map(move |dh| dh[k]))
            .collect(),
        d,
        dsum,
        order,
        by_home,
        hc,
        any_hold_cost,
        w,
        copies: p.max_replicas.min(total_slots),
        class,
        sets: vec![0; p.experts],
        free: srv.iter().map(|&s| p.servers[s].slots).collect(),
        used: 0,
        hold_sum: 0.0,
        hist: vec![0; n],
        sigma: prm.sigma * p.layer_lower_bound(l).max(1e-300) / total_slots.max(1) as f64,
        ver: 0,
        placed_key: (u64::MAX, 0),
        single_w: vec![0.0; n],
        single_c: 0.0,
        multi: Vec::with_capacity(p.experts),
        a: vec![0.0; nh * n],
        g: vec![0.0; 2 * n + 1],
        phi: Vec::with_capacity(n),
        left: vec![0; n],
        pcost: vec![0.0; 1 << n.min(MAX_PHI)],
        hsum: vec![0.0; 1 << n.min(MAX_PHI)],
        cost: vec![0.0; p.experts << n.min(MAX_PHI)],
        subsets: subsets.clone(),
        low: subsets
            .iter()
            .map(|v| v.iter().map(|j| j.trailing_zeros() as u8).collect())
            .collect(),
        prev: subsets
            .iter()
            .map(|v| {
                let mut pos = vec![NO_PREV as u32; v.len() + 1];
                // positions by value (subsets of m servers are < 2^m)
                let mut at = vec![NO_PREV as u32; 1 << MAX_PHI];
                for (i, &j) in v.iter().enumerate() {
                    at[j as usize] = i as u32;
                }
                for (i, &j) in v.iter().enumerate() {
                    let pj = j & (j - 1);
                    pos[i] = if pj == 0 {
                        NO_PREV as u32
                    } else {
                        at[pj as usize]
                    };
                }
                pos.truncate(v.len());
                pos
            })
            .collect(),
        small: subsets
            .iter()
            .map(|v| {
                let m = v.last().map_or(0, |j| 32 - j.leading_zeros() as usize);
                (0..=m)
                    .map(|c| v.iter().filter(|j| j.count_ones() as usize <= c).count())
                    .collect()
            })
            .collect(),
        mset: vec![0.0; nh << n.min(MAX_PHI)],
        fc: vec![0.0; p.experts * (n.min(MAX_PHI) + 1)],
        sdp: vec![0.0; (p.experts + 1) * (p.max_replicas.min(total_slots) + 1)],
        node: None,
        best: warm_value.unwrap_or(f64::INFINITY),
        best_plan: None,
        nodes: 0,
        lps: 0,
        depth_nodes: vec![0; p.experts + 1],
        evals: 0,
        node_limit: node_limit.unwrap_or(u64::MAX),
        deadline,
        stop,
        aborted: false,
    };
    // start: the prices of the balanced load (every activation costs w·f/ΣF), no slot or copy price
    let total_f: f64 = srv.iter().map(|&s| p.servers[s].flops).sum();
    let mut mu: Vec<f64> = vec![0.0; 2 * n + 1];
    for (i, &s) in srv.iter().enumerate() {
        mu[i] = w * p.servers[s].flops / total_f;
    }
    let infeasible = n == 0 || p.experts > total_slots || p.experts > p.max_replicas;
    let (root, open) = if infeasible {
        (f64::INFINITY, f64::INFINITY)
    } else {
        let root = st.ascend(0, &mut mu, prm.root_iters, 1.0);
        let open = if st.better(root) {
            st.dfs(0, &mu)
        } else {
            f64::INFINITY
        };
        (root, open)
    };
    let bound = if st.aborted {
        open.max(root).min(st.best)
    } else {
        st.best
    };
    LayerResult {
        plan: st.best_plan,
        value: st.best,
        bound,
        root_bound: root.min(st.best),
        complete: !st.aborted,
        nodes: st.nodes,
        lps: st.lps,
        depth_nodes: st.depth_nodes,
        evals: st.evals,
    }
}

/// The `lagrangian-bnb` solver.
pub struct LagrangianBnb;

impl Solver<MoePlacement> for LagrangianBnb {
    fn name(&self) -> &'static str {
        "lagrangian-bnb"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "per-layer branch and bound over expert holder sets with a Lagrangian bound (load rows priced, slot-aware relaxation of the free experts), routing LP at the leaves; ils incumbent"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        applicable(p)
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        if !p.enough_slots() {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let stop = ctx.stop_flag();
        let warm_deadline = ctx.remaining_s().map(|r| {
            Instant::now() + std::time::Duration::from_secs_f64(r * super::milp::WARM_SHARE)
        });
        let ils_prm = ils::Params {
            rounds: START_ROUNDS,
            ..ils::Params::default()
        };
        let warm = ils::plans_with(p, &ils_prm, warm_deadline, stop.clone()).0;
        // `iteration_limit`: nodes per layer and pass
        let node_limit = ctx.options.iteration_limit;
        let prm = Params::default();
        let mut o = solve_layers(p, ctx, warm, |l, start, dl| {
            let r = solve_layer(p, l, Some(start), prm, dl, node_limit, &stop);
            LayerRun {
                plan: r.plan.unwrap_or_else(|| start.clone()),
                bound: r.bound,
                complete: r.complete,
                nodes: r.nodes,
                lps: r.lps,
            }
        });
        let lps = o.iterations;
        o.notes.push(format!(
            "incumbent started from ils; {lps} routing LPs at leaves"
        ));
        Ok(o)
    }
}
