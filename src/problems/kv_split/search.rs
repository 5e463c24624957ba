//! `priced-search` (heuristic, latency objectives): a Lagrangian-guided construction and a local
//! search in the feasible space with O(1) move scoring.
//!
//! 1. Prices: 30 projected-subgradient steps on the server-memory multipliers `μ_s` of the
//!    Lagrangian subproblem ([`super::lagrangian::subproblem`], own-work form with step floors).
//! 2. Construction: users inserted one by one (targets first, then by decreasing weight), each taking
//!    the feasible candidate with the least priced increase of the true objective given the users
//!    already placed (`+ μ_s K` on the candidate's server KV).
//! 3. Descent: best-improvement passes over every user's candidates under the priced objective, then
//!    under the true one (`μ = 0`); a move is scored in O(1) (O(S) for `max_latency`) by [`Fast`]
//!    and must keep the plan feasible (server memory, every target on the touched servers).
//! 4. Memory swaps: a user's best move blocked only by a server's memory is paired with the move of
//!    one co-located user that frees enough memory at the least loss, applied when the pair
//!    improves the objective.
//!
//! 5. Regime moves on the best start's plan ([`Fast::regimes`]): per server, all its users
//!    re-inserted after one of them takes its lowest split (so the server holds all layers),
//!    unpriced first, then under the start's prices doubled on failure; kept when better (a
//!    server whose users all sit at high splits cannot reach a low-split regime one user at a
//!    time: the extra layers' weights do not fit until others free KV).
//!
//! Starts: the priced construction at `2μ` and `8μ` (prices of servers the construction fails on
//! are doubled until it succeeds); the best plan is kept. Under `max_latency` the descent scores
//! `max + 10⁻³ · mean` so that moves off the critical user are not plateaus. For the `admitted`
//! objective it falls back to [`super::heuristics::local_search`].

use super::cost::{Cand, Choice, Prepared};
use super::heuristics::{local_search, plan_of, user_lists};
use super::instance::Objective;
use super::lagrangian::subproblem;
use super::milp::Floors;
use super::{outcome_from_plan, KvSplit, KvSplitSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind};

/// No candidate picked yet.
const NONE: usize = usize::MAX;
/// Relative tolerance of the feasibility checks (tighter than `evaluate`'s 1e-9).
const TOL: f64 = 1e-10;

/// A regime move's re-insertion is descended only when within this relative margin of the plan.
const REGIME_SLACK: f64 = 0.05;

/// The two smallest keys of a group with their users.
#[derive(Debug, Clone, Copy)]
struct Two([(f64, usize); 2]);

impl Two {
    const EMPTY: Two = Two([(f64::INFINITY, NONE), (f64::INFINITY, NONE)]);
    fn push(&mut self, k: f64, u: usize) {
        if k < self.0[0].0 {
            self.0[1] = self.0[0];
            self.0[0] = (k, u);
        } else if k < self.0[1].0 {
            self.0[1] = (k, u);
        }
    }
    /// The smallest key of a user other than `u`.
    fn min_except(&self, u: usize) -> f64 {
        if self.0[0].1 == u {
            self.0[1].0
        } else {
            self.0[0].0
        }
    }
    fn holds(&self, u: usize) -> bool {
        self.0[0].1 == u || self.0[1].1 == u
    }
}

/// A plan with per-server aggregates for O(1) move scoring (latency objectives).
pub struct Fast<'a> {
    p: &'a Prepared,
    lists: &'a [Vec<Cand>],
    pub pick: Vec<usize>,
    l: usize,
    ns: usize,
    max_obj: bool,
    tie: f64,
    cnt: Vec<Vec<u32>>,
    minc: Vec<usize>,
    work: Vec<f64>,
    kv: Vec<f64>,
    wn: Vec<f64>,
    /// Members per group (servers, then local) and each user's index in its group.
    members: Vec<Vec<usize>>,
    pos: Vec<usize>,
    /// Per server: smallest `τ_u − lat_u` of its users with a target.
    slack: Vec<Two>,
    /// Per group: smallest `−lat_u` (the largest latencies; `max_latency` only).
    top: Vec<Two>,
    lat_w: f64,
    wsum: f64,
    /// Construction only: per server, the least KV bytes and work of the users not placed yet whose
    /// every candidate uses it, and the lowest split those users allow at most.
    res_kv: Vec<f64>,
    res_work: Vec<f64>,
    res_split: Vec<usize>,
    /// `max_latency` only: a lower bound on the user's latency under each candidate (`lat` + the
    /// step floor of [`Floors::step_lb`]); a move to a candidate whose bound exceeds the current
    /// score cannot improve it.
    own_lb: Vec<Vec<f64>>,
}

