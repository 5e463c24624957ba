//! The one place the family's costs are computed: LLM modes from the cost model (`crate::cost`),
//! transmit / local / server energy of a decision, the per-device Lagrangian response used by every
//! solver, and the nested-bisection dual solve with primal recovery (used by exact, gradient and
//! baselines for the convex continuous part).

use super::instance::{Access, LlmTask, Objective, Server};
use crate::catalog::Catalog;
use crate::cost::roofline::{layer_time, Hardware};
use crate::cost::{layer_table, DType, Workload};
use crate::error::Result;
use crate::validate::Check;
use rayon::prelude::*;

/// Local computing energy of the non-offloaded bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Local {
    /// None (LLM modes: the local energy is the constant `e0`).
    None,
    /// `j_per_bit · (R − ℓ)` (You et al.: C_k P_k per bit).
    Linear { j_per_bit: f64 },
    /// `coef · (R − ℓ)³` with `coef = κ C³ / D²` (DVFS at the slowest frequency meeting D).
    Cubic { coef: f64 },
}

/// One execution mode of a device (a split point, full offload, local, small model, or the
/// partial-offloading mode of a partitionable task). The offloaded bits `ℓ ∈ [lo, hi]`.
#[derive(Debug, Clone)]
pub struct Mode {
    pub label: String,
    pub split: Option<usize>,
    /// Constant device energy (LLM local layers), J.
    pub e0: f64,
    /// Local compute time before the upload (LLM), s.
    pub tau_loc: f64,
    pub lo: f64,
    pub hi: f64,
    /// R_k (partitionable) or the upload bits (LLM).
    pub total_bits: f64,
    pub local: Local,
    /// Server time `w0 + w_per_bit·ℓ`, s.
    pub w0: f64,
    pub w_per_bit: f64,
    /// Server energy `es0 + es_per_bit·ℓ`, J.
    pub es0: f64,
    pub es_per_bit: f64,
    pub accuracy: f64,
    /// Longest upload time allowed (frame and deadline), s.
    pub tmax: f64,
    /// Whether the server time counts in the deadline (LLM: yes; partitionable: no, You et al.).
    pub deadline_includes_server: bool,
    pub allowed: std::result::Result<(), String>,
    /// Cycles per bit (partitionable; 0 for LLM), to report the local frequency.
    pub cycles_per_bit: f64,
}

impl Mode {
    /// Shortest upload time for the least offload `lo`, s.
    pub fn tmin(&self, rmax: f64) -> f64 {
        if self.lo <= 0.0 {
            0.0
        } else {
            self.lo / rmax
        }
    }
    /// Largest feasible offload given the rate cap.
    pub fn hi_eff(&self, rmax: f64) -> f64 {
        self.hi.min(rmax * self.tmax)
    }
    pub fn local_j(&self, l: f64) -> f64 {
        let rest = (self.total_bits - l).max(0.0);
        self.e0
            + match self.local {
                Local::None => 0.0,
                Local::Linear { j_per_bit } => j_per_bit * rest,
                Local::Cubic { coef } => coef * rest.powi(3),
            }
    }
    fn local_deriv(&self, l: f64) -> f64 {
        let rest = (self.total_bits - l).max(0.0);
        match self.local {
            Local::None => 0.0,
            Local::Linear { j_per_bit } => -j_per_bit,
            Local::Cubic { coef } => -3.0 * coef * rest * rest,
        }
    }
    pub fn server_s(&self, l: f64) -> f64 {
        self.w0 + self.w_per_bit * l
    }
    pub fn server_j(&self, l: f64) -> f64 {
        self.es0 + self.es_per_bit * l
    }
    /// Least server time over the mode (at `lo`).
    pub fn wmin(&self) -> f64 {
        self.server_s(self.lo)
    }
}

/// A device.
#[derive(Debug, Clone)]
pub struct Dev {
    pub name: String,
    pub weight: f64,
    pub deadline: f64,
    pub gain: f64,
    /// `N0·B/g`, W: transmit power at spectral efficiency x is `a·(2^x − 1)`.
    pub a: f64,
    /// Rate at the maximum transmit power, bit/s (∞ without a limit).
    pub rmax: f64,
    pub pmax: Option<f64>,
    pub modes: Vec<Mode>,
}

/// The prepared problem.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub devs: Vec<Dev>,
    pub bandwidth_hz: f64,
    pub frame_s: f64,
    pub access: Access,
    pub noise_psd: f64,
    pub capacity_s: f64,
    /// β_s (0 for the device-energy objective).
    pub server_weight: f64,
    pub objective: Objective,
}

/// One device's decision: mode, offloaded bits `l`, upload time `t` s and (OFDMA) bandwidth `b`
/// Hz (TDMA: `b` is unused and 0, the device sends on the whole band during its slot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub mode: usize,
    pub l: f64,
    pub t: f64,
    pub b: f64,
}

impl Point {
    /// Nothing uploaded.
    pub fn idle(mode: usize) -> Self {
        Point {
            mode,
            l: 0.0,
            t: 0.0,
            b: 0.0,
        }
    }
}

/// Energy breakdown of a device decision.
#[derive(Debug, Clone, Copy)]
pub struct Breakdown {
    pub local_j: f64,
    pub tx_j: f64,
    pub tx_power_w: f64,
    pub server_j: f64,
    pub server_s: f64,
}

impl Prepared {
    pub fn k(&self) -> usize {
        self.devs.len()
    }

    pub fn ofdma(&self) -> bool {
        self.access == Access::Ofdma
    }

    /// Budget of the spectrum row: the frame `T` s (TDMA) or the band `B` Hz (OFDMA).
    pub fn budget(&self) -> f64 {
        if self.ofdma() {
            self.bandwidth_hz
        } else {
            self.frame_s
        }
    }

