//! The `edgeplan` command line: argument parsing and printing only; the work is done by the library.

use clap::{Parser, Subcommand, ValueEnum};
use edgeplan::batch::{self, fmt_gap, fmt_num, fmt_opt, render_table, BatchOptions};
use edgeplan::catalog::Catalog;
use edgeplan::problems::{self, CompareRow, DynFamily};
use edgeplan::solve::{NoObserver, SolveOptions, StopFlag, Termination};
use edgeplan::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints to stdout; a closed pipe (`edgeplan catalog | head`) ends the program quietly instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

macro_rules! outln {
    ($($t:tt)*) => {{
        out!($($t)*);
        out!("\n");
    }};
}

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    usage error, or a fatal error (unreadable catalog, unknown model / family / solver name)
  2    one or more inputs are invalid or failed to solve (validate, solve, batch, compare)
  130  interrupted (Ctrl-C); solvers stop and report their incumbent as `interrupted`

Extra catalog cards: --catalog DIR (repeatable) and EDGEPLAN_CATALOG=DIR[:DIR...]; a directory holds
llm/, device/, runtime/ subdirectories of JSON cards, or JSON cards with a \"kind\" field.";

/// Optimization toolkit for deploying LLMs at the mobile network edge.
#[derive(Debug, Parser)]
#[command(name = "edgeplan", version, after_help = EXIT_CODES)]
struct Cli {
    /// Extra catalog directory of LLM / device / runtime cards (repeatable; later ones win).
    #[arg(long = "catalog", value_name = "DIR", global = true)]
    catalog_dirs: Vec<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Per-layer FLOPs, bytes, memory and time of a model on a device (the analytic cost model).
    Profile(ProfileArgs),
    /// List catalog cards (LLMs, devices, runtimes) with their key numbers.
    Catalog {
        /// Only this kind of card.
        kind: Option<CardKind>,
        /// Print a JSON list of objects instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of a family's instances (or solutions); without FAMILY, list families.
    Schema {
        family: Option<String>,
        /// The solution schema instead of the instance schema.
        #[arg(long)]
        solution: bool,
        /// List families as JSON (without FAMILY).
        #[arg(long)]
        json: bool,
    },
    /// Check instance files: parse, validate every field, resolve catalog names.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Solve instance files; one file prints its result JSON, several go to --out DIR.
    Solve(SolveArgs),
    /// Solve every instance under DIR (recursively) in parallel, writing one result file each.
    Batch(BatchArgs),
    /// Run every solver of the family on each instance and compare objectives, gaps and times.
    Compare(CompareArgs),
    /// Generate a random instance of a family.
    Generate {
        family: String,
        /// `small`, `medium`, `large`, or a number.
        #[arg(long, default_value = "small")]
        size: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CardKind {
    Llm,
    Device,
    Runtime,
}

impl CardKind {
    fn name(self) -> &'static str {
        match self {
            CardKind::Llm => "llm",
            CardKind::Device => "device",
            CardKind::Runtime => "runtime",
        }
    }
}

#[derive(Debug, clap::Args)]
struct ProfileArgs {
    /// Model name or alias (`edgeplan catalog llm` lists them).
    model: String,
    /// Device name or alias.
    #[arg(long)]
    device: Option<String>,
    /// Runtime (engine) profile name.
    #[arg(long)]
    runtime: Option<String>,
    /// Weight / activation dtype: fp32, bf16, fp16, fp8, int8, int4.
    #[arg(long, default_value = "fp16")]
    dtype: String,
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// Prompt (training: sequence) length in tokens.
    #[arg(long, default_value_t = 512)]
    seq: u64,
    /// Tokens generated after the prompt (decode figures).
    #[arg(long = "gen", default_value_t = 128)]
    gen_tokens: u64,
    /// Memory recipe: inference, full-fp32-adam, full-mixed-adam, full-pure16-adam, full-sgd, lora, qlora.
    #[arg(long, default_value = "inference")]
    recipe: String,
    /// LoRA rank (lora / qlora recipes; default 8).
    #[arg(long)]
    lora_rank: Option<u64>,
    /// LoRA target matrices, comma-separated: q,k,v,o,gate,up,down (default q,v).
    #[arg(long, value_delimiter = ',')]
    lora_targets: Vec<String>,
    /// Measured per-layer CSV (docs/cost-model.md, "Measured profiles"): matching rows replace the
    /// analytic layer times; needs --device.
    #[arg(long, value_name = "FILE")]
    measured: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, clap::Args)]
struct SolveFlags {
    /// Wall-clock limit per instance, seconds.
    #[arg(long, value_name = "S")]
    time_limit: Option<f64>,
    /// Relative MIP gap at which MILP solvers stop.
    #[arg(long, value_name = "G")]
    mip_gap: Option<f64>,
    /// Backend threads (HiGHS).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Seed for randomised heuristics.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl SolveFlags {
    fn options(&self) -> SolveOptions {
        SolveOptions {
            time_limit_s: self.time_limit,
            mip_rel_gap: self.mip_gap,
            threads: self.threads,
            seed: self.seed,
            ..SolveOptions::default()
        }
    }
}

#[derive(Debug, clap::Args)]
struct SolveArgs {
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Solver name (`auto` picks per instance; `edgeplan schema` lists solvers).
    #[arg(long, default_value = "auto")]
    solver: String,
    #[command(flatten)]
    flags: SolveFlags,
    /// Write DIR/<stem>.result.json for each file instead of printing.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct BatchArgs {
    /// Directory of instance files (searched recursively).
    dir: PathBuf,
    /// Output directory for results, error files and summary.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Parallel jobs (0 = one per core); each solve then uses one HiGHS thread.
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Skip instances whose result file exists.
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value = "auto")]
    solver: String,
    #[command(flatten)]
    flags: SolveFlags,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print the rows as a JSON list.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    flags: SolveFlags,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    let catalog = load_catalog(&cli.catalog_dirs)?;
    match cli.command {
        Command::Profile(a) => cmd_profile(&catalog, &a),
        Command::Catalog { kind, json } => cmd_catalog(&catalog, kind, json),
        Command::Schema {
            family,
            solution,
            json,
        } => cmd_schema(family.as_deref(), solution, json),
        Command::Validate { files } => Ok(cmd_validate(&catalog, &files)),
        Command::Solve(a) => cmd_solve(&catalog, &a),
        Command::Batch(a) => cmd_batch(catalog, &a),
        Command::Compare(a) => cmd_compare(&catalog, &a),
        Command::Generate {
            family,
            size,
            seed,
            out,
        } => {
            let doc = problems::family(&family)?.generate(&size, seed)?;
            let text = pretty(&doc) + "\n";
            match out {
                Some(p) => batch::write_atomic(&p, text.as_bytes())?,
                None => out!("{text}"),
            }
            Ok(0)
        }
    }
}