/// The effect of a move on one server.
#[derive(Debug, Clone, Copy)]
struct ServerAfter {
    s: usize,
    step: f64,
    wn: f64,
    /// Largest member latency without the step (`max_latency`), −∞ when empty.
    maxlat: f64,
    /// Memory beyond the capacity, bytes (≤ 0 when it fits).
    over: f64,
}

impl<'a> Fast<'a> {
    /// An empty plan (no user placed).
    pub fn empty(p: &'a Prepared, lists: &'a [Vec<Cand>]) -> Self {
        let l = p.num_layers();
        let ns = p.servers.len();
        Fast {
            p,
            lists,
            pick: vec![NONE; lists.len()],
            l,
            ns,
            max_obj: p.objective == Objective::MaxLatency,
            tie: 0.0,
            cnt: vec![vec![0; l + 1]; ns],
            minc: vec![l; ns],
            work: vec![0.0; ns],
            kv: vec![0.0; ns],
            wn: vec![0.0; ns],
            members: vec![vec![]; ns + 1],
            pos: vec![NONE; lists.len()],
            slack: vec![Two::EMPTY; ns],
            top: vec![Two::EMPTY; ns + 1],
            lat_w: 0.0,
            wsum: p.users.iter().map(|u| u.weight).sum(),
            res_kv: vec![0.0; ns],
            res_work: vec![0.0; ns],
            res_split: vec![l; ns],
            own_lb: if p.objective == Objective::MaxLatency {
                let floors = Floors::new(p, lists);
                lists
                    .iter()
                    .enumerate()
                    .map(|(u, li)| li.iter().map(|c| floors.latency_lb(p, u, c)).collect())
                    .collect()
            } else {
                vec![]
            },
        }
    }

    /// The server every candidate of `u` uses, if any.
    fn forced_server(&self, u: usize) -> Option<usize> {
        let s = self.lists[u].first()?.0.server;
        self.lists[u]
            .iter()
            .all(|c| c.0.split < self.l && c.0.server == s)
            .then_some(s)
    }

    /// Recomputes the construction reserves from the users not placed yet.
    fn reserve(&mut self) {
        self.res_kv.iter_mut().for_each(|x| *x = 0.0);
        self.res_work.iter_mut().for_each(|x| *x = 0.0);
        self.res_split.iter_mut().for_each(|x| *x = self.l);
        for u in 0..self.lists.len() {
            if self.pick[u] != NONE {
                continue;
            }
            if let Some(s) = self.forced_server(u) {
                let li = &self.lists[u];
                self.res_kv[s] += li.iter().map(|c| c.1.srv_mem).fold(f64::INFINITY, f64::min);
                self.res_work[s] += li.iter().map(|c| c.1.work).fold(f64::INFINITY, f64::min);
                let top = li.iter().map(|c| c.0.split).max().unwrap_or(self.l);
                self.res_split[s] = self.res_split[s].min(top);
            }
        }
    }

    pub fn new(p: &'a Prepared, lists: &'a [Vec<Cand>], pick: &[usize]) -> Self {
        let mut f = Self::empty(p, lists);
        for (u, &j) in pick.iter().enumerate() {
            f.set(u, j);
        }
        f
    }

    fn group(&self, u: usize, j: usize) -> usize {
        if self.lists[u][j].0.split < self.l {
            self.lists[u][j].0.server
        } else {
            self.ns
        }
    }

    fn step(&self, s: usize) -> f64 {
        self.p.server_step(s, self.minc[s], self.work[s])
    }

    fn target(&self, u: usize) -> f64 {
        self.p.users[u].target.unwrap_or(f64::INFINITY)
    }

