//! Exact MILP (HiGHS) over the dominance-pruned candidates, warm-started from `priced-search`.
//!
//! - `x_uj ∈ {0,1}`: user `u` takes candidate `j` (split, options, server, or reject); `Σ_j x_uj = 1`;
//! - `y_sl ∈ [0,1]`: server `s` holds layer `l`; `y_sl ≤ y_s,l+1`; for every (u, s, c) among the
//!   candidates `y_sc ≥ z_usc = Σ_{j on s, c_j ≤ c} x_uj` (`z` a running sum, so each `x` appears
//!   once). `y` may stay continuous: every `y` cost is non-negative and its lower bounds are 0/1 at
//!   integer `x`, so some optimum has `y` binary;
//! - `Step_s = Σ_l y_sl f_sl + Σ_{u,j on s} a_j x_uj`; memory `Σ_l y_sl w_l + Σ_{u,j on s} K_j x_uj ≤ M_s`;
//! - the step user `u` sees: `p_u ≥ Step_s` when every candidate of `u` uses `s` ("forced"), else
//!   `p_u = Σ_s p_us` with `p_us ≥ Step_s − Big_s·(1 − Σ_{j on s} x_uj)`, `Big_s = min(F_s(0) +
//!   Σ_u max_j a_j, cap_s)`;
//! - floors ([`Floors`], valid inequalities): `p_us ≥ Σ_{j on s} φ_j x_uj` with `φ_j = F_s(min(c_j,
//!   ĉ_s)) + a_j + Σ_{v forced on s, v ≠ u} min a_v` (`ĉ_s`: the lowest of the forced users' highest
//!   splits) — a user sees at least its own work, the forced users' least work and their layers;
//! - congestion cut (mean objective): for the non-forced users `D_s` of server `s`,
//!   `Σ_{u∈D_s} w_u p_us ≥ Σ_{u∈D_s, j on s} w_u (φ_j − a_j) x_uj + R_s` with `R_s ≤ Q_s²`,
//!   `Q_s = Σ_{u∈D_s, j on s} √(w_u a_j) x_uj` (Cauchy–Schwarz: `(Σ_{D on s} w)(Σ_{D on s} a) ≥ Q_s²`),
//!   and a second cut over every user of `s` (forced ones with `p_u`): `Σ w_u p_u ≥ Σ w_u
//!   F_s(min(c_j, ĉ_s)) x_uj + R'_s`, `R'_s ≤ Q'_s²` over all of them (it adds the cross terms
//!   between free and forced users' work); each square under-estimated by tangents on a geometric
//!   grid plus a fine grid around the warm start's `Q` (`tangent_points`; a uniform grid over
//!   `[0, Σ max √(w a)]` put every tangent far above the plans' `Q`, where they cut nothing);
//!   without these cuts a fractional association spreads each user over the servers and the big-M
//!   rows let it see almost no step;
//! - `T_u = Σ_j lat_j x_uj + p_u`; targets `T_u ≤ τ_u` (admission: `≤ τ_u + Big·x_u,reject`);
//! - objective: `Σ w_u T_u / Σ w`, or `t ≥ T_u` min `t`, or max `Σ w_u (1 − x_u,reject)`;
//! - max objective: `t ≥ Step_s + Σ_{j on s} lat_j x_uj` for every non-forced user `u` and server
//!   `s` it may use (no big-M: every user of `s` waits for `Step_s`, and `Step_s = 0` on an unused
//!   server, so `t ≥ Step_s` always holds); for such a user without a target these rows carry
//!   `T_u ≤ t` exactly at integer points, so it gets no `p_us` nor big-M rows, only `p_u ≥ Σ_j φ_j
//!   x_uj` (`t ≥ Σ lat x + p_u` keeps the floor);
//! - incumbent-based step caps ([`step_caps`]) bound every `Step_s` and drop candidates that cannot
//!   appear in a plan at least as good as the warm start;
//! - max objective: a candidate whose own latency plus step floor `lat_j + φ_j` exceeds the warm
//!   start's value is dropped (every plan using it is worse);
//! - reduced-cost fixing: with the Lagrangian bound `LB` and the reduced costs `rc_uj` of its best
//!   subproblem ([`super::lagrangian::Sub::rc`]: the subproblem is a relaxation whose value with
//!   `x_uj = 1` forced is `LB + rc_uj`, so every plan using `j` is worth at least `LB + rc_uj`), a
//!   candidate with `LB + rc_uj > UB` (the warm start's value, with the caps' 1e-7 slack) cannot
//!   be in a plan at least as good as the warm start and is dropped (the warm start's own
//!   candidates are kept);
//! - the reported bound is the better of HiGHS' and the Lagrangian dual bound
//!   ([`super::lagrangian::subgradient`], 150 iterations without repairs);
//! - time: HiGHS is stopped before a stretch without a clock check that would end past the limit
//!   ([`Milp::guard_deadline`]); with a warm start and a time limit (latency objectives) it is
//!   also stopped once its root bound stalls ([`Milp::stop_on_root_stall`], < 0.01 % between two
//!   limit checks, and only after 30 % of the time limit: a small model's root ends early and
//!   HiGHS' branching proves it), and the time left goes to [`neighbourhood_search`] (sub-MILPs over 15 freed
//!   users of two servers, the others fixed) until the deadline or the gap target; its plans are
//!   plans of the whole model, so the bound stays HiGHS' (or the Lagrangian's).

