//! The batch runner behind `edgeplan batch`: solves every instance file under a directory on a
//! pool of worker threads and writes one result file per instance.
//!
//! - Instances are the `*.json` files under the input directory, recursively
//!   (`instances/<family>/*.json`), in path order. Hidden files and the output directory are skipped.
//! - The output mirrors the input layout: `instances/pipeline/a.json` gives
//!   `OUT/pipeline/a.result.json`, or `OUT/pipeline/a.error.json` when the file cannot be read,
//!   parsed, validated or solved. `OUT/summary.json` lists every row and every error.
//! - Every file is written atomically (a temporary file in the same directory, then a rename):
//!   an interrupted batch never leaves a half-written result behind.
//! - `resume` skips instances whose result file already exists (their rows are read back); an
//!   interrupted solve's result does not count and is run again.
//! - Inside a parallel batch each solve gets one backend thread (HiGHS `threads = 1`) so `jobs`
//!   solves do not fight over cores.
//! - A [`StopFlag`] (Ctrl-C) makes running solvers return `interrupted` with their incumbent; instances
//!   not yet started are left out of the summary and reported in `not_run`.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::problems::{family_of, parse_document};
use crate::solve::{NoObserver, SolveOptions, SolveResult, StopFlag, Termination};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What `run_batch` does.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// A directory of instance files (searched recursively) or a single instance file.
    pub input: PathBuf,
    /// Where results go (created if missing).
    pub out: PathBuf,
    /// Worker threads; 0 = one per core.
    pub jobs: usize,
    /// Skip instances whose result file exists.
    pub resume: bool,
    /// Solver name (`auto` picks per instance).
    pub solver: String,
    /// Per-instance options (the time limit applies to each instance on its own).
    pub options: SolveOptions,
    /// Catalog the instances are resolved against.
    pub catalog: Catalog,
    /// Show a progress bar on stderr (it is hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Stops running solvers and skips instances not yet started.
    pub stop: StopFlag,
}

impl BatchOptions {
    /// Options with defaults: `auto` solver, one job per core, no time limit, no progress bar.
    pub fn new(input: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        BatchOptions {
            input: input.into(),
            out: out.into(),
            jobs: 0,
            resume: false,
            solver: "auto".into(),
            options: SolveOptions::default(),
            catalog: Catalog::builtin().clone(),
            progress: false,
            stop: StopFlag::new(),
        }
    }
}

/// One solved (or resumed) instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRow {
    /// Instance path relative to the input directory.
    pub instance: String,
    pub family: String,
    pub solver: String,
    /// `termination/solution`, e.g. `optimal/optimal`, `time_limit/feasible`.
    pub status: String,
    pub termination: Termination,
    pub objective: Option<f64>,
    pub bound: Option<f64>,
    pub gap: Option<f64>,
    pub wall_time_s: f64,
    /// The result file.
    pub result_file: String,
    /// Whether the row was read back from an existing result file (`resume`).
    pub resumed: bool,
}

/// One instance that could not be solved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchError {
    /// Instance path relative to the input directory.
    pub instance: String,
    /// The instance file.
    pub path: String,
    /// `Error::kind()`: `invalid_instance`, `unknown_name`, `not_applicable`, `solver_error`, `io_error`.
    pub kind: String,
    /// JSON path of the offending field, when known.
    pub json_path: Option<String>,
    pub message: String,
    /// The error file written for it.
    pub error_file: String,
}

/// What a batch did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSummary {
    pub input: String,
    pub out: String,
    pub solver: String,
    pub jobs: usize,
    pub time_limit_s: Option<f64>,
    /// Instance files found.
    pub total: usize,
    pub results: Vec<BatchRow>,
    pub errors: Vec<BatchError>,
    /// Instances not started because the batch was interrupted.
    pub not_run: Vec<String>,
    pub interrupted: bool,
    pub wall_time_s: f64,
}

