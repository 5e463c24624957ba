//! Radio and link costs for moving activations (smashed data, KV, tokens) between nodes.

/// Shannon capacity `B·log2(1 + P·g / (N0·B))` in bit/s.
///
/// `bandwidth_hz` B, transmit power `tx_power_w` P, linear channel power gain `channel_gain` g,
/// noise power spectral density `noise_psd_w_per_hz` N0 (thermal noise at 290 K: 4.0e-21 W/Hz,
/// −174 dBm/Hz).
///
/// ```
/// use edgeplan::cost::shannon_rate_bps;
/// // SNR = 1 (0 dB): rate = B.
/// let r = shannon_rate_bps(1e6, 1.0, 1e-6, 1e-12);
/// assert!((r - 1e6).abs() < 1e-3);
/// // SNR 15 -> 4 bit/s/Hz.
/// let r = shannon_rate_bps(10e6, 15.0, 1e-6, 1e-13);
/// assert!((r - 40e6).abs() < 1.0);
/// ```
pub fn shannon_rate_bps(
    bandwidth_hz: f64,
    tx_power_w: f64,
    channel_gain: f64,
    noise_psd_w_per_hz: f64,
) -> f64 {
    if bandwidth_hz <= 0.0 || noise_psd_w_per_hz <= 0.0 {
        return 0.0;
    }
    let snr = tx_power_w.max(0.0) * channel_gain.max(0.0) / (noise_psd_w_per_hz * bandwidth_hz);
    bandwidth_hz * (1.0 + snr).log2()
}

/// Transmit energy `P · bits / rate` in J (infinite when the rate is 0 and bits are to be sent).
///
/// ```
/// use edgeplan::cost::tx_energy_j;
/// // 8 Mbit at 8 Mbit/s with 0.2 W: 1 s -> 0.2 J.
/// assert!((tx_energy_j(8e6, 8e6, 0.2) - 0.2).abs() < 1e-12);
/// assert_eq!(tx_energy_j(0.0, 0.0, 0.2), 0.0);
/// ```
pub fn tx_energy_j(bits: f64, rate_bps: f64, tx_power_w: f64) -> f64 {
    if bits <= 0.0 {
        return 0.0;
    }
    if rate_bps <= 0.0 {
        return f64::INFINITY;
    }
    tx_power_w * bits / rate_bps
}

/// Transfer time `latency + bytes / bandwidth` in s (infinite on a zero-bandwidth link).
///
/// ```
/// use edgeplan::cost::transfer_time_s;
/// // GPT-3 Medium smashed data, 100 x 1024 tokens fp32 (419.4 MB) over 1 GB/s + 5 ms.
/// let t = transfer_time_s(100.0 * 1024.0 * 1024.0 * 4.0, 1e9, 0.005);
/// assert!((t - 0.4244304).abs() < 1e-6);
/// ```
pub fn transfer_time_s(bytes: f64, bandwidth_bytes_per_s: f64, latency_s: f64) -> f64 {
    if bytes <= 0.0 {
        return latency_s.max(0.0);
    }
    if bandwidth_bytes_per_s <= 0.0 {
        return f64::INFINITY;
    }
    latency_s.max(0.0) + bytes / bandwidth_bytes_per_s
}

/// Derivative of [`shannon_rate_bps`] with respect to the bandwidth, bit/s per Hz:
/// `log2(1 + c/B) − (c/B) / ((1 + c/B)·ln 2)` with `c = P·g/N0` (positive and decreasing in `B`:
/// the rate is concave increasing in the bandwidth, saturating at `c / ln 2`).
///
/// ```
/// use edgeplan::cost::radio::{shannon_rate_bps, shannon_rate_slope};
/// let (b, p, g, n0) = (1e6, 0.2, 1e-10, 4e-21);
/// let h = 1.0;
/// let fd = (shannon_rate_bps(b + h, p, g, n0) - shannon_rate_bps(b - h, p, g, n0)) / (2.0 * h);
/// assert!((shannon_rate_slope(b, p, g, n0) - fd).abs() < 1e-4 * fd);
/// ```
pub fn shannon_rate_slope(
    bandwidth_hz: f64,
    tx_power_w: f64,
    channel_gain: f64,
    noise_psd_w_per_hz: f64,
) -> f64 {
    if bandwidth_hz <= 0.0 || noise_psd_w_per_hz <= 0.0 {
        return f64::INFINITY;
    }
    let x = tx_power_w.max(0.0) * channel_gain.max(0.0) / (noise_psd_w_per_hz * bandwidth_hz);
    (1.0 + x).log2() - x / ((1.0 + x) * std::f64::consts::LN_2)
}

/// Transmit power in W needed to reach `rate_bps` over `bandwidth_hz` (inverse Shannon):
/// `P = (N0·B/g)·(2^{r/B} − 1)`.
///
/// ```
/// use edgeplan::cost::radio::{shannon_rate_bps, tx_power_for_rate_w};
/// let r = shannon_rate_bps(1e6, 0.2, 1e-10, 4e-21);
/// assert!((tx_power_for_rate_w(r, 1e6, 1e-10, 4e-21) - 0.2).abs() < 1e-9);
/// ```
pub fn tx_power_for_rate_w(
    rate_bps: f64,
    bandwidth_hz: f64,
    channel_gain: f64,
    noise_psd_w_per_hz: f64,
) -> f64 {
    if rate_bps <= 0.0 {
        return 0.0;
    }
    if bandwidth_hz <= 0.0 || channel_gain <= 0.0 {
        return f64::INFINITY;
    }
    noise_psd_w_per_hz * bandwidth_hz / channel_gain * ((rate_bps / bandwidth_hz).exp2() - 1.0)
}
