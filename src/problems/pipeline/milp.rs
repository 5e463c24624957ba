//! MILP (HiGHS) in a range formulation, warm-started from a heuristic.
//!
//! Binary `z_r` for every admissible range `r = (n, a, b)` (node `n` holds `[a, b)`; ranges that do not
//! fit memory or have no route to the source / sink are not created, so memory, including the
//! non-linear buffer terms, is exact). `E_nb = Σ_a z_(n,a,b)` (n's stage ends at b), `S_nb = Σ_c z_(n,b,c)`.
//!
//! Single pipeline:
//! - cover: `Σ_{r ∋ l} z_r = 1` for every layer `l` (a contiguous partition); node once: `Σ_{r on n} z_r <= 1`;
//! - missing link: `E_ub + S_vb <= 1`; link indicator `y_uvb >= E_ub + S_vb − 1` (continuous, only when the
//!   objective sums link costs);
//! - bottleneck: `T >= Σ_{r on n} T_r z_r` per node (one range per node), `T >= C_uvb (E_ub + S_vb − 1)`,
//!   `T >=` input and output times of the ranges touching layer 0 and `L`;
//! - latency `Σ T_r z_r + Σ C y + in + out`; training `latency + (m − 1) T`; energy `m · Σ e`; the energy
//!   budget is a row on the same expression.
//!
//! Replicated (Helix flow): node flow `φ_n <= Σ_{r on n} z_r / T_r`; arc flow `f_uv <= Σ_b e_uvb / C_uvb`
//! with `e_uvb <= E_ub`, `e_uvb <= S_vb`; source arcs `<= S_n0 / in_n`, sink arcs `<= E_nL / out_n`;
//! conservation; maximise `tokens_per_pass · Σ sink arcs`.
//!
//! Position-dependent memory (1F1B with activation memory) is not modelled: the solver declines.

use super::cost::{Plan, Prepared};
use super::{
    is_replicated, local_search, plan_value, replicas, Objective, Pipeline, PipelineSolution,
};
use crate::error::Result;
use crate::solve::milp::{Milp, Var};
use crate::solve::{Context, NoObserver, Outcome, Sense, Solver, SolverKind, Termination};
use std::collections::HashMap;
use std::time::Instant;

/// Share of the time left that the warm-start heuristic may use (the rest goes to building the
/// model and to HiGHS).
pub const WARM_START_SHARE: f64 = 0.2;

/// Runs a warm-start heuristic under a child context limited to [`WARM_START_SHARE`] of the time
/// left (no limit without one), sharing the stop flag so Ctrl-C still reaches it.
fn bounded_warm_start<T>(ctx: &Context<'_>, f: impl FnOnce(&Context<'_>) -> T) -> T {
    let mut opts = ctx.options.clone();
    opts.time_limit_s = ctx.remaining_s().map(|r| (r * WARM_START_SHARE).max(1e-3));
    let mut obs = NoObserver;
    let sub = Context::new(&opts, &mut obs, ctx.stop_flag());
    f(&sub)
}

/// The outcome when the time limit or a stop request arrives before HiGHS runs: the warm-start
/// incumbent (if any), no bound.
fn stopped_before_highs(
    p: &Prepared,
    ctx: &Context<'_>,
    warm: Option<(Plan, f64)>,
    phases: &str,
) -> Outcome<PipelineSolution> {
    let term = ctx.early_termination();
    let mut o = match warm {
        Some((plan, v)) => Outcome::with(term, PipelineSolution::from_plan(p, &plan), v),
        None => Outcome::none(term),
    };
    o.notes.push(format!(
        "stopped before HiGHS ran ({phases}); solution from the warm start, no bound"
    ));
    o
}

/// The MILP solver.
pub struct MilpSolver;

struct Ranges {
    list: Vec<(usize, usize, usize)>,
    vars: Vec<Var>,
    /// (n, b) -> vars of ranges of n ending at b / starting at b
    ends: HashMap<(usize, usize), Vec<Var>>,
    starts: HashMap<(usize, usize), Vec<Var>>,
    by_node: Vec<Vec<usize>>,
}