    /// A decision's use of the spectrum row: `t` (TDMA) or `b` (OFDMA).
    pub fn usage(&self, pt: &Point) -> f64 {
        if self.ofdma() {
            pt.b
        } else {
            pt.t
        }
    }

    /// The bandwidth a decision transmits on: `B` (TDMA) or `b` (OFDMA).
    pub fn band(&self, pt: &Point) -> f64 {
        if self.ofdma() {
            pt.b
        } else {
            self.bandwidth_hz
        }
    }

    /// Natural unit of the spectrum multiplier λ for device `d`: `β a` J/s (TDMA) or
    /// `β (N0/g) T` J/Hz (OFDMA).
    pub fn lambda_unit(&self, d: &Dev) -> f64 {
        if self.ofdma() {
            d.weight * d.a / self.bandwidth_hz * self.frame_s
        } else {
            d.weight * d.a
        }
    }

    /// Transmit energy and power of `l` bits in `t` s on `bw` Hz (Shannon, `crate::cost::radio`):
    /// `t (N0 bw/g)(2^{l/(t bw)} − 1)`.
    pub fn tx_j(&self, d: &Dev, l: f64, t: f64, bw: f64) -> (f64, f64) {
        if l <= 0.0 {
            return (0.0, 0.0);
        }
        if t <= 0.0 || bw <= 0.0 {
            return (f64::INFINITY, f64::INFINITY);
        }
        let r = l / t;
        let p = crate::cost::radio::tx_power_for_rate_w(r, bw, d.gain, self.noise_psd);
        (crate::cost::tx_energy_j(l, r, p), p)
    }

    /// Rate limit of device `d` on `bw` Hz at its power cap, bit/s (∞ without a cap).
    pub fn rate_cap(&self, d: &Dev, bw: f64) -> f64 {
        d.pmax.map_or(f64::INFINITY, |p| {
            crate::cost::shannon_rate_bps(bw, p, d.gain, self.noise_psd)
        })
    }

    pub fn breakdown(&self, k: usize, pt: &Point) -> Breakdown {
        let d = &self.devs[k];
        let m = &d.modes[pt.mode];
        let (tx, p) = self.tx_j(d, pt.l, pt.t, self.band(pt));
        Breakdown {
            local_j: m.local_j(pt.l),
            tx_j: tx,
            tx_power_w: p,
            server_j: m.server_j(pt.l),
            server_s: m.server_s(pt.l),
        }
    }

    /// Weighted objective contribution of one device.
    pub fn dev_obj(&self, k: usize, pt: &Point) -> f64 {
        let b = self.breakdown(k, pt);
        self.devs[k].weight * (b.local_j + b.tx_j) + self.server_weight * b.server_j
    }

    /// Objective of a full decision.
    pub fn objective(&self, pts: &[Point]) -> f64 {
        pts.iter()
            .enumerate()
            .map(|(k, p)| self.dev_obj(k, p))
            .sum()
    }

    /// Allowed modes of every device.
    pub fn all_allowed(&self) -> Vec<Vec<usize>> {
        self.devs
            .iter()
            .map(|d| {
                (0..d.modes.len())
                    .filter(|&m| d.modes[m].allowed.is_ok())
                    .collect()
            })
            .collect()
    }

    /// Least use of the spectrum row by a mode: the upload time `lo/r^max` (TDMA) or the least
    /// bandwidth carrying `lo` bits within `t^max` at the power cap (OFDMA; 0 without a cap).
    pub fn min_usage(&self, d: &Dev, m: &Mode) -> f64 {
        if !self.ofdma() {
            return m.tmin(d.rmax);
        }
        if m.lo <= 0.0 {
            return 0.0;
        }
        if m.tmax <= 0.0 {
            return f64::INFINITY;
        }
        match d.pmax {
            Some(p) => min_band_for_rate(m.lo / m.tmax, p, d.gain, self.noise_psd),
            None => 0.0,
        }
    }

    /// The necessary feasibility test `Σ min use ≤ budget`, `Σ min w ≤ F` (exact when every
    /// device has one mode: the least spectrum use and the least server time are both at
    /// `ℓ = lo`).
    pub fn quick_feasible(&self, allowed: &[Vec<usize>]) -> bool {
        let mut st = 0.0;
        let mut sw = 0.0;
        for (d, al) in self.devs.iter().zip(allowed) {
            if al.is_empty() {
                return false;
            }
            st += al
                .iter()
                .map(|&m| self.min_usage(d, &d.modes[m]))
                .fold(f64::INFINITY, f64::min);
            sw += al
                .iter()
                .map(|&m| d.modes[m].wmin())
                .fold(f64::INFINITY, f64::min);
        }
        st <= self.budget() * (1.0 + 1e-12) && sw <= self.capacity_s * (1.0 + 1e-12)
    }
}

/// Halley iterations on `w e^w = z` from the start `w`.
fn halley_w(z: f64, mut w: f64) -> f64 {
    for _ in 0..50 {
        let ew = w.exp();
        let f = w * ew - z;
        let d = ew * (w + 1.0) - (w + 2.0) * f / (2.0 * w + 2.0);
        if d == 0.0 || !d.is_finite() {
            break;
        }
        let nw = w - f / d;
        if (nw - w).abs() <= 1e-15 * (1.0 + nw.abs()) {
            w = nw;
            break;
        }
        w = nw;
    }
    w
}

/// Principal branch of the Lambert W function for `z ≥ −1/e`.
pub fn lambert_w0(z: f64) -> f64 {
    if z <= -std::f64::consts::E.recip() {
        return -1.0;
    }
    let w = if z < 1.0 {
        let p = (2.0 * (std::f64::consts::E * z + 1.0)).max(0.0).sqrt();
        -1.0 + p - p * p / 3.0
    } else {
        let l = z.ln();
        l - l.max(1e-300).ln().max(0.0)
    };
    halley_w(z, w)
}

