//! `exact`: dual decomposition for the weighted sum (and the same machinery for proportional
//! fairness and the concave-envelope bound of `milp`), bisection on the level for max-min.
//!
//! Weighted sum. Relax `Σb ≤ B` with price λ and `Σφ ≤ 1` with price μ; the dual function
//! `L(λ, μ) = λB + μ + Σ_k max_{n_k} [w_k A_k(n_k/N_k) − C_k(n_k; λ, μ)]` separates into 1-D concave
//! best responses ([`cost::Prepared::best_response`](super::cost::Prepared::best_response)). Both budgets bind at the optimum (a free
//! resource would be used without limit to save the other), so the prices solve
//! `Σb(λ, μ) = B`, `Σφ(λ, μ) = 1`: damped Newton on `(log λ, log μ)` with the analytic Jacobian of
//! the users' responses ([`cost::Prepared::response_jacobian`](super::cost::Prepared::response_jacobian); finite differences when a user has a
//! Shannon rate), falling back (degenerate Jacobian when users sit at their bounds, or a gap above the
//! tolerance) to nested Illinois root finding on the two monotone demands. Primal recovery: the best responses at the final prices,
//! budgets scaled down by the (≈ 1e-12) excess, each kept count cut to what its resources carry
//! ([`cost::Prepared::max_tokens`](super::cost::Prepared::max_tokens)). The bound is the least `L` evaluated (weak duality: valid for
//! any λ, μ ≥ 0); `optimal` is claimed when the relative gap is ≤ [`GAP_TOL`].
//!
//! Max-min: level `t` is achievable iff the least kept tokens reaching `t`
//! (`n_k = N_k A_k^{-1}(t)`) fit the budgets, a convex feasibility check
//! ([`cost::Prepared::allocate`](super::cost::Prepared::allocate)); bisection on `t` between an achievable and an unachievable level,
//! bound = the unachievable one.

use super::cost::{bracketed_root, Choice, Prepared, RateModel, RootStop, Utility};
use super::{decisions_objective, Decision, Objective, TokenRadio, TokenRadioSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};
use rayon::prelude::*;

/// Relative duality gap at which the weighted-sum solve is declared optimal.
pub const GAP_TOL: f64 = 1e-7;

/// Aggregated best responses at given prices.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    pub bandwidth: f64,
    pub share: f64,
    /// `Σ value` (the separable part of the dual function at the computed responses).
    pub value: f64,
    /// `Σ value_ub` (a certified upper bound on the separable part).
    pub value_ub: f64,
    /// `Σ [db/dx, db/dy, dφ/dx, dφ/dy]` (log-prices), when every rate is linear.
    pub jacobian: Option<[f64; 4]>,
}

/// Users per rayon task (below this many users the responses run on the calling thread).
pub const CHUNK: usize = 512;

/// Best responses of every user (parallel for large K).
pub fn responses(p: &Prepared, lambda: f64, mu: f64, ut: Utility) -> Vec<Choice> {
    let k = p.num_users();
    if k >= CHUNK {
        (0..k)
            .into_par_iter()
            .with_min_len(CHUNK / 2)
            .map(|i| p.best_response(i, lambda, mu, ut))
            .collect()
    } else {
        (0..k).map(|i| p.best_response(i, lambda, mu, ut)).collect()
    }
}

