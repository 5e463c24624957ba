//! Exact DP for a fixed node order (PipeEdge-style), and the solvers built on it.
//!
//! Given an order `π` of (some of) the nodes, stages use a subsequence of `π` in that order (a node
//! may be skipped). Backward over positions `k` and start boundaries `a`:
//!
//! - `H[k][a]`: suffixes whose first stage is `π_k` holding `[a, b)` for some `b`;
//! - `G[k][b]`: what follows a stage of `π_k` ending at `b`: the output to the sink (`b = L`) or a link
//!   `π_k → π_j` (`j > k`) followed by `H[j][b]`.
//!
//! Each state keeps the Pareto set of aggregates (sum, max, energy, and the number of stages `r` in the
//! suffix when memory depends on the position, i.e. 1F1B) on the criteria the objective uses, so the DP
//! is exact for every single-pipeline objective and for an energy budget. For the bottleneck objective
//! the Pareto sets have one element and the DP is `O(K·L² + K²·L)`.

use super::cost::{Agg, Plan, Prepared};
use super::{is_replicated, Pipeline, PipelineSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

#[derive(Clone, Copy, Debug)]
struct Lab {
    g: Agg,
    r: u32,
    /// H: (b, index in G[k][b]); G: (j, index in H[j][b]) or (u32::MAX, _) for the sink end.
    p0: u32,
    p1: u32,
}

struct Front<'a> {
    p: &'a Prepared,
    posdep: bool,
    mcap: u32,
}

impl Front<'_> {
    #[inline]
    fn dom(&self, a: &Lab, b: &Lab) -> bool {
        self.p.dominates(&a.g, &b.g) && (!self.posdep || a.r.min(self.mcap) <= b.r.min(self.mcap))
    }
    #[inline]
    fn insert(&self, set: &mut Vec<Lab>, x: Lab) {
        if set.iter().any(|y| self.dom(y, &x)) {
            return;
        }
        set.retain(|y| !self.dom(&x, y));
        set.push(x);
    }
}

/// Best plan whose stages follow `order` (nodes may be skipped), with objective at most `ub`
/// (`f64::INFINITY` for none). Returns the plan and its objective.
pub fn solve_order(p: &Prepared, order: &[usize], ub: f64) -> Option<(Plan, f64)> {
    let l = p.num_layers();
    let kk = order.len();
    if kk == 0 {
        return None;
    }
    let fr = Front {
        p,
        posdep: p.memory_depends_on_position(),
        mcap: p.micro_batches.min(1e9) as u32,
    };
    let idx = |k: usize, x: usize| k * (l + 1) + x;
    let mut h: Vec<Vec<Lab>> = vec![vec![]; kk * (l + 1)];
    let mut g: Vec<Vec<Lab>> = vec![vec![]; kk * (l + 1)];
    let within = |x: &Agg| p.objective_of(x) <= ub && p.budget_ok(x);
    for k in (0..kk).rev() {
        let u = order[k];
        // G[k][b]
        let out = p.output_agg(u);
        if out.is_finite() && within(&out) {
            g[idx(k, l)].push(Lab {
                g: out,
                r: 0,
                p0: u32::MAX,
                p1: 0,
            });
        }
        for b in 1..l {
            let mut set = std::mem::take(&mut g[idx(k, b)]);
            for j in k + 1..kk {
                let hs = &h[idx(j, b)];
                if hs.is_empty() {
                    continue;
                }
                let lk = p.link_agg(u, order[j], b);
                if !lk.is_finite() {
                    continue;
                }
                for (i, x) in hs.iter().enumerate() {
                    let c = lk.plus(x.g);
                    if within(&c) {
                        fr.insert(
                            &mut set,
                            Lab {
                                g: c,
                                r: x.r,
                                p0: j as u32,
                                p1: i as u32,
                            },
                        );
                    }
                }
            }
            g[idx(k, b)] = set;
        }
        // H[k][a]
        for a in 0..l {
            let mut set = vec![];
            for b in a + 1..=l {
                let st = p.stage_agg(u, a, b);
                if !st.is_finite() || p.objective_of(&st) > ub {
                    break; // stage time and energy grow with b
                }
                let gs = &g[idx(k, b)];
                for (i, x) in gs.iter().enumerate() {
                    let r = x.r + 1;
                    if !p.stage_fits(u, a, b, r as usize) {
                        continue;
                    }
                    let c = st.plus(x.g);
                    if within(&c) {
                        fr.insert(
                            &mut set,
                            Lab {
                                g: c,
                                r,
                                p0: b as u32,
                                p1: i as u32,
                            },
                        );
                    }
                }
            }
            h[idx(k, a)] = set;
        }
    }
    // Start.
    let mut best: Option<(f64, usize, usize)> = None;
    for k in 0..kk {
        let inp = p.input_agg(order[k]);
        if !inp.is_finite() {
            continue;
        }
        for (i, x) in h[idx(k, 0)].iter().enumerate() {
            let c = inp.plus(x.g);
            if !p.budget_ok(&c) {
                continue;
            }
            let v = p.objective_of(&c);
            if v <= ub && best.is_none_or(|b| v < b.0) {
                best = Some((v, k, i));
            }
        }
    }
    let (v, mut k, mut i) = best?;
    let mut a = 0;
    let mut stages = vec![];
    loop {
        let x = h[idx(k, a)][i];
        let b = x.p0 as usize;
        stages.push((order[k], a, b));
        let y = g[idx(k, b)][x.p1 as usize];
        if y.p0 == u32::MAX {
            break;
        }
        k = y.p0 as usize;
        i = y.p1 as usize;
        a = b;
    }
    Some((Plan { stages }, v))
}