/// Lower branch `W_{−1}` of the Lambert W function for `z ∈ [−1/e, 0)` (values `≤ −1`).
pub fn lambert_wm1(z: f64) -> f64 {
    if z <= -std::f64::consts::E.recip() {
        return -1.0;
    }
    if z >= 0.0 {
        return f64::NEG_INFINITY;
    }
    let w = if z < -0.25 {
        let p = -(2.0 * (std::f64::consts::E * z + 1.0)).max(0.0).sqrt();
        -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p * p * p
    } else {
        let l1 = (-z).ln();
        let l2 = (-l1).ln();
        l1 - l2 + l2 / l1
    };
    halley_w(z, w).min(-1.0)
}

/// Least bandwidth, Hz, at which `c` bit/s fit under the transmit power cap `p` W: the root `b`
/// of `b log2(1 + p g/(N0 b)) = c` (the rate is concave increasing in `b`). With
/// `y = p g/(N0 b)` and `q = c N0 ln2/(p g)`: `ln(1 + y) = q y`, so
/// `1 + y = −W_{−1}(−q e^{−q})/q`; ∞ when `q ≥ 1` (above the cap's rate at any bandwidth,
/// `p g/(N0 ln 2)`). Two guarded Newton steps polish the root.
pub fn min_band_for_rate(c: f64, p: f64, gain: f64, n0: f64) -> f64 {
    if c <= 0.0 {
        return 0.0;
    }
    let q = c * n0 * std::f64::consts::LN_2 / (p * gain);
    if q >= 1.0 {
        return f64::INFINITY;
    }
    let y = -lambert_wm1(-q * (-q).exp()) / q - 1.0;
    if y <= 0.0 || !y.is_finite() {
        return f64::INFINITY;
    }
    let mut b = p * gain / (n0 * y);
    for _ in 0..2 {
        let f = crate::cost::shannon_rate_bps(b, p, gain, n0) - c;
        let sl = crate::cost::radio::shannon_rate_slope(b, p, gain, n0);
        let nb = b - f / sl;
        if nb > 0.0 && nb.is_finite() {
            b = nb;
        }
    }
    b
}

/// The spectral efficiency `x*` (bit/s/Hz) minimising `β a t (2^x − 1) + λ t` per offloaded bit:
/// the root of `2^x (x ln2 − 1) + 1 = ρ`, `ρ = λ/(β a)`: `x ln2 = 1 + W0((ρ − 1)/e)`.
/// (OFDMA: the same root with `ρ = λ/(β (N0/g) t)` minimises `β t (N0 b/g)(2^x − 1) + λ b` per
/// bit over the bandwidth `b = ℓ/(t x)`.)
pub fn best_efficiency(rho: f64) -> f64 {
    if rho <= 0.0 {
        return 0.0;
    }
    let y = 1.0 + lambert_w0((rho - 1.0) / std::f64::consts::E);
    (y / std::f64::consts::LN_2).max(0.0)
}

/// Minimiser over `[lo, hi]` of a convex function of one variable given its (sub)derivative:
/// bisection on the sign, to ~1e-13 relative.
fn argmin_convex(lo: f64, hi: f64, dh: impl Fn(f64) -> f64) -> f64 {
    if hi - lo <= 1e-12 * hi.max(1.0) || dh(lo) >= 0.0 {
        return lo;
    }
    if dh(hi) <= 0.0 {
        return hi;
    }
    let (mut a, mut b) = (lo, hi);
    for _ in 0..100 {
        let c = 0.5 * (a + b);
        if dh(c) < 0.0 {
            a = c
        } else {
            b = c
        }
        if b - a <= 1e-13 * b {
            break;
        }
    }
    0.5 * (a + b)
}

/// OFDMA, one device and mode uploading over its whole window `t`: the bandwidth minimising
/// `β t (N0 b/g)(2^{ℓ/(t b)} − 1) + λ b` for given `ℓ` under `b ≤ B` and the power cap, and
/// the slope in `ℓ` of that minimum.
struct BandResponse<'a> {
    p: &'a Prepared,
    d: &'a Dev,
    t: f64,
    lam: f64,
    /// `N0/g`, W/Hz.
    a1: f64,
    /// Unconstrained best spectral efficiency `x*`.
    xs: f64,
    /// Rate above which the unconstrained bandwidth `c/x*` breaks the power cap, bit/s.
    c_cap: f64,
}

impl<'a> BandResponse<'a> {
    fn new(p: &'a Prepared, d: &'a Dev, t: f64, lam: f64) -> Self {
        let a1 = p.noise_psd / d.gain;
        let xs = if t > 0.0 {
            best_efficiency(lam / (d.weight * a1 * t))
        } else {
            0.0
        };
        // a1 (c/x*)(2^{x*} − 1) > P  ⇔  c > P x* / (a1 (2^{x*} − 1)); limit P/(a1 ln 2) at x* → 0
        let c_cap = match d.pmax {
            None => f64::INFINITY,
            Some(pm) if xs > 0.0 => pm * xs / (a1 * (xs * std::f64::consts::LN_2).exp_m1()),
            Some(pm) => pm / (a1 * std::f64::consts::LN_2),
        };
        BandResponse {
            p,
            d,
            t,
            lam,
            a1,
            xs,
            c_cap,
        }
    }

