//! The exact continuous sub-problem: split the shared bandwidth `B` among parallel clients for a fixed
//! discrete choice (`Prepared::has_allocation`; otherwise there is nothing to decide).
//!
//! - min-max round time: every client's time `t_k(b) = C_k + bits_up/r_up(b) + bits_down/r_dn(b)` is
//!   decreasing in its bandwidth `b`, so `T` is achievable iff `Σ_k t_k⁻¹(T) ≤ B` (each `t_k⁻¹` by
//!   bisection, with the per-round energy budget as a floor on `b_k`, the transmit energy being
//!   decreasing in `b`); bisection on `T` then gives the optimum to ~1e-12 relative.
//! - min energy under a round deadline `τ`: the transmit energy `P·bits/r(b)` is convex decreasing, so
//!   with floors `b_k ≥ t_k⁻¹(τ − S)` the KKT conditions give water-filling: `b_k(λ) = max(floor_k,
//!   {b : −E_k'(b) = λ})`, with `λ` found by bisection so that `Σ b_k = B`.
//! - the two-phase energy problem (fully frozen client, U-shaped, later rounds still exchange the
//!   head's tensors): the best energy of a phase is convex in its deadline, so the split of the
//!   deadline between the first round and the later rounds is found by golden-section search.

use super::cost::{Combo, Phase, PhaseClient, Prepared, Value};
use super::instance::Objective;

const ITERS: usize = 200;

/// Smallest `b ∈ [lo, hi]` with `f(b) ≤ target` for decreasing `f`; `None` if `f(hi) > target`.
fn invert(f: impl Fn(f64) -> f64, lo: f64, hi: f64, target: f64) -> Option<f64> {
    if f(lo) <= target {
        return Some(lo);
    }
    let fh = f(hi);
    if fh.is_nan() || fh > target {
        return None;
    }
    let (mut a, mut b) = (lo, hi);
    for _ in 0..ITERS {
        let m = 0.5 * (a + b);
        if m <= a || m >= b || b - a <= 1e-14 * hi {
            break;
        }
        if f(m) <= target {
            b = m
        } else {
            a = m
        }
    }
    Some(b)
}

fn total_hz(p: &Prepared) -> f64 {
    p.bandwidth.map_or(0.0, |b| b.total_hz)
}

/// Least bandwidth meeting client `k`'s per-round energy budget in a phase (0 without a budget;
/// `None` if the budget cannot be met within `B`); the transmit energy decreases in `b`.
pub fn energy_floor(p: &Prepared, k: usize, pc: &PhaseClient) -> Option<f64> {
    match p.clients[k].energy_budget_j {
        None => Some(0.0),
        Some(bud) => invert(|b| p.client_j(k, pc, b), 0.0, total_hz(p), bud),
    }
}

/// Least bandwidth `≥ floor` with which client `k` finishes its phase part within `client_s`
/// (`None` if impossible within `B`).
pub fn least_bandwidth(
    p: &Prepared,
    k: usize,
    pc: &PhaseClient,
    floor: f64,
    client_s: f64,
) -> Option<f64> {
    invert(|b| p.client_s(k, pc, b), floor, total_hz(p), client_s)
}

/// Per-client floors from the per-round energy budgets (`None` if a budget cannot be met).
fn energy_floors(p: &Prepared, ph: &Phase) -> Option<Vec<f64>> {
    ph.clients
        .iter()
        .enumerate()
        .map(|(k, pc)| energy_floor(p, k, pc))
        .collect()
}

/// Bandwidth each client needs to finish within `client_s` (`None` if impossible within `B`).
fn needs(p: &Prepared, ph: &Phase, floors: &[f64], client_s: f64) -> Option<Vec<f64>> {
    let bt = total_hz(p);
    let mut v = Vec::with_capacity(floors.len());
    let mut sum = 0.0;
    for (k, pc) in ph.clients.iter().enumerate() {
        let b = least_bandwidth(p, k, pc, floors[k], client_s)?;
        sum += b;
        v.push(b);
    }
    if sum <= bt * (1.0 + 1e-12) {
        Some(v)
    } else {
        None
    }
}

