//! `exact`: Lagrangian dual (nested bisection on the frame and server multipliers) with primal
//! recovery by the fixed-mode convex solve, and best-first branch and bound on the modes of the
//! devices whose best response flips inside the final bracket. Certified: reports the bound and
//! `optimal` only when `primal − bound ≤ tol·primal`.

use super::cost::{Point, Prepared};
use super::{tolerance, Offloading, OffloadingSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

pub struct Exact;

struct Node {
    bound: f64,
    allowed: Vec<Vec<usize>>,
}

impl PartialEq for Node {
    fn eq(&self, o: &Self) -> bool {
        self.bound == o.bound
    }
}
impl Eq for Node {}
impl PartialOrd for Node {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Node {
    fn cmp(&self, o: &Self) -> Ordering {
        // min-heap on bound
        o.bound.total_cmp(&self.bound)
    }
}

/// Best decision for fixed modes (`None` when infeasible).
pub fn fixed(p: &Prepared, modes: &[usize], tol: f64) -> Option<(Vec<Point>, f64)> {
    p.fixed_mode_solve(modes, tol)
        .map(|(pts, _)| {
            let o = p.objective(&pts);
            (pts, o)
        })
        .filter(|(_, o)| o.is_finite())
}

/// The branch and bound; returns (incumbent, objective, bound, nodes, proved).
pub fn solve(
    p: &Prepared,
    root: Vec<Vec<usize>>,
    tol: f64,
    ctx: &mut Context<'_>,
) -> (Option<(Vec<Point>, f64)>, f64, u64, bool) {
    let mut inc: Option<(Vec<Point>, f64)> = None;
    let mut heap = BinaryHeap::new();
    heap.push(Node {
        bound: f64::NEG_INFINITY,
        allowed: root,
    });
    let mut nodes = 0;
    let mut proved = true;
    let mut closed_bound = f64::INFINITY; // min bound over nodes closed without an incumbent proof
    let mut pruned_bound = f64::INFINITY; // min dual bound over nodes pruned or solved (leaves)
    let inc_obj = |inc: &Option<(Vec<Point>, f64)>| inc.as_ref().map_or(f64::INFINITY, |x| x.1);
    while let Some(node) = heap.pop() {
        let ub = inc_obj(&inc);
        if node.bound >= ub - tol * ub.abs() {
            heap.push(node);
            break;
        }
        if ctx.should_stop() {
            heap.push(node);
            proved = false;
            break;
        }
        nodes += 1;
        if !p.quick_feasible(&node.allowed) {
            continue;
        }
        let single = node.allowed.iter().all(|a| a.len() == 1);
        let d = p.dual_solve(&node.allowed, tol * 0.5);
        let bound = d.bound.max(node.bound);
        let Some(pts) = d.pts else {
            if single {
                continue;
            }
            closed_bound = closed_bound.min(bound);
            proved = false;
            continue;
        };
        let mut cand = None;
        if d.mixed.is_empty() {
            let o = p.objective(&pts);
            cand = Some((pts.clone(), o));
        } else {
            let modes: Vec<usize> = pts.iter().map(|x| x.mode).collect();
            if let Some(x) = fixed(p, &modes, tol * 0.5) {
                cand = Some(x);
            }
        }
        if let Some((c, o)) = cand {
            if o < inc_obj(&inc) {
                ctx.incumbent(o);
                inc = Some((c, o));
            }
        }
        let ub = inc_obj(&inc);
        if bound >= ub - tol * ub.abs() || single {
            pruned_bound = pruned_bound.min(bound);
            continue;
        }
        // branch on a flipping device, else on any device with several modes
        let k = d
            .mixed
            .iter()
            .copied()
            .find(|&k| node.allowed[k].len() > 1)
            .or_else(|| (0..p.k()).find(|&k| node.allowed[k].len() > 1));
        let Some(k) = k else {
            pruned_bound = pruned_bound.min(bound);
            continue;
        };
        let m = pts[k].mode;
        let m = if node.allowed[k].contains(&m) {
            m
        } else {
            node.allowed[k][0]
        };
        let mut a = node.allowed.clone();
        a[k] = vec![m];
        let mut b = node.allowed;
        b[k].retain(|&x| x != m);
        heap.push(Node { bound, allowed: a });
        heap.push(Node { bound, allowed: b });
    }
    let ub = inc_obj(&inc);
    let open = heap
        .iter()
        .map(|n| n.bound)
        .fold(f64::INFINITY, f64::min)
        .min(closed_bound)
        .min(pruned_bound);
    // the proven lower bound (not the incumbent): the least bound of every leaf of the tree
    let bound = open.min(ub);
    (inc, bound, nodes, proved)
}

impl Solver<Offloading> for Exact {
    fn name(&self) -> &'static str {
        "exact"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Exact
    }
    fn description(&self) -> &'static str {
        "Lagrangian dual by nested bisection (frame, server multipliers) + convex primal recovery + branch and bound on modes; certified gap"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<OffloadingSolution>> {
        let tol = tolerance(ctx.options);
        let allowed = p.all_allowed();
        if let Some(k) = allowed.iter().position(|a| a.is_empty()) {
            let mut o = Outcome::none(Termination::Infeasible);
            o.notes
                .push(format!("device {} has no feasible mode", p.devs[k].name));
            return Ok(o);
        }
        let (inc, bound, nodes, proved) = solve(p, allowed, tol, ctx);
        let Some((pts, obj)) = inc else {
            let mut o = Outcome::none(if proved {
                Termination::Infeasible
            } else {
                ctx.early_termination()
            });
            o.nodes = nodes;
            return Ok(o);
        };
        let gap = (obj - bound) / obj.abs().max(1e-300);
        let term = if gap <= tol * (1.0 + 1e-9) + 1e-15 {
            Termination::Optimal
        } else if ctx.should_stop() {
            ctx.early_termination()
        } else {
            Termination::Completed
        };
        let mut o = Outcome::with(term, OffloadingSolution::from_points(p, &pts), obj);
        o.bound = Some(bound);
        o.nodes = nodes;
        o.notes
            .push(format!("relative gap {gap:.2e} (tolerance {tol:.0e})"));
        Ok(o)
    }
}