    fn rebuild_two(&mut self, g: usize) {
        let mut top = Two::EMPTY;
        let mut slack = Two::EMPTY;
        for &v in &self.members[g] {
            let lat = self.lists[v][self.pick[v]].1.lat;
            top.push(-lat, v);
            if g < self.ns && self.p.users[v].target.is_some() {
                slack.push(self.target(v) - lat, v);
            }
        }
        self.top[g] = top;
        if g < self.ns {
            self.slack[g] = slack;
        }
    }

    fn remove(&mut self, u: usize) {
        let j = self.pick[u];
        if j == NONE {
            return;
        }
        let (ch, cc) = self.lists[u][j];
        let w = self.p.users[u].weight;
        self.lat_w -= w * cc.lat;
        let g = self.group(u, j);
        if g < self.ns {
            let s = g;
            self.cnt[s][ch.split] -= 1;
            if ch.split == self.minc[s] && self.cnt[s][ch.split] == 0 {
                self.minc[s] = (ch.split..self.l)
                    .find(|&c| self.cnt[s][c] > 0)
                    .unwrap_or(self.l);
            }
            self.work[s] -= cc.work;
            self.kv[s] -= cc.srv_mem;
            self.wn[s] -= w;
        }
        let i = self.pos[u];
        self.members[g].swap_remove(i);
        if i < self.members[g].len() {
            let v = self.members[g][i];
            self.pos[v] = i;
        }
        self.pos[u] = NONE;
        self.pick[u] = NONE;
        if self.top[g].holds(u) || (g < self.ns && self.slack[g].holds(u)) {
            self.rebuild_two(g);
        }
    }

    /// Sets user `u` to candidate `j` (`NONE` removes it).
    pub fn set(&mut self, u: usize, j: usize) {
        if self.pick[u] == j {
            return;
        }
        self.remove(u);
        if j == NONE {
            return;
        }
        let (ch, cc) = self.lists[u][j];
        let w = self.p.users[u].weight;
        self.lat_w += w * cc.lat;
        let g = self.group(u, j);
        if g < self.ns {
            let s = g;
            self.cnt[s][ch.split] += 1;
            self.minc[s] = self.minc[s].min(ch.split);
            self.work[s] += cc.work;
            self.kv[s] += cc.srv_mem;
            self.wn[s] += w;
            if self.p.users[u].target.is_some() {
                let k = self.target(u) - cc.lat;
                self.slack[s].push(k, u);
            }
        }
        self.top[g].push(-cc.lat, u);
        self.pos[u] = self.members[g].len();
        self.members[g].push(u);
        self.pick[u] = j;
    }

    /// The objective of the current plan (users not placed count nothing).
    pub fn objective(&self) -> f64 {
        if self.max_obj {
            let mut m: f64 = 0.0;
            for g in 0..=self.ns {
                if !self.members[g].is_empty() {
                    let st = if g < self.ns { self.step(g) } else { 0.0 };
                    m = m.max(-self.top[g].0[0].0 + st);
                }
            }
            m + self.tie * self.mean()
        } else {
            self.mean()
        }
    }

    /// The weighted mean latency of the placed users (over the total weight).
    fn mean(&self) -> f64 {
        (self.lat_w + (0..self.ns).map(|s| self.wn[s] * self.step(s)).sum::<f64>()) / self.wsum
    }

    /// Under `max_latency`, adds `tie ×` the mean latency to every score so that moves that lower
    /// the other users' latencies without changing the maximum are taken (0 by default).
    pub fn set_tie_break(&mut self, tie: f64) {
        self.tie = tie;
    }

