//! Brute force for tests: every discrete choice (no deduplication, no pruning), and for a shared
//! bandwidth an independent grid over the split instead of bisection (at most 2 parallel clients):
//! `B·i/G` for client 0 and the rest for client 1, `G = 4000` per round for the time objectives and
//! for the energy objective when both round kinds are equal (one split for all rounds), and a
//! `200 × 200` grid over (first-round split, later-round split) otherwise. Exact (`optimal`) without
//! a shared bandwidth; a grid upper bound (`completed`) with one.

use super::cost::{Phase, Prepared, Value};
use super::instance::Objective;
use super::search::Solved;
use super::SplitFinetune;
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

pub struct BruteForce;

/// Most parallel clients the grid handles.
pub const MAX_GRID_CLIENTS: usize = 2;

fn grid(p: &Prepared, g: usize) -> Vec<Vec<f64>> {
    let bt = p.bandwidth.map_or(0.0, |b| b.total_hz);
    match p.num_clients() {
        1 => vec![vec![bt]],
        _ => (0..=g)
            .map(|i| {
                let b0 = bt * i as f64 / g as f64;
                vec![b0, bt - b0]
            })
            .collect(),
    }
}

fn better(a: &Value, b: &Option<Solved>) -> bool {
    b.as_ref().is_none_or(|b| a.objective < b.value.objective)
}

impl Solver<SplitFinetune> for BruteForce {
    fn name(&self) -> &'static str {
        "brute-force"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "every choice; shared bandwidth by a grid over the split (<= 2 parallel clients; for tests)"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        super::solvers::common_only(p)?;
        if p.has_allocation() && p.num_clients() > MAX_GRID_CLIENTS {
            return Err(format!(
                "the bandwidth grid handles at most {MAX_GRID_CLIENTS} parallel clients"
            ));
        }
        Ok(())
    }
    fn solve(
        &self,
        p: &Prepared,
        ctx: &mut Context<'_>,
    ) -> Result<Outcome<super::SplitFinetuneSolution>> {
        let mut best: Option<Solved> = None;
        let mut n = 0u64;
        let none: Vec<Vec<f64>> = vec![vec![]];
        for ch in p.choices() {
            if ctx.should_stop() {
                break;
            }
            let c = p.combo(ch);
            if !c.violations.is_empty() {
                continue;
            }
            let mut consider = |a1: &Vec<f64>, a2: &Vec<f64>, best: &mut Option<Solved>| {
                n += 1;
                let (v, _) = p.value(&c, a1, a2);
                if v.feasible && better(&v, best) {
                    *best = Some(Solved {
                        choice: ch,
                        a1: a1.clone(),
                        a2: a2.clone(),
                        value: v,
                    });
                }
            };
            if !p.has_allocation() {
                consider(&none[0], &none[0], &mut best);
                continue;
            }
            match p.objective {
                Objective::TotalTime | Objective::RoundLatency => {
                    // the two round kinds are independent: best split of each
                    let gr = grid(p, 4000);
                    let best_split = |ph: &Phase| -> Option<&Vec<f64>> {
                        // the fastest split meeting the energy budgets
                        gr.iter()
                            .filter(|a| {
                                ph.clients.iter().enumerate().all(|(k, pc)| {
                                    p.clients[k].energy_budget_j.is_none_or(|bud| {
                                        p.client_j(k, pc, p.bw_of(a, k)) <= bud * (1.0 + 1e-9)
                                    })
                                })
                            })
                            .map(|a| (p.phase_time(ph, a), a))
                            .min_by(|x, y| x.0.total_cmp(&y.0))
                            .map(|x| x.1)
                    };
                    if let (Some(a1), Some(a2)) = (best_split(&c.first), best_split(&c.later)) {
                        consider(a1, a2, &mut best);
                    }
                }
                Objective::Energy { .. } => {
                    if c.all_train {
                        for a in grid(p, 4000) {
                            consider(&a, &a, &mut best);
                        }
                    } else {
                        let gr = grid(p, 200);
                        for a1 in &gr {
                            for a2 in &gr {
                                consider(a1, a2, &mut best);
                            }
                        }
                    }
                }
            }
        }
        let stopped = ctx.should_stop();
        let term = if stopped {
            ctx.early_termination()
        } else if p.has_allocation() {
            Termination::Completed
        } else {
            Termination::Optimal
        };
        let mut o = match best {
            Some(b) => {
                let mut o = Outcome::with(term, b.solution(p), b.value.objective);
                if term == Termination::Optimal {
                    o.bound = Some(b.value.objective);
                }
                o
            }
            None if term == Termination::Optimal => Outcome::none(Termination::Infeasible),
            None => Outcome::none(term),
        };
        o.iterations = n;
        o.nodes = p.choices().len() as u64;
        Ok(o)
    }
}
