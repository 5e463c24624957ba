//! Baselines: `all-offload` (split 0), `all-local` (split L), `fixed-split` (the best single split for
//! everyone), `cache-everywhere` (full KV on both sides, splits and servers by best response). Full
//! KV = the first `full` option (else option 0); decided associations round-robin. Under the
//! admission objective users are rejected one by one (worst violation first) until the plan is
//! feasible. A baseline may return an infeasible plan under latency objectives (reported as such).

use super::cost::{Cand, Choice, Prepared, UNUSED};
use super::heuristics::{frugal_start, State};
use super::instance::KvKind;
use super::{outcome_from_plan, KvSplit, KvSplitSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Sense, Solver, SolverKind};

fn full_option(p: &Prepared) -> usize {
    p.options
        .iter()
        .position(|o| matches!(o.kind, KvKind::Full))
        .unwrap_or(0)
}

/// Every user at split `c` with full KV, servers given or round-robin.
pub fn uniform_plan(p: &Prepared, c: usize) -> Vec<Choice> {
    let l = p.num_layers();
    let f = full_option(p);
    let mut rr = 0;
    p.users
        .iter()
        .map(|u| {
            let server = if c == l {
                UNUSED
            } else {
                u.fixed_server.unwrap_or_else(|| {
                    rr += 1;
                    (rr - 1) % p.servers.len()
                })
            };
            Choice {
                split: c,
                od: if c > 0 { f } else { UNUSED },
                os: if c < l { f } else { UNUSED },
                server,
                admitted: true,
            }
        })
        .collect()
}

/// Under the admission objective: rejects users until the plan is feasible.
pub fn admit_repair(p: &Prepared, mut plan: Vec<Choice>) -> Vec<Choice> {
    if !p.uses_admission() {
        return plan;
    }
    let l = p.num_layers();
    loop {
        let ev = p.evaluate_plan(&plan);
        if ev.violations.is_empty() {
            return plan;
        }
        // worst: a user over device memory, else the largest relative latency excess, else the
        // largest server KV on an over-full server
        let mut worst: Option<(f64, usize)> = None;
        for (u, ch) in plan.iter().enumerate() {
            if !ch.admitted {
                continue;
            }
            let up = &p.users[u];
            let cc = &ev.costs[u];
            let mut v = (cc.dev_mem / up.memory_bytes - 1.0).max(0.0) * 1e6
                + (cc.acc - up.max_acc).max(0.0) * 1e6;
            if let Some(t) = up.target {
                v += (ev.latency[u] / t - 1.0).max(0.0) * 1e3;
            }
            if ch.split < l {
                let s = ch.server;
                if ev.server_mem[s] > p.servers[s].memory_bytes {
                    v += cc.srv_mem / p.servers[s].memory_bytes + 1e-9;
                }
            }
            if v > 0.0 && worst.is_none_or(|(b, _)| v > b) {
                worst = Some((v, u));
            }
        }
        match worst {
            Some((_, u)) => plan[u] = Choice::reject(l),
            None => return plan,
        }
    }
}

macro_rules! baseline {
    ($t:ident, $name:literal, $desc:literal, $f:expr) => {
        pub struct $t;
        impl Solver<KvSplit> for $t {
            fn name(&self) -> &'static str {
                $name
            }
            fn kind(&self) -> SolverKind {
                SolverKind::Baseline
            }
            fn description(&self) -> &'static str {
                $desc
            }
            fn solve(
                &self,
                p: &Prepared,
                ctx: &mut Context<'_>,
            ) -> Result<Outcome<KvSplitSolution>> {
                let f: fn(&Prepared, &Context<'_>) -> Vec<Choice> = $f;
                let plan = admit_repair(p, f(p, ctx));
                Ok(outcome_from_plan(p, &plan, ctx, 0))
            }
        }
    };
}

baseline!(
    AllOffload,
    "all-offload",
    "every user at split 0 (all layers on the server), full KV",
    |p, _| uniform_plan(p, 0)
);
baseline!(
    AllLocal,
    "all-local",
    "every user at split L (all layers on the device), full KV",
    |p, _| uniform_plan(p, p.num_layers())
);
baseline!(
    FixedSplit,
    "fixed-split",
    "the best single split for everyone (full KV, round-robin servers)",
    fixed_split
);
baseline!(
    CacheEverywhere,
    "cache-everywhere",
    "full KV on both sides; splits and servers by best response",
    cache_everywhere
);

fn fixed_split(p: &Prepared, _: &Context<'_>) -> Vec<Choice> {
    let sense = if p.uses_admission() {
        Sense::Maximize
    } else {
        Sense::Minimize
    };
    let mut best: Option<(Vec<Choice>, bool, f64)> = None;
    for c in 0..=p.num_layers() {
        let plan = admit_repair(p, uniform_plan(p, c));
        let ev = p.evaluate_plan(&plan);
        let feas = ev.violations.is_empty();
        let better = match &best {
            None => true,
            Some((_, bf, bv)) => (feas && !bf) || (feas == *bf && sense.better(ev.objective, *bv)),
        };
        if better {
            best = Some((plan, feas, ev.objective));
        }
    }
    best.map(|b| b.0).unwrap_or_default()
}

fn cache_everywhere(p: &Prepared, ctx: &Context<'_>) -> Vec<Choice> {
    let f = full_option(p);
    let lists: Vec<Vec<Cand>> = (0..p.users.len())
        .map(|u| {
            let mut v: Vec<Cand> = p
                .all_choices(u)
                .into_iter()
                .filter(|c| {
                    !c.admitted || ((c.od == f || c.od == UNUSED) && (c.os == f || c.os == UNUSED))
                })
                .map(|c| (c, p.choice_cost(u, &c)))
                .collect();
            if v.is_empty() {
                v.push((
                    uniform_plan(p, 0)[u],
                    p.choice_cost(u, &uniform_plan(p, 0)[u]),
                ));
            }
            v
        })
        .collect();
    let mut st = State::new(p, &lists, frugal_start(p, &lists));
    st.best_response(ctx, 20);
    st.plan()
}
