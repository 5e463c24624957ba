//! The combinatorial `branch-and-bound` of `moe_placement` (max_load objective) and the LP-free layer
//! bound against the
//! brute force on random small instances (identical servers, migration costs, utilisation caps,
//! infeasible ones), its time-limited bound, and its domain.

use edgeplan::catalog::Catalog;
use edgeplan::problems::moe_placement::generate::table_instance;
use edgeplan::problems::moe_placement::*;
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag, Termination};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn prep(inst: &MoePlacementInstance) -> Prepared {
    MoePlacement::prepare(inst, Catalog::builtin()).unwrap()
}

fn run(p: &Prepared, name: &str, limit_s: f64) -> solve::SolveResult<MoeSolution> {
    let opts = SolveOptions {
        time_limit_s: Some(limit_s),
        ..Default::default()
    };
    let s = solve::find_solver::<MoePlacement>(p, name).unwrap();
    solve::run::<MoePlacement>(p, s.as_ref(), &opts, &mut NoObserver, StopFlag::new()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-12)
}

/// 1–2 layers, 3–5 experts, 2–4 servers (small enough for the brute force), max_load; some servers
/// made identical, sometimes a current placement with migration costs or a utilisation cap.
fn small(seed: u64) -> MoePlacementInstance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = rng.random_range(3..=5);
    let s = match e {
        3 => rng.random_range(2..=4),
        4 => rng.random_range(2..=3),
        _ => 2,
    };
    let layers = rng.random_range(1..=2);
    let mut inst = table_instance(layers, e, s, seed);
    inst.objective = Objective::MaxLoad;
    let max_slots = if e == 5 { 3 } else { e.min(3) };
    for sv in inst.servers.iter_mut() {
        let slots = rng.random_range(1..=max_slots);
        sv.memory_bytes = Some(slots as f64 * layers as f64 * 44e6);
    }
    if rng.random_bool(0.4) {
        // identical servers: the symmetry rule must not cut the optimum
        let (f, m) = (inst.servers[0].compute_flops, inst.servers[0].memory_bytes);
        for sv in inst.servers.iter_mut().skip(1) {
            if rng.random_bool(0.7) {
                sv.compute_flops = f;
                sv.memory_bytes = m;
            }
        }
    }
    inst.replication_budget = rng.random_range(0..=3);
    if rng.random_bool(0.25) {
        inst.current_placement = Some(
            (0..layers)
                .map(|_| {
                    (0..s)
                        .map(|_| (0..e as u32).filter(|_| rng.random_bool(0.4)).collect())
                        .collect()
                })
                .collect(),
        );
        inst.migration_cost_per_byte = rng.random_range(0.0..2e-11);
    }
    if rng.random_bool(0.25) {
        inst.max_utilization = rng.random_range(0.05..1.0);
    }
    inst
}

#[test]
fn branch_and_bound_agrees_with_brute_force() {
    let (mut optimal, mut infeasible) = (0, 0);
    for seed in 0..200 {
        let p = prep(&small(seed));
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
        let mut inst = small(1000 + seed);
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