/// Allocation minimising the phase time (and that time).
pub fn min_max(p: &Prepared, ph: &Phase) -> Option<(Vec<f64>, f64)> {
    let bt = total_hz(p);
    let floors = energy_floors(p, ph)?;
    let fsum: f64 = floors.iter().sum();
    if fsum > bt * (1.0 + 1e-12) {
        return None;
    }
    let k = ph.clients.len() as f64;
    let start: Vec<f64> = floors
        .iter()
        .map(|f| f + (bt - fsum).max(0.0) / k)
        .collect();
    let mut hi = ph
        .clients
        .iter()
        .enumerate()
        .map(|(i, pc)| p.client_s(i, pc, start[i]))
        .fold(0.0, f64::max);
    let mut lo = ph
        .clients
        .iter()
        .enumerate()
        .map(|(i, pc)| p.client_s(i, pc, bt))
        .fold(0.0, f64::max);
    if !hi.is_finite() {
        return None;
    }
    let mut best = start;
    if let Some(v) = needs(p, ph, &floors, hi) {
        best = v;
    }
    for _ in 0..ITERS {
        let m = 0.5 * (lo + hi);
        if m <= lo || m >= hi || hi - lo <= 1e-13 * hi {
            break;
        }
        match needs(p, ph, &floors, m) {
            Some(v) => {
                hi = m;
                best = v;
            }
            None => lo = m,
        }
    }
    let t = p.phase_time(ph, &best);
    Some((best, t))
}

/// Allocation minimising the phase's client energy with phase time at most `tau` (and that energy).
pub fn min_energy(p: &Prepared, ph: &Phase, tau: f64) -> Option<(Vec<f64>, f64)> {
    let bt = total_hz(p);
    let floors = energy_floors(p, ph)?;
    let need = needs(p, ph, &floors, tau - ph.server_s)?;
    let n = need.len();
    let at = |lambda: f64| -> Vec<f64> {
        (0..n)
            .map(|k| {
                let pc = &ph.clients[k];
                // smallest b with marginal(b) <= lambda, at least need_k
                invert(|b| p.tx_marginal(k, pc, b), need[k], bt, lambda).unwrap_or(bt)
            })
            .collect()
    };
    let mut lhi = (0..n)
        .map(|k| p.tx_marginal(k, &ph.clients[k], need[k]))
        .fold(0.0, f64::max);
    let mut best = need.clone();
    if lhi > 0.0 && lhi.is_finite() {
        let mut llo = lhi * 1e-30;
        let v = at(llo);
        if v.iter().sum::<f64>() <= bt {
            best = v;
        } else {
            for _ in 0..ITERS {
                let m = (llo * lhi).sqrt();
                if m <= llo || m >= lhi || lhi / llo <= 1.0 + 1e-13 {
                    break;
                }
                let v = at(m);
                if v.iter().sum::<f64>() <= bt {
                    lhi = m;
                    best = v;
                } else {
                    llo = m;
                }
            }
        }
    }
    let e = p.phase_energy(ph, &best);
    Some((best, e))
}

/// Golden-section minimum of a convex function on `[a, b]` (`f` may be infinite near the ends).
fn golden(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = b - g * (b - a);
    let mut x2 = a + g * (b - a);
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..ITERS {
        if b - a <= 1e-12 * b.abs().max(1e-300) {
            break;
        }
        if f1 <= f2 {
            b = x2;
            x2 = x1;
            f2 = f1;
            x1 = b - g * (b - a);
            f1 = f(x1);
        } else {
            a = x1;
            x1 = x2;
            f1 = f2;
            x2 = a + g * (b - a);
            f2 = f(x2);
        }
    }
    if f1 <= f2 {
        x1
    } else {
        x2
    }
}

