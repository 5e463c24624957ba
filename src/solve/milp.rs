//! A small MILP model builder and the HiGHS backend.
//!
//! We talk to HiGHS through its C API (`highs-sys`) rather than through good_lp, because users need
//! what good_lp hides (good_lp #138): infeasible, unbounded and infeasible-or-unbounded kept apart,
//! time limit with and without an incumbent, the MIP dual bound and gap, node counts, warm starts
//! and user interruption.
//!
//! ```
//! use edgeplan::solve::milp::{Milp, MilpStatus};
//! use edgeplan::solve::{Sense, SolveOptions, NoObserver, Context, StopFlag};
//! let mut m = Milp::new(Sense::Maximize);
//! let x = m.int_var(0.0, 10.0, 1.0, "x");
//! let y = m.int_var(0.0, 10.0, 1.0, "y");
//! m.add_row(f64::NEG_INFINITY, 7.5, &[(x, 1.0), (y, 1.0)]);
//! let opts = SolveOptions::default();
//! let mut obs = NoObserver;
//! let mut ctx = Context::new(&opts, &mut obs, StopFlag::new());
//! let r = m.solve(&mut ctx, None).unwrap();
//! assert_eq!(r.status, MilpStatus::Optimal);
//! assert!((r.objective.unwrap() - 7.0).abs() < 1e-9);
//! ```

use super::{Context, Progress, Sense, Termination};
use crate::error::{Error, Result};
use highs_sys as hs;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

/// A column index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var(pub usize);

#[derive(Debug, Clone)]
struct Col {
    lb: f64,
    ub: f64,
    cost: f64,
    integer: bool,
    name: String,
}

#[derive(Debug, Clone)]
struct Row {
    lb: f64,
    ub: f64,
    coefs: Vec<(usize, f64)>,
}

/// A mixed-integer linear program: `opt c'x + offset  s.t.  lb <= Ax <= ub, l <= x <= u, x_j integer for j in I`.
#[derive(Debug, Clone)]
pub struct Milp {
    sense: Sense,
    offset: f64,
    cols: Vec<Col>,
    rows: Vec<Row>,
    guard: Option<DeadlineGuard>,
    root_stall: Option<(f64, f64)>,
}

/// Stops HiGHS at one of its limit checks when the time left is below the predicted length of the
/// stretch of work before its next check ([`Milp::guard_deadline`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeadlineGuard {
    /// Seconds allowed past the deadline.
    pub slack_s: f64,
}

/// HiGHS model status, mapped one to one (no status is folded into another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MilpStatus {
    Optimal,
    Infeasible,
    Unbounded,
    InfeasibleOrUnbounded,
    TimeLimit,
    IterationLimit,
    SolutionLimit,
    Interrupted,
    ObjectiveBound,
    ObjectiveTarget,
    ModelEmpty,
    /// Load, model, presolve, solve or postsolve error, or unknown.
    Error(i32),
}

impl MilpStatus {
    fn from_highs(s: c_int) -> Self {
        match s {
            x if x == hs::kHighsModelStatusOptimal as c_int => MilpStatus::Optimal,
            x if x == hs::kHighsModelStatusInfeasible as c_int => MilpStatus::Infeasible,
            x if x == hs::kHighsModelStatusUnbounded as c_int => MilpStatus::Unbounded,
            x if x == hs::kHighsModelStatusUnboundedOrInfeasible as c_int => {
                MilpStatus::InfeasibleOrUnbounded
            }
            x if x == hs::kHighsModelStatusTimeLimit as c_int => MilpStatus::TimeLimit,
            x if x == hs::kHighsModelStatusIterationLimit as c_int => MilpStatus::IterationLimit,
            x if x == hs::kHighsModelStatusSolutionLimit as c_int => MilpStatus::SolutionLimit,
            x if x == hs::kHighsModelStatusInterrupt as c_int => MilpStatus::Interrupted,
            x if x == hs::kHighsModelStatusObjectiveBound as c_int => MilpStatus::ObjectiveBound,
            x if x == hs::kHighsModelStatusObjectiveTarget as c_int => MilpStatus::ObjectiveTarget,
            x if x == hs::kHighsModelStatusModelEmpty as c_int => MilpStatus::ModelEmpty,
            other => MilpStatus::Error(other),
        }
    }