    /// Best bandwidth for `l` bits and whether the power cap binds.
    fn band(&self, l: f64) -> (f64, bool) {
        if l <= 0.0 || self.t <= 0.0 {
            return (0.0, false);
        }
        let c = l / self.t;
        let bw = self.p.bandwidth_hz;
        let bu = if self.xs > 0.0 {
            c / self.xs
        } else {
            f64::INFINITY
        };
        if bu >= bw {
            return (bw, false);
        }
        match self.d.pmax {
            Some(pm) if c > self.c_cap => (
                min_band_for_rate(c, pm, self.d.gain, self.p.noise_psd).min(bw),
                true,
            ),
            _ => (bu, false),
        }
    }

    /// Slope in `l` of `min_b [β·tx(l, t, b) + λ b]`: `β (N0/g) ln2 · 2^{l/(t b)}` where the
    /// power cap is slack (envelope theorem), `λ / (t R'(b))` where it binds (the power is the
    /// cap, so the transmit energy `P t` is constant and `b` follows the cap).
    fn slope(&self, l: f64) -> f64 {
        let (b, capped) = self.band(l);
        if capped {
            let pm = self.d.pmax.unwrap_or(f64::INFINITY);
            let rs = crate::cost::radio::shannon_rate_slope(b, pm, self.d.gain, self.p.noise_psd);
            return self.lam / (self.t * rs);
        }
        let x = if b > 0.0 { l / (self.t * b) } else { self.xs };
        self.d.weight * self.a1 * std::f64::consts::LN_2 * x.exp2()
    }

    fn point(&self, mode: usize, l: f64) -> Point {
        let (b, _) = self.band(l);
        if l <= 0.0 {
            return Point::idle(mode);
        }
        Point {
            mode,
            l,
            t: self.t,
            b,
        }
    }
}

/// A device's best response to the multipliers (λ for the spectrum row, μ for server time).
#[derive(Debug, Clone, Copy)]
pub struct Resp {
    pub pt: Point,
    /// Lagrangian value: objective + λ·use + μ w (use: `t` TDMA, `b` OFDMA).
    pub val: f64,
    pub w: f64,
}

impl Prepared {
    /// TDMA: upload time minimising the Lagrangian for `l` bits given `x*`.
    fn best_t(&self, d: &Dev, m: &Mode, l: f64, xs: f64) -> f64 {
        if l <= 0.0 {
            return 0.0;
        }
        let t = if xs > 0.0 {
            l / (self.bandwidth_hz * xs)
        } else {
            f64::INFINITY
        };
        t.max(l / d.rmax).min(m.tmax)
    }

    /// Lagrangian term of one device: objective + λ·use + μ w.
    pub fn lagrangian(&self, k: usize, pt: &Point, lam: f64, mu: f64) -> f64 {
        self.dev_obj(k, pt) + lam * self.usage(pt) + mu * self.devs[k].modes[pt.mode].server_s(pt.l)
    }

    /// Best point of device `k` in mode `mi` at (λ, μ): a 1-D convex minimisation in `ℓ` with
    /// the best upload time (TDMA, closed form) or bandwidth (OFDMA, closed form) inside.
    fn respond_mode(&self, k: usize, mi: usize, lam: f64, mu: f64) -> Point {
        let d = &self.devs[k];
        let m = &d.modes[mi];
        let hi = m.hi_eff(d.rmax);
        let lo = m.lo.min(hi);
        let lin = |l: f64| {
            d.weight * m.local_deriv(l) + self.server_weight * m.es_per_bit + mu * m.w_per_bit
        };
        if self.ofdma() {
            let br = BandResponse::new(self, d, m.tmax, lam);
            let l = argmin_convex(lo, hi, |l| lin(l) + br.slope(l));
            return br.point(mi, l);
        }
        let xs = best_efficiency(lam / (d.weight * d.a));
        let bw = self.bandwidth_hz;
        // The slope in ℓ of `min_t [β·tx(ℓ, t) + λ t]`: where the best `t` is interior or at
        // `t^max` (λ t then constant), `β a ln2 · 2^{ℓ/(t B)} / B` (envelope theorem); where the
        // power cap binds (`t = ℓ/r^max`, power `P^max`), `(β P^max + λ)/r^max`.
        let cap_binds = xs * bw > d.rmax;
        let l = argmin_convex(lo, hi, |l| {
            let t = self.best_t(d, m, l, xs);
            let tx = match d.pmax {
                Some(pm) if cap_binds => (d.weight * pm + lam) / d.rmax,
                _ => {
                    let x = if l > 0.0 && t > 0.0 { l / (t * bw) } else { xs };
                    d.weight * d.a * std::f64::consts::LN_2 * x.exp2() / bw
                }
            };
            lin(l) + tx
        });
        Point {
            mode: mi,
            l,
            t: self.best_t(d, m, l, xs),
            b: 0.0,
        }
    }

    /// Best response of device `k` over the modes `allowed` (ties: the first mode wins).
    pub fn respond(&self, k: usize, allowed: &[usize], lam: f64, mu: f64) -> Resp {
        let mut best: Option<Resp> = None;
        for &mi in allowed {
            let pt = self.respond_mode(k, mi, lam, mu);
            let val = self.lagrangian(k, &pt, lam, mu);
            if best.as_ref().is_none_or(|b| val < b.val) {
                best = Some(Resp {
                    pt,
                    val,
                    w: self.devs[k].modes[mi].server_s(pt.l),
                });
            }
        }
        best.unwrap_or(Resp {
            pt: Point::idle(0),
            val: f64::INFINITY,
            w: 0.0,
        })
    }
}

/// All responses at (λ, μ) and the dual value.
pub struct Round {
    pub resp: Vec<Resp>,
    /// Use of the spectrum row: `Σ t` (TDMA) or `Σ b` (OFDMA).
    pub sum_use: f64,
    pub sum_w: f64,
    pub g: f64,
}

