//! The solve framework: options, results with honest statuses, the [`Family`] and [`Solver`] traits,
//! and the run loop that puts every solver's output through the family's `evaluate`.
//!
//! ## Two status axes
//! Following Pyomo's results model, a result says **why the solver stopped** ([`Termination`]) and
//! **what solution we hold** ([`SolutionStatus`]) separately. A time-limited MILP with an incumbent is
//! `termination = time_limit, solution = feasible`, with its incumbent objective, dual bound and gap;
//! without an incumbent it is `time_limit, no_solution`. Infeasible, unbounded and
//! infeasible-or-unbounded are three different terminations.
//!
//! ## Checked results
//! [`run`] times the solver, then recomputes feasibility and objective with the family's
//! `evaluate` from the instance and the solution alone. The reported `objective` is the evaluated one;
//! a solver whose own objective disagrees with `evaluate` beyond tolerance is flagged in
//! `evaluation.violations`, and a solution `evaluate` finds infeasible is reported as
//! `solution = infeasible`, never as feasible.

pub mod milp;

use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a solver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Optimality proved (within the requested relative gap).
    Optimal,
    /// A heuristic, baseline or gradient method ran to its natural end (no optimality claim).
    Completed,
    /// The instance has no feasible solution (proved).
    Infeasible,
    /// The objective is unbounded (proved).
    Unbounded,
    /// Infeasible or unbounded; the solver could not tell which.
    InfeasibleOrUnbounded,
    /// The time limit was reached.
    TimeLimit,
    /// The iteration (or node) limit was reached.
    IterationLimit,
    /// Stopped by the user (observer or Ctrl-C).
    Interrupted,
    /// The solver failed (numerical trouble, backend error).
    Error,
}

/// What solution the result holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SolutionStatus {
    /// Feasible and proved optimal.
    Optimal,
    /// Feasible (checked by `evaluate`), optimality not proved.
    Feasible,
    /// A solution was returned but `evaluate` found it infeasible.
    Infeasible,
    /// No solution.
    NoSolution,
}

/// The combined status of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    pub termination: Termination,
    pub solution: SolutionStatus,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = serde_json::to_value(self.termination).ok();
        let s = serde_json::to_value(self.solution).ok();
        write!(
            f,
            "{}/{}",
            t.as_ref().and_then(|v| v.as_str()).unwrap_or("?"),
            s.as_ref().and_then(|v| v.as_str()).unwrap_or("?")
        )
    }
}

/// What kind of method a solver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SolverKind {
    /// Proves optimality (MILP, exact DP, exact search).
    Exact,
    /// Fast, no optimality proof.
    Heuristic,
    /// Gradient / dual / Lagrangian method on a continuous model.
    Gradient,
    /// A published peer algorithm or a naive policy kept for comparison.
    Baseline,
}

/// Objective direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sense {
    Minimize,
    Maximize,
}

impl Sense {
    /// Whether `a` is strictly better than `b` (by more than a relative 1e-12).
    pub fn better(self, a: f64, b: f64) -> bool {
        let tol = 1e-12 * a.abs().max(b.abs()).max(1.0);
        match self {
            Sense::Minimize => a < b - tol,
            Sense::Maximize => a > b + tol,
        }
    }
}

/// Options shared by every solver (fields a solver does not use are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SolveOptions {
    /// Wall-clock limit in seconds.
    pub time_limit_s: Option<f64>,
    /// Relative MIP gap at which a MILP stops (HiGHS default 1e-4 when `None`).
    pub mip_rel_gap: Option<f64>,
    /// Threads for the backend (HiGHS); 1 inside parallel batches.
    pub threads: Option<usize>,
    /// Seed for randomised heuristics.
    pub seed: u64,
    /// Iteration limit (local-search moves, gradient steps, MILP nodes).
    pub iteration_limit: Option<u64>,
    /// Warm-start exact solvers from a heuristic solution.
    pub warm_start: bool,
    /// Print backend logs to stderr.
    pub verbose: bool,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            time_limit_s: None,
            mip_rel_gap: None,
            threads: None,
            seed: 0,
            iteration_limit: None,
            warm_start: true,
            verbose: false,
        }
    }
}

