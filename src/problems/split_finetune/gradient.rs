//! `projected-gradient`: the freezing ratios as continuous variables. For each admissible cut, the
//! objective over `(f_c, f_s) ∈ [0,1]²` is relaxed to the piecewise-bilinear interpolation of the exact
//! per-choice objective (exact bandwidth sub-problem) at the admissible levels (a vertex whose lower
//! bound cannot beat the incumbent of the earlier cuts takes its bound instead of being solved);
//! projected gradient descent with a normalised step and Armijo backtracking runs on it from the best
//! of 10 start points (corners, centre, edge midpoints, the vertex of least lower bound); the result is rounded to the best corner of its final cell (checked by `solve_combo`).
//! Infeasible choices are `+∞`, so the descent never enters a cell touching one. Heuristic: the
//! surrogate is not convex and the rounding is local. (No `argmin` dependency: the 2-D projected
//! gradient is a few lines.)

use super::bandwidth::{lower_bound, solve_combo};
use super::cost::{Choice, Prepared};
use super::search::{combos, Solved};
use super::SplitFinetune;
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind};
use std::collections::HashMap;

pub struct ProjectedGradient;

/// Level indices sorted by value, equal values merged.
fn sorted_levels(levels: &[f64]) -> Vec<(f64, usize)> {
    let mut v: Vec<(f64, usize)> = levels.iter().copied().zip(0..).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// Cell index `i` and weight `t ∈ [0,1]` of `x` on the sorted grid `xs`.
fn cell(xs: &[(f64, usize)], x: f64) -> (usize, f64) {
    if xs.len() == 1 {
        return (0, 0.0);
    }
    let mut i = 0;
    while i + 2 < xs.len() && x > xs[i + 1].0 {
        i += 1;
    }
    let t = ((x - xs[i].0) / (xs[i + 1].0 - xs[i].0)).clamp(0.0, 1.0);
    (i, t)
}

impl Solver<SplitFinetune> for ProjectedGradient {
    fn name(&self) -> &'static str {
        "projected-gradient"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Gradient
    }
    fn description(&self) -> &'static str {
        "per cut, projected gradient on the bilinear interpolation of the exact objective over continuous freezing ratios, rounded to the best cell corner"
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::SplitFinetuneSolution>> {
        let xs = sorted_levels(&p.client_levels);
        let ys = sorted_levels(&p.server_levels);
        let mut memo: HashMap<Choice, Option<Solved>> = HashMap::new();
        let mut best: Option<Solved> = None;
        let mut steps = 0u64;
        for &cut in &p.cuts {
            if ctx.should_stop() {
                break;
            }
            let incumbent = best.as_ref().map_or(f64::INFINITY, |b| b.value.objective);
            // exact value of a vertex; a vertex whose lower bound cannot beat the incumbent of the
            // earlier cuts is not solved: its bound stands in for it (never picked in rounding)
            let mut v = |i: usize, j: usize| -> f64 {
                let ch = Choice {
                    cut,
                    cf: xs[i].1,
                    sf: ys[j].1,
                };
                if let Some(s) = memo.get(&ch) {
                    return s.as_ref().map_or(f64::INFINITY, |s| s.value.objective);
                }
                let Some(c) = combos(p, vec![ch]).pop() else {
                    memo.insert(ch, None);
                    return f64::INFINITY;
                };
                let lb = lower_bound(p, &c);
                if lb >= incumbent {
                    return lb;
                }
                let s = solve_combo(p, &c).map(|(a1, a2, value)| Solved {
                    choice: ch,
                    a1,
                    a2,
                    value,
                });
                let o = s.as_ref().map_or(f64::INFINITY, |s| s.value.objective);
                memo.insert(ch, s);
                o
            };
            let nx = xs.len() - 1;
            let ny = ys.len() - 1;
            // value and gradient of the bilinear surrogate at (u, w)
            let mut surrogate = |u: f64, w: f64| -> (f64, f64, f64) {
                let (i, tu) = cell(&xs, u);
                let (j, tw) = cell(&ys, w);
                let (i1, j1) = ((i + 1).min(nx), (j + 1).min(ny));
                let (v00, v10, v01, v11) = (v(i, j), v(i1, j), v(i, j1), v(i1, j1));
                let f = (1.0 - tu) * (1.0 - tw) * v00
                    + tu * (1.0 - tw) * v10
                    + (1.0 - tu) * tw * v01
                    + tu * tw * v11;
                let du = if i1 > i { xs[i1].0 - xs[i].0 } else { 1.0 };
                let dw = if j1 > j { ys[j1].0 - ys[j].0 } else { 1.0 };
                let gu = ((1.0 - tw) * (v10 - v00) + tw * (v11 - v01)) / du;
                let gw = ((1.0 - tu) * (v01 - v00) + tu * (v11 - v10)) / dw;
                (f, gu, gw)
            };
            // start: the best of the four corners, the centre and the edge midpoints
            let (mx, my) = (nx / 2, ny / 2);
            let corners: Vec<(f64, f64)> = [
                (0, 0),
                (nx, 0),
                (0, ny),
                (nx, ny),
                (mx, my),
                (0, my),
                (mx, 0),
                (nx, my),
                (mx, ny),
            ]
            .iter()
            .map(|&(a, b)| (xs[a].0, ys[b].0))
            .collect();
            // descend from each start whose surrogate value is finite (memoised vertices make the
            // later starts cheap), rounding each final point to the corners of its cell
            for &(u0, w0) in &corners {
                let (mut u, mut w) = (u0, w0);
                if !surrogate(u, w).0.is_finite() {
                    continue;
                }
                for _ in 0..60 {
                    steps += 1;
                    let (f0, gu, gw) = surrogate(u, w);
                    let norm = (gu * gu + gw * gw).sqrt();
                    if !norm.is_finite() || norm <= 1e-12 * f0.abs().max(1.0) {
                        break;
                    }
                    let mut s = 0.5;
                    let mut moved = false;
                    while s >= 1.0 / 256.0 {
                        let nu = (u - s * gu / norm).clamp(0.0, 1.0);
                        let nw = (w - s * gw / norm).clamp(0.0, 1.0);
                        let (f1, _, _) = surrogate(nu, nw);
                        let dist = ((nu - u).powi(2) + (nw - w).powi(2)).sqrt();
                        if dist > 0.0 && f1 <= f0 - 1e-4 * dist * norm {
                            (u, w) = (nu, nw);
                            moved = true;
                            break;
                        }
                        s /= 2.0;
                    }
                    if !moved {
                        break;
                    }
                }
                // round: the corners of the final cell
                let (i, _) = cell(&xs, u);
                let (j, _) = cell(&ys, w);
                for a in [i, (i + 1).min(nx)] {
                    for b in [j, (j + 1).min(ny)] {
                        surrogate(xs[a].0, ys[b].0);
                    }
                }
            }
            // the best vertex of this cut solved exactly: the rounded corners and every other one
            // met on the way (starts, line-search probes), each a checked feasible plan; the
            // descent on the surrogate may leave a better one behind (the surrogate takes lower
            // bounds for pruned vertices and jumps at the fully frozen client level). Ties go to
            // the smaller (client, server) level indices, so the answer does not depend on the
            // memo's iteration order.
            let here = memo
                .values()
                .flatten()
                .filter(|s| s.choice.cut == cut)
                .min_by(|x, y| {
                    x.value
                        .objective
                        .total_cmp(&y.value.objective)
                        .then((x.choice.cf, x.choice.sf).cmp(&(y.choice.cf, y.choice.sf)))
                });
            if let Some(s) = here {
                if best
                    .as_ref()
                    .is_none_or(|x| s.value.objective < x.value.objective)
                {
                    ctx.incumbent(s.value.objective);
                    best = Some(s.clone());
                }
            }
        }
        let mut o = match best {
            Some(b) => Outcome::with(ctx.early_termination(), b.solution(p), b.value.objective),
            None => Outcome::none(ctx.early_termination()),
        };
        o.iterations = steps;
        o.nodes = memo.len() as u64;
        Ok(o)
    }
}