/// The admissible ranges and their binaries; `None` when `ctx` asks to stop while building.
fn ranges(
    p: &Prepared,
    m: &mut Milp,
    r_pos: usize,
    ctx: &Context<'_>,
    cost: impl Fn(usize, usize, usize) -> f64,
) -> Option<Ranges> {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let mut rg = Ranges {
        list: vec![],
        vars: vec![],
        ends: HashMap::new(),
        starts: HashMap::new(),
        by_node: vec![vec![]; n],
    };
    for v in 0..n {
        if ctx.should_stop() {
            return None;
        }
        for a in 0..l {
            if a == 0 && !p.input_time_s(v).is_finite() {
                continue;
            }
            for b in a + 1..=l {
                if !p.stage_time_s(v, a, b).is_finite() {
                    break;
                }
                if !p.stage_fits(v, a, b, r_pos) {
                    continue;
                }
                if b == l && !p.output_time_s(v).is_finite() {
                    continue;
                }
                let x = m.bin_var(cost(v, a, b), &format!("z_{v}_{a}_{b}"));
                rg.by_node[v].push(rg.list.len());
                rg.list.push((v, a, b));
                rg.vars.push(x);
                rg.ends.entry((v, b)).or_default().push(x);
                rg.starts.entry((v, a)).or_default().push(x);
            }
        }
    }
    Some(rg)
}

impl Solver<Pipeline> for MilpSolver {
    fn name(&self) -> &'static str {
        "milp"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "HiGHS MILP, range formulation (z[node][a][b]); bottleneck, latency, training, energy, replicated max-flow; warm-started"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.memory_depends_on_position() && !is_replicated(p) {
            return Err(
                "1F1B position-dependent activation memory is not modelled by the MILP; use exact"
                    .into(),
            );
        }
        let size = p.num_nodes() * p.num_layers() * p.num_layers() / 2
            + p.num_nodes() * p.num_nodes() * p.num_layers();
        if size > 400_000 {
            return Err(format!(
                "model too large ({size} columns); use exact or local-search"
            ));
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        if is_replicated(p) {
            solve_replicated(p, ctx)
        } else {
            solve_single(p, ctx)
        }
    }
}

fn decode(p: &Prepared, rg: &Ranges, x: &[f64]) -> Plan {
    let mut stages: Vec<(usize, usize, usize)> = rg
        .list
        .iter()
        .zip(&rg.vars)
        .filter(|(_, v)| x[v.0] > 0.5)
        .map(|(r, _)| *r)
        .collect();
    stages.sort_by_key(|s| (s.1, s.0));
    let _ = p;
    Plan { stages }
}

fn result(
    p: &Prepared,
    ctx: &Context<'_>,
    r: crate::solve::milp::MilpResult,
    rg: &Ranges,
    warm: Option<(Plan, f64)>,
    maximize: bool,
) -> Outcome<PipelineSolution> {
    let mut term = r.status.termination();
    if term == Termination::Completed && ctx.interrupted() {
        term = Termination::Interrupted;
    }
    let mut best: Option<(Plan, f64)> = None;
    if let Some(x) = &r.x {
        let plan = decode(p, rg, x);
        if let Some(v) = plan_value(p, &plan) {
            best = Some((plan, v));
        }
    }
    if let Some((wp, wv)) = warm {
        let better = match &best {
            None => true,
            Some((_, v)) => {
                if maximize {
                    wv > *v
                } else {
                    wv < *v
                }
            }
        };
        if better && term != Termination::Optimal {
            best = Some((wp, wv));
        }
    }
    let mut o = match best {
        Some((plan, v)) => Outcome::with(term, PipelineSolution::from_plan(p, &plan), v),
        None => Outcome::none(term),
    };
    o.bound = r.bound;
    o.nodes = r.nodes;
    o.iterations = r.lp_iterations;
    o.notes.push(format!(
        "HiGHS status {:?}, {} columns",
        r.status,
        rg.vars.len()
    ));
    o
}

