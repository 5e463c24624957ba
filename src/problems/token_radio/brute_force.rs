//! `brute-force`: every combination of kept fractions on a grid of [`grid`]`(K)` + 1 levels per user in
//! `[ρ_min, 1]` (plus "dropped" when allowed), each checked with the convex allocation
//! [`cost::Prepared::allocate`] (K ≤ [`MAX_USERS`]). Optimal up to the grid: rounding the optimum's
//! fractions down to the grid loses at most `Σ_k w_k L_k (1 − ρ_min,k)/grid(K)` (`L_k` the curve's
//! largest slope), the tolerance the tests use.

use super::cost::Prepared;
use super::{decisions_objective, Decision, TokenRadio, TokenRadioSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

/// Largest number of users.
pub const MAX_USERS: usize = 3;
/// Grid intervals per user for `k` users (48, 24, 12 for 1, 2, 3 users).
pub fn grid(k: usize) -> usize {
    match k {
        0 | 1 => 48,
        2 => 24,
        _ => 12,
    }
}

/// Grid brute force.
pub struct BruteForce;

impl Solver<TokenRadio> for BruteForce {
    fn name(&self) -> &'static str {
        "brute-force"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "grid over kept fractions (K <= 3) with the exact convex allocation; optimal up to the grid step"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.num_users() > MAX_USERS {
            return Err(format!("at most {MAX_USERS} users"));
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<TokenRadioSolution>> {
        let k = p.num_users();
        let gr = grid(k);
        let levels: Vec<Vec<Option<f64>>> = p
            .users
            .iter()
            .map(|u| {
                let mut v: Vec<Option<f64>> = (0..=gr)
                    .map(|g| {
                        let r = u.rho_min + (1.0 - u.rho_min) * g as f64 / gr as f64;
                        Some(r * u.tokens)
                    })
                    .collect();
                if p.allow_drop {
                    v.push(None);
                }
                v
            })
            .collect();
        let mut idx = vec![0usize; k];
        let mut best: Option<(f64, Vec<Decision>)> = None;
        let mut nodes = 0;
        loop {
            nodes += 1;
            let ns: Vec<f64> = (0..k).map(|i| levels[i][idx[i]].unwrap_or(0.0)).collect();
            if let Some(a) = p.allocate(&ns) {
                let d: Vec<Decision> = (0..k)
                    .map(|i| levels[i][idx[i]].map(|n| (n, a[i].0, a[i].1)))
                    .collect();
                let v = decisions_objective(p, &d);
                if best.as_ref().is_none_or(|b| v > b.0) {
                    best = Some((v, d));
                }
            }
            // next combination
            let mut i = 0;
            while i < k {
                idx[i] += 1;
                if idx[i] < levels[i].len() {
                    break;
                }
                idx[i] = 0;
                i += 1;
            }
            if i == k || ctx.should_stop() {
                break;
            }
        }
        let mut o = match best {
            None => Outcome::none(Termination::Infeasible),
            Some((v, d)) => Outcome::with(
                ctx.early_termination(),
                TokenRadioSolution::from_decisions(p, &d),
                v,
            ),
        };
        o.nodes = nodes;
        Ok(o)
    }
}