use super::cost::{Cand, Prepared};
use super::heuristics::{local_search, plan_of, user_lists, State};
use super::instance::Objective;
use super::search::{priced_search_from, STARTS};
use super::{no_candidates, Choice, KvSplit, KvSplitSolution};
use crate::error::Result;
use crate::solve::milp::{Milp, MilpStatus, Var};
use crate::solve::{
    Context, NoObserver, Outcome, Sense, SolveOptions, Solver, SolverKind, Termination,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub struct MilpSolver;

impl Solver<KvSplit> for MilpSolver {
    fn name(&self) -> &'static str {
        "milp"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "HiGHS MILP over dominance-pruned per-user choices with shared-weight variables, step floors and congestion cuts; warm-started from priced-search; sub-MILP neighbourhood search in the time HiGHS leaves"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<KvSplitSolution>> {
        if let Some(o) = no_candidates(p) {
            return Ok(o);
        }
        solve_milp(p, ctx)
    }
}

pub fn solve_milp(p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<KvSplitSolution>> {
    let l = p.num_layers();
    let ns = p.servers.len();
    let nu = p.users.len();
    let full_lists = user_lists(p);
    let floors = Floors::new(p, &full_lists);
    // warm start: the priced search (local search under the admission objective)
    let warm = if ctx.options.warm_start {
        let (plan, _) = if p.uses_admission() {
            let (st, m) = local_search(p, &full_lists, ctx);
            (st.plan(), m)
        } else {
            // the MILP's budget affords more price starts than the heuristic's; the regime and
            // raise moves run on the best start only, so the solver's own two starts are tried
            // too (raise moves under every objective here)
            let a = priced_search_from(p, &full_lists, ctx, &WARM_STARTS, true);
            let b = priced_search_from(p, &full_lists, ctx, &STARTS, true);
            let value = |x: &(Vec<super::Choice>, u64)| p.plan_value(&x.0).unwrap_or(f64::INFINITY);
            if value(&b) < value(&a) {
                b
            } else {
                a
            }
        };
        let pick: Option<Vec<usize>> = plan
            .iter()
            .enumerate()
            .map(|(u, c)| full_lists[u].iter().position(|x| x.0 == *c))
            .collect();
        pick.and_then(|pick| {
            let st = State::new(p, &full_lists, pick);
            st.feasible().then(|| (st.pick.clone(), st.value().0))
        })
    } else {
        None
    };
    // the Lagrangian dual bound (no repairs): reported when HiGHS' bound is weaker
    let lagrange = if p.objective != Objective::Admitted && !ctx.should_stop() {
        let (plan, value) = match &warm {
            Some((pick, v)) => (plan_of(&full_lists, pick), *v),
            None => (vec![], f64::INFINITY),
        };
        let d = super::lagrangian::subgradient(
            p,
            &full_lists,
            plan,
            value,
            super::lagrangian::DEFAULT_ITERATIONS,
            false,
            ctx,
        );
        d.bound.is_finite().then_some((d.bound, d.rc))
    } else {
        None
    };
    // reduced-cost fixing: a candidate whose Lagrangian reduced cost exceeds UB − LB appears in no
    // plan better than the warm start (its every plan is worth ≥ LB + rc > UB)
    let (lagrange, rc) = match lagrange {
        Some((b, rc)) => (Some(b), Some(rc)),
        None => (None, None),
    };
    // Incumbent-based caps on every server's step (valid for every plan at least as good as the
    // incumbent), which tighten the big-M and prune candidates that cannot appear in such a plan.
    let caps = warm
        .as_ref()
        .map(|(_, ub)| step_caps(p, &full_lists, &floors, *ub))
        .unwrap_or_else(|| vec![f64::INFINITY; ns]);
    let mut lists: Vec<Vec<Cand>> = vec![];
    let mut warm_pick = vec![];
    for (u, list) in full_lists.iter().enumerate() {
        let keep_j = warm.as_ref().map(|(w, _)| w[u]);
        let mut kept = vec![];
        for (j, c) in list.iter().enumerate() {
            let priced_out = match (&rc, &warm, lagrange) {
                (Some(rc), Some((_, ub)), Some(lb)) if !rc.is_empty() => {
                    lb + rc[u][j] > ub * (1.0 + 1e-7) + 1e-12
                }
                _ => false,
            };
            // max objective: the user's own latency is at least lat_j + its step floor
            let too_slow = match &warm {
                Some((_, ub)) if p.objective == Objective::MaxLatency => {
                    floors.latency_lb(p, u, c) > ub * (1.0 + 1e-7) + 1e-12
                }
                _ => false,
            };
            let over_cap = c.0.admitted
                && c.0.split < l
                && p.step_lower_bound(c.0.server, c.0.split, &c.1) > caps[c.0.server];
            let ok = !(priced_out || too_slow || over_cap) || Some(j) == keep_j;
            if ok {
                if Some(j) == keep_j {
                    warm_pick.push(kept.len());
                }
                kept.push(*c);
            }
        }
        lists.push(kept);
    }
    let warm = warm.map(|(_, ub)| (warm_pick, ub));
    let Model { mut m, x, warm_x } = model(p, &lists, &floors, &caps, warm.as_ref());
    // HiGHS does not look at the clock inside its root cut rounds (1-3 s each on `large`, and
    // 4 s for the analytic centre after the fifth): stop before one that would end past the limit
    m.guard_deadline(GUARD_SLACK_S);
    // with a warm start and a time limit (latency objectives): once HiGHS' root cut rounds stall
    // (they move the bound by < 0.01 % on `large`), the time left goes to the neighbourhood search
    let lns = warm.is_some()
        && p.objective != Objective::Admitted
        && ctx.options.iteration_limit.is_none()
        && ctx.remaining_s().is_some();
    if lns {
        m.stop_on_root_stall(ROOT_STALL, ROOT_STALL_SHARE);
    }
    let r = m.solve(ctx, warm_x.as_deref())?;
    let mut out = match (&r.x, r.status) {
        (Some(xv), _) => {
            let plan = plan_of_x(xv, &x, &lists);
            let ev = p.evaluate_plan(&plan);
            let mut o = Outcome::with(
                r.status.termination(),
                KvSplitSolution::from_plan(p, &plan),
                ev.objective,
            );
            o.bound = r.bound;
            o
        }
        (None, MilpStatus::Infeasible) if warm.is_some() => {
            // the caps admit every plan within a relative 1e-7 of the incumbent: none exists, so the
            // incumbent is optimal (up to that tolerance)
            let (pick, ub) = warm.as_ref().unwrap();
            let plan: Vec<_> = (0..nu).map(|u| lists[u][pick[u]].0).collect();
            let mut o = Outcome::with(
                Termination::Optimal,
                KvSplitSolution::from_plan(p, &plan),
                *ub,
            );
            o.bound = Some(*ub);
            o.notes
                .push("no plan better than the warm start within the step caps".into());
            o
        }
        (None, MilpStatus::Infeasible) => Outcome::none(Termination::Infeasible),
        (None, st) => {
            let mut o = Outcome::none(st.termination());
            o.bound = r.bound;
            o
        }
    };
    // HiGHS stopped on its time limit or a root stall (minimisation: it reports `Optimal` at the
    // gap target): the neighbourhood search improves the plan until the deadline or the target
    let unfinished = out.termination == Termination::TimeLimit
        || (r.stalled && out.termination == Termination::Interrupted && !ctx.interrupted());
    if lns && unfinished {
        if let (Some(sol), Some(v)) = (&out.solution, out.objective) {
            let plan = sol.to_plan(p).map_err(crate::error::Error::Solver)?;
            let pick: Option<Vec<usize>> = (0..nu)
                .map(|u| lists[u].iter().position(|c| c.0 == plan[u]))
                .collect();
            if let Some(pick) = pick {
                let mut best = (pick, v);
                let bound = r
                    .bound
                    .into_iter()
                    .chain(lagrange)
                    .fold(f64::NEG_INFINITY, f64::max);
                let gap = ctx.options.mip_rel_gap.unwrap_or(1e-4);
                let target = if bound > 0.0 {
                    bound / (1.0 - gap)
                } else {
                    f64::NEG_INFINITY
                };
                let (tries, better) =
                    neighbourhood_search(p, &lists, &mut best, ctx, usize::MAX, target)?;
                if best.1 < v {
                    let plan: Vec<_> = (0..nu).map(|u| lists[u][best.0[u]].0).collect();
                    out.solution = Some(KvSplitSolution::from_plan(p, &plan));
                    out.objective = Some(p.evaluate_plan(&plan).objective);
                }
                out.termination = if best.1 <= target {
                    out.bound = Some(bound.min(best.1));
                    Termination::Optimal
                } else if ctx.interrupted() {
                    Termination::Interrupted
                } else {
                    Termination::TimeLimit
                };
                out.notes.push(format!(
                    "neighbourhood search: {tries} sub-MILPs, {better} improved the plan ({v:.6e} -> {:.6e})",
                    best.1
                ));
            }
        }
    }
    if let (Some(lb), Some(obj)) = (lagrange, out.objective) {
        if out.termination != Termination::Optimal && out.bound.is_none_or(|b| b < lb) {
            out.bound = Some(lb.min(obj));
            out.notes.push(format!(
                "bound from the Lagrangian relaxation ({lb:.6e}); HiGHS' was {}",
                r.bound.map_or("none".into(), |b| format!("{b:.6e}"))
            ));
        }
    }
    out.nodes = r.nodes;
    out.iterations = r.lp_iterations;
    out.notes.push(format!(
        "{} candidates after pruning ({} raw); {} columns, {} rows{}",
        lists.iter().map(|l| l.len()).sum::<usize>(),
        p.raw_candidates,
        m.num_cols(),
        m.num_rows(),
        if warm.is_some() { "; warm-started" } else { "" }
    ));
    Ok(out)
}

/// The MILP over `lists` and its handles.
/// The plan of a MILP solution: each user's candidate in `lists` with the largest `x[u][j]`.
fn plan_of_x(xv: &[f64], x: &[Vec<Var>], lists: &[Vec<Cand>]) -> Vec<Choice> {
    lists
        .iter()
        .zip(x)
        .map(|(l, xu)| {
            let j = (0..l.len())
                .max_by(|&a, &b| xv[xu[a].0].total_cmp(&xv[xu[b].0]))
                .unwrap_or(0);
            l[j].0
        })
        .collect()
}

struct Model {
    m: Milp,
    /// `x[u][j]`: user `u` takes `lists[u][j]`.
    x: Vec<Vec<Var>>,
    /// The warm start as a full column vector.
    warm_x: Option<Vec<f64>>,
}

/// Builds the MILP (see the module doc) over `lists` with the step `floors` and `caps`, warm-started
/// from `warm` = (candidate index per user in `lists`, its value).
fn model(
    p: &Prepared,
    lists: &[Vec<Cand>],
    floors: &Floors,
    caps: &[f64],
    warm: Option<&(Vec<usize>, f64)>,
) -> Model {
    let l = p.num_layers();
    let ns = p.servers.len();
    let nu = p.users.len();
    let sense = if p.objective == Objective::Admitted {
        Sense::Maximize
    } else {
        Sense::Minimize
    };
    let mut m = Milp::new(sense);
    let wsum: f64 = p.users.iter().map(|u| u.weight).sum();
    let mut x: Vec<Vec<Var>> = vec![];
    for (u, list) in lists.iter().enumerate() {
        let mut xs = vec![];
        for (j, (ch, _)) in list.iter().enumerate() {
            let cost = if p.objective == Objective::Admitted && ch.admitted {
                p.users[u].weight
            } else {
                0.0
            };
            xs.push(m.bin_var(cost, &format!("x_{u}_{j}")));
        }
        let row: Vec<(Var, f64)> = xs.iter().map(|&v| (v, 1.0)).collect();
        m.eq(&row, 1.0);
        x.push(xs);
    }
    let y: Vec<Vec<Var>> = (0..ns)
        .map(|s| {
            (0..l)
                .map(|k| m.var(0.0, 1.0, 0.0, &format!("y_{s}_{k}")))
                .collect()
        })
        .collect();
    for s in 0..ns {
        for k in 0..l.saturating_sub(1) {
            m.le(&[(y[s][k], 1.0), (y[s][k + 1], -1.0)], 0.0);
        }
    }
    let on = |ch: &super::Choice, s: usize| ch.admitted && ch.split < l && ch.server == s;
    let mut zs: Vec<(usize, usize, usize, Var)> = vec![];
    for (u, list) in lists.iter().enumerate() {
        for s in 0..ns {
            let mut splits: Vec<usize> = list
                .iter()
                .filter(|(ch, _)| on(ch, s))
                .map(|(ch, _)| ch.split)
                .collect();
            splits.sort_unstable();
            splits.dedup();
            // y_sc ≥ z_usc = Σ_{j on s, c_j ≤ c} x_uj, with z built as a running sum (each x once)
            let mut prev: Option<Var> = None;
            for &c in &splits {
                let here: Vec<(Var, f64)> = list
                    .iter()
                    .enumerate()
                    .filter(|(_, (ch, _))| on(ch, s) && ch.split == c)
                    .map(|(j, _)| (x[u][j], -1.0))
                    .collect();
                let z = match prev {
                    None if here.len() == 1 => here[0].0,
                    _ => {
                        let z = m.var(0.0, 1.0, 0.0, &format!("z_{u}_{s}_{c}"));
                        let mut row = vec![(z, 1.0)];
                        row.extend(prev.map(|v| (v, -1.0)));
                        row.extend(here);
                        m.eq(&row, 0.0);
                        zs.push((u, s, c, z));
                        z
                    }
                };
                m.ge(&[(y[s][c], 1.0), (z, -1.0)], 0.0);
                prev = Some(z);
            }
        }
    }
    // per-layer costs: f_sl, w_l
    let step: Vec<Var> = (0..ns)
        .map(|s| m.var(0.0, f64::INFINITY, 0.0, &format!("step_{s}")))
        .collect();
    let mut big = vec![0.0; ns];
    for s in 0..ns {
        let sv = &p.servers[s];
        let mut srow = vec![(step[s], -1.0)];
        let mut mrow = vec![];
        for k in 0..l {
            srow.push((y[s][k], sv.fixed[k] - sv.fixed[k + 1]));
            mrow.push((y[s][k], sv.weights[k] - sv.weights[k + 1]));
        }
        big[s] = sv.fixed[0];
        for (u, list) in lists.iter().enumerate() {
            let mut amax: f64 = 0.0;
            for (j, (ch, cc)) in list.iter().enumerate() {
                if on(ch, s) {
                    srow.push((x[u][j], cc.work));
                    mrow.push((x[u][j], cc.srv_mem));
                    amax = amax.max(cc.work);
                }
            }
            big[s] += amax;
        }
        big[s] = big[s].min(caps[s]);
        m.eq(&srow, 0.0);
        m.le(&mrow, sv.memory_bytes);
        if caps[s].is_finite() {
            m.le(&[(step[s], 1.0)], caps[s]);
        }
    }
    let t_max = if p.objective == Objective::MaxLatency {
        Some(m.var(0.0, f64::INFINITY, 1.0, "t"))
    } else {
        None
    };
    let big_all = big.iter().copied().fold(0.0, f64::max)
        + lists
            .iter()
            .flat_map(|l| l.iter().map(|c| c.1.lat))
            .fold(0.0, f64::max);
    // the step each user sees: p_u = Σ_s p_us over the servers it may use (p_u ≥ Step_s directly
    // when every candidate uses s); p_us ≥ Step_s − Big_s (1 − n_us) and p_us ≥ Σ_j floor_j x_uj
    let mut pv = vec![];
    // per server: (weight, p_us) of the users that may but need not use it, and the CS terms
    let mut free_on: Vec<Vec<(usize, Var)>> = vec![vec![]; ns];
    let mut pus_of: Vec<Vec<(usize, Var)>> = vec![vec![]; nu];
    let mut cs_vars: Vec<CsVars> = vec![];
    for (u, list) in lists.iter().enumerate() {
        let up = &p.users[u];
        let obj = if p.objective == Objective::MeanLatency {
            up.weight / wsum
        } else {
            0.0
        };
        let pu = m.var(0.0, f64::INFINITY, obj, &format!("p_{u}"));
        pv.push(pu);
        let mut sum = vec![(pu, -1.0)];
        // max objective, no target, not forced: the rows t ≥ Step_s + Σ_{j on s} lat_j x_uj
        // below carry T_u ≤ t exactly at integer points, so p_u only needs its floors (no p_us,
        // no big-M rows)
        let lean = t_max.is_some()
            && up.target.is_none()
            && !(0..ns).any(|s| list.iter().all(|c| on(&c.0, s)));
        let mut lean_floor = vec![(pu, 1.0)];
        for s in 0..ns {
            let js: Vec<usize> = (0..list.len()).filter(|&j| on(&list[j].0, s)).collect();
            if js.is_empty() {
                continue;
            }
            if lean {
                lean_floor.extend(
                    js.iter()
                        .map(|&j| (x[u][j], -floors.step_lb(p, u, &list[j]))),
                );
                let mut row = vec![(t_max.unwrap(), 1.0), (step[s], -1.0)];
                row.extend(js.iter().map(|&j| (x[u][j], -list[j].1.lat)));
                m.ge(&row, 0.0);
                continue;
            }
            let floor_row = |v: Var| {
                let mut r = vec![(v, 1.0)];
                r.extend(
                    js.iter()
                        .map(|&j| (x[u][j], -floors.step_lb(p, u, &list[j]))),
                );
                r
            };
            if js.len() == list.len() {
                m.ge(&[(pu, 1.0), (step[s], -1.0)], 0.0);
                m.ge(&floor_row(pu), 0.0);
                sum.clear();
                break;
            }
            let pus = m.var(0.0, f64::INFINITY, 0.0, &format!("p_{u}_{s}"));
            sum.push((pus, 1.0));
            let mut row = vec![(pus, 1.0), (step[s], -1.0)];
            row.extend(js.iter().map(|&j| (x[u][j], -big[s])));
            m.ge(&row, -big[s]);
            m.ge(&floor_row(pus), 0.0);
            free_on[s].push((u, pus));
            pus_of[u].push((s, pus));
            if let Some(t) = t_max {
                // max objective: t ≥ Step_s + Σ_{j on s} lat_j x_uj, valid without big-M (every
                // user of s waits for Step_s and Step_s = 0 on an unused server)
                let mut row = vec![(t, 1.0), (step[s], -1.0)];
                row.extend(js.iter().map(|&j| (x[u][j], -list[j].1.lat)));
                m.ge(&row, 0.0);
            }
        }
        if lean {
            m.ge(&lean_floor, 0.0);
        } else if sum.len() > 1 {
            m.eq(&sum, 0.0);
        }
    }
    // mean objective: the users that need not use s see, together, at least the floors without
    // their own work plus W^D_s A^D_s ≥ (Σ_u √(w_u a_u))² (Cauchy–Schwarz), the square
    // under-estimated by tangents
    if p.objective == Objective::MeanLatency {
        let warm_pick = warm.map(|(pick, _)| pick.as_slice());
        for s in 0..ns {
            if free_on[s].is_empty() {
                continue;
            }
            // the non-forced users: floors without their own work + Q_D²
            let cut = CsCut {
                s,
                members: &free_on[s],
                lists,
                x: &x,
                cap: caps[s],
                warm: warm_pick,
            };
            cs_vars.push(cut.add(p, &mut m, |u, c| floors.step_lb(p, u, c) - c.1.work));
            // every user of s: the shared layers + Q_all²
            let all: Vec<(usize, Var)> = (0..nu)
                .filter(|&u| floors.forced[u] == Some(s))
                .map(|u| (u, pv[u]))
                .chain(free_on[s].iter().copied())
                .collect();
            let cut = CsCut {
                members: &all,
                ..cut
            };
            cs_vars.push(cut.add(p, &mut m, |_, c| floors.shared_lb(p, c)));
        }
    }
    for (u, list) in lists.iter().enumerate() {
        let up = &p.users[u];
        let pu = pv[u];
        // T_u = Σ lat x + p
        let mut trow: Vec<(Var, f64)> = vec![(pu, 1.0)];
        for (j, (ch, cc)) in list.iter().enumerate() {
            if ch.admitted {
                trow.push((x[u][j], cc.lat));
            }
        }
        if p.objective == Objective::MeanLatency {
            for &(v, a) in &trow[1..] {
                m.set_cost(v, a * up.weight / wsum);
            }
        }
        if let Some(t) = t_max {
            let mut r = trow.clone();
            r.push((t, -1.0));
            m.le(&r, 0.0);
        }
        if let Some(tg) = up.target {
            let mut r = trow.clone();
            if let Some(j) = list.iter().position(|c| !c.0.admitted) {
                r.push((x[u][j], -big_all));
            }
            m.le(&r, tg);
        }
    }
    // warm start vector
    let warm_x = warm.map(|(pick, _)| {
        let mut v = vec![0.0; m.num_cols()];
        for u in 0..nu {
            v[x[u][pick[u]].0] = 1.0;
        }
        let plan: Vec<_> = (0..nu).map(|u| lists[u][pick[u]].0).collect();
        let ev = p.evaluate_plan(&plan);
        for &(u, s, c, z) in &zs {
            if on(&plan[u], s) && plan[u].split <= c {
                v[z.0] = 1.0;
            }
        }
        for s in 0..ns {
            for k in ev.min_split[s]..l {
                v[y[s][k].0] = 1.0;
            }
            v[step[s].0] = ev.step_s[s];
        }
        for u in 0..nu {
            let ch = &plan[u];
            if ch.admitted && ch.split < l {
                v[pv[u].0] = ev.step_s[ch.server];
                for &(s, var) in &pus_of[u] {
                    if s == ch.server {
                        v[var.0] = ev.step_s[s];
                    }
                }
            }
        }
        for (r, qv, qrow, points) in &cs_vars {
            let q: f64 = qrow.iter().map(|&(var, c)| c * v[var.0]).sum();
            v[qv.0] = q;
            v[r.0] = points
                .iter()
                .map(|qh| 2.0 * qh * q - qh * qh)
                .fold(0.0, f64::max);
        }
        if let Some(t) = t_max {
            v[t.0] = ev
                .latency
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(0.0, f64::max);
        }
        v
    });
    Model { m, x, warm_x }
}

/// HiGHS stops in the root node when a limit check finds its bound moved by at most this
/// (relative) since the previous one; [`neighbourhood_search`] then gets the time left.
const ROOT_STALL: f64 = 1e-4;
/// ... and only once this share of the time limit is spent: a root that ends early in the budget
/// (a small model) is left to HiGHS' branching, which proves it (`llama3.1-8b-phones-l4-32k.json`:
/// optimal in 0.4 s; stopped at its root stall, the neighbourhood search ran its whole 60 s limit
/// and ended at a 1.47 % gap). On `large` with a 10 s limit the root stalls after 6–7 s.
const ROOT_STALL_SHARE: f64 = 0.3;
/// Users freed per neighbourhood, and the time limit of one sub-MILP, s.
const LNS_USERS: usize = 15;
const LNS_SUB_S: f64 = 0.3;

/// A large-neighbourhood search with sub-MILPs, from the plan `best` = (candidate index per user
/// in `lists`, its value), for at most `max_rounds` sub-MILPs, until the context's deadline or a
/// value at or below `target`.
/// Round `k` takes the `k`-th pair of servers (in turn; the single server when there is one) and
/// frees [`LNS_USERS`] users drawn at random (seeded by the options' seed) among those on the pair
/// or local: they may take any of their candidates on the pair or local, every other user keeps
/// its candidate. The sub-MILP is [`model`] over these lists with their own floors and caps, so
/// every plan it finds is a plan of the whole instance; warm-started from `best`, at most
/// [`LNS_SUB_S`] seconds, gap 10⁻⁶; its plan replaces `best` when `evaluate_plan` finds it
/// feasible and better. Returns (sub-MILPs run, improvements).
pub fn neighbourhood_search(
    p: &Prepared,
    lists: &[Vec<Cand>],
    best: &mut (Vec<usize>, f64),
    ctx: &Context<'_>,
    max_rounds: usize,
    target: f64,
) -> Result<(u64, u64)> {
    let l = p.num_layers();
    let ns = p.servers.len();
    let nu = p.users.len();
    let mut pairs: Vec<(usize, usize)> = (0..ns)
        .flat_map(|a| (a + 1..ns).map(move |b| (a, b)))
        .collect();
    if pairs.is_empty() {
        pairs.push((0, 0));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.options.seed);
    let (mut tries, mut better) = (0u64, 0u64);
    let mut round = 0usize;
    while round < max_rounds
        && best.1 > target
        && !ctx.should_stop()
        && ctx.remaining_s().is_none_or(|t| t > 0.05)
    {
        let (a, b) = pairs[round % pairs.len()];
        let in_n = |c: &Cand| !c.0.admitted || c.0.split == l || c.0.server == a || c.0.server == b;
        let mut free: Vec<usize> = (0..nu).filter(|&u| in_n(&lists[u][best.0[u]])).collect();
        free.shuffle(&mut rng);
        free.truncate(LNS_USERS);
        round += 1;
        let mut sub: Vec<Vec<Cand>> = (0..nu).map(|u| vec![lists[u][best.0[u]]]).collect();
        let mut sub_pick = vec![0; nu];
        for &u in &free {
            sub[u] = lists[u].iter().copied().filter(|c| in_n(c)).collect();
            sub_pick[u] = sub[u]
                .iter()
                .position(|c| c.0 == lists[u][best.0[u]].0)
                .unwrap_or(0);
        }
        let floors = Floors::new(p, &sub);
        let caps = step_caps(p, &sub, &floors, best.1);
        let warm = (sub_pick, best.1);
        let Model { mut m, x, warm_x } = model(p, &sub, &floors, &caps, Some(&warm));
        m.guard_deadline(GUARD_SLACK_S);
        let limit = ctx.remaining_s().map_or(LNS_SUB_S, |t| t.min(LNS_SUB_S));
        let opts = SolveOptions {
            time_limit_s: Some(limit.max(1e-3)),
            mip_rel_gap: Some(1e-6),
            ..ctx.options.clone()
        };
        let mut obs = NoObserver;
        let mut inner = Context::new(&opts, &mut obs, ctx.stop_flag());
        let r = m.solve(&mut inner, warm_x.as_deref())?;
        tries += 1;
        let Some(xv) = &r.x else { continue };
        let plan = plan_of_x(xv, &x, &sub);
        if let Some(v) = p.plan_value(&plan) {
            if v < best.1 * (1.0 - 1e-9) {
                let pick: Option<Vec<usize>> = (0..nu)
                    .map(|u| lists[u].iter().position(|c| c.0 == plan[u]))
                    .collect();
                if let Some(pick) = pick {
                    *best = (pick, v);
                    better += 1;
                }
            }
        }
    }
    Ok((tries, better))
}

/// Seconds the MILP may end past its time limit when HiGHS' next stretch without a clock check
/// is as long as its last one ([`crate::solve::milp::Milp::guard_deadline`]).
const GUARD_SLACK_S: f64 = 0.2;

/// Price multipliers of the `priced-search` starts used as the warm start.
const WARM_STARTS: [f64; 6] = [2.0, 8.0, 1.0, 4.0, 16.0, 32.0];

/// Options for a MILP call at a given gap (bench helper).
pub fn options_with_gap(gap: f64, time_limit_s: f64) -> SolveOptions {
    SolveOptions {
        mip_rel_gap: Some(gap),
        time_limit_s: Some(time_limit_s),
        ..SolveOptions::default()
    }
}

/// Upper bounds on each server's step valid for every plan no worse than the incumbent value `ub`
/// (minimisation objectives; infinite otherwise). Mean: the users whose every candidate uses `s`
/// ("forced", weight `W_F`) each see `Step_s`, every other user at least its own lower bound, so
/// `Step_s ≤ (ub·W − Σ_{u∉F} w_u min lb_u − Σ_{u∈F} w_u min lat_u) / W_F`. Max: `Step_s ≤ ub` for a used
/// server (an unused one has step 0). A relative slack of 1e-7 keeps the incumbent inside.
pub fn step_caps(p: &Prepared, lists: &[Vec<Cand>], floors: &Floors, ub: f64) -> Vec<f64> {
    let l = p.num_layers();
    let ns = p.servers.len();
    let ub = ub * (1.0 + 1e-7) + 1e-12;
    match p.objective {
        Objective::Admitted => vec![f64::INFINITY; ns],
        Objective::MaxLatency => vec![ub; ns],
        Objective::MeanLatency => {
            let wsum: f64 = p.users.iter().map(|u| u.weight).sum();
            let min_lb: Vec<f64> = lists
                .iter()
                .enumerate()
                .map(|(u, li)| {
                    li.iter()
                        .map(|c| floors.latency_lb(p, u, c))
                        .fold(f64::INFINITY, f64::min)
                })
                .collect();
            let min_lat: Vec<f64> = lists
                .iter()
                .map(|li| li.iter().map(|c| c.1.lat).fold(f64::INFINITY, f64::min))
                .collect();
            (0..ns)
                .map(|s| {
                    let forced: Vec<bool> = lists
                        .iter()
                        .map(|li| li.iter().all(|c| c.0.split < l && c.0.server == s))
                        .collect();
                    let wf: f64 = (0..p.users.len())
                        .filter(|&u| forced[u])
                        .map(|u| p.users[u].weight)
                        .sum();
                    if wf <= 0.0 {
                        return f64::INFINITY;
                    }
                    let rest: f64 = (0..p.users.len())
                        .map(|u| p.users[u].weight * if forced[u] { min_lat[u] } else { min_lb[u] })
                        .sum();
                    ((ub * wsum - rest) / wf * (1.0 + 1e-7)).max(0.0)
                })
                .collect()
        }
    }
}

/// A Cauchy–Schwarz congestion cut on server `s` over `members` (user, variable of the step it sees
/// on `s`): `Σ w_u p_u ≥ Σ_{u, j on s} w_u g(u, j) x_uj + R`, `R ≤ Q²` under tangents,
/// `Q = Σ_{u, j on s} √(w_u a_j) x_uj`; valid when `p_u ≥ g(u, j) + A_s` for a user of `s` at
/// candidate `j` (`A_s` the members' total work), since `(Σ w_u)(Σ a_u) ≥ (Σ √(w_u a_u))²`.
struct CsCut<'a> {
    s: usize,
    members: &'a [(usize, Var)],
    lists: &'a [Vec<Cand>],
    x: &'a [Vec<Var>],
    cap: f64,
    warm: Option<&'a [usize]>,
}

/// The variables of a congestion cut: `R`, `Q`, the terms of `Q` and the tangent points.
type CsVars = (Var, Var, Vec<(Var, f64)>, Vec<f64>);

impl CsCut<'_> {
    fn add(&self, p: &Prepared, m: &mut Milp, g: impl Fn(usize, &Cand) -> f64) -> CsVars {
        let l = p.num_layers();
        let s = self.s;
        let on = |c: &Cand| c.0.admitted && c.0.split < l && c.0.server == s;
        let mut row: Vec<(Var, f64)> = self
            .members
            .iter()
            .map(|&(u, v)| (v, p.users[u].weight))
            .collect();
        let mut qrow = vec![];
        let mut qmax = 0.0;
        let mut q_ref = 0.0;
        for &(u, _) in self.members {
            let w = p.users[u].weight;
            let mut qm: f64 = 0.0;
            for (j, c) in self.lists[u].iter().enumerate() {
                if on(c) {
                    row.push((self.x[u][j], -w * g(u, c)));
                    let q = (w * c.1.work).sqrt();
                    qrow.push((self.x[u][j], q));
                    qm = qm.max(q);
                    if self.warm.is_some_and(|pick| pick[u] == j) {
                        q_ref += q;
                    }
                }
            }
            qmax += qm;
        }
        let r = m.var(0.0, f64::INFINITY, 0.0, &format!("cs_{s}"));
        row.push((r, -1.0));
        m.ge(&row, 0.0);
        let qv = m.var(0.0, f64::INFINITY, 0.0, &format!("q_{s}"));
        let mut qdef = vec![(qv, -1.0)];
        qdef.extend(qrow.iter().copied());
        m.eq(&qdef, 0.0);
        // Q ≤ √(W · A) with A ≤ Step_s ≤ cap_s
        let wm: f64 = self.members.iter().map(|&(u, _)| p.users[u].weight).sum();
        let qmax = qmax.min((wm * self.cap).sqrt());
        let points = tangent_points(qmax, self.warm.map(|_| q_ref));
        for &qh in &points {
            // R ≥ 2 q̂ Q − q̂²
            m.ge(&[(r, 1.0), (qv, -2.0 * qh)], -qh * qh);
        }
        (r, qv, qrow, points)
    }
}

