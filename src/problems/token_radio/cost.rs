//! The one place the family's costs are computed: rates, upload and prefill times, the largest
//! number of tokens a (bandwidth, compute) pair carries by the deadline, the cheapest resources for
//! a number of tokens at given prices, and the accuracy curves. `evaluate` and every solver call these.

use super::instance::Objective;
use crate::cost::shannon_rate_bps;

/// Uplink rate model of one user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateModel {
    /// `r = η·b`.
    Linear { efficiency: f64 },
    /// `r = b log2(1 + p g / (N0 b))` (`cost::shannon_rate_bps`).
    Shannon { power_w: f64, gain: f64, n0: f64 },
}

impl RateModel {
    /// Rate in bit/s at bandwidth `b` Hz.
    pub fn rate(&self, b: f64) -> f64 {
        match *self {
            RateModel::Linear { efficiency } => efficiency * b.max(0.0),
            RateModel::Shannon { power_w, gain, n0 } => shannon_rate_bps(b, power_w, gain, n0),
        }
    }

    /// The least bandwidth giving rate `r` (infinite above the Shannon limit `p g / (N0 ln 2)`).
    pub fn min_bandwidth(&self, r: f64) -> f64 {
        if r <= 0.0 {
            return 0.0;
        }
        match *self {
            RateModel::Linear { efficiency } => r / efficiency,
            RateModel::Shannon { power_w, gain, n0 } => {
                let snr_hz = power_w * gain / n0;
                if r >= snr_hz / std::f64::consts::LN_2 * (1.0 - 1e-12) {
                    return f64::INFINITY;
                }
                // rate(b) is increasing and concave: Newton from the left stays left of the root
                // (the tangent lies above the curve) and converges monotonically.
                let mut b = r * 1e-3 / (1.0 + (1.0 + snr_hz / r).log2());
                while self.rate(b) >= r && b > 1e-300 {
                    b *= 0.1;
                }
                for _ in 0..200 {
                    let f = self.rate(b) - r;
                    let x = snr_hz / b;
                    let d = (1.0 + x).log2() - x / ((1.0 + x) * std::f64::consts::LN_2);
                    if f >= 0.0 || d <= 0.0 {
                        break;
                    }
                    let nb = b - f / d;
                    if nb - b <= 1e-15 * nb {
                        b = nb;
                        break;
                    }
                    b = nb;
                }
                // guard: never return a bandwidth below the root
                while self.rate(b) < r * (1.0 - 1e-15) {
                    b *= 1.0 + 1e-12;
                }
                b
            }
        }
    }
}

/// Prefill compute of the served model on the server: `FLOPs(n) = w1 n + w2 n²`.
#[derive(Debug, Clone, PartialEq)]
pub struct Compute {
    /// FLOPs per token (projections, MLP, head).
    pub w1: f64,
    /// FLOPs per token² (attention scores and AV).
    pub w2: f64,
    /// Effective FLOP/s of the whole server (`roofline::Hardware::effective_flops`).
    pub flops_per_s: f64,
    /// Fixed time per request, s.
    pub overhead_s: f64,
    /// Where the numbers come from.
    pub source: String,
}

impl Compute {
    /// Prefill FLOPs of `n` kept tokens.
    pub fn work(&self, n: f64) -> f64 {
        self.w1 * n + self.w2 * n * n
    }
    /// Prefill seconds of `n` tokens on compute share `phi` (without the fixed overhead).
    pub fn time_s(&self, n: f64, phi: f64) -> f64 {
        let w = self.work(n);
        if w <= 0.0 {
            0.0
        } else if phi <= 0.0 {
            f64::INFINITY
        } else {
            w / (phi * self.flops_per_s)
        }
    }
}

/// Accuracy as a function of the kept fraction.
#[derive(Debug, Clone, PartialEq)]
pub enum Curve {
    /// Linear interpolation of profiled points.
    Points { xs: Vec<f64>, ys: Vec<f64> },
    /// `floor + (max − floor)(1 − e^{−rate ρ}) / (1 − e^{−rate})`.
    Saturating { floor: f64, max: f64, rate: f64 },
}

impl Curve {
    /// `A(ρ)`, ρ clamped to [0, 1].
    pub fn value(&self, rho: f64) -> f64 {
        let r = rho.clamp(0.0, 1.0);
        match self {
            Curve::Saturating { floor, max, rate } => {
                floor + (max - floor) * (-(-rate * r).exp_m1()) / (-(-rate).exp_m1())
            }
            Curve::Points { xs, ys } => {
                if r <= xs[0] {
                    return ys[0];
                }
                let i = xs.partition_point(|&x| x < r).min(xs.len() - 1);
                let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
                y0 + (y1 - y0) * (r - x0) / (x1 - x0)
            }
        }
    }