impl Prepared {
    pub fn round(&self, allowed: &[Vec<usize>], lam: f64, mu: f64) -> Round {
        let resp: Vec<Resp> = if self.k() >= 64 {
            (0..self.k())
                .into_par_iter()
                .map(|k| self.respond(k, &allowed[k], lam, mu))
                .collect()
        } else {
            (0..self.k())
                .map(|k| self.respond(k, &allowed[k], lam, mu))
                .collect()
        };
        let sum_use = resp.iter().map(|r| self.usage(&r.pt)).sum();
        let sum_w = resp.iter().map(|r| r.w).sum();
        let cap = if self.capacity_s.is_finite() {
            mu * self.capacity_s
        } else {
            0.0
        };
        let g = resp.iter().map(|r| r.val).sum::<f64>() - lam * self.budget() - cap;
        Round {
            resp,
            sum_use,
            sum_w,
            g,
        }
    }
}

/// Combines two decisions device by device: `(1−θ)·a + θ·b` where both use the same mode; devices
/// whose modes differ keep `a` and are flagged.
pub fn combine(a: &[Point], b: &[Point], theta: f64) -> (Vec<Point>, Vec<usize>) {
    let mut mixed = vec![];
    let pts = a
        .iter()
        .zip(b)
        .enumerate()
        .map(|(k, (x, y))| {
            if x.mode != y.mode {
                mixed.push(k);
                *x
            } else {
                Point {
                    mode: x.mode,
                    l: (1.0 - theta) * x.l + theta * y.l,
                    t: (1.0 - theta) * x.t + theta * y.t,
                    b: (1.0 - theta) * x.b + theta * y.b,
                }
            }
        })
        .collect();
    (pts, mixed)
}

/// Result of the dual solve on a set of allowed modes.
pub struct DualOut {
    /// Best dual value seen (a valid lower bound on the restricted problem).
    pub bound: f64,
    /// The recovered decision (`Σ use ≤ budget`, `Σw ≤ F`), exact combination when `mixed` is empty.
    pub pts: Option<Vec<Point>>,
    /// Devices whose mode differs across the bracketing responses.
    pub mixed: Vec<usize>,
    pub rounds: u64,
    pub lam: f64,
    pub mu: f64,
}

struct Inner {
    pts: Vec<Point>,
    mixed: Vec<usize>,
    sum_w: f64,
    obj: f64,
    lam: f64,
}

impl Prepared {
    fn sum_use(&self, pts: &[Point]) -> f64 {
        pts.iter().map(|p| self.usage(p)).sum()
    }

    /// [`combine`], then (OFDMA) every uploading device transmits over its whole window
    /// `t^max` (the energy falls with `t`; mixing with an idle point shortens `t`).
    pub fn combine(&self, a: &[Point], b: &[Point], theta: f64) -> (Vec<Point>, Vec<usize>) {
        let (mut pts, mixed) = combine(a, b, theta);
        if self.ofdma() {
            for (k, x) in pts.iter_mut().enumerate() {
                if x.l > 0.0 {
                    x.t = self.devs[k].modes[x.mode].tmax;
                }
            }
        }
        (pts, mixed)
    }

    /// Largest natural unit of λ over the devices (start of the bracket search).
    fn lambda_scale(&self) -> f64 {
        self.devs
            .iter()
            .map(|d| self.lambda_unit(d))
            .fold(0.0_f64, f64::max)
            .max(1e-300)
    }

    fn sum_w(&self, pts: &[Point]) -> f64 {
        pts.iter()
            .enumerate()
            .map(|(k, p)| self.devs[k].modes[p.mode].server_s(p.l))
            .sum()
    }

    /// Inner problem at fixed μ: maximise over λ by bisection on `Σ use(λ) = budget`.
    fn inner(
        &self,
        allowed: &[Vec<usize>],
        mu: f64,
        tol: f64,
        best_g: &mut f64,
        rounds: &mut u64,
    ) -> Option<Inner> {
        let cap = if self.capacity_s.is_finite() {
            mu * self.capacity_s
        } else {
            0.0
        };
        let mut eval = |lam: f64, best_g: &mut f64| {
            *rounds += 1;
            let r = self.round(allowed, lam, mu);
            *best_g = best_g.max(r.g);
            r
        };
        let tf = self.budget();
        let r0 = eval(0.0, best_g);
        let finish = |pts: Vec<Point>, mixed: Vec<usize>, lam: f64| {
            let sw = self.sum_w(&pts);
            let obj = self.objective(&pts);
            Inner {
                pts,
                mixed,
                sum_w: sw,
                obj,
                lam,
            }
        };
        if r0.sum_use <= tf {
            let pts = r0.resp.iter().map(|r| r.pt).collect();
            return Some(finish(pts, vec![], 0.0));
        }
        // bracket
        let mut lo = 0.0;
        let mut lo_r = r0;
        let mut hi = self.lambda_scale();
        let mut hi_r = eval(hi, best_g);
        let mut n = 0;
        while hi_r.sum_use > tf {
            lo = hi;
            lo_r = hi_r;
            hi *= 4.0;
            hi_r = eval(hi, best_g);
            n += 1;
            if n > 400 {
                return None;
            }
        }
        if lo == 0.0 {
            // shrink downwards
            let mut l = hi / 4.0;
            loop {
                let r = eval(l, best_g);
                if r.sum_use > tf || l < 1e-300 {
                    lo = l;
                    lo_r = r;
                    break;
                }
                hi = l;
                hi_r = r;
                l /= 4.0;
            }
        }
        let mut out = None;
        for _ in 0..200 {
            // primal candidate from the bracket
            let (hp, lp): (Vec<Point>, Vec<Point>) = (
                hi_r.resp.iter().map(|r| r.pt).collect(),
                lo_r.resp.iter().map(|r| r.pt).collect(),
            );
            let (_, mixed) = combine(&hp, &lp, 0.0);
            let st_hi = self.sum_use(&hp);
            let dt: f64 = (0..self.k())
                .filter(|k| !mixed.contains(k))
                .map(|k| self.usage(&lp[k]) - self.usage(&hp[k]))
                .sum();
            let theta = if dt > 0.0 {
                ((tf - st_hi) / dt).clamp(0.0, 1.0) * (1.0 - 1e-12)
            } else {
                0.0
            };
            let (pts, mixed) = self.combine(&hp, &lp, theta);
            let cand = finish(pts, mixed, hi);
            let lagr = cand.obj + mu * cand.sum_w - cap;
            let gap = lagr - *best_g;
            out = Some(cand);
            if gap <= tol * lagr.abs().max(1e-300) || hi / lo.max(1e-300) - 1.0 < 1e-13 {
                break;
            }
            let mid = if lo > 0.0 { (lo * hi).sqrt() } else { 0.5 * hi };
            let r = eval(mid, best_g);
            if r.sum_use > tf {
                lo = mid;
                lo_r = r;
            } else {
                hi = mid;
                hi_r = r;
            }
        }
        out
    }

