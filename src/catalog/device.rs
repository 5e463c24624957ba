//! Device cards (`models/device/*.json`): peak dense throughput per dtype, memory, bandwidth, power.

use super::Sourced;
use crate::error::Result;
use crate::validate::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Broad device class; runtime profiles may carry different efficiencies per class.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    DatacenterGpu,
    DesktopGpu,
    EmbeddedGpu,
    LaptopSoc,
    PhoneSoc,
    Npu,
    Accelerator,
    Cpu,
}

/// One device class. All throughputs are **dense** (no 2:4 sparsity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCard {
    /// Canonical catalog name, lower-case with dashes (`h100-sxm`, `jetson-agx-orin-64gb`).
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Always `"device"` in files.
    #[serde(default)]
    pub kind: Option<String>,
    pub class: DeviceClass,
    /// Dense peak throughput in FLOP/s (or OP/s for integer types), keyed by dtype:
    /// `fp32`, `tf32`, `bf16`, `fp16`, `fp8`, `int8`, `int4`. Missing dtypes fall back to the
    /// nearest wider type the device has (see `cost::roofline`).
    pub peak_flops: BTreeMap<String, Sourced>,
    /// Memory usable by the accelerator, bytes (10^9 per GB).
    pub memory_bytes: Sourced,
    /// Peak memory bandwidth, bytes/s.
    pub memory_bandwidth_bytes_per_s: Sourced,
    /// Power when idle (static share), W.
    pub idle_power_w: Sourced,
    /// Power at full load (TDP / max power mode), W.
    pub peak_power_w: Sourced,
    #[serde(default)]
    pub notes: Option<String>,
}

/// The dtype keys a device card may carry.
pub const DTYPE_KEYS: &[&str] = &["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4"];

impl DeviceCard {
    /// Checks the card's numbers.
    pub fn validate(&self) -> Result<()> {
        let c = Check::root();
        c.field("name")
            .ensure(!self.name.trim().is_empty(), || "must not be empty".into())?;
        c.field("peak_flops")
            .ensure(!self.peak_flops.is_empty(), || {
                "must list at least one dtype".into()
            })?;
        for (k, v) in &self.peak_flops {
            let f = c.field("peak_flops").field(k);
            f.ensure(DTYPE_KEYS.contains(&k.as_str()), || {
                format!("unknown dtype key; use one of {}", DTYPE_KEYS.join(", "))
            })?;
            f.field("value").positive(v.value)?;
        }
        c.field("memory_bytes")
            .field("value")
            .positive(self.memory_bytes.value)?;
        c.field("memory_bandwidth_bytes_per_s")
            .field("value")
            .positive(self.memory_bandwidth_bytes_per_s.value)?;
        c.field("idle_power_w")
            .field("value")
            .nonneg(self.idle_power_w.value)?;
        c.field("peak_power_w")
            .field("value")
            .positive(self.peak_power_w.value)?;
        c.field("peak_power_w")
            .ensure(self.peak_power_w.value >= self.idle_power_w.value, || {
                "must be >= idle_power_w".into()
            })?;
        Ok(())
    }
}
