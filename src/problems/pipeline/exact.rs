//! Exact search over node orders and layer splits, proving optimality for arbitrary per-pair links.
//!
//! ## Bottleneck (no energy budget, `N <= 18`): bisection + subset-bitset DP
//! The optimum is one of finitely many element times (stage times `T(n,a,b)`, link times, input and
//! output times). Sort the candidates between a lower bound (`max_l min_n T(n,l,l+1)`) and the
//! heuristic incumbent, and binary-search the smallest feasible value `T*`. Feasibility of a cap `T`
//! ("is there a plan with every element `<= T`") is a DP over suffixes:
//!
//! `B(U, v)` = the set of boundaries `a` such that the nodes `U` (with `v ∈ U` first) can run layers
//! `[a, L)` as a suffix pipeline with every stage, link and the sink return `<= T`, stage memory checked
//! at its position `|U|` from the end (exact for 1F1B).
//!
//! `B({v}, v) = {a : T(v,a,L) <= T, fits, out(v) <= T}`;
//! `B(U+u, u) ⊇ {a : ∃ b ∈ B(U,v), C(u,v,b) <= T, T(u,a,b) <= T, fits(u,a,b,|U|+1)}`;
//! feasible iff some `B(U, v)` holds `0` with `in(v) <= T`.
//!
//! `B` is a bitset over boundaries, so the layer dimension costs a few word operations: the union over
//! `b ∈ X` of the start masks is read from per-byte lookup tables. States are visited in increasing
//! order of `U` (every subset before its supersets), the plan is rebuilt backwards from the table.
//! `2^N·N` states: 16 nodes take ~1M states per probe, ~17 probes.
//!
//! ## Every other case: label-setting branch and bound
//! Backward over start boundaries `a`: labels `(sum, max, energy, used set U)` at `(a, v)` for suffixes
//! whose first stage is `v` from `a`; a label dominates another at the same state when it is no worse on
//! the objective's criteria and uses a subset of its nodes (exact: any completion of the dominated
//! label is a completion of the dominating one). Labels whose objective, combined with a relaxed
//! prefix bound (min over prefix paths that may reuse nodes, per criterion), cannot beat the incumbent
//! are pruned. Exponential in the worst case; stops honestly at the time limit with incumbent and bound.

use super::cost::{Agg, Plan, Prepared};
use super::local_search;
use super::order_dp::single_only;
use super::{Objective, Pipeline, PipelineSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

/// Largest node count for the bitset DP (memory `2^N·N·words·8` bytes).
pub const MAX_BITSET_NODES: usize = 18;

/// The exact solver.
pub struct Exact;

impl Solver<Pipeline> for Exact {
    fn name(&self) -> &'static str {
        "exact"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "proves optimality: bisection on the bottleneck with a subset-bitset DP (N <= 18), label-setting branch and bound otherwise"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        single_only(p)
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        let nodes: Vec<usize> = (0..p.num_nodes()).collect();
        let inc = local_search::search(
            p,
            &nodes,
            local_search::default_moves(p, nodes.len()),
            ctx.options.seed,
            Some(ctx),
        );
        if let Some((_, v)) = &inc {
            ctx.incumbent(*v);
        }
        let out = if p.objective == Objective::Bottleneck
            && p.energy_budget_j.is_none()
            && p.num_nodes() <= MAX_BITSET_NODES
            && p.num_layers() < 64 * 8
        {
            bisect(p, ctx, inc)
        } else {
            label_setting(p, ctx, inc)
        };
        Ok(out)
    }
}

fn finish(
    p: &Prepared,
    term: Termination,
    best: Option<(Plan, f64)>,
    bound: Option<f64>,
    nodes: u64,
    note: &str,
) -> Outcome<PipelineSolution> {
    let mut o = match best {
        Some((plan, v)) => Outcome::with(term, PipelineSolution::from_plan(p, &plan), v),
        None => Outcome::none(term),
    };
    o.bound = bound;
    o.nodes = nodes;
    o.notes.push(note.into());
    o
}

// ---------------------------------------------------------------- bisection + bitset DP

enum Probe {
    Feasible(Plan),
    Infeasible,
    Stopped,
}

