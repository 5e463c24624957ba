//! Heuristics: `greedy` (latency saved per server byte) and `local-search` (greedy, then best-response
//! passes over every user's candidates, from several starts), on an incremental plan state shared with
//! the Lagrangian repair and the baselines.

use super::cost::{Cand, Choice, Prepared};
use super::instance::Objective;
use super::{outcome_from_plan, KvSplit};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind};

/// Penalty per unit of relative violation in the search score.
const PENALTY: f64 = 1e4;

/// A plan over per-user candidate lists with incremental per-server aggregates: scoring costs
/// O(S·L + users with targets), plus the members of the two touched groups for `max_latency`.
pub struct State<'a> {
    pub p: &'a Prepared,
    pub lists: &'a [Vec<Cand>],
    pub pick: Vec<usize>,
    cnt: Vec<Vec<u32>>,
    work: Vec<f64>,
    kv: Vec<f64>,
    /// Weight of the admitted users on each server.
    wn: Vec<f64>,
    /// Σ w·lat over admitted users, and their total weight.
    lat_w: f64,
    adm_w: f64,
    /// Members per group (servers, then "local") and their largest `lat` (max objective only).
    members: Vec<Vec<usize>>,
    maxlat: Vec<f64>,
    targets: Vec<usize>,
    wsum: f64,
}

impl<'a> State<'a> {
    pub fn new(p: &'a Prepared, lists: &'a [Vec<Cand>], pick: Vec<usize>) -> Self {
        let l = p.num_layers();
        let ns = p.servers.len();
        let mut st = State {
            p,
            lists,
            pick: vec![usize::MAX; lists.len()],
            cnt: vec![vec![0; l + 1]; ns],
            work: vec![0.0; ns],
            kv: vec![0.0; ns],
            wn: vec![0.0; ns],
            lat_w: 0.0,
            adm_w: 0.0,
            members: vec![vec![]; ns + 1],
            maxlat: vec![0.0; ns + 1],
            targets: (0..p.users.len())
                .filter(|&u| p.users[u].target.is_some())
                .collect(),
            wsum: p.users.iter().map(|u| u.weight).sum(),
        };
        for (u, j) in pick.into_iter().enumerate() {
            st.set(u, j);
        }
        st
    }

    /// The group of a candidate: its server, `ns` for local, `None` when rejected.
    fn group(&self, u: usize, j: usize) -> Option<usize> {
        let ch = &self.lists[u][j].0;
        if !ch.admitted {
            None
        } else if ch.split < self.p.num_layers() {
            Some(ch.server)
        } else {
            Some(self.p.servers.len())
        }
    }

    fn apply(&mut self, u: usize, j: usize, sign: f64) {
        let (ch, cc) = &self.lists[u][j];
        let w = self.p.users[u].weight;
        if ch.admitted {
            self.lat_w += sign * w * cc.lat;
            self.adm_w += sign * w;
        }
        if ch.admitted && ch.split < self.p.num_layers() {
            let s = ch.server;
            if sign > 0.0 {
                self.cnt[s][ch.split] += 1;
            } else {
                self.cnt[s][ch.split] -= 1;
            }
            self.work[s] += sign * cc.work;
            self.kv[s] += sign * cc.srv_mem;
            self.wn[s] += sign * w;
        }
        if self.p.objective == Objective::MaxLatency {
            if let Some(g) = self.group(u, j) {
                if sign > 0.0 {
                    self.members[g].push(u);
                } else if let Some(i) = self.members[g].iter().position(|&x| x == u) {
                    self.members[g].swap_remove(i);
                }
                self.maxlat[g] = self.members[g]
                    .iter()
                    .map(|&v| {
                        let jv = if v == u && sign > 0.0 {
                            j
                        } else {
                            self.pick[v]
                        };
                        self.lists[v][jv].1.lat
                    })
                    .fold(0.0, f64::max);
            }
        }
    }

    /// Sets user `u` to candidate `j`.
    pub fn set(&mut self, u: usize, j: usize) {
        if self.pick[u] == j {
            return;
        }
        if self.pick[u] != usize::MAX {
            self.apply(u, self.pick[u], -1.0);
        }
        self.apply(u, j, 1.0);
        self.pick[u] = j;
    }

    fn min_split(&self, s: usize) -> usize {
        let l = self.p.num_layers();
        self.cnt[s].iter().position(|&n| n > 0).unwrap_or(l)
    }

    /// Server step times.
    pub fn steps(&self) -> Vec<f64> {
        (0..self.p.servers.len())
            .map(|s| self.p.server_step(s, self.min_split(s), self.work[s]))
            .collect()
    }

