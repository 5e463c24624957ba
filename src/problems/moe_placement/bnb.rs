//! `branch-and-bound` (exact, `max_load` objective): a combinatorial branch and bound per layer
//! (layers in parallel) that needs no LP until the routing of the final holdings.
//!
//! **The value of fixed holdings.** Under `max_load` routing has no network cost, so one demand unit
//! per layer suffices (every home reaches every server: `fully_connected`). With holder sets
//! `T_e` the best routing is a transportation problem whose optimal max utilisation is, by max-flow /
//! min-cut (Hall's condition for splittable demands),
//! `z*(T) = max_{U ⊆ S} f·D(U) / F(U)` with `D(U) = Σ_{e: T_e ⊆ U} d_e` the demand of the experts held
//! only inside `U` and `F(U)` the compute of `U`. With `S ≤` [`MAX_SERVERS`] servers that hold
//! experts the `2^S` sums are kept incrementally.
//!
//! **Search.** Experts are branched on one at a time in order of decreasing demand; a branch gives
//! the next expert its whole holder set `T` (any set of servers with a free slot, of size at most
//! what the replication budget and the free slots leave once every later expert has one copy).
//!
//! **Bound** of a node where the experts `A` have their sets and the rest `R` (demand `D_R`) do not:
//! every expert of `R` will sit on servers that still have a free slot (`Φ`), so for any `U ⊇ Φ` all of
//! `R` is inside `U`:
//! `z ≥ max_U f·(D_A(U) + [U ⊇ Φ]·D_R) / F(U)` (`U = S` gives the balanced load). The bound equals
//! `z*` at a leaf. The objective is `w·z + Σ hold costs` (migration); unassigned experts add their
//! cheapest free holding cost. Children are visited in increasing bound order and pruned at the
//! incumbent (started from `greedy`).
//!
//! **Symmetry.** Two servers with the same compute, slots and holding costs that have received the
//! same experts so far are interchangeable for the rest of the search: a set may contain the second
//! only if it contains the first.
//!
//! Under a time limit the bound returned is the smallest bound of the subtrees left open (children
//! are sorted, so the first open child of every level on the interrupted path), capped by the
//! incumbent. The routing of the best holdings comes from the routing LP of [`super::model`]
//! (`greedy::polish`).

use super::cost::{LayerPlan, Prepared, ShareState};
use super::greedy;
use super::{finish, MoePlacement, Objective};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, StopFlag, Termination};
use rayon::prelude::*;
use std::time::Instant;

/// Most servers with expert slots (the search keeps `2^S` subset sums).
pub const MAX_SERVERS: usize = 12;
/// Most experts per layer for which `auto` picks this solver.
pub const AUTO_MAX_EXPERTS: usize = 12;
/// Most experts per layer (server histories are 64-bit masks).
pub const MAX_EXPERTS: usize = 64;

/// Why the combinatorial search does not apply, if it does not.
pub fn applicable(p: &Prepared) -> std::result::Result<(), String> {
    if p.objective != Objective::MaxLoad {
        return Err("the combinatorial bound covers the max_load objective only (use milp)".into());
    }
    if !p.fully_connected() {
        return Err("needs a link from every home server to every server".into());
    }
    let n = p.servers.iter().filter(|s| s.slots > 0).count();
    if n > MAX_SERVERS {
        return Err(format!(
            "{n} servers with expert slots (at most {MAX_SERVERS})"
        ));
    }
    if p.homes.len() * p.experts * p.num_servers() > greedy::POLISH_LIMIT {
        // the routing of the best holdings is the routing LP of `greedy::polish`
        return Err(format!(
            "homes × experts × servers above {} (the routing LP of the final holdings)",
            greedy::POLISH_LIMIT
        ));
    }
    if p.experts > MAX_EXPERTS {
        return Err(format!("{} experts (at most {MAX_EXPERTS})", p.experts));
    }
    Ok(())
}