/// Tangent points `q̂` under-estimating a Cauchy–Schwarz square `Q²` on `[0, qmax]`: a geometric
/// grid (ratio 0.85, down to `qmax·10⁻⁴`, so the relative error of the piecewise-linear under-estimate
/// stays below 1 % over four decades) plus a finer grid (±30 %, step 2.5 %) around the warm start's
/// `Q` when known. A uniform grid is useless here: `qmax` counts every candidate's largest work
/// (recompute candidates are orders of magnitude above the plans' `Q`).
fn tangent_points(qmax: f64, q_ref: Option<f64>) -> Vec<f64> {
    let mut v = vec![];
    if qmax.is_finite() && qmax > 0.0 {
        let mut q = qmax;
        while q > qmax * 1e-4 {
            v.push(q);
            q *= 0.85;
        }
    }
    if let Some(q) = q_ref.filter(|q| *q > 0.0) {
        v.extend((-12..=12).map(|k| q * (1.0 + 0.025 * k as f64)));
    }
    v
}

/// Floors of the server steps from the users forced onto a server (every candidate uses it): each
/// such user adds at least its least work and holds the layers above its highest split.
#[derive(Debug, Clone)]
pub struct Floors {
    /// The server every candidate of user `u` uses, if any.
    pub forced: Vec<Option<usize>>,
    /// Least work of each user over its candidates, s.
    min_work: Vec<f64>,
    /// Per server: Σ of the forced users' least work, s.
    forced_work: Vec<f64>,
    /// Per server: the lowest split among the forced users' highest splits (`L` when none).
    low: Vec<usize>,
}