/// Every value the bottleneck can take, between `lo` and `hi`, sorted and deduplicated.
fn candidates(p: &Prepared, lo: f64, hi: f64) -> Vec<f64> {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let mut c = vec![];
    let mut push = |x: f64| {
        if x.is_finite() && x >= lo && x <= hi {
            c.push(x)
        }
    };
    for u in 0..n {
        push(p.input_time_s(u));
        push(p.output_time_s(u));
        for b in 1..=l {
            for a in (0..b).rev() {
                let t = p.stage_time_s(u, a, b);
                if t > hi {
                    break;
                }
                push(t);
            }
            if b < l {
                for v in 0..n {
                    if v != u {
                        push(p.link_time_s(u, v, b));
                    }
                }
            }
        }
    }
    c.sort_by(|a, b| a.partial_cmp(b).unwrap());
    c.dedup();
    c
}

/// A lower bound on the bottleneck: every layer runs somewhere, the input and output move somewhere.
fn bottleneck_lower_bound(p: &Prepared) -> f64 {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let mut lb: f64 = 0.0;
    for i in 0..l {
        lb = lb.max(
            (0..n)
                .map(|u| p.stage_time_s(u, i, i + 1))
                .fold(f64::INFINITY, f64::min),
        );
    }
    lb = lb.max(
        (0..n)
            .map(|u| p.input_time_s(u))
            .fold(f64::INFINITY, f64::min),
    );
    lb.max(
        (0..n)
            .map(|u| p.output_time_s(u))
            .fold(f64::INFINITY, f64::min),
    )
}

fn bisect(
    p: &Prepared,
    ctx: &mut Context<'_>,
    inc: Option<(Plan, f64)>,
) -> Outcome<PipelineSolution> {
    let lb = bottleneck_lower_bound(p);
    let hi_val = inc.as_ref().map_or(f64::INFINITY, |x| x.1);
    if !lb.is_finite() {
        return finish(
            p,
            Termination::Infeasible,
            None,
            None,
            0,
            "some layer fits no node, or no node is reachable",
        );
    }
    let cands = candidates(p, lb, hi_val);
    let words = (p.num_layers() + 1).div_ceil(64);
    let mut probes = 0u64;
    let mut probe = |t: f64, ctx: &Context<'_>| -> Probe {
        probes += 1;
        match words {
            1 => feasible::<1>(p, t, ctx),
            2 => feasible::<2>(p, t, ctx),
            3 => feasible::<3>(p, t, ctx),
            4 => feasible::<4>(p, t, ctx),
            5 | 6 => feasible::<6>(p, t, ctx),
            _ => feasible::<8>(p, t, ctx),
        }
    };
    if cands.is_empty() {
        // Only possible without an incumbent: no element time is finite.
        return finish(
            p,
            Termination::Infeasible,
            None,
            None,
            0,
            "no finite candidate bottleneck",
        );
    }
    let mut best = inc.filter(|x| x.1 <= cands[cands.len() - 1]);
    let (mut lo, mut hi) = (0usize, cands.len() - 1);
    if best.is_none() {
        match probe(cands[hi], ctx) {
            Probe::Feasible(plan) => {
                let v = p.plan_objective(&plan).unwrap_or(cands[hi]);
                best = Some((plan, v));
            }
            Probe::Infeasible => {
                return finish(
                    p,
                    Termination::Infeasible,
                    None,
                    None,
                    probes,
                    "no plan meets every element at the largest candidate time",
                );
            }
            Probe::Stopped => {
                return finish(
                    p,
                    ctx.early_termination(),
                    None,
                    Some(cands[0]),
                    probes,
                    "stopped before finding a plan",
                );
            }
        }
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        match probe(cands[mid], ctx) {
            Probe::Feasible(plan) => {
                let v = p.plan_objective(&plan).unwrap_or(cands[mid]);
                // the plan's bottleneck is a candidate <= cands[mid]
                hi = cands.partition_point(|&c| c < v).min(mid);
                best = Some((plan, v));
                ctx.incumbent(v);
            }
            Probe::Infeasible => lo = mid + 1,
            Probe::Stopped => {
                return finish(
                    p,
                    ctx.early_termination(),
                    best,
                    Some(cands[lo]),
                    probes,
                    "bisection stopped; bound = smallest candidate not yet ruled out",
                );
            }
        }
    }
    finish(
        p,
        Termination::Optimal,
        best,
        Some(cands[lo]),
        probes,
        "bottleneck proved by bisection over candidate element times",
    )
}

#[inline]
fn or_assign<const W: usize>(a: &mut [u64; W], b: &[u64; W]) {
    for i in 0..W {
        a[i] |= b[i];
    }
}

#[inline]
fn is_zero<const W: usize>(a: &[u64; W]) -> bool {
    a.iter().all(|&x| x == 0)
}