impl SolveOptions {
    /// Checks the options' numbers.
    pub fn validate(&self) -> Result<()> {
        let c = crate::validate::Check::at("$.options");
        if let Some(t) = self.time_limit_s {
            c.field("time_limit_s").positive(t)?;
        }
        if let Some(g) = self.mip_rel_gap {
            c.field("mip_rel_gap").in_range(g, 0.0, 1.0)?;
        }
        if let Some(t) = self.threads {
            c.field("threads").at_least_one(t as u64)?;
        }
        Ok(())
    }
}

/// Progress events a solver may report.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A new incumbent (objective of the solver's own model).
    Incumbent { objective: f64, elapsed_s: f64 },
    /// A new bound.
    Bound { bound: f64, elapsed_s: f64 },
    /// A free-form message.
    Message(String),
}

/// Receives progress; returning `false` asks the solver to stop (it then reports `Interrupted`).
pub trait Observer: Send {
    fn observe(&mut self, event: &Progress) -> bool;
}

/// An observer that ignores everything.
pub struct NoObserver;

impl Observer for NoObserver {
    fn observe(&mut self, _: &Progress) -> bool {
        true
    }
}

/// A stop flag shared across threads (Ctrl-C in the CLI and in Python).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed)
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a running solver can consult: options, a deadline, the observer, the stop flag.
pub struct Context<'a> {
    pub options: &'a SolveOptions,
    start: Instant,
    deadline: Option<Instant>,
    observer: &'a mut dyn Observer,
    stop: StopFlag,
    interrupted: bool,
}

impl<'a> Context<'a> {
    /// A context starting now.
    pub fn new(options: &'a SolveOptions, observer: &'a mut dyn Observer, stop: StopFlag) -> Self {
        let start = Instant::now();
        let deadline = options
            .time_limit_s
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| start + Duration::from_secs_f64(t.min(1e9)));
        Context {
            options,
            start,
            deadline,
            observer,
            stop,
            interrupted: false,
        }
    }

    /// Seconds since the solve started.
    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Seconds left before the time limit (`None` = no limit).
    pub fn remaining_s(&self) -> Option<f64> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()).as_secs_f64())
    }

    /// Whether the time limit has passed.
    pub fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Whether the solver should stop now (time limit, stop flag or observer).
    pub fn should_stop(&self) -> bool {
        self.interrupted || self.stop.is_stopped() || self.timed_out()
    }

    /// Whether a stop was requested by the user (not by the time limit).
    pub fn interrupted(&self) -> bool {
        self.interrupted || self.stop.is_stopped()
    }

    /// The stop flag (to hand to a backend callback).
    pub fn stop_flag(&self) -> StopFlag {
        self.stop.clone()
    }

    /// Reports progress; records an interruption if the observer asks to stop.
    pub fn report(&mut self, event: Progress) {
        if !self.observer.observe(&event) {
            self.interrupted = true;
        }
    }

    /// Reports a new incumbent.
    pub fn incumbent(&mut self, objective: f64) {
        let e = self.elapsed_s();
        self.report(Progress::Incumbent {
            objective,
            elapsed_s: e,
        })
    }

    /// The termination for a method that stopped early, or `Completed`.
    pub fn early_termination(&self) -> Termination {
        if self.interrupted() {
            Termination::Interrupted
        } else if self.timed_out() {
            Termination::TimeLimit
        } else {
            Termination::Completed
        }
    }
}

/// The independent check of a solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evaluation {
    /// Whether every constraint holds.
    pub feasible: bool,
    /// The objective recomputed from the instance and the solution.
    pub objective: f64,
    /// One line per violated constraint (empty when feasible).
    pub violations: Vec<String>,
    /// Family-specific breakdown (per-stage times, memory use, ...).
    pub metrics: serde_json::Value,
}

/// What a solver returns before evaluation.
#[derive(Debug, Clone)]
pub struct Outcome<S> {
    pub termination: Termination,
    /// The best solution found, if any.
    pub solution: Option<S>,
    /// The solver's own objective for `solution` (checked against `evaluate`).
    pub objective: Option<f64>,
    /// A proved bound on the optimum (dual bound), if any.
    pub bound: Option<f64>,
    /// Iterations (moves, steps, LP iterations).
    pub iterations: u64,
    /// Branch-and-bound nodes or DP states.
    pub nodes: u64,
    /// Free-form notes (e.g. "warm-started from heuristic").
    pub notes: Vec<String>,
}

