//! The per-layer mathematical program shared by `milp` (binary holdings), `lp-round` (relaxed
//! holdings) and `brute-force` / routing polish (holdings fixed, routing LP).
//!
//! Columns: `x_{s,e}` (holdings), `r_{h,e,s}` (share of home `h`'s activations of `e` sent to `s`,
//! only over existing links and where `d_{h,e} > 0`), `z` (the layer's max utilisation divided by the
//! scale `ū = Σ_e d_e f / Σ_s F_s`, which keeps the load rows near 1; `z ≤ ρ/(|L| ū)` is the capacity
//! constraint). Rows: `Σ_s r = 1`, `r ≤ x`, `Σ_e x_{s,e} ≤ k_s`, `Σ_s x_{s,e} ≥ 1`,
//! `Σ x ≤ |E| + B`, `Σ_{h,e} d k_s r / ū − z ≤ 0`. Objective: the layer objective of `cost.rs`.

use super::cost::{LayerPlan, Prepared, Route};
use crate::error::Result;
use crate::solve::milp::{Milp, MilpStatus, Var};
use crate::solve::{Context, NoObserver, Sense, SolveOptions, StopFlag};
use std::time::Instant;

/// How the holdings enter the model.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    Integer,
    Relaxed,
    Fixed(&'a [Vec<bool>]),
}

/// A built layer model.
pub struct LayerModel {
    pub milp: Milp,
    x: Vec<Vec<Option<Var>>>,
    r: Vec<Vec<Vec<Option<Var>>>>,
    z: Var,
    scale: f64,
    fixed: Option<Vec<Vec<bool>>>,
    /// One routing unit for all homes (max-load objective: routing has no network cost).
    aggregated: bool,
}

/// The routing units of layer `l`: per home, or one unit with the total demand when the network
/// does not enter the objective and every home reaches every server.
fn units(p: &Prepared, l: usize) -> (Vec<(usize, Vec<f64>)>, bool) {
    if p.comm_weight() == 0.0 && p.fully_connected() {
        (vec![(p.homes[0], p.expert_demand[l].clone())], true)
    } else {
        (
            p.homes
                .iter()
                .enumerate()
                .map(|(h, &hs)| (hs, p.home_demand[l][h].clone()))
                .collect(),
            false,
        )
    }
}

/// Servers as `(class, server)` sorted by class: servers of one class are interchangeable (same
/// compute, slots, links from every home when the network is in the objective, no migration costs,
/// not a home when the network counts), so any solution can be permuted to order their loads.
pub fn interchangeable(p: &Prepared) -> Vec<(usize, usize)> {
    let ns = p.num_servers();
    let net = p.comm_weight() > 0.0;
    let same = |a: usize, b: usize| {
        p.servers[a].flops == p.servers[b].flops
            && p.servers[a].slots == p.servers[b].slots
            && p.homes.iter().all(|&h| {
                let (ca, cb) = (p.comm[h][a], p.comm[h][b]);
                ca.is_finite() == cb.is_finite() && (!net || (ca == cb && h != a && h != b))
            })
    };
    let free = p.current.is_none() || p.mig_per_byte == 0.0;
    let class = classes(ns, |a, b| free && same(a, b));
    let mut v: Vec<(usize, usize)> = (0..ns).map(|s| (class[s], s)).collect();
    v.sort();
    v
}

/// Class labels of `n` items (first-seen order): item `b` joins the class of the first `a < b` with
/// `same(a, b)`.
pub fn classes(n: usize, same: impl Fn(usize, usize) -> bool) -> Vec<usize> {
    let mut class = vec![usize::MAX; n];
    let mut next = 0;
    for a in 0..n {
        if class[a] != usize::MAX {
            continue;
        }
        class[a] = next;
        for b in a + 1..n {
            if class[b] == usize::MAX && same(a, b) {
                class[b] = next;
            }
        }
        next += 1;
    }
    class
}