    /// The framework termination for this status.
    pub fn termination(self) -> Termination {
        match self {
            MilpStatus::Optimal | MilpStatus::ModelEmpty => Termination::Optimal,
            MilpStatus::Infeasible => Termination::Infeasible,
            MilpStatus::Unbounded => Termination::Unbounded,
            MilpStatus::InfeasibleOrUnbounded => Termination::InfeasibleOrUnbounded,
            MilpStatus::TimeLimit => Termination::TimeLimit,
            MilpStatus::IterationLimit | MilpStatus::SolutionLimit => Termination::IterationLimit,
            MilpStatus::Interrupted => Termination::Interrupted,
            MilpStatus::ObjectiveBound | MilpStatus::ObjectiveTarget => Termination::Completed,
            MilpStatus::Error(_) => Termination::Error,
        }
    }
}

/// What HiGHS returned.
#[derive(Debug, Clone)]
pub struct MilpResult {
    pub status: MilpStatus,
    /// Column values of the incumbent, when HiGHS has a feasible one.
    pub x: Option<Vec<f64>>,
    /// Objective of the incumbent (including the offset).
    pub objective: Option<f64>,
    /// Dual bound (MIP) or optimal value (LP), when finite.
    pub bound: Option<f64>,
    /// HiGHS' relative MIP gap.
    pub gap: Option<f64>,
    pub nodes: u64,
    pub lp_iterations: u64,
    /// Stopped because the root bound stalled ([`Milp::stop_on_root_stall`]).
    pub stalled: bool,
}

impl Milp {
    /// An empty model.
    pub fn new(sense: Sense) -> Self {
        Milp {
            sense,
            offset: 0.0,
            cols: vec![],
            rows: vec![],
            guard: None,
            root_stall: None,
        }
    }

    /// Stops HiGHS at a limit check (between its root cut rounds, at every node) when the time
    /// left plus `slack_s` is below the length of the stretch since its previous check (the
    /// prediction of the next stretch's length): HiGHS does
    /// not look at the clock inside a cut round (separators, cut pool) nor in the analytic-centre
    /// IPM, which take seconds on large models, so without the guard it ends up to one such
    /// stretch late; with it, the run ends early by up to one stretch instead. The status is
    /// still `TimeLimit`.
    pub fn guard_deadline(&mut self, slack_s: f64) {
        self.guard = Some(DeadlineGuard { slack_s });
    }

    /// Stops HiGHS at a limit check in the root node (no node solved yet) once its dual bound is
    /// finite and moved by at most `rel` (relative) since the previous check, and at least the
    /// share `min_share` of the time budget (time used + time left) is spent: its root cut rounds
    /// have stalled on a model that is slow for it, and the caller can spend the time left
    /// elsewhere (a model whose root ends early in the budget is left to HiGHS' branching, which
    /// may prove it). The status is then `Interrupted` with [`MilpResult::stalled`] set, the
    /// incumbent and bound as usual. Without a time limit it never stops.
    pub fn stop_on_root_stall(&mut self, rel: f64, min_share: f64) {
        self.root_stall = Some((rel, min_share));
    }

    /// Adds a constant to the objective.
    pub fn add_offset(&mut self, c: f64) {
        self.offset += c;
    }

    /// A continuous column.
    pub fn var(&mut self, lb: f64, ub: f64, cost: f64, name: &str) -> Var {
        self.push(lb, ub, cost, false, name)
    }

    /// An integer column.
    pub fn int_var(&mut self, lb: f64, ub: f64, cost: f64, name: &str) -> Var {
        self.push(lb, ub, cost, true, name)
    }

    /// A binary column.
    pub fn bin_var(&mut self, cost: f64, name: &str) -> Var {
        self.push(0.0, 1.0, cost, true, name)
    }

    fn push(&mut self, lb: f64, ub: f64, cost: f64, integer: bool, name: &str) -> Var {
        self.cols.push(Col {
            lb,
            ub,
            cost,
            integer,
            name: name.to_string(),
        });
        Var(self.cols.len() - 1)
    }

