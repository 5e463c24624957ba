//! Gradient: Lagrangian relaxation of the server memory rows (multiplier `μ_s ≥ 0` per server, in
//! objective units per byte) with a projected subgradient (Polyak step) update; for `max_latency` the
//! epigraph rows `t ≥ T_u` are dualised too (weights `λ` on the simplex, exponentiated-gradient
//! update), so both objectives reduce to a weighted sum `Σ ω_u T_u`.
//!
//! The coupled term `Σ_u ω_u n_u Step_s` (user u sees every co-located user's work and the shared
//! weights) is replaced by a pointwise under-estimator, so each subproblem is a valid relaxation:
//! - own form: `ω_u n_u (F_s(min(c_u, ĉ_s)) + a_u + Σ_{v forced on s, v≠u} min a_v)` (a user sees at
//!   least its own layers and work, the layers every user forced onto `s` needs and those users'
//!   least work; [`super::milp::Floors`]);
//! - McCormick form (every association fixed): with `n_u ã_v ≥ ã_v − A_v (1 − n_u)` and
//!   `n_u F_s(y) ≥ F_s(y) − F_s(0)(1 − n_u)` the term becomes `W_s F_s(y) + W_s Σ_v ã_v −
//!   Σ_u ω_u (1 − n_u)(F_s(0) + Σ_{v≠u} A_v)` with `W_s = Σ_{u on s} ω_u`; separable per user plus `y`;
//! - any convex combination `θ` of the two (θ ∈ {0, ¼, ½, ¾, 1} tried per iteration, best kept);
//! - congestion form (mean objective): for the users not forced onto `s`,
//!   `Σ_{u on s} ω_u Step_s ≥ Σ ω_u (φ_u − a_u) + Q_s²/W` with `Q_s = Σ_{u on s} √(w_u a_u)`
//!   (Cauchy–Schwarz on `W_s A_s`); `Q_s` is dualised with `ν_s ≥ 0` (`+ν_s √(w_u a_j)` per
//!   candidate, `−ν_s² W/4` per server), `ν_s` updated by a damped fixed point; tried every
//!   iteration next to the others, the best kept.
//!
//! Shared weights: `y_sl` costs `θ W_s f_sl + μ_s w_l ≥ 0`, so `y` is the suffix from the lowest
//! split `c*_s`; each server's subproblem enumerates `c*_s ∈ {0..L}` with its fixed users restricted to
//! splits `≥ c*_s` (or local). Users with a decided association pick server and split freely with the
//! own form and no weight cost (a weaker but valid bound). Targets enter through the candidate
//! pruning (exact filters). The dual value `L(ω, μ)` is a lower bound on the optimum; the subproblem's
//! choices are repaired into a feasible plan by best response (penalised score).

use super::cost::{Cand, Choice, Prepared};
use super::heuristics::{user_lists, State};
use super::instance::Objective;
use super::milp::Floors;
use super::search::priced_search;
use super::{no_candidates, outcome_from_plan, KvSplit, KvSplitSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind};

pub struct Lagrangian;

/// Default number of subgradient iterations.
pub const DEFAULT_ITERATIONS: u64 = 150;

impl Solver<KvSplit> for Lagrangian {
    fn name(&self) -> &'static str {
        "lagrangian"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Gradient
    }
    fn description(&self) -> &'static str {
        "Lagrangian relaxation of server memory, projected subgradient on μ; dual bound + repaired plan"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.objective == Objective::Admitted {
            Err("the Lagrangian bound is built for the latency objectives".into())
        } else {
            Ok(())
        }
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<KvSplitSolution>> {
        if let Some(o) = no_candidates(p) {
            return Ok(o);
        }
        Ok(run(p, ctx))
    }
}

/// One subproblem solution: the dual value and each user's candidate.
pub struct Sub {
    pub value: f64,
    pub pick: Vec<usize>,
    /// Server memory use of the subproblem's choices (fixed users' weights included).
    pub mem: Vec<f64>,
    /// Per server: `Q_s = Σ √(w_u a_j)` over the non-forced users' picks (congestion form only).
    pub q: Vec<f64>,
    /// Reduced costs: `rc[u][j]` = the least subproblem value with user `u` forced to candidate `j`,
    /// minus `value` (≥ 0). The subproblem is a relaxation, so every plan using `j` is worth at
    /// least `value + rc[u][j]`.
    pub rc: Vec<Vec<f64>>,
}