impl Floors {
    pub fn new(p: &Prepared, lists: &[Vec<Cand>]) -> Self {
        let l = p.num_layers();
        let ns = p.servers.len();
        let mut f = Floors {
            forced: vec![None; lists.len()],
            min_work: vec![0.0; lists.len()],
            forced_work: vec![0.0; ns],
            low: vec![l; ns],
        };
        for (u, li) in lists.iter().enumerate() {
            let Some(first) = li.first() else { continue };
            let s = first.0.server;
            if li
                .iter()
                .all(|c| c.0.admitted && c.0.split < l && c.0.server == s)
            {
                f.forced[u] = Some(s);
                f.min_work[u] = li.iter().map(|c| c.1.work).fold(f64::INFINITY, f64::min);
                f.forced_work[s] += f.min_work[u];
                let top = li.iter().map(|c| c.0.split).max().unwrap_or(l);
                f.low[s] = f.low[s].min(top);
            }
        }
        f
    }

    /// A lower bound on user `u`'s latency under candidate `c`: its own part plus, on a server,
    /// [`Floors::step_lb`].
    pub fn latency_lb(&self, p: &Prepared, u: usize, c: &Cand) -> f64 {
        c.1.lat
            + if c.0.admitted && c.0.split < p.num_layers() {
                self.step_lb(p, u, c)
            } else {
                0.0
            }
    }

    /// The shared layers every user of `c`'s server sees when `c` is on it: `F_s(min(c, ĉ_s))`.
    pub fn shared_lb(&self, p: &Prepared, c: &Cand) -> f64 {
        let s = c.0.server;
        p.server_step(s, c.0.split.min(self.low[s]), 0.0)
    }

    /// A lower bound on the step user `u` sees under candidate `c` (on a server): the shared layers
    /// from `min(c, low_s)`, its own work and the other forced users' least work.
    pub fn step_lb(&self, p: &Prepared, u: usize, c: &Cand) -> f64 {
        let s = c.0.server;
        let others = self.forced_work[s]
            - if self.forced[u] == Some(s) {
                self.min_work[u]
            } else {
                0.0
            };
        p.server_step(s, c.0.split.min(self.low[s]), c.1.work) + others.max(0.0)
    }
}
