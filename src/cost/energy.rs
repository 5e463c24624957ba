//! Device power and energy.
//!
//! Linear utilisation model (GenZ `power.py`, ASTRA-sim's active/idle example): `P(u) = P_idle +
//! (P_peak − P_idle)·u`, where `u ∈ [0, 1]` is the achieved fraction of the peak of the binding resource
//! (FLOP/s when compute-bound, bytes/s when memory-bound). `P_idle` is the card's static share
//! (≈30 % of board power for GPUs, GenZ) and `P_peak` its TDP or max power mode. Checked against
//! ML.ENERGY v1 (A100, Llama-2-13B, 8.04 J/token) in `docs/calibration.md`.

use crate::catalog::DeviceCard;

/// Power draw in W at utilisation `utilization` (clamped to [0, 1]).
///
/// ```
/// use edgeplan::catalog::Catalog;
/// let h100 = Catalog::builtin().device("h100-sxm").unwrap();
/// let p = edgeplan::cost::power_w(&h100, 1.0);
/// assert_eq!(p, h100.peak_power_w.value);
/// ```
pub fn power_w(device: &DeviceCard, utilization: f64) -> f64 {
    let u = utilization.clamp(0.0, 1.0);
    let idle = device.idle_power_w.value;
    idle + (device.peak_power_w.value - idle) * u
}

/// Energy in J of `seconds` at `utilization`.
pub fn energy_j(device: &DeviceCard, utilization: f64, seconds: f64) -> f64 {
    power_w(device, utilization) * seconds.max(0.0)
}
