//! `milp`: for any (also non-concave) accuracy curve. Each user picks one cell of a grid of kept
//! fractions `ρ_g` ([`LEVELS`] levels in `[ρ_min, 1]`) × upload-time splits `t_u = D'(j + ½)/J`
//! ([`SPLITS`] splits); the cell fixes `b = r^{-1}(n s / t_u)` and `φ = W(n)/(F(D' − t_u))`. Binary
//! `x_kgj`, `Σ_gj x_kgj = 1` (≤ 1 with drops), `Σ b x ≤ B`, `Σ φ x ≤ 1`; objective `Σ w A(ρ_g) x`
//! (max-min: `z ≤ Σ A x` per user, maximise `z`). HiGHS through `solve::milp`. Every cell is a
//! feasible point of the original problem, so the MILP optimum is a lower bound; each chosen user
//! then keeps the most tokens its cell's resources carry (A is nondecreasing). The reported bound
//! is the dual of the concave envelope (weighted sum, valid since the envelope majorises A) or the
//! max-min bisection bound; the stated discretisation error is the gap between the two.

use super::cost::{Prepared, Utility};
use super::exact::{dual_solve, max_min, GAP_TOL};
use super::{decisions_objective, Decision, Objective, TokenRadio, TokenRadioSolution};
use crate::error::Result;
use crate::solve::milp::{Milp, MilpStatus, Var};
use crate::solve::{Context, Outcome, Sense, Solver, SolverKind, Termination};

/// Kept-fraction levels per user.
pub const LEVELS: usize = 12;
/// Upload-time splits per level.
pub const SPLITS: usize = 8;
/// Largest number of users (the model has K·LEVELS·SPLITS binaries).
pub const MAX_USERS: usize = 200;

/// Discretised MILP.
pub struct MilpSolver;

impl Solver<TokenRadio> for MilpSolver {
    fn name(&self) -> &'static str {
        "milp"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "MILP over a grid of kept fractions x upload-time splits (any curve); bound from the concave-envelope dual"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.num_users() > MAX_USERS {
            return Err(format!("at most {MAX_USERS} users"));
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<TokenRadioSolution>> {
        let mut m = Milp::new(Sense::Maximize);
        let maxmin = p.objective == Objective::MaxMin;
        let z = maxmin.then(|| m.var(0.0, 1.0, 1.0, "z"));
        let mut cells: Vec<Vec<(Var, f64, f64, f64)>> = vec![];
        let (mut brow, mut frow) = (vec![], vec![]);
        for (k, u) in p.users.iter().enumerate() {
            let d = p.slack_s(k);
            let mut row = vec![];
            let mut choose = vec![];
            for g in 0..LEVELS {
                let rho = u.rho_min + (1.0 - u.rho_min) * g as f64 / (LEVELS - 1) as f64;
                let n = rho * u.tokens;
                let a = u.curve.value(rho);
                for j in 0..SPLITS {
                    let tu = d * (j as f64 + 0.5) / SPLITS as f64;
                    if d <= 0.0 {
                        continue;
                    }
                    let b = u.rate.min_bandwidth(n * u.bits / tu);
                    let f = p.compute.work(n) / (p.compute.flops_per_s * (d - tu));
                    if !b.is_finite() || b > p.bandwidth_hz || f > 1.0 {
                        continue;
                    }
                    let cost = if maxmin { 0.0 } else { u.weight * a };
                    let v = m.bin_var(cost, &format!("x_{k}_{g}_{j}"));
                    brow.push((v, b));
                    frow.push((v, f));
                    choose.push((v, 1.0));
                    row.push((v, n, b, f));
                }
            }
            if p.allow_drop && !maxmin {
                m.le(&choose, 1.0);
            } else {
                m.eq(&choose, 1.0);
            }
            if let Some(z) = z {
                let mut c: Vec<(Var, f64)> = vec![(z, 1.0)];
                for &(v, n, _, _) in &row {
                    c.push((v, -p.accuracy(k, n)));
                }
                m.le(&c, 0.0);
            }
            cells.push(row);
        }
        m.le(&brow, p.bandwidth_hz);
        m.le(&frow, 1.0);
        let r = m.solve(ctx, None)?;
        let bound = if maxmin {
            max_min(p, ctx).map(|x| x.2)
        } else {
            dual_solve(p, Utility::Weighted { envelope: true }, ctx).map(|x| x.bound)
        };
        let Some(x) = r.x else {
            let mins: Vec<f64> = p.users.iter().map(|u| u.rho_min * u.tokens).collect();
            let proved = !p.allow_drop && p.allocate(&mins).is_none();
            let mut o = Outcome::none(match r.status {
                MilpStatus::Infeasible if proved => Termination::Infeasible,
                // an infeasible grid does not prove the continuous problem infeasible
                MilpStatus::Infeasible => Termination::Completed,
                s => s.termination(),
            });
            o.nodes = r.nodes;
            return Ok(o);
        };
        let d: Vec<Decision> = cells
            .iter()
            .enumerate()
            .map(|(k, row)| {
                row.iter().find(|c| x[c.0 .0] > 0.5).map(|&(_, n, b, f)| {
                    let n = n.max(p.max_tokens(k, b, f).min(p.users[k].tokens));
                    (n, b, f)
                })
            })
            .collect();
        let obj = decisions_objective(p, &d);
        let bound = bound.unwrap_or(f64::INFINITY).max(obj);
        let gap = (bound - obj) / obj.abs().max(1e-9);
        let term = if gap <= GAP_TOL {
            Termination::Optimal
        } else if r.status == MilpStatus::Optimal {
            Termination::Completed
        } else {
            r.status.termination()
        };
        let mut o = Outcome::with(term, TokenRadioSolution::from_decisions(p, &d), obj);
        o.bound = bound.is_finite().then_some(bound);
        o.nodes = r.nodes;
        o.iterations = r.lp_iterations;
        o.notes.push(format!(
            "grid {LEVELS} levels x {SPLITS} splits; discretisation gap to the bound {gap:.2e}"
        ));
        Ok(o)
    }
}
