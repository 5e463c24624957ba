//! `gradient`: projected subgradient ascent on the multipliers (λ spectrum: the TDMA
//! frame or the OFDMA band; μ server) with a
//! diminishing normalised step; the best dual value is a valid bound; the primal is the fixed-mode
//! convex solve on the modes of the best dual response. Reports its gap.

use super::cost::Prepared;
use super::exact::fixed;
use super::{tolerance, Offloading, OffloadingSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

pub struct DualAscent;

impl Solver<Offloading> for DualAscent {
    fn name(&self) -> &'static str {
        "gradient"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Gradient
    }
    fn description(&self) -> &'static str {
        "projected subgradient dual ascent on the spectrum (TDMA frame / OFDMA band) and server multipliers; primal by the fixed-mode convex solve"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<OffloadingSolution>> {
        let allowed = p.all_allowed();
        if allowed.iter().any(|a| a.is_empty()) {
            return Ok(Outcome::none(Termination::Infeasible));
        }
        let iters = ctx.options.iteration_limit.unwrap_or(300).max(1);
        let scale = p.devs.iter().map(|d| p.lambda_unit(d)).sum::<f64>() / p.k() as f64;
        let (mut lam, mut mu) = (scale, 0.0);
        let mut best = (f64::NEG_INFINITY, vec![]);
        let mut n = 0;
        for it in 1..=iters {
            if ctx.should_stop() {
                break;
            }
            n = it;
            let r = p.round(&allowed, lam, mu);
            if r.g > best.0 {
                best = (r.g, r.resp.iter().map(|x| x.pt.mode).collect());
            }
            // multiplicative-normalised projected step
            let step = 1.0 / (it as f64).sqrt();
            let gt = (r.sum_use - p.budget()) / p.budget();
            lam = (lam * (1.0 + step * gt.clamp(-0.9, 4.0))).max(0.0)
                + step * scale * gt.max(0.0) * 1e-3;
            if p.capacity_s.is_finite() {
                let gw = (r.sum_w - p.capacity_s) / p.capacity_s;
                mu = (mu * (1.0 + step * gw.clamp(-0.9, 4.0)) + step * scale * gw * 1e-3).max(0.0);
            }
        }
        let tol = tolerance(ctx.options);
        let Some((pts, obj)) = fixed(p, &best.1, tol) else {
            let mut o = Outcome::none(ctx.early_termination());
            o.bound = Some(best.0);
            o.notes
                .push("modes of the best dual response are infeasible together".into());
            return Ok(o);
        };
        let mut o = Outcome::with(
            ctx.early_termination(),
            OffloadingSolution::from_points(p, &pts),
            obj,
        );
        o.bound = Some(best.0);
        o.iterations = n;
        Ok(o)
    }
}
