//! # Family `offloading`: energy-efficient offloading of LLM work from devices to the edge
//!
//! Seeds: survey 000 §III (0.7 J/token for a 7B model on a phone; battery limits) and §VII-A (green
//! end-edge cooperation: minimise device or total energy, small models on devices, large ones on the
//! server); survey 003 §4 (resource-efficient inference) and §10.1 (green edge LLM: device energy for
//! battery-limited users, total energy for the operator, accuracy requirements). Anchor: You, Huang,
//! Chae, Kim, "Energy-efficient resource allocation for mobile-edge computation offloading", IEEE
//! TWC 2017 (TDMA partial offloading, convex, threshold policy); Neurosurgeon (per-device best split).
//!
//! ## Sets
//! Devices `k ∈ K`, each with one task; modes `m ∈ M_k` of device `k`:
//! - a **data-partitionable task** (You et al.) has one mode, `partial`, with offloaded bits
//!   `ℓ_k ∈ [m_k⁺, R_k]`, `m_k⁺ = max(0, R_k − f^max_k D_k / C_k)`;
//! - an **LLM request** (catalog model, prompt `P` and generated `G` tokens) has the modes `local`,
//!   `offload` (all layers on the server), `split@s` (layers `[0,s)` on the device, `[s,L)` on the
//!   server), and optionally `small` (a smaller on-device model with its own accuracy). Each LLM mode
//!   uploads a fixed number of bits `ℓ_k = b_{k,m}`.
//!
//! ## Parameters (units)
//! Uplink: bandwidth `B` Hz, frame `T` s, noise PSD `N0` W/Hz, multiple access `tdma` (default:
//! each device sends on the whole band during its slot) or `ofdma` (each device gets a share
//! `b_k` of the band and sends during its whole window); per device: weight `β_k > 0`,
//! deadline `D_k` s (default `T`), channel power gain `g_k` (`a_k = N0 B/g_k` W, `a'_k = N0/g_k`
//! W/Hz), optional maximum transmit power `P^max_k` W (rate cap on a band `b`:
//! `R_k(b) = b log2(1 + P^max g/(N0 b))`, concave increasing in `b`; `r^max_k = R_k(B)`). Server: compute seconds per frame
//! `F` (default ∞), speed `f_s` cycles/s and energy per cycle `e_s` J for partitionable tasks, a
//! catalog card for LLM layers, weight `β_s` (objective `total_energy`).
//! LLM per-layer costs come from the cost model: `cost::layer_table` for a prefill of `P` tokens and
//! `G` decode steps at the mean context `P + G/2`, `roofline::layer_time` on the device card and on
//! the server card (time and energy, `cost::energy`), weights against device memory. Upload bits:
//! `32·P` (token ids) for `offload`, the smashed activations `8·(o^{prefill}_{s−1} + G·o^{decode}_{s−1})`
//! for `split@s`, 0 for `local`/`small`. Per mode: device energy `e_{k,m}` J and time `τ_{k,m}` s of
//! the local layers, server time `w_{k,m}` s and energy `E^s_{k,m}` J of the server layers.
//! Partitionable: `R_k` bits, `C_k` cycles/bit; local energy either fixed per cycle
//! (`(R−ℓ)·C·P_k`, You et al.) or **DVFS**: the `(R−ℓ)C` cycles run at the lowest frequency meeting
//! the deadline, `f = (R−ℓ)C/D ≤ f^max`, energy `κ f²` per cycle, i.e. `κ C³ (R−ℓ)³ / D²`.
//! Server time `C ℓ / f_s`, server energy `e_s C ℓ`.
//!
//! ## Decisions
//! Per device: mode `m_k` (split point), offloaded bits `ℓ_k` (partitionable), upload time
//! `t_k ≥ 0` (TDMA share `t_k/T`), OFDMA bandwidth `b_k ≥ 0` (TDMA: `b_k = B` while sending);
//! derived: transmit power `p_k = (N0 b_k/g_k)(2^{ℓ_k/(t_k b_k)} − 1)`, local frequency `f_k`
//! (DVFS), server compute share `w_k/F`.
//!
//! ## Objective
//! `min Σ_k β_k [ e_{k,m} + L_k(ℓ_k) + E^tx(ℓ_k, t_k, b_k) ] + β_s Σ_k E^s_k`, transmit energy
//! `E^tx(ℓ, t, b) = t (N0 b/g)(2^{ℓ/(t b)} − 1)` (`b = B` under TDMA),
//! with `β_s = 0` for `device_energy` and the server weight for `total_energy`. With
//! `min_accuracy` set, modes below the floor are excluded (energy subject to an accuracy floor).
//!
//! ## Constraints
//! - spectrum: TDMA `Σ_k t_k ≤ T`; OFDMA `Σ_k b_k ≤ B` (the bandwidth budget);
//! - server capacity: `Σ_k w_k(ℓ_k) ≤ F`;
//! - deadline: LLM `τ_{k,m} + t_k + w_{k,m} ≤ D_k` and `t_k ≤ T`; partitionable `t_k ≤ min(D_k, T)`
//!   with local computing in parallel over `D_k` (You et al.; server time not in the deadline);
//!   i.e. `t_k ≤ t^max_{k,m}` in both access schemes;
//! - power: `p_k ≤ P^max_k`, i.e. `ℓ_k ≤ t_k R_k(b_k)` (TDMA: `ℓ_k ≤ r^max_k t_k`); frequency:
//!   `ℓ_k ≥ m_k⁺`; memory: local layers' weights fit; accuracy floor.
//!
//! ## Convexity (why the exact solver is exact; TDMA here, OFDMA in the next section)
//! For fixed modes the problem is convex: `φ(x) = (N0 B/g)(2^{x/B} − 1)` is convex, so the transmit
//! energy `t·φ(ℓ/t)` is its perspective, jointly convex in `(ℓ, t)` for `t > 0`; `L_k` is linear or
//! `c (R − ℓ)³` (convex on `ℓ ≤ R`); the server terms are linear; every constraint is linear.
//! Slater's condition holds when some point is strictly feasible, so strong duality holds for the
//! Lagrangian relaxation of the two coupling rows with multipliers `λ` (TDMA frame) and `μ` (server):
//! `g(λ,μ) = Σ_k min_{m,ℓ,t} [obj_k + λ t + μ w] − λT − μF`. Per device and mode: for given `ℓ`
//! the best `t` has spectral efficiency `x* = ℓ/(tB)` solving `2^x(x ln2 − 1) + 1 = λ/(β a)`,
//! `a = N0B/g`, i.e. `x* ln2 = 1 + W0((λ/(βa) − 1)/e)` (Lambert W), clipped to the rate cap and to
//! `t ≤ t^max`; the remaining 1-D convex function of `ℓ` is minimised by bisection on its derivative
//! (`β a ln2 · 2^{ℓ/(tB)}/B` where `t` is interior or at `t^max`, envelope theorem;
//! `(β P^max + λ)/r^max` where the power cap binds, `t = ℓ/r^max`).
//! With a fixed energy per cycle and no caps, the per-bit cost is constant, which gives You et al.'s
//! threshold structure (offload all of `R_k` iff the priority `β_k a_k (φ ln φ − φ + 1)`,
//! `φ = P_k C_k B/(a_k ln 2)`, exceeds `λ*`). `g` is concave; it is maximised by nested bisection
//! on `λ` (subgradient `T − Σt`) inside bisection on `μ` (subgradient `F − Σw`). The primal point
//! is the convex combination of the responses at the two ends of each bracket that makes the
//! coupling rows tight; it is feasible and, by convexity, costs at most the same combination of
//! their values, so `primal − g` is a certified gap that shrinks with the bracket.
//!
//! ## OFDMA (bandwidth sharing)
//! *Convexity.* `E^tx(ℓ, t, b) = s·a'(2^{ℓ/s} − 1)` depends on `(t, b)` only through the
//! time-bandwidth product `s = t b`. For fixed `t` it is `t` times the perspective
//! `b·φ'(ℓ/b)` of the convex `φ'(x) = a'(2^{x/t} − 1)`, hence jointly convex in `(ℓ, b)`; the
//! power cap `ℓ ≤ t R(b)` is convex because `R(b) = b log2(1 + P^max/(a' b))` is concave (the
//! perspective of the concave `log2(1 + P^max/a' · x)`), so the fixed-mode problem in `(ℓ, b)`
//! stays convex with the single coupling row `Σ b ≤ B` (multiplier `λ`, J/Hz) besides the server.
//! *Transmit over the whole window.* `d/ds [s(2^{ℓ/s} − 1)] = 2^y(1 − y ln2) − 1 < 0` for
//! `y = ℓ/s > 0` (`e^u(1 − u) < 1` for `u > 0`), so for fixed `ℓ > 0` the energy falls strictly in
//! `t` and in `b`. Under OFDMA `t_k` enters no coupling row: only `t_k ≤ t^max_{k,m}` (the frame,
//! the deadline less the local and server compute of the mode) and the power cap, which a longer
//! `t` loosens. Hence every optimum has `t_k = t^max_{k,m}` when `ℓ_k > 0` (the solvers fix it so)
//! and the decision per device is `(ℓ, b)`.
//! *Per-device response.* For `ℓ > 0`, write `b = c/x` with rate `c = ℓ/t^max` and spectral
//! efficiency `x`: `β t a'(c/x)(2^x − 1) + λ c/x` is minimised at the same Lambert-W root as
//! TDMA, `2^x(x ln2 − 1) + 1 = ρ`, now with `ρ = λ/(β a' t^max)`; the best bandwidth is
//! `b* = clamp(c/x*, b^cap(c), B)`, where `b^cap(c)` (least band carrying `c` at `P^max`) solves
//! `ln(1 + y) = q y`, `y = P^max/(a' b)`, `q = c a' ln2 / P^max`: `1 + y = −W_{−1}(−q e^{−q})/q`
//! (lower Lambert branch). The slope of the partial minimum in `ℓ` is `β a' ln2 · 2^{ℓ/(t b*)}`
//! where the cap is slack (envelope theorem) and `λ / (t R'(b*))` where it binds (power at the
//! cap, constant energy `P^max t`); with the local and server slopes this is a 1-D convex
//! bisection as under TDMA. The dual, its nested bisection, the primal recovery by convex
//! combination (the combination of two points with `t = t^max` is feasible for the convex cap)
//! and the mode branch and bound are unchanged, with `Σ b` in place of `Σ t`.
//! *TDMA vs OFDMA.* In time-bandwidth products `s_k`, TDMA allows `Σ s_k ≤ T B` with
//! `s_k ≤ t^max_k B`; OFDMA allows `Σ s_k / t^max_k ≤ B`, a subset (slot positions are not
//! modelled under TDMA, see below). The OFDMA cap `ℓ ≤ s log2(1 + P^max/(a' b))` is looser (a
//! narrower band at lower power). So without power caps TDMA ≤ OFDMA, with equality when every
//! window is the whole frame (You et al.'s classic model: both give the same optimum), and with
//! every window the whole frame OFDMA ≤ TDMA; otherwise neither dominates. The tests check all
//! three.
//!
//! Mode choice: modes couple only through the two budgets. `g(λ,μ)` over all modes is still a valid
//! lower bound (weak duality); the exact solver recovers a primal by fixing the modes of the
//! responses and solving the convex fixed-mode problem, and closes any remaining gap by branch and
//! bound on the modes of the devices whose response flips inside the final bracket (each node is the
//! same dual on restricted mode sets). It reports `optimal` only when `primal − bound ≤ tol·primal`
//! (`mip_rel_gap`, default 1e-6; the 1-D solves are bisections to ~1e-13 relative).
//!
//! ## Simplifications (stated)
//! - TDMA: the slot order inside the frame is not modelled (each device's deadline bounds its
//!   slot length, not its position, as in You et al.). OFDMA: bandwidth is continuous (no
//!   resource blocks or subcarrier granularity), every device sees a flat channel gain over the
//!   band, and each device's window starts when its local layers finish.
//! - Downlink of generated tokens and per-token round trips of split decoding are not costed;
//!   the server runs each offloaded request at full speed (time `w`), sharing by time (`Σw ≤ F`),
//!   with no queueing delay in the deadline.
//! - LLM device compute runs at the card's roofline speed (no DVFS for LLM layers); DVFS is modelled
//!   for partitionable tasks.
//! - The accuracy floor is per request (a mode filter), not an average over requests.
//!
//! ## Solvers (one file each)
//! `exact` (dual bisection + branch and bound on modes, certified gap; TDMA and OFDMA),
//! `gradient` (projected subgradient ascent on (λ, μ), primal by the fixed-mode convex solve),
//! `threshold` (You et al.'s closed-form policy, classic TDMA instances only), `neurosurgeon`
//! (per-device best mode ignoring the coupling, then shares), `all-local`, `all-offload`,
//! `equal-share` (equal slots or bandwidth and server time, no coupling; baselines),
//! `brute-force` (mode enumeration × a grid over the frame or the band, tiny instances).

