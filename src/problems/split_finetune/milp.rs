//! `milp`: per-client cuts and levels as a MILP (HiGHS), for the `round_latency` objective.
//!
//! Per server level `s` (enumerated outside) and client `k`, the options `j ∈ J_k` are its distinct
//! (cut, client frozen blocks) with its memory and `φ_kj > 0` met (`per_client::client_options`);
//! every constant below comes from `Prepared::stream` (the costs `evaluate` uses):
//! - `x_kj ∈ {0,1}`, `Σ_j x_kj = 1`;
//! - server time `S = Σ_kj s_kj x_kj` (`s_kj` = server time of the client's micro-batches);
//! - server memory: `u_l ≥ Σ_{j: row l on the server} x_kj`, `v_l ≥ Σ_{j: row l trained on the
//!   server} x_kj`, `a ≥ Σ_j act_kj x_kj` for every `k`, and
//!   `Σ_l base_l u_l + Σ_l state_l v_l + a + Σ_kj cache_kj x_kj ≤ M_s` (`u, v ∈ [0,1]`, `a ≥ 0`
//!   continuous: at integer `x` their least values are the union / maximum);
//! - minimum trainable fraction `Σ_kj n_k φ_kj x_kj ≥ φ_min Σ_k n_k`;
//! - without a bandwidth to split (fixed rates, or vanilla SL where each client has the whole band)
//!   the client times `t_kj` are constants: SFL / U-shaped `min τ + S`, `τ ≥ Σ_j t_kj x_kj`; vanilla
//!   `min Σ_kj (t_kj + s_kj) x_kj`. Per-round energy budgets drop options;
//! - with a shared bandwidth (parallel clients) the round is `max_k t_k(b_k) + S(x)`, non-linear:
//!   bisection on the deadline `T`. For a fixed `T` and a server-time guess `σ`, client `k`'s least
//!   bandwidth `β_kj(T − σ)` is a constant (bisection, with the energy floor), so
//!   `g(σ) = min { S(x) : Σ_kj β_kj(T − σ) x_kj ≤ B, Σ_kj βE_kj x_kj ≤ B, … }` (`βE` = later-round
//!   energy floors) is a MILP. `T` is feasible iff some `σ` has `g(σ) ≤ σ`; `g` is non-decreasing, so
//!   the iteration `σ₀ = 0`, `σ_{i+1} = g(σ_i)` increases, stays below every feasible `S(x*)` and
//!   stops at a feasible `x` (`g(σ_i) = σ_i`) or at an infeasible MILP (no feasible `x` at `T`). The
//!   bisection starts from the lower bound "every client alone on the whole band" (a MILP of the
//!   fixed-rate form) and the exact value of its solution, and keeps the exact value
//!   (`bandwidth::solve_combo`) of every feasible `x` it meets as the incumbent. The inner MILPs run at
//!   a relative gap of 1e-9; the bisection stops at the relative tolerance `mip_rel_gap` (default
//!   1e-4, HiGHS' default) between the bound and the incumbent.
//!
//! `total_time` and `energy` are not modelled: with per-client choices the rounds `R(φ_eff)` depend
//! on all clients' choices and multiply the later-round latency (and the energy deadline couples both),
//! a product the MILP does not linearise exactly; `per-client-descent` and `per-client-brute-force`
//! cover them.

use super::bandwidth::{energy_floor, least_bandwidth};
use super::cost::{Choice, Mode, Prepared, Stream};
use super::instance::{Objective, Protocol};
use super::per_client::{
    client_options, common_start, descend, needs_per_client, server_level_indices, solve_vector,
    SolvedVec,
};
use super::{SplitFinetune, SplitFinetuneSolution};
use crate::error::Result;
use crate::solve::milp::{Milp, MilpStatus, Var};
use crate::solve::{
    Context, NoObserver, Outcome, Sense, SolveOptions, Solver, SolverKind, Termination,
};

pub struct MilpSolver;

/// One client option with its constants.
struct Opt {
    ch: Choice,
    st: Stream,
    /// Server-side activation bytes of the stream (one micro-batch).
    act: f64,
}

/// The options of every client at one server level.
struct Level {
    opts: Vec<Vec<Opt>>,
}

impl Level {
    fn new(p: &Prepared, sf: usize) -> Self {
        let opts = (0..p.num_clients())
            .map(|k| {
                client_options(p, k, sf)
                    .into_iter()
                    .map(|ch| {
                        let st = p.stream(k, ch);
                        let act = p.server_act_bytes(&st.shape);
                        Opt { ch, st, act }
                    })
                    .collect()
            })
            .collect();
        Level { opts }
    }
}

