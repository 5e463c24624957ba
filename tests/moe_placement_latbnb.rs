//! The Lagrangian branch and bound of `moe_placement` (`lagrangian-bnb`, `latency` objective)
//! against the brute force on random small instances (identical servers, migration costs,
//! utilisation caps, infeasible ones), its node-limited bounds, and every output through `evaluate`.

mod common;

use common::{close, prep_moe as prep, small_moe};
use edgeplan::problems::moe_placement::generate::table_instance;
use edgeplan::problems::moe_placement::*;
use edgeplan::solve::{self, NoObserver, SolveOptions, StopFlag, Termination};

fn run_with(p: &Prepared, name: &str, opts: &SolveOptions) -> solve::SolveResult<MoeSolution> {
    let s = solve::find_solver::<MoePlacement>(p, name).unwrap();
    let r =
        solve::run::<MoePlacement>(p, s.as_ref(), opts, &mut NoObserver, StopFlag::new()).unwrap();
    if let Some(e) = &r.evaluation {
        assert!(e.feasible, "{name}: evaluate rejects: {:?}", e.violations);
    }
    r
}

fn run(p: &Prepared, name: &str) -> solve::SolveResult<MoeSolution> {
    let opts = SolveOptions {
        time_limit_s: Some(600.0),
        ..Default::default()
    };
    run_with(p, name, &opts)
}

#[test]
fn lagrangian_bnb_agrees_with_brute_force() {
    let (mut optimal, mut infeasible, mut limited) = (0, 0, 0);
    for seed in 0..220 {
        let p = prep(&small_moe(seed, Objective::Latency));
        let s = solve::find_solver::<MoePlacement>(&p, "brute-force").unwrap();
        if s.supports(&p).is_err() {
            continue;
        }
        let b = run(&p, "brute-force");
        let x = run(&p, "lagrangian-bnb");
        match b.status.termination {
            Termination::Optimal => {
                assert_eq!(x.status.termination, Termination::Optimal, "seed {seed}");
                let (bo, xo) = (b.objective.unwrap(), x.objective.unwrap());
                assert!(close(bo, xo), "seed {seed}: brute force {bo}, search {xo}");
                assert!(
                    close(x.bound.unwrap(), xo),
                    "seed {seed}: bound {:?}",
                    x.bound
                );
                // node-limited searches: every per-layer bound (root included) stays below the
                // per-layer optimum, so their sum stays below the optimum
                // (both free-expert bounds: the per-expert subsets and, with `max_phi` 0, the
                // per-home slots; the latter also searched to the end)
                for (limit, max_phi) in [(1, 10), (3, 10), (10, 10), (1, 0), (10, 0), (u64::MAX, 0)]
                {
                    let stop = StopFlag::new();
                    let prm = latbnb::Params {
                        max_phi,
                        ..Default::default()
                    };
                    let rs: Vec<latbnb::LayerResult> = (0..p.layers)
                        .map(|l| latbnb::solve_layer(&p, l, None, prm, None, Some(limit), &stop))
                        .collect();
                    let sum: f64 = rs.iter().map(|r| r.bound).sum();
                    if limit == u64::MAX {
                        assert!(rs.iter().all(|r| r.complete));
                        let v: f64 = rs.iter().map(|r| r.value).sum();
                        assert!(
                            close(v, bo),
                            "seed {seed}: per-home search {v}, brute force {bo}"
                        );
                    }
                    assert!(
                        sum <= bo * (1.0 + 1e-9),
                        "seed {seed}: {limit}-node bound {sum} above the optimum {bo}"
                    );
                    limited += 1;
                }
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
    assert!(limited >= 600);
}

#[test]
fn node_limited_bound_is_valid() {
    // 1 layer × 7 experts on 6 servers under latency: a limit of 20 nodes stops the search early;
    // its bound must stay below the optimum a full run proves, its plan above it
    for seed in [3, 4] {
        let p = prep(&table_instance(1, 7, 6, seed));
        let full = run(&p, "lagrangian-bnb");
        assert_eq!(full.status.termination, Termination::Optimal);
        let opt = full.objective.unwrap();
        // the MILP's plan is never better than the proven optimum
        let m = run_with(
            &p,
            "milp",
            &SolveOptions {
                time_limit_s: Some(5.0),
                ..Default::default()
            },
        );
        assert!(m.objective.unwrap() >= opt * (1.0 - 1e-6));
        if m.status.termination == Termination::Optimal {
            assert!(close(m.objective.unwrap(), opt), "seed {seed}");
        }
        let stop = StopFlag::new();
        let r = latbnb::solve_layer(
            &p,
            0,
            None,
            latbnb::Params::default(),
            None,
            Some(20),
            &stop,
        );
        assert!(!r.complete);
        assert!(
            r.bound <= opt * (1.0 + 1e-9),
            "bound {} above {opt}",
            r.bound
        );
        let short = run_with(
            &p,
            "lagrangian-bnb",
            &SolveOptions {
                iteration_limit: Some(20),
                ..Default::default()
            },
        );
        assert_eq!(short.status.termination, Termination::IterationLimit);
        assert!(short.objective.unwrap() >= opt * (1.0 - 1e-9));
        assert!(short.bound.unwrap() <= opt * (1.0 + 1e-9));
    }
}