    /// Maximises the dual over (λ, μ) by nested bisection and recovers a primal decision.
    /// `tol`: relative primal–dual gap at which the bisections stop.
    pub fn dual_solve(&self, allowed: &[Vec<usize>], tol: f64) -> DualOut {
        let mut best_g = f64::NEG_INFINITY;
        let mut rounds = 0;
        let fail = |best_g: f64, rounds: u64| DualOut {
            bound: best_g,
            pts: None,
            mixed: vec![],
            rounds,
            lam: 0.0,
            mu: 0.0,
        };
        let itol = tol * 0.1;
        let Some(i0) = self.inner(allowed, 0.0, itol, &mut best_g, &mut rounds) else {
            return fail(best_g, rounds);
        };
        let f = self.capacity_s;
        if !f.is_finite() || i0.sum_w <= f {
            return DualOut {
                bound: best_g,
                pts: Some(i0.pts),
                mixed: i0.mixed,
                rounds,
                lam: i0.lam,
                mu: 0.0,
            };
        }
        let scale = self
            .devs
            .iter()
            .map(|d| d.weight * d.a)
            .fold(0.0_f64, f64::max)
            .max(1e-300);
        let mut lo = 0.0;
        let mut lo_i = i0;
        let mut hi = scale;
        let mut hi_i;
        let mut n = 0;
        loop {
            match self.inner(allowed, hi, itol, &mut best_g, &mut rounds) {
                Some(x) if x.sum_w <= f => {
                    hi_i = x;
                    break;
                }
                Some(x) => {
                    lo = hi;
                    lo_i = x;
                }
                None => {}
            }
            hi *= 4.0;
            n += 1;
            if n > 300 {
                return fail(best_g, rounds);
            }
        }
        if lo == 0.0 {
            let mut m = hi / 4.0;
            loop {
                match self.inner(allowed, m, itol, &mut best_g, &mut rounds) {
                    Some(x) if x.sum_w <= f && m > 1e-300 => {
                        hi = m;
                        hi_i = x;
                    }
                    Some(x) => {
                        lo = m;
                        lo_i = x;
                        break;
                    }
                    None => return fail(best_g, rounds),
                }
                m /= 4.0;
            }
        }
        let mut best: Option<(Vec<Point>, Vec<usize>, f64)> = None;
        for _ in 0..200 {
            let dw = {
                let (_, mixed) = combine(&hi_i.pts, &lo_i.pts, 0.0);
                (0..self.k())
                    .filter(|k| !mixed.contains(k))
                    .map(|k| {
                        let m = &self.devs[k].modes[lo_i.pts[k].mode];
                        m.server_s(lo_i.pts[k].l) - m.server_s(hi_i.pts[k].l)
                    })
                    .sum::<f64>()
            };
            let theta = if dw > 0.0 {
                ((f - hi_i.sum_w) / dw).clamp(0.0, 1.0) * (1.0 - 1e-12)
            } else {
                0.0
            };
            let (pts, mut mixed) = self.combine(&hi_i.pts, &lo_i.pts, theta);
            for &k in hi_i.mixed.iter().chain(&lo_i.mixed) {
                if !mixed.contains(&k) {
                    mixed.push(k);
                }
            }
            let obj = self.objective(&pts);
            let gap = obj - best_g;
            let done = gap <= tol * obj.abs().max(1e-300) || hi / lo.max(1e-300) - 1.0 < 1e-13;
            best = Some((pts, mixed, hi_i.lam));
            if done {
                break;
            }
            let mid = (lo * hi).sqrt();
            match self.inner(allowed, mid, itol, &mut best_g, &mut rounds) {
                Some(x) if x.sum_w <= f => {
                    hi = mid;
                    hi_i = x;
                }
                Some(x) => {
                    lo = mid;
                    lo_i = x;
                }
                None => {
                    lo = mid;
                }
            }
        }
        let (pts, mixed, lam) = best.unwrap_or((hi_i.pts.clone(), hi_i.mixed.clone(), hi_i.lam));
        DualOut {
            bound: best_g,
            pts: Some(pts),
            mixed,
            rounds,
            lam,
            mu: hi,
        }
    }

    /// Solves the convex problem with one mode per device (`modes[k]`), to relative gap `tol`.
    pub fn fixed_mode_solve(&self, modes: &[usize], tol: f64) -> Option<(Vec<Point>, f64)> {
        let allowed: Vec<Vec<usize>> = modes.iter().map(|&m| vec![m]).collect();
        if !self.quick_feasible(&allowed) {
            return None;
        }
        let out = self.dual_solve(&allowed, tol);
        out.pts.map(|p| (p, out.bound))
    }
}