    /// Whether the curve is concave (saturating always; points: nonincreasing slopes).
    pub fn is_concave(&self) -> bool {
        match self {
            Curve::Saturating { .. } => true,
            Curve::Points { xs, ys } => (2..xs.len()).all(|i| {
                let s0 = (ys[i - 1] - ys[i - 2]) / (xs[i - 1] - xs[i - 2]);
                let s1 = (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1]);
                s1 <= s0 + 1e-12
            }),
        }
    }

    /// Number of smooth pieces: 1 for the saturating curve, one per segment for points.
    pub fn pieces(&self) -> usize {
        match self {
            Curve::Saturating { .. } => 1,
            Curve::Points { xs, .. } => xs.len() - 1,
        }
    }

    /// The ρ-interval of piece `i` (see [`Curve::pieces`]).
    pub fn piece(&self, i: usize) -> (f64, f64) {
        match self {
            Curve::Saturating { .. } => (0.0, 1.0),
            Curve::Points { xs, .. } => (xs[i], xs[i + 1]),
        }
    }

    /// The constant `(max − floor)/(1 − e^{−rate})` of a saturating curve (0 for points), the
    /// `scale` argument of [`Curve::derivs`].
    pub fn scale(&self) -> f64 {
        match self {
            Curve::Saturating { floor, max, rate } => (max - floor) / (-(-rate).exp_m1()),
            Curve::Points { .. } => 0.0,
        }
    }

    /// `(A, A', A'')` at ρ on piece `i` (for points the piece's line, so a breakpoint gets the
    /// one-sided slope of the piece it is evaluated on); `scale` = [`Curve::scale`].
    pub fn derivs(&self, rho: f64, i: usize, scale: f64) -> (f64, f64, f64) {
        match self {
            Curve::Saturating { floor, rate, .. } => {
                let kk = scale;
                let em = (-rate * rho).exp_m1();
                let a1 = kk * rate * (1.0 + em);
                (floor - kk * em, a1, -rate * a1)
            }
            Curve::Points { xs, ys } => {
                let s = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]);
                (ys[i] + s * (rho - xs[i]), s, 0.0)
            }
        }
    }

    /// The least concave majorant (the curve itself when concave): upper hull of the points.
    pub fn envelope(&self) -> Curve {
        match self {
            Curve::Saturating { .. } => self.clone(),
            Curve::Points { xs, ys } => {
                let mut hx: Vec<f64> = vec![];
                let mut hy: Vec<f64> = vec![];
                for (&x, &y) in xs.iter().zip(ys) {
                    while hx.len() >= 2 {
                        let n = hx.len();
                        let cross = (hx[n - 1] - hx[n - 2]) * (y - hy[n - 2])
                            - (hy[n - 1] - hy[n - 2]) * (x - hx[n - 2]);
                        if cross >= 0.0 {
                            hx.pop();
                            hy.pop();
                        } else {
                            break;
                        }
                    }
                    hx.push(x);
                    hy.push(y);
                }
                Curve::Points { xs: hx, ys: hy }
            }
        }
    }

    /// The least ρ ≥ `rho_min` with `A(ρ) ≥ t` (`None` when `A(1) < t`); the curve is nondecreasing.
    pub fn inverse(&self, t: f64, rho_min: f64) -> Option<f64> {
        if self.value(rho_min) >= t {
            return Some(rho_min);
        }
        if self.value(1.0) < t {
            return None;
        }
        let (mut lo, mut hi) = (rho_min, 1.0);
        for _ in 0..100 {
            let m = 0.5 * (lo + hi);
            if self.value(m) >= t {
                hi = m;
            } else {
                lo = m;
            }
        }
        Some(hi)
    }

    /// An upper bound on the slope `dA/dρ` (Lipschitz constant).
    pub fn max_slope(&self) -> f64 {
        match self {
            Curve::Saturating { floor, max, rate } => (max - floor) * rate / (-(-rate).exp_m1()),
            Curve::Points { xs, ys } => (1..xs.len())
                .map(|i| (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1]))
                .fold(0.0, f64::max),
        }
    }
}

/// One resolved user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    /// Input tokens `N_k` (text + image patches).
    pub tokens: f64,
    /// Bits per uploaded token `s_k`.
    pub bits: f64,
    /// Deadline `D_k`, s.
    pub deadline: f64,
    pub weight: f64,
    /// Minimum kept fraction.
    pub rho_min: f64,
    pub rate: RateModel,
    pub curve: Curve,
}

/// The cheapest (bandwidth, compute share) for a number of tokens at prices (λ, μ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alloc {
    /// `λ b + μ φ`.
    pub cost: f64,
    pub bandwidth: f64,
    pub share: f64,
}

/// A user's answer to prices: kept tokens and resources (`served = false`: dropped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// `w·u(A) − λ b − μ φ`.
    pub value: f64,
    /// An upper bound on the user's true maximum of `w·u(A) − C` (concavity: `f(y) ≤ f(n) +
    /// f'(n)(y − n)` over the whole interval; equal to `value` at a kink or a bound, and for the
    /// Shannon rate, whose response carries no certificate).
    pub value_ub: f64,
    pub served: bool,
    pub tokens: f64,
    pub bandwidth: f64,
    pub share: f64,
    /// `f''(n)` when `n` is an interior Newton root (linear rate), else NaN (at a bound or a kink
    /// the kept tokens do not move with small price changes).
    pub curvature: f64,
}

/// What a user's accuracy is worth in the Lagrangian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utility {
    /// `w A` (the weighted-sum objective; with `envelope`, the concave majorant of A).
    Weighted { envelope: bool },
    /// `w log A` (proportional fairness).
    LogAccuracy,
}

/// The instance resolved: what solvers and `evaluate` use.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Total bandwidth `B`, Hz.
    pub bandwidth_hz: f64,
    pub compute: Compute,
    pub objective: Objective,
    pub allow_drop: bool,
    pub users: Vec<User>,
}

/// Golden-section maximisation of a unimodal function on [a, b] (`iters` steps).
pub fn golden_max(mut a: f64, mut b: f64, iters: usize, f: impl Fn(f64) -> f64) -> (f64, f64) {
    const G: f64 = 0.618_033_988_749_894_9;
    let mut x1 = b - G * (b - a);
    let mut x2 = a + G * (b - a);
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..iters {
        if f1 < f2 {
            a = x1;
            x1 = x2;
            f1 = f2;
            x2 = a + G * (b - a);
            f2 = f(x2);
        } else {
            b = x2;
            x2 = x1;
            f2 = f1;
            x1 = b - G * (b - a);
            f1 = f(x1);
        }
    }
    // also compare the end points (the maximum may sit on a bound)
    let mut best = if f1 >= f2 { (x1, f1) } else { (x2, f2) };
    for x in [a, b] {
        let v = f(x);
        if v > best.1 {
            best = (x, v);
        }
    }
    best
}