/// Whether [`build`] adds the [`copy_cuts`] (on by default; a switch for experiments).
pub static COPY_CUTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Copy-count cuts on the scaled max utilisation `z` (valid for integer holdings): the demand `D_T` of a
/// set `T` of experts lands on the servers holding one of them, at most `C_T = Σ_{e∈T} Σ_s x_{s,e}`
/// servers, so `z·ū ≥ g_T(C_T) = D_T f / F_top(min(C_T, S))`, where `F_top(c)` is the compute of the `c`
/// fastest servers with slots. `g_T` is convex and decreasing over the integers (`1/F` of a concave
/// increasing `F`), so every secant through consecutive integers `c, c+1` is a valid cut
/// `z ≥ g(c) + (g(c+1) − g(c))(C_T − c)`. Sets: every single expert and the `j` heaviest experts, for
/// `j < S`; only cuts that rise above the balanced load at their own point are kept (the LP relaxation
/// alone would spread every expert over all servers: its bound is the balanced load).
/// Returns rows `(T as [(e, slope)], rhs)` meaning `z − slope·Σ_{e∈T} Σ_s x_{s,e} ≥ rhs`.
pub fn copy_cuts(p: &Prepared, l: usize, scale: f64) -> Vec<(Vec<(usize, f64)>, f64)> {
    let mut fl: Vec<f64> = p
        .servers
        .iter()
        .filter(|s| s.slots > 0)
        .map(|s| s.flops)
        .collect();
    fl.sort_by(|a, b| b.total_cmp(a));
    let ns = fl.len();
    if ns < 2 || scale <= 0.0 {
        return vec![];
    }
    let mut ftop = vec![0.0; ns + 1];
    for c in 0..ns {
        ftop[c + 1] = ftop[c] + fl[c];
    }
    let d = &p.expert_demand[l];
    let total: f64 = d.iter().sum();
    let balanced = total / ftop[ns];
    let mut order: Vec<usize> = (0..p.experts).filter(|&e| d[e] > 0.0).collect();
    order.sort_by(|&a, &b| d[b].total_cmp(&d[a]));
    let mut sets: Vec<Vec<usize>> = order.iter().map(|&e| vec![e]).collect();
    for j in 2..ns.min(order.len() + 1) {
        sets.push(order[..j].to_vec());
    }
    let mut out = vec![];
    for t in sets {
        let dt: f64 = t.iter().map(|&e| d[e]).sum();
        // g(c) in units of z (scaled utilisation), for c = |T| ..= S
        let g = |c: usize| dt * p.flops_per_act / ftop[c.min(ns)] / scale;
        let bal = balanced * p.flops_per_act / scale;
        for c in t.len()..ns {
            let (g0, g1) = (g(c), g(c + 1));
            if g0 <= bal * (1.0 + 1e-9) {
                break;
            }
            let slope = g1 - g0;
            // the secant must stay below g at every integer point (convexity, checked numerically)
            let valid = (t.len()..=ns)
                .all(|k| g0 + slope * (k as f64 - c as f64) <= g(k) * (1.0 + 1e-9) + 1e-12);
            if !valid {
                continue;
            }
            // z ≥ g0 + slope (C − c)  ⇔  z − slope·C ≥ g0 − slope·c
            out.push((
                t.iter().map(|&e| (e, slope)).collect(),
                g0 - slope * c as f64,
            ));
        }
    }
    out
}

