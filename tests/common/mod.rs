//! Helpers shared by the integration tests (each test file includes this module with `mod common;`).
#![allow(dead_code)]

use edgeplan::catalog::Catalog;
use edgeplan::problems::moe_placement::generate::table_instance;
use edgeplan::problems::moe_placement::{MoePlacement, MoePlacementInstance, Objective, Prepared};
use edgeplan::solve::Family;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The prepared `moe_placement` instance (builtin catalog).
pub fn prep_moe(inst: &MoePlacementInstance) -> Prepared {
    MoePlacement::prepare(inst, Catalog::builtin()).unwrap()
}

/// Equal to a relative 1e-6.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-12)
}

/// A random small `moe_placement` instance: 1–2 layers, 3–5 experts, 2–4 servers (small enough
/// for the brute force) under `objective`; some servers made identical (under `latency` sometimes
/// with all links equal, so that the symmetry rule applies), sometimes a current placement with
/// migration costs or a utilisation cap.
pub fn small_moe(seed: u64, objective: Objective) -> MoePlacementInstance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = rng.random_range(3..=5);
    let s = match e {
        3 => rng.random_range(2..=4),
        4 => rng.random_range(2..=3),
        _ => 2,
    };
    let layers = rng.random_range(1..=2);
    let mut inst = table_instance(layers, e, s, seed);
    inst.objective = objective;
    let max_slots = if e == 5 { 3 } else { e.min(3) };
    for sv in inst.servers.iter_mut() {
        let slots = rng.random_range(1..=max_slots);
        sv.memory_bytes = Some(slots as f64 * layers as f64 * 44e6);
    }
    if rng.random_bool(0.4) {
        // identical servers on default links: the symmetry rule must not cut the optimum
        let (f, m) = (inst.servers[0].compute_flops, inst.servers[0].memory_bytes);
        for sv in inst.servers.iter_mut().skip(1) {
            if rng.random_bool(0.7) {
                sv.compute_flops = f;
                sv.memory_bytes = m;
            }
        }
        if objective == Objective::Latency && rng.random_bool(0.5) {
            inst.links.clear();
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