/// The MILP skeleton: `x`, one option per client, server memory, minimum trainable fraction.
/// `allowed(k, j)` drops options; returns the model and the `x` columns.
fn skeleton(
    p: &Prepared,
    lv: &Level,
    allowed: &dyn Fn(usize, usize) -> bool,
) -> Option<(Milp, Vec<Vec<Option<Var>>>)> {
    let mut m = Milp::new(Sense::Minimize);
    let mut x: Vec<Vec<Option<Var>>> = vec![];
    for (k, os) in lv.opts.iter().enumerate() {
        let mut row = vec![];
        let mut xs = vec![];
        for j in 0..os.len() {
            if allowed(k, j) {
                let v = m.bin_var(0.0, &format!("x_{k}_{j}"));
                row.push((v, 1.0));
                xs.push(Some(v));
            } else {
                xs.push(None);
            }
        }
        if row.is_empty() {
            return None;
        }
        m.eq(&row, 1.0);
        x.push(xs);
    }
    let each = |f: &mut dyn FnMut(usize, usize, &Opt, Var)| {
        for (k, os) in lv.opts.iter().enumerate() {
            for (j, o) in os.iter().enumerate() {
                if let Some(v) = x[k][j] {
                    f(k, j, o, v);
                }
            }
        }
    };
    // server memory, only when the most it can take exceeds the budget
    let rows = p.nb + 2;
    let worst: f64 = (0..rows)
        .map(|l| p.base_bytes[l] + p.state_bytes[l])
        .sum::<f64>()
        + lv.opts.iter().flatten().map(|o| o.act).fold(0.0, f64::max)
        + lv.opts
            .iter()
            .map(|os| os.iter().map(|o| o.st.cache_bytes).fold(0.0, f64::max))
            .sum::<f64>();
    if worst > p.server_memory {
        let mut held: Vec<Vec<Vec<(Var, f64)>>> = vec![vec![vec![]; rows]; p.num_clients()];
        let mut trained = held.clone();
        let mut act: Vec<Vec<(Var, f64)>> = vec![vec![]; p.num_clients()];
        let mut mem: Vec<(Var, f64)> = vec![];
        each(&mut |k, _, o, v| {
            for (l, md) in p.server_row_modes(&o.st.shape) {
                held[k][l].push((v, 1.0));
                if md == Mode::Full {
                    trained[k][l].push((v, 1.0));
                }
            }
            act[k].push((v, o.act));
            if o.st.cache_bytes > 0.0 {
                mem.push((v, o.st.cache_bytes));
            }
        });
        for (per, bytes, name) in [(&held, &p.base_bytes, "u"), (&trained, &p.state_bytes, "v")] {
            for l in 0..rows {
                if per.iter().all(|r| r[l].is_empty()) || bytes[l] <= 0.0 {
                    continue;
                }
                let y = m.var(0.0, 1.0, 0.0, &format!("{name}_{l}"));
                for r in per.iter() {
                    if !r[l].is_empty() {
                        let mut c = r[l].clone();
                        c.push((y, -1.0));
                        m.le(&c, 0.0);
                    }
                }
                mem.push((y, bytes[l]));
            }
        }
        let a = m.var(0.0, f64::INFINITY, 0.0, "act");
        for r in act {
            let mut c = r;
            c.push((a, -1.0));
            m.le(&c, 0.0);
        }
        mem.push((a, 1.0));
        // in units of the server memory (byte counts near 1e10 next to binaries)
        let scale = if p.server_memory > 0.0 {
            1.0 / p.server_memory
        } else {
            1.0
        };
        let mem: Vec<(Var, f64)> = mem.into_iter().map(|(v, c)| (v, c * scale)).collect();
        m.le(&mem, p.server_memory * scale);
    }
    // minimum trainable fraction (micro-batch-weighted mean of the streams' φ)
    if p.min_trainable > 0.0 {
        let nsum: f64 = p.clients.iter().map(|c| c.batches).sum();
        let mut c = vec![];
        each(&mut |k, _, o, v| c.push((v, p.clients[k].batches * o.st.shape.phi / nsum)));
        m.ge(&c, p.min_trainable - 1e-12);
    }
    Some((m, x))
}

/// The chosen options of a MILP solution.
fn picked(lv: &Level, x: &[Vec<Option<Var>>], sol: &[f64]) -> Vec<Choice> {
    x.iter()
        .enumerate()
        .map(|(k, xs)| {
            let j = (0..xs.len())
                .filter(|&j| xs[j].is_some())
                .max_by(|&a, &b| sol[xs[a].unwrap().0].total_cmp(&sol[xs[b].unwrap().0]))
                .unwrap_or(0);
            lv.opts[k][j].ch
        })
        .collect()
}