/// Optimal allocations (first round, later rounds) of a combo for the instance's objective, with
/// the evaluated value; `None` when no allocation is feasible. Modes without an allocation evaluate
/// the combo as is.
pub fn solve_combo(p: &Prepared, c: &Combo) -> Option<(Vec<f64>, Vec<f64>, Value)> {
    if !p.has_allocation() {
        let (v, _) = p.value(c, &[], &[]);
        return v.feasible.then_some((vec![], vec![], v));
    }
    let w = (c.rounds - 1.0).max(0.0);
    let same = c.all_train;
    let (a1, a2) = match p.objective {
        Objective::TotalTime | Objective::RoundLatency => {
            let (a1, _) = min_max(p, &c.first)?;
            let a2 = if same {
                a1.clone()
            } else {
                min_max(p, &c.later)?.0
            };
            (a1, a2)
        }
        Objective::Energy { deadline_s } => {
            if same || w == 0.0 {
                let (a, _) = min_energy(p, &c.first, deadline_s / (1.0 + w))?;
                (a.clone(), a)
            } else if !c.later.has_comm() {
                let (a2, _) = min_max(p, &c.later)?;
                let t2 = p.phase_time(&c.later, &a2);
                (min_energy(p, &c.first, deadline_s - w * t2)?.0, a2)
            } else {
                let (_, t1) = min_max(p, &c.first)?;
                let (_, t2) = min_max(p, &c.later)?;
                let hi = deadline_s - w * t2;
                if hi < t1 {
                    return None;
                }
                let f = |tau1: f64| {
                    let e1 = min_energy(p, &c.first, tau1).map_or(f64::INFINITY, |x| x.1);
                    let e2 = min_energy(p, &c.later, (deadline_s - tau1) / w)
                        .map_or(f64::INFINITY, |x| x.1);
                    e1 + w * e2
                };
                let tau1 = golden(f, t1, hi);
                (
                    min_energy(p, &c.first, tau1)?.0,
                    min_energy(p, &c.later, (deadline_s - tau1) / w)?.0,
                )
            }
        }
    };
    let (v, _) = p.value(c, &a1, &a2);
    v.feasible.then_some((a1, a2, v))
}

/// A lower bound on the objective of a combo: every client alone on the whole bandwidth.
pub fn lower_bound(p: &Prepared, c: &Combo) -> f64 {
    let bt = total_hz(p);
    let full: Vec<f64> = vec![bt; p.num_clients()];
    let a: &[f64] = if p.has_allocation() { &full } else { &[] };
    let (v, _) = p.value(c, a, a);
    v.objective
}

/// Equal split `B/K` in every round (the `equal-bandwidth` baseline).
pub fn equal_combo(p: &Prepared, c: &Combo) -> Option<(Vec<f64>, Vec<f64>, Value)> {
    let a: Vec<f64> = if p.has_allocation() {
        vec![total_hz(p) / p.num_clients() as f64; p.num_clients()]
    } else {
        vec![]
    };
    let (v, _) = p.value(c, &a, &a);
    v.feasible.then_some((a.clone(), a, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invert_finds_the_least_feasible_point() {
        // f(b) = 10 / b is <= 2 from b = 5 on
        let b = invert(|b| 10.0 / b, 0.0, 100.0, 2.0).unwrap();
        assert!((b - 5.0).abs() < 1e-9 && 10.0 / b <= 2.0);
        assert_eq!(invert(|b| 10.0 / b, 0.0, 1.0, 2.0), None);
        assert_eq!(invert(|_| 1.0, 3.0, 9.0, 2.0), Some(3.0));
    }

    #[test]
    fn golden_finds_a_convex_minimum() {
        let x = golden(|x| (x - 1.7).powi(2) + 3.0, 0.0, 10.0);
        assert!((x - 1.7).abs() < 1e-5);
        // infinite near the ends is fine
        let x = golden(
            |x| {
                if x < 0.5 {
                    f64::INFINITY
                } else {
                    (x - 2.0).abs()
                }
            },
            0.0,
            4.0,
        );
        assert!((x - 2.0).abs() < 1e-5);
    }
}