/// Sums of the best responses; `warm[k]` is user k's last kept-token count (NaN: none), used as
/// the start of its Newton iteration and updated. With every rate linear, also the Jacobian sums
/// `Σ [db/dx, db/dy, dφ/dx, dφ/dy]` in the log-prices ([`Prepared::response_jacobian`]).
pub fn demand(p: &Prepared, lambda: f64, mu: f64, ut: Utility, warm: &mut [f64]) -> Demand {
    let analytic = p
        .users
        .iter()
        .all(|u| matches!(u.rate, RateModel::Linear { .. }));
    let one = |i: usize, g: &mut f64| {
        let c = p.best_response_from(i, lambda, mu, ut, *g);
        if c.served {
            *g = c.tokens;
        }
        let j = if analytic {
            p.response_jacobian(i, &c, lambda, mu)
        } else {
            [0.0; 4]
        };
        [
            c.bandwidth,
            c.share,
            c.value,
            c.value_ub,
            j[0],
            j[1],
            j[2],
            j[3],
        ]
    };
    let add = |a: [f64; 8], b: [f64; 8]| std::array::from_fn(|i| a[i] + b[i]);
    let s = if warm.len() >= CHUNK {
        warm.par_chunks_mut(CHUNK / 2)
            .enumerate()
            .map(|(c, gs)| {
                let base = c * (CHUNK / 2);
                gs.iter_mut()
                    .enumerate()
                    .fold([0.0; 8], |acc, (j, g)| add(acc, one(base + j, g)))
            })
            .reduce(|| [0.0; 8], add)
    } else {
        warm.iter_mut()
            .enumerate()
            .fold([0.0; 8], |acc, (i, g)| add(acc, one(i, g)))
    };
    Demand {
        bandwidth: s[0],
        share: s[1],
        value: s[2],
        value_ub: s[3],
        jacobian: analytic.then_some([s[4], s[5], s[6], s[7]]),
    }
}

/// The result of a dual solve.
#[derive(Debug, Clone)]
pub struct DualResult {
    pub decisions: Vec<Decision>,
    /// Least dual value seen (upper bound on `Σ w u(A)`).
    pub bound: f64,
    pub lambda: f64,
    pub mu: f64,
    /// Dual-function evaluations.
    pub evals: u64,
    /// Final relative mismatch of the budgets.
    pub residual: f64,
}

/// Tracks the dual function and the least value seen.
pub struct DualState<'a> {
    pub p: &'a Prepared,
    pub ut: Utility,
    pub bound: f64,
    pub evals: u64,
    /// Warm starts of the users' kept tokens (see [`demand`]).
    pub warm: Vec<f64>,
    /// Jacobian `[[∂r0/∂x, ∂r0/∂y], [∂r1/∂x, ∂r1/∂y]]` of the residual at the last evaluation
    /// (analytic, every rate linear).
    pub jacobian: Option<[f64; 4]>,
}

impl<'a> DualState<'a> {
    pub fn new(p: &'a Prepared, ut: Utility) -> Self {
        DualState {
            p,
            ut,
            bound: f64::INFINITY,
            evals: 0,
            warm: vec![f64::NAN; p.num_users()],
            jacobian: None,
        }
    }
    /// `(log(Σb/B), log Σφ)` at log-prices `(x, y)`; records the dual value.
    pub fn residual(&mut self, x: f64, y: f64) -> (f64, f64) {
        let (l, m) = (x.exp(), y.exp());
        let d = demand(self.p, l, m, self.ut, &mut self.warm);
        self.evals += 1;
        self.jacobian = d.jacobian.map(|j| {
            let (sb, sf) = (d.bandwidth.max(1e-300), d.share.max(1e-300));
            [j[0] / sb, j[1] / sb, j[2] / sf, j[3] / sf]
        });
        let dual = d.value_ub + l * self.p.bandwidth_hz + m;
        if dual.is_finite() && dual < self.bound {
            self.bound = dual;
        }
        (
            (d.bandwidth.max(1e-300) / self.p.bandwidth_hz).ln(),
            d.share.max(1e-300).ln(),
        )
    }
}

fn norm(r: (f64, f64)) -> f64 {
    r.0.abs().max(r.1.abs())
}