/// Solves the Lagrangian subproblem for user weights `omega` (summing to the objective's scale),
/// multipliers `mu` and mixing `theta` (forced to 0 unless every association is fixed); without
/// `with_rc` the reduced costs are not computed (`rc` is empty). `own`: the table of
/// [`own_costs`] for these `omega`, used when `theta = 0` and `nu` is `None` (same values).
#[allow(clippy::too_many_arguments)]
pub fn subproblem(
    p: &Prepared,
    lists: &[Vec<Cand>],
    floors: &Floors,
    omega: &[f64],
    mu: &[f64],
    theta: f64,
    nu: Option<&[f64]>,
    with_rc: bool,
    own: Option<&[Vec<f64>]>,
) -> Sub {
    let l = p.num_layers();
    let ns = p.servers.len();
    let all_fixed = p.users.iter().all(|u| u.fixed_server.is_some());
    let theta = if all_fixed { theta } else { 0.0 };
    let wsum: f64 = p.users.iter().map(|u| u.weight).sum();
    // congestion form (mean objective): Σ_{u∈D on s} ω_u Step_s ≥ Σ ω_u (φ_j − a_j) + Q_s²/W with
    // Q_s = Σ √(w_u a_j) (Cauchy–Schwarz), Q_s dualised with ν_s: + ν_s √(w_u a_j) per candidate and
    // min_Q (Q²/W − ν_s Q) = −ν_s² W / 4
    let nu = nu.filter(|_| p.objective == Objective::MeanLatency && theta == 0.0);
    let cs_q = |u: usize, c: &Cand| -> Option<f64> {
        let s = c.0.server;
        (nu.is_some() && c.0.admitted && c.0.split < l && floors.forced[u] != Some(s))
            .then(|| (p.users[u].weight * c.1.work).sqrt())
    };
    let on_server = |c: &Cand| c.0.admitted && c.0.split < l;
    // W_s and A_v
    let mut w_s = vec![0.0; ns];
    let mut a_max = vec![0.0; p.users.len()];
    let mut a_tot = vec![0.0; ns];
    for (u, up) in p.users.iter().enumerate() {
        if let Some(s) = up.fixed_server {
            w_s[s] += omega[u];
            a_max[u] = lists[u]
                .iter()
                .filter(|c| on_server(c))
                .map(|c| c.1.work)
                .fold(0.0, f64::max);
            a_tot[s] += a_max[u];
        }
    }
    let own_table = own.filter(|_| theta == 0.0 && nu.is_none());
    let cost = |u: usize, j: usize| -> f64 {
        let c = &lists[u][j];
        let ch = &c.0;
        let cc = &c.1;
        if let Some(t) = own_table {
            // the expressions below at theta = 0 (0 · mc adds nothing, 1 · own is own)
            return if on_server(c) {
                mu[ch.server] * cc.srv_mem + t[u][j]
            } else {
                t[u][j]
            };
        }
        if on_server(c) {
            let s = ch.server;
            let own = match (cs_q(u, c), nu) {
                (Some(q), Some(nu)) => {
                    omega[u] * (cc.lat + floors.step_lb(p, u, c) - cc.work) + nu[s] * q
                }
                _ => omega[u] * (cc.lat + floors.step_lb(p, u, c)),
            };
            let mc = omega[u] * cc.lat + w_s[s] * cc.work;
            mu[s] * cc.srv_mem + theta * mc + (1.0 - theta) * own
        } else {
            let own = omega[u] * cc.lat;
            let s = p.users[u].fixed_server;
            let mc = omega[u] * cc.lat
                - s.map_or(0.0, |s| {
                    omega[u] * (p.servers[s].fixed[0] + a_tot[s] - a_max[u])
                });
            theta * mc + (1.0 - theta) * own
        }
    };
    let mut pick = vec![0usize; p.users.len()];
    let mut value = -mu
        .iter()
        .zip(&p.servers)
        .map(|(m, s)| m * s.memory_bytes)
        .sum::<f64>();
    if let Some(nu) = nu {
        value -= nu.iter().map(|v| v * v * wsum / 4.0).sum::<f64>();
    }
    let mut mem = vec![0.0; ns];
    let mut rc: Vec<Vec<f64>> = if with_rc {
        lists.iter().map(|li| vec![0.0; li.len()]).collect()
    } else {
        vec![]
    };
    let mut costs = vec![];
    // decided users: independent
    for (u, up) in p.users.iter().enumerate() {
        if up.fixed_server.is_none() {
            costs.clear();
            costs.extend((0..lists[u].len()).map(|j| cost(u, j)));
            let (j, v) = costs
                .iter()
                .copied()
                .enumerate()
                .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap())
                .unwrap();
            if with_rc {
                for (r, c) in rc[u].iter_mut().zip(&costs) {
                    *r = c - v;
                }
            }
            pick[u] = j;
            value += v;
            let c = &lists[u][j];
            if on_server(c) {
                mem[c.0.server] += c.1.srv_mem;
            }
        }
    }
    // fixed users: per server, enumerate the lowest split c*
    for s in 0..ns {
        let users: Vec<usize> = (0..p.users.len())
            .filter(|&u| p.users[u].fixed_server == Some(s))
            .collect();
        if users.is_empty() {
            continue;
        }
        // suf[u][c] = best (cost, j) among candidates with split >= c (local included everywhere)
        let mut suf: Vec<Vec<(f64, usize)>> = vec![];
        for &u in &users {
            let mut best_at = vec![(f64::INFINITY, usize::MAX); l + 1];
            for (j, c) in lists[u].iter().enumerate() {
                let k = if on_server(c) { c.0.split } else { l };
                let v = cost(u, j);
                if v < best_at[k].0 {
                    best_at[k] = (v, j);
                }
            }
            for k in (0..l).rev() {
                if best_at[k + 1].0 < best_at[k].0 {
                    best_at[k] = best_at[k + 1];
                }
            }
            suf.push(best_at);
        }
        let sv = &p.servers[s];
        let mut best = (f64::INFINITY, l);
        let mut tot = vec![f64::INFINITY; l + 1];
        for cs in 0..=l {
            let ycost = theta * w_s[s] * sv.fixed[cs] + mu[s] * sv.weights[cs];
            tot[cs] = ycost + suf.iter().map(|b| b[cs].0).sum::<f64>();
            if tot[cs] < best.0 {
                best = (tot[cs], cs);
            }
        }
        // forcing candidate j (split k, L when local) of user i allows every c* ≤ k:
        // min_{c* ≤ k} (tot[c*] − suf_i[c*]) + cost_j
        for (i, &u) in users.iter().enumerate().filter(|_| with_rc) {
            let mut pre = vec![f64::INFINITY; l + 1];
            for k in 0..=l {
                let v = tot[k] - suf[i][k].0;
                pre[k] = if k > 0 { pre[k - 1].min(v) } else { v };
            }
            for (j, c) in lists[u].iter().enumerate() {
                let k = if on_server(c) { c.0.split } else { l };
                rc[u][j] = (pre[k] + cost(u, j) - best.0).max(0.0);
            }
        }
        value += best.0;
        let cs = best.1;
        mem[s] += sv.weights[cs];
        for (i, &u) in users.iter().enumerate() {
            let j = suf[i][cs].1;
            pick[u] = j;
            if on_server(&lists[u][j]) {
                mem[s] += lists[u][j].1.srv_mem;
            }
        }
    }
    let mut q = vec![0.0; ns];
    for (u, &j) in pick.iter().enumerate() {
        if let Some(x) = cs_q(u, &lists[u][j]) {
            q[lists[u][j].0.server] += x;
        }
    }
    Sub {
        value,
        pick,
        mem,
        q,
        rc,
    }
}