/// Maximises `f` (concave on each piece of `curve`, with `f'` nonincreasing across pieces) over
/// `[lo, hi]`; `fg(n, piece) = [f, f', f'']`. The first piece whose `f'` changes sign, then
/// [`newton_root`] in it. Returns `(n, f(n), upper bound on max f, f''(n) or NaN at a bound)`; with `certify`, the bound adds
/// `max_y f'(n)(y − n)` (concavity), else it is `f(n)`.
pub fn maximise_by_pieces(
    curve: &Curve,
    lo: f64,
    hi: f64,
    guess: f64,
    certify: bool,
    fg: impl Fn(f64, usize) -> [f64; 3],
) -> (f64, f64, f64, f64) {
    let last = curve.pieces() - 1;
    for piece in 0..=last {
        let (r0, r1) = curve.piece(piece);
        let (a, b) = ((r0 * hi).max(lo), (r1 * hi).min(hi));
        if b <= a && piece < last {
            continue;
        }
        let ea = fg(a, piece);
        if ea[1] <= 0.0 {
            // the right derivative at the piece's start is ≤ 0 (and the left one > 0)
            return (a, ea[0], ea[0], f64::NAN);
        }
        let eb = fg(b, piece);
        if eb[1] >= 0.0 {
            if piece == last {
                return (b, eb[0], eb[0], f64::NAN);
            }
            continue;
        }
        let (x, e) = newton_root(a, b, ea[1], eb[1], guess, |x| fg(x, piece));
        let slack = if certify {
            // concavity: max f ≤ f(x) + f'(x)(y − x) for y in [lo, hi]
            (e[1] * (hi - x)).max(e[1] * (lo - x)).max(0.0)
        } else {
            0.0
        };
        return (x, e[0], e[0] + slack, e[2]);
    }
    unreachable!("the last piece always answers")
}

/// Root of a decreasing `g` on `[a, b]` with `g(a) > 0 > g(b)`, where `eval(x) = [f, g, g']`:
/// Newton from `guess` (or the secant point when the guess is outside); when `g'` is not finite or
/// a Newton step leaves the bracket, an Illinois (regula falsi) step, and bisection when that
/// leaves it too; stops at a step or bracket of a few ulps. Returns the last point evaluated and
/// its `eval`.
pub fn newton_root(
    a: f64,
    b: f64,
    ga: f64,
    gb: f64,
    guess: f64,
    eval: impl FnMut(f64) -> [f64; 3],
) -> (f64, [f64; 3]) {
    let stop = RootStop {
        ftol: 0.0,
        xtol_rel: 4.0 * f64::EPSILON,
        xtol_abs: 4.0 * f64::EPSILON * f64::MIN_POSITIVE,
    };
    bracketed_root(a, b, ga, gb, guess, stop, eval)
}

/// When [`bracketed_root`] stops: at `|g| ≤ ftol`, or at a step or bracket of at most
/// `xtol_rel·|x| + xtol_abs`.
#[derive(Debug, Clone, Copy)]
pub struct RootStop {
    pub ftol: f64,
    pub xtol_rel: f64,
    pub xtol_abs: f64,
}

/// The safeguarded root finder behind [`newton_root`] and the dual's nested price search: on a
/// bracket `[a, b]` of a decreasing `g` (`g(a) > 0 > g(b)`), Newton steps where `g'` (third entry of
/// `eval`) is finite and the step stays inside, Illinois (regula falsi halving the stale end's value)
/// otherwise, bisection when the secant point leaves the bracket. Pass `g' = NaN` for pure Illinois.
pub fn bracketed_root(
    mut a: f64,
    mut b: f64,
    mut ga: f64,
    mut gb: f64,
    guess: f64,
    stop: RootStop,
    mut eval: impl FnMut(f64) -> [f64; 3],
) -> (f64, [f64; 3]) {
    let falsi = |a: f64, b: f64, ga: f64, gb: f64| {
        let s = a + ga * (b - a) / (ga - gb);
        if s > a && s < b {
            s
        } else {
            0.5 * (a + b)
        }
    };
    let mut x = if guess > a && guess < b {
        guess
    } else {
        falsi(a, b, ga, gb)
    };
    let mut side = 0;
    let mut e = eval(x);
    for _ in 0..200 {
        let (gx, g1) = (e[1], e[2]);
        if gx.is_nan() || gx.abs() <= stop.ftol {
            // a root within the tolerance (or a NaN: nothing to bracket with)
            break;
        } else if gx > 0.0 {
            a = x;
            ga = gx;
            if side == 1 {
                gb *= 0.5;
            }
            side = 1;
        } else {
            b = x;
            gb = gx;
            if side == -1 {
                ga *= 0.5;
            }
            side = -1;
        }
        let mut xn = x - gx / g1;
        if !(xn > a && xn < b) {
            xn = falsi(a, b, ga, gb);
        }
        let tol = (stop.xtol_rel * x.abs() + stop.xtol_abs).max(f64::MIN_POSITIVE);
        if (xn - x).abs() <= tol || b - a <= tol {
            break;
        }
        x = xn;
        e = eval(x);
    }
    (x, e)
}

impl Prepared {
    pub fn num_users(&self) -> usize {
        self.users.len()
    }

    /// Time left for upload + prefill after the fixed overhead, s.
    pub fn slack_s(&self, k: usize) -> f64 {
        self.users[k].deadline - self.compute.overhead_s
    }