    /// Sets a column's objective coefficient.
    pub fn set_cost(&mut self, v: Var, cost: f64) {
        self.cols[v.0].cost = cost;
    }

    /// Adds `lb <= sum coef * x <= ub` (use infinities for one-sided rows). Repeated columns are summed.
    pub fn add_row(&mut self, lb: f64, ub: f64, coefs: &[(Var, f64)]) {
        let mut c: Vec<(usize, f64)> = coefs.iter().map(|(v, a)| (v.0, *a)).collect();
        c.sort_by_key(|e| e.0);
        let mut merged: Vec<(usize, f64)> = Vec::with_capacity(c.len());
        for (j, a) in c {
            match merged.last_mut() {
                Some(last) if last.0 == j => last.1 += a,
                _ => merged.push((j, a)),
            }
        }
        merged.retain(|e| e.1 != 0.0);
        self.rows.push(Row {
            lb,
            ub,
            coefs: merged,
        });
    }

    /// `sum <= ub`.
    pub fn le(&mut self, coefs: &[(Var, f64)], ub: f64) {
        self.add_row(f64::NEG_INFINITY, ub, coefs)
    }

    /// `sum >= lb`.
    pub fn ge(&mut self, coefs: &[(Var, f64)], lb: f64) {
        self.add_row(lb, f64::INFINITY, coefs)
    }

    /// `sum == rhs`.
    pub fn eq(&mut self, coefs: &[(Var, f64)], rhs: f64) {
        self.add_row(rhs, rhs, coefs)
    }

    pub fn num_cols(&self) -> usize {
        self.cols.len()
    }

    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    /// Column name (for debugging and LP export).
    pub fn col_name(&self, v: Var) -> &str {
        &self.cols[v.0].name
    }

    /// Objective of a column vector (including the offset).
    pub fn objective_of(&self, x: &[f64]) -> f64 {
        self.offset
            + self
                .cols
                .iter()
                .zip(x)
                .map(|(c, v)| c.cost * v)
                .sum::<f64>()
    }

    /// Largest violation of bounds, rows and integrality by `x` (0 when feasible).
    pub fn max_violation(&self, x: &[f64]) -> f64 {
        let mut worst: f64 = 0.0;
        for (c, &v) in self.cols.iter().zip(x) {
            worst = worst.max(c.lb - v).max(v - c.ub);
            if c.integer {
                worst = worst.max((v - v.round()).abs());
            }
        }
        for r in &self.rows {
            let a: f64 = r.coefs.iter().map(|(j, a)| a * x[*j]).sum();
            worst = worst.max(r.lb - a).max(a - r.ub);
        }
        worst
    }