/// Nodes sorted by compute speed (total time over all layers, fastest first; more memory breaks
/// ties), the source first when there is one.
pub fn speed_order(p: &Prepared, nodes: &[usize]) -> Vec<usize> {
    let l = p.num_layers();
    let mut v: Vec<usize> = nodes.to_vec();
    v.sort_by(|&x, &y| {
        let (tx, ty) = (p.stage_time_s(x, 0, l), p.stage_time_s(y, 0, l));
        tx.partial_cmp(&ty)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(
                p.nodes[y]
                    .memory_bytes
                    .partial_cmp(&p.nodes[x].memory_bytes)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
            .then(x.cmp(&y))
    });
    if let Some(s) = p.source {
        if let Some(pos) = v.iter().position(|&x| x == s) {
            let s = v.remove(pos);
            v.insert(0, s);
        }
    }
    v
}

pub(crate) fn single_only(p: &Prepared) -> std::result::Result<(), String> {
    if is_replicated(p) {
        Err("replicated_throughput: use milp or greedy-replicas".into())
    } else {
        Ok(())
    }
}

fn outcome(p: &Prepared, r: Option<(Plan, f64)>, note: &str) -> Outcome<PipelineSolution> {
    match r {
        Some((plan, v)) => {
            let mut o = Outcome::with(
                Termination::Completed,
                PipelineSolution::from_plan(p, &plan),
                v,
            );
            o.notes.push(note.into());
            o
        }
        None => {
            let mut o = Outcome::none(Termination::Completed);
            o.notes
                .push(format!("{note}: no feasible plan for this order"));
            o
        }
    }
}

/// The DP on the node order of the instance (PipeEdge's DP for a given device order).
pub struct OrderDp;

impl Solver<Pipeline> for OrderDp {
    fn name(&self) -> &'static str {
        "order-dp"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "exact DP over stage boundaries for the node order of the instance (PipeEdge-style); optimal for that order"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        single_only(p)
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        let order: Vec<usize> = (0..p.num_nodes()).collect();
        Ok(outcome(
            p,
            solve_order(p, &order, f64::INFINITY),
            "optimal for the instance's node order",
        ))
    }
}

/// Compute-speed ordering + DP.
pub struct SpeedDp;

impl Solver<Pipeline> for SpeedDp {
    fn name(&self) -> &'static str {
        "speed-dp"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Heuristic
    }
    fn description(&self) -> &'static str {
        "nodes ordered by compute speed (source first), then the exact fixed-order DP"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        single_only(p)
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<PipelineSolution>> {
        let all: Vec<usize> = (0..p.num_nodes()).collect();
        let order = speed_order(p, &all);
        Ok(outcome(
            p,
            solve_order(p, &order, f64::INFINITY),
            "optimal for the speed order",
        ))
    }
}