impl BatchSummary {
    /// Instances that failed: error entries plus solves that ended in `termination = error`.
    pub fn failed(&self) -> usize {
        self.errors.len()
            + self
                .results
                .iter()
                .filter(|r| r.termination == Termination::Error)
                .count()
    }

    /// The CLI exit code: 0 all solved, 2 some failed, 130 interrupted.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            130
        } else if self.failed() > 0 {
            2
        } else {
            0
        }
    }

    /// The summary table (instance, family, solver, status, objective, gap, time), then the errors.
    pub fn table(&self) -> String {
        let headers = [
            "instance",
            "family",
            "solver",
            "status",
            "objective",
            "gap",
            "time_s",
        ];
        let mut rows: Vec<Vec<String>> = self
            .results
            .iter()
            .map(|r| {
                vec![
                    r.instance.clone(),
                    r.family.clone(),
                    r.solver.clone(),
                    if r.resumed {
                        format!("{} (resumed)", r.status)
                    } else {
                        r.status.clone()
                    },
                    fmt_opt(r.objective),
                    fmt_gap(r.gap),
                    format!("{:.3}", r.wall_time_s),
                ]
            })
            .collect();
        for e in &self.errors {
            rows.push(vec![
                e.instance.clone(),
                "-".into(),
                "-".into(),
                format!("error ({})", e.kind),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        let mut s = render_table(&headers, &rows);
        for e in &self.errors {
            s.push_str(&format!("error: {}: {}\n", e.path, e.message));
        }
        s.push_str(&format!(
            "{} instances: {} solved, {} failed{}{}, {:.2} s\n",
            self.total,
            self.results.len(),
            self.failed(),
            match self.results.iter().filter(|r| r.resumed).count() {
                0 => String::new(),
                n => format!(", {n} resumed"),
            },
            if self.interrupted {
                format!(", interrupted ({} not run)", self.not_run.len())
            } else {
                String::new()
            },
            self.wall_time_s
        ));
        s
    }
}

/// Solves every instance under `opts.input` and writes results, error files and `summary.json`.
///
/// Errors only for problems with the batch itself (missing input, unwritable output); a bad
/// instance is recorded in [`BatchSummary::errors`] and skipped.
pub fn run_batch(opts: &BatchOptions) -> Result<BatchSummary> {
    let t0 = Instant::now();
    opts.options.validate()?;
    let files = find_instances(&opts.input, &opts.out)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(opts.out.display(), e))?;
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.jobs
    };
    let mut solve_options = opts.options.clone();
    if jobs > 1 {
        solve_options.threads = Some(1);
    }
    let base = if opts.input.is_dir() {
        opts.input.clone()
    } else {
        opts.input
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };

    let bar = if opts.progress && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(files.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} eta {eta} {wide_msg}",
    ) {
        bar.set_style(style);
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Error::Solver(format!("cannot start {jobs} worker threads: {e}")))?;
    let outcomes: Vec<Outcome> = pool.install(|| {
        files
            .par_iter()
            .map(|path| {
                let rel = relative_name(&base, path);
                if opts.stop.is_stopped() {
                    return Outcome::NotRun(rel);
                }
                let out = run_one(path, &rel, &base, opts, &solve_options);
                bar.inc(1);
                bar.set_message(rel);
                out
            })
            .collect()
    });
    bar.finish_and_clear();

    let mut summary = BatchSummary {
        input: opts.input.display().to_string(),
        out: opts.out.display().to_string(),
        solver: opts.solver.clone(),
        jobs,
        time_limit_s: opts.options.time_limit_s,
        total: files.len(),
        results: vec![],
        errors: vec![],
        not_run: vec![],
        interrupted: opts.stop.is_stopped(),
        wall_time_s: 0.0,
    };
    for o in outcomes {
        match o {
            Outcome::Row(r) => summary.results.push(r),
            Outcome::Failed(e) => summary.errors.push(e),
            Outcome::NotRun(n) => summary.not_run.push(n),
        }
    }
    summary.wall_time_s = t0.elapsed().as_secs_f64();
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Solver(e.to_string()))?;
    write_atomic(&opts.out.join("summary.json"), text.as_bytes())?;
    Ok(summary)
}