    /// Upload seconds of `n` tokens on `b` Hz.
    pub fn upload_s(&self, k: usize, n: f64, b: f64) -> f64 {
        let u = &self.users[k];
        if n <= 0.0 {
            return 0.0;
        }
        let r = u.rate.rate(b);
        if r <= 0.0 {
            f64::INFINITY
        } else {
            n * u.bits / r
        }
    }

    /// End-to-end latency (upload + prefill + overhead), s.
    pub fn latency_s(&self, k: usize, n: f64, b: f64, phi: f64) -> f64 {
        self.upload_s(k, n, b) + self.compute.time_s(n, phi) + self.compute.overhead_s
    }

    /// Accuracy of user `k` at kept tokens `n`.
    pub fn accuracy(&self, k: usize, n: f64) -> f64 {
        let u = &self.users[k];
        u.curve.value(n / u.tokens)
    }

    /// The most tokens user `k` can send and prefill by its deadline on (`b`, `phi`) (may be < 0
    /// when even the overhead misses the deadline).
    pub fn max_tokens(&self, k: usize, b: f64, phi: f64) -> f64 {
        let u = &self.users[k];
        let d = self.slack_s(k);
        if d <= 0.0 {
            return if d == 0.0 { 0.0 } else { -1.0 };
        }
        let r = u.rate.rate(b);
        if r <= 0.0 || phi <= 0.0 {
            return 0.0;
        }
        let f = phi * self.compute.flops_per_s;
        // q n² + l n − d = 0
        let l = u.bits / r + self.compute.w1 / f;
        let q = self.compute.w2 / f;
        if q <= 0.0 {
            return d / l;
        }
        2.0 * d / (l + (l * l + 4.0 * q * d).sqrt())
    }

    /// The cheapest `(b, φ)` (at prices λ per Hz, μ per unit share) that carries `n` tokens of user
    /// `k` by its deadline: minimise `λ b + μ φ` over the split `t_u + t_c = D − overhead`. Linear
    /// rate: `cost = (√(λ n s/η) + √(μ W(n)/F))² / D'` (closed form); Shannon: Illinois root of the
    /// derivative in `t_u` (golden section when a price is 0; convex: `β(ns/t)` is a convex
    /// nondecreasing function of the convex `ns/t`).
    pub fn min_cost(&self, k: usize, n: f64, lambda: f64, mu: f64) -> Alloc {
        let u = &self.users[k];
        let d = self.slack_s(k);
        let inf = Alloc {
            cost: f64::INFINITY,
            bandwidth: f64::INFINITY,
            share: f64::INFINITY,
        };
        if n <= 0.0 {
            return Alloc {
                cost: 0.0,
                bandwidth: 0.0,
                share: 0.0,
            };
        }
        if d <= 0.0 {
            return inf;
        }
        let bits = n * u.bits;
        let cw = self.compute.work(n) / self.compute.flops_per_s; // share·seconds
        match u.rate {
            RateModel::Linear { efficiency } => {
                let a = bits / efficiency; // Hz·seconds
                let (sa, sb) = ((lambda * a).sqrt(), (mu * cw).sqrt());
                let tu = if sa + sb > 0.0 {
                    d * sa / (sa + sb)
                } else {
                    0.5 * d
                };
                let tc = d - tu;
                if tu <= 0.0 || tc <= 0.0 {
                    return inf;
                }
                let (b, phi) = (a / tu, cw / tc);
                Alloc {
                    cost: lambda * b + mu * phi,
                    bandwidth: b,
                    share: phi,
                }
            }
            RateModel::Shannon { power_w, gain, n0 } => {
                let alloc = |tu: f64| {
                    let b = u.rate.min_bandwidth(bits / tu);
                    let phi = cw / (d - tu);
                    (b, phi)
                };
                let tu = if lambda > 0.0 && mu > 0.0 && cw > 0.0 {
                    // root of the increasing derivative in t_u:
                    // −λ (bits/t²) / r'(b(bits/t)) + μ c/(D' − t)², on (bits/r_max, D')
                    let snr_hz = power_w * gain / n0;
                    let t_min = bits * std::f64::consts::LN_2 / snr_hz;
                    if t_min >= d {
                        return inf;
                    }
                    let minus_h = |t: f64| {
                        let b = u.rate.min_bandwidth(bits / t);
                        if !b.is_finite() {
                            return [f64::NAN, f64::INFINITY, f64::NAN];
                        }
                        let x = snr_hz / b;
                        let r1 = (1.0 + x).log2() - x / ((1.0 + x) * std::f64::consts::LN_2);
                        let tc = d - t;
                        let h = lambda * bits / (t * t * r1) - mu * cw / (tc * tc);
                        [f64::NAN, h, f64::NAN]
                    };
                    newton_root(
                        t_min,
                        d,
                        f64::INFINITY,
                        f64::NEG_INFINITY,
                        f64::NAN,
                        minus_h,
                    )
                    .0
                } else {
                    // a free resource: any split is as cheap; golden section keeps away from the ends
                    golden_max(0.0, d, 60, |tu| {
                        if tu <= 0.0 || tu >= d {
                            return f64::NEG_INFINITY;
                        }
                        let (b, phi) = alloc(tu);
                        -(lambda * b + mu * phi)
                    })
                    .0
                };
                if tu <= 0.0 || tu >= d {
                    return inf;
                }
                let (b, phi) = alloc(tu);
                if !b.is_finite() {
                    return inf;
                }
                Alloc {
                    cost: lambda * b + mu * phi,
                    bandwidth: b,
                    share: phi,
                }
            }
        }
    }