    /// Solves with HiGHS under the context's options (time limit = time left, gap, threads, seed),
    /// optionally warm-started from a full column vector.
    pub fn solve(&self, ctx: &mut Context<'_>, warm_start: Option<&[f64]>) -> Result<MilpResult> {
        let opts = ctx.options.clone();
        let h = Highs::new()?;
        h.set_bool("output_flag", opts.verbose)?;
        if let Some(g) = opts.mip_rel_gap {
            h.set_double("mip_rel_gap", g)?;
        }
        h.set_int("threads", opts.threads.unwrap_or(1) as c_int)?;
        h.set_int("random_seed", (opts.seed % (i32::MAX as u64)) as c_int)?;
        if let Some(n) = opts.iteration_limit {
            h.set_int("mip_max_nodes", n.min(i32::MAX as u64) as c_int)?;
        }
        self.pass(&h)?;
        if let Some(x) = warm_start {
            if x.len() == self.cols.len() {
                // Only hand HiGHS a start that is feasible for the model; HiGHS ignores bad ones anyway.
                unsafe {
                    hs::Highs_setSolution(
                        h.0,
                        x.as_ptr(),
                        std::ptr::null(),
                        std::ptr::null(),
                        std::ptr::null(),
                    );
                }
            }
        }
        // The time left once the model is passed (building and passing it used part of the budget).
        if let Some(t) = ctx.remaining_s() {
            h.set_double("time_limit", t.max(1e-3))?;
            // Presolve probing polls neither the callback nor the clock often: on an 82x16 pipeline
            // model it ran 0.3-0.5 s past a 5 s limit. Without it the limit holds to ~0.1 s.
            h.set_int("presolve_rule_off", 1 << 15)?;
        }
        // Callback: lets Ctrl-C / observers interrupt (and enforces the deadline where HiGHS polls
        // it), and reports incumbents and bounds. HiGHS does not poll it during presolve nor in the
        // LP relaxations inside the MIP solver (its internal LP solver has no user callback), so a
        // stop request can wait for those phases to end; HiGHS' own time limit still applies there.
        let mut cb = CallbackData {
            ctx: ctx as *mut Context<'_> as *mut c_void,
            guard: self.guard,
            last_poll_s: Some(ctx.elapsed_s()),
            stretch_s: 0.0,
            guard_stopped: false,
            root_stall: self.root_stall,
            last_bound: f64::NEG_INFINITY,
            stalled: false,
        };
        unsafe {
            hs::Highs_setCallback(
                h.0,
                Some(callback),
                &mut cb as *mut CallbackData as *mut c_void,
            );
            hs::Highs_startCallback(h.0, hs::kHighsCallbackMipInterrupt as _);
            hs::Highs_startCallback(h.0, hs::kHighsCallbackMipImprovingSolution as _);
            hs::Highs_startCallback(h.0, hs::kHighsCallbackSimplexInterrupt as _);
            hs::Highs_startCallback(h.0, hs::kHighsCallbackIpmInterrupt as _);
        }
        let run_status = unsafe { hs::Highs_run(h.0) };
        if run_status == hs::kHighsStatusError as c_int {
            let st = MilpStatus::from_highs(unsafe { hs::Highs_getModelStatus(h.0) });
            if !matches!(
                st,
                MilpStatus::Error(_) | MilpStatus::Interrupted | MilpStatus::TimeLimit
            ) {
                // fall through: HiGHS reports an error status alongside some model statuses
            } else if matches!(st, MilpStatus::Error(_)) {
                return Err(Error::Solver(format!(
                    "HiGHS run failed (model status {st:?})"
                )));
            }
        }
        let mut status = MilpStatus::from_highs(unsafe { hs::Highs_getModelStatus(h.0) });
        if status == MilpStatus::Interrupted
            && !ctx.interrupted()
            && (ctx.timed_out() || cb.guard_stopped)
        {
            // our callback stopped HiGHS at the deadline, or just before it (the guard)
            status = MilpStatus::TimeLimit;
        }
        let primal_status = h.int_info("primal_solution_status").unwrap_or(0);
        let has_solution = primal_status == 2 || status == MilpStatus::Optimal;
        let x = if has_solution && !self.cols.is_empty() {
            let mut col_value = vec![0.0; self.cols.len()];
            let mut col_dual = vec![0.0; self.cols.len()];
            let mut row_value = vec![0.0; self.rows.len().max(1)];
            let mut row_dual = vec![0.0; self.rows.len().max(1)];
            unsafe {
                hs::Highs_getSolution(
                    h.0,
                    col_value.as_mut_ptr(),
                    col_dual.as_mut_ptr(),
                    row_value.as_mut_ptr(),
                    row_dual.as_mut_ptr(),
                );
            }
            Some(col_value)
        } else if has_solution {
            Some(vec![])
        } else {
            None
        };
        let objective = x.as_ref().map(|x| self.objective_of(x));
        let is_mip = self.cols.iter().any(|c| c.integer);
        let bound = if is_mip {
            h.double_info("mip_dual_bound")
                .filter(|b| b.is_finite() && b.abs() < 1e300)
        } else if status == MilpStatus::Optimal {
            objective
        } else {
            None
        };
        let gap = if is_mip {
            h.double_info("mip_gap")
                .filter(|g| g.is_finite() && *g < 1e300)
        } else {
            None
        };
        let nodes = h.int64_info("mip_node_count").unwrap_or(0).max(0) as u64;
        let lp_iterations = if is_mip {
            h.int64_info("mip_total_lp_iterations")
                .or_else(|| h.int_info("simplex_iteration_count"))
                .unwrap_or(0)
                .max(0) as u64
        } else {
            h.int_info("simplex_iteration_count").unwrap_or(0).max(0) as u64
        };
        Ok(MilpResult {
            status,
            x,
            objective,
            bound,
            gap,
            nodes,
            lp_iterations,
            stalled: cb.stalled,
        })
    }