enum Outcome {
    Row(BatchRow),
    Failed(BatchError),
    NotRun(String),
}

fn run_one(
    path: &Path,
    rel: &str,
    base: &Path,
    opts: &BatchOptions,
    options: &SolveOptions,
) -> Outcome {
    let (result_file, error_file) = output_files(&opts.out, base, path);
    if opts.resume && result_file.is_file() {
        if let Some(row) = read_row(&result_file, rel) {
            return Outcome::Row(row);
        }
    }
    let solved = std::fs::read_to_string(path)
        .map_err(|e| Error::io(path.display(), e))
        .and_then(|text| parse_document(&text))
        .and_then(|doc| {
            family_of(&doc)?.solve(
                &doc,
                &opts.solver,
                options,
                &opts.catalog,
                &mut NoObserver,
                opts.stop.clone(),
            )
        });
    match solved {
        Ok(r) => {
            let written = serde_json::to_string_pretty(&result_json(rel, &r))
                .map_err(|e| Error::Solver(e.to_string()))
                .and_then(|t| write_atomic(&result_file, t.as_bytes()));
            if let Err(e) = written {
                return failure(path, rel, &error_file, e);
            }
            let _ = std::fs::remove_file(&error_file);
            Outcome::Row(row_of(rel, &r, &result_file, false))
        }
        Err(e) => failure(path, rel, &error_file, e),
    }
}

fn failure(path: &Path, rel: &str, error_file: &Path, e: Error) -> Outcome {
    let err = BatchError {
        instance: rel.to_string(),
        path: path.display().to_string(),
        kind: e.kind().to_string(),
        json_path: e.json_path().map(str::to_string),
        message: e.to_string(),
        error_file: error_file.display().to_string(),
    };
    if let Ok(t) = serde_json::to_string_pretty(&err) {
        // A failure to write the error file is itself recorded in the summary message.
        if let Err(w) = write_atomic(error_file, t.as_bytes()) {
            return Outcome::Failed(BatchError {
                message: format!("{}; also could not write error file: {w}", err.message),
                ..err
            });
        }
    }
    // A stale result from an earlier run would contradict the error.
    let _ = std::fs::remove_file(
        error_file.with_file_name(
            error_file
                .file_name()
                .map(|n| n.to_string_lossy().replace(".error.json", ".result.json"))
                .unwrap_or_default(),
        ),
    );
    Outcome::Failed(err)
}

fn row_of(rel: &str, r: &SolveResult<Value>, result_file: &Path, resumed: bool) -> BatchRow {
    BatchRow {
        instance: rel.to_string(),
        family: r.family.clone(),
        solver: r.solver.clone(),
        status: r.status.to_string(),
        termination: r.status.termination,
        objective: r.objective,
        bound: r.bound,
        gap: r.gap,
        wall_time_s: r.wall_time_s,
        result_file: result_file.display().to_string(),
        resumed,
    }
}

fn read_row(result_file: &Path, rel: &str) -> Option<BatchRow> {
    let text = std::fs::read_to_string(result_file).ok()?;
    let r: SolveResult<Value> = serde_json::from_str(&text).ok()?;
    // An interrupted solve is run again.
    (r.status.termination != Termination::Interrupted).then(|| row_of(rel, &r, result_file, true))
}

/// A solve result as written by `edgeplan solve` and `edgeplan batch`: the [`SolveResult`] fields
/// with the instance name first.
pub fn result_json(instance: &str, r: &SolveResult<Value>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("instance".into(), Value::String(instance.to_string()));
    if let Ok(Value::Object(m)) = serde_json::to_value(r) {
        out.extend(m);
    }
    Value::Object(out)
}