#![allow(clippy::needless_range_loop)]

pub mod baselines;
pub mod brute_force;
pub mod cost;
pub mod exact;
pub mod generate;
pub mod gradient;
pub mod instance;
pub mod threshold;

pub use cost::{Point, Prepared};
pub use instance::*;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::solve::{Evaluation, Family, Sense, Solver};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The family marker.
pub struct Offloading;

/// One device's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceDecision {
    pub device: String,
    /// `partial`, `local`, `offload`, `split@s`, `small`.
    pub mode: String,
    /// Offloaded bits ℓ_k.
    pub offloaded_bits: f64,
    /// Upload time t_k, s (TDMA: the slot; OFDMA: the transmission window).
    pub tx_time_s: f64,
    /// OFDMA: the device's bandwidth b_k, Hz (required; 0 when nothing is uploaded). TDMA: absent
    /// (the device sends on the whole band during its slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_hz: Option<f64>,
}

/// A solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffloadingSolution {
    pub devices: Vec<DeviceDecision>,
}

impl OffloadingSolution {
    pub fn from_points(p: &Prepared, pts: &[Point]) -> Self {
        OffloadingSolution {
            devices: pts
                .iter()
                .enumerate()
                .map(|(k, x)| DeviceDecision {
                    device: p.devs[k].name.clone(),
                    mode: p.devs[k].modes[x.mode].label.clone(),
                    offloaded_bits: x.l,
                    tx_time_s: x.t,
                    bandwidth_hz: p.ofdma().then_some(x.b),
                })
                .collect(),
        }
    }
}