#[inline]
fn bit<const W: usize>(a: &[u64; W], i: usize) -> bool {
    a[i / 64] >> (i % 64) & 1 == 1
}

fn feasible<const W: usize>(p: &Prepared, cap: f64, ctx: &Context<'_>) -> Probe {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let posdep = p.memory_depends_on_position();
    let mcap = p.micro_batches.min(1e9) as usize;
    let ncls = if posdep { n.min(mcap).max(1) } else { 1 };
    let cls = |r: usize| if posdep { r.min(ncls) - 1 } else { 0 };
    // start masks: sm[(u*ncls + c)*(l+1) + b] = {a : stage (u, a, b) <= cap and fits at class c}
    let mut sm = vec![[0u64; W]; n * ncls * (l + 1)];
    for u in 0..n {
        for c in 0..ncls {
            let r = c + 1;
            for b in 1..=l {
                let m = &mut sm[(u * ncls + c) * (l + 1) + b];
                for a in (0..b).rev() {
                    if p.stage_time_s(u, a, b) > cap {
                        break;
                    }
                    if p.stage_fits(u, a, b, r) {
                        m[a / 64] |= 1 << (a % 64);
                    }
                }
            }
        }
    }
    // byte tables over boundaries 1..l-1
    let nch = W * 8;
    let mut tab = vec![[0u64; W]; n * ncls * nch * 256];
    for u in 0..n {
        for c in 0..ncls {
            for k in 0..nch {
                let base = ((u * ncls + c) * nch + k) * 256;
                for byte in 1..256usize {
                    let low = byte & byte.wrapping_neg();
                    let b = 8 * k + low.trailing_zeros() as usize;
                    let mut m = tab[base + (byte ^ low)];
                    if b >= 1 && b < l {
                        or_assign(&mut m, &sm[(u * ncls + c) * (l + 1) + b]);
                    }
                    tab[base + byte] = m;
                }
            }
        }
    }
    // link masks: lk[u*n + v] = {b in 1..l-1 : C(u, v, b) <= cap}
    let mut lk = vec![[0u64; W]; n * n];
    for u in 0..n {
        for v in 0..n {
            if u == v {
                continue;
            }
            for b in 1..l {
                if p.link_time_s(u, v, b) <= cap {
                    lk[u * n + v][b / 64] |= 1 << (b % 64);
                }
            }
        }
    }
    let full = 1usize << n;
    let mut dp = vec![[0u64; W]; full * n];
    let input_ok: Vec<bool> = (0..n).map(|v| p.input_time_s(v) <= cap).collect();
    for v in 0..n {
        if p.output_time_s(v) <= cap {
            dp[(1 << v) * n + v] = sm[(v * ncls + cls(1)) * (l + 1) + l];
        }
    }
    let mut found: Option<(usize, usize)> = None;
    'outer: for set in 1..full {
        if set & 1023 == 0 && ctx.should_stop() {
            return Probe::Stopped;
        }
        let r = set.count_ones() as usize;
        let c = cls(r + 1);
        let mut vs = set;
        while vs != 0 {
            let v = vs.trailing_zeros() as usize;
            vs &= vs - 1;
            let bset = dp[set * n + v];
            if is_zero(&bset) {
                continue;
            }
            if bit(&bset, 0) && input_ok[v] {
                found = Some((set, v));
                break 'outer;
            }
            let mut us = (full - 1) & !set;
            while us != 0 {
                let u = us.trailing_zeros() as usize;
                us &= us - 1;
                let lm = &lk[u * n + v];
                let mut acc = [0u64; W];
                let base = (u * ncls + c) * nch * 256;
                for wi in 0..W {
                    let mut x = bset[wi] & lm[wi];
                    while x != 0 {
                        let byte_pos = x.trailing_zeros() as usize / 8;
                        let byte = ((x >> (8 * byte_pos)) & 0xff) as usize;
                        or_assign(&mut acc, &tab[base + (wi * 8 + byte_pos) * 256 + byte]);
                        x &= !(0xffu64 << (8 * byte_pos));
                    }
                }
                if !is_zero(&acc) {
                    let to = (set | 1 << u) * n + u;
                    or_assign(&mut dp[to], &acc);
                    if bit(&acc, 0) && input_ok[u] {
                        found = Some((set | 1 << u, u));
                        break 'outer;
                    }
                }
            }
        }
    }
    let Some((mut set, mut v)) = found else {
        return Probe::Infeasible;
    };
    // Rebuild backwards: every table entry of a proper subset of `set` is final.
    let mut a = 0usize;
    let mut stages = vec![];
    loop {
        let r = set.count_ones() as usize;
        if set == 1 << v {
            stages.push((v, a, l));
            break;
        }
        let rest = set & !(1 << v);
        let mut next = None;
        'search: for b in a + 1..l {
            if p.stage_time_s(v, a, b) > cap {
                break;
            }
            if !p.stage_fits(v, a, b, r) {
                continue;
            }
            let mut ws = rest;
            while ws != 0 {
                let w = ws.trailing_zeros() as usize;
                ws &= ws - 1;
                if bit(&dp[rest * n + w], b) && p.link_time_s(v, w, b) <= cap {
                    next = Some((w, b));
                    break 'search;
                }
            }
        }
        let (w, b) =
            next.expect("bitset DP reconstruction: a recorded boundary has no predecessor");
        stages.push((v, a, b));
        set = rest;
        v = w;
        a = b;
    }
    Probe::Feasible(Plan { stages })
}