/// `OUT/<dir of the instance relative to base>/<stem>.result.json` and `.error.json`.
fn output_files(out: &Path, base: &Path, path: &Path) -> (PathBuf, PathBuf) {
    let rel_dir = path
        .parent()
        .and_then(|p| p.strip_prefix(base).ok())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "instance".into());
    let dir = out.join(rel_dir);
    (
        dir.join(format!("{stem}.result.json")),
        dir.join(format!("{stem}.error.json")),
    )
}

fn relative_name(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The instance files under `input` (recursively, sorted), leaving out hidden entries, the
/// output directory and files this runner writes.
pub fn find_instances(input: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    if !input.is_dir() {
        return Err(Error::io(
            input.display(),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    let out_canon = std::fs::canonicalize(out).ok();
    let mut found = vec![];
    let mut stack = vec![input.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if out_canon.is_some() && std::fs::canonicalize(&dir).ok() == out_canon {
            continue;
        }
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(dir.display(), e))?;
        for entry in rd.filter_map(|e| e.ok()) {
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".json")
                && !name.ends_with(".result.json")
                && !name.ends_with(".error.json")
            {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path`. Creates the parent directory. The temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path.display(), e)
    })
}

/// A plain text table: left-aligned columns separated by two spaces, a dashed rule under the header.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}  ", c, w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = line(headers.to_vec());
    s.push_str(&line(
        width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(|x| x.as_str())
            .collect(),
    ));
    for r in rows {
        s.push_str(&line(r.iter().map(|c| c.as_str()).collect()));
    }
    s
}

/// A number for tables: 6 significant digits, scientific outside [1e-3, 1e7).
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&a) {
        format!("{x:.4e}")
    } else {
        let digits = (5 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// An optional number for tables (`-` when absent).
pub fn fmt_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), fmt_num)
}

/// A relative gap as a percentage (`-` when absent).
pub fn fmt_gap(g: Option<f64>) -> String {
    g.map_or_else(|| "-".into(), |g| format!("{:.2}%", 100.0 * g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/x.json");
        write_atomic(&p, b"{}").unwrap();
        write_atomic(&p, b"[1]").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[1]");
        let names: Vec<_> = std::fs::read_dir(d.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["x.json".to_string()]);
    }

    #[test]
    fn finds_instances_recursively_and_skips_outputs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("pipeline")).unwrap();
        std::fs::create_dir_all(d.path().join("out")).unwrap();
        for f in [
            "a.json",
            "pipeline/b.json",
            "pipeline/b.result.json",
            ".hidden.json",
            "out/c.json",
            "notes.txt",
        ] {
            std::fs::write(d.path().join(f), "{}").unwrap();
        }
        let found = find_instances(d.path(), &d.path().join("out")).unwrap();
        let rel: Vec<_> = found.iter().map(|p| relative_name(d.path(), p)).collect();
        assert_eq!(rel, vec!["a.json", "pipeline/b.json"]);
    }

    #[test]
    fn output_files_mirror_layout() {
        let (r, e) = output_files(
            Path::new("/o"),
            Path::new("/i"),
            Path::new("/i/pipeline/x.json"),
        );
        assert_eq!(r, PathBuf::from("/o/pipeline/x.result.json"));
        assert_eq!(e, PathBuf::from("/o/pipeline/x.error.json"));
    }

    #[test]
    fn numbers_format_compactly() {
        assert_eq!(fmt_num(1.5), "1.5");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(123456.0), "123456");
        assert_eq!(fmt_num(2.5e-5), "2.5000e-5");
        assert_eq!(fmt_gap(Some(0.0123)), "1.23%");
    }

    #[test]
    fn table_aligns_columns() {
        let t = render_table(&["a", "bb"], &[vec!["xxx".into(), "1".into()]]);
        assert_eq!(t, "a    bb\n---  --\nxxx  1\n");
    }
}