fn bad(msg: String) -> Evaluation {
    Evaluation {
        feasible: false,
        objective: f64::NAN,
        violations: vec![msg],
        metrics: serde_json::Value::Null,
    }
}

const FTOL: f64 = 1e-9;

/// Checks a decision against every constraint and computes the objective (independent of solvers).
pub fn evaluate(p: &Prepared, sol: &OffloadingSolution) -> Evaluation {
    if sol.devices.len() != p.k() {
        return bad(format!(
            "{} decisions for {} devices",
            sol.devices.len(),
            p.k()
        ));
    }
    let mut v = vec![];
    let mut pts = vec![];
    let mut rows = vec![];
    let (mut st, mut sb, mut sw, mut dev_j, mut srv_j) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut tl: f64 = 0.0;
    for (k, (d, x)) in p.devs.iter().zip(&sol.devices).enumerate() {
        if x.device != d.name {
            return bad(format!(
                "decision {k} is for '{}', expected '{}'",
                x.device, d.name
            ));
        }
        let Some(mi) = d.modes.iter().position(|m| m.label == x.mode) else {
            return bad(format!("{}: unknown mode '{}'", d.name, x.mode));
        };
        let m = &d.modes[mi];
        if let Err(e) = &m.allowed {
            v.push(format!("{}: mode {} not allowed: {e}", d.name, m.label));
        }
        let (l, t) = (x.offloaded_bits, x.tx_time_s);
        if !l.is_finite() || !t.is_finite() || t < 0.0 {
            return bad(format!(
                "{}: offloaded_bits / tx_time_s must be finite, t ≥ 0",
                d.name
            ));
        }
        let bw = match (p.access, x.bandwidth_hz) {
            (Access::Ofdma, Some(b)) if b.is_finite() && b >= 0.0 => b,
            (Access::Ofdma, _) => {
                return bad(format!(
                    "{}: OFDMA needs a finite bandwidth_hz ≥ 0 per device",
                    d.name
                ))
            }
            (Access::Tdma, None) => 0.0,
            (Access::Tdma, Some(b)) => {
                if (b - p.bandwidth_hz).abs() > FTOL * p.bandwidth_hz {
                    v.push(format!(
                        "{}: bandwidth_hz {b} under TDMA (each slot uses the whole band B = {} Hz)",
                        d.name, p.bandwidth_hz
                    ));
                }
                0.0
            }
        };
        let sc = m.hi.max(1.0);
        if l < m.lo - FTOL * sc || l > m.hi + FTOL * sc {
            v.push(format!(
                "{}: offloaded bits {l} outside [{}, {}]",
                d.name, m.lo, m.hi
            ));
        }
        if l > 0.0 && t <= 0.0 {
            v.push(format!("{}: bits offloaded with zero upload time", d.name));
        }
        if l > 0.0 && p.ofdma() && bw <= 0.0 {
            v.push(format!("{}: bits offloaded with zero bandwidth", d.name));
        }
        let pt = Point {
            mode: mi,
            l,
            t,
            b: bw,
        };
        let rcap = p.rate_cap(d, p.band(&pt));
        if l > rcap * t * (1.0 + FTOL) + FTOL {
            v.push(format!(
                "{}: rate {} bit/s above the power-limited rate {rcap}",
                d.name,
                l / t,
            ));
        }
        let b = p.breakdown(k, &pt);
        let latency = if m.deadline_includes_server {
            m.tau_loc + t + b.server_s
        } else {
            t.max(d.deadline)
        };
        if t > p.frame_s.min(d.deadline) * (1.0 + FTOL) + FTOL * 1e-3
            || latency > d.deadline * (1.0 + FTOL) + 1e-12
        {
            v.push(format!(
                "{}: deadline {} s missed (latency {latency} s, slot {t} s)",
                d.name, d.deadline
            ));
        }
        st += t;
        tl = tl.max(t);
        sb += bw;
        sw += b.server_s;
        dev_j += b.local_j + b.tx_j;
        srv_j += b.server_j;
        let freq = if m.cycles_per_bit > 0.0 {
            Some((m.total_bits - l).max(0.0) * m.cycles_per_bit / d.deadline)
        } else {
            None
        };
        rows.push(json!({
            "device": d.name,
            "mode": m.label,
            "split": m.split,
            "offloaded_bits": l,
            "tx_time_s": t,
            "bandwidth_hz": p.band(&pt),
            "tx_power_w": b.tx_power_w,
            "local_energy_j": b.local_j,
            "tx_energy_j": b.tx_j,
            "device_energy_j": b.local_j + b.tx_j,
            "server_time_s": b.server_s,
            "server_energy_j": b.server_j,
            "latency_s": latency,
            "local_cycles_per_s": freq,
            "accuracy": m.accuracy,
        }));
        if let Some(pm) = d.pmax {
            if b.tx_power_w > pm * (1.0 + 1e-6) {
                v.push(format!(
                    "{}: transmit power {} W above {pm} W",
                    d.name, b.tx_power_w
                ));
            }
        }
        pts.push(pt);
    }
    if !p.ofdma() && st > p.frame_s * (1.0 + FTOL) {
        v.push(format!("TDMA frame: Σ t = {st} s > T = {} s", p.frame_s));
    }
    if p.ofdma() && sb > p.bandwidth_hz * (1.0 + FTOL) {
        v.push(format!(
            "OFDMA band: Σ b = {sb} Hz > B = {} Hz",
            p.bandwidth_hz
        ));
    }
    if sw > p.capacity_s * (1.0 + FTOL) {
        v.push(format!(
            "server capacity: Σ w = {sw} s > F = {} s",
            p.capacity_s
        ));
    }
    let objective = p.objective(&pts);
    if !objective.is_finite() {
        v.push("objective is not finite".into());
    }
    Evaluation {
        feasible: v.is_empty(),
        objective,
        violations: v,
        metrics: json!({
            "objective_kind": p.objective,
            "access": p.access,
            "device_energy_j": dev_j,
            "server_energy_j": srv_j,
            // TDMA: Σ t; OFDMA: the longest upload window
            "frame_used_s": if p.ofdma() { tl } else { st },
            "bandwidth_used_hz": if p.ofdma() { sb } else { p.bandwidth_hz },
            "server_time_s": sw,
            "devices": rows,
        }),
    }
}