    /// `dC/dn` at the cheapest allocation `a = min_cost(k, n, λ, μ)` (envelope theorem: the split
    /// stays optimal): with `t_u = n s / r(b)` and `D' − t_u = W(n)/(Fφ)`,
    /// `C' = λ (s/t_u)/r'(b) + μ W'(n)/(F(D' − t_u)) = λ r(b)/(n r'(b)) + μ φ W'(n)/W(n)`.
    pub fn price_slope(&self, k: usize, n: f64, a: &Alloc, lambda: f64, mu: f64) -> f64 {
        if !a.cost.is_finite() {
            return f64::INFINITY;
        }
        let rate = &self.users[k].rate;
        let r1 = match *rate {
            RateModel::Linear { efficiency } => efficiency,
            RateModel::Shannon { power_w, gain, n0 } => {
                let x = power_w * gain / (n0 * a.bandwidth);
                (1.0 + x).log2() - x / ((1.0 + x) * std::f64::consts::LN_2)
            }
        };
        let w = self.compute.work(n);
        let w1 = self.compute.w1 + 2.0 * self.compute.w2 * n;
        let up = if n > 0.0 {
            lambda * rate.rate(a.bandwidth) / (n * r1)
        } else {
            0.0
        };
        up + if w > 0.0 { mu * a.share * w1 / w } else { 0.0 }
    }

    /// `(C, C', C'')` in `n` of the price function of a linear-rate user (module doc, item 3):
    /// with `α = λ s/(η D')`, `β = μ/(F D')`, `r = W(n)/n = w1 + w2 n` and `S = √α + √(β r)`,
    /// `C = n S²` (= `min_cost(k, n, λ, μ).cost`), `C' = S² + 2nSS'`, `C'' = 4SS' + 2n(S'² + SS'')`.
    fn linear_price(
        &self,
        k: usize,
        efficiency: f64,
        lambda: f64,
        mu: f64,
    ) -> impl Fn(f64) -> (f64, f64, f64) {
        let d = self.slack_s(k);
        let alpha = lambda * self.users[k].bits / (efficiency * d);
        let beta = mu / (self.compute.flops_per_s * d);
        let (w1, w2) = (self.compute.w1, self.compute.w2);
        let sa = alpha.sqrt();
        move |n: f64| {
            let r = w1 + w2 * n;
            let sbr = (beta * r).sqrt();
            let s = sa + sbr;
            let (s1, s2) = if r > 0.0 {
                let s1 = sbr * w2 / (2.0 * r);
                (s1, -s1 * w2 / (2.0 * r))
            } else {
                (0.0, 0.0)
            };
            (
                n * s * s,
                s * s + 2.0 * n * s * s1,
                4.0 * s * s1 + 2.0 * n * (s1 * s1 + s * s2),
            )
        }
    }

    /// A user's best response to prices (λ, μ): `max_n w·u(A(n/N)) − C(n; λ, μ)` over
    /// `n ∈ [ρ_min N, N]` (concave in n: u∘A concave, C convex — see the module doc); dropping
    /// (value 0) when allowed and better. See [`Prepared::best_response_from`].
    pub fn best_response(&self, k: usize, lambda: f64, mu: f64, ut: Utility) -> Choice {
        self.best_response_from(k, lambda, mu, ut, f64::NAN)
    }

    /// [`Prepared::best_response`] started from a guess of the kept tokens (NaN: none; the answer
    /// does not depend on it). Linear rate: the piece of the curve where the derivative
    /// `f' = u'(A) A'/N − C'` changes sign, then safeguarded Newton on `f'` (analytic `C'`, `C''`;
    /// bisection when a step leaves the bracket) to machine precision, a certified upper bound
    /// from concavity. Shannon rate: the same piece search with Illinois steps on `f'` (`C'` from
    /// [`Prepared::price_slope`] at the golden-section split of [`Prepared::min_cost`]); no
    /// certificate beyond the value (convexity of the Shannon price in `n` is not proved).
    pub fn best_response_from(
        &self,
        k: usize,
        lambda: f64,
        mu: f64,
        ut: Utility,
        guess: f64,
    ) -> Choice {
        let u = &self.users[k];
        let env;
        let curve = if ut == (Utility::Weighted { envelope: true }) && !u.curve.is_concave() {
            env = u.curve.envelope();
            &env
        } else {
            &u.curve
        };
        let big_n = u.tokens;
        let scale = curve.scale();
        let util = |rho: f64, piece: usize| -> (f64, f64, f64) {
            let (a, a1, a2) = curve.derivs(rho, piece, scale);
            let w = u.weight;
            match ut {
                Utility::LogAccuracy => {
                    let a = a.max(1e-300);
                    (w * a.ln(), w * a1 / a, w * (a2 * a - a1 * a1) / (a * a))
                }
                _ => (w * a, w * a1, w * a2),
            }
        };
        let lo = u.rho_min * big_n;
        let d = self.slack_s(k);
        let (n, v, v_ub, fnn) = match u.rate {
            RateModel::Linear { efficiency } if d > 0.0 => {
                let price = self.linear_price(k, efficiency, lambda, mu);
                // f, f' and f'' on a piece
                let fg = |n: f64, piece: usize| -> [f64; 3] {
                    let (u0, u1, u2) = util(n / big_n, piece);
                    let (c0, c1, c2) = price(n);
                    [u0 - c0, u1 / big_n - c1, u2 / (big_n * big_n) - c2]
                };
                maximise_by_pieces(curve, lo, big_n, guess, true, fg)
            }
            RateModel::Shannon { .. } if d > 0.0 => {
                // f' from the envelope theorem at the optimal split; no f'' (Illinois steps)
                let fg = |n: f64, piece: usize| -> [f64; 3] {
                    let (u0, u1, _) = util(n / big_n, piece);
                    let a = self.min_cost(k, n, lambda, mu);
                    let c1 = self.price_slope(k, n, &a, lambda, mu);
                    [u0 - a.cost, u1 / big_n - c1, f64::NAN]
                };
                maximise_by_pieces(curve, lo, big_n, guess, false, fg)
            }
            _ => {
                // no time left after the overhead: only zero tokens meet the deadline
                let f = util(lo / big_n, 0).0 - self.min_cost(k, lo, lambda, mu).cost;
                (lo, f, f, f64::NAN)
            }
        };
        if !v.is_finite() || (self.allow_drop && ut != Utility::LogAccuracy && v < 0.0) {
            return Choice {
                value: if self.allow_drop { 0.0 } else { v },
                value_ub: if self.allow_drop { v_ub.max(0.0) } else { v_ub },
                served: false,
                tokens: 0.0,
                bandwidth: 0.0,
                share: 0.0,
                curvature: f64::NAN,
            };
        }
        let a = self.min_cost(k, n, lambda, mu);
        Choice {
            value: v,
            value_ub: if self.allow_drop && ut != Utility::LogAccuracy {
                v_ub.max(0.0)
            } else {
                v_ub
            },
            served: true,
            tokens: n,
            bandwidth: a.bandwidth,
            share: a.share,
            curvature: if matches!(u.rate, RateModel::Linear { .. }) {
                fnn
            } else {
                f64::NAN
            },
        }
    }