/// Builds the model of layer `l`.
pub fn build(p: &Prepared, l: usize, mode: Mode<'_>) -> LayerModel {
    let ns = p.num_servers();
    let ne = p.experts;
    let total_work: f64 = p.expert_demand[l].iter().sum::<f64>() * p.flops_per_act;
    let total_flops: f64 = p.servers.iter().map(|s| s.flops).sum();
    let scale = if total_work > 0.0 {
        total_work / total_flops
    } else {
        1.0
    };
    let mut m = Milp::new(Sense::Minimize);
    let fixed = match mode {
        Mode::Fixed(h) => Some(h.to_vec()),
        _ => None,
    };
    let mut x = vec![vec![None; ne]; ns];
    for s in 0..ns {
        for e in 0..ne {
            let c = p.hold_cost(l, s, e);
            match mode {
                Mode::Integer if p.servers[s].slots > 0 => {
                    x[s][e] = Some(m.bin_var(c, &format!("x_{s}_{e}")))
                }
                Mode::Relaxed if p.servers[s].slots > 0 => {
                    x[s][e] = Some(m.var(0.0, 1.0, c, &format!("x_{s}_{e}")))
                }
                Mode::Fixed(h) if h[s][e] => m.add_offset(c),
                _ => {}
            }
        }
    }
    let cap = p.layer_cap / scale;
    let z = m.var(0.0, cap, p.load_weight() * scale, "z");
    let cw = p.comm_weight();
    let (units, aggregated) = units(p, l);
    let mut r = vec![vec![vec![None; ns]; ne]; units.len()];
    let mut load_rows: Vec<Vec<(Var, f64)>> = vec![vec![(z, -1.0)]; ns];
    for (h, (hs, dem)) in units.iter().enumerate() {
        let hs = *hs;
        for e in 0..ne {
            let d = dem[e];
            if d <= 0.0 {
                continue;
            }
            let mut sum = vec![];
            for s in 0..ns {
                let allowed = p.comm[hs][s].is_finite()
                    && match mode {
                        Mode::Fixed(hold) => hold[s][e],
                        _ => x[s][e].is_some(),
                    };
                if !allowed {
                    continue;
                }
                let v = m.var(0.0, 1.0, cw * d * p.comm[hs][s], &format!("r_{h}_{e}_{s}"));
                r[h][e][s] = Some(v);
                sum.push((v, 1.0));
                load_rows[s].push((v, d * p.util_per_act(s) / scale));
                if let Some(xv) = x[s][e] {
                    m.le(&[(v, 1.0), (xv, -1.0)], 0.0);
                }
            }
            m.eq(&sum, 1.0);
        }
    }
    for row in &load_rows {
        if row.len() > 1 {
            m.le(row, 0.0);
        }
    }
    // symmetry breaking: among interchangeable servers, loads in non-increasing index order
    if !matches!(mode, Mode::Fixed(_)) {
        let classes = interchangeable(p);
        for w in classes.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a.0 == b.0 {
                let mut row: Vec<(Var, f64)> = load_rows[a.1][1..].to_vec();
                row.extend(load_rows[b.1][1..].iter().map(|&(v, c)| (v, -c)));
                m.ge(&row, 0.0);
            }
        }
    }
    if !matches!(mode, Mode::Fixed(_)) {
        let mut all = vec![];
        for s in 0..ns {
            let row: Vec<(Var, f64)> = x[s].iter().flatten().map(|&v| (v, 1.0)).collect();
            if !row.is_empty() {
                m.le(&row, p.servers[s].slots as f64);
            }
            all.extend(row);
        }
        for e in 0..ne {
            let col: Vec<(Var, f64)> = (0..ns).filter_map(|s| x[s][e]).map(|v| (v, 1.0)).collect();
            m.ge(&col, 1.0);
        }
        m.le(&all, p.max_replicas as f64);
        let cuts = if COPY_CUTS.load(std::sync::atomic::Ordering::Relaxed) {
            copy_cuts(p, l, scale)
        } else {
            vec![]
        };
        for (coefs, rhs) in cuts {
            let mut row: Vec<(Var, f64)> = vec![(z, 1.0)];
            for (e, a) in coefs {
                row.extend((0..ns).filter_map(|s| x[s][e]).map(|v| (v, -a)));
            }
            m.ge(&row, rhs);
        }
    }
    LayerModel {
        milp: m,
        x,
        r,
        z,
        scale,
        fixed,
        aggregated,
    }
}