/// Minimum round latency with constant client times `t(k, j)` (`None` = option dropped): the
/// MILP's incumbent choices, objective and bound.
struct Fixed {
    choices: Option<Vec<Choice>>,
    status: MilpStatus,
    bound: Option<f64>,
    nodes: u64,
}

fn solve_fixed(
    p: &Prepared,
    lv: &Level,
    t: &dyn Fn(usize, usize) -> Option<f64>,
    gap: f64,
    ctx: &mut Context<'_>,
) -> Result<Fixed> {
    let Some((mut m, x)) = skeleton(p, lv, &|k, j| t(k, j).is_some_and(f64::is_finite)) else {
        return Ok(Fixed {
            choices: None,
            status: MilpStatus::Infeasible,
            bound: None,
            nodes: 0,
        });
    };
    let parallel = p.parallel();
    let tau = parallel.then(|| m.var(0.0, f64::INFINITY, 1.0, "tau"));
    for (k, os) in lv.opts.iter().enumerate() {
        let mut row = vec![];
        for (j, o) in os.iter().enumerate() {
            if let Some(v) = x[k][j] {
                let tk = t(k, j).unwrap_or(0.0);
                if parallel {
                    m.set_cost(v, o.st.server_s);
                    row.push((v, tk));
                } else {
                    m.set_cost(v, o.st.server_s + tk);
                }
            }
        }
        if let Some(tau) = tau {
            row.push((tau, -1.0));
            m.le(&row, 0.0);
        }
    }
    let opts = inner_options(ctx, gap);
    let mut obs = NoObserver;
    let mut inner = Context::new(&opts, &mut obs, ctx.stop_flag());
    let r = m.solve(&mut inner, None)?;
    Ok(Fixed {
        choices: r.x.as_ref().map(|s| picked(lv, &x, s)),
        status: r.status,
        bound: r.bound,
        nodes: r.nodes,
    })
}

/// Options for an inner MILP: relative gap `gap`, the time left (run with the caller's stop flag).
fn inner_options(ctx: &Context<'_>, gap: f64) -> SolveOptions {
    let mut o = ctx.options.clone();
    o.mip_rel_gap = Some(gap);
    o.time_limit_s = ctx.remaining_s().map(|t| t.max(1e-3));
    o
}

/// `g(σ)`: least server time with every client finishing within `tau` on its share; `None` when
/// infeasible (`Err` on a backend failure). `Some(None)`: stopped without an answer.
fn min_server_time(
    p: &Prepared,
    lv: &Level,
    floors: &[Vec<Option<(f64, f64)>>],
    tau: f64,
    ctx: &mut Context<'_>,
    nodes: &mut u64,
) -> Result<Option<Option<(Vec<Choice>, f64)>>> {
    let bt = p.bandwidth.map_or(0.0, |b| b.total_hz);
    let beta: Vec<Vec<Option<f64>>> = lv
        .opts
        .iter()
        .enumerate()
        .map(|(k, os)| {
            os.iter()
                .enumerate()
                .map(|(j, o)| {
                    let (f1, _) = floors[k][j]?;
                    least_bandwidth(p, k, &o.st.first, f1, tau)
                })
                .collect()
        })
        .collect();
    let Some((mut m, x)) = skeleton(p, lv, &|k, j| beta[k][j].is_some()) else {
        return Ok(Some(None));
    };
    let (mut band, mut later) = (vec![], vec![]);
    for (k, os) in lv.opts.iter().enumerate() {
        for (j, o) in os.iter().enumerate() {
            if let Some(v) = x[k][j] {
                m.set_cost(v, o.st.server_s);
                band.push((v, beta[k][j].unwrap_or(0.0)));
                later.push((v, floors[k][j].map_or(0.0, |f| f.1)));
            }
        }
    }
    m.le(&band, bt * (1.0 + 1e-12));
    m.le(&later, bt * (1.0 + 1e-12));
    let opts = inner_options(ctx, 1e-9);
    let mut obs = NoObserver;
    let mut inner = Context::new(&opts, &mut obs, ctx.stop_flag());
    let r = m.solve(&mut inner, None)?;
    *nodes += r.nodes;
    match (r.status, r.x) {
        (MilpStatus::Optimal, Some(s)) => {
            let chs = picked(lv, &x, &s);
            let srv: f64 = chs
                .iter()
                .enumerate()
                .map(|(k, ch)| p.stream(k, *ch).server_s)
                .sum();
            Ok(Some(Some((chs, srv))))
        }
        (MilpStatus::Infeasible, _) => Ok(Some(None)),
        _ => Ok(None),
    }
}