/// Aggregate columns `E_ub = Σ_a z_(u,a,b)` (kind 0) and `S_vb = Σ_c z_(v,b,c)` (kind 1).
#[derive(Default)]
struct Aggregates {
    vars: HashMap<(u8, usize, usize), Var>,
    defs: Vec<(Var, Vec<Var>)>,
}

impl Aggregates {
    /// The column for the sum of `zs` (a single binary stands for itself).
    fn get(&mut self, m: &mut Milp, key: (u8, usize, usize), zs: &[Var]) -> Var {
        if zs.len() == 1 {
            return zs[0];
        }
        *self.vars.entry(key).or_insert_with(|| {
            let x = m.var(
                0.0,
                1.0,
                0.0,
                &format!("{}_{}_{}", if key.0 == 0 { "E" } else { "S" }, key.1, key.2),
            );
            let mut row: Vec<(Var, f64)> = zs.iter().map(|z| (*z, -1.0)).collect();
            row.push((x, 1.0));
            m.eq(&row, 0.0);
            self.defs.push((x, zs.to_vec()));
            x
        })
    }

    /// Sets the aggregate columns of a start vector from its binaries.
    fn fill(&self, x: &mut [f64]) {
        for (a, zs) in &self.defs {
            x[a.0] = zs.iter().map(|z| x[z.0]).sum();
        }
    }
}

