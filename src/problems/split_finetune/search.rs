//! Enumeration of the discrete choices (cut × client level × server level) with a per-combo
//! continuous solver, pruned by lower bounds: the engine of `exact` and of the restricted baselines.

use super::bandwidth::lower_bound;
use super::cost::{Choice, Combo, Prepared, Value};
use super::SplitFinetuneSolution;
use crate::solve::{Context, Outcome, Termination};
use rayon::prelude::*;
use std::collections::BTreeSet;

/// A solved combo.
#[derive(Debug, Clone)]
pub struct Solved {
    pub choice: Choice,
    pub a1: Vec<f64>,
    pub a2: Vec<f64>,
    pub value: Value,
}

impl Solved {
    pub fn solution(&self, p: &Prepared) -> SplitFinetuneSolution {
        SplitFinetuneSolution::from_choices(
            p,
            &vec![self.choice; p.num_clients()],
            self.a1.clone(),
            self.a2.clone(),
        )
    }
}

/// The discretely feasible combos among `choices`, one per distinct (cut, frozen blocks) shape.
pub fn combos(p: &Prepared, choices: Vec<Choice>) -> Vec<Combo> {
    let mut seen = BTreeSet::new();
    let unique: Vec<Choice> = choices
        .into_iter()
        .filter(|&ch| {
            let s = p.shape(ch);
            seen.insert((s.cut, s.client_frozen, s.server_frozen))
        })
        .collect();
    unique
        .par_iter()
        .map(|&ch| p.combo(ch))
        .filter(|c| c.violations.is_empty())
        .collect()
}

/// Best-first enumeration: combos sorted by lower bound, solved in parallel chunks until the next
/// bound reaches the incumbent. Returns the outcome (optimal when every combo was solved or pruned).
pub fn search(
    p: &Prepared,
    choices: Vec<Choice>,
    solve: impl Fn(&Prepared, &Combo) -> Option<(Vec<f64>, Vec<f64>, Value)> + Sync,
    ctx: &mut Context<'_>,
    proves: bool,
) -> Outcome<SplitFinetuneSolution> {
    let cs = combos(p, choices);
    let mut order: Vec<(f64, usize)> = cs
        .par_iter()
        .enumerate()
        .map(|(i, c)| (lower_bound(p, c), i))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut best: Option<Solved> = None;
    let mut solved = 0u64;
    let chunk = 2 * rayon::current_num_threads().max(1);
    let mut pos = 0;
    let mut stopped = false;
    while pos < order.len() {
        let inc = best.as_ref().map_or(f64::INFINITY, |b| b.value.objective);
        if order[pos].0 >= inc * (1.0 - 1e-12) {
            pos = order.len();
            break;
        }
        if ctx.should_stop() {
            stopped = true;
            break;
        }
        let end = (pos + chunk).min(order.len());
        let batch: Vec<Solved> = order[pos..end]
            .par_iter()
            .filter(|(lb, _)| *lb < inc * (1.0 - 1e-12))
            .filter_map(|&(_, i)| {
                solve(p, &cs[i]).map(|(a1, a2, value)| Solved {
                    choice: cs[i].choices[0],
                    a1,
                    a2,
                    value,
                })
            })
            .collect();
        solved += (end - pos) as u64;
        for s in batch {
            let better = match &best {
                None => true,
                Some(b) => {
                    s.value.objective < b.value.objective
                        || (s.value.objective == b.value.objective && s.choice < b.choice)
                }
            };
            if better {
                ctx.incumbent(s.value.objective);
                best = Some(s);
            }
        }
        pos = end;
    }
    let remaining_lb = order.get(pos).map_or(f64::INFINITY, |x| x.0);
    let mut out = match &best {
        None if stopped => Outcome::none(ctx.early_termination()),
        None => Outcome::none(if proves {
            Termination::Infeasible
        } else {
            Termination::Completed
        }),
        Some(b) => {
            let term = if stopped {
                ctx.early_termination()
            } else if proves {
                Termination::Optimal
            } else {
                Termination::Completed
            };
            let mut o = Outcome::with(term, b.solution(p), b.value.objective);
            if proves {
                o.bound = Some(if stopped {
                    remaining_lb.min(b.value.objective)
                } else {
                    b.value.objective
                });
            }
            o
        }
    };
    out.nodes = cs.len() as u64;
    out.iterations = solved;
    out.notes.push(format!(
        "{} distinct feasible combos, {} solved, {} pruned by bounds",
        cs.len(),
        solved,
        cs.len() as u64 - solved.min(cs.len() as u64)
    ));
    out
}