    /// (objective in minimisation form, total relative violation).
    pub fn value(&self) -> (f64, f64) {
        let p = self.p;
        let l = p.num_layers();
        let ns = p.servers.len();
        let mut viol = 0.0;
        let mut steps = vec![0.0; ns];
        for (s, sv) in p.servers.iter().enumerate() {
            let ms = self.min_split(s);
            steps[s] = p.server_step(s, ms, self.work[s]);
            let m = sv.weights[ms] + self.kv[s];
            viol += (m / sv.memory_bytes - 1.0).max(0.0);
        }
        for &u in &self.targets {
            let (ch, cc) = &self.lists[u][self.pick[u]];
            if !ch.admitted {
                continue;
            }
            let t = cc.lat + if ch.split < l { steps[ch.server] } else { 0.0 };
            let tg = p.users[u].target.unwrap_or(f64::INFINITY);
            viol += (t / tg - 1.0).max(0.0);
        }
        let obj = match p.objective {
            Objective::MeanLatency => {
                (self.lat_w + (0..ns).map(|s| self.wn[s] * steps[s]).sum::<f64>()) / self.wsum
            }
            Objective::MaxLatency => (0..=ns)
                .filter(|&g| !self.members[g].is_empty())
                .map(|g| self.maxlat[g] + if g < ns { steps[g] } else { 0.0 })
                .fold(0.0, f64::max),
            Objective::Admitted => -self.adm_w,
        };
        (obj, viol)
    }

    /// Penalised score (lower is better).
    pub fn score(&self) -> f64 {
        let (o, v) = self.value();
        o + PENALTY * v * (1.0 + o.abs())
    }

    pub fn feasible(&self) -> bool {
        self.value().1 <= 1e-12
    }

    pub fn plan(&self) -> Vec<Choice> {
        plan_of(self.lists, &self.pick)
    }

    /// Best-response passes: each user in turn takes its best candidate given the others. Returns the
    /// number of moves.
    pub fn best_response(&mut self, ctx: &Context<'_>, max_passes: usize) -> u64 {
        let mut moves = 0;
        let mut cur = self.score();
        for _ in 0..max_passes {
            let mut improved = false;
            for u in 0..self.lists.len() {
                if ctx.should_stop() {
                    return moves;
                }
                let orig = self.pick[u];
                let (mut best, mut bj) = (cur, orig);
                for j in 0..self.lists[u].len() {
                    if j == orig {
                        continue;
                    }
                    self.set(u, j);
                    let sc = self.score();
                    if sc < best - 1e-12 * best.abs().max(1e-9) {
                        best = sc;
                        bj = j;
                    }
                }
                self.set(u, bj);
                if bj != orig {
                    moves += 1;
                    improved = true;
                    cur = best;
                }
            }
            if !improved {
                break;
            }
        }
        moves
    }
}

/// The candidate of each user using the least server memory (weights it needs + its KV), ties by
/// latency; rejection first under the admission objective.
pub fn frugal_start(p: &Prepared, lists: &[Vec<Cand>]) -> Vec<usize> {
    lists
        .iter()
        .map(|cands| {
            let key = |c: &Cand| {
                if !c.0.admitted {
                    return (-1.0, 0.0);
                }
                let need = if c.0.split < p.num_layers() {
                    p.servers[c.0.server].weights[c.0.split] + c.1.srv_mem
                } else {
                    0.0
                };
                (need, c.1.lat)
            };
            (0..cands.len())
                .min_by(|&a, &b| key(&cands[a]).partial_cmp(&key(&cands[b])).unwrap())
                .unwrap_or(0)
        })
        .collect()
}

/// Greedy by latency saved per server byte: from [`frugal_start`], upgrades sorted by
/// `weight · latency saved / extra server bytes` (admission: `weight / bytes`) are applied in that
/// order whenever they improve the penalised score; repeated while something changes (3 sweeps max).
pub fn greedy<'a>(p: &'a Prepared, lists: &'a [Vec<Cand>], ctx: &Context<'_>) -> State<'a> {
    let mut st = State::new(p, lists, frugal_start(p, lists));
    let l = p.num_layers();
    let bytes = |c: &Cand| {
        if c.0.admitted && c.0.split < l {
            p.servers[c.0.server].weights[c.0.split] / 8.0 + c.1.srv_mem
        } else {
            0.0
        }
    };
    for _ in 0..3 {
        let mut ups: Vec<(f64, usize, usize)> = vec![];
        for (u, list) in lists.iter().enumerate() {
            let cur = &list[st.pick[u]];
            for (j, c) in list.iter().enumerate() {
                if j == st.pick[u] || !c.0.admitted {
                    continue;
                }
                let gain = if p.objective == Objective::Admitted {
                    if cur.0.admitted {
                        continue;
                    }
                    p.users[u].weight
                } else {
                    p.users[u].weight * (cur.1.lat + cur.1.work - c.1.lat - c.1.work)
                };
                if gain <= 0.0 {
                    continue;
                }
                let extra = (bytes(c) - bytes(cur)).max(1.0);
                ups.push((gain / extra, u, j));
            }
        }
        ups.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
        let mut cur = st.score();
        let mut changed = false;
        for (_, u, j) in ups {
            if ctx.should_stop() {
                return st;
            }
            let old = st.pick[u];
            st.set(u, j);
            let sc = st.score();
            if sc < cur - 1e-12 * cur.abs().max(1e-9) {
                cur = sc;
                changed = true;
            } else {
                st.set(u, old);
            }
        }
        if !changed {
            break;
        }
    }
    st
}