    /// `[db/dx, db/dy, dφ/dx, dφ/dy]` of a linear-rate user's best response `c` in the log-prices
    /// `x = ln λ`, `y = ln μ`. With `A = n s/(η D')`, `Q = W(n)/(F D')`, `G = √(AQ)`, `ρ = √(μ/λ)`
    /// the cheapest split is `b = A + ρG`, `φ = Q + G/ρ` (so `∂b/∂x = −ρG/2 = −∂b/∂y`,
    /// `∂φ/∂x = G/(2ρ) = −∂φ/∂y` at fixed `n`), and an interior `n` moves by `dn/dx = λ b_n/f''`,
    /// `dn/dy = μ φ_n/f''` (implicit function theorem on `f'(n) = 0`). Zero for a dropped user.
    pub fn response_jacobian(&self, k: usize, c: &Choice, lambda: f64, mu: f64) -> [f64; 4] {
        let u = &self.users[k];
        let RateModel::Linear { efficiency } = u.rate else {
            return [f64::NAN; 4];
        };
        let n = c.tokens;
        if !c.served || n <= 0.0 {
            return [0.0; 4];
        }
        let d = self.slack_s(k);
        let f = self.compute.flops_per_s;
        let a = n * u.bits / (efficiency * d);
        let q = self.compute.work(n) / (f * d);
        let g = (a * q).sqrt();
        let rho = (mu / lambda).sqrt();
        let mut j = [-0.5 * rho * g, 0.5 * rho * g, 0.5 * g / rho, -0.5 * g / rho];
        if c.curvature.is_finite() && c.curvature < 0.0 && g > 0.0 {
            let a1 = u.bits / (efficiency * d);
            let q1 = (self.compute.w1 + 2.0 * self.compute.w2 * n) / (f * d);
            let g1 = (a1 * q + a * q1) / (2.0 * g);
            let (bn, pn) = (a1 + rho * g1, q1 + g1 / rho);
            let (dnx, dny) = (lambda * bn / c.curvature, mu * pn / c.curvature);
            j[0] += bn * dnx;
            j[1] += bn * dny;
            j[2] += pn * dnx;
            j[3] += pn * dny;
        }
        j
    }

    /// For fixed kept tokens `ns` (0 = dropped), the allocation with the least total bandwidth that
    /// uses at most the whole compute (each user minimises `b + κ φ` at the compute price κ that
    /// makes `Σφ = 1`: closed form when every rate is linear, else bisection on κ); `None` when it
    /// needs more than `B` (or a user cannot meet its deadline).
    pub fn allocate(&self, ns: &[f64]) -> Option<Vec<(f64, f64)>> {
        if self
            .users
            .iter()
            .all(|u| matches!(u.rate, RateModel::Linear { .. }))
        {
            return self.allocate_linear(ns);
        }
        let at = |kappa: f64| -> (f64, f64, Vec<(f64, f64)>) {
            let mut sb = 0.0;
            let mut sf = 0.0;
            let mut v = Vec::with_capacity(ns.len());
            for (k, &n) in ns.iter().enumerate() {
                let a = self.min_cost(k, n, 1.0, kappa);
                sb += a.bandwidth;
                sf += a.share;
                v.push((a.bandwidth, a.share));
            }
            (sb, sf, v)
        };
        let (mut lo, mut hi) = (1e-6, 1e6);
        // Σφ decreases in κ: find hi with Σφ <= 1
        let mut tries = 0;
        while at(hi).1 > 1.0 {
            hi *= 1e3;
            tries += 1;
            if tries > 40 {
                return None;
            }
        }
        while at(lo).1 <= 1.0 && lo > 1e-300 {
            lo *= 1e-3;
        }
        for _ in 0..200 {
            let m = (lo * hi).sqrt();
            if at(m).1 <= 1.0 {
                hi = m;
            } else {
                lo = m;
            }
            if hi / lo - 1.0 < 1e-13 {
                break;
            }
        }
        let (sb, sf, v) = at(hi);
        if sb <= self.bandwidth_hz && sf <= 1.0 + 1e-12 && sb.is_finite() {
            Some(v)
        } else {
            None
        }
    }