fn load_catalog(dirs: &[PathBuf]) -> Result<Catalog> {
    let mut c = Catalog::from_env()?;
    for d in dirs {
        c.load_dir(d)?;
    }
    Ok(c)
}

/// Sets the stop flag on the first Ctrl-C; a second one exits at once.
fn install_ctrlc(stop: &StopFlag) {
    let stop = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if stop.is_stopped() {
            eprintln!("\ninterrupted again: exiting");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping solvers (press Ctrl-C again to exit now)");
        stop.stop();
    });
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn read_doc(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    problems::parse_document(&text)
}

/// `FILE: message`, without repeating the file for I/O errors (their message already names it).
fn file_error(f: &Path, e: &Error) -> String {
    match e {
        Error::Io { .. } => e.to_string(),
        _ => format!("{}: {e}", f.display()),
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "instance".into())
}

// ---------------------------------------------------------------------------------------------
// validate, solve, batch, compare, schema

fn cmd_validate(catalog: &Catalog, files: &[PathBuf]) -> u8 {
    let mut bad = 0;
    for f in files {
        let checked = read_doc(f).and_then(|doc| {
            let fam = problems::family_of(&doc)?;
            fam.validate(&doc, catalog).map(|_| fam.name())
        });
        match checked {
            Ok(fam) => outln!("{}: ok ({fam})", f.display()),
            Err(e) => {
                bad += 1;
                eprintln!("error: {}", file_error(f, &e));
            }
        }
    }
    if bad > 0 {
        eprintln!("{bad} of {} files invalid", files.len());
        2
    } else {
        0
    }
}