impl LayerModel {
    /// The layer plan of a column vector (holdings `x > 0.5`; shares cleaned and renormalised).
    pub fn plan(&self, p: &Prepared, _l: usize, col: &[f64]) -> LayerPlan {
        let ns = p.num_servers();
        let hold: Vec<Vec<bool>> = match &self.fixed {
            Some(h) => h.clone(),
            None => (0..ns)
                .map(|s| {
                    (0..p.experts)
                        .map(|e| self.x[s][e].is_some_and(|v| col[v.0] > 0.5))
                        .collect()
                })
                .collect(),
        };
        let unit = |h: usize| if self.aggregated { 0 } else { h };
        let route: Vec<Route> = (0..p.homes.len())
            .map(|h| {
                let h = unit(h);
                (0..p.experts)
                    .map(|e| {
                        let mut v: Vec<(usize, f64)> = (0..ns)
                            .filter_map(|s| {
                                let val = col[self.r[h][e][s]?.0];
                                (hold[s][e] && val > 1e-9).then_some((s, val))
                            })
                            .collect();
                        let tot: f64 = v.iter().map(|x| x.1).sum();
                        if tot > 0.0 {
                            v.iter_mut().for_each(|x| x.1 /= tot);
                        } else if let Some(s) = (0..ns).find(|&s| hold[s][e]) {
                            v = vec![(s, 1.0)];
                        }
                        v
                    })
                    .collect()
            })
            .collect();
        LayerPlan { hold, route }
    }

    /// The holding columns `x[s][e]` of a column vector (0 where no column).
    pub fn holding_values(&self, p: &Prepared, col: &[f64]) -> Vec<Vec<f64>> {
        (0..p.num_servers())
            .map(|s| {
                (0..p.experts)
                    .map(|e| self.x[s][e].map_or(0.0, |v| col[v.0]))
                    .collect()
            })
            .collect()
    }

    /// A column vector for a plan (warm start).
    pub fn columns(&self, p: &Prepared, l: usize, plan: &LayerPlan) -> Vec<f64> {
        let mut col = vec![0.0; self.milp.num_cols()];
        for s in 0..p.num_servers() {
            for e in 0..p.experts {
                if let Some(v) = self.x[s][e] {
                    col[v.0] = if plan.hold[s][e] { 1.0 } else { 0.0 };
                }
            }
        }
        for (h, route) in plan.route.iter().enumerate() {
            if self.aggregated && h > 0 {
                break;
            }
            for (e, pairs) in route.iter().enumerate() {
                for &(s, f) in pairs {
                    if let Some(v) = self.r[h][e][s] {
                        col[v.0] = f;
                    }
                }
            }
        }
        col[self.z.0] = p.plan_layer_value(l, plan).max_util / self.scale;
        col
    }
}

/// The result of one layer solve.
pub struct LayerSolve {
    pub status: MilpStatus,
    pub plan: Option<LayerPlan>,
    pub bound: Option<f64>,
    pub nodes: u64,
}

/// Solves layer `l` in its own HiGHS instance (one thread) until `deadline`.
pub fn solve_layer(
    p: &Prepared,
    l: usize,
    mode: Mode<'_>,
    base: &SolveOptions,
    deadline: Option<Instant>,
    stop: StopFlag,
    warm: Option<&LayerPlan>,
) -> Result<LayerSolve> {
    let lm = build(p, l, mode);
    let mut opts = base.clone();
    opts.threads = Some(1);
    opts.time_limit_s = deadline.map(|d| {
        d.saturating_duration_since(Instant::now())
            .as_secs_f64()
            .max(1e-3)
    });
    let mut obs = NoObserver;
    let mut ctx = Context::new(&opts, &mut obs, stop);
    let ws = warm.map(|w| lm.columns(p, l, w));
    let res = lm.milp.solve(&mut ctx, ws.as_deref())?;
    Ok(LayerSolve {
        status: res.status,
        plan: res.x.as_ref().map(|x| lm.plan(p, l, x)),
        bound: res.bound,
        nodes: res.nodes,
    })
}