    /// [`Prepared::allocate`] for linear rates. With `a = n s/η` (Hz·s) and `c = W(n)/F`
    /// (share·s), the user's cheapest split at prices (1, κ) gives `φ = (c + √(a c)/√κ)/D'` and
    /// `b = (a + √(a c)·√κ)/D'` (see [`Prepared::min_cost`]), so `Σφ = P + Q/√κ = 1` with
    /// `P = Σ c/D'`, `Q = Σ √(a c)/D'` fixes `√κ = Q/(1 − P)`.
    fn allocate_linear(&self, ns: &[f64]) -> Option<Vec<(f64, f64)>> {
        let mut ac = Vec::with_capacity(ns.len());
        let (mut p_sum, mut q_sum) = (0.0, 0.0);
        for (k, &n) in ns.iter().enumerate() {
            let u = &self.users[k];
            let RateModel::Linear { efficiency } = u.rate else {
                return None;
            };
            let d = self.slack_s(k);
            if n <= 0.0 {
                ac.push((0.0, 0.0, 1.0));
                continue;
            }
            if d <= 0.0 {
                return None;
            }
            let (a, c) = (
                n * u.bits / efficiency,
                self.compute.work(n) / self.compute.flops_per_s,
            );
            p_sum += c / d;
            q_sum += (a * c).sqrt() / d;
            ac.push((a, c, d));
        }
        let sqrt_kappa = if q_sum > 0.0 {
            if p_sum >= 1.0 {
                return None;
            }
            q_sum / (1.0 - p_sum)
        } else if p_sum <= 1.0 {
            1.0
        } else {
            return None;
        };
        let v: Vec<(f64, f64)> = ac
            .iter()
            .map(|&(a, c, d)| {
                let g = (a * c).sqrt();
                ((a + g * sqrt_kappa) / d, (c + g / sqrt_kappa) / d)
            })
            .collect();
        let sb: f64 = v.iter().map(|x| x.0).sum();
        let sf: f64 = v.iter().map(|x| x.1).sum();
        (sb <= self.bandwidth_hz && sf <= 1.0 + 1e-12 && sb.is_finite()).then_some(v)
    }