    fn pass(&self, h: &Highs) -> Result<()> {
        let n = self.cols.len();
        let m = self.rows.len();
        let inf = unsafe { hs::Highs_getInfinity(h.0) };
        let clamp = |v: f64| {
            if v == f64::INFINITY {
                inf
            } else if v == f64::NEG_INFINITY {
                -inf
            } else {
                v
            }
        };
        let cost: Vec<f64> = self.cols.iter().map(|c| c.cost).collect();
        let lower: Vec<f64> = self.cols.iter().map(|c| clamp(c.lb)).collect();
        let upper: Vec<f64> = self.cols.iter().map(|c| clamp(c.ub)).collect();
        let integrality: Vec<c_int> = self
            .cols
            .iter()
            .map(|c| {
                if c.integer {
                    hs::kHighsVarTypeInteger as c_int
                } else {
                    hs::kHighsVarTypeContinuous as c_int
                }
            })
            .collect();
        let row_lower: Vec<f64> = self.rows.iter().map(|r| clamp(r.lb)).collect();
        let row_upper: Vec<f64> = self.rows.iter().map(|r| clamp(r.ub)).collect();
        let mut start: Vec<c_int> = Vec::with_capacity(m + 1);
        let mut index: Vec<c_int> = vec![];
        let mut value: Vec<f64> = vec![];
        for r in &self.rows {
            start.push(index.len() as c_int);
            for &(j, a) in &r.coefs {
                index.push(j as c_int);
                value.push(a);
            }
        }
        start.push(index.len() as c_int);
        for (name, v) in [
            ("cost", &cost),
            ("lower", &lower),
            ("upper", &upper),
            ("row_lower", &row_lower),
            ("row_upper", &row_upper),
            ("matrix", &value),
        ] {
            if v.iter().any(|x| x.is_nan()) {
                return Err(Error::Solver(format!("MILP model has NaN in {name}")));
            }
        }
        let sense = match self.sense {
            Sense::Minimize => hs::kHighsObjSenseMinimize,
            Sense::Maximize => hs::kHighsObjSenseMaximize,
        } as c_int;
        let st = unsafe {
            hs::Highs_passMip(
                h.0,
                n as c_int,
                m as c_int,
                index.len() as c_int,
                hs::kHighsMatrixFormatRowwise as c_int,
                sense,
                self.offset,
                cost.as_ptr(),
                lower.as_ptr(),
                upper.as_ptr(),
                row_lower.as_ptr(),
                row_upper.as_ptr(),
                start.as_ptr(),
                index.as_ptr(),
                value.as_ptr(),
                integrality.as_ptr(),
            )
        };
        if st == hs::kHighsStatusError as c_int {
            return Err(Error::Solver("HiGHS rejected the model (passMip)".into()));
        }
        Ok(())
    }
}

struct CallbackData {
    ctx: *mut c_void,
    guard: Option<DeadlineGuard>,
    /// Context time of the previous MIP limit check (of the start of the run before the first).
    last_poll_s: Option<f64>,
    /// The last stretch between two checks: the guard's prediction of the next one.
    stretch_s: f64,
    /// Whether the guard stopped HiGHS.
    guard_stopped: bool,
    root_stall: Option<(f64, f64)>,
    /// The dual bound at the previous check (−∞ before the first finite one).
    last_bound: f64,
    /// Whether the root stall stopped HiGHS.
    stalled: bool,
}

