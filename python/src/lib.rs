//! `edgeplan._edgeplan`: the thin PyO3 layer under the `edgeplan` Python package.
//!
//! Everything crosses the boundary as JSON text; the Python package (`python/edgeplan/__init__.py`)
//! turns it into `Result`, `Rows` and dicts. Every solve runs on its own thread with the GIL
//! released; the calling thread polls for signals every 50 ms and, on Ctrl-C, sets the solver's
//! stop flag, waits briefly for the interrupted solver and re-raises `KeyboardInterrupt`.
//! Core errors become one exception class per `Error::kind()`.

use edgeplan::catalog::Catalog;
use edgeplan::problems::{self, DynFamily};
use edgeplan::solve::{NoObserver, SolveOptions, StopFlag};
use edgeplan::Error;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;
use serde_json::Value;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

create_exception!(
    edgeplan,
    EdgeplanError,
    PyException,
    "Base class of every edgeplan error; `.kind` is the core error kind."
);
create_exception!(
    edgeplan,
    InvalidInstanceError,
    EdgeplanError,
    "An instance or card is malformed; `.path` is the JSON path of the offending field."
);
create_exception!(
    edgeplan,
    UnknownNameError,
    EdgeplanError,
    "An unknown family, solver, model, device or runtime name."
);
create_exception!(
    edgeplan,
    SolverError,
    EdgeplanError,
    "A solver backend failed."
);
create_exception!(
    edgeplan,
    NotApplicableError,
    EdgeplanError,
    "The solver cannot handle this instance."
);

/// Turns a core error into the matching Python exception, with `.kind` (and `.path` where known).
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let kind = match &e {
        Error::UnknownName { .. } => "unknown_name",
        e => e.kind(),
    };
    let msg = e.to_string();
    let err = match kind {
        "invalid_instance" => InvalidInstanceError::new_err(msg),
        "unknown_name" => UnknownNameError::new_err(msg),
        "solver_error" => SolverError::new_err(msg),
        "not_applicable" => NotApplicableError::new_err(msg),
        _ => EdgeplanError::new_err(msg),
    };
    let v = err.value(py);
    let _ = v.setattr("kind", kind);
    let _ = v.setattr("path", e.json_path());
    if let Error::UnknownName { suggestions, .. } = &e {
        let _ = v.setattr("suggestions", suggestions.clone());
    }
    err
}

fn json_text(py: Python<'_>, v: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| to_py(py, Error::Solver(format!("cannot serialise: {e}"))))
}

/// The process-wide catalog: the embedded cards, `EDGEPLAN_CATALOG`, and cards added with `add_card`.
static CATALOG: Mutex<Option<Catalog>> = Mutex::new(None);

fn with_global<T>(f: impl FnOnce(&mut Catalog) -> edgeplan::Result<T>) -> edgeplan::Result<T> {
    let mut g = CATALOG.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        *g = Some(Catalog::from_env()?);
    }
    f(g.as_mut().expect("initialised above"))
}

/// The process-wide catalog plus per-call directories and inline cards (`{"llm": [...], ...}`).
fn catalog_for(cards: Option<&str>, dirs: Option<Vec<String>>) -> edgeplan::Result<Catalog> {
    let mut c = with_global(|c| Ok(c.clone()))?;
    for d in dirs.unwrap_or_default() {
        c.load_dir(&d)?;
    }
    if let Some(text) = cards {
        let v = problems::parse_document(text)?;
        let obj = v.as_object().ok_or_else(|| {
            Error::invalid(
                "$catalog",
                "must map kind (llm, device, runtime) to a list of cards",
            )
        })?;
        for (kind, list) in obj {
            let items = match list {
                Value::Array(a) => a.clone(),
                one => vec![one.clone()],
            };
            for (i, card) in items.iter().enumerate() {
                c.add_json(kind, &card.to_string())
                    .map_err(|e| e.at(&format!("$catalog.{kind}[{i}]")))?;
            }
        }
    }
    Ok(c)
}

/// Runs `f` on its own thread with the GIL released, checking for signals every 50 ms. On an
/// exception from a signal handler (Ctrl-C), sets `stop`, waits up to 5 s for `f` and re-raises.
fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    stop: &StopFlag,
    f: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("edgeplan-solve".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start solver thread: {e}")))?;
    // A `Receiver` is not `Sync`; the mutex lets the GIL-free closure borrow it.
    let rx = Mutex::new(rx);
    let recv = |t: Duration| rx.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(t);
    loop {
        match py.allow_threads(|| recv(Duration::from_millis(50))) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(SolverError::new_err("the solver thread panicked"))
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Err(e) = py.check_signals() {
            stop.stop();
            let _ = py.allow_threads(|| recv(Duration::from_secs(5)));
            return Err(e);
        }
    }
}