/// Result of one server level.
struct LevelResult {
    best: Option<SolvedVec>,
    bound: f64,
    proved: bool,
    nodes: u64,
    milps: u64,
}

/// Solves one server level; `inc` is the best value of the levels before (a level that cannot beat
/// it by more than `tol` is proved so with one feasibility test at `inc·(1 − tol)`).
fn solve_level(
    p: &Prepared,
    sf: usize,
    tol: f64,
    inc: f64,
    ctx: &mut Context<'_>,
) -> Result<LevelResult> {
    let lv = Level::new(p, sf);
    let bt = p.bandwidth.map_or(0.0, |b| b.total_hz);
    let mut out = LevelResult {
        best: None,
        bound: f64::INFINITY,
        proved: true,
        nodes: 0,
        milps: 0,
    };
    let energy_ok = |k: usize, st: &Stream, b: f64| {
        p.clients[k].energy_budget_j.is_none_or(|bud| {
            p.client_j(k, &st.first, b) <= bud * (1.0 + 1e-9)
                && p.client_j(k, &st.later, b) <= bud * (1.0 + 1e-9)
        })
    };
    if !p.has_allocation() {
        let t = |k: usize, j: usize| -> Option<f64> {
            let st = &lv.opts[k][j].st;
            let b = p.bw_of(&[], k);
            let later = p.client_s(k, &st.later, b);
            (energy_ok(k, st, b) && later.is_finite()).then(|| p.client_s(k, &st.first, b))
        };
        let f = solve_fixed(p, &lv, &t, tol, ctx)?;
        out.milps = 1;
        out.nodes = f.nodes;
        out.best = f.choices.as_deref().and_then(|c| solve_vector(p, c));
        out.proved = f.status == MilpStatus::Optimal || f.status == MilpStatus::Infeasible;
        out.bound = match f.status {
            MilpStatus::Infeasible => f64::INFINITY,
            _ => f.bound.unwrap_or(f64::NEG_INFINITY),
        };
        return Ok(out);
    }
    // shared bandwidth, parallel clients: energy floors per option (first, later rounds)
    let floors: Vec<Vec<Option<(f64, f64)>>> = lv
        .opts
        .iter()
        .enumerate()
        .map(|(k, os)| {
            os.iter()
                .map(|o| {
                    Some((
                        energy_floor(p, k, &o.st.first)?,
                        energy_floor(p, k, &o.st.later)?,
                    ))
                })
                .collect()
        })
        .collect();
    // lower bound: every client alone on the whole band
    let t = |k: usize, j: usize| -> Option<f64> {
        floors[k][j]?;
        Some(p.client_s(k, &lv.opts[k][j].st.first, bt))
    };
    let f = solve_fixed(p, &lv, &t, tol, ctx)?;
    out.milps += 1;
    out.nodes += f.nodes;
    match f.status {
        MilpStatus::Infeasible => return Ok(out),
        MilpStatus::Optimal => {}
        _ => {
            out.proved = false;
            out.bound = f.bound.unwrap_or(f64::NEG_INFINITY);
            out.best = f.choices.as_deref().and_then(|c| solve_vector(p, c));
            return Ok(out);
        }
    }
    let mut lo = f.bound.unwrap_or(0.0);
    if lo >= inc * (1.0 - tol) {
        out.bound = lo;
        return Ok(out);
    }
    out.best = f.choices.as_deref().and_then(|c| solve_vector(p, c));
    let mut hi = out
        .best
        .as_ref()
        .map_or(f64::INFINITY, |b| b.value.objective);
    if inc < hi {
        hi = inc;
        out.best = None;
    }
    if !hi.is_finite() {
        // an upper end for the bisection: everyone on an equal share can be slow, so grow
        let mut t_try = lo.max(1e-9) * 2.0;
        for _ in 0..200 {
            if ctx.should_stop() {
                break;
            }
            match feasible_at(p, &lv, &floors, t_try, ctx, &mut out)? {
                Some(Some(s)) => {
                    hi = s.value.objective;
                    out.best = Some(s);
                    break;
                }
                Some(None) => {
                    lo = t_try;
                    t_try *= 2.0;
                }
                None => break,
            }
        }
        if !hi.is_finite() {
            out.proved = false;
            out.bound = lo;
            return Ok(out);
        }
    }
    for step in 0..200 {
        if hi - lo <= tol * hi || ctx.should_stop() {
            break;
        }
        // first probe just below the incumbent: one infeasible test proves it for this level
        let mid = if step == 0 {
            hi * (1.0 - 0.5 * tol)
        } else {
            0.5 * (lo + hi)
        };
        match feasible_at(p, &lv, &floors, mid, ctx, &mut out)? {
            Some(Some(s)) => {
                if s.value.objective < hi {
                    hi = s.value.objective;
                    out.best = Some(s);
                } else {
                    // feasible at `mid` by the bandwidth bisections but not better than the
                    // incumbent once solved exactly: numerical noise, stop unproved
                    out.proved = false;
                    break;
                }
            }
            Some(None) => lo = mid,
            None => {
                out.proved = false;
                break;
            }
        }
    }
    out.proved &= hi - lo <= tol * hi;
    out.bound = lo;
    Ok(out)
}