impl<S> Outcome<S> {
    /// An outcome with no solution.
    pub fn none(termination: Termination) -> Self {
        Outcome {
            termination,
            solution: None,
            objective: None,
            bound: None,
            iterations: 0,
            nodes: 0,
            notes: vec![],
        }
    }

    /// An outcome with a solution.
    pub fn with(termination: Termination, solution: S, objective: f64) -> Self {
        Outcome {
            termination,
            solution: Some(solution),
            objective: Some(objective),
            bound: None,
            iterations: 0,
            nodes: 0,
            notes: vec![],
        }
    }
}

/// A problem family: instance and solution types, validation, the independent check, solvers.
pub trait Family: Send + Sync + 'static {
    /// The tag in instance files (`"family": "pipeline"`).
    const NAME: &'static str;
    /// Current instance schema version.
    const SCHEMA_VERSION: u32 = 1;
    /// The instance as written in JSON.
    type Instance: Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync;
    /// The instance resolved against the catalog and turned into cost tables (what solvers use).
    type Prepared: Send + Sync;
    /// A solution.
    type Solution: Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync;

    /// Checks every field and resolves catalog names; the only way to get a `Prepared`.
    fn prepare(
        instance: &Self::Instance,
        catalog: &crate::catalog::Catalog,
    ) -> Result<Self::Prepared>;
    /// Objective direction for this instance.
    fn sense(p: &Self::Prepared) -> Sense;
    /// Recomputes feasibility and objective from the instance and the solution alone.
    fn evaluate(p: &Self::Prepared, solution: &Self::Solution) -> Evaluation;
    /// Every solver of the family.
    fn solvers() -> Vec<Box<dyn Solver<Self>>>;
    /// The solver `auto` picks for this instance.
    fn auto_solver(p: &Self::Prepared) -> &'static str;
    /// A random instance of a named size (`small`, `medium`, `large`, or a number) from a seed.
    fn generate(size: &str, seed: u64) -> Result<Self::Instance>;
}

/// A solver of a family.
pub trait Solver<F: Family + ?Sized>: Send + Sync {
    /// Registry name (`dp`, `milp`, `local-search`, `petals-greedy`).
    fn name(&self) -> &'static str;
    /// Kind of method.
    fn kind(&self) -> SolverKind;
    /// One-line description (shown by `edgeplan compare` and `schema`).
    fn description(&self) -> &'static str;
    /// `Err(reason)` when the solver cannot handle this instance (e.g. another objective).
    fn supports(&self, _p: &F::Prepared) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Solves.
    fn solve(&self, p: &F::Prepared, ctx: &mut Context<'_>) -> Result<Outcome<F::Solution>>;
}

/// The result of one solve, after evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SolveResult<S> {
    pub family: String,
    pub solver: String,
    pub solver_kind: SolverKind,
    pub status: Status,
    /// Evaluated objective of the returned solution (`None` without one).
    pub objective: Option<f64>,
    /// Best proved bound on the optimum (`None` when the method proves nothing).
    pub bound: Option<f64>,
    /// Relative gap `|objective - bound| / max(|objective|, 1e-9)`.
    pub gap: Option<f64>,
    pub wall_time_s: f64,
    pub iterations: u64,
    pub nodes: u64,
    pub solution: Option<S>,
    pub evaluation: Option<Evaluation>,
    pub notes: Vec<String>,
}

impl<S: Serialize> SolveResult<S> {
    /// The same result with the solution as JSON (for the dynamic, file-driven API).
    pub fn into_json(self) -> SolveResult<serde_json::Value> {
        SolveResult {
            solution: self
                .solution
                .map(|s| serde_json::to_value(s).unwrap_or(serde_json::Value::Null)),
            family: self.family,
            solver: self.solver,
            solver_kind: self.solver_kind,
            status: self.status,
            objective: self.objective,
            bound: self.bound,
            gap: self.gap,
            wall_time_s: self.wall_time_s,
            iterations: self.iterations,
            nodes: self.nodes,
            evaluation: self.evaluation,
            notes: self.notes,
        }
    }
}

/// Relative gap between an objective and a bound.
pub fn relative_gap(objective: f64, bound: f64) -> f64 {
    let d = (objective - bound).abs();
    if d <= 1e-12 * objective.abs().max(1.0) {
        0.0
    } else {
        d / objective.abs().max(1e-9)
    }
}

