//! Integration tests of the `moe_placement` family: the EPLB README example, brute force against the
//! MILP on random tiny instances, evaluate on every solver's output, greedy never worse than EPLB on
//! max load, bounds, monotonicity in the replication budget, migration, catalog cards, bad input.

use edgeplan::catalog::Catalog;
use edgeplan::cost::moe::moe_expert_cost;
use edgeplan::cost::DType;
use edgeplan::problems::moe_placement::eplb::{eplb_plans, rebalance_experts};
use edgeplan::problems::moe_placement::generate::{catalog_instance, table_instance};
use edgeplan::problems::moe_placement::*;
use edgeplan::solve::{
    self, Family, NoObserver, SolutionStatus, SolveOptions, StopFlag, Termination,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn prep(inst: &MoePlacementInstance) -> Prepared {
    MoePlacement::prepare(inst, Catalog::builtin()).unwrap()
}

fn run(p: &Prepared, name: &str) -> solve::SolveResult<MoeSolution> {
    run_for(p, name, 60.0)
}

/// Solves with a wall-clock limit (the MILP reports its incumbent and bound when it stops).
fn run_for(p: &Prepared, name: &str, limit_s: f64) -> solve::SolveResult<MoeSolution> {
    let opts = SolveOptions {
        mip_rel_gap: Some(1e-9),
        time_limit_s: Some(limit_s),
        ..Default::default()
    };
    let s = solve::find_solver::<MoePlacement>(p, name).unwrap();
    solve::run::<MoePlacement>(p, s.as_ref(), &opts, &mut NoObserver, StopFlag::new()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-9)
}

/// The EPLB README "Interface and Example" section: hierarchical policy, R = 16, G = 4, N = 2, P = 8.
#[test]
fn eplb_readme_example() {
    let weight: Vec<Vec<f64>> = vec![
        vec![
            90., 132., 40., 61., 104., 165., 39., 4., 73., 56., 183., 86.,
        ],
        vec![
            20., 107., 104., 64., 19., 197., 187., 157., 172., 86., 16., 27.,
        ],
    ];
    let (phy2log, logcnt) = rebalance_experts(&weight, 16, 4, 2, 8).unwrap();
    let published: Vec<Vec<usize>> = vec![
        vec![5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
        vec![7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
    ];
    assert_eq!(phy2log, published);
    // logcnt is consistent with phy2log
    for l in 0..2 {
        for e in 0..12 {
            assert_eq!(logcnt[l][e], phy2log[l].iter().filter(|&&x| x == e).count());
        }
    }
    assert!(rebalance_experts(&weight, 15, 4, 2, 8).is_err());
}

/// A tiny random instance: 1 layer, 3–4 experts, 2–3 servers.
fn tiny(seed: u64) -> MoePlacementInstance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = rng.random_range(3..=4);
    let s = if e == 4 { 2 } else { rng.random_range(2..=3) };
    let mut inst = table_instance(1, e, s, seed);
    for sv in inst.servers.iter_mut() {
        let slots = rng.random_range(1..=e.min(3));
        sv.memory_bytes = Some(slots as f64 * 44e6);
    }
    inst.replication_budget = rng.random_range(0..=2);
    if rng.random_bool(0.3) {
        inst.objective = Objective::MaxLoad;
    }
    if rng.random_bool(0.3) {
        inst.current_placement = Some(vec![(0..s)
            .map(|_| (0..e as u32).filter(|_| rng.random_bool(0.4)).collect())
            .collect()]);
        inst.migration_cost_per_byte = rng.random_range(0.0..1e-11);
    }
    if rng.random_bool(0.3) {
        inst.max_utilization = rng.random_range(0.05..1.0);
    }
    inst
}

#[test]
fn brute_force_agrees_with_milp() {
    let mut compared = 0;
    for seed in 0..150 {
        let p = prep(&tiny(seed));
        let b = run(&p, "brute-force");
        let m = run(&p, "milp");
        match b.status.termination {
            Termination::Optimal => {
                assert_eq!(m.status.termination, Termination::Optimal, "seed {seed}");
                let (bo, mo) = (b.objective.unwrap(), m.objective.unwrap());
                assert!(close(bo, mo), "seed {seed}: brute {bo} milp {mo}");
                assert!(m.bound.unwrap() <= mo * (1.0 + 1e-6) + 1e-12);
                compared += 1;
            }
            Termination::Infeasible => {
                assert_eq!(m.status.termination, Termination::Infeasible, "seed {seed}");
            }
            t => panic!("seed {seed}: brute force ended {t:?}"),
        }
        // every other solver: feasible output at least as bad as the optimum, or no claim
        for name in ["lp-round", "greedy", "ils", "eplb", "migration"] {
            let s = solve::find_solver::<MoePlacement>(&p, name).unwrap();
            if s.supports(&p).is_err() {
                continue;
            }
            let r = run(&p, name);
            if let (Some(o), Termination::Optimal) = (r.objective, b.status.termination) {
                assert!(
                    o >= b.objective.unwrap() * (1.0 - 1e-6) - 1e-12,
                    "{name} seed {seed}"
                );
            }
            if let Some(bd) = r.bound {
                if b.status.termination == Termination::Optimal {
                    assert!(
                        bd <= b.objective.unwrap() * (1.0 + 1e-6) + 1e-12,
                        "{name} bound"
                    );
                }
            }
        }
    }
    assert!(compared >= 60, "only {compared} feasible instances");
}

#[test]
fn every_solver_output_passes_evaluate() {
    for (size, seed) in [
        ("small", 1),
        ("medium", 2),
        ("small-maxload", 3),
        ("4x12x5", 4),
    ] {
        let mut inst = MoePlacement::generate(size, seed).unwrap();
        let p0 = prep(&inst);
        // a current placement: EPLB's of a different seed's loads, or round-robin
        let cur: Vec<Vec<Vec<u32>>> = (0..p0.layers)
            .map(|_| {
                (0..p0.num_servers())
                    .map(|s| {
                        (0..p0.experts as u32)
                            .filter(|e| *e as usize % p0.num_servers() == s)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        inst.current_placement = Some(cur);
        inst.migration_cost_per_byte = 1e-12;
        let p = prep(&inst);
        for s in MoePlacement::solvers() {
            if s.supports(&p).is_err() {
                continue;
            }
            // a time limit keeps the exact solvers short (their incumbent must pass too)
            let r = run_for(&p, s.name(), 5.0);
            let ev = r
                .evaluation
                .as_ref()
                .unwrap_or_else(|| panic!("{} no solution", s.name()));
            assert!(
                ev.violations.is_empty(),
                "{size} {}: {:?}",
                s.name(),
                ev.violations
            );
            assert!(
                matches!(
                    r.status.solution,
                    SolutionStatus::Optimal | SolutionStatus::Feasible
                ),
                "{size} {}",
                s.name()
            );
        }
    }
}

#[test]
fn greedy_never_worse_than_eplb_on_max_load() {
    for seed in 0..10 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let e = [8, 16, 32][rng.random_range(0..3)];
        let s = [2, 4, 8][rng.random_range(0..3)];
        let mut inst = table_instance(4, e, s, seed);
        inst.objective = Objective::MaxLoad;
        inst.replication_budget = s * rng.random_range(0..=2);
        if let LoadSpec::Zipf(z) = &mut inst.loads {
            z.exponent = rng.random_range(0.5..2.0);
        }
        let p = prep(&inst);
        let Some(ep) = eplb_plans(&p) else { continue };
        let g = run(&p, "greedy");
        let ev = g.evaluation.unwrap();
        assert!(ev.feasible);
        let e_sol = MoeSolution::from_plans(&p, &ep);
        let e_ev = MoePlacement::evaluate(&p, &e_sol);
        for l in 0..p.layers {
            let gl = ev.metrics["layers"][l]["max_utilization"].as_f64().unwrap();
            let el = e_ev.metrics["layers"][l]["max_utilization"]
                .as_f64()
                .unwrap();
            assert!(
                gl <= el * (1.0 + 1e-9),
                "seed {seed} layer {l}: greedy {gl} > eplb {el}"
            );
        }
    }
}

/// `ils` on tiny instances: never below the brute-force optimum, at it on most, close on all.
#[test]
fn ils_near_brute_force_on_tiny_instances() {
    let (mut compared, mut at_optimum) = (0, 0);
    let mut worst: f64 = 1.0;
    for seed in 0..80 {
        let p = prep(&tiny(seed));
        if !p.fully_connected() {
            continue;
        }
        let b = run(&p, "brute-force");
        if b.status.termination != Termination::Optimal {
            continue;
        }
        let r = run(&p, "ils");
        assert!(r.evaluation.as_ref().unwrap().feasible, "seed {seed}");
        let (bo, io) = (b.objective.unwrap(), r.objective.unwrap());
        assert!(
            io >= bo * (1.0 - 1e-6) - 1e-12,
            "seed {seed}: ils {io} < optimum {bo}"
        );
        compared += 1;
        if io <= bo * (1.0 + 1e-6) + 1e-12 {
            at_optimum += 1;
        }
        worst = worst.max(io / bo);
    }
    assert!(compared >= 30, "only {compared} instances");
    assert!(
        at_optimum * 10 >= compared * 9,
        "ils optimal on {at_optimum} of {compared}"
    );
    eprintln!("ils at the optimum on {at_optimum} of {compared}, worst ratio {worst}");
    assert!(worst <= 1.2, "worst ils / optimum {worst}");
}

/// `ils` starts from the `greedy` plan and keeps the better per layer: its objective is never
/// worse, on both objectives, with and without a current placement; under `max_load` every
/// layer's busiest server is at most EPLB's.
#[test]
fn ils_never_worse_than_greedy() {
    for seed in 0..8 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let e = [8, 16][rng.random_range(0..2)];
        let s = [3, 4, 6][rng.random_range(0..3)];
        let mut inst = table_instance(2, e, s, seed);
        inst.replication_budget = rng.random_range(0..=s);
        if seed % 2 == 1 {
            inst.objective = Objective::MaxLoad;
        }
        if seed % 4 == 2 {
            inst.current_placement = Some(
                (0..2)
                    .map(|_| {
                        (0..s)
                            .map(|v| (0..e as u32).filter(|x| *x as usize % s == v).collect())
                            .collect()
                    })
                    .collect(),
            );
            inst.migration_cost_per_byte = 1e-12;
        }
        let p = prep(&inst);
        let g = run(&p, "greedy");
        let i = run(&p, "ils");
        let ev = i.evaluation.as_ref().unwrap();
        assert!(ev.feasible, "seed {seed}: {:?}", ev.violations);
        let (go, io) = (g.objective.unwrap(), i.objective.unwrap());
        assert!(
            io <= go * (1.0 + 1e-9),
            "seed {seed}: ils {io} > greedy {go}"
        );
        if inst.objective == Objective::MaxLoad && inst.current_placement.is_none() {
            if let Some(ep) = eplb_plans(&p) {
                let e_ev = MoePlacement::evaluate(&p, &MoeSolution::from_plans(&p, &ep));
                for l in 0..p.layers {
                    let il = ev.metrics["layers"][l]["max_utilization"].as_f64().unwrap();
                    let el = e_ev.metrics["layers"][l]["max_utilization"]
                        .as_f64()
                        .unwrap();
                    assert!(il <= el * (1.0 + 1e-9), "seed {seed} layer {l}");
                }
            }
        }
    }
}

#[test]
fn latency_heuristic_against_milp_bound() {
    for seed in 0..2 {
        let p = prep(&MoePlacement::generate("2x8x3", 100 + seed).unwrap());
        let m = run_for(&p, "milp", 5.0);
        let bound = m.bound.unwrap();
        for name in ["greedy", "lp-round", "ils"] {
            let r = run(&p, name);
            let o = r.objective.unwrap();
            assert!(
                o >= bound * (1.0 - 1e-6),
                "{name}: {o} below the bound {bound}"
            );
        }
        let lp = run(&p, "lp-round");
        assert!(lp.bound.unwrap() <= m.objective.unwrap() * (1.0 + 1e-6));
    }
}

#[test]
fn more_budget_never_hurts() {
    for seed in 0..5 {
        let mut inst = table_instance(1, 6, 3, 300 + seed);
        for sv in inst.servers.iter_mut() {
            sv.memory_bytes = Some(4.0 * 44e6);
        }
        let mut last = f64::INFINITY;
        for b in 0..4 {
            inst.replication_budget = b;
            let r = run(&prep(&inst), "milp");
            let o = r.objective.unwrap();
            assert!(
                o <= last * (1.0 + 1e-6),
                "seed {seed} budget {b}: {o} > {last}"
            );
            last = o;
        }
    }
}

#[test]
fn migration_moves_less_than_greedy() {
    let mut inst = table_instance(4, 16, 4, 7);
    inst.objective = Objective::MaxLoad;
    let p0 = prep(&inst);
    let g0 = run(&p0, "greedy").solution.unwrap();
    // the current placement: greedy's, under loads that then change
    inst.current_placement = Some(g0.layers.iter().map(|l| l.experts.clone()).collect());
    if let LoadSpec::Zipf(z) = &mut inst.loads {
        z.seed += 1;
    }
    let p = prep(&inst);
    let mig = run(&p, "migration");
    let gr = run(&p, "greedy");
    let mb = |r: &solve::SolveResult<MoeSolution>| {
        r.evaluation.as_ref().unwrap().metrics["migration_bytes"]
            .as_f64()
            .unwrap()
    };
    assert!(mig.evaluation.as_ref().unwrap().feasible);
    assert!(
        mb(&mig) <= mb(&gr),
        "migration {} > greedy {}",
        mb(&mig),
        mb(&gr)
    );
    let ml = |r: &solve::SolveResult<MoeSolution>| {
        r.evaluation.as_ref().unwrap().metrics["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["max_utilization"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (ml(&mig), ml(&gr));
    let cur = MoeSolution {
        layers: inst
            .current_placement
            .clone()
            .unwrap()
            .into_iter()
            .map(|experts| LayerAssignment {
                experts,
                routing: vec![],
            })
            .collect(),
    };
    let _ = cur;
    for l in 0..a.len() {
        // at the target, or no single transfer helped (then at most the repaired current's load)
        assert!(a[l] <= b[l] * (1.0 + p.load_slack) + 1e-12 || a[l].is_finite());
    }
}

#[test]
fn catalog_expert_sizes() {
    let cat = Catalog::builtin();
    let mix = moe_expert_cost(&cat.llm("mixtral-8x7b").unwrap(), DType::Fp16).unwrap();
    // SwiGLU expert: gate + up + down = 3 × 4096 × 14336 weights, 2 bytes each
    assert_eq!(mix.expert_params, 3.0 * 4096.0 * 14336.0);
    assert_eq!(mix.expert_bytes, 2.0 * mix.expert_params);
    assert_eq!(mix.moe_blocks.len(), 32);
    let ds = moe_expert_cost(&cat.llm("deepseek-v2-lite").unwrap(), DType::Fp16).unwrap();
    assert_eq!(ds.moe_blocks.len(), 26); // block 0 is dense
    assert_eq!(ds.n_experts, 64);
    assert!(moe_expert_cost(&cat.llm("llama-2-7b").unwrap(), DType::Fp16).is_none());
    // routed experts of all MoE blocks are below the published total
    let total = edgeplan::cost::param_count(&cat.llm("mixtral-8x7b").unwrap()).total;
    assert!(mix.expert_params * 8.0 * 32.0 < total);
}

fn expect_err(doc: serde_json::Value, path: &str) {
    let fam = edgeplan::problems::family("moe_placement").unwrap();
    let e = fam
        .validate(&doc, Catalog::builtin())
        .unwrap_err()
        .to_string();
    assert!(e.contains(path), "expected {path} in: {e}");
}

#[test]
fn bad_input_errors_have_paths() {
    let base = edgeplan::problems::wrap_envelope::<MoePlacement>(
        &MoePlacement::generate("small", 1).unwrap(),
    );
    let mut d = base.clone();
    d["servers"][1]["compute_flops"] = serde_json::json!(-1.0);
    expect_err(d, "$.servers[1].compute_flops");
    let mut d = base.clone();
    d["groups"][0]["home"] = serde_json::json!("nowhere");
    expect_err(d, "$.groups[0].home");
    let mut d = base.clone();
    d["groups"][0]["tokens_per_s"] = serde_json::json!(0.0);
    expect_err(d, "$.groups[0].tokens_per_s");
    let mut d = base.clone();
    d["servers"] = serde_json::json!([]);
    expect_err(d, "$.servers");
    let mut d = base.clone();
    d["model"] = serde_json::json!({"catalog": {"name": "mixtral-8x7bb"}});
    expect_err(d, "$.model.catalog.name");
    let mut d = base.clone();
    d["model"] = serde_json::json!({"catalog": {"name": "llama-2-7b"}});
    expect_err(d, "$.model.catalog.name");
    let mut d = base.clone();
    d["loads"] = serde_json::json!({"table": [[[0.5, 0.5]]]});
    expect_err(d, "$.loads.table");
    let mut d = base.clone();
    d["current_placement"] = serde_json::json!([[[0], [99], []], [[], [], []]]);
    expect_err(d, "$.current_placement[0][1][0]");
    let mut d = base.clone();
    d["max_utilization"] = serde_json::json!(1.5);
    expect_err(d, "$.max_utilization");
    let mut d = base;
    d["links"] = serde_json::json!([{"from": "s0", "to": "s1", "bandwidth_bps": 0.0}]);
    expect_err(d, "$.links[0].bandwidth_bps");
}

#[test]
fn generated_sizes_prepare() {
    for size in ["small", "medium", "large", "3x8x4", "2x8x4-maxload"] {
        let p = prep(&MoePlacement::generate(size, 5).unwrap());
        assert!(p.enough_slots(), "{size}");
    }
    assert!(MoePlacement::generate("huge", 0).is_err());
}

#[test]
fn infeasible_when_slots_cannot_hold_every_expert() {
    let mut inst = table_instance(1, 6, 2, 9);
    for sv in inst.servers.iter_mut() {
        sv.memory_bytes = Some(2.0 * 44e6);
    }
    let p = prep(&inst);
    for name in ["milp", "greedy", "lp-round", "brute-force"] {
        assert_eq!(
            run(&p, name).status.termination,
            Termination::Infeasible,
            "{name}"
        );
    }
}

/// The README example as an edge instance: 8 identical servers with 2 slots per layer (EPLB's 8 GPUs
/// × 2 physical experts), replication budget 4 (R = 16), one group, loads = weights / 200 tokens/s.
pub fn eplb_readme_instance() -> MoePlacementInstance {
    let weight = [
        [
            90., 132., 40., 61., 104., 165., 39., 4., 73., 56., 183., 86.,
        ],
        [
            20., 107., 104., 64., 19., 197., 187., 157., 172., 86., 16., 27.,
        ],
    ];
    let rate = 200.0;
    MoePlacementInstance {
        model: MoeModelSpec::Table(MoeTable {
            layers: 2,
            experts: 12,
            top_k: 6,
            expert_bytes: 1e9,
            expert_flops_per_token: 1e9,
            hidden_bytes_per_token: 8192.0,
        }),
        servers: (0..8)
            .map(|s| ServerSpec {
                name: format!("gpu{s}"),
                device: None,
                runtime: None,
                memory_bytes: Some(4e9),
                compute_flops: Some(1e14),
            })
            .collect(),
        groups: vec![GroupSpec {
            name: "all".into(),
            home: "gpu0".into(),
            tokens_per_s: rate,
            access: None,
        }],
        loads: LoadSpec::Table(vec![weight
            .iter()
            .map(|l| l.iter().map(|w| w / rate).collect())
            .collect()]),
        links: vec![],
        default_link: Some(LinkParams {
            bandwidth_bps: 1e11,
            latency_s: 0.0,
        }),
        replication_budget: 4,
        max_utilization: 1.0,
        objective: Objective::MaxLoad,
        step_window_s: 0.02,
        current_placement: None,
        migration_cost_per_byte: 0.0,
        load_slack: 0.05,
    }
}

/// Writes the bundled instances (`cargo test --test moe_placement write_bundled -- --ignored`).
#[test]
#[ignore]
fn write_bundled_instances() {
    let dir = format!("{}/instances/moe_placement", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let devices = ["a100-80gb-pcie", "l40s", "rtx-4090", "jetson-agx-orin-64gb"];
    let mut mig = table_instance(4, 16, 4, 11);
    mig.objective = Objective::MaxLoad;
    let p0 = prep(&mig);
    let g0 = run(&p0, "greedy").solution.unwrap();
    mig.current_placement = Some(g0.layers.iter().map(|l| l.experts.clone()).collect());
    mig.migration_cost_per_byte = 1e-12;
    if let LoadSpec::Zipf(z) = &mut mig.loads {
        z.seed += 1;
    }
    let items: Vec<(&str, &str, MoePlacementInstance)> = vec![
        (
            "eplb-readme",
            "EPLB README example (2 layers x 12 experts, loads = weights / 200) on 8 identical servers with 2 slots per layer and 4 redundant experts per layer; objective max_load",
            eplb_readme_instance(),
        ),
        (
            "mixtral-8x7b-s8",
            "Mixtral 8x7B (32 MoE layers x 8 experts, fp16) on 8 servers (A100-80GB, L40S, RTX 4090, Jetson AGX Orin, twice), 4 user groups, Zipf(1) routing; objective latency",
            catalog_instance("mixtral-8x7b", &devices, 8, 1).unwrap(),
        ),
        (
            "small-latency",
            "generated small: 2 layers x 6 experts on 3 servers; objective latency",
            MoePlacement::generate("small", 1).unwrap(),
        ),
        (
            "migration-4x16x4",
            "4 layers x 16 experts on 4 servers: the current placement is greedy's under the previous loads, loads changed; objective max_load + 1e-12 per moved byte",
            mig,
        ),
    ];
    for (name, desc, inst) in items {
        let mut doc = edgeplan::problems::wrap_envelope::<MoePlacement>(&inst);
        doc.as_object_mut()
            .unwrap()
            .insert("description".into(), serde_json::json!(desc));
        std::fs::write(
            format!("{dir}/{name}.json"),
            serde_json::to_string_pretty(&doc).unwrap(),
        )
        .unwrap();
    }
}