fn cmd_solve(catalog: &Catalog, a: &SolveArgs) -> Result<u8> {
    let options = a.flags.options();
    options.validate()?;
    let stop = StopFlag::new();
    install_ctrlc(&stop);
    let mut code = 0u8;
    let mut printed = vec![];
    for f in &a.files {
        if stop.is_stopped() {
            eprintln!("skipped (interrupted): {}", f.display());
            continue;
        }
        let solved = read_doc(f).and_then(|doc| {
            problems::family_of(&doc)?.solve(
                &doc,
                &a.solver,
                &options,
                catalog,
                &mut NoObserver,
                stop.clone(),
            )
        });
        let r = match solved {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}", file_error(f, &e));
                code = code.max(2);
                continue;
            }
        };
        match r.status.termination {
            Termination::Error => code = code.max(2),
            Termination::Interrupted => code = 130,
            _ => {}
        }
        let out = batch::result_json(&f.display().to_string(), &r);
        match &a.out {
            Some(dir) => {
                let path = dir.join(format!("{}.result.json", stem(f)));
                batch::write_atomic(&path, (pretty(&out) + "\n").as_bytes())?;
                eprintln!(
                    "{}: {} objective {} -> {}",
                    f.display(),
                    r.status,
                    fmt_opt(r.objective),
                    path.display()
                );
            }
            None => printed.push(out),
        }
    }
    match printed.len() {
        0 => {}
        1 => outln!("{}", pretty(&printed[0])),
        _ => outln!("{}", pretty(&Value::Array(printed))),
    }
    Ok(code)
}

fn cmd_batch(catalog: Catalog, a: &BatchArgs) -> Result<u8> {
    let options = a.flags.options();
    let mut opts = BatchOptions::new(&a.dir, &a.out);
    opts.jobs = a.jobs;
    opts.resume = a.resume;
    opts.solver = a.solver.clone();
    opts.options = options;
    opts.catalog = catalog;
    opts.progress = true;
    install_ctrlc(&opts.stop);
    let summary = batch::run_batch(&opts)?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        out!("{}", summary.table());
        outln!("results in {}", a.out.display());
    }
    Ok(summary.exit_code() as u8)
}

fn cmd_compare(catalog: &Catalog, a: &CompareArgs) -> Result<u8> {
    let options = a.flags.options();
    options.validate()?;
    let stop = StopFlag::new();
    install_ctrlc(&stop);
    let mut rows: Vec<CompareRow> = vec![];
    let mut code = 0u8;
    let mut instances = 0;
    for f in &a.files {
        if stop.is_stopped() {
            code = 130;
            break;
        }
        let compared = read_doc(f).and_then(|doc| {
            problems::family_of(&doc)?.compare(
                &doc,
                &options,
                catalog,
                &f.display().to_string(),
                stop.clone(),
            )
        });
        match compared {
            Ok(r) => {
                instances += 1;
                rows.extend(r)
            }
            Err(e) => {
                eprintln!("error: {}", file_error(f, &e));
                code = code.max(2);
            }
        }
    }
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
        );
        return Ok(code);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.instance.clone(),
                r.solver.clone(),
                enum_name(&r.kind),
                r.status.clone(),
                fmt_opt(r.objective),
                fmt_opt(r.bound),
                fmt_gap(r.gap_to_best_bound),
                format!("{:.3}", r.wall_time_s),
                r.feasible.map_or("-".into(), |f| f.to_string()),
            ]
        })
        .collect();
    out!(
        "{}",
        render_table(
            &[
                "instance",
                "solver",
                "kind",
                "status",
                "objective",
                "bound",
                "gap_best",
                "time_s",
                "feasible"
            ],
            &table
        )
    );
    for r in &rows {
        if let Some(m) = &r.message {
            if r.status == "error" || r.status == "not_applicable" {
                outln!("  {} / {}: {m}", r.instance, r.solver);
            }
        }
    }
    if instances > 1 {
        outln!("\nper solver over {instances} instances:");
        out!("{}", solver_summary(&rows));
    }
    Ok(code)
}

/// Per-solver summary of compare rows: gap to the best bound (mean / median / max) and mean time.
fn solver_summary(rows: &[CompareRow]) -> String {
    let mut names: Vec<String> = vec![];
    for r in rows {
        if !names.contains(&r.solver) {
            names.push(r.solver.clone());
        }
    }
    let table: Vec<Vec<String>> = names
        .iter()
        .map(|n| {
            let mine: Vec<&CompareRow> = rows.iter().filter(|r| &r.solver == n).collect();
            let ran: Vec<&&CompareRow> = mine
                .iter()
                .filter(|r| r.status != "error" && r.status != "not_applicable")
                .collect();
            let mut gaps: Vec<f64> = mine.iter().filter_map(|r| r.gap_to_best_bound).collect();
            gaps.sort_by(|a, b| a.total_cmp(b));
            let feasible = mine.iter().filter(|r| r.feasible == Some(true)).count();
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            let median = (!gaps.is_empty()).then(|| {
                let m = gaps.len() / 2;
                if gaps.len() % 2 == 1 {
                    gaps[m]
                } else {
                    0.5 * (gaps[m - 1] + gaps[m])
                }
            });
            let times: Vec<f64> = ran.iter().map(|r| r.wall_time_s).collect();
            vec![
                n.clone(),
                mine.first().map(|r| enum_name(&r.kind)).unwrap_or_default(),
                format!("{}/{}", ran.len(), mine.len()),
                feasible.to_string(),
                fmt_gap(mean(&gaps)),
                fmt_gap(median),
                fmt_gap(gaps.last().copied()),
                mean(&times).map_or("-".into(), |t| format!("{t:.3}")),
            ]
        })
        .collect();
    render_table(
        &[
            "solver",
            "kind",
            "ran",
            "feasible",
            "mean_gap",
            "median_gap",
            "max_gap",
            "mean_time_s",
        ],
        &table,
    )
}

