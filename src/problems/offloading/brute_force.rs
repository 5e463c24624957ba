//! `brute-force`: a grid over the two shared budgets, independent of the dual machinery. The
//! spectrum row (the TDMA frame `T`, or the OFDMA band `B`) is cut into equal units (60 when the
//! budgets leave at most two free dimensions, else 40) and the server capacity (when finite)
//! likewise; every division of the units among the (≤ 3) devices is enumerated; each device, given
//! its spectrum share and server budget `W`, takes its best mode and offload `ℓ` on a 60-point grid
//! of the feasible interval `[lo, min(hi, r^max t, (W − w0)/w_per_bit)]` (end points included) and
//! uses its whole share: TDMA uploads for `min(share, t^max)` on the band `B`; OFDMA uploads on
//! the share `b` for the whole window `t^max` (`r^max` the rate at the power cap on that band);
//! the energy falls with time and with bandwidth. An upper bound on the optimum for tiny
//! instances; used to test `exact`.

use super::cost::{Point, Prepared};
use super::{Offloading, OffloadingSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

pub struct BruteForce;

const GL: usize = 60;

/// A device decision and its objective term, if any mode fits the share.
pub type Cell = Option<(Point, f64)>;

/// Best decision of device `k` (mode, offload on a 60-point grid) given its share `ub` of the
/// spectrum row (time under TDMA, band under OFDMA) and `wb` of the server, using all of both.
pub fn best_given_share(p: &Prepared, k: usize, ub: f64, wb: f64) -> Cell {
    let d = &p.devs[k];
    let mut best: Cell = None;
    for (mi, m) in d.modes.iter().enumerate() {
        if m.allowed.is_err() || m.w0 > wb {
            continue;
        }
        // energy falls with the upload time and the bandwidth: use all of both
        let (t, b) = if p.ofdma() {
            (m.tmax, ub)
        } else {
            (ub.min(m.tmax), 0.0)
        };
        let probe = Point {
            mode: mi,
            l: 0.0,
            t,
            b,
        };
        let mut hi = m.hi.min(p.rate_cap(d, p.band(&probe)) * t);
        if t <= 0.0 || p.band(&probe) <= 0.0 {
            hi = 0.0;
        }
        if m.w_per_bit > 0.0 {
            hi = hi.min((wb - m.w0) / m.w_per_bit);
        }
        if hi < m.lo {
            continue;
        }
        let n = if hi > m.lo { GL } else { 0 };
        for s in 0..=n {
            let l = if n == 0 {
                m.lo
            } else {
                m.lo + (hi - m.lo) * s as f64 / n as f64
            };
            let pt = if l > 0.0 {
                Point { mode: mi, l, t, b }
            } else {
                Point::idle(mi)
            };
            let o = p.dev_obj(k, &pt);
            if o.is_finite() && best.as_ref().is_none_or(|b| o < b.1) {
                best = Some((pt, o));
            }
        }
    }
    best
}

/// Per device: best decision for each (time units, server units).
fn table(p: &Prepared, k: usize, g: usize, gw: usize) -> Vec<Vec<Cell>> {
    (0..=g)
        .map(|i| {
            (0..=gw)
                .map(|j| {
                    // this device's share of the spectrum row: time (TDMA) or band (OFDMA)
                    let ub = p.budget() * i as f64 / g as f64;
                    let wb = if gw == 0 {
                        f64::INFINITY
                    } else {
                        p.capacity_s * j as f64 / gw as f64
                    };
                    best_given_share(p, k, ub, wb)
                })
                .collect()
        })
        .collect()
}

impl Solver<Offloading> for BruteForce {
    fn name(&self) -> &'static str {
        "brute-force"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "grid over the spectrum (TDMA frame or OFDMA band) and server budgets (40–60 units) × modes × offload grid; tiny instances (≤ 3 devices)"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        if p.k() > 3 {
            return Err("at most 3 devices".into());
        }
        let combos: usize = p.all_allowed().iter().map(|a| a.len().max(1)).product();
        if combos > 64 {
            return Err(format!("{combos} mode combinations (at most 64)"));
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<OffloadingSolution>> {
        let kk = p.k();
        let finite = p.capacity_s.is_finite();
        // budget dimensions (K−1)·(1 + finite): 60 units when ≤ 2, else 40
        let g = if (kk - 1) * (1 + finite as usize) <= 2 {
            60
        } else {
            40
        };
        let gw = if finite { g } else { 0 };
        let tabs: Vec<_> = (0..kk).map(|k| table(p, k, g, gw)).collect();
        let mut best: Option<(Vec<Point>, f64)> = None;
        // allocations of time units a[0..K-1] and server units b[0..K-1]; the last device gets the rest
        let mut a = vec![0usize; kk];
        let mut b = vec![0usize; kk];
        'outer: loop {
            let (sa, sb): (usize, usize) = (a[..kk - 1].iter().sum(), b[..kk - 1].iter().sum());
            if sa <= g && sb <= gw {
                a[kk - 1] = g - sa;
                b[kk - 1] = gw - sb;
                let mut o = 0.0;
                let mut pts = vec![];
                for k in 0..kk {
                    match &tabs[k][a[k]][b[k]] {
                        Some((pt, v)) => {
                            o += v;
                            pts.push(*pt);
                        }
                        None => {
                            o = f64::INFINITY;
                            break;
                        }
                    }
                }
                if o.is_finite() && best.as_ref().is_none_or(|x| o < x.1) {
                    best = Some((pts, o));
                }
            }
            // next allocation (odometer over the first K-1 devices, time then server)
            let mut i = 0;
            loop {
                if i == 2 * (kk - 1) {
                    break 'outer;
                }
                let (v, lim) = if i < kk - 1 {
                    (&mut a[i], g)
                } else {
                    (&mut b[i - (kk - 1)], gw)
                };
                *v += 1;
                if *v <= lim {
                    break;
                }
                *v = 0;
                i += 1;
            }
            if ctx.should_stop() {
                break;
            }
        }
        Ok(match best {
            Some((pts, o)) => Outcome::with(
                ctx.early_termination(),
                OffloadingSolution::from_points(p, &pts),
                o,
            ),
            None => Outcome::none(Termination::Completed),
        })
    }
}
