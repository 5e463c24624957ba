//! Problem families, and the dynamic (JSON-driven) layer over them used by the CLI, the batch
//! runner and the Python bindings.
//!
//! An instance file is a JSON object tagged by `family`, with a `schema_version`; catalog entries are
//! referenced by name, or given inline under an optional `catalog` key:
//!
//! ```json
//! { "family": "pipeline", "schema_version": 1,
//!   "catalog": { "device": [ { "name": "my-board", ... } ] },
//!   ... family fields ... }
//! ```
//!
//! Each family lives in its own folder (`problems/<family>/`) with its formal model in the module
//! doc, `evaluate`, and one file per solver.

pub mod kv_split;
pub mod moe_placement;
pub mod offloading;
pub mod pipeline;
pub mod split_finetune;
pub mod token_radio;

use crate::catalog::Catalog;
use crate::error::{from_json_value, Error, Result};
use crate::solve::{
    self, Evaluation, Family, NoObserver, Observer, SolveOptions, SolveResult, SolverKind, StopFlag,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A solver as listed by `edgeplan compare` and `edgeplan schema`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SolverInfo {
    pub name: String,
    pub kind: SolverKind,
    pub description: String,
}

/// One row of `edgeplan compare`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CompareRow {
    pub instance: String,
    pub family: String,
    pub solver: String,
    pub kind: SolverKind,
    /// `termination/solution`, or `error` / `not_applicable`.
    pub status: String,
    pub objective: Option<f64>,
    /// The solver's own bound.
    pub bound: Option<f64>,
    /// Relative gap of this solver's objective to the best bound any solver proved on this instance.
    pub gap_to_best_bound: Option<f64>,
    pub wall_time_s: f64,
    /// Whether `evaluate` accepted the solution.
    pub feasible: Option<bool>,
    /// Error or note text.
    pub message: Option<String>,
}

/// A family seen through JSON (object-safe).
pub trait DynFamily: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema_version(&self) -> u32;
    /// JSON Schema of the instance (family fields; the envelope keys are added).
    fn instance_schema(&self) -> Value;
    /// JSON Schema of a solution.
    fn solution_schema(&self) -> Value;
    fn solvers(&self) -> Vec<SolverInfo>;
    /// Parses and validates a whole instance document (envelope included).
    fn validate(&self, doc: &Value, catalog: &Catalog) -> Result<()>;
    /// Solves a document with a named solver (`auto` allowed).
    fn solve(
        &self,
        doc: &Value,
        solver: &str,
        options: &SolveOptions,
        catalog: &Catalog,
        observer: &mut dyn Observer,
        stop: StopFlag,
    ) -> Result<SolveResult<Value>>;
    /// Runs every applicable solver.
    fn compare(
        &self,
        doc: &Value,
        options: &SolveOptions,
        catalog: &Catalog,
        instance: &str,
        stop: StopFlag,
    ) -> Result<Vec<CompareRow>>;
    /// Evaluates a given solution against a document.
    fn evaluate(&self, doc: &Value, solution: &Value, catalog: &Catalog) -> Result<Evaluation>;
    /// A random instance document.
    fn generate(&self, size: &str, seed: u64) -> Result<Value>;
}

struct Adapter<F: Family>(std::marker::PhantomData<F>);

/// Splits an instance document into its family fields and a catalog with inline cards merged in.
fn unwrap_envelope<F: Family>(doc: &Value, catalog: &Catalog) -> Result<(F::Instance, Catalog)> {
    let obj = doc
        .as_object()
        .ok_or_else(|| Error::invalid("$", "an instance must be a JSON object"))?;
    match obj.get("family").and_then(|v| v.as_str()) {
        Some(f) if f == F::NAME => {}
        Some(f) => {
            return Err(Error::invalid(
                "$.family",
                format!("expected '{}', got '{f}'", F::NAME),
            ))
        }
        None => return Err(Error::invalid("$.family", "missing family tag")),
    }
    match obj.get("schema_version") {
        None => {}
        Some(v) => match v.as_u64() {
            Some(n) if n as u32 <= F::SCHEMA_VERSION && n >= 1 => {}
            _ => {
                return Err(Error::invalid(
                    "$.schema_version",
                    format!(
                        "unsupported schema version {v}; this edgeplan reads 1..={}",
                        F::SCHEMA_VERSION
                    ),
                ))
            }
        },
    }
    let mut cat = catalog.clone();
    if let Some(inline) = obj.get("catalog") {
        let io = inline.as_object().ok_or_else(|| {
            Error::invalid(
                "$.catalog",
                "must be an object with llm / device / runtime lists",
            )
        })?;
        for (kind, cards) in io {
            let list = cards.as_array().ok_or_else(|| {
                Error::invalid(format!("$.catalog.{kind}"), "must be a list of cards")
            })?;
            for (i, card) in list.iter().enumerate() {
                let path = format!("$.catalog.{kind}[{i}]");
                cat.add_json(kind, &card.to_string())
                    .map_err(|e| e.at(&path))?;
            }
        }
    }
    let mut rest = obj.clone();
    rest.remove("family");
    rest.remove("schema_version");
    rest.remove("catalog");
    rest.remove("description");
    let inst: F::Instance = from_json_value(Value::Object(rest))?;
    Ok((inst, cat))
}

