//! The combinatorial `branch-and-bound` of `moe_placement` (max_load objective) and the LP-free layer
//! bound against the
//! brute force on random small instances (identical servers, migration costs, utilisation caps,
//! infeasible ones), its time-limited bound, and its domain.

mod common;

use common::{close, prep_moe as prep, small_moe};
use edgeplan::problems::moe_placement::generate::table_instance;
use edgeplan::problems::moe_placement::*;
use edgeplan::solve::{self, NoObserver, SolveOptions, StopFlag, Termination};

fn run(p: &Prepared, name: &str, limit_s: f64) -> solve::SolveResult<MoeSolution> {
    let opts = SolveOptions {
        time_limit_s: Some(limit_s),
        ..Default::default()
    };
    let s = solve::find_solver::<MoePlacement>(p, name).unwrap();
    solve::run::<MoePlacement>(p, s.as_ref(), &opts, &mut NoObserver, StopFlag::new()).unwrap()
}

#[test]
fn branch_and_bound_agrees_with_brute_force() {
    let (mut optimal, mut infeasible) = (0, 0);
    for seed in 0..200 {
        let p = prep(&small_moe(seed, Objective::MaxLoad));
        let s = solve::find_solver::<MoePlacement>(&p, "brute-force").unwrap();
        if s.supports(&p).is_err() {
            continue;
        }
        let b = run(&p, "brute-force", 60.0);
        let x = run(&p, "branch-and-bound", 60.0);
        match b.status.termination {
            Termination::Optimal => {
                assert_eq!(x.status.termination, Termination::Optimal, "seed {seed}");
                let (bo, xo) = (b.objective.unwrap(), x.objective.unwrap());
                assert!(
                    close(bo, xo),
                    "seed {seed}: brute force {bo}, branch and bound {xo}"
                );
                assert!(
                    close(x.bound.unwrap(), xo),
                    "seed {seed}: bound {:?}",
                    x.bound
                );
                optimal += 1;
            }
            Termination::Infeasible => {
                assert_eq!(x.status.termination, Termination::Infeasible, "seed {seed}");
                infeasible += 1;
            }
            t => panic!("seed {seed}: brute force ended {t:?}"),
        }
    }
    assert!(optimal >= 120, "only {optimal} optimal comparisons");
    assert!(infeasible >= 1, "no infeasible case generated");
}

#[test]
fn time_limited_bound_is_valid() {
    // 2 layers × 7 experts on 7 servers under max_load: a limit of 30 nodes per layer stops them early; the
    // bound must stay below the optimum that a full run proves
    let mut inst = table_instance(2, 8, 8, 3);
    inst.objective = Objective::MaxLoad;
    let p = prep(&inst);
    let full = run(&p, "branch-and-bound", 600.0);
    assert_eq!(full.status.termination, Termination::Optimal);
    let opt = full.objective.unwrap();
    let opts = SolveOptions {
        iteration_limit: Some(30),
        ..Default::default()
    };
    let s = solve::find_solver::<MoePlacement>(&p, "branch-and-bound").unwrap();
    let short = solve::run::<MoePlacement>(&p, s.as_ref(), &opts, &mut NoObserver, StopFlag::new())
        .unwrap();
    assert_eq!(short.status.termination, Termination::IterationLimit);
    let b = short.bound.unwrap();
    assert!(b <= opt * (1.0 + 1e-9), "bound {b} above the optimum {opt}");
    assert!(short.objective.unwrap() >= opt * (1.0 - 1e-9));
    // and the MILP's plan is never better than the proven optimum
    let m = run(&p, "milp", 2.0);
    assert!(m.objective.unwrap() >= opt * (1.0 - 1e-6));
}

#[test]
fn latency_objective_is_refused_with_a_reason() {
    let p = prep(&table_instance(1, 4, 3, 1));
    let s = solve::find_solver::<MoePlacement>(&p, "branch-and-bound").unwrap();
    let why = s.supports(&p).unwrap_err();
    assert!(why.contains("max_load"), "{why}");
}

#[test]
fn lp_free_layer_bound_is_below_the_optimum() {
    // `Prepared::layer_lower_bound` (balanced load + local-slot / local-capacity dispatch bound)
    // against the brute-force optimum on small latency and max_load instances
    let mut checked = 0;
    for seed in 0..120 {
        let mut inst = small_moe(1000 + seed, Objective::MaxLoad);
        if seed % 3 != 0 {
            inst.objective = Objective::Latency;
        }
        let p = prep(&inst);
        let s = solve::find_solver::<MoePlacement>(&p, "brute-force").unwrap();
        if s.supports(&p).is_err() {
            continue;
        }
        let b = run(&p, "brute-force", 60.0);
        if let Some(opt) = b.objective {
            let lb: f64 = (0..p.layers).map(|l| p.layer_lower_bound(l)).sum();
            assert!(
                lb <= opt * (1.0 + 1e-9),
                "seed {seed}: bound {lb} above the optimum {opt}"
            );
            assert!(lb > 0.0);
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} instances checked");
}