unsafe extern "C" fn callback(
    callback_type: c_int,
    _message: *const c_char,
    data_out: *const hs::HighsCallbackDataOut,
    data_in: *mut hs::HighsCallbackDataIn,
    user: *mut c_void,
) {
    // Never unwind across the FFI boundary.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if user.is_null() {
            return;
        }
        let data = &mut *(user as *mut CallbackData);
        let ctx = &mut *(data.ctx as *mut Context<'_>);
        if callback_type == hs::kHighsCallbackMipInterrupt as c_int {
            let now = ctx.elapsed_s();
            if let Some(prev) = data.last_poll_s {
                data.stretch_s = now - prev;
            }
            data.last_poll_s = Some(now);
            if let (Some((rel, min_share)), false) =
                (data.root_stall, data_out.is_null() || data_in.is_null())
            {
                let out = &*data_out;
                let b = out.mip_dual_bound;
                let spent = ctx
                    .remaining_s()
                    .is_some_and(|left| now >= min_share * (now + left));
                if out.mip_node_count == 0
                    && spent
                    && b.is_finite()
                    && data.last_bound.is_finite()
                    && (b - data.last_bound).abs() <= rel * b.abs().max(1e-9)
                {
                    data.stalled = true;
                    (*data_in).user_interrupt = 1;
                }
                if b.is_finite() {
                    data.last_bound = b;
                }
            }
            if let (Some(g), Some(left)) = (data.guard, ctx.remaining_s()) {
                if left + g.slack_s < data.stretch_s && !data_in.is_null() {
                    data.guard_stopped = true;
                    (*data_in).user_interrupt = 1;
                }
            }
        }
        if callback_type == hs::kHighsCallbackMipImprovingSolution as c_int && !data_out.is_null() {
            let out = &*data_out;
            ctx.report(Progress::Incumbent {
                objective: out.objective_function_value,
                elapsed_s: out.running_time,
            });
            if out.mip_dual_bound.is_finite() {
                ctx.report(Progress::Bound {
                    bound: out.mip_dual_bound,
                    elapsed_s: out.running_time,
                });
            }
        }
        if (ctx.interrupted() || ctx.timed_out()) && !data_in.is_null() {
            (*data_in).user_interrupt = 1;
        }
    }));
}

/// An owned HiGHS instance.
struct Highs(*mut c_void);

impl Highs {
    fn new() -> Result<Self> {
        let p = unsafe { hs::Highs_create() };
        if p.is_null() {
            Err(Error::Solver("could not create a HiGHS instance".into()))
        } else {
            Ok(Highs(p))
        }
    }
    fn set_bool(&self, k: &str, v: bool) -> Result<()> {
        let key = CString::new(k).unwrap();
        check(
            unsafe { hs::Highs_setBoolOptionValue(self.0, key.as_ptr(), v as c_int) },
            k,
        )
    }
    fn set_int(&self, k: &str, v: c_int) -> Result<()> {
        let key = CString::new(k).unwrap();
        check(
            unsafe { hs::Highs_setIntOptionValue(self.0, key.as_ptr(), v) },
            k,
        )
    }
    fn set_double(&self, k: &str, v: f64) -> Result<()> {
        let key = CString::new(k).unwrap();
        check(
            unsafe { hs::Highs_setDoubleOptionValue(self.0, key.as_ptr(), v) },
            k,
        )
    }
    fn double_info(&self, k: &str) -> Option<f64> {
        let key = CString::new(k).unwrap();
        let mut v = 0.0;
        let st = unsafe { hs::Highs_getDoubleInfoValue(self.0, key.as_ptr(), &mut v) };
        (st != hs::kHighsStatusError as c_int).then_some(v)
    }
    fn int_info(&self, k: &str) -> Option<i64> {
        let key = CString::new(k).unwrap();
        let mut v: c_int = 0;
        let st = unsafe { hs::Highs_getIntInfoValue(self.0, key.as_ptr(), &mut v) };
        (st != hs::kHighsStatusError as c_int).then_some(v as i64)
    }
    fn int64_info(&self, k: &str) -> Option<i64> {
        let key = CString::new(k).unwrap();
        let mut v: i64 = 0;
        let st = unsafe { hs::Highs_getInt64InfoValue(self.0, key.as_ptr(), &mut v) };
        (st != hs::kHighsStatusError as c_int).then_some(v)
    }
}

fn check(st: c_int, what: &str) -> Result<()> {
    if st == hs::kHighsStatusError as c_int {
        Err(Error::Solver(format!("HiGHS rejected option {what}")))
    } else {
        Ok(())
    }
}

impl Drop for Highs {
    fn drop(&mut self) {
        unsafe { hs::Highs_destroy(self.0) }
    }
}