/// Adds the envelope to a family instance.
pub fn wrap_envelope<F: Family>(inst: &F::Instance) -> Value {
    let mut v = serde_json::to_value(inst).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        let mut out = serde_json::Map::new();
        out.insert("family".into(), Value::String(F::NAME.into()));
        out.insert("schema_version".into(), Value::from(F::SCHEMA_VERSION));
        out.extend(std::mem::take(m));
        return Value::Object(out);
    }
    v
}

impl<F: Family> DynFamily for Adapter<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn schema_version(&self) -> u32 {
        F::SCHEMA_VERSION
    }
    fn instance_schema(&self) -> Value {
        let mut s = serde_json::to_value(schemars::schema_for!(F::Instance)).unwrap_or(Value::Null);
        if let Some(props) = s.get_mut("properties").and_then(|p| p.as_object_mut()) {
            props.insert("family".into(), serde_json::json!({"const": F::NAME}));
            props.insert(
                "schema_version".into(),
                serde_json::json!({"type": "integer", "minimum": 1, "maximum": F::SCHEMA_VERSION}),
            );
            props.insert(
                "catalog".into(),
                serde_json::json!({"type": "object", "description": "inline catalog cards: {\"llm\": [...], \"device\": [...], \"runtime\": [...]}"}),
            );
            props.insert("description".into(), serde_json::json!({"type": "string"}));
        }
        if let Some(req) = s.get_mut("required").and_then(|r| r.as_array_mut()) {
            req.push(Value::String("family".into()));
        }
        s
    }
    fn solution_schema(&self) -> Value {
        serde_json::to_value(schemars::schema_for!(F::Solution)).unwrap_or(Value::Null)
    }
    fn solvers(&self) -> Vec<SolverInfo> {
        F::solvers()
            .iter()
            .map(|s| SolverInfo {
                name: s.name().into(),
                kind: s.kind(),
                description: s.description().into(),
            })
            .collect()
    }
    fn validate(&self, doc: &Value, catalog: &Catalog) -> Result<()> {
        let (inst, cat) = unwrap_envelope::<F>(doc, catalog)?;
        F::prepare(&inst, &cat).map(|_| ())
    }
    fn solve(
        &self,
        doc: &Value,
        solver: &str,
        options: &SolveOptions,
        catalog: &Catalog,
        observer: &mut dyn Observer,
        stop: StopFlag,
    ) -> Result<SolveResult<Value>> {
        let (inst, cat) = unwrap_envelope::<F>(doc, catalog)?;
        let p = F::prepare(&inst, &cat)?;
        let s = solve::find_solver::<F>(&p, solver)?;
        Ok(solve::run::<F>(&p, s.as_ref(), options, observer, stop)?.into_json())
    }
    fn compare(
        &self,
        doc: &Value,
        options: &SolveOptions,
        catalog: &Catalog,
        instance: &str,
        stop: StopFlag,
    ) -> Result<Vec<CompareRow>> {
        let (inst, cat) = unwrap_envelope::<F>(doc, catalog)?;
        let p = F::prepare(&inst, &cat)?;
        let sense = F::sense(&p);
        let mut rows = vec![];
        let mut best_bound: Option<f64> = None;
        for s in F::solvers() {
            let mut row = CompareRow {
                instance: instance.into(),
                family: F::NAME.into(),
                solver: s.name().into(),
                kind: s.kind(),
                status: String::new(),
                objective: None,
                bound: None,
                gap_to_best_bound: None,
                wall_time_s: 0.0,
                feasible: None,
                message: None,
            };
            if stop.is_stopped() {
                row.status = "interrupted".into();
                row.message = Some("not run: interrupted before this solver started".into());
                rows.push(row);
                continue;
            }
            match solve::run::<F>(&p, s.as_ref(), options, &mut NoObserver, stop.clone()) {
                Ok(r) => {
                    row.status = r.status.to_string();
                    row.objective = r.objective;
                    row.bound = r.bound;
                    row.wall_time_s = r.wall_time_s;
                    row.feasible = r.evaluation.as_ref().map(|e| e.feasible);
                    if !r.notes.is_empty() {
                        row.message = Some(r.notes.join("; "));
                    }
                    if let Some(b) = r.bound {
                        best_bound = Some(match (best_bound, sense) {
                            (None, _) => b,
                            (Some(x), solve::Sense::Minimize) => x.max(b),
                            (Some(x), solve::Sense::Maximize) => x.min(b),
                        });
                    }
                }
                Err(Error::NotApplicable { reason, .. }) => {
                    row.status = "not_applicable".into();
                    row.message = Some(reason);
                }
                Err(e) => {
                    row.status = "error".into();
                    row.message = Some(e.to_string());
                }
            }
            rows.push(row);
        }
        if let Some(b) = best_bound {
            for r in &mut rows {
                r.gap_to_best_bound = r.objective.map(|o| solve::relative_gap(o, b));
            }
        }
        Ok(rows)
    }
    fn evaluate(&self, doc: &Value, solution: &Value, catalog: &Catalog) -> Result<Evaluation> {
        let (inst, cat) = unwrap_envelope::<F>(doc, catalog)?;
        let p = F::prepare(&inst, &cat)?;
        let sol: F::Solution = from_json_value(solution.clone()).map_err(|e| e.at("$solution"))?;
        Ok(F::evaluate(&p, &sol))
    }
    fn generate(&self, size: &str, seed: u64) -> Result<Value> {
        Ok(wrap_envelope::<F>(&F::generate(size, seed)?))
    }
}