/// Parses a dtype name.
pub fn parse_dtype(s: &Option<String>, c: &Check) -> Result<DType> {
    match s {
        None => Ok(DType::Fp16),
        Some(s) => serde_json::from_value(serde_json::Value::String(s.clone())).map_err(|_| {
            c.err(format!(
                "unknown dtype '{s}' (fp32, bf16, fp16, fp8, int8, int4)"
            ))
        }),
    }
}

/// Per-layer (time, energy) of a request (prefill of `p` tokens + `g` decode steps at the mean
/// context), and per-layer uploaded bytes at a split after the layer, on `hw`.
fn per_layer(
    card: &crate::catalog::LlmCard,
    hw: &Hardware,
    dtype: DType,
    p: u64,
    g: u64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let wp = Workload::prefill(1, p, dtype);
    let wd = Workload::decode(1, p + g / 2, dtype);
    let tp = layer_table(card, &wp);
    let td = layer_table(card, &wd);
    let gf = g as f64;
    let mut ts = vec![];
    let mut js = vec![];
    let mut out = vec![];
    let mut wb = vec![];
    for (l, lc) in tp.iter().enumerate() {
        let a = layer_time(lc, hw, &wp, 0.0, true);
        let (ds, dj, dout) = match td.get(l) {
            Some(d) if g > 0 => {
                let b = layer_time(d, hw, &wd, 0.0, true);
                (b.fwd_s, b.fwd_j, d.out_bytes)
            }
            _ => (0.0, 0.0, 0.0),
        };
        ts.push(a.fwd_s + gf * ds);
        js.push(a.fwd_j + gf * dj);
        out.push(lc.out_bytes + gf * dout);
        wb.push(lc.weight_bytes);
    }
    (ts, js, out, wb)
}

