//! Roofline time per layer (LLM-Viewer `roofline_analyze`, formulas.md E.6).
//!
//! `t = max(F / (peak(dtype)·compute_eff), B / (bw·bandwidth_eff·q4)) + n_ops·per_op_latency`,
//! evaluated separately for the projection/MLP part and the attention core of a block (they have very
//! different arithmetic intensities in decode). `q4` is the runtime's `int4_bandwidth_factor` for 4-bit
//! weights (1 otherwise). Efficiencies come from the runtime profile (`models/runtime/*.json`) after
//! class and device overrides; they are fitted in `docs/calibration.md`.
//!
//! Default runtime per device class (when none is named): datacentre GPUs `vllm`; desktop GPUs, laptop
//! SoCs and CPUs `llama.cpp`; embedded GPUs (Jetson) and phone SoCs `mlc` (the engine of the B4
//! Jetson rows and of MLC-LLM's Android/iOS builds); NPUs and other accelerators `pytorch-eager`.

use super::energy::power_w;
use super::{DType, LayerCost, LayerKind, Phase, Workload};
use crate::catalog::{Catalog, DeviceCard, DeviceClass, RuntimeProfile};
use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A device running under an engine.
#[derive(Debug, Clone)]
pub struct Hardware {
    pub device: Arc<DeviceCard>,
    pub runtime: Arc<RuntimeProfile>,
}

/// Default runtime name for a device class (see the module doc).
pub fn default_runtime(class: DeviceClass) -> &'static str {
    match class {
        DeviceClass::DatacenterGpu => "vllm",
        DeviceClass::DesktopGpu | DeviceClass::LaptopSoc | DeviceClass::Cpu => "llama.cpp",
        DeviceClass::EmbeddedGpu | DeviceClass::PhoneSoc => "mlc",
        DeviceClass::Npu | DeviceClass::Accelerator => "pytorch-eager",
    }
}

/// Fallback order for a dtype missing from a device card: the nearest wider type first.
fn fallback_chain(d: DType) -> &'static [&'static str] {
    match d {
        DType::Int4 => &["int4", "int8", "fp16", "bf16", "fp32"],
        DType::Int8 => &["int8", "fp16", "bf16", "fp32"],
        DType::Fp8 => &["fp8", "fp16", "bf16", "fp32"],
        DType::Fp16 => &["fp16", "bf16", "fp32"],
        DType::Bf16 => &["bf16", "fp16", "fp32"],
        DType::Fp32 => &["fp32", "tf32", "fp16", "bf16"],
    }
}

impl Hardware {
    pub fn new(device: Arc<DeviceCard>, runtime: Arc<RuntimeProfile>) -> Self {
        Hardware { device, runtime }
    }

    /// Looks up a device and a runtime (default per class, see [`default_runtime`]).
    pub fn from_catalog(cat: &Catalog, device: &str, runtime: Option<&str>) -> Result<Self> {
        let dev = cat.device(device)?;
        let rt_name = runtime.unwrap_or_else(|| default_runtime(dev.class));
        let rt = cat.runtime(rt_name).map_err(|e| match (runtime, e) {
            (None, Error::UnknownName { .. }) => Error::invalid(
                "$.runtime",
                format!(
                    "no runtime given and the default for {:?} ('{rt_name}') is not in the catalog",
                    dev.class
                ),
            ),
            (_, e) => e,
        })?;
        Ok(Hardware::new(dev, rt))
    }

    fn eff(&self) -> (f64, f64, f64) {
        self.runtime
            .efficiencies(&self.device.name, self.device.class)
    }

    /// Dense peak FLOP/s for `d`, falling back to the nearest wider dtype the card lists (then to the
    /// slowest listed type, e.g. the int8-only Edge TPU).
    pub fn peak_flops(&self, d: DType) -> f64 {
        for k in fallback_chain(d) {
            if let Some(v) = self.device.peak_flops.get(*k) {
                return v.value;
            }
        }
        self.device
            .peak_flops
            .values()
            .map(|v| v.value)
            .fold(f64::INFINITY, f64::min)
    }

    /// Peak FLOP/s × the runtime's compute efficiency.
    pub fn effective_flops(&self, d: DType) -> f64 {
        self.peak_flops(d) * self.eff().0
    }

    /// Peak bandwidth × bandwidth efficiency (× the 4-bit factor for `Int4` weights).
    pub fn effective_bandwidth(&self, weight_dtype: DType) -> f64 {
        let (_, be, q4) = self.eff();
        let f = if weight_dtype == DType::Int4 { q4 } else { 1.0 };
        self.device.memory_bandwidth_bytes_per_s.value * be * f
    }