static PIPELINE: Adapter<pipeline::Pipeline> = Adapter(std::marker::PhantomData);
static SPLIT_FINETUNE: Adapter<split_finetune::SplitFinetune> = Adapter(std::marker::PhantomData);
static TOKEN_RADIO: Adapter<token_radio::TokenRadio> = Adapter(std::marker::PhantomData);
static MOE_PLACEMENT: Adapter<moe_placement::MoePlacement> = Adapter(std::marker::PhantomData);
static KV_SPLIT: Adapter<kv_split::KvSplit> = Adapter(std::marker::PhantomData);
static OFFLOADING: Adapter<offloading::Offloading> = Adapter(std::marker::PhantomData);

/// Every registered family, in the order the issues introduced them.
pub fn families() -> Vec<&'static dyn DynFamily> {
    vec![
        &PIPELINE,
        &SPLIT_FINETUNE,
        &KV_SPLIT,
        &MOE_PLACEMENT,
        &TOKEN_RADIO,
        &OFFLOADING,
    ]
}

/// A family by name.
pub fn family(name: &str) -> Result<&'static dyn DynFamily> {
    families()
        .into_iter()
        .find(|f| f.name() == name)
        .ok_or_else(|| Error::UnknownFamily {
            name: name.into(),
            available: families().iter().map(|f| f.name().to_string()).collect(),
        })
}

/// The family of an instance document (from its `family` tag).
pub fn family_of(doc: &Value) -> Result<&'static dyn DynFamily> {
    let name = doc
        .get("family")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Error::invalid("$.family", "missing family tag (a string)"))?;
    family(name).map_err(|e| match e {
        Error::UnknownFamily { name, available } => Error::invalid(
            "$.family",
            format!(
                "unknown family '{name}'; available: {}",
                available.join(", ")
            ),
        ),
        e => e,
    })
}

/// Parses instance text (reporting line/column for malformed JSON, including NaN literals).
pub fn parse_document(text: &str) -> Result<Value> {
    serde_json::from_str::<Value>(text).map_err(|e| Error::Json {
        path: format!("$ (line {}, column {})", e.line(), e.column()),
        message: e.to_string(),
    })
}

/// Solves one document with the default catalog (plus `EDGEPLAN_CATALOG`).
pub fn solve_document(
    doc: &Value,
    solver: &str,
    options: &SolveOptions,
) -> Result<SolveResult<Value>> {
    let catalog = Catalog::from_env()?;
    family_of(doc)?.solve(
        doc,
        solver,
        options,
        &catalog,
        &mut NoObserver,
        StopFlag::new(),
    )
}
