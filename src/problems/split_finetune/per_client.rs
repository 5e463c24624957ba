//! Per-client decisions (`"decisions": "per_client"`): each client `k` picks its own cut `c_k` and
//! client level `f_k`, the server level is common. Here: the per-client option lists, the
//! `per-client-brute-force` solver (exact, for tests: every option vector × server level with the
//! exact bandwidth sub-problem) and the `per-client-descent` heuristic (from the common optimum,
//! per-client coordinate descent). The MILP is in `milp.rs`.

use super::bandwidth::{lower_bound, solve_combo};
use super::cost::{Choice, Prepared, Value};
use super::search::search;
use super::{solution_choices, SplitFinetune, SplitFinetuneSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};
use std::collections::BTreeSet;

/// Most option vectors × server levels `per-client-brute-force` enumerates.
pub const MAX_BRUTE_VECTORS: u64 = 200_000;

/// Why a per-client solver does not apply to a common-decision instance.
pub fn needs_per_client(p: &Prepared) -> std::result::Result<(), String> {
    if p.per_client {
        Ok(())
    } else {
        Err("per-client solvers need \"decisions\": \"per_client\" (use exact for common decisions)".into())
    }
}

/// Client `k`'s options at server level `sf`: one choice per distinct (cut, client frozen blocks),
/// dropping those that break its own memory or train nothing on its micro-batches.
pub fn client_options(p: &Prepared, k: usize, sf: usize) -> Vec<Choice> {
    let mut seen = BTreeSet::new();
    let mut v = vec![];
    for &cut in &p.cuts {
        for cf in 0..p.client_levels.len() {
            let ch = Choice { cut, cf, sf };
            let st = p.stream(k, ch);
            if !seen.insert((cut, st.shape.client_frozen)) {
                continue;
            }
            if st.memory > p.clients[k].memory * (1.0 + 1e-12) || st.shape.phi <= 0.0 {
                continue;
            }
            v.push(ch);
        }
    }
    v
}

/// Distinct server levels (indices of distinct values).
pub fn server_level_indices(p: &Prepared) -> Vec<usize> {
    let mut v: Vec<usize> = vec![];
    for (i, &x) in p.server_levels.iter().enumerate() {
        if !v.iter().any(|&j| p.server_levels[j] == x) {
            v.push(i);
        }
    }
    v
}

/// A solved per-client choice vector.
#[derive(Debug, Clone)]
pub struct SolvedVec {
    pub choices: Vec<Choice>,
    pub a1: Vec<f64>,
    pub a2: Vec<f64>,
    pub value: Value,
}

impl SolvedVec {
    pub fn solution(&self, p: &Prepared) -> SplitFinetuneSolution {
        SplitFinetuneSolution::from_choices(p, &self.choices, self.a1.clone(), self.a2.clone())
    }
}

/// The exact value of a choice vector (discrete violations or no feasible allocation: `None`).
pub fn solve_vector(p: &Prepared, chs: &[Choice]) -> Option<SolvedVec> {
    let c = p.combo_of(chs);
    if !c.violations.is_empty() {
        return None;
    }
    solve_combo(p, &c).map(|(a1, a2, value)| SolvedVec {
        choices: chs.to_vec(),
        a1,
        a2,
        value,
    })
}

fn obj(s: &Option<SolvedVec>) -> f64 {
    s.as_ref().map_or(f64::INFINITY, |s| s.value.objective)
}

/// Every per-client option vector × server level (for tests).
pub struct PerClientBruteForce;

impl PerClientBruteForce {
    fn count(p: &Prepared) -> u64 {
        let per = (p.cuts.len() * p.client_levels.len()) as u64;
        let mut n = server_level_indices(p).len() as u64;
        for _ in 0..p.num_clients() {
            n = n.saturating_mul(per);
        }
        n
    }
}