fn options(
    time_limit: Option<f64>,
    mip_gap: Option<f64>,
    threads: Option<usize>,
    seed: u64,
) -> SolveOptions {
    SolveOptions {
        time_limit_s: time_limit,
        mip_rel_gap: mip_gap,
        threads,
        seed,
        ..SolveOptions::default()
    }
}

/// Solves an instance document (JSON text); returns the result as JSON text.
#[pyfunction]
#[pyo3(signature = (doc, solver="auto", time_limit=None, mip_gap=None, threads=None, seed=0, catalog_cards=None, catalog_dirs=None))]
#[allow(clippy::too_many_arguments)]
fn solve(
    py: Python<'_>,
    doc: &str,
    solver: &str,
    time_limit: Option<f64>,
    mip_gap: Option<f64>,
    threads: Option<usize>,
    seed: u64,
    catalog_cards: Option<&str>,
    catalog_dirs: Option<Vec<String>>,
) -> PyResult<String> {
    let doc = problems::parse_document(doc).map_err(|e| to_py(py, e))?;
    let catalog = catalog_for(catalog_cards, catalog_dirs).map_err(|e| to_py(py, e))?;
    let fam: &'static dyn DynFamily = problems::family_of(&doc).map_err(|e| to_py(py, e))?;
    let opts = options(time_limit, mip_gap, threads, seed);
    let solver = solver.to_string();
    let stop = StopFlag::new();
    let flag = stop.clone();
    let r = interruptible(py, &stop, move || {
        fam.solve(&doc, &solver, &opts, &catalog, &mut NoObserver, flag)
    })?
    .map_err(|e| to_py(py, e))?;
    json_text(py, &r)
}

/// Validates an instance document; returns its family name.
#[pyfunction]
#[pyo3(signature = (doc, catalog_cards=None, catalog_dirs=None))]
fn validate(
    py: Python<'_>,
    doc: &str,
    catalog_cards: Option<&str>,
    catalog_dirs: Option<Vec<String>>,
) -> PyResult<String> {
    let checked = (|| {
        let doc = problems::parse_document(doc)?;
        let catalog = catalog_for(catalog_cards, catalog_dirs)?;
        let fam = problems::family_of(&doc)?;
        fam.validate(&doc, &catalog)?;
        Ok(fam.name().to_string())
    })();
    checked.map_err(|e| to_py(py, e))
}

/// Runs every solver of the family; returns the compare rows as JSON text.
#[pyfunction]
#[pyo3(signature = (doc, instance="instance", time_limit=None, mip_gap=None, threads=None, seed=0, catalog_cards=None, catalog_dirs=None))]
#[allow(clippy::too_many_arguments)]
fn compare(
    py: Python<'_>,
    doc: &str,
    instance: &str,
    time_limit: Option<f64>,
    mip_gap: Option<f64>,
    threads: Option<usize>,
    seed: u64,
    catalog_cards: Option<&str>,
    catalog_dirs: Option<Vec<String>>,
) -> PyResult<String> {
    let doc = problems::parse_document(doc).map_err(|e| to_py(py, e))?;
    let catalog = catalog_for(catalog_cards, catalog_dirs).map_err(|e| to_py(py, e))?;
    let fam: &'static dyn DynFamily = problems::family_of(&doc).map_err(|e| to_py(py, e))?;
    let opts = options(time_limit, mip_gap, threads, seed);
    let name = instance.to_string();
    let stop = StopFlag::new();
    let worker_stop = stop.clone();
    let rows = interruptible(py, &stop, move || {
        fam.compare(&doc, &opts, &catalog, &name, worker_stop)
    })?
    .map_err(|e| to_py(py, e))?;
    json_text(py, &rows)
}

/// A random instance document of a family, as JSON text.
#[pyfunction]
#[pyo3(signature = (family, size="small", seed=0))]
fn generate(py: Python<'_>, family: &str, size: &str, seed: u64) -> PyResult<String> {
    let doc = problems::family(family)
        .and_then(|f| f.generate(size, seed))
        .map_err(|e| to_py(py, e))?;
    json_text(py, &doc)
}

/// The instance (or solution) JSON Schema of a family, as JSON text.
#[pyfunction]
#[pyo3(signature = (family, solution=false))]
fn schema(py: Python<'_>, family: &str, solution: bool) -> PyResult<String> {
    let f = problems::family(family).map_err(|e| to_py(py, e))?;
    json_text(
        py,
        &if solution {
            f.solution_schema()
        } else {
            f.instance_schema()
        },
    )
}