fn enum_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn cmd_schema(family: Option<&str>, solution: bool, json: bool) -> Result<u8> {
    let Some(name) = family else {
        let fams: Vec<Value> = problems::families()
            .iter()
            .map(|f| {
                json!({
                    "family": f.name(),
                    "schema_version": f.schema_version(),
                    "solvers": f.solvers(),
                })
            })
            .collect();
        if json {
            outln!("{}", pretty(&Value::Array(fams)));
        } else {
            let rows: Vec<Vec<String>> = problems::families()
                .iter()
                .map(|f| {
                    vec![
                        f.name().to_string(),
                        f.schema_version().to_string(),
                        f.solvers()
                            .iter()
                            .map(|s| s.name.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            out!(
                "{}",
                render_table(&["family", "schema_version", "solvers"], &rows)
            );
            outln!("`edgeplan schema FAMILY` prints the instance schema, `--solution` the solution schema.");
        }
        return Ok(0);
    };
    let fam: &dyn DynFamily = problems::family(name)?;
    let schema = if solution {
        fam.solution_schema()
    } else {
        fam.instance_schema()
    };
    outln!("{}", pretty(&schema));
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// catalog

fn value_of(s: &edgeplan::catalog::Sourced) -> Value {
    json!(s.value)
}

fn catalog_rows(catalog: &Catalog, kind: Option<CardKind>) -> Vec<Value> {
    let want = |k: CardKind| match kind {
        None => true,
        Some(x) => x.name() == k.name(),
    };
    let mut rows = vec![];
    if want(CardKind::Llm) {
        for c in catalog.llms() {
            rows.push(json!({
                "kind": "llm",
                "name": c.name,
                "family": c.family,
                "arch": enum_name(&c.arch),
                "params": c.published_params,
                "active_params": c.published_active_params,
                "layers": c.total_blocks(),
                "d_model": c.d_model,
                "n_heads": c.n_heads,
                "n_kv_heads": c.n_kv_heads,
                "d_ff": c.d_ff,
                "vocab_size": c.vocab_size,
                "max_context": c.max_context,
                "moe": c.moe.is_some(),
            }));
        }
    }
    if want(CardKind::Device) {
        for c in catalog.devices() {
            let fp16 = c
                .peak_flops
                .get("fp16")
                .or_else(|| c.peak_flops.get("bf16"))
                .map(|s| s.value);
            rows.push(json!({
                "kind": "device",
                "name": c.name,
                "class": enum_name(&c.class),
                "peak_fp16_flops": fp16,
                "peak_flops": c.peak_flops.iter().map(|(k, v)| (k.clone(), value_of(v))).collect::<serde_json::Map<_, _>>(),
                "memory_bytes": c.memory_bytes.value,
                "memory_bandwidth_bytes_per_s": c.memory_bandwidth_bytes_per_s.value,
                "idle_power_w": c.idle_power_w.value,
                "peak_power_w": c.peak_power_w.value,
            }));
        }
    }
    if want(CardKind::Runtime) {
        for c in catalog.runtimes() {
            rows.push(json!({
                "kind": "runtime",
                "name": c.name,
                "compute_efficiency": c.compute_efficiency.value,
                "bandwidth_efficiency": c.bandwidth_efficiency.value,
                "per_op_latency_s": c.per_op_latency_s.value,
                "supports_training": c.supports_training,
            }));
        }
    }
    rows
}

fn cmd_catalog(catalog: &Catalog, kind: Option<CardKind>, json: bool) -> Result<u8> {
    let rows = catalog_rows(catalog, kind);
    if json {
        outln!("{}", pretty(&Value::Array(rows)));
        return Ok(0);
    }
    let num = |v: &Value, scale: f64| v.as_f64().map_or("-".into(), |x| fmt_num(x / scale));
    let of = |k: &'static str| rows.iter().filter(move |r| r["kind"] == k);
    let mut sections = vec![];
    let llm: Vec<Vec<String>> = of("llm")
        .map(|r| {
            vec![
                r["name"].as_str().unwrap_or("").into(),
                r["family"].as_str().unwrap_or("").into(),
                r["arch"].as_str().unwrap_or("").into(),
                num(&r["params"], 1e9),
                r["layers"].to_string(),
                r["d_model"].to_string(),
                format!("{}/{}", r["n_heads"], r["n_kv_heads"]),
                r["max_context"].to_string(),
                if r["moe"] == true {
                    "moe".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    if !llm.is_empty() {
        sections.push(render_table(
            &[
                "llm", "family", "arch", "params_b", "layers", "d_model", "heads/kv", "context", "",
            ],
            &llm,
        ));
    }
    let dev: Vec<Vec<String>> = of("device")
        .map(|r| {
            vec![
                r["name"].as_str().unwrap_or("").into(),
                r["class"].as_str().unwrap_or("").into(),
                num(&r["peak_fp16_flops"], 1e12),
                num(&r["memory_bytes"], 1e9),
                num(&r["memory_bandwidth_bytes_per_s"], 1e9),
                num(&r["peak_power_w"], 1.0),
            ]
        })
        .collect();
    if !dev.is_empty() {
        sections.push(render_table(
            &[
                "device",
                "class",
                "fp16_tflops",
                "memory_gb",
                "bandwidth_gb_s",
                "peak_power_w",
            ],
            &dev,
        ));
    }
    let rt: Vec<Vec<String>> = of("runtime")
        .map(|r| {
            vec![
                r["name"].as_str().unwrap_or("").into(),
                num(&r["compute_efficiency"], 1.0),
                num(&r["bandwidth_efficiency"], 1.0),
                num(&r["per_op_latency_s"], 1e-6),
                r["supports_training"].to_string(),
            ]
        })
        .collect();
    if !rt.is_empty() {
        sections.push(render_table(
            &[
                "runtime",
                "compute_eff",
                "bandwidth_eff",
                "per_op_latency_us",
                "training",
            ],
            &rt,
        ));
    }
    out!("{}", sections.join("\n"));
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// profile

/// The `recipe` object of a profile request from a recipe name (the names `--recipe` accepts).
fn recipe_json(a: &ProfileArgs) -> Result<Value> {
    let lora = |base: &str| {
        let targets: Vec<String> = if a.lora_targets.is_empty() {
            vec!["q".into(), "v".into()]
        } else {
            a.lora_targets
                .iter()
                .map(|t| t.trim().to_lowercase())
                .collect()
        };
        json!({"kind": "lora", "rank": a.lora_rank.unwrap_or(8), "targets": targets, "base_dtype": base})
    };
    Ok(match a.recipe.as_str() {
        "inference" => json!({"kind": "inference"}),
        "full-fp32-adam" => json!({"kind": "full", "preset": "fp32_adam"}),
        "full-mixed-adam" => json!({"kind": "full", "preset": "mixed_adam"}),
        "full-pure16-adam" => json!({"kind": "full", "preset": "pure16_adam"}),
        "full-sgd" => json!({"kind": "full", "preset": "sgd"}),
        "lora" => lora(&a.dtype),
        "qlora" => lora("int4"),
        other => {
            return Err(Error::invalid(
                "--recipe",
                format!("unknown recipe '{other}'; use inference, full-fp32-adam, full-mixed-adam, full-pure16-adam, full-sgd, lora or qlora"),
            ))
        }
    })
}

fn cmd_profile(catalog: &Catalog, a: &ProfileArgs) -> Result<u8> {
    use edgeplan::cost::profile::{profile, render_table, ProfileRequest};
    if (a.lora_rank.is_some() || !a.lora_targets.is_empty()) && !a.recipe.contains("lora") {
        return Err(Error::invalid(
            "--lora-rank",
            "LoRA options need --recipe lora or qlora",
        ));
    }
    let request = json!({
        "model": a.model,
        "device": a.device,
        "runtime": a.runtime,
        "dtype": a.dtype.to_lowercase(),
        "batch": a.batch,
        "seq_len": a.seq,
        "gen_tokens": a.gen_tokens,
        "recipe": recipe_json(a)?,
        "measured": a.measured,
    });
    let req: ProfileRequest = edgeplan::error::from_json_value(request)?;
    let report = profile(catalog, &req)?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        out!("{}", render_table(&report));
    }
    Ok(0)
}