    /// Server `s` after user `u` leaves candidate `j0` (or `NONE`) and takes `j1`.
    #[inline]
    fn server_after(
        &self,
        u: usize,
        s: usize,
        j0: usize,
        j1: usize,
        check_mem: bool,
    ) -> Option<ServerAfter> {
        let sv = &self.p.servers[s];
        let w = self.p.users[u].weight;
        let (mut wn, mut work, mut kv) = (self.wn[s], self.work[s], self.kv[s]);
        let mut minc = self.minc[s];
        let mut n = self.members[s].len();
        let mut leaving = false;
        if j0 != NONE && self.group(u, j0) == s {
            let (ch, cc) = &self.lists[u][j0];
            wn -= w;
            work -= cc.work;
            kv -= cc.srv_mem;
            n -= 1;
            leaving = true;
            if ch.split == minc && self.cnt[s][minc] == 1 {
                minc = (minc + 1..self.l)
                    .find(|&c| self.cnt[s][c] > 0)
                    .unwrap_or(self.l);
            }
        }
        let mut own_lat = f64::NEG_INFINITY;
        let mut own_slack = f64::INFINITY;
        if self.group(u, j1) == s {
            let (ch, cc) = &self.lists[u][j1];
            wn += w;
            work += cc.work;
            kv += cc.srv_mem;
            n += 1;
            minc = minc.min(ch.split);
            own_lat = cc.lat;
            own_slack = self.target(u) - cc.lat;
        }
        let held = minc.min(self.res_split[s]);
        let over = sv.weights[held] + kv + self.res_kv[s] - sv.memory_bytes * (1.0 + TOL);
        if check_mem && over > 0.0 {
            return None;
        }
        let step = if n == 0 {
            0.0
        } else {
            self.p.server_step(s, minc, work)
        };
        let reserved = self.p.server_step(s, held, work) + self.res_work[s];
        let others = if leaving {
            self.slack[s].min_except(u)
        } else {
            self.slack[s].0[0].0
        };
        let slack = others.min(own_slack);
        if step.max(reserved) > slack + TOL * slack.abs().max(1e-9) {
            return None;
        }
        let maxlat = if self.max_obj {
            let o = if leaving {
                -self.top[s].min_except(u)
            } else {
                -self.top[s].0[0].0
            };
            o.max(own_lat)
        } else {
            f64::NEG_INFINITY
        };
        Some(ServerAfter {
            s,
            step,
            wn,
            maxlat,
            over,
        })
    }

    /// The objective after user `u` takes candidate `j`, `None` when the plan would violate a
    /// server's memory or a target.
    pub fn eval(&self, u: usize, j: usize) -> Option<f64> {
        self.eval_with(u, j, true).map(|x| x.0)
    }

    /// [`Fast::eval`], optionally ignoring server memory: (objective, largest memory excess).
    fn eval_with(&self, u: usize, j: usize, check_mem: bool) -> Option<(f64, f64)> {
        let j0 = self.pick[u];
        if j == j0 {
            return Some((self.objective(), 0.0));
        }
        let g0 = if j0 == NONE { NONE } else { self.group(u, j0) };
        let g1 = self.group(u, j);
        let cc1 = &self.lists[u][j].1;
        if g1 == self.ns && cc1.lat > self.target(u) * (1.0 + TOL) {
            return None;
        }
        let mut after = [None, None];
        if g1 < self.ns {
            after[0] = Some(self.server_after(u, g1, j0, j, check_mem)?);
        }
        if g0 < self.ns && g0 != g1 {
            after[1] = Some(self.server_after(u, g0, j0, j, check_mem)?);
        }
        let over = after.iter().flatten().map(|a| a.over).fold(0.0, f64::max);
        let find = |s: usize| after.iter().flatten().find(|a| a.s == s);
        if self.max_obj {
            let mut m: f64 = 0.0;
            for s in 0..self.ns {
                match find(s) {
                    Some(a) => {
                        if a.maxlat > f64::NEG_INFINITY {
                            m = m.max(a.maxlat + a.step);
                        }
                    }
                    None => {
                        if !self.members[s].is_empty() {
                            m = m.max(-self.top[s].0[0].0 + self.step(s));
                        }
                    }
                }
            }
            // local group
            let g = self.ns;
            let mut lm = if g0 == g {
                -self.top[g].min_except(u)
            } else {
                -self.top[g].0[0].0
            };
            if g1 == g {
                lm = lm.max(cc1.lat);
            }
            if lm.is_finite() {
                m = m.max(lm);
            }
            if self.tie > 0.0 {
                m += self.tie * self.mean_after(u, j, &find);
            }
            Some((m, over))
        } else {
            Some((self.mean_after(u, j, &find), over))
        }
    }