/// Every family with its schema version and solvers, as JSON text.
#[pyfunction]
fn families(py: Python<'_>) -> PyResult<String> {
    let v: Vec<Value> = problems::families()
        .iter()
        .map(|f| {
            serde_json::json!({
                "family": f.name(),
                "schema_version": f.schema_version(),
                "solvers": f.solvers(),
            })
        })
        .collect();
    json_text(py, &v)
}

/// Every catalog card of a kind (or all kinds) as a JSON list of full cards, each with `kind` set.
#[pyfunction]
#[pyo3(signature = (kind=None, catalog_cards=None, catalog_dirs=None))]
fn catalog_cards(
    py: Python<'_>,
    kind: Option<&str>,
    catalog_cards: Option<&str>,
    catalog_dirs: Option<Vec<String>>,
) -> PyResult<String> {
    if let Some(k) = kind {
        if !["llm", "device", "runtime"].contains(&k) {
            return Err(to_py(
                py,
                Error::UnknownFamily {
                    name: k.into(),
                    available: vec!["llm".into(), "device".into(), "runtime".into()],
                },
            ));
        }
    }
    let c = catalog_for(catalog_cards, catalog_dirs).map_err(|e| to_py(py, e))?;
    let want = |k: &str| kind.is_none() || kind == Some(k);
    let mut out: Vec<Value> = vec![];
    let mut push = |k: &str, v: serde_json::Result<Value>| {
        if let Ok(Value::Object(mut m)) = v {
            m.insert("kind".into(), Value::String(k.into()));
            out.push(Value::Object(m));
        }
    };
    if want("llm") {
        for card in c.llms() {
            push("llm", serde_json::to_value(card.as_ref()));
        }
    }
    if want("device") {
        for card in c.devices() {
            push("device", serde_json::to_value(card.as_ref()));
        }
    }
    if want("runtime") {
        for card in c.runtimes() {
            push("runtime", serde_json::to_value(card.as_ref()));
        }
    }
    json_text(py, &out)
}

/// Runs the cost model on a `ProfileRequest` (JSON text); returns the report as JSON text with the
/// CLI's rendering under `"table"`.
#[pyfunction]
#[pyo3(signature = (request, catalog_cards=None, catalog_dirs=None))]
fn profile(
    py: Python<'_>,
    request: &str,
    catalog_cards: Option<&str>,
    catalog_dirs: Option<Vec<String>>,
) -> PyResult<String> {
    use edgeplan::cost::profile::{profile, render_table, ProfileRequest};
    let report = (|| {
        let req: ProfileRequest = edgeplan::error::from_json_str(request)?;
        let catalog = catalog_for(catalog_cards, catalog_dirs)?;
        let r = profile(&catalog, &req)?;
        let mut v = serde_json::to_value(&r).map_err(|e| Error::Solver(e.to_string()))?;
        if let Value::Object(m) = &mut v {
            m.insert("table".into(), Value::String(render_table(&r)));
        }
        Ok(v)
    })();
    json_text(py, &report.map_err(|e| to_py(py, e))?)
}

/// Adds (or replaces) a card in the process-wide catalog; returns its name.
#[pyfunction]
fn add_card(py: Python<'_>, kind: &str, card: &str) -> PyResult<String> {
    let added = with_global(|c| {
        c.add_json(kind, card)?;
        let v = problems::parse_document(card)?;
        Ok(v.get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string())
    });
    added.map_err(|e| to_py(py, e))
}

/// Drops cards added with `add_card` (back to the embedded catalog plus `EDGEPLAN_CATALOG`).
#[pyfunction]
fn reset_catalog() {
    *CATALOG.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

#[pymodule]
fn _edgeplan(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("EdgeplanError", py.get_type::<EdgeplanError>())?;
    m.add(
        "InvalidInstanceError",
        py.get_type::<InvalidInstanceError>(),
    )?;
    m.add("UnknownNameError", py.get_type::<UnknownNameError>())?;
    m.add("SolverError", py.get_type::<SolverError>())?;
    m.add("NotApplicableError", py.get_type::<NotApplicableError>())?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(generate, m)?)?;
    m.add_function(wrap_pyfunction!(schema, m)?)?;
    m.add_function(wrap_pyfunction!(families, m)?)?;
    m.add_function(wrap_pyfunction!(catalog_cards, m)?)?;
    m.add_function(wrap_pyfunction!(profile, m)?)?;
    m.add_function(wrap_pyfunction!(add_card, m)?)?;
    m.add_function(wrap_pyfunction!(reset_catalog, m)?)?;
    Ok(())
}