/// Whether round latency `t` is reachable: `Some(Some(x))` with its exact value, `Some(None)` when
/// proved unreachable, `None` when stopped.
fn feasible_at(
    p: &Prepared,
    lv: &Level,
    floors: &[Vec<Option<(f64, f64)>>],
    t: f64,
    ctx: &mut Context<'_>,
    out: &mut LevelResult,
) -> Result<Option<Option<SolvedVec>>> {
    let mut sigma = 0.0;
    for _ in 0..1000 {
        if t - sigma <= 0.0 {
            return Ok(Some(None));
        }
        out.milps += 1;
        let Some(r) = min_server_time(p, lv, floors, t - sigma, ctx, &mut out.nodes)? else {
            return Ok(None);
        };
        let Some((chs, srv)) = r else {
            return Ok(Some(None));
        };
        if srv <= sigma * (1.0 + 1e-12) {
            return Ok(Some(solve_vector(p, &chs)));
        }
        sigma = srv;
    }
    Ok(None)
}

impl Solver<SplitFinetune> for MilpSolver {
    fn name(&self) -> &'static str {
        "milp"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "per-client decisions, round latency: HiGHS MILP over each client's (cut, level) per server level; shared bandwidth by bisection on the deadline with a min-server-time MILP per step"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        needs_per_client(p)?;
        if p.objective != Objective::RoundLatency {
            return Err("milp models the round_latency objective only: with per-client choices the rounds R(phi_eff) depend on every client's choice and multiply the later-round latency, which the MILP does not linearise exactly (use per-client-descent or per-client-brute-force)".into());
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<SplitFinetuneSolution>> {
        let tol = ctx.options.mip_rel_gap.unwrap_or(1e-4);
        // with a shared bandwidth, a good incumbent lets most server levels be closed by one test
        let mut best: Option<SolvedVec> = if p.has_allocation() {
            common_start(p, ctx).map(|s| descend(p, s, ctx).0)
        } else {
            None
        };
        let mut bound = f64::INFINITY;
        let mut proved = true;
        let (mut nodes, mut milps) = (0, 0);
        for sf in server_level_indices(p) {
            if ctx.should_stop() {
                proved = false;
                break;
            }
            let inc = best.as_ref().map_or(f64::INFINITY, |b| b.value.objective);
            let r = solve_level(p, sf, tol, inc, ctx)?;
            nodes += r.nodes;
            milps += r.milps;
            proved &= r.proved;
            bound = bound.min(r.bound);
            if let Some(b) = r.best {
                if best
                    .as_ref()
                    .is_none_or(|x| b.value.objective < x.value.objective)
                {
                    ctx.incumbent(b.value.objective);
                    best = Some(b);
                }
            }
        }
        let mut o = match best {
            Some(b) => {
                let term = if proved {
                    Termination::Optimal
                } else if ctx.should_stop() {
                    ctx.early_termination()
                } else {
                    Termination::Completed
                };
                let mut o = Outcome::with(term, b.solution(p), b.value.objective);
                o.bound = Some(bound.min(b.value.objective));
                o
            }
            None if proved => Outcome::none(Termination::Infeasible),
            None if ctx.should_stop() => Outcome::none(ctx.early_termination()),
            None => Outcome::none(Termination::Completed),
        };
        o.nodes = nodes;
        o.iterations = milps;
        o.notes.push(format!(
            "{milps} MILPs over {} server levels{}",
            server_level_indices(p).len(),
            if p.has_allocation() && p.protocol != Protocol::Vanilla {
                format!(", bisection on the round deadline to {tol:.0e} relative")
            } else {
                String::new()
            }
        ));
        Ok(o)
    }
}