/// Newton on the log-prices; returns the final point and residual norm.
fn newton(st: &mut DualState<'_>, x0: f64, y0: f64, ctx: &Context<'_>) -> (f64, f64, f64) {
    let (mut x, mut y) = (x0, y0);
    let mut r = st.residual(x, y);
    let h = 1e-7;
    for _ in 0..60 {
        if norm(r) < 1e-12 || ctx.should_stop() {
            break;
        }
        let (j11, j12, j21, j22) = match st.jacobian {
            Some(j) => (j[0], j[1], j[2], j[3]),
            None => {
                // finite differences (Shannon users)
                let rx = st.residual(x + h, y);
                let ry = st.residual(x, y + h);
                (
                    (rx.0 - r.0) / h,
                    (ry.0 - r.0) / h,
                    (rx.1 - r.1) / h,
                    (ry.1 - r.1) / h,
                )
            }
        };
        let det = j11 * j22 - j12 * j21;
        let scale = (j11 * j22).abs() + (j12 * j21).abs();
        if !det.is_finite() || det.abs() <= 1e-6 * scale {
            break; // degenerate (users at their bounds): leave it to the nested root finder
        }
        let (mut dx, mut dy) = (
            -(j22 * r.0 - j12 * r.1) / det,
            -(-j21 * r.0 + j11 * r.1) / det,
        );
        // cap the step in log space
        let big = dx.abs().max(dy.abs());
        if big > 5.0 {
            dx *= 5.0 / big;
            dy *= 5.0 / big;
        }
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..6 {
            let rn = st.residual(x + t * dx, y + t * dy);
            if norm(rn) < norm(r) * (1.0 - 1e-4 * t) || norm(rn) < 1e-13 {
                x += t * dx;
                y += t * dy;
                r = rn;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    (x, y, norm(r))
}

/// Root of a decreasing function near `guess`: bracket by doubling steps, then Illinois
/// (regula falsi with halving of the stale end, [`bracketed_root`]), stopping at `|f| ≤ ftol` or a
/// bracket of `1e-14·(1 + |x|)`.
fn root_decreasing(mut f: impl FnMut(f64) -> f64, guess: f64, step: f64, ftol: f64) -> f64 {
    let (mut a, mut b) = (guess - step, guess + step);
    let (mut fa, mut fb) = (f(a), f(b));
    let mut h = step;
    let mut i = 0;
    while fa <= 0.0 && i < 60 {
        if fa.abs() <= ftol {
            return a;
        }
        b = a;
        fb = fa;
        h *= 2.0;
        a -= h;
        fa = f(a);
        i += 1;
    }
    while fb >= 0.0 && i < 120 {
        if fb.abs() <= ftol {
            return b;
        }
        a = b;
        fa = fb;
        h *= 2.0;
        b += h;
        fb = f(b);
        i += 1;
    }
    // fa > 0 > fb: Illinois steps (no derivative) on the bracket
    let stop = RootStop {
        ftol,
        xtol_rel: 1e-14,
        xtol_abs: 1e-14,
    };
    bracketed_root(a, b, fa, fb, f64::NAN, stop, |x| [0.0, f(x), f64::NAN]).0
}

/// Solves the dual and recovers a primal. `None` when even the minimum kept fractions do not fit.
pub fn dual_solve(p: &Prepared, ut: Utility, ctx: &Context<'_>) -> Option<DualResult> {
    let must_serve = !p.allow_drop || ut == Utility::LogAccuracy;
    if must_serve {
        let mins: Vec<f64> = p.users.iter().map(|u| u.rho_min * u.tokens).collect();
        p.allocate(&mins)?;
    }
    // Everyone at full tokens fits: optimal, bound = the utility at ρ = 1 (the curves are nondecreasing).
    let full: Vec<f64> = p.users.iter().map(|u| u.tokens).collect();
    if let Some(a) = p.allocate(&full) {
        let bound = (0..p.num_users())
            .map(|k| p.best_response(k, 0.0, 0.0, ut).value_ub)
            .sum();
        return Some(DualResult {
            decisions: full
                .iter()
                .zip(&a)
                .map(|(&n, &(b, f))| Some((n, b, f)))
                .collect(),
            bound,
            lambda: 0.0,
            mu: 0.0,
            evals: 1,
            residual: 0.0,
        });
    }
    let mut st = DualState::new(p, ut);
    let scale: f64 = p.users.iter().map(|u| u.weight).sum::<f64>().max(1e-9);
    let (x0, y0) = ((scale / p.bandwidth_hz).ln(), scale.ln());
    let (mut x, mut y, mut res) = newton(&mut st, x0, y0, ctx);
    let finish = |st: &DualState<'_>, x: f64, y: f64, res: f64| {
        let (lambda, mu) = (x.exp(), y.exp());
        let decisions = recover(p, &responses(p, lambda, mu, ut));
        DualResult {
            bound: st.bound,
            lambda,
            mu,
            evals: st.evals,
            residual: res,
            decisions,
        }
    };
    let r = finish(&st, x, y, res);
    // proportional fairness is a baseline: no certification effort beyond Newton
    if relative_gap(p, &r, ut) <= GAP_TOL || ctx.should_stop() || ut == Utility::LogAccuracy {
        return Some(r);
    }
    // nested root finding: outer on log λ (Σb decreasing), inner on log μ (Σφ decreasing)
    let mut ybest = y;
    x = root_decreasing(
        |xx| {
            let yy = root_decreasing(|yy| st.residual(xx, yy).1, ybest, 0.05, 1e-13);
            ybest = yy;
            st.residual(xx, yy).0
        },
        x,
        0.05,
        1e-12,
    );
    y = root_decreasing(|yy| st.residual(x, yy).1, ybest, 0.05, 1e-13);
    res = norm(st.residual(x, y));
    Some(finish(&st, x, y, res))
}

/// `Σ w u(A)` of decisions under a utility (dropped users: 0).
pub fn utility_sum(p: &Prepared, d: &[Decision], ut: Utility) -> f64 {
    d.iter()
        .enumerate()
        .map(|(k, x)| match x {
            None => 0.0,
            Some((n, _, _)) => {
                let u = &p.users[k];
                let rho = n / u.tokens;
                match ut {
                    Utility::Weighted { envelope: false } => u.weight * u.curve.value(rho),
                    Utility::Weighted { envelope: true } => {
                        u.weight * u.curve.envelope().value(rho)
                    }
                    Utility::LogAccuracy => u.weight * u.curve.value(rho).max(1e-300).ln(),
                }
            }
        })
        .sum()
}

/// Relative gap between a dual result's bound and its recovered primal.
pub fn relative_gap(p: &Prepared, r: &DualResult, ut: Utility) -> f64 {
    let v = utility_sum(p, &r.decisions, ut);
    (r.bound - v) / v.abs().max(1e-9)
}

/// Primal recovery: scale budgets down to fit, cut each user's kept tokens to what it can carry.
pub fn recover(p: &Prepared, ch: &[Choice]) -> Vec<Decision> {
    let sb: f64 = ch.iter().map(|c| c.bandwidth).sum();
    let sf: f64 = ch.iter().map(|c| c.share).sum();
    let tb = if sb > p.bandwidth_hz {
        p.bandwidth_hz / sb
    } else {
        1.0
    };
    let tf = if sf > 1.0 { 1.0 / sf } else { 1.0 };
    let mut out: Vec<Decision> = ch
        .iter()
        .enumerate()
        .map(|(k, c)| {
            if !c.served {
                return None;
            }
            let (b, f) = (c.bandwidth * tb, c.share * tf);
            let n = c.tokens.min(p.max_tokens(k, b, f)).min(p.users[k].tokens);
            Some((n, b, f))
        })
        .collect();
    // a user pushed below its minimum: clamp to the minimum and re-allocate, trimming the others
    // (relative 1e-9, 1e-8, ...) until the kept counts fit
    let nmin = |k: usize| p.users[k].rho_min * p.users[k].tokens;
    let short = out
        .iter()
        .enumerate()
        .any(|(k, d)| d.is_some_and(|(n, _, _)| n < nmin(k)));
    if short {
        let mut eps = 1e-9;
        let mut done = false;
        while eps <= 1.0 && !done {
            let ns: Vec<f64> = out
                .iter()
                .enumerate()
                .map(|(k, d)| d.map_or(0.0, |(n, _, _)| (n * (1.0 - eps)).max(nmin(k))))
                .collect();
            if let Some(a) = p.allocate(&ns) {
                for (k, d) in out.iter_mut().enumerate() {
                    if d.is_some() {
                        *d = Some((ns[k], a[k].0, a[k].1));
                    }
                }
                done = true;
            }
            eps *= 10.0;
        }
        if !done && p.allow_drop {
            // drop the users that their scaled resources cannot carry
            for (k, d) in out.iter_mut().enumerate() {
                if d.is_some_and(|(n, _, _)| n < nmin(k)) {
                    *d = None;
                }
            }
        }
    }
    out
}

/// Max-min: bisection on the accuracy level. Returns (decisions, achieved, bound, steps).
pub fn max_min(p: &Prepared, ctx: &Context<'_>) -> Option<(Vec<Decision>, f64, f64, u64)> {
    let tokens_for = |t: f64| -> Option<Vec<f64>> {
        p.users
            .iter()
            .map(|u| u.curve.inverse(t, u.rho_min).map(|r| r * u.tokens))
            .collect()
    };
    let t_lo0 = p
        .users
        .iter()
        .map(|u| u.curve.value(u.rho_min))
        .fold(f64::INFINITY, f64::min);
    let t_hi0 = p
        .users
        .iter()
        .map(|u| u.curve.value(1.0))
        .fold(f64::INFINITY, f64::min);
    let feasible = |t: f64| tokens_for(t).and_then(|ns| p.allocate(&ns).map(|a| (ns, a)));
    let (mut ns, mut a) = feasible(t_lo0)?;
    let mut lo = t_lo0;
    let mut steps = 0;
    let hi = if let Some(x) = feasible(t_hi0) {
        (ns, a) = x;
        lo = t_hi0;
        t_hi0
    } else {
        let mut hi = t_hi0;
        while hi - lo > 1e-10 * lo.abs().max(1e-3) && !ctx.should_stop() && steps < 200 {
            let m = 0.5 * (lo + hi);
            steps += 1;
            match feasible(m) {
                Some(x) => {
                    (ns, a) = x;
                    lo = m;
                }
                None => hi = m,
            }
        }
        hi
    };
    let d = ns
        .iter()
        .zip(&a)
        .map(|(&n, &(b, f))| Some((n, b, f)))
        .collect();
    Some((d, lo, hi, steps))
}

/// Exact solver.
pub struct Exact;

impl Solver<TokenRadio> for Exact {
    fn name(&self) -> &'static str {
        "exact"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "dual decomposition with certified duality gap (weighted sum); bisection on the level (max-min)"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.objective == Objective::WeightedSum && !p.users.iter().all(|u| u.curve.is_concave()) {
            return Err("non-concave accuracy curve: use milp".into());
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<TokenRadioSolution>> {
        match p.objective {
            Objective::MaxMin => {
                let Some((d, achieved, bound, steps)) = max_min(p, ctx) else {
                    return Ok(Outcome::none(Termination::Infeasible));
                };
                let obj = decisions_objective(p, &d);
                let term = if (bound - achieved) <= 1e-9 * achieved.abs().max(1e-3) {
                    Termination::Optimal
                } else {
                    ctx.early_termination()
                };
                let mut o = Outcome::with(term, TokenRadioSolution::from_decisions(p, &d), obj);
                o.bound = Some(bound.max(obj));
                o.iterations = steps;
                Ok(o)
            }
            Objective::WeightedSum => {
                let ut = Utility::Weighted { envelope: false };
                let Some(r) = dual_solve(p, ut, ctx) else {
                    return Ok(Outcome::none(Termination::Infeasible));
                };
                Ok(dual_outcome(p, r, ctx))
            }
        }
    }
}

/// The outcome of a dual solve for the weighted-sum objective.
pub fn dual_outcome(p: &Prepared, r: DualResult, ctx: &Context<'_>) -> Outcome<TokenRadioSolution> {
    let obj = decisions_objective(p, &r.decisions);
    let gap = (r.bound - obj) / obj.abs().max(1e-9);
    let term = if gap <= GAP_TOL {
        Termination::Optimal
    } else {
        ctx.early_termination()
    };
    let mut o = Outcome::with(
        term,
        TokenRadioSolution::from_decisions(p, &r.decisions),
        obj,
    );
    o.bound = Some(r.bound);
    o.iterations = r.evals;
    o.notes.push(format!(
        "lambda={:.6e} per Hz, mu={:.6e} per server, budget residual={:.2e}, relative gap={:.2e}",
        r.lambda, r.mu, r.residual, gap
    ));
    o
}