fn solve_single(p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let mm = p.micro_batches;
    let obj = p.objective;
    let (use_sum, use_max, _) = p.criteria();
    let energy_obj = obj == Objective::Energy;
    let need_links = use_sum || energy_obj || p.energy_budget_j.is_some();
    // warm start first (bounded share of the time), so an incumbent exists even if the build is cut short
    let t0 = Instant::now();
    let nodes: Vec<usize> = (0..n).collect();
    let warm = if ctx.options.warm_start {
        bounded_warm_start(ctx, |c| {
            local_search::search(
                p,
                &nodes,
                local_search::default_moves(p, n),
                ctx.options.seed,
                Some(c),
            )
        })
    } else {
        None
    };
    let warm_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let phases = |what: &str| {
        format!(
            "warm start {warm_s:.3} s, build {:.3} s {what}",
            t1.elapsed().as_secs_f64()
        )
    };
    if ctx.should_stop() {
        return Ok(stopped_before_highs(p, ctx, warm, &phases("not started")));
    }
    let mut m = Milp::new(Sense::Minimize);
    // objective weights: time-sum weight, energy weight
    let w_sum = if use_sum { 1.0 } else { 0.0 };
    let w_e = if energy_obj { mm } else { 0.0 };
    let stage_cost = |v: usize, a: usize, b: usize| {
        let mut c = w_sum * p.stage_time_s(v, a, b) + w_e * p.stage_energy_j(v, a, b);
        if a == 0 {
            c += w_sum * p.input_time_s(v) + w_e * p.input_energy_j(v);
        }
        if b == l {
            c += w_sum * p.output_time_s(v) + w_e * p.output_energy_j(v);
        }
        c
    };
    let Some(rg) = ranges(p, &mut m, 1, ctx, stage_cost) else {
        return Ok(stopped_before_highs(p, ctx, warm, &phases("(ranges)")));
    };
    let t = if use_max {
        Some(m.var(
            0.0,
            f64::INFINITY,
            if obj == Objective::TrainingIteration {
                mm - 1.0
            } else {
                1.0
            },
            "T",
        ))
    } else {
        None
    };
    // cover and node-once
    let mut cover: Vec<Vec<(Var, f64)>> = vec![vec![]; l];
    for (&(_, a, b), &x) in rg.list.iter().zip(&rg.vars) {
        for row in &mut cover[a..b] {
            row.push((x, 1.0));
        }
    }
    for (i, row) in cover.into_iter().enumerate() {
        if row.is_empty() {
            let mut o = Outcome::none(Termination::Infeasible);
            o.notes.push(format!(
                "no node can hold layer {i} (memory, availability or routes)"
            ));
            return Ok(o);
        }
        m.eq(&row, 1.0);
    }
    for v in 0..n {
        let row: Vec<(Var, f64)> = rg.by_node[v].iter().map(|&i| (rg.vars[i], 1.0)).collect();
        if row.len() > 1 {
            m.le(&row, 1.0);
        }
        if let Some(t) = t {
            let mut row: Vec<(Var, f64)> = rg.by_node[v]
                .iter()
                .map(|&i| {
                    let (_, a, b) = rg.list[i];
                    let mut c = p.stage_time_s(v, a, b);
                    if a == 0 {
                        c = c.max(p.input_time_s(v));
                    }
                    if b == l {
                        c = c.max(p.output_time_s(v));
                    }
                    (rg.vars[i], -c)
                })
                .collect();
            row.push((t, 1.0));
            m.ge(&row, 0.0);
        }
    }
    // energy budget expression (per micro-batch energies, times m)
    let mut energy_row: Vec<(Var, f64)> = vec![];
    if p.energy_budget_j.is_some() {
        for (i, &(v, a, b)) in rg.list.iter().enumerate() {
            let mut e = p.stage_energy_j(v, a, b);
            if a == 0 {
                e += p.input_energy_j(v);
            }
            if b == l {
                e += p.output_energy_j(v);
            }
            energy_row.push((rg.vars[i], mm * e));
        }
    }
    // links. `E_ub` / `S_vb` get one aggregate column each (defined by an equality row), so a link row
    // has 2-3 entries instead of |E_ub| + |S_vb| (13x fewer nonzeros on 82x16; HiGHS presolve and
    // probing, which do not poll the interrupt callback, get correspondingly shorter).
    let mut yvars: HashMap<(usize, usize, usize), Var> = HashMap::new();
    let mut agg = Aggregates::default();
    let empty = vec![];
    for b in 1..l {
        if ctx.should_stop() {
            return Ok(stopped_before_highs(p, ctx, warm, &phases("(link rows)")));
        }
        for u in 0..n {
            let eu = rg.ends.get(&(u, b)).unwrap_or(&empty);
            if eu.is_empty() {
                continue;
            }
            for v in 0..n {
                if u == v {
                    continue;
                }
                let sv = rg.starts.get(&(v, b)).unwrap_or(&empty);
                if sv.is_empty() {
                    continue;
                }
                let lt = p.link_time_s(u, v, b);
                let pair = [
                    (agg.get(&mut m, (0, u, b), eu), 1.0),
                    (agg.get(&mut m, (1, v, b), sv), 1.0),
                ];
                if !lt.is_finite() {
                    m.le(&pair, 1.0);
                    continue;
                }
                if let Some(t) = t {
                    if lt > 0.0 {
                        let mut row: Vec<(Var, f64)> =
                            pair.iter().map(|(x, _)| (*x, -lt)).collect();
                        row.push((t, 1.0));
                        m.ge(&row, -lt);
                    }
                }
                let le = p.link_energy_j(u, v, b);
                let cost = w_sum * lt + w_e * le;
                if need_links && (cost > 0.0 || (le > 0.0 && p.energy_budget_j.is_some())) {
                    let y = m.var(0.0, 1.0, cost, &format!("y_{u}_{v}_{b}"));
                    let mut row: Vec<(Var, f64)> = pair.iter().map(|(x, _)| (*x, -1.0)).collect();
                    row.push((y, 1.0));
                    m.ge(&row, -1.0);
                    if le > 0.0 && p.energy_budget_j.is_some() {
                        energy_row.push((y, mm * le));
                    }
                    yvars.insert((u, v, b), y);
                }
            }
        }
    }
    if let Some(bud) = p.energy_budget_j {
        m.le(&energy_row, bud);
    }
    let x0 = warm.as_ref().and_then(|(plan, _)| {
        let mut x = vec![0.0; m.num_cols()];
        for &(v, a, b) in &plan.stages {
            let i = rg.list.iter().position(|r| *r == (v, a, b))?;
            x[rg.vars[i].0] = 1.0;
        }
        for w in plan.stages.windows(2) {
            if let Some(y) = yvars.get(&(w[0].0, w[1].0, w[0].2)) {
                x[y.0] = 1.0;
            }
        }
        if let Some(t) = t {
            x[t.0] = p.plan_agg(plan).ok()?.max_s;
        }
        agg.fill(&mut x);
        (m.max_violation(&x) < 1e-7).then_some(x)
    });
    let build_s = t1.elapsed().as_secs_f64();
    if ctx.should_stop() {
        return Ok(stopped_before_highs(p, ctx, warm, &phases("")));
    }
    let t2 = Instant::now();
    let r = m.solve(ctx, x0.as_deref())?;
    let highs_s = t2.elapsed().as_secs_f64();
    let mut o = result(p, ctx, r, &rg, warm, false);
    if x0.is_some() {
        o.notes.push("warm-started from local-search".into());
    }
    o.notes.push(format!(
        "time: warm start {warm_s:.3} s, build {build_s:.3} s, HiGHS {highs_s:.3} s ({} rows)",
        m.num_rows()
    ));
    Ok(o)
}