/// Each user's fastest candidate (ignoring the server step).
pub fn fastest_start(lists: &[Vec<Cand>]) -> Vec<usize> {
    lists
        .iter()
        .map(|cands| {
            (0..cands.len())
                .filter(|&j| cands[j].0.admitted)
                .min_by(|&a, &b| {
                    let f = |j: usize| cands[j].1.lat + cands[j].1.work;
                    f(a).partial_cmp(&f(b)).unwrap()
                })
                .unwrap_or(0)
        })
        .collect()
}

/// Each user's candidate with the least own lower bound (latency + its layers' shared time + work).
pub fn own_bound_start(p: &Prepared, lists: &[Vec<Cand>]) -> Vec<usize> {
    let l = p.num_layers();
    lists
        .iter()
        .map(|cands| {
            let f = |c: &Cand| {
                c.1.lat
                    + if c.0.split < l {
                        p.step_lower_bound(c.0.server, c.0.split, &c.1)
                    } else {
                        0.0
                    }
            };
            (0..cands.len())
                .filter(|&j| cands[j].0.admitted)
                .min_by(|&a, &b| f(&cands[a]).partial_cmp(&f(&cands[b])).unwrap())
                .unwrap_or(0)
        })
        .collect()
}

/// The local search: greedy, fastest and own-bound starts, best response on each, the best kept.
pub fn local_search<'a>(
    p: &'a Prepared,
    lists: &'a [Vec<Cand>],
    ctx: &Context<'_>,
) -> (State<'a>, u64) {
    let mut best = greedy(p, lists, ctx);
    let mut moves = best.best_response(ctx, 20);
    for start in [fastest_start(lists), own_bound_start(p, lists)] {
        let mut other = State::new(p, lists, start);
        moves += other.best_response(ctx, 20);
        if other.score() < best.score() {
            best = other;
        }
    }
    (best, moves)
}

/// The choices picked from per-user candidate lists.
pub fn plan_of(lists: &[Vec<Cand>], pick: &[usize]) -> Vec<Choice> {
    pick.iter()
        .enumerate()
        .map(|(u, &j)| lists[u][j].0)
        .collect()
}

pub(super) fn user_lists(p: &Prepared) -> Vec<Vec<Cand>> {
    p.users.iter().map(|u| u.cands.clone()).collect()
}

/// Runs a heuristic over the pruned candidate lists (infeasible when some user has none).
fn run_heuristic(
    p: &Prepared,
    ctx: &mut Context<'_>,
    f: impl for<'b> Fn(&'b Prepared, &'b [Vec<Cand>], &Context<'_>) -> (Vec<Choice>, u64),
) -> Result<Outcome<super::KvSplitSolution>> {
    if let Some(o) = super::no_candidates(p) {
        return Ok(o);
    }
    let lists = user_lists(p);
    let (plan, moves) = f(p, &lists, ctx);
    Ok(outcome_from_plan(p, &plan, ctx, moves))
}

/// Greedy by latency saved per byte.
pub struct Greedy;

impl Solver<KvSplit> for Greedy {
    fn name(&self) -> &'static str {
        "greedy"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "greedy upgrades by latency saved per server byte from the least-memory plan"
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::KvSplitSolution>> {
        run_heuristic(p, ctx, |p, l, c| (greedy(p, l, c).plan(), 0))
    }
}

/// Greedy + best-response local search.
pub struct LocalSearch;

impl Solver<KvSplit> for LocalSearch {
    fn name(&self) -> &'static str {
        "local-search"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "greedy and fastest starts, then best-response passes over each user's pruned candidates"
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::KvSplitSolution>> {
        run_heuristic(p, ctx, |p, l, c| {
            let (st, moves) = local_search(p, l, c);
            (st.plan(), moves)
        })
    }
}