/// `ω_u (lat_j + step floor)` per candidate on a server, `ω_u lat_j` for the local ones: the part
/// of the subproblem's cost of a candidate that does not depend on `μ` (own form, `θ = 0`).
pub fn own_costs(
    p: &Prepared,
    lists: &[Vec<Cand>],
    floors: &Floors,
    omega: &[f64],
) -> Vec<Vec<f64>> {
    let l = p.num_layers();
    lists
        .iter()
        .enumerate()
        .map(|(u, li)| {
            li.iter()
                .map(|c| {
                    if c.0.admitted && c.0.split < l {
                        omega[u] * (c.1.lat + floors.step_lb(p, u, c))
                    } else {
                        omega[u] * c.1.lat
                    }
                })
                .collect()
        })
        .collect()
}

/// The initial user weights `ω`: the objective's weights (mean), uniform (max).
pub fn initial_omega(p: &Prepared) -> Vec<f64> {
    let wsum: f64 = p.users.iter().map(|u| u.weight).sum();
    let nu = p.users.len() as f64;
    p.users
        .iter()
        .map(|u| {
            if p.objective == Objective::MaxLatency {
                1.0 / nu
            } else {
                u.weight / wsum
            }
        })
        .collect()
}

/// One projected subgradient step on the memory multipliers `mu` with a Polyak step of length
/// `alpha` toward `target`; false when the subgradient vanishes.
pub fn subgradient_step(p: &Prepared, sub: &Sub, mu: &mut [f64], alpha: f64, target: f64) -> bool {
    let g: Vec<f64> = (0..mu.len())
        .map(|s| sub.mem[s] - p.servers[s].memory_bytes)
        .collect();
    let gn: f64 = g
        .iter()
        .zip(mu.iter())
        .map(|(x, m)| if *m <= 0.0 && *x < 0.0 { 0.0 } else { x * x })
        .sum();
    if gn <= 0.0 {
        return false;
    }
    let step = alpha * (target - sub.value).max(1e-12 * target.abs().max(1e-9)) / gn;
    for (m, x) in mu.iter_mut().zip(&g) {
        *m = (*m + step * x).max(0.0);
    }
    true
}

