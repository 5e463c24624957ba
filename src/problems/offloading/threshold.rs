//! `threshold`: You, Huang, Chae, Kim (IEEE TWC 2017), the closed-form optimal policy for TDMA
//! partial offloading with a fixed local energy per bit. Offloading priority of user k:
//! `ϕ_k = β_k a_k (φ_k ln φ_k − φ_k + 1)` for
//! `φ_k = (β_k P_k C_k − β_s e_s C_k) B / (β_k a_k ln2) > 1` (else 0), `a_k = N0 B / g_k`. For a frame multiplier λ, users with `ϕ_k > λ` offload all
//! `R_k` bits, the others `m_k⁺`, each at the spectral efficiency `x*(λ/(β_k a_k))` (Lambert W),
//! `t_k = ℓ_k/(B x*)`; λ* is found by bisection on `Σ t_k = T` and the user at the threshold takes
//! the remaining time.
//! Applies only to the classic model: partitionable tasks with fixed energy per
//! cycle, no power cap, deadlines ≥ frame, no server capacity limit.

use super::cost::{best_efficiency, combine, Local, Point, Prepared};
use super::{Offloading, OffloadingSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

pub struct Threshold;

fn policy(p: &Prepared, prio: &[f64], lam: f64) -> Vec<Point> {
    p.devs
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let m = &d.modes[0];
            let l = if prio[k] > lam { m.hi } else { m.lo };
            let x = best_efficiency(lam / (d.weight * d.a));
            let t = if l <= 0.0 {
                0.0
            } else if x > 0.0 {
                l / (p.bandwidth_hz * x)
            } else {
                f64::INFINITY
            };
            Point {
                mode: 0,
                l,
                t,
                b: 0.0,
            }
        })
        .collect()
}

impl Solver<Offloading> for Threshold {
    fn name(&self) -> &'static str {
        "threshold"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "You et al. (TWC 2017) closed-form threshold policy on the offloading priority, threshold by bisection (classic TDMA model only)"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.ofdma() {
            return Err("TDMA only: You et al.'s threshold policy is for time sharing of the band, not OFDMA bandwidth sharing".into());
        }
        if p.capacity_s.is_finite() {
            return Err("needs an unlimited server (no capacity_s)".into());
        }
        for d in &p.devs {
            if d.modes.len() != 1 || d.modes[0].label != "partial" {
                return Err(format!("{}: not a partitionable task", d.name));
            }
            if !matches!(d.modes[0].local, Local::Linear { .. }) {
                return Err(format!("{}: needs a fixed energy per cycle", d.name));
            }
            if d.pmax.is_some() {
                return Err(format!(
                    "{}: transmit power cap not in the classic model",
                    d.name
                ));
            }
            if d.modes[0].tmax < p.frame_s {
                return Err(format!("{}: deadline shorter than the frame", d.name));
            }
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<OffloadingSolution>> {
        let ln2 = std::f64::consts::LN_2;
        let prio: Vec<f64> = p
            .devs
            .iter()
            .map(|d| {
                let m = &d.modes[0];
                let Local::Linear { j_per_bit } = m.local else {
                    return 0.0;
                };
                let save = d.weight * j_per_bit - p.server_weight * m.es_per_bit;
                let phi = save * p.bandwidth_hz / (d.weight * d.a * ln2);
                if phi > 1.0 {
                    d.weight * d.a * (phi * phi.ln() - phi + 1.0)
                } else {
                    0.0
                }
            })
            .collect();
        let tf = p.frame_s;
        let st = |pts: &[Point]| pts.iter().map(|x| x.t).sum::<f64>();
        // λ = 0 feasible only if nothing is sent
        let p0 = policy(p, &prio, 0.0);
        let pts = if st(&p0) <= tf {
            p0
        } else {
            let mut hi = prio.iter().cloned().fold(1e-300, f64::max);
            let mut n = 0;
            while st(&policy(p, &prio, hi)) > tf {
                hi *= 2.0;
                n += 1;
                if n > 2000 {
                    return Ok(Outcome::none(Termination::Infeasible));
                }
            }
            let mut lo = hi / 2.0;
            while st(&policy(p, &prio, lo)) <= tf && lo > 1e-300 {
                hi = lo;
                lo /= 2.0;
            }
            for _ in 0..200 {
                if ctx.should_stop() || hi / lo - 1.0 < 1e-14 {
                    break;
                }
                let mid = (lo * hi).sqrt();
                if st(&policy(p, &prio, mid)) > tf {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            let (a, b) = (policy(p, &prio, hi), policy(p, &prio, lo));
            let (sa, sb) = (st(&a), st(&b));
            let theta = if sb > sa {
                ((tf - sa) / (sb - sa)).clamp(0.0, 1.0) * (1.0 - 1e-12)
            } else {
                0.0
            };
            combine(&a, &b, theta).0
        };
        let obj = p.objective(&pts);
        Ok(Outcome::with(
            Termination::Completed,
            OffloadingSolution::from_points(p, &pts),
            obj,
        ))
    }
}
