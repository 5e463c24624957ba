//! Runtime (inference / training engine) profiles (`models/runtime/*.json`).
//!
//! The same device reaches different fractions of its peaks under different engines (llama.cpp,
//! MLC, TensorRT-LLM, vLLM, PyTorch eager). A profile gives, for one engine, the fraction of dense
//! peak compute reached by large GEMMs, the fraction of peak memory bandwidth reached by large
//! weight reads, a fixed latency per kernel launch, and overrides per device class or per device
//! fitted on measurements (`docs/calibration.md`).

use super::{DeviceClass, Sourced};
use crate::error::Result;
use crate::validate::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Efficiencies for one device or device class, overriding the profile's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeOverride {
    /// A device name (exact catalog name) ...
    #[serde(default)]
    pub device: Option<String>,
    /// ... or a device class.
    #[serde(default)]
    pub class: Option<DeviceClass>,
    #[serde(default)]
    pub compute_efficiency: Option<Sourced>,
    #[serde(default)]
    pub bandwidth_efficiency: Option<Sourced>,
    /// Extra bandwidth factor for 4-bit weights (dequantisation overhead), multiplies `bandwidth_efficiency`.
    #[serde(default)]
    pub int4_bandwidth_factor: Option<Sourced>,
}

/// One engine's efficiency profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeProfile {
    /// Canonical name (`llama.cpp`, `mlc`, `tensorrt-llm`, `vllm`, `pytorch-eager`).
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Always `"runtime"` in files.
    #[serde(default)]
    pub kind: Option<String>,
    /// Fraction of dense peak FLOP/s reached by large GEMMs, in (0, 1].
    pub compute_efficiency: Sourced,
    /// Fraction of peak memory bandwidth reached by large weight reads, in (0, 1].
    pub bandwidth_efficiency: Sourced,
    /// Fixed latency per operator (kernel launch, sync), seconds.
    pub per_op_latency_s: Sourced,
    /// Operators per transformer block (for the fixed latency term).
    #[serde(default = "default_ops")]
    pub ops_per_block: u32,
    /// Extra bandwidth factor for 4-bit weights, multiplies `bandwidth_efficiency` (1 = no overhead).
    #[serde(default)]
    pub int4_bandwidth_factor: Option<Sourced>,
    /// Whether the engine runs training (backward passes).
    #[serde(default)]
    pub supports_training: bool,
    /// Overrides per device class or device (device overrides win over class overrides).
    #[serde(default)]
    pub overrides: Vec<RuntimeOverride>,
    #[serde(default)]
    pub notes: Option<String>,
}

fn default_ops() -> u32 {
    10
}

impl RuntimeProfile {
    /// Checks the profile's numbers.
    pub fn validate(&self) -> Result<()> {
        let c = Check::root();
        c.field("name")
            .ensure(!self.name.trim().is_empty(), || "must not be empty".into())?;
        c.field("compute_efficiency").field("value").in_range(
            self.compute_efficiency.value,
            1e-6,
            1.0,
        )?;
        c.field("bandwidth_efficiency").field("value").in_range(
            self.bandwidth_efficiency.value,
            1e-6,
            1.0,
        )?;
        c.field("per_op_latency_s")
            .field("value")
            .nonneg(self.per_op_latency_s.value)?;
        if let Some(f) = &self.int4_bandwidth_factor {
            c.field("int4_bandwidth_factor")
                .field("value")
                .in_range(f.value, 1e-6, 1.0)?;
        }
        for (i, o) in self.overrides.iter().enumerate() {
            let oc = c.field("overrides").index(i);
            oc.ensure(o.device.is_some() != o.class.is_some(), || {
                "set exactly one of device or class".into()
            })?;
            if let Some(e) = &o.compute_efficiency {
                oc.field("compute_efficiency")
                    .field("value")
                    .in_range(e.value, 1e-6, 1.0)?;
            }
            if let Some(e) = &o.bandwidth_efficiency {
                oc.field("bandwidth_efficiency")
                    .field("value")
                    .in_range(e.value, 1e-6, 1.0)?;
            }
            if let Some(e) = &o.int4_bandwidth_factor {
                oc.field("int4_bandwidth_factor")
                    .field("value")
                    .in_range(e.value, 1e-6, 1.0)?;
            }
        }
        Ok(())
    }

    /// `(compute_efficiency, bandwidth_efficiency, int4_bandwidth_factor)` for a device,
    /// after applying class then device overrides.
    pub fn efficiencies(&self, device: &str, class: DeviceClass) -> (f64, f64, f64) {
        let mut ce = self.compute_efficiency.value;
        let mut be = self.bandwidth_efficiency.value;
        let mut q4 = self.int4_bandwidth_factor.as_ref().map_or(1.0, |s| s.value);
        for pass in 0..2 {
            for o in &self.overrides {
                let hit = if pass == 0 {
                    o.class == Some(class)
                } else {
                    o.device.as_deref() == Some(device)
                };
                if hit {
                    if let Some(e) = &o.compute_efficiency {
                        ce = e.value;
                    }
                    if let Some(e) = &o.bandwidth_efficiency {
                        be = e.value;
                    }
                    if let Some(e) = &o.int4_bandwidth_factor {
                        q4 = e.value;
                    }
                }
            }
        }
        (ce, be, q4)
    }
}
