//! The enumeration-based solvers: `exact` (every choice, optimal bandwidth), the baselines
//! `splitlora` (fixed cut, no freezing), `freeze-client` (client side fully frozen) and
//! `equal-bandwidth` (every choice, bandwidth split equally), and the `coordinate-descent` heuristic.

use super::bandwidth::{equal_combo, lower_bound, solve_combo};
use super::cost::{Choice, Combo, Prepared};
use super::search::{combos, search, Solved};
use super::SplitFinetune;
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};
use std::collections::HashMap;

/// Exact: enumeration of all (cut, client level, server level) with the exact bandwidth sub-problem,
/// best-first by lower bound.
pub struct Exact;

impl Solver<SplitFinetune> for Exact {
    fn name(&self) -> &'static str {
        "exact"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "enumerate cut x client level x server level, exact bandwidth split (bisection / water-filling), pruned by lower bounds"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        common_only(p)
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::SplitFinetuneSolution>> {
        let mut o = search(p, p.choices(), solve_combo, ctx, true);
        o.notes
            .push("optimal to the 1e-12 relative tolerance of the inner bisections".into());
        Ok(o)
    }
}

/// Exact common-decision solvers prove nothing for per-client instances.
pub fn common_only(p: &Prepared) -> std::result::Result<(), String> {
    if p.per_client {
        Err("the instance asks for per-client decisions: its optimum may differ per client (use milp, per-client-brute-force or per-client-descent)".into())
    } else {
        Ok(())
    }
}

/// Index of the smallest / largest level.
fn extreme(levels: &[f64], largest: bool) -> usize {
    let mut best = 0;
    for (i, &x) in levels.iter().enumerate() {
        if (largest && x > levels[best]) || (!largest && x < levels[best]) {
            best = i;
        }
    }
    best
}

/// SplitLoRA: the fixed cut (`baseline_cut`), no freezing on either side (the smallest levels),
/// optimal bandwidth.
pub struct SplitLora;

impl Solver<SplitFinetune> for SplitLora {
    fn name(&self) -> &'static str {
        "splitlora"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "SplitLoRA: fixed cut (baseline_cut), no freezing, optimal bandwidth split"
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::SplitFinetuneSolution>> {
        let ch = Choice {
            cut: p.baseline_cut,
            cf: extreme(&p.client_levels, false),
            sf: extreme(&p.server_levels, false),
        };
        Ok(search(p, vec![ch], solve_combo, ctx, false))
    }
}

/// Freeze-all-client: the largest client level (fully frozen at level 1), best cut and server level.
pub struct FreezeClient;

impl Solver<SplitFinetune> for FreezeClient {
    fn name(&self) -> &'static str {
        "freeze-client"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "client side at its largest freezing level (forward only, smashed data uploaded once at level 1), best cut and server level"
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::SplitFinetuneSolution>> {
        let cf = extreme(&p.client_levels, true);
        let chs = p.choices().into_iter().filter(|c| c.cf == cf).collect();
        Ok(search(p, chs, solve_combo, ctx, false))
    }
}

/// Every discrete choice with the bandwidth split equally.
pub struct EqualBandwidth;

impl Solver<SplitFinetune> for EqualBandwidth {
    fn name(&self) -> &'static str {
        "equal-bandwidth"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "best cut and freezing levels with the shared bandwidth split equally (B/K each)"
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::SplitFinetuneSolution>> {
        Ok(search(p, p.choices(), equal_combo, ctx, false))
    }
}

/// Coordinate descent over (cut, client level, server level) from four starts, each move scored with
/// the exact bandwidth sub-problem.
pub struct CoordinateDescent;

impl Solver<SplitFinetune> for CoordinateDescent {
    fn name(&self) -> &'static str {
        "coordinate-descent"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "coordinate descent on cut, client level, server level (exact bandwidth per move) from 4 starts (SplitLoRA point, client fully frozen; baseline and middle cuts)"
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::SplitFinetuneSolution>> {
        let mut memo: HashMap<Choice, Option<Solved>> = HashMap::new();
        let mut bounds: HashMap<Choice, Option<(Combo, f64)>> = HashMap::new();
        // solves a choice unless its lower bound cannot beat `cutoff`
        let mut eval = |ch: Choice, cutoff: f64| -> Option<Solved> {
            if let Some(s) = memo.get(&ch) {
                return s.clone();
            }
            let (c, lb) = bounds
                .entry(ch)
                .or_insert_with(|| {
                    let c = combos(p, vec![ch]).pop()?;
                    let lb = lower_bound(p, &c);
                    Some((c, lb))
                })
                .as_ref()?;
            if *lb >= cutoff {
                return None;
            }
            let s = solve_combo(p, c).map(|(a1, a2, value)| Solved {
                choice: ch,
                a1,
                a2,
                value,
            });
            memo.insert(ch, s.clone());
            s
        };
        let obj = |s: &Option<Solved>| s.as_ref().map_or(f64::INFINITY, |s| s.value.objective);
        // starts: the SplitLoRA point, and the client side fully frozen, at the baseline and middle cuts
        let lo_c = extreme(&p.client_levels, false);
        let hi_c = extreme(&p.client_levels, true);
        let lo_s = extreme(&p.server_levels, false);
        let mid = p.cuts[p.cuts.len() / 2];
        let starts = [
            (p.baseline_cut, lo_c),
            (p.baseline_cut, hi_c),
            (mid, lo_c),
            (mid, hi_c),
        ];
        let mut best: Option<Solved> = None;
        let mut iters = 0u64;
        for (cut, cf) in starts {
            let mut cur = Choice { cut, cf, sf: lo_s };
            let mut here = eval(cur, f64::INFINITY);
            loop {
                iters += 1;
                let mut improved = false;
                for coord in 0..3 {
                    let cands: Vec<Choice> = match coord {
                        0 => p.cuts.iter().map(|&cut| Choice { cut, ..cur }).collect(),
                        1 => (0..p.client_levels.len())
                            .map(|cf| Choice { cf, ..cur })
                            .collect(),
                        _ => (0..p.server_levels.len())
                            .map(|sf| Choice { sf, ..cur })
                            .collect(),
                    };
                    for ch in cands {
                        if ctx.should_stop() {
                            break;
                        }
                        let s = eval(ch, obj(&here));
                        if obj(&s) < obj(&here) * (1.0 - 1e-12) {
                            here = s;
                            cur = ch;
                            improved = true;
                        }
                    }
                }
                if !improved || ctx.should_stop() {
                    break;
                }
            }
            if obj(&here) < obj(&best) {
                best = here;
            }
        }
        let mut o = match best {
            Some(b) => Outcome::with(ctx.early_termination(), b.solution(p), b.value.objective),
            None => Outcome::none(match ctx.early_termination() {
                Termination::Completed => Termination::Completed,
                t => t,
            }),
        };
        o.iterations = iters;
        o.nodes = memo.len() as u64;
        Ok(o)
    }
}