/// Relative tolerance of the exact solvers: `mip_rel_gap` or 1e-6.
pub fn tolerance(o: &crate::solve::SolveOptions) -> f64 {
    o.mip_rel_gap.unwrap_or(1e-6).max(1e-12)
}

impl Family for Offloading {
    const NAME: &'static str = "offloading";
    type Instance = OffloadingInstance;
    type Prepared = Prepared;
    type Solution = OffloadingSolution;

    fn prepare(instance: &OffloadingInstance, catalog: &Catalog) -> Result<Prepared> {
        instance.prepare(catalog)
    }
    fn sense(_: &Prepared) -> Sense {
        Sense::Minimize
    }
    fn evaluate(p: &Prepared, s: &OffloadingSolution) -> Evaluation {
        evaluate(p, s)
    }
    fn solvers() -> Vec<Box<dyn Solver<Self>>> {
        vec![
            Box::new(exact::Exact),
            Box::new(gradient::DualAscent),
            Box::new(threshold::Threshold),
            Box::new(baselines::Neurosurgeon),
            Box::new(baselines::AllLocal),
            Box::new(baselines::AllOffload),
            Box::new(baselines::EqualShare),
            Box::new(brute_force::BruteForce),
        ]
    }
    fn auto_solver(_: &Prepared) -> &'static str {
        "exact"
    }
    fn generate(size: &str, seed: u64) -> Result<OffloadingInstance> {
        generate::generate(size, seed)
    }
}