// ---------------------------------------------------------------- label setting

#[derive(Clone, Copy)]
struct Label {
    g: Agg,
    used: u64,
    b: u32,
    w: u32,
    i: u32,
}

/// Relaxed prefix bounds `F(a, v)` per criterion (node reuse allowed, smallest memory position).
fn prefix_bounds(p: &Prepared) -> Vec<Agg> {
    let (n, l) = (p.num_nodes(), p.num_layers());
    let inf = Agg {
        sum_s: f64::INFINITY,
        max_s: f64::INFINITY,
        energy_j: f64::INFINITY,
    };
    let mut q = vec![inf; (l + 1) * n];
    let comp_min = |x: &mut Agg, y: Agg| {
        x.sum_s = x.sum_s.min(y.sum_s);
        x.max_s = x.max_s.min(y.max_s);
        x.energy_j = x.energy_j.min(y.energy_j);
    };
    // f[a*n + v]: best prefix before a stage of v starting at a (including the link into v)
    let mut f = vec![inf; (l + 1) * n];
    for v in 0..n {
        f[v] = p.input_agg(v);
    }
    for b in 1..=l {
        for u in 0..n {
            let mut best = inf;
            for a in 0..b {
                if !p.stage_ok(u, a, b, 1) {
                    continue;
                }
                let st = p.stage_agg(u, a, b);
                let pre = f[a * n + u];
                if pre.sum_s.is_finite() || pre.max_s.is_finite() || pre.energy_j.is_finite() {
                    comp_min(&mut best, pre.plus(st));
                }
            }
            q[b * n + u] = best;
        }
        if b < l {
            for v in 0..n {
                let mut best = inf;
                for u in 0..n {
                    if u != v {
                        let qu = q[b * n + u];
                        let lk = p.link_agg(u, v, b);
                        if lk.is_finite() {
                            comp_min(&mut best, qu.plus(lk));
                        }
                    }
                }
                f[b * n + v] = best;
            }
        }
    }
    // global bound at index l*n.. : completions q[l][u] + out(u)
    let mut glob = inf;
    for u in 0..n {
        let o = p.output_agg(u);
        if o.is_finite() {
            comp_min(&mut glob, q[l * n + u].plus(o));
        }
    }
    f.truncate(l * n);
    f.push(glob);
    f
}