/// The HiGHS version string.
pub fn highs_version() -> String {
    unsafe {
        CStr::from_ptr(hs::Highs_version())
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solve::{NoObserver, SolveOptions, StopFlag};

    fn solve(m: &Milp, opts: SolveOptions) -> MilpResult {
        let mut obs = NoObserver;
        let mut ctx = Context::new(&opts, &mut obs, StopFlag::new());
        m.solve(&mut ctx, None).unwrap()
    }

    #[test]
    fn infeasible_is_infeasible() {
        let mut m = Milp::new(Sense::Minimize);
        let x = m.int_var(0.0, 10.0, 1.0, "x");
        m.ge(&[(x, 2.0)], 3.0);
        m.le(&[(x, 2.0)], 3.5);
        let r = solve(&m, SolveOptions::default());
        assert_eq!(r.status, MilpStatus::Infeasible);
        assert!(r.x.is_none());
        assert_eq!(r.status.termination(), Termination::Infeasible);
    }

    #[test]
    fn unbounded_lp_is_not_called_infeasible() {
        let mut m = Milp::new(Sense::Maximize);
        let x = m.var(0.0, f64::INFINITY, 1.0, "x");
        let y = m.var(0.0, f64::INFINITY, 1.0, "y");
        m.ge(&[(x, 1.0), (y, -1.0)], 0.0);
        let r = solve(&m, SolveOptions::default());
        assert!(
            matches!(
                r.status,
                MilpStatus::Unbounded | MilpStatus::InfeasibleOrUnbounded
            ),
            "got {:?}",
            r.status
        );
        assert_ne!(r.status.termination(), Termination::Infeasible);
    }

    #[test]
    fn knapsack_optimum_bound_and_gap() {
        // max 10a + 13b + 7c + 8d s.t. 4a + 6b + 3c + 5d <= 10 -> a + b = 23 (weights 10)... check by enumeration.
        let vals = [10.0, 13.0, 7.0, 8.0];
        let w = [4.0, 6.0, 3.0, 5.0];
        let mut m = Milp::new(Sense::Maximize);
        let xs: Vec<Var> = (0..4).map(|i| m.bin_var(vals[i], "x")).collect();
        let row: Vec<(Var, f64)> = xs.iter().zip(w).map(|(v, a)| (*v, a)).collect();
        m.le(&row, 10.0);
        let mut best: f64 = 0.0;
        for mask in 0..16u32 {
            let (mut vv, mut ww) = (0.0, 0.0);
            for i in 0..4 {
                if mask >> i & 1 == 1 {
                    vv += vals[i];
                    ww += w[i];
                }
            }
            if ww <= 10.0 {
                best = best.max(vv);
            }
        }
        let r = solve(&m, SolveOptions::default());
        assert_eq!(r.status, MilpStatus::Optimal);
        assert!((r.objective.unwrap() - best).abs() < 1e-9);
        assert!((r.bound.unwrap() - best).abs() < 1e-6);
        assert!(m.max_violation(r.x.as_ref().unwrap()) < 1e-9);
    }

    #[test]
    fn warm_start_is_accepted() {
        let mut m = Milp::new(Sense::Minimize);
        let x = m.int_var(0.0, 100.0, 1.0, "x");
        let y = m.int_var(0.0, 100.0, 1.0, "y");
        m.ge(&[(x, 3.0), (y, 5.0)], 17.0);
        let opts = SolveOptions::default();
        let mut obs = NoObserver;
        let mut ctx = Context::new(&opts, &mut obs, StopFlag::new());
        let r = m.solve(&mut ctx, Some(&[6.0, 0.0])).unwrap();
        assert_eq!(r.status, MilpStatus::Optimal);
        // enumeration: min x + y with 3x + 5y >= 17 over 0..=100
        let best = (0..=100)
            .flat_map(|x| (0..=100).map(move |y| (x, y)))
            .filter(|(x, y)| 3 * x + 5 * y >= 17)
            .map(|(x, y)| x + y)
            .min()
            .unwrap();
        assert!((r.objective.unwrap() - best as f64).abs() < 1e-9);
    }
}
