//! Baselines: no pruning with equal resources (users that miss the deadline are dropped), equal
//! resources with the best pruning each share allows, and proportional fairness.

use super::cost::{Prepared, Utility};
use super::exact::dual_solve;
use super::{decisions_objective, Decision, TokenRadio, TokenRadioSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

fn outcome(p: &Prepared, d: Vec<Decision>) -> Outcome<TokenRadioSolution> {
    let obj = decisions_objective(p, &d);
    Outcome::with(
        Termination::Completed,
        TokenRadioSolution::from_decisions(p, &d),
        obj,
    )
}

/// Equal bandwidth and compute for every user; `prune` keeps the most tokens the share carries,
/// else all tokens; a user that cannot meet its deadline is dropped.
pub fn equal_decisions(p: &Prepared, prune: bool) -> Vec<Decision> {
    let k = p.num_users() as f64;
    let (b, f) = (p.bandwidth_hz / k, 1.0 / k);
    p.users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let cap = p.max_tokens(i, b, f);
            let n = if prune { cap.min(u.tokens) } else { u.tokens };
            let ok = if prune {
                n >= u.rho_min * u.tokens
            } else {
                cap >= u.tokens * (1.0 - 1e-12)
            };
            ok.then_some((n, b, f))
        })
        .collect()
}

/// No pruning, equal resources.
pub struct NoPruneEqual;

impl Solver<TokenRadio> for NoPruneEqual {
    fn name(&self) -> &'static str {
        "no-prune-equal"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "all tokens, equal bandwidth and compute; users missing their deadline are dropped"
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<TokenRadioSolution>> {
        Ok(outcome(p, equal_decisions(p, false)))
    }
}

/// Equal resources, optimal pruning per user.
pub struct EqualPrune;

impl Solver<TokenRadio> for EqualPrune {
    fn name(&self) -> &'static str {
        "equal-prune"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "equal bandwidth and compute; each user keeps the most tokens its share carries"
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<TokenRadioSolution>> {
        Ok(outcome(p, equal_decisions(p, true)))
    }
}

/// Proportional fairness `max Σ w log A`.
pub struct PropFair;

impl Solver<TokenRadio> for PropFair {
    fn name(&self) -> &'static str {
        "prop-fair"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "proportional fairness: maximise the weighted sum of log accuracies (dual decomposition)"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if !p.users.iter().all(|u| u.curve.is_concave()) {
            return Err("non-concave accuracy curve".into());
        }
        if p.users.iter().any(|u| u.curve.value(u.rho_min) <= 0.0) {
            return Err("log accuracy needs A(min_kept_fraction) > 0".into());
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<TokenRadioSolution>> {
        match dual_solve(p, Utility::LogAccuracy, ctx) {
            None => Ok(Outcome::none(Termination::Infeasible)),
            Some(r) => Ok(outcome(p, r.decisions)),
        }
    }
}