fn label_setting(
    p: &Prepared,
    ctx: &mut Context<'_>,
    inc: Option<(Plan, f64)>,
) -> Outcome<PipelineSolution> {
    let (n, l) = (p.num_nodes(), p.num_layers());
    if n > 64 {
        return finish(
            p,
            Termination::Error,
            inc,
            None,
            0,
            "label setting supports at most 64 nodes",
        );
    }
    let f = prefix_bounds(p);
    let glob = f[l * n];
    let global_bound = {
        let v = p.objective_of(&glob);
        if v.is_finite() {
            Some(v)
        } else {
            None
        }
    };
    let mut ub = inc.as_ref().map_or(f64::INFINITY, |x| x.1);
    let lb_of = |g: &Agg, a: usize, v: usize| -> f64 {
        let pre = f[a * n + v];
        p.objective_of(&Agg {
            sum_s: g.sum_s + pre.sum_s,
            max_s: g.max_s.max(pre.max_s),
            energy_j: g.energy_j + pre.energy_j,
        })
    };
    let budget_lb_ok = |g: &Agg, a: usize, v: usize| -> bool {
        let pre = f[a * n + v];
        p.budget_ok(&Agg {
            energy_j: g.energy_j + pre.energy_j,
            ..*g
        })
    };
    let mut labels: Vec<Vec<Label>> = vec![vec![]; (l + 1) * n];
    let mut created = 0u64;
    const MAX_LABELS: u64 = 20_000_000;
    let tol = |x: f64| x * (1.0 - 1e-12) - 1e-15;
    for a in (0..l).rev() {
        if ctx.should_stop() || created > MAX_LABELS {
            let term = if created > MAX_LABELS {
                Termination::IterationLimit
            } else {
                ctx.early_termination()
            };
            return finish(
                p,
                term,
                inc,
                global_bound,
                created,
                "label setting stopped; bound is the node-reuse relaxation",
            );
        }
        for v in 0..n {
            let mut set: Vec<Label> = vec![];
            for b in a + 1..=l {
                let st = p.stage_agg(v, a, b);
                if !st.is_finite() || lb_of(&st, a, v) >= tol(ub) && ub.is_finite() {
                    break;
                }
                let push = |x: Label, set: &mut Vec<Label>| {
                    if set
                        .iter()
                        .any(|y| p.dominates(&y.g, &x.g) && y.used & !x.used == 0)
                    {
                        return;
                    }
                    set.retain(|y| !(p.dominates(&x.g, &y.g) && x.used & !y.used == 0));
                    set.push(x);
                };
                if b == l {
                    if !p.stage_fits(v, a, l, 1) {
                        continue;
                    }
                    let o = p.output_agg(v);
                    if !o.is_finite() {
                        continue;
                    }
                    let g = st.plus(o);
                    if (ub.is_finite() && lb_of(&g, a, v) >= tol(ub)) || !budget_lb_ok(&g, a, v) {
                        continue;
                    }
                    created += 1;
                    push(
                        Label {
                            g,
                            used: 1 << v,
                            b: l as u32,
                            w: u32::MAX,
                            i: 0,
                        },
                        &mut set,
                    );
                    continue;
                }
                for w in 0..n {
                    if w == v {
                        continue;
                    }
                    let lk = p.link_agg(v, w, b);
                    if !lk.is_finite() {
                        continue;
                    }
                    let sl = st.plus(lk);
                    for (i, x) in labels[b * n + w].iter().enumerate() {
                        if x.used >> v & 1 == 1 {
                            continue;
                        }
                        let r = x.used.count_ones() as usize + 1;
                        if !p.stage_fits(v, a, b, r) {
                            continue;
                        }
                        let g = sl.plus(x.g);
                        if (ub.is_finite() && lb_of(&g, a, v) >= tol(ub)) || !budget_lb_ok(&g, a, v)
                        {
                            continue;
                        }
                        created += 1;
                        push(
                            Label {
                                g,
                                used: x.used | 1 << v,
                                b: b as u32,
                                w: w as u32,
                                i: i as u32,
                            },
                            &mut set,
                        );
                    }
                }
            }
            labels[a * n + v] = set;
        }
    }
    // complete plans
    let mut best: Option<(f64, usize, usize)> = None;
    for v in 0..n {
        let inp = p.input_agg(v);
        if !inp.is_finite() {
            continue;
        }
        for (i, x) in labels[v].iter().enumerate() {
            let g = inp.plus(x.g);
            if !p.budget_ok(&g) {
                continue;
            }
            let val = p.objective_of(&g);
            if best.is_none_or(|b| val < b.0) {
                best = Some((val, v, i));
            }
        }
    }
    let result = match best {
        Some((val, v0, i0)) if val < ub || inc.is_none() => {
            let (mut v, mut i, mut a) = (v0, i0, 0usize);
            let mut stages = vec![];
            loop {
                let x = labels[a * n + v][i];
                stages.push((v, a, x.b as usize));
                if x.w == u32::MAX {
                    break;
                }
                a = x.b as usize;
                v = x.w as usize;
                i = x.i as usize;
            }
            ub = val;
            Some((Plan { stages }, val))
        }
        _ => inc,
    };
    match result {
        Some(r) => {
            let v = r.1;
            let _ = ub;
            finish(
                p,
                Termination::Optimal,
                Some(r),
                Some(v),
                created,
                "label-setting branch and bound completed",
            )
        }
        None => finish(
            p,
            Termination::Infeasible,
            None,
            None,
            created,
            "label setting found no feasible plan",
        ),
    }
}