fn solve_replicated(p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let t0 = Instant::now();
    let warm = if ctx.options.warm_start {
        Some(bounded_warm_start(ctx, |c| {
            replicas::greedy(p, ctx.options.seed, Some(c))
        }))
    } else {
        None
    };
    let warm_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let phases = |what: &str| {
        format!(
            "warm start {warm_s:.3} s, build {:.3} s {what}",
            t1.elapsed().as_secs_f64()
        )
    };
    if ctx.should_stop() {
        return Ok(stopped_before_highs(p, ctx, warm, &phases("not started")));
    }
    let mut m = Milp::new(Sense::Maximize);
    let Some(rg) = ranges(p, &mut m, usize::MAX, ctx, |_, _, _| 0.0) else {
        return Ok(stopped_before_highs(p, ctx, warm, &phases("(ranges)")));
    };
    // a big capacity for zero-time elements
    let mut maxcap: f64 = 0.0;
    for &(v, a, b) in &rg.list {
        let c = Prepared::capacity(p.stage_time_s(v, a, b));
        if c.is_finite() {
            maxcap = maxcap.max(c);
        }
    }
    let big = if maxcap > 0.0 { maxcap * 10.0 } else { 1e6 };
    let cap = |t: f64| Prepared::capacity(t).min(big);
    let empty = vec![];
    let mut phi = vec![];
    let mut fs = vec![];
    let mut ft = vec![];
    for v in 0..n {
        phi.push(m.var(0.0, f64::INFINITY, 0.0, &format!("phi_{v}")));
        fs.push(m.var(0.0, f64::INFINITY, 0.0, &format!("fs_{v}")));
        ft.push(m.var(0.0, f64::INFINITY, p.tokens_per_pass, &format!("ft_{v}")));
    }
    for v in 0..n {
        let mut row: Vec<(Var, f64)> = rg.by_node[v]
            .iter()
            .map(|&i| {
                let (_, a, b) = rg.list[i];
                (rg.vars[i], -cap(p.stage_time_s(v, a, b)))
            })
            .collect();
        if row.len() > 1 {
            let once: Vec<(Var, f64)> = row.iter().map(|(x, _)| (*x, 1.0)).collect();
            m.le(&once, 1.0);
        }
        row.push((phi[v], 1.0));
        m.le(&row, 0.0);
        let s0 = rg.starts.get(&(v, 0)).unwrap_or(&empty);
        let mut row: Vec<(Var, f64)> = s0.iter().map(|x| (*x, -cap(p.input_time_s(v)))).collect();
        row.push((fs[v], 1.0));
        m.le(&row, 0.0);
        let el = rg.ends.get(&(v, l)).unwrap_or(&empty);
        let mut row: Vec<(Var, f64)> = el.iter().map(|x| (*x, -cap(p.output_time_s(v)))).collect();
        row.push((ft[v], 1.0));
        m.le(&row, 0.0);
    }
    let mut fvars: HashMap<(usize, usize), Var> = HashMap::new();
    let mut evars: HashMap<(usize, usize, usize), Var> = HashMap::new();
    for u in 0..n {
        if ctx.should_stop() {
            return Ok(stopped_before_highs(p, ctx, warm, &phases("(arc rows)")));
        }
        for v in 0..n {
            if u == v {
                continue;
            }
            let mut caprow: Vec<(Var, f64)> = vec![];
            for b in 1..l {
                let eu = rg.ends.get(&(u, b)).unwrap_or(&empty);
                let sv = rg.starts.get(&(v, b)).unwrap_or(&empty);
                let lt = p.link_time_s(u, v, b);
                if eu.is_empty() || sv.is_empty() || !lt.is_finite() {
                    continue;
                }
                let e = m.var(0.0, 1.0, 0.0, &format!("e_{u}_{v}_{b}"));
                let mut r1: Vec<(Var, f64)> = eu.iter().map(|x| (*x, -1.0)).collect();
                r1.push((e, 1.0));
                m.le(&r1, 0.0);
                let mut r2: Vec<(Var, f64)> = sv.iter().map(|x| (*x, -1.0)).collect();
                r2.push((e, 1.0));
                m.le(&r2, 0.0);
                caprow.push((e, -cap(lt)));
                evars.insert((u, v, b), e);
            }
            if caprow.is_empty() {
                continue;
            }
            let f = m.var(0.0, f64::INFINITY, 0.0, &format!("f_{u}_{v}"));
            caprow.push((f, 1.0));
            m.le(&caprow, 0.0);
            fvars.insert((u, v), f);
        }
    }
    for v in 0..n {
        // inflow = phi = outflow
        let mut inflow: Vec<(Var, f64)> = vec![(fs[v], 1.0), (phi[v], -1.0)];
        let mut outflow: Vec<(Var, f64)> = vec![(phi[v], 1.0), (ft[v], -1.0)];
        for u in 0..n {
            if let Some(f) = fvars.get(&(u, v)) {
                inflow.push((*f, 1.0));
            }
            if let Some(f) = fvars.get(&(v, u)) {
                outflow.push((*f, -1.0));
            }
        }
        m.eq(&inflow, 0.0);
        m.eq(&outflow, 0.0);
    }
    let x0 = warm.as_ref().and_then(|(plan, _)| {
        let mut x = vec![0.0; m.num_cols()];
        let st = &plan.stages;
        for &(v, a, b) in st {
            let i = rg.list.iter().position(|r| *r == (v, a, b))?;
            x[rg.vars[i].0] = 1.0;
        }
        let (_, per, arcs) = p.max_flow_arcs(st);
        let k = st.len();
        for (i, &(v, _, b)) in st.iter().enumerate() {
            x[phi[v].0] = per[i];
            x[fs[v].0] = arcs[i][k];
            x[ft[v].0] = arcs[i][k + 1];
            for (j, &(w, a2, _)) in st.iter().enumerate() {
                if i != j && a2 == b && b < l {
                    if let Some(e) = evars.get(&(v, w, b)) {
                        x[e.0] = 1.0;
                    }
                    if let Some(f) = fvars.get(&(v, w)) {
                        x[f.0] += arcs[i][j];
                    }
                }
            }
        }
        (m.max_violation(&x) < 1e-6).then_some(x)
    });
    let build_s = t1.elapsed().as_secs_f64();
    if ctx.should_stop() {
        return Ok(stopped_before_highs(p, ctx, warm, &phases("")));
    }
    let t2 = Instant::now();
    let r = m.solve(ctx, x0.as_deref())?;
    let highs_s = t2.elapsed().as_secs_f64();
    let mut o = result(p, ctx, r, &rg, warm, true);
    if x0.is_some() {
        o.notes.push("warm-started from greedy-replicas".into());
    }
    o.notes.push(format!(
        "time: warm start {warm_s:.3} s, build {build_s:.3} s, HiGHS {highs_s:.3} s ({} rows)",
        m.num_rows()
    ));
    Ok(o)
}