/// The result of one layer.
pub struct LayerResult {
    /// Best holdings found (`[s][e]`, instance servers), if any.
    pub hold: Option<Vec<Vec<bool>>>,
    /// Objective of `hold` (by the subset formula).
    pub value: f64,
    /// Proven lower bound on the layer objective.
    pub bound: f64,
    /// The search finished (the value is optimal, or no feasible holding exists).
    pub complete: bool,
    pub nodes: u64,
}

/// Places (`add`) or removes holder set `t` (mask over the searched servers) of the expert at
/// position `k`: free slots, server histories (bit `k`) and the holding cost (`hc[s][k]`). The
/// bookkeeping shared by `branch-and-bound` and `lagrangian-bnb`.
pub(super) fn toggle_set(
    k: usize,
    t: u32,
    add: bool,
    free: &mut [usize],
    hist: &mut [u64],
    hold_sum: &mut f64,
    hc: &[Vec<f64>],
) {
    for s in 0..free.len() {
        if t & (1 << s) != 0 {
            if add {
                free[s] -= 1;
                hist[s] |= 1 << k;
                *hold_sum += hc[s][k];
            } else {
                free[s] += 1;
                hist[s] &= !(1 << k);
                *hold_sum -= hc[s][k];
            }
        }
    }
}

/// Symmetry: per server, the twin it must come after in a holder set (the nearest earlier server of
/// the same class, history and free slots), so that only one of interchangeable sets is searched.
pub(super) fn twins(class: &[usize], hist: &[u64], free: &[usize]) -> Vec<Option<usize>> {
    (0..class.len())
        .map(|b| {
            (0..b)
                .rev()
                .find(|&a| class[a] == class[b] && hist[a] == hist[b] && free[a] == free[b])
        })
        .collect()
}

/// Whether holder set `t` is the canonical one of its interchangeable sets ([`twins`]).
pub(super) fn canonical(twin: &[Option<usize>], t: u32) -> bool {
    (0..twin.len()).all(|b| t & (1 << b) == 0 || twin[b].is_none_or(|a| t & (1 << a) != 0))
}

/// The holdings `[s][e]` (instance servers and experts) of holder sets by position (`sets[k]`, a
/// mask over the searched servers `srv`, for the expert `order[k]`).
pub(super) fn hold_matrix(
    p: &Prepared,
    srv: &[usize],
    order: &[usize],
    sets: &[u32],
) -> Vec<Vec<bool>> {
    let mut h = vec![vec![false; p.experts]; p.num_servers()];
    for (k, &t) in sets.iter().enumerate() {
        for (s, &sv) in srv.iter().enumerate() {
            if t & (1 << s) != 0 {
                h[sv][order[k]] = true;
            }
        }
    }
    h
}

struct Search<'a> {
    n: usize,
    srv: Vec<usize>,
    /// `[U]`: `f / F(U)` (0 for the empty set).
    inv_f: Vec<f64>,
    /// `[U]`: demand of the assigned experts held only inside `U`.
    inside: Vec<f64>,
    /// `[k]`: `max_U f·D(U)/F(U)` with the experts `< k` assigned.
    held_max: Vec<f64>,
    /// Compute of each local server, and the local servers fastest first.
    flops: Vec<f64>,
    by_speed: Vec<usize>,
    flops_per_act: f64,
    order: Vec<usize>,
    d: Vec<f64>,
    suffix: Vec<f64>,
    free: Vec<usize>,
    hist: Vec<u64>,
    class: Vec<usize>,
    /// `[local s][order position]`.
    hc: Vec<Vec<f64>>,
    any_hold_cost: bool,
    w: f64,
    cap: f64,
    copies: usize,
    used: usize,
    hold_sum: f64,
    sets: Vec<u32>,
    best: f64,
    best_sets: Option<Vec<u32>>,
    nodes: u64,
    node_limit: u64,
    deadline: Option<Instant>,
    stop: &'a StopFlag,
    aborted: bool,
}