    /// Resource-feasible kept tokens for the objective and whether every user is served.
    pub fn objective_value(&self, acc: &[Option<f64>]) -> f64 {
        match self.objective {
            Objective::WeightedSum => acc
                .iter()
                .zip(&self.users)
                .map(|(a, u)| u.weight * a.unwrap_or(0.0))
                .sum(),
            Objective::MaxMin => acc
                .iter()
                .map(|a| a.unwrap_or(0.0))
                .fold(f64::INFINITY, f64::min),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rate: RateModel) -> User {
        User {
            name: "u".into(),
            tokens: 600.0,
            bits: 800.0,
            deadline: 1.0,
            weight: 1.0,
            rho_min: 0.1,
            rate,
            curve: Curve::Saturating {
                floor: 0.3,
                max: 0.9,
                rate: 5.0,
            },
        }
    }

    fn prepared(rate: RateModel) -> Prepared {
        Prepared {
            bandwidth_hz: 1e6,
            compute: Compute {
                w1: 1.35e10,
                w2: 5.2e5,
                flops_per_s: 5e13,
                overhead_s: 0.01,
                source: "test".into(),
            },
            objective: Objective::WeightedSum,
            allow_drop: false,
            users: vec![user(rate)],
        }
    }

    const SHANNON: RateModel = RateModel::Shannon {
        power_w: 0.2,
        gain: 1e-11,
        n0: 4e-21,
    };

    #[test]
    fn min_bandwidth_inverts_the_rate() {
        for rm in [RateModel::Linear { efficiency: 3.0 }, SHANNON] {
            for r in [1e3, 1e5, 1e6, 1e7] {
                let b = rm.min_bandwidth(r);
                if b.is_finite() {
                    assert!((rm.rate(b) - r).abs() <= 1e-9 * r, "{rm:?} {r}");
                }
            }
        }
    }

    #[test]
    fn max_tokens_meets_the_deadline_exactly() {
        for rm in [RateModel::Linear { efficiency: 3.0 }, SHANNON] {
            let p = prepared(rm);
            let n = p.max_tokens(0, 2e5, 0.3);
            let t = p.latency_s(0, n, 2e5, 0.3);
            assert!((t - 1.0).abs() < 1e-9, "{t}");
        }
    }

    #[test]
    fn min_cost_is_convex_in_tokens_and_feasible() {
        // the convexity claim of the module doc (item 3), checked by second differences
        for rm in [RateModel::Linear { efficiency: 3.0 }, SHANNON] {
            let p = prepared(rm);
            let c = |n: f64| p.min_cost(0, n, 2e-6, 1.5).cost;
            for i in 1..59 {
                let n = 10.0 * i as f64;
                let d2 = c(n + 10.0) - 2.0 * c(n) + c(n - 10.0);
                assert!(d2 >= -1e-9 * c(n), "{rm:?} n={n}: {d2}");
                let a = p.min_cost(0, n, 2e-6, 1.5);
                let t = p.latency_s(0, n, a.bandwidth, a.share);
                assert!(t <= 1.0 + 1e-9, "{t}");
            }
        }
    }

    #[test]
    fn best_response_beats_a_fine_grid_and_its_bound_is_valid() {
        // the Newton response (linear rate) and the golden one (Shannon) against 2001 grid points
        let curves = [
            Curve::Saturating {
                floor: 0.3,
                max: 0.9,
                rate: 5.0,
            },
            Curve::Points {
                xs: vec![0.0, 0.3, 0.7, 1.0],
                ys: vec![0.2, 0.6, 0.8, 0.85],
            },
        ];
        for rm in [RateModel::Linear { efficiency: 3.0 }, SHANNON] {
            for curve in &curves {
                let mut p = prepared(rm);
                p.users[0].curve = curve.clone();
                for ut in [Utility::Weighted { envelope: false }, Utility::LogAccuracy] {
                    for (lambda, mu) in [(1e-7, 0.01), (2e-6, 1.5), (1e-5, 0.2), (3e-6, 40.0)] {
                        let c = p.best_response(0, lambda, mu, ut);
                        let u = &p.users[0];
                        let f = |n: f64| {
                            let a = u.curve.value(n / u.tokens);
                            let uu = match ut {
                                Utility::LogAccuracy => a.ln(),
                                _ => a,
                            };
                            uu - p.min_cost(0, n, lambda, mu).cost
                        };
                        assert!((f(c.tokens) - c.value).abs() <= 1e-9, "{rm:?} {curve:?}");
                        let grid = (0..=2000)
                            .map(|i| f(u.tokens * (0.1 + 0.9 * i as f64 / 2000.0)))
                            .fold(f64::NEG_INFINITY, f64::max);
                        assert!(
                            c.value >= grid - 1e-10,
                            "{rm:?} {curve:?} {ut:?} ({lambda}, {mu}): {} < grid {grid}",
                            c.value
                        );
                        assert!(c.value_ub >= c.value);
                        let warm = p.best_response_from(0, lambda, mu, ut, 0.5 * u.tokens);
                        assert!((warm.tokens - c.tokens).abs() <= 1e-9 * u.tokens);
                    }
                }
            }
        }
    }

    #[test]
    fn closed_form_allocation_matches_the_bisection() {
        let mut p = prepared(RateModel::Linear { efficiency: 3.0 });
        p.users = (0..4)
            .map(|i| User {
                tokens: 200.0 + 150.0 * i as f64,
                rate: RateModel::Linear {
                    efficiency: 1.0 + i as f64,
                },
                ..user(RateModel::Linear { efficiency: 1.0 })
            })
            .collect();
        p.compute.flops_per_s = 5e13;
        let ns = [150.0, 0.0, 400.0, 500.0];
        let closed = p.allocate(&ns).unwrap();
        // the same users behind a Shannon user with no tokens take the bisection path
        let mut q = p.clone();
        q.users.push(user(SHANNON));
        let bis = q.allocate(&[ns[0], ns[1], ns[2], ns[3], 0.0]).unwrap();
        for (x, y) in closed.iter().zip(&bis) {
            assert!((x.0 - y.0).abs() <= 1e-9 * x.0.max(1.0), "{x:?} {y:?}");
            assert!((x.1 - y.1).abs() <= 1e-9, "{x:?} {y:?}");
        }
        let sf: f64 = closed.iter().map(|x| x.1).sum();
        assert!((sf - 1.0).abs() < 1e-12);
        for (k, &(b, f)) in closed.iter().enumerate() {
            if ns[k] > 0.0 {
                assert!((p.latency_s(k, ns[k], b, f) - 1.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn envelope_majorises_and_is_concave() {
        let c = Curve::Points {
            xs: vec![0.0, 0.5, 0.8, 1.0],
            ys: vec![0.1, 0.2, 0.8, 0.85],
        };
        assert!(!c.is_concave());
        let e = c.envelope();
        assert!(e.is_concave());
        for i in 0..=100 {
            let r = i as f64 / 100.0;
            assert!(e.value(r) >= c.value(r) - 1e-12);
        }
        // hull of (0,.1), (.8,.8), (1,.85): the point (.5,.2) is dropped
        assert_eq!(
            e,
            Curve::Points {
                xs: vec![0.0, 0.8, 1.0],
                ys: vec![0.1, 0.8, 0.85]
            }
        );
        let t = c.inverse(0.5, 0.0).unwrap();
        assert!((c.value(t) - 0.5).abs() < 1e-12 && t > 0.5);
    }

    #[test]
    fn bracketed_root_illinois_newton_and_tolerance() {
        let g = |x: f64| 1.0 - x * x * x;
        // pure Illinois (no derivative): converges to the root at 1 on a lopsided bracket
        let stop = RootStop {
            ftol: 0.0,
            xtol_rel: 1e-14,
            xtol_abs: 1e-14,
        };
        let mut calls = 0;
        let (x, e) = bracketed_root(0.0, 3.0, g(0.0), g(3.0), f64::NAN, stop, |x| {
            calls += 1;
            [0.0, g(x), f64::NAN]
        });
        assert!((x - 1.0).abs() < 1e-12, "{x}");
        assert_eq!(e[1], g(x));
        assert!(calls < 60, "Illinois should be superlinear, took {calls}");
        // Newton with the derivative from a guess inside: same root, fewer evaluations
        let mut newton_calls = 0;
        let (xn, _) = newton_root(0.0, 3.0, g(0.0), g(3.0), 0.8, |x| {
            newton_calls += 1;
            [0.0, g(x), -3.0 * x * x]
        });
        assert!((xn - 1.0).abs() < 1e-14, "{xn}");
        assert!(newton_calls <= calls, "{newton_calls} > {calls}");
        // a loose |g| tolerance stops early, inside it
        let loose = RootStop { ftol: 1e-3, ..stop };
        let (xl, el) = bracketed_root(0.0, 3.0, g(0.0), g(3.0), f64::NAN, loose, |x| {
            [0.0, g(x), f64::NAN]
        });
        assert!(el[1].abs() <= 1e-3 && (xl - 1.0).abs() < 1e-3, "{xl}");
    }
}