/// The modes of an LLM request: `local` (all layers on the device), `split@s` (layers `[0,s)` on
/// the device, the smashed activations of layer `s−1` for the prompt and every generated token
/// uploaded, layers `[s,L)` on the server), `offload` (prompt token ids uploaded, 4 bytes each),
/// and `small` (the small model, all on the device).
pub fn build_llm_modes(
    t: &LlmTask,
    c: &Check,
    server: &Server,
    catalog: &Catalog,
    deadline: f64,
    frame: f64,
) -> Result<Vec<Mode>> {
    let card = catalog
        .llm(&t.model)
        .map_err(|e| e.at(c.field("model").path()))?;
    let dtype = parse_dtype(&t.dtype, &c.field("dtype"))?;
    let hw = Hardware::from_catalog(catalog, &t.device, t.runtime.as_deref())
        .map_err(|e| e.at(c.field("device").path()))?;
    c.field("prompt_tokens").at_least_one(t.prompt_tokens)?;
    let acc = match t.accuracy {
        Some(a) => c.field("accuracy").finite(a)?,
        None => 1.0,
    };
    let (dt, dj, out, wb) = per_layer(&card, &hw, dtype, t.prompt_tokens, t.gen_tokens);
    let nl = dt.len();
    let mem = hw.device.memory_bytes.value;
    let srv = match &server.device {
        Some(name) => Some(
            Hardware::from_catalog(catalog, name, server.runtime.as_deref())
                .map_err(|e| e.at("$.server.device"))?,
        ),
        None => None,
    };
    let (st, sj) = match &srv {
        Some(s) => {
            let (a, b, _, _) = per_layer(&card, s, dtype, t.prompt_tokens, t.gen_tokens);
            (a, b)
        }
        None => (vec![], vec![]),
    };
    let mk = |label: String, split: Option<usize>, s: usize| -> Mode {
        let tau: f64 = dt[..s].iter().sum();
        let e0: f64 = dj[..s].iter().sum();
        let bits = if s == 0 {
            t.prompt_tokens as f64 * 32.0
        } else if s == nl {
            0.0
        } else {
            out[s - 1] * 8.0
        };
        let (w0, es0) = if s < nl {
            (st[s..].iter().sum::<f64>(), sj[s..].iter().sum::<f64>())
        } else {
            (0.0, 0.0)
        };
        let tmax = frame.min(deadline - tau - w0);
        let weights: f64 = wb[..s].iter().sum();
        let allowed = if s < nl && srv.is_none() {
            Err("no server device given".to_string())
        } else if weights > mem {
            Err(format!(
                "local layers need {weights:.3e} B of weights, device has {mem:.3e} B"
            ))
        } else if tmax < 0.0 || (bits > 0.0 && tmax <= 0.0) {
            Err("cannot meet the deadline".to_string())
        } else {
            Ok(())
        };
        Mode {
            label,
            split,
            e0,
            tau_loc: tau,
            lo: bits,
            hi: bits,
            total_bits: bits,
            local: Local::None,
            w0,
            w_per_bit: 0.0,
            es0,
            es_per_bit: 0.0,
            accuracy: acc,
            tmax: tmax.max(0.0),
            deadline_includes_server: true,
            allowed,
            cycles_per_bit: 0.0,
        }
    };
    let mut modes = vec![
        mk("local".into(), Some(nl), nl),
        mk("offload".into(), Some(0), 0),
    ];
    if t.allow_split {
        for s in 1..nl {
            modes.push(mk(format!("split@{s}"), Some(s), s));
        }
    }
    if let Some(sm) = &t.small_model {
        let sc = c.field("small_model");
        let scard = catalog
            .llm(&sm.model)
            .map_err(|e| e.at(sc.field("model").path()))?;
        let sd = parse_dtype(&sm.dtype, &sc.field("dtype"))?;
        let sacc = sc.field("accuracy").finite(sm.accuracy)?;
        let (a, b, _, w) = per_layer(&scard, &hw, sd, t.prompt_tokens, t.gen_tokens);
        let tau: f64 = a.iter().sum();
        let weights: f64 = w.iter().sum();
        modes.push(Mode {
            label: "small".into(),
            split: None,
            e0: b.iter().sum(),
            tau_loc: tau,
            lo: 0.0,
            hi: 0.0,
            total_bits: 0.0,
            local: Local::None,
            w0: 0.0,
            w_per_bit: 0.0,
            es0: 0.0,
            es_per_bit: 0.0,
            accuracy: sacc,
            tmax: frame.min(deadline - tau).max(0.0),
            deadline_includes_server: true,
            allowed: if weights > mem {
                Err("small model does not fit in device memory".into())
            } else if tau > deadline {
                Err("cannot meet the deadline".into())
            } else {
                Ok(())
            },
            cycles_per_bit: 0.0,
        });
    }
    Ok(modes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambert_branches_invert_w_exp_w() {
        for i in 1..200 {
            let z = -std::f64::consts::E.recip() * (i as f64 / 200.0);
            let w = lambert_wm1(z);
            assert!(
                w <= -1.0 && ((w * w.exp() - z) / z).abs() < 1e-10,
                "{z} {w}"
            );
            let w0 = lambert_w0(z);
            assert!(w0 >= -1.0 && (w0 * w0.exp() - z).abs() < 1e-12, "{z} {w0}");
        }
        let z = -1e-200;
        let w = lambert_wm1(z);
        assert!(((w * w.exp() - z) / z).abs() < 1e-10);
    }

    #[test]
    fn min_band_meets_the_rate_at_the_power_cap() {
        let (p, g, n0) = (0.5, 1e-12, 4e-21);
        let limit = p * g / (n0 * std::f64::consts::LN_2);
        for f in [1e-9, 1e-6, 1e-3, 0.1, 0.5, 0.9, 0.99] {
            let c = f * limit;
            let b = min_band_for_rate(c, p, g, n0);
            let r = crate::cost::shannon_rate_bps(b, p, g, n0);
            assert!(
                ((r - c) / c).abs() < 1e-9,
                "f {f}: rate {r} vs {c} at {b} Hz"
            );
        }
        assert_eq!(min_band_for_rate(limit * 1.01, p, g, n0), f64::INFINITY);
        assert_eq!(min_band_for_rate(0.0, p, g, n0), 0.0);
    }

    /// The best response (closed-form upload time (TDMA) or bandwidth (OFDMA), bisection on ℓ)
    /// is the minimum of the Lagrangian term over a fine (ℓ, t) or (ℓ, b) grid, with and without
    /// a binding power cap.
    #[test]
    fn response_minimises_the_lagrangian() {
        response_vs_grid(Access::Tdma);
        response_vs_grid(Access::Ofdma);
    }

    fn response_vs_grid(access: Access) {
        let doc = serde_json::json!({
            "spectrum": {"bandwidth_hz": 1e6, "frame_s": 1.0},
            "devices": [
                {"name": "a", "channel_gain": 1e-10, "max_tx_power_w": 0.006,
                 "task": {"partitionable": {"bits": 4e6, "cycles_per_bit": 1000,
                     "local": {"fixed": {"energy_per_cycle_j": 1e-9}}}}},
                {"name": "b", "channel_gain": 5e-11,
                 "task": {"partitionable": {"bits": 2e6, "cycles_per_bit": 1000,
                     "local": {"dvfs": {"kappa": 1e-28}}}}},
                {"name": "c", "channel_gain": 2e-10, "max_tx_power_w": 0.003,
                 "task": {"partitionable": {"bits": 3e6, "cycles_per_bit": 800,
                     "local": {"dvfs": {"kappa": 1e-27}}}}}
            ]
        });
        let mut inst: crate::problems::offloading::OffloadingInstance =
            serde_json::from_value(doc).unwrap();
        inst.spectrum.access = access;
        let p = inst.prepare(crate::catalog::Catalog::builtin()).unwrap();
        let lams: &[f64] = if p.ofdma() {
            &[0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5]
        } else {
            &[0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
        };
        let mut capped = 0;
        for k in 0..p.k() {
            let d = &p.devs[k];
            let m = &d.modes[0];
            for &lam in lams {
                let r = p.respond(k, &[0], lam, 0.0);
                if let Some(pm) = d.pmax {
                    let (_, pw) = p.tx_j(d, r.pt.l, r.pt.t, p.band(&r.pt));
                    capped += (pw >= pm * (1.0 - 1e-9)) as usize;
                }
                let hi = m.hi_eff(d.rmax);
                let mut best = f64::INFINITY;
                for i in 0..=300 {
                    let l = m.lo + (hi - m.lo) * i as f64 / 300.0;
                    for j in 1..=400 {
                        let f = j as f64 / 400.0;
                        let pt = if p.ofdma() {
                            Point {
                                mode: 0,
                                l,
                                t: m.tmax,
                                b: p.bandwidth_hz * f,
                            }
                        } else {
                            Point {
                                mode: 0,
                                l,
                                t: m.tmax * f,
                                b: 0.0,
                            }
                        };
                        if l > p.rate_cap(d, p.band(&pt)) * pt.t {
                            continue;
                        }
                        best = best.min(p.lagrangian(k, &pt, lam, 0.0));
                    }
                }
                assert!(
                    r.val <= best * (1.0 + 1e-9),
                    "{access:?} {k} λ {lam}: {} > grid {best}",
                    r.val
                );
                assert!(
                    best <= r.val * 1.02 + 1e-12,
                    "{access:?} {k} λ {lam}: grid {best} ≫ {}",
                    r.val
                );
            }
        }
        assert!(
            capped >= 3,
            "{access:?}: power cap bound in only {capped} responses"
        );
    }
}