impl Search<'_> {
    fn full(&self) -> u32 {
        ((1u64 << self.n) - 1) as u32
    }

    fn free_mask(&self) -> u32 {
        (0..self.n)
            .filter(|&s| self.free[s] > 0)
            .fold(0, |m, s| m | (1 << s))
    }

    /// Adds (`sign` = 1) or removes expert `k`'s demand on every `U ⊇ t`; returns the largest
    /// `f·D(U)/F(U)` over those `U` afterwards.
    fn apply(&mut self, k: usize, t: u32, sign: f64) -> f64 {
        let d = self.d[k] * sign;
        let rest = self.full() & !t;
        let mut m: f64 = 0.0;
        // every U ⊇ t: t | (a submask of the rest)
        let mut sub = rest;
        loop {
            let u = (t | sub) as usize;
            self.inside[u] += d;
            m = m.max(self.inside[u] * self.inv_f[u]);
            if sub == 0 {
                break;
            }
            sub = (sub - 1) & rest;
        }
        m
    }

    fn assign(&mut self, k: usize, t: u32) {
        let m = self.apply(k, t, 1.0);
        self.held_max[k + 1] = self.held_max[k].max(m);
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
        self.sets[k] = t;
    }

    fn unassign(&mut self, k: usize, t: u32) {
        self.apply(k, t, -1.0);
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
    }

    /// Lower bound with experts `< k` assigned (exact when `k` = all experts).
    fn bound(&self, k: usize) -> f64 {
        let rest = self.suffix[k];
        let phi = self.free_mask();
        if rest > 0.0 && phi == 0 {
            return f64::INFINITY;
        }
        // sets without the unassigned demand: kept incrementally. The unassigned experts that are
        // not entirely inside U need a copy on a free server outside U, of which there are at most
        // q = Σ_{s ∈ Φ∖U} free_s: the other |R| − q (at least the lightest ones) sit inside U
        let mut z = self.held_max[k];
        let n_rest = self.order.len() - k;
        if rest > 0.0 {
            let others = self.full() & !phi;
            let free_srv: Vec<usize> = (0..self.n).filter(|&s| self.free[s] > 0).collect();
            // the sets V ⊆ Φ with q(V) < |R|, grown one server at a time (q only grows)
            let mut stack: Vec<(u32, usize, usize)> = vec![(0, 0, 0)];
            while let Some((v, q, next)) = stack.pop() {
                let add = self.suffix[self.order.len() - (n_rest - q)];
                let base = phi & !v;
                let mut w = others;
                loop {
                    let u = (base | w) as usize;
                    if u == 0 {
                        return f64::INFINITY;
                    }
                    z = z.max((self.inside[u] + add) * self.inv_f[u]);
                    if w == 0 {
                        break;
                    }
                    w = (w - 1) & others;
                }
                for (i, &s) in free_srv.iter().enumerate().skip(next) {
                    let q2 = q + self.free[s];
                    if q2 < n_rest {
                        stack.push((v | (1 << s), q2, i + 1));
                    }
                }
            }
        }
        // the heaviest unassigned expert gets at most 1 + (extra copies left) holders among Φ
        if k < self.order.len() && self.d[k] > 0.0 {
            let extra = (self.copies - self.used).saturating_sub(self.order.len() - k);
            let f_top = self.top_flops(phi, 1 + extra);
            if f_top > 0.0 {
                z = z.max(self.d[k] * self.flops_per_act / f_top);
            }
        }
        if z > self.cap * (1.0 + 1e-9) {
            return f64::INFINITY;
        }
        let mut v = self.w * z + self.hold_sum;
        if self.any_hold_cost {
            for j in k..self.order.len() {
                v += (0..self.n)
                    .filter(|&s| self.free[s] > 0)
                    .map(|s| self.hc[s][j])
                    .fold(f64::INFINITY, f64::min);
            }
        }
        v
    }

    /// Compute of the `c` fastest servers of `mask`.
    fn top_flops(&self, mask: u32, c: usize) -> f64 {
        let mut tot = 0.0;
        let mut left = c;
        for &s in &self.by_speed {
            if left == 0 {
                break;
            }
            if mask & (1 << s) != 0 {
                tot += self.flops[s];
                left -= 1;
            }
        }
        tot
    }

    fn better(&self, v: f64) -> bool {
        v < self.best - 1e-9 * self.best.abs().max(1e-300)
    }

    /// Explores the subtree of position `k`; returns the smallest bound left open (`∞` when the
    /// subtree is resolved).
    fn dfs(&mut self, k: usize) -> f64 {
        self.nodes += 1;
        if self.nodes >= self.node_limit
            || (self.nodes.is_multiple_of(256)
                && (self.stop.is_stopped() || self.deadline.is_some_and(|d| Instant::now() >= d)))
        {
            self.aborted = true;
        }
        let e_count = self.order.len();
        if k == e_count || (self.suffix[k] <= 0.0 && !self.any_hold_cost) {
            // a leaf (zero-demand experts left: any free slots will do, the value is the bound)
            let v = self.bound(k);
            if v.is_finite() && self.better(v) {
                let mut sets = self.sets[..k].to_vec();
                if !self.place_rest(k, &mut sets) {
                    return f64::INFINITY;
                }
                self.best = v;
                self.best_sets = Some(sets);
            }
            return f64::INFINITY;
        }
        let later = e_count - k - 1;
        let total_free: usize = self.free.iter().sum();
        let max_size = (self.copies - self.used)
            .saturating_sub(later)
            .min(total_free.saturating_sub(later));
        if max_size == 0 {
            return f64::INFINITY;
        }
        let phi = self.free_mask();
        let twin = twins(&self.class, &self.hist, &self.free);
        let mut children: Vec<(f64, u32)> = vec![];
        let mut t = phi;
        while t != 0 {
            let c = t.count_ones() as usize;
            let canonical = canonical(&twin, t);
            // the set itself must carry the expert (U = T): a cheap test before the full bound
            let quick = self.w * (self.inside[t as usize] + self.d[k]) * self.inv_f[t as usize];
            if c <= max_size && canonical && self.better(quick + self.hold_sum) {
                self.assign(k, t);
                let lb = self.bound(k + 1);
                self.unassign(k, t);
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
        for (i, &(lb, t)) in children.iter().enumerate() {
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
            let open = self.dfs(k + 1);
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

    /// Completes `sets` with one copy of every expert from position `k` on (zero demand), cheapest
    /// holding cost first; false if the slots do not allow it.
    fn place_rest(&self, k: usize, sets: &mut Vec<u32>) -> bool {
        let mut free = self.free.clone();
        for j in k..self.order.len() {
            let s = (0..self.n)
                .filter(|&s| free[s] > 0)
                .min_by(|&a, &b| self.hc[a][j].total_cmp(&self.hc[b][j]));
            match s {
                Some(s) => {
                    free[s] -= 1;
                    sets.push(1 << s);
                }
                None => return false,
            }
        }
        true
    }
}

/// Solves layer `l` exactly (or until `deadline`, or after `node_limit` nodes), starting from the
/// incumbent `warm`.
pub fn solve_layer(
    p: &Prepared,
    l: usize,
    warm: Option<&LayerPlan>,
    deadline: Option<Instant>,
    node_limit: Option<u64>,
    stop: &StopFlag,
) -> LayerResult {
    let srv: Vec<usize> = (0..p.num_servers())
        .filter(|&s| p.servers[s].slots > 0)
        .collect();
    let n = srv.len();
    let full = (1usize << n) - 1;
    let mut inv_f = vec![0.0; full + 1];
    for u in 1..=full {
        let fl: f64 = (0..n)
            .filter(|&s| u & (1 << s) != 0)
            .map(|s| p.servers[srv[s]].flops)
            .sum();
        inv_f[u] = p.flops_per_act / fl;
    }
    let dem = &p.expert_demand[l];
    let mut order: Vec<usize> = (0..p.experts).collect();
    order.sort_by(|&a, &b| dem[b].total_cmp(&dem[a]).then(a.cmp(&b)));
    let d: Vec<f64> = order.iter().map(|&e| dem[e]).collect();
    let mut suffix = vec![0.0; d.len() + 1];
    for k in (0..d.len()).rev() {
        suffix[k] = suffix[k + 1] + d[k];
    }
    let hc: Vec<Vec<f64>> = srv
        .iter()
        .map(|&s| order.iter().map(|&e| p.hold_cost(l, s, e)).collect())
        .collect();
    let any_hold_cost = hc.iter().flatten().any(|&c| c != 0.0);
    let class = super::model::classes(n, |a, b| {
        let (sa, sb) = (&p.servers[srv[a]], &p.servers[srv[b]]);
        sa.flops == sb.flops && sa.slots == sb.slots && hc[a] == hc[b]
    });
    let total_slots: usize = srv.iter().map(|&s| p.servers[s].slots).sum();
    let mut by_speed: Vec<usize> = (0..n).collect();
    by_speed.sort_by(|&a, &b| p.servers[srv[b]].flops.total_cmp(&p.servers[srv[a]].flops));
    let warm_value = warm
        .filter(|w| greedy::layer_feasible(p, l, w))
        .map(|w| p.plan_layer_value(l, w).objective);
    let mut st = Search {
        n,
        srv: srv.clone(),
        inv_f,
        inside: vec![0.0; full + 1],
        held_max: vec![0.0; p.experts + 1],
        flops: srv.iter().map(|&s| p.servers[s].flops).collect(),
        by_speed,
        flops_per_act: p.flops_per_act,
        order: order.clone(),
        d,
        suffix,
        free: srv.iter().map(|&s| p.servers[s].slots).collect(),
        hist: vec![0; n],
        class,
        hc,
        any_hold_cost,
        w: p.load_weight(),
        cap: p.layer_cap,
        copies: p.max_replicas.min(total_slots),
        used: 0,
        hold_sum: 0.0,
        sets: vec![0; p.experts],
        best: warm_value.unwrap_or(f64::INFINITY),
        best_sets: None,
        nodes: 0,
        node_limit: node_limit.unwrap_or(u64::MAX),
        deadline,
        stop,
        aborted: false,
    };
    let root = st.bound(0);
    let open = if p.experts > total_slots || p.experts > p.max_replicas {
        f64::INFINITY
    } else {
        st.dfs(0)
    };
    let bound = if st.aborted {
        open.min(st.best).max(root.min(st.best))
    } else {
        st.best
    };
    let hold = st
        .best_sets
        .as_ref()
        .map(|sets| hold_matrix(p, &st.srv, &st.order, sets));
    LayerResult {
        hold,
        value: st.best,
        bound,
        complete: !st.aborted,
        nodes: st.nodes,
    }
}

/// What one run of a per-layer exact search reports to [`solve_layers`].
pub struct LayerRun {
    /// The best plan of the run (at least as good as its start).
    pub plan: LayerPlan,
    /// Proven lower bound on the layer objective.
    pub bound: f64,
    /// The search finished (the plan is optimal, or no feasible holding exists).
    pub complete: bool,
    pub nodes: u64,
    /// Routing LPs solved by the run.
    pub lps: u64,
}

/// The driver of the per-layer exact searches (`branch-and-bound`, `lagrangian-bnb`): layers in
/// parallel in two passes, every layer first with a fair share of the time left (threads / layers
/// not started yet), then the layers not finished share what is left, each from its best plan;
/// bounds of the two passes combined by max, plans by [`greedy::pick`]. Then the outcome: proven
/// infeasible when a finished layer has no feasible plan, optimal when every layer finished, else
/// the early termination (a node limit reads as `IterationLimit`); the bound is the sum of the
/// layers' bounds (each capped by its plan's value).
pub fn solve_layers(
    p: &Prepared,
    ctx: &Context<'_>,
    starts: Vec<LayerPlan>,
    run: impl Fn(usize, &LayerPlan, Option<Instant>) -> LayerRun + Sync,
) -> Outcome<super::MoeSolution> {
    let deadline = greedy::deadline_of(ctx);
    let stop = ctx.stop_flag();
    let mut res: Vec<LayerRun> = vec![];
    let mut todo: Vec<usize> = (0..p.layers).collect();
    for pass in 0..2 {
        let threads = rayon::current_num_threads().max(1) as f64;
        let started = std::sync::atomic::AtomicUsize::new(0);
        let n_todo = todo.len();
        let out: Vec<LayerRun> = todo
            .par_iter()
            .map(|&l| {
                let k = started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let dl = super::milp::fair_share(deadline, threads, n_todo - k);
                let start = if pass == 0 { &starts[l] } else { &res[l].plan };
                let r = run(l, start, dl);
                LayerRun {
                    plan: greedy::pick(p, l, start.clone(), r.plan),
                    ..r
                }
            })
            .collect();
        if pass == 0 {
            res = out;
        } else {
            for (&l, r) in todo.iter().zip(out) {
                let old = &res[l];
                res[l] = LayerRun {
                    bound: r.bound.max(old.bound),
                    nodes: r.nodes + old.nodes,
                    lps: r.lps + old.lps,
                    ..r
                };
            }
        }
        todo = (0..p.layers).filter(|&l| !res[l].complete).collect();
        if todo.is_empty() || stop.is_stopped() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    let nodes: u64 = res.iter().map(|r| r.nodes).sum();
    let lps: u64 = res.iter().map(|r| r.lps).sum();
    let feasible: Vec<bool> = res
        .iter()
        .enumerate()
        .map(|(l, r)| greedy::layer_feasible(p, l, &r.plan))
        .collect();
    if feasible.iter().any(|f| !f) {
        let proven = res.iter().zip(&feasible).any(|(r, &f)| !f && r.complete);
        let mut o = Outcome::none(if proven {
            Termination::Infeasible
        } else {
            ctx.early_termination()
        });
        o.nodes = nodes;
        return o;
    }
    let complete = res.iter().all(|r| r.complete);
    let bound: f64 = res
        .iter()
        .enumerate()
        .map(|(l, r)| r.bound.min(p.plan_layer_value(l, &r.plan).objective))
        .sum();
    let term = if complete {
        Termination::Optimal
    } else {
        match ctx.early_termination() {
            Termination::Completed if ctx.options.iteration_limit.is_some() => {
                Termination::IterationLimit
            }
            Termination::Completed => Termination::TimeLimit,
            t => t,
        }
    };
    let plans: Vec<LayerPlan> = res.into_iter().map(|r| r.plan).collect();
    let mut o = finish(p, &plans, term, Some(bound));
    o.nodes = nodes;
    o.iterations = lps;
    o
}

/// The `branch-and-bound` solver.
pub struct BranchAndBound;

impl Solver<MoePlacement> for BranchAndBound {
    fn name(&self) -> &'static str {
        "branch-and-bound"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "max_load: per-layer combinatorial branch and bound over expert holder sets with the Hall (max-flow) bound, no LP"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        applicable(p)
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        if !p.enough_slots() {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let stop = ctx.stop_flag();
        let warm = greedy::plans(p, greedy::deadline_of(ctx), stop.clone()).0;
        // `iteration_limit`: nodes per layer and pass
        let node_limit = ctx.options.iteration_limit;
        let mut o = solve_layers(p, ctx, warm, |l, start, dl| {
            let r = solve_layer(p, l, Some(start), dl, node_limit, &stop);
            let plan = match &r.hold {
                Some(h) => {
                    // water-filling, then the routing LP on the holdings (kept when better)
                    let filled = ShareState::new(p, l, h.clone()).plan(p);
                    greedy::polish(p, l, filled, None, stop.clone())
                }
                None => start.clone(),
            };
            LayerRun {
                plan,
                bound: r.bound,
                complete: r.complete,
                nodes: r.nodes,
                lps: 0,
            }
        });
        o.notes.push("incumbent started from greedy".into());
        Ok(o)
    }
}
