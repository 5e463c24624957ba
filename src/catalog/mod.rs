//! The catalog: LLM architecture cards, device cards and runtime (engine) profiles.
//!
//! The default catalog lives in `models/{llm,device,runtime}/*.json` and is embedded in the binary at
//! build time. Users add or override cards without recompiling:
//! - from a directory with the same layout (`--catalog DIR` on the CLI, or `EDGEPLAN_CATALOG=DIR[:DIR2]`),
//! - from Rust or Python values (`Catalog::insert_*`, `edgeplan.Catalog.add_device({...})`).
//!
//! A card loaded later replaces an earlier card of the same name. Names are matched case-insensitively
//! and through each card's `aliases`; an unknown name is an error that lists close matches.
//!
//! Every number a card carries about hardware is a [`Sourced`] value: the figure, the key of its source
//! (see `../shared/reference/sources.md`, or a URL / paper) and a [`Confidence`].

mod device;
mod llm;
mod runtime;

pub use device::{DeviceCard, DeviceClass};
pub use llm::{Arch, LlmCard, MlaConfig, MoeConfig, NormKind, PositionKind, SlidingWindow};
pub use runtime::{RuntimeOverride, RuntimeProfile};

use crate::error::{close_matches, from_json_str, Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_catalog.rs"));
}

/// How much to trust a figure (the tags of `../shared/reference/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Verified in a primary document or tool file (`[V]`).
    Verified,
    /// From a secondary page reproducing vendor numbers (`[S]`).
    Secondary,
    /// Recalled from a vendor document, to be re-checked (`[R]`).
    Recalled,
    /// Derived by arithmetic from other figures (`[D]`).
    Derived,
    /// Fitted to measurements (calibration, see `docs/calibration.md`).
    Fitted,
    /// Uncertain or conflicting sources (`[U]`).
    #[default]
    Uncertain,
    /// A figure given by the user (override cards, measured tables).
    User,
}

/// A number with its source and confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Sourced {
    /// The figure, in the unit named by the field that holds it.
    pub value: f64,
    /// Source key (`[aic-h100]`), URL or paper reference.
    pub source: String,
    /// How much to trust it.
    #[serde(default)]
    pub confidence: Confidence,
}

impl Sourced {
    /// A user-supplied figure.
    pub fn user(value: f64) -> Self {
        Sourced {
            value,
            source: "user".into(),
            confidence: Confidence::User,
        }
    }
}

/// The whole catalog. Cheap to clone (cards are shared).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    llms: BTreeMap<String, Arc<LlmCard>>,
    devices: BTreeMap<String, Arc<DeviceCard>>,
    runtimes: BTreeMap<String, Arc<RuntimeProfile>>,
    /// lower-case alias -> canonical name, per kind
    llm_alias: BTreeMap<String, String>,
    device_alias: BTreeMap<String, String>,
    runtime_alias: BTreeMap<String, String>,
}

/// Environment variable naming extra catalog directories (separated by `:`).
pub const CATALOG_ENV: &str = "EDGEPLAN_CATALOG";

static DEFAULT: OnceLock<Catalog> = OnceLock::new();