    /// The weighted mean latency after `u` takes `j`, given the touched servers' states.
    #[inline]
    fn mean_after<'b>(
        &self,
        u: usize,
        j: usize,
        find: &impl Fn(usize) -> Option<&'b ServerAfter>,
    ) -> f64 {
        let w = self.p.users[u].weight;
        let j0 = self.pick[u];
        let mut num = self.lat_w + w * self.lists[u][j].1.lat;
        if j0 != NONE {
            num -= w * self.lists[u][j0].1.lat;
        }
        for s in 0..self.ns {
            num += match find(s) {
                Some(a) => a.wn * a.step,
                None => self.wn[s] * self.step(s),
            };
        }
        num / self.wsum
    }

    /// Priced change of the server KV when `u` moves to `j`.
    fn price(&self, u: usize, j: usize, mu: &[f64]) -> f64 {
        let term = |j: usize| {
            if j == NONE {
                return 0.0;
            }
            let g = self.group(u, j);
            if g < self.ns {
                mu[g] * self.lists[u][j].1.srv_mem
            } else {
                0.0
            }
        };
        term(j) - term(self.pick[u])
    }

    /// The best feasible candidate of `u` under the priced objective (value, candidate); with
    /// `skip_above`, candidates whose own latency bound plus price exceeds it are not scored.
    fn best_move(&self, u: usize, mu: &[f64], skip_above: f64) -> Option<(f64, usize)> {
        let mut best: Option<(f64, usize)> = None;
        for j in 0..self.lists[u].len() {
            if !self.own_lb.is_empty() && self.own_lb[u][j] + self.price(u, j, mu) > skip_above {
                continue;
            }
            if let Some(v) = self.eval(u, j) {
                let v = v + self.price(u, j, mu);
                if best.is_none_or(|(b, _)| v < b) {
                    best = Some((v, j));
                }
            }
        }
        best
    }

    /// Best-improvement passes under the priced objective; returns the number of moves.
    pub fn descent(&mut self, mu: &[f64], max_passes: usize, ctx: &Context<'_>) -> u64 {
        let mut moves = 0;
        for _ in 0..max_passes {
            let mut improved = false;
            for u in 0..self.lists.len() {
                if ctx.should_stop() {
                    return moves;
                }
                let cur = self.objective();
                // max objective: the score after a move is at least the moving user's latency,
                // so a candidate whose own bound plus price exceeds the score cannot improve it
                let skip = if self.max_obj { cur } else { f64::INFINITY };
                if let Some((v, j)) = self.best_move(u, mu, skip) {
                    if j != self.pick[u] && v < cur - 1e-12 * cur.abs().max(1e-9) {
                        self.set(u, j);
                        moves += 1;
                        improved = true;
                    }
                }
            }
            if !improved {
                break;
            }
        }
        moves
    }

    /// Memory swaps (pairs of moves on one server): "buyers" are moves better than the current plan
    /// but blocked by a server's memory, "sellers" feasible moves of that server's users that free
    /// server KV, ranked by objective loss per byte freed. Each buyer (largest gain first) tries the
    /// cheapest sellers freeing enough memory; a pair is applied when it improves the objective.
    /// Returns the number of pairs applied.
    pub fn swaps(&mut self, max_buyers: usize, ctx: &Context<'_>) -> u64 {
        let mut applied = 0;
        let cur = self.objective();
        let tol = 1e-12 * cur.abs().max(1e-9);
        let mut buyers: Vec<(f64, f64, usize, usize)> = vec![];
        let mut sellers: Vec<Vec<(f64, f64, usize, usize)>> = vec![vec![]; self.ns];
        for u in 0..self.lists.len() {
            let j0 = self.pick[u];
            let kv0 = self.lists[u][j0].1.srv_mem;
            let g0 = self.group(u, j0);
            for j in 0..self.lists[u].len() {
                if j == j0 {
                    continue;
                }
                let g = self.group(u, j);
                let Some((v, over)) = self.eval_with(u, j, false) else {
                    continue;
                };
                if over > 0.0 {
                    if g < self.ns && v < cur + 1e-3 * cur.abs() {
                        buyers.push((cur - v, over, u, j));
                    }
                } else if g0 < self.ns && (g != g0 || self.lists[u][j].1.srv_mem < kv0) {
                    let freed = kv0
                        - if g == g0 {
                            self.lists[u][j].1.srv_mem
                        } else {
                            0.0
                        };
                    if freed > 0.0 {
                        sellers[g0].push(((v - cur).max(0.0) / freed, freed, u, j));
                    }
                }
            }
        }
        buyers.sort_by(|a, b| b.0.total_cmp(&a.0));
        for s in &mut sellers {
            s.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let mut touched = vec![false; self.lists.len()];
        for &(_, need, u, j) in buyers.iter().take(max_buyers) {
            if ctx.should_stop() {
                break;
            }
            if touched[u] {
                continue;
            }
            let s = self.group(u, j);
            let mut tries = 0;
            for &(_, freed, v, jv) in &sellers[s] {
                if tries >= 12 {
                    break;
                }
                if v == u || touched[v] || freed < need * 0.999 {
                    continue;
                }
                tries += 1;
                let now = self.objective();
                let jv0 = self.pick[v];
                if self.eval(v, jv).is_none() {
                    continue;
                }
                self.set(v, jv);
                match self.eval(u, j) {
                    Some(val) if val < now - tol => {
                        self.set(u, j);
                        touched[u] = true;
                        touched[v] = true;
                        applied += 1;
                        break;
                    }
                    _ => self.set(v, jv0),
                }
            }
        }
        applied
    }

    /// Regime moves (many users of one server at once): a server whose users all sit at high
    /// splits holds few layers, and no single user can move to a low split (the layers' weights do
    /// not fit until others free KV). For each used server: empty it, put the user with the largest
    /// weighted latency gain at its fastest low-split candidate (the lowest split it has on that
    /// server), re-insert the others (heaviest first) by best feasible move, then descend and swap;
    /// kept when the plan improves, undone otherwise. Returns the number of moves kept.
    pub fn regimes(&mut self, mu: &[f64], ctx: &Context<'_>) -> u64 {
        let mut kept = 0;
        for s in 0..self.ns {
            if self.members[s].is_empty() {
                continue;
            }
            // re-insertion under memory prices, raised on the server when a user finds no room
            // unpriced first, then the start's prices, doubled on s after each failure
            let mut prices = vec![0.0; self.ns];
            for k in 0..4 {
                if k == 1 {
                    prices = mu.to_vec();
                }
                if ctx.should_stop() {
                    return kept;
                }
                match self.regime(s, &prices, ctx) {
                    Some(Some(k)) => {
                        kept += k;
                        break;
                    }
                    Some(None) => break,
                    None if k > 0 => prices[s] = (2.0 * prices[s]).max(1e-12),
                    None => {}
                }
            }
        }
        kept
    }

    /// One regime move on server `s` (see [`Fast::regimes`]) with re-insertion prices `mu`:
    /// `Some(Some(moves))` kept, `Some(None)` no improvement, `None` a user found no room.
    fn regime(&mut self, s: usize, mu: &[f64], ctx: &Context<'_>) -> Option<Option<u64>> {
        let zero = vec![0.0; self.ns];
        let before = self.objective();
        let old = self.pick.clone();
        let users: Vec<usize> = self.members[s].clone();
        // the leader: largest weighted gain of its fastest candidate at its lowest split on s
        let mut lead: Option<(f64, usize, usize)> = None;
        for &u in &users {
            let on_s = |c: &Cand| c.0.split < self.l && c.0.server == s;
            let Some(low) = self.lists[u]
                .iter()
                .filter(|c| on_s(c))
                .map(|c| c.0.split)
                .min()
            else {
                continue;
            };
            if low >= self.minc[s] {
                continue;
            }
            let Some(j) = (0..self.lists[u].len())
                .filter(|&j| on_s(&self.lists[u][j]) && self.lists[u][j].0.split == low)
                .min_by(|&a, &b| {
                    self.lists[u][a]
                        .1
                        .lat
                        .partial_cmp(&self.lists[u][b].1.lat)
                        .unwrap()
                })
            else {
                continue;
            };
            let gain =
                self.p.users[u].weight * (self.lists[u][old[u]].1.lat - self.lists[u][j].1.lat);
            if lead.is_none_or(|(g, _, _)| gain > g) {
                lead = Some((gain, u, j));
            }
        }
        let (_, lu, lj) = lead?;
        for &u in &users {
            self.set(u, NONE);
        }
        // reserve room for the users forced onto a server, as in the construction
        self.reserve();
        self.set(lu, lj);
        self.reserve();
        let mut order: Vec<usize> = users.iter().copied().filter(|&u| u != lu).collect();
        order.sort_by(|&a, &b| {
            self.p.users[b]
                .weight
                .partial_cmp(&self.p.users[a].weight)
                .unwrap()
        });
        let mut ok = true;
        for u in order {
            match self.best_move(u, mu, f64::INFINITY) {
                Some((_, j)) => {
                    self.set(u, j);
                    if self.forced_server(u).is_some() {
                        self.reserve();
                    }
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        let mut moves = 0;
        // a re-insertion far above the plan is not descended (the descents are the cost)
        let promising = ok && self.objective() < before * (1.0 + REGIME_SLACK);
        if promising {
            self.reserve();
            moves += self.descent(&zero, 20, ctx) + self.swap_rounds(3, ctx);
        }
        if promising && self.objective() < before - 1e-12 * before.abs().max(1e-9) {
            return Some(Some(moves + users.len() as u64));
        }
        // undo: take every changed user out, then put each back
        for u in 0..old.len() {
            if self.pick[u] != old[u] {
                self.set(u, NONE);
            }
        }
        for u in 0..old.len() {
            if self.pick[u] == NONE {
                self.set(u, old[u]);
            }
        }
        self.reserve();
        if ok {
            Some(None)
        } else {
            None
        }
    }

    /// Up to `rounds` rounds of [`Fast::swaps`], each followed by an unpriced descent; moves made.
    pub fn swap_rounds(&mut self, rounds: usize, ctx: &Context<'_>) -> u64 {
        let zero = vec![0.0; self.ns];
        let mut moves = 0;
        for _ in 0..rounds {
            let k = self.swaps(200, ctx);
            if k == 0 {
                break;
            }
            moves += k + self.descent(&zero, 20, ctx);
        }
        moves
    }

    pub fn plan(&self) -> Vec<Choice> {
        plan_of(self.lists, &self.pick)
    }

    pub fn complete(&self) -> bool {
        self.pick.iter().all(|&j| j != NONE)
    }
}

/// Memory prices from `iters` projected-subgradient steps on the Lagrangian subproblem
/// ([`super::lagrangian::subproblem`], own-work form) with a Polyak step toward a value 30 % above
/// the relaxation's.
pub fn memory_prices(p: &Prepared, lists: &[Vec<Cand>], iters: usize) -> Vec<f64> {
    let omega = super::lagrangian::initial_omega(p);
    let mut mu = vec![0.0; p.servers.len()];
    let mut best = f64::NEG_INFINITY;
    let mut alpha = 1.0;
    let floors = Floors::new(p, lists);
    for _ in 0..iters {
        let sub = subproblem(p, lists, &floors, &omega, &mu, 0.0, None);
        if sub.value > best {
            best = sub.value;
        } else {
            alpha *= 0.7;
        }
        let target = sub.value.abs() * 1.3;
        if !super::lagrangian::subgradient_step(p, &sub, &mut mu, alpha, target) {
            break;
        }
    }
    mu
}

/// Greedy insertion: users placed one at a time (forced users first, then those with targets, heavier
/// first), each taking its feasible candidate of least priced objective. `Err(servers)` names the
/// servers of the first user left without a feasible candidate.
pub fn construct<'a>(
    p: &'a Prepared,
    lists: &'a [Vec<Cand>],
    mu: &[f64],
) -> std::result::Result<Fast<'a>, Vec<usize>> {
    let mut st = Fast::empty(p, lists);
    let mut order: Vec<usize> = (0..lists.len()).collect();
    let key = |u: usize| {
        (
            st.forced_server(u).is_none(),
            p.users[u].target.is_none(),
            -p.users[u].weight,
        )
    };
    order.sort_by(|&a, &b| key(a).partial_cmp(&key(b)).unwrap());
    st.reserve();
    for u in order {
        let Some((_, j)) = st.best_move(u, mu, f64::INFINITY) else {
            let mut servers: Vec<usize> = lists[u]
                .iter()
                .filter(|c| c.0.split < st.l)
                .map(|c| c.0.server)
                .collect();
            servers.dedup();
            return Err(servers);
        };
        st.set(u, j);
        if st.forced_server(u).is_some() {
            st.reserve();
        }
    }
    Ok(st)
}

/// [`construct`] with the prices of the servers it fails on raised until it succeeds (10 tries).
pub fn construct_adaptive<'a>(
    p: &'a Prepared,
    lists: &'a [Vec<Cand>],
    mu: &mut [f64],
    base: &[f64],
) -> Option<Fast<'a>> {
    for _ in 0..10 {
        match construct(p, lists, mu) {
            Ok(st) => return Some(st),
            Err(servers) => {
                for s in servers {
                    mu[s] = (2.0 * mu[s]).max(base[s]);
                }
            }
        }
    }
    None
}