/// The inputs of one subproblem: θ, ν (congestion form), ω, μ.
type SubInputs = (f64, Option<Vec<f64>>, Vec<f64>, Vec<f64>);

/// The result of [`subgradient`].
pub struct Dual {
    /// The best dual value (a valid lower bound), −∞ when no iteration ran.
    pub bound: f64,
    /// The best plan known (the incumbent or a repaired subproblem plan) and its value.
    pub plan: Vec<Choice>,
    pub value: f64,
    pub iterations: u64,
    pub mu: Vec<f64>,
    /// The reduced costs of the subproblem that gave `bound` (see [`Sub::rc`]).
    pub rc: Vec<Vec<f64>>,
}

/// The subgradient loop from an incumbent (`plan`, `value`; `value = ∞` when none); with `repair`
/// the subproblem's plan is repaired by best response every ten iterations.
pub fn subgradient(
    p: &Prepared,
    lists: &[Vec<Cand>],
    plan: Vec<Choice>,
    value: f64,
    iters: u64,
    repair: bool,
    ctx: &Context<'_>,
) -> Dual {
    let nu = p.users.len();
    let ns = p.servers.len();
    let max_obj = p.objective == Objective::MaxLatency;
    let mut omega = initial_omega(p);
    let floors = Floors::new(p, lists);
    let mut mu = vec![0.0; ns];
    let mut nu_s = vec![0.0; ns];
    let wsum: f64 = p.users.iter().map(|u| u.weight).sum();
    let (mut best_plan, mut ub) = (plan, value);
    let mut lb = f64::NEG_INFINITY;
    // the inputs of the subproblem that gave `lb` (θ, ν, ω, μ): its reduced costs are computed
    // once at the end, from the same inputs (the subproblem is deterministic)
    let mut best_in: Option<SubInputs> = None;
    // mean objective: ω stays, so the μ-free part of the own form is computed once
    let own = (!max_obj).then(|| own_costs(p, lists, &floors, &omega));
    let mut alpha = 1.0;
    let mut stall = 0;
    let mut it = 0;
    while it < iters && !ctx.should_stop() {
        it += 1;
        let thetas: &[f64] = if p.users.iter().all(|u| u.fixed_server.is_some()) {
            &[0.0, 0.25, 0.5, 0.75, 1.0]
        } else {
            &[0.0]
        };
        let mut subs: Vec<(Sub, f64, bool)> = thetas
            .iter()
            .map(|&t| {
                let own = own.as_deref();
                (
                    subproblem(p, lists, &floors, &omega, &mu, t, None, false, own),
                    t,
                    false,
                )
            })
            .collect();
        let nu_used = nu_s.clone();
        if p.objective == Objective::MeanLatency {
            let cs = subproblem(
                p,
                lists,
                &floors,
                &omega,
                &mu,
                0.0,
                Some(&nu_s),
                false,
                None,
            );
            // ν_s: damped fixed point of the congestion form's optimality (Q*_s = ν_s W / 2)
            for s in 0..ns {
                nu_s[s] = 0.5 * nu_s[s] + cs.q[s] / wsum;
            }
            subs.push((cs, 0.0, true));
        }
        let (sub, theta, cs) = subs
            .into_iter()
            .max_by(|a, b| a.0.value.partial_cmp(&b.0.value).unwrap())
            .unwrap();
        if !lb.is_finite() || sub.value > lb + 1e-12 * lb.abs().max(1e-9) {
            lb = sub.value;
            best_in = Some((
                theta,
                cs.then(|| nu_used.clone()),
                omega.clone(),
                mu.clone(),
            ));
            stall = 0;
        } else {
            stall += 1;
            if stall >= 8 {
                alpha *= 0.5;
                stall = 0;
            }
        }
        // repair every few iterations
        if repair && (it % 10 == 1 || it == iters) {
            let mut st = State::new(p, lists, sub.pick.clone());
            st.best_response(ctx, 5);
            if st.feasible() && st.value().0 < ub {
                ub = st.value().0;
                best_plan = st.plan();
            }
        }
        // μ: projected subgradient, Polyak step
        let target = if ub.is_finite() {
            ub
        } else {
            lb.abs() * 1.1 + 1e-3
        };
        subgradient_step(p, &sub, &mut mu, alpha, target);
        // λ (max objective): exponentiated gradient on the users' latencies in the subproblem plan
        if max_obj {
            let plan: Vec<_> = (0..nu).map(|u| lists[u][sub.pick[u]].0).collect();
            let ev = p.evaluate_plan(&plan);
            let tmax = ev.latency.iter().copied().fold(1e-12, f64::max);
            let eta = 2.0 * alpha;
            let mut z = 0.0;
            for u in 0..nu {
                omega[u] *= (eta * ev.latency[u] / tmax).exp();
                z += omega[u];
            }
            for w in &mut omega {
                *w /= z;
            }
        }
        if ub.is_finite() && lb >= ub - 1e-9 * ub.abs().max(1e-9) {
            break;
        }
    }
    let rc = best_in.map_or(vec![], |(theta, nu, omega, mu)| {
        let own = own.as_deref().filter(|_| nu.is_none());
        subproblem(
            p,
            lists,
            &floors,
            &omega,
            &mu,
            theta,
            nu.as_deref(),
            true,
            own,
        )
        .rc
    });
    Dual {
        bound: lb,
        plan: best_plan,
        value: ub,
        iterations: it,
        mu,
        rc,
    }
}

/// The Lagrangian solver: the priced search's plan as incumbent, then [`subgradient`] with repairs.
pub fn run(p: &Prepared, ctx: &mut Context<'_>) -> Outcome<KvSplitSolution> {
    let lists = user_lists(p);
    let (plan, _) = priced_search(p, &lists, ctx);
    let value = p.plan_value(&plan).unwrap_or(f64::INFINITY);
    let iters = ctx.options.iteration_limit.unwrap_or(DEFAULT_ITERATIONS);
    let d = subgradient(p, &lists, plan, value, iters, true, ctx);
    let mut o = outcome_from_plan(p, &d.plan, ctx, d.iterations);
    if d.bound.is_finite() {
        o.bound = Some(d.bound);
    }
    o.notes.push(format!(
        "dual bound {:.6e} after {} iterations; μ = {:?}",
        d.bound,
        d.iterations,
        d.mu.iter().map(|m| format!("{m:.3e}")).collect::<Vec<_>>()
    ));
    o
}