impl Catalog {
    /// The embedded default catalog (parsed once per process).
    pub fn builtin() -> &'static Catalog {
        DEFAULT.get_or_init(|| {
            let mut c = Catalog::default();
            for (kind, file, text) in embedded::EMBEDDED {
                c.add_json(kind, text).unwrap_or_else(|e| {
                    panic!("embedded catalog card models/{kind}/{file} is invalid: {e}")
                });
            }
            c
        })
    }

    /// The embedded catalog plus the directories named in `EDGEPLAN_CATALOG`, if any.
    pub fn from_env() -> Result<Catalog> {
        let mut c = Catalog::builtin().clone();
        if let Ok(v) = std::env::var(CATALOG_ENV) {
            for dir in v.split(':').filter(|s| !s.is_empty()) {
                c.load_dir(dir)?;
            }
        }
        Ok(c)
    }

    /// Adds (or overrides) every card under `dir/{llm,device,runtime}/*.json`.
    /// A directory that holds JSON files directly is also accepted: each file's kind is then
    /// taken from its `"kind"` field (`"llm"`, `"device"` or `"runtime"`).
    pub fn load_dir(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::invalid(
                dir.display().to_string(),
                "catalog directory does not exist",
            ));
        }
        let mut found = false;
        for kind in ["llm", "device", "runtime"] {
            let sub = dir.join(kind);
            if sub.is_dir() {
                found = true;
                for path in sorted_json_files(&sub)? {
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
                    self.add_json(kind, &text)
                        .map_err(|e| e.at(&path.display().to_string()))?;
                }
            }
        }
        if !found {
            for path in sorted_json_files(dir)? {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
                let kind = v
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("{}: $.kind", path.display()),
                            "missing card kind (llm, device or runtime)",
                        )
                    })?
                    .to_string();
                self.add_json(&kind, &text)
                    .map_err(|e| e.at(&path.display().to_string()))?;
            }
        }
        Ok(())
    }

    /// Adds a card of kind `llm`, `device` or `runtime` from JSON text.
    pub fn add_json(&mut self, kind: &str, text: &str) -> Result<()> {
        match kind {
            "llm" => self.insert_llm(from_json_str::<LlmCard>(text)?),
            "device" => self.insert_device(from_json_str::<DeviceCard>(text)?),
            "runtime" => self.insert_runtime(from_json_str::<RuntimeProfile>(text)?),
            other => Err(Error::invalid(
                "$.kind",
                format!("unknown card kind '{other}' (llm, device or runtime)"),
            )),
        }
    }

    /// Adds or replaces an LLM card (validated first).
    pub fn insert_llm(&mut self, card: LlmCard) -> Result<()> {
        card.validate()?;
        let name = card.name.clone();
        for a in std::iter::once(&name).chain(card.aliases.iter()) {
            self.llm_alias.insert(a.to_lowercase(), name.clone());
        }
        self.llms.insert(name, Arc::new(card));
        Ok(())
    }

    /// Adds or replaces a device card (validated first).
    pub fn insert_device(&mut self, card: DeviceCard) -> Result<()> {
        card.validate()?;
        let name = card.name.clone();
        for a in std::iter::once(&name).chain(card.aliases.iter()) {
            self.device_alias.insert(a.to_lowercase(), name.clone());
        }
        self.devices.insert(name, Arc::new(card));
        Ok(())
    }

    /// Adds or replaces a runtime profile (validated first).
    pub fn insert_runtime(&mut self, card: RuntimeProfile) -> Result<()> {
        card.validate()?;
        let name = card.name.clone();
        for a in std::iter::once(&name).chain(card.aliases.iter()) {
            self.runtime_alias.insert(a.to_lowercase(), name.clone());
        }
        self.runtimes.insert(name, Arc::new(card));
        Ok(())
    }

    /// Looks up an LLM card by name or alias (case-insensitive).
    pub fn llm(&self, name: &str) -> Result<Arc<LlmCard>> {
        lookup("model", name, &self.llms, &self.llm_alias)
    }

    /// Looks up a device card by name or alias (case-insensitive).
    pub fn device(&self, name: &str) -> Result<Arc<DeviceCard>> {
        lookup("device", name, &self.devices, &self.device_alias)
    }

    /// Looks up a runtime profile by name or alias (case-insensitive).
    pub fn runtime(&self, name: &str) -> Result<Arc<RuntimeProfile>> {
        lookup("runtime", name, &self.runtimes, &self.runtime_alias)
    }

    /// All LLM cards, by name.
    pub fn llms(&self) -> impl Iterator<Item = &Arc<LlmCard>> {
        self.llms.values()
    }

    /// All device cards, by name.
    pub fn devices(&self) -> impl Iterator<Item = &Arc<DeviceCard>> {
        self.devices.values()
    }

    /// All runtime profiles, by name.
    pub fn runtimes(&self) -> impl Iterator<Item = &Arc<RuntimeProfile>> {
        self.runtimes.values()
    }
}

fn lookup<T>(
    kind: &'static str,
    name: &str,
    cards: &BTreeMap<String, Arc<T>>,
    alias: &BTreeMap<String, String>,
) -> Result<Arc<T>> {
    if let Some(c) = cards.get(name) {
        return Ok(c.clone());
    }
    if let Some(canon) = alias.get(&name.to_lowercase()) {
        if let Some(c) = cards.get(canon) {
            return Ok(c.clone());
        }
    }
    Err(Error::UnknownName {
        kind,
        name: name.to_string(),
        suggestions: close_matches(
            name,
            alias
                .keys()
                .map(|k| alias[k].as_str())
                .chain(alias.keys().map(|s| s.as_str())),
        )
        .into_iter()
        .map(|s| alias.get(&s.to_lowercase()).cloned().unwrap_or(s))
        .fold(Vec::new(), |mut acc, s| {
            if !acc.contains(&s) {
                acc.push(s)
            }
            acc
        }),
    })
}

fn sorted_json_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir.display(), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    Ok(v)
}
