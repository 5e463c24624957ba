//! Local search over node orders, each order scored by the exact fixed-order DP
//! ([`super::order_dp::solve_order`]).
//!
//! Starts from the best of the speed order, the memory order and the instance order; then random
//! swap and insertion moves, accepting improvements and sideways moves (plateaus are common with the
//! bottleneck objective), with a perturbation after a run of non-improving moves. The DP is called
//! with the incumbent as an upper bound, which prunes most labels. Deterministic for a given seed.

use super::cost::{Plan, Prepared};
use super::order_dp::{single_only, solve_order, speed_order};
use super::{Pipeline, PipelineSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Default number of moves for an instance (scaled so one run stays well under a second).
pub fn default_moves(p: &Prepared, nodes: usize) -> u64 {
    let work =
        (nodes * nodes * p.num_layers() + nodes * p.num_layers() * p.num_layers()).max(1) as f64;
    // ~ 16M label operations in total
    (1.6e7 / work).clamp(20.0, 400.0) as u64
}

/// Runs the local search on a subset of nodes. Returns the best plan and its objective.
pub fn search(
    p: &Prepared,
    nodes: &[usize],
    moves: u64,
    seed: u64,
    ctx: Option<&Context<'_>>,
) -> Option<(Plan, f64)> {
    if nodes.is_empty() {
        return None;
    }
    let mut starts = vec![speed_order(p, nodes)];
    let mut by_mem = nodes.to_vec();
    by_mem.sort_by(|&a, &b| {
        p.nodes[b]
            .memory_bytes
            .partial_cmp(&p.nodes[a].memory_bytes)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    starts.push(by_mem);
    starts.push(nodes.to_vec());
    let mut best: Option<(Vec<usize>, Plan, f64)> = None;
    for o in starts {
        let ub = best.as_ref().map_or(f64::INFINITY, |b| b.2);
        if let Some((plan, v)) = solve_order(p, &o, ub) {
            if best.as_ref().is_none_or(|b| v < b.2) {
                best = Some((o, plan, v));
            }
        }
    }
    let (mut cur, plan, mut val) = best?;
    let n = cur.len();
    if n < 2 {
        return Some((plan, val));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_0de5);
    let mut since = 0u64;
    let (mut best_order, mut best_val, mut best_plan) = (cur.clone(), val, plan.clone());
    for it in 0..moves {
        if it % 16 == 0 && ctx.is_some_and(|c| c.should_stop()) {
            break;
        }
        let mut cand = cur.clone();
        let i = rng.random_range(0..n);
        let mut j = rng.random_range(0..n - 1);
        if j >= i {
            j += 1;
        }
        if rng.random_bool(0.5) {
            cand.swap(i, j);
        } else {
            let x = cand.remove(i);
            cand.insert(j, x);
        }
        if let Some((pl, v)) = solve_order(p, &cand, val) {
            if v < val * (1.0 - 1e-12) {
                since = 0;
            } else {
                since += 1;
            }
            cur = cand;
            val = v;
            if val < best_val {
                best_val = val;
                best_order = cur.clone();
                best_plan = pl;
            }
        } else {
            since += 1;
        }
        if since > 4 * n as u64 {
            // perturb from the best order
            cur = best_order.clone();
            for _ in 0..2 {
                let a = rng.random_range(0..n);
                let b = rng.random_range(0..n);
                cur.swap(a, b);
            }
            match solve_order(p, &cur, f64::INFINITY) {
                Some((_, v)) => val = v,
                None => {
                    cur = best_order.clone();
                    val = best_val;
                }
            }
            since = 0;
        }
    }
    Some((best_plan, best_val))
}

/// Local search over orders + fixed-order DP.
pub struct LocalSearch;

impl Solver<Pipeline> for LocalSearch {
    fn name(&self) -> &'static str {
        "local-search"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "local search (swap/insert, sideways moves, perturbation) over node orders, each scored by the exact fixed-order DP"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        single_only(p)
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        let nodes: Vec<usize> = (0..p.num_nodes()).collect();
        let moves = ctx
            .options
            .iteration_limit
            .unwrap_or_else(|| default_moves(p, nodes.len()));
        let r = search(p, &nodes, moves, ctx.options.seed, Some(ctx));
        let term = ctx.early_termination();
        Ok(match r {
            Some((plan, v)) => {
                let mut o = Outcome::with(term, PipelineSolution::from_plan(p, &plan), v);
                o.iterations = moves;
                o
            }
            None => {
                let mut o = Outcome::none(term);
                o.notes.push("no feasible plan found".into());
                o
            }
        })
    }
}