    /// Fixed latency per operator, seconds.
    pub fn per_op_latency_s(&self) -> f64 {
        self.runtime.per_op_latency_s.value
    }

    /// Operators of one layer for the fixed-latency term.
    pub fn ops_for(&self, kind: LayerKind) -> u32 {
        match kind {
            LayerKind::Block => self.runtime.ops_per_block,
            LayerKind::Embedding => 1,
            LayerKind::Head => 2,
        }
    }
}

/// `max(flops / eff_flops(d.compute()), bytes / eff_bw(d)) + n_ops · per_op_latency`.
pub fn op_time_s(flops: f64, bytes: f64, hw: &Hardware, d: DType, n_ops: u32) -> f64 {
    let tc = if flops > 0.0 {
        flops / hw.effective_flops(d.compute())
    } else {
        0.0
    };
    let tb = if bytes > 0.0 {
        bytes / hw.effective_bandwidth(d)
    } else {
        0.0
    };
    tc.max(tb) + n_ops as f64 * hw.per_op_latency_s()
}

/// Time and energy of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct LayerTime {
    pub fwd_s: f64,
    pub bwd_s: f64,
    pub fwd_j: f64,
    pub bwd_j: f64,
}

impl LayerTime {
    pub fn total_s(&self) -> f64 {
        self.fwd_s + self.bwd_s
    }
    pub fn total_j(&self) -> f64 {
        self.fwd_j + self.bwd_j
    }
}

/// Utilisation of the binding resource for `flops`/`bytes` done in `t` seconds.
fn utilization(flops: f64, bytes: f64, t: f64, hw: &Hardware, d: DType) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let uf = flops / t / hw.peak_flops(d.compute());
    let ub = bytes / t / hw.device.memory_bandwidth_bytes_per_s.value;
    uf.max(ub).clamp(0.0, 1.0)
}

/// Roofline time of a forward-like pass split into (linear, attention) parts.
fn split_time(
    flops: f64,
    bytes: f64,
    attn_flops: f64,
    attn_bytes: f64,
    hw: &Hardware,
    d: DType,
    n_ops: u32,
) -> f64 {
    let lin = op_time_s(
        (flops - attn_flops).max(0.0),
        (bytes - attn_bytes).max(0.0),
        hw,
        d,
        n_ops,
    );
    let at = op_time_s(attn_flops, attn_bytes, hw, d.activation(), 0);
    lin + at
}

/// Time and energy of one layer. Backward runs only for training workloads and only when the layer is
/// not `frozen` (`frozen` = "backward stops here": no trainable layer lies below it and it has no
/// trainable weights). The activation-gradient part is always computed in a non-frozen layer; the
/// weight-gradient part is scaled by `trainable_fraction` (1 for full fine-tuning, ≈0 for LoRA).
/// Energy: `power_w(device, u) · t` with `u` the achieved fraction of the binding peak.
pub fn layer_time(
    layer: &LayerCost,
    hw: &Hardware,
    w: &Workload,
    trainable_fraction: f64,
    frozen: bool,
) -> LayerTime {
    let d = w.dtype;
    let n_ops = hw.ops_for(layer.kind);
    let fwd_s = split_time(
        layer.fwd_flops,
        layer.fwd_bytes,
        layer.attn_fwd_flops,
        layer.attn_fwd_bytes,
        hw,
        d,
        n_ops,
    );
    let fwd_u = utilization(layer.fwd_flops, layer.fwd_bytes, fwd_s, hw, d);
    let mut t = LayerTime {
        fwd_s,
        bwd_s: 0.0,
        fwd_j: power_w(&hw.device, fwd_u) * fwd_s,
        bwd_j: 0.0,
    };
    if w.phase == Phase::Training && !frozen {
        let tf = trainable_fraction.clamp(0.0, 1.0);
        let flops = layer.bwd_act_flops + layer.recompute_flops + layer.bwd_weight_flops * tf;
        // Weights read again for activation gradients, activations re-read, gradients written.
        let bytes = layer.fwd_bytes * (1.0 + tf)
            + layer.fwd_bytes * (layer.recompute_flops > 0.0) as u8 as f64;
        let attn_flops = 2.0 * layer.attn_fwd_flops;
        let attn_bytes = 2.0 * layer.attn_fwd_bytes;
        let bwd_s = split_time(
            flops,
            bytes,
            attn_flops.min(flops),
            attn_bytes.min(bytes),
            hw,
            d,
            2 * n_ops,
        );
        let u = utilization(flops, bytes, bwd_s, hw, d);
        t.bwd_s = bwd_s;
        t.bwd_j = power_w(&hw.device, u) * bwd_s;
    }
    t
}