impl Solver<SplitFinetune> for PerClientBruteForce {
    fn name(&self) -> &'static str {
        "per-client-brute-force"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "per-client decisions: every (cut, client level) vector x server level, exact bandwidth split (small instances; for tests)"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        needs_per_client(p)?;
        let n = Self::count(p);
        if n > MAX_BRUTE_VECTORS {
            return Err(format!(
                "{n} option vectors, more than the {MAX_BRUTE_VECTORS} brute force enumerates"
            ));
        }
        Ok(())
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<SplitFinetuneSolution>> {
        let mut best: Option<SolvedVec> = None;
        let mut n = 0u64;
        'levels: for sf in server_level_indices(p) {
            let opts: Vec<Vec<Choice>> = (0..p.num_clients())
                .map(|k| client_options(p, k, sf))
                .collect();
            if opts.iter().any(|o| o.is_empty()) {
                continue;
            }
            let mut idx = vec![0usize; opts.len()];
            loop {
                if ctx.should_stop() {
                    break 'levels;
                }
                n += 1;
                let chs: Vec<Choice> = idx.iter().enumerate().map(|(k, &i)| opts[k][i]).collect();
                let s = solve_vector(p, &chs);
                if obj(&s) < obj(&best) {
                    ctx.incumbent(obj(&s));
                    best = s;
                }
                // odometer
                let mut k = 0;
                loop {
                    if k == idx.len() {
                        continue 'levels;
                    }
                    idx[k] += 1;
                    if idx[k] < opts[k].len() {
                        break;
                    }
                    idx[k] = 0;
                    k += 1;
                }
            }
        }
        let stopped = ctx.should_stop();
        let mut o = match best {
            Some(b) => {
                let term = if stopped {
                    ctx.early_termination()
                } else {
                    Termination::Optimal
                };
                let mut o = Outcome::with(term, b.solution(p), b.value.objective);
                if !stopped {
                    o.bound = Some(b.value.objective);
                }
                o
            }
            None if stopped => Outcome::none(ctx.early_termination()),
            None => Outcome::none(Termination::Infeasible),
        };
        o.nodes = n;
        o.notes
            .push("optimal to the 1e-12 relative tolerance of the bandwidth bisections".into());
        Ok(o)
    }
}

/// Per-client coordinate descent from the common optimum.
pub struct PerClientDescent;

/// Per-client coordinate descent from `start`: each client in turn tries each of its options, then
/// the server level moves; every move is scored with the exact bandwidth sub-problem (skipped when
/// its lower bound cannot improve). Returns the local optimum and the number of sweeps.
pub fn descend(p: &Prepared, start: SolvedVec, ctx: &mut Context<'_>) -> (SolvedVec, u64) {
    let mut cur = start;
    let levels = server_level_indices(p);
    let mut sweeps = 0;
    let mut opts_at: Vec<Option<Vec<Vec<Choice>>>> = vec![None; p.server_levels.len()];
    loop {
        sweeps += 1;
        let mut improved = false;
        let try_vec = |chs: &[Choice], cur: &SolvedVec| -> Option<SolvedVec> {
            let c = p.combo_of(chs);
            if !c.violations.is_empty() || lower_bound(p, &c) >= cur.value.objective * (1.0 - 1e-12)
            {
                return None;
            }
            let (a1, a2, value) = solve_combo(p, &c)?;
            (value.objective < cur.value.objective * (1.0 - 1e-12)).then(|| SolvedVec {
                choices: chs.to_vec(),
                a1,
                a2,
                value,
            })
        };
        for k in 0..p.num_clients() {
            let sf = cur.choices[0].sf;
            let opts = opts_at[sf].get_or_insert_with(|| {
                (0..p.num_clients())
                    .map(|k| client_options(p, k, sf))
                    .collect()
            });
            for &ch in &opts[k] {
                if ctx.should_stop() {
                    return (cur, sweeps);
                }
                if ch == cur.choices[k] {
                    continue;
                }
                let mut chs = cur.choices.clone();
                chs[k] = ch;
                if let Some(s) = try_vec(&chs, &cur) {
                    ctx.incumbent(s.value.objective);
                    cur = s;
                    improved = true;
                }
            }
        }
        for &sf in &levels {
            if sf == cur.choices[0].sf || ctx.should_stop() {
                continue;
            }
            let chs: Vec<Choice> = cur.choices.iter().map(|&c| Choice { sf, ..c }).collect();
            if let Some(s) = try_vec(&chs, &cur) {
                ctx.incumbent(s.value.objective);
                cur = s;
                improved = true;
            }
        }
        if !improved || ctx.should_stop() {
            return (cur, sweeps);
        }
    }
}

/// The common-decision optimum (exact enumeration) as a per-client vector.
pub fn common_start(p: &Prepared, ctx: &mut Context<'_>) -> Option<SolvedVec> {
    let o = search(p, p.choices(), solve_combo, ctx, true);
    let sol = o.solution?;
    let chs = solution_choices(p, &sol).ok()?;
    solve_vector(p, &chs)
}

impl Solver<SplitFinetune> for PerClientDescent {
    fn name(&self) -> &'static str {
        "per-client-descent"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "per-client decisions: from the common-decision optimum, coordinate descent over each client's (cut, level) and the server level, exact bandwidth per move"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        needs_per_client(p)
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<SplitFinetuneSolution>> {
        let Some(start) = common_start(p, ctx) else {
            let mut o = Outcome::none(ctx.early_termination());
            o.notes
                .push("no feasible common-decision start; the descent starts only from one".into());
            return Ok(o);
        };
        let start_obj = start.value.objective;
        let (best, sweeps) = descend(p, start, ctx);
        let mut o = Outcome::with(
            ctx.early_termination(),
            best.solution(p),
            best.value.objective,
        );
        o.iterations = sweeps;
        o.notes.push(format!(
            "common-decision optimum {start_obj:.6e}, per-client descent {:.6e} ({sweeps} sweeps)",
            best.value.objective
        ));
        Ok(o)
    }
}