/// The priced search (latency objectives); the best plan found and the number of moves.
pub fn priced_search(p: &Prepared, lists: &[Vec<Cand>], ctx: &Context<'_>) -> (Vec<Choice>, u64) {
    // the subgradient's prices are too low after 30 steps; ×2 and ×8 were the best pair of starts
    // on the `large` instances (within 0.6 % of six starts)
    priced_search_from(p, lists, ctx, &[2.0, 8.0])
}

/// [`priced_search`] from the given price multipliers (one start each).
pub fn priced_search_from(
    p: &Prepared,
    lists: &[Vec<Cand>],
    ctx: &Context<'_>,
    starts: &[f64],
) -> (Vec<Choice>, u64) {
    let mu = memory_prices(p, lists, 30);
    let ns = p.servers.len();
    // a price at which a user's whole cost share buys about a fiftieth of a server
    let share: f64 = lists
        .iter()
        .enumerate()
        .map(|(u, li)| li.iter().map(|c| c.1.lat).fold(f64::INFINITY, f64::min) * p.users[u].weight)
        .sum::<f64>()
        / p.users.iter().map(|u| u.weight).sum::<f64>()
        / lists.len() as f64;
    let base: Vec<f64> = p
        .servers
        .iter()
        .map(|s| 0.05 * share * 50.0 / s.memory_bytes)
        .collect();
    let mut best: Option<(f64, Vec<usize>, Vec<f64>)> = None;
    let mut moves = 0;
    let zero = vec![0.0; ns];
    for &k in starts {
        if ctx.should_stop() && best.is_some() {
            break;
        }
        let mut m: Vec<f64> = mu.iter().map(|x| x * k).collect();
        let Some(mut st) = construct_adaptive(p, lists, &mut m, &base) else {
            continue;
        };
        st.set_tie_break(1e-3);
        moves += st.descent(&m, 5, ctx);
        moves += st.descent(&zero, 20, ctx);
        moves += st.swap_rounds(5, ctx);
        moves += st.descent(&zero, 20, ctx);
        st.set_tie_break(0.0);
        let v = st.objective();
        if best.as_ref().is_none_or(|b| v < b.0) {
            best = Some((v, st.pick.clone(), m));
        }
    }
    // regime moves on the best start's plan
    if let Some((v, pick, m)) = &mut best {
        let mut st = Fast::new(p, lists, pick);
        if p.objective == Objective::MaxLatency {
            st.set_tie_break(1e-3);
        }
        moves += st.regimes(m, ctx);
        st.set_tie_break(0.0);
        if st.objective() < *v {
            *pick = st.pick.clone();
        }
    }
    match best {
        Some((_, pick, _)) => (plan_of(lists, &pick), moves),
        None => {
            let (st, m) = local_search(p, lists, ctx);
            (st.plan(), moves + m)
        }
    }
}

/// The `priced-search` solver.
pub struct PricedSearch;

impl Solver<KvSplit> for PricedSearch {
    fn name(&self) -> &'static str {
        "priced-search"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "memory prices from a short subgradient run, priced greedy insertion, feasible descent with O(1) moves and memory swaps"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<KvSplitSolution>> {
        if let Some(o) = super::no_candidates(p) {
            return Ok(o);
        }
        let lists = user_lists(p);
        let (plan, moves) = if p.uses_admission() {
            let (st, m) = local_search(p, &lists, ctx);
            (st.plan(), m)
        } else {
            priced_search(p, &lists, ctx)
        };
        Ok(outcome_from_plan(p, &plan, ctx, moves))
    }
}