/// Finds a solver of family `F` by name (`auto` picks per instance).
pub fn find_solver<F: Family>(p: &F::Prepared, name: &str) -> Result<Box<dyn Solver<F>>> {
    let want = if name == "auto" {
        F::auto_solver(p)
    } else {
        name
    };
    let all = F::solvers();
    let names: Vec<String> = all.iter().map(|s| s.name().to_string()).collect();
    all.into_iter()
        .find(|s| s.name() == want)
        .ok_or_else(|| Error::UnknownSolver {
            family: F::NAME.into(),
            name: name.into(),
            available: std::iter::once("auto".to_string()).chain(names).collect(),
        })
}

/// Tolerance for comparing a solver's own objective with the evaluated one.
pub const OBJECTIVE_RTOL: f64 = 1e-6;

/// Runs `solver` on a prepared instance, evaluates its output, and builds the result.
pub fn run<F: Family>(
    p: &F::Prepared,
    solver: &dyn Solver<F>,
    options: &SolveOptions,
    observer: &mut dyn Observer,
    stop: StopFlag,
) -> Result<SolveResult<F::Solution>> {
    options.validate()?;
    if let Err(reason) = solver.supports(p) {
        return Err(Error::NotApplicable {
            solver: solver.name().into(),
            reason,
        });
    }
    let t0 = Instant::now();
    let mut ctx = Context::new(options, observer, stop);
    let out = solver.solve(p, &mut ctx)?;
    let wall = t0.elapsed().as_secs_f64();
    let sense = F::sense(p);
    let mut notes = out.notes.clone();
    let evaluation = out.solution.as_ref().map(|s| {
        let mut e = F::evaluate(p, s);
        if let Some(own) = out.objective {
            if e.feasible
                && (own - e.objective).abs() > OBJECTIVE_RTOL * e.objective.abs().max(1e-9) + 1e-9
            {
                e.violations.push(format!(
                    "solver objective {own} disagrees with evaluated objective {}",
                    e.objective
                ));
                notes.push("solver objective differs from evaluate".into());
            }
        }
        e
    });
    let feasible = evaluation.as_ref().is_some_and(|e| e.feasible);
    let objective = evaluation
        .as_ref()
        .filter(|e| e.feasible)
        .map(|e| e.objective);
    // A bound can never be better than a feasible objective; guard against solver slop.
    let bound = match (out.bound, objective) {
        (Some(b), Some(o)) => Some(match sense {
            Sense::Minimize => b.min(o),
            Sense::Maximize => b.max(o),
        }),
        (b, _) => b,
    };
    let solution_status = match (&out.solution, feasible) {
        (None, _) => SolutionStatus::NoSolution,
        (Some(_), false) => SolutionStatus::Infeasible,
        (Some(_), true) if out.termination == Termination::Optimal => SolutionStatus::Optimal,
        (Some(_), true) => SolutionStatus::Feasible,
    };
    let mut termination = out.termination;
    if termination == Termination::Optimal && solution_status != SolutionStatus::Optimal {
        // An "optimal" claim whose solution fails the independent check is an error, not an optimum.
        termination = Termination::Error;
        notes.push("solver claimed optimality but evaluate rejected its solution".into());
    }
    let gap = match (objective, bound) {
        (Some(o), Some(b)) => Some(relative_gap(o, b)),
        _ => None,
    };
    Ok(SolveResult {
        family: F::NAME.into(),
        solver: solver.name().into(),
        solver_kind: solver.kind(),
        status: Status {
            termination,
            solution: solution_status,
        },
        objective,
        bound,
        gap,
        wall_time_s: wall,
        iterations: out.iterations,
        nodes: out.nodes,
        solution: if feasible || out.solution.is_some() {
            out.solution
        } else {
            None
        },
        evaluation,
        notes,
    })
}

/// Prepares and solves a typed instance with a named solver (`"auto"` allowed).
pub fn solve<F: Family>(
    instance: &F::Instance,
    solver: &str,
    options: &SolveOptions,
) -> Result<SolveResult<F::Solution>> {
    let catalog = crate::catalog::Catalog::from_env()?;
    let p = F::prepare(instance, &catalog)?;
    let s = find_solver::<F>(&p, solver)?;
    run::<F>(&p, s.as_ref(), options, &mut NoObserver, StopFlag::new())
}
