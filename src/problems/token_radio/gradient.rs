//! `dual-gradient`: projected gradient on the log-prices of the same dual as `exact`
//! (`log λ += α_t log(Σb/B)`, `log μ += α_t log Σφ`, `α_t = 1/(1 + t/50)`), the same primal recovery,
//! and the least dual value seen as the bound. Kept to compare a first-order method with the
//! certified Newton/bisection solve (`docs/token_radio.md`, gap table).

use super::cost::{Prepared, Utility};
use super::exact::{dual_outcome, recover, responses, DualResult, DualState};
use super::{Objective, TokenRadio, TokenRadioSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

/// Default number of gradient steps.
pub const DEFAULT_STEPS: u64 = 200;

/// Dual projected gradient.
pub struct DualGradient;

impl Solver<TokenRadio> for DualGradient {
    fn name(&self) -> &'static str {
        "dual-gradient"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Gradient
    }
    fn description(&self) -> &'static str {
        "projected gradient on the dual log-prices, primal recovery, best dual value as bound"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.objective != Objective::WeightedSum {
            return Err("weighted_sum objective only".into());
        }
        if !p.users.iter().all(|u| u.curve.is_concave()) {
            return Err("non-concave accuracy curve".into());
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<TokenRadioSolution>> {
        let ut = Utility::Weighted { envelope: false };
        if !p.allow_drop {
            let mins: Vec<f64> = p.users.iter().map(|u| u.rho_min * u.tokens).collect();
            if p.allocate(&mins).is_none() {
                return Ok(Outcome::none(Termination::Infeasible));
            }
        }
        let steps = ctx.options.iteration_limit.unwrap_or(DEFAULT_STEPS);
        let mut st = DualState::new(p, ut);
        let scale: f64 = p.users.iter().map(|u| u.weight).sum::<f64>().max(1e-9);
        let (mut x, mut y) = ((scale / p.bandwidth_hz).ln(), scale.ln());
        let mut best = (f64::INFINITY, x, y);
        for t in 0..steps {
            if ctx.should_stop() {
                break;
            }
            let before = st.bound;
            let r = st.residual(x, y);
            if st.bound < before {
                best = (st.bound, x, y);
            }
            let a = 1.0 / (1.0 + t as f64 / 50.0);
            x += a * r.0.clamp(-5.0, 5.0);
            y += a * r.1.clamp(-5.0, 5.0);
        }
        let (lambda, mu) = (best.1.exp(), best.2.exp());
        let ch = responses(p, lambda, mu, ut);
        let r = DualResult {
            decisions: recover(p, &ch),
            bound: st.bound,
            lambda,
            mu,
            evals: st.evals,
            residual: f64::NAN,
        };
        let mut o = dual_outcome(p, r, ctx);
        if o.termination == Termination::Optimal {
            o.notes.push("gap within tolerance".into());
        } else {
            o.termination = ctx.early_termination();
        }
        Ok(o)
    }
}
