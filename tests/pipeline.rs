//! Integration tests of the `pipeline` family: the PipeEdge regression instance, brute force against
//! every exact solver on random small instances, evaluate on every solver's output, monotonicity,
//! replicated pipelines, validation errors, and the heuristic gap on generated instances.

use edgeplan::catalog::Catalog;
use edgeplan::problems::pipeline::cost::Prepared;
use edgeplan::problems::pipeline::*;
use edgeplan::solve::{
    self, Family, NoObserver, SolutionStatus, SolveOptions, StopFlag, Termination,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn load(name: &str) -> serde_json::Value {
    let path = format!("{}/instances/pipeline/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn instance_of(doc: &serde_json::Value) -> PipelineInstance {
    let mut m = doc.as_object().unwrap().clone();
    for k in ["family", "schema_version", "description", "catalog"] {
        m.remove(k);
    }
    serde_json::from_value(serde_json::Value::Object(m)).unwrap()
}

fn prep(inst: &PipelineInstance) -> Prepared {
    Pipeline::prepare(inst, Catalog::builtin()).unwrap()
}

fn run(p: &Prepared, name: &str, opts: &SolveOptions) -> solve::SolveResult<PipelineSolution> {
    let s = solve::find_solver::<Pipeline>(p, name).unwrap();
    solve::run::<Pipeline>(p, s.as_ref(), opts, &mut NoObserver, StopFlag::new()).unwrap()
}

fn exact_opts() -> SolveOptions {
    SolveOptions {
        mip_rel_gap: Some(1e-9),
        time_limit_s: Some(60.0),
        ..Default::default()
    }
}

#[test]
fn pipeedge_vit_base_known_optimum() {
    let doc = load("pipeedge-vit-base.json");
    assert!(doc["description"].as_str().unwrap().contains("1.5476"));
    let p = prep(&instance_of(&doc));
    for name in ["exact", "milp"] {
        let r = run(&p, name, &exact_opts());
        assert_eq!(
            r.status.termination,
            Termination::Optimal,
            "{name}: {:?}",
            r.notes
        );
        let obj = r.objective.unwrap();
        assert!((obj - 1.5476).abs() < 1e-4, "{name}: bottleneck {obj}");
        assert!(r.evaluation.as_ref().unwrap().violations.is_empty());
    }
    // the local search also finds it on this easy instance
    let r = run(&p, "local-search", &SolveOptions::default());
    assert!(r.objective.unwrap() < 1.5476 + 1e-4);
}

#[test]
fn pipeedge_readme_schedule_scores_1_7521() {
    let doc = load("pipeedge-vit-base.json");
    let p = prep(&instance_of(&doc));
    // Minnowboards first, then RCCs, 6 layers each (the README's illustration).
    let names = [
        "minnowboard-0",
        "minnowboard-1",
        "minnowboard-2",
        "minnowboard-3",
        "rcc-0",
        "rcc-1",
        "rcc-2",
        "rcc-3",
    ];
    let sol = PipelineSolution {
        stages: names
            .iter()
            .enumerate()
            .map(|(i, n)| StageAssignment {
                node: n.to_string(),
                first_layer: 6 * i,
                last_layer: 6 * i + 5,
            })
            .collect(),
    };
    let e = Pipeline::evaluate(&p, &sol);
    assert!(e.feasible, "{:?}", e.violations);
    assert!((e.objective - 1.7521).abs() < 1e-4, "{}", e.objective);
    // the timeline for plotting is in the metrics
    let st = e.metrics["stages"].as_array().unwrap();
    assert_eq!(st.len(), 8);
    for key in [
        "start_s",
        "end_s",
        "compute_s",
        "comm_out_s",
        "comm_start_s",
        "comm_end_s",
        "memory_bytes",
    ] {
        assert!(st[3][key].is_number(), "{key}");
    }
}

// ------------------------------------------------------------------ random small instances

#[derive(Clone, Copy, Debug)]
struct Knobs {
    replicated: bool,
}

fn random_instance(seed: u64, k: Knobs) -> PipelineInstance {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let l = r.random_range(1..=if k.replicated { 4 } else { 6 });
    let n = r.random_range(1..=if k.replicated { 3 } else { 4 });
    let ntypes = r.random_range(1..=2usize);
    let training = !k.replicated && r.random_bool(0.4);
    let objective = if k.replicated {
        Objective::ReplicatedThroughput
    } else {
        match r.random_range(0..4) {
            0 => Objective::Bottleneck,
            1 => Objective::Latency,
            2 if training => Objective::TrainingIteration,
            2 => Objective::Bottleneck,
            _ => Objective::Energy,
        }
    };
    let mut u = |a: f64, b: f64| -> f64 { (r.random_range(a..b) * 64.0).round() / 64.0 };
    let weight: Vec<f64> = (0..l).map(|_| u(1.0, 10.0)).collect();
    let output: Vec<f64> = (0..l).map(|_| u(0.5, 5.0)).collect();
    let act: Vec<f64> = (0..l)
        .map(|_| if training { u(0.0, 3.0) } else { 0.0 })
        .collect();
    let kv: Vec<f64> = (0..l)
        .map(|_| if training { 0.0 } else { u(0.0, 2.0) })
        .collect();
    let input = u(0.0, 5.0);
    let types: Vec<NodeTypeTable> = (0..ntypes)
        .map(|t| NodeTypeTable {
            name: format!("type{t}"),
            memory_bytes: None,
            time_s: (0..l).map(|_| u(0.1, 2.0)).collect(),
            backward_time_s: if training {
                (0..l).map(|_| u(0.1, 3.0)).collect()
            } else {
                vec![]
            },
            energy_j: vec![],
        })
        .collect();
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xabcdef);
    let nodes: Vec<NodeSpec> = (0..n)
        .map(|i| NodeSpec {
            name: format!("n{i}"),
            device: format!("type{}", r.random_range(0..ntypes)),
            memory_bytes: Some((r.random_range(5.0..45.0f64) * 4.0).round() / 4.0),
            availability: if r.random_bool(0.1) {
                0.0
            } else if r.random_bool(0.3) {
                0.5
            } else {
                1.0
            },
            power_w: Some(r.random_range(1.0..10.0f64).round()),
            tx_power_w: r.random_range(0.0..2.0f64).round(),
        })
        .collect();
    let mut links = vec![];
    for a in 0..n {
        for b in 0..n {
            if a != b && r.random_bool(0.7) {
                links.push(LinkSpec {
                    from: format!("n{a}"),
                    to: format!("n{b}"),
                    bandwidth_bps: r.random_range(8.0..100.0f64).round(),
                    latency_s: (r.random_range(0.0..0.2f64) * 100.0).round() / 100.0,
                    bidirectional: false,
                });
            }
        }
    }
    let pick = |r: &mut ChaCha8Rng| {
        if r.random_bool(0.5) {
            Some(format!("n{}", r.random_range(0..n)))
        } else {
            None
        }
    };
    let source = pick(&mut r);
    let sink = pick(&mut r);
    let workload = if training {
        Some(WorkloadSpec::Training(TrainingSpec {
            micro_batch: 1,
            micro_batches: r.random_range(1..=4),
            seq_len: 8,
            recipe: RecipeSpec::Full,
            schedule: if r.random_bool(0.5) {
                Schedule::Gpipe
            } else {
                Schedule::OneFOneB
            },
        }))
    } else {
        Some(WorkloadSpec::Inference(InferenceSpec {
            batch: 1,
            prompt_len: 4,
            gen_len: 2,
        }))
    };
    let energy_budget_j = if !k.replicated && r.random_bool(0.25) {
        Some(r.random_range(2.0..60.0f64).round())
    } else {
        None
    };
    PipelineInstance {
        model: ModelSpec::Table(ProfileTable {
            layer_names: vec![],
            weight_bytes: weight,
            output_bytes: output,
            input_bytes: input,
            activation_bytes: act,
            kv_bytes: kv,
            input_buffers: if r.random_bool(0.3) { 2.0 } else { 0.0 },
            output_buffers: if r.random_bool(0.3) { 2.0 } else { 0.0 },
            node_types: types,
        }),
        workload,
        nodes,
        links,
        default_link: None,
        routing: if r.random_bool(0.5) {
            Routing::ShortestPath
        } else {
            Routing::Direct
        },
        source,
        sink,
        objective,
        energy_budget_j,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-9)
}

fn check_single(seed: u64) -> std::result::Result<(), TestCaseError> {
    let inst = random_instance(seed, Knobs { replicated: false });
    let p = prep(&inst);
    let brute = brute_force::best_single(&p).map(|x| x.1);
    let opts = exact_opts();
    for name in ["exact", "milp", "brute-force"] {
        let s = solve::find_solver::<Pipeline>(&p, name).unwrap();
        if s.supports(&p).is_err() {
            continue;
        }
        let r = run(&p, name, &opts);
        match brute {
            None => {
                prop_assert_eq!(
                    r.status.termination,
                    Termination::Infeasible,
                    "{} seed {} notes {:?}",
                    name,
                    seed,
                    r.notes
                );
                prop_assert!(r.objective.is_none());
            }
            Some(b) => {
                prop_assert_eq!(
                    r.status.solution,
                    SolutionStatus::Optimal,
                    "{} seed {}: {:?} {:?}",
                    name,
                    seed,
                    r.status,
                    r.notes
                );
                let o = r.objective.unwrap();
                prop_assert!(close(o, b), "{} seed {}: {} vs brute {}", name, seed, o, b);
                prop_assert!(r.evaluation.unwrap().violations.is_empty());
            }
        }
    }
    for name in [
        "order-dp",
        "speed-dp",
        "local-search",
        "petals-greedy",
        "equal-split",
    ] {
        let r = run(&p, name, &SolveOptions::default());
        if r.solution.is_some() {
            // whatever a heuristic returns, evaluate agrees with it and it is not better than the optimum
            let e = r.evaluation.as_ref().unwrap();
            prop_assert!(
                e.violations.iter().all(|v| !v.contains("disagrees")),
                "{} seed {}: {:?}",
                name,
                seed,
                e.violations
            );
            if let (Some(o), Some(b)) = (r.objective, brute) {
                prop_assert!(
                    o >= b - 1e-9 * b.abs().max(1.0),
                    "{} seed {} beat brute force",
                    name,
                    seed
                );
            }
            if name != "petals-greedy" && name != "equal-split" {
                prop_assert!(
                    e.feasible,
                    "{} seed {} returned an infeasible plan {:?}",
                    name,
                    seed,
                    e.violations
                );
            }
        } else {
            prop_assert!(r.objective.is_none());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn exact_solvers_agree_with_brute_force(seed in any::<u64>()) {
        check_single(seed)?;
    }

    #[test]
    fn more_memory_or_bandwidth_never_hurts(seed in any::<u64>(), mem_scale in 1.0f64..3.0, bw_scale in 1.0f64..3.0) {
        let inst = random_instance(seed, Knobs { replicated: false });
        let base = run(&prep(&inst), "exact", &exact_opts()).objective;
        let mut more = inst.clone();
        for nd in &mut more.nodes {
            nd.memory_bytes = nd.memory_bytes.map(|m| m * mem_scale);
        }
        for lk in &mut more.links {
            lk.bandwidth_bps *= bw_scale;
        }
        let better = run(&prep(&more), "exact", &exact_opts()).objective;
        if let Some(b) = base {
            let m = better.expect("more resources made the instance infeasible");
            // energy budgets interact with transmit time; bandwidth only shortens it, so still monotone
            prop_assert!(m <= b + 1e-9 * b.abs().max(1.0), "seed {}: {} -> {}", seed, b, m);
        }
    }

    #[test]
    fn replicated_milp_and_greedy_vs_brute_force(seed in any::<u64>()) {
        let inst = random_instance(seed, Knobs { replicated: true });
        let p = prep(&inst);
        let (_, best) = brute_force::best_replicated(&p).unwrap();
        let r = run(&p, "milp", &exact_opts());
        prop_assert_eq!(r.status.solution, SolutionStatus::Optimal, "seed {}: {:?}", seed, r.notes);
        prop_assert!(close(r.objective.unwrap(), best), "seed {}: milp {} vs brute {}", seed, r.objective.unwrap(), best);
        let g = run(&p, "greedy-replicas", &SolveOptions::default());
        prop_assert!(g.evaluation.as_ref().unwrap().feasible);
        prop_assert!(g.objective.unwrap() <= best * (1.0 + 1e-9) + 1e-12);
    }
}

#[test]
fn exact_matches_brute_force_on_fixed_seeds() {
    for seed in 0..200u64 {
        check_single(seed).unwrap();
    }
}

// ------------------------------------------------------------------ validation

fn err_of(doc: serde_json::Value) -> String {
    let f = edgeplan::problems::family("pipeline").unwrap();
    f.validate(&doc, Catalog::builtin())
        .unwrap_err()
        .to_string()
}

#[test]
fn validation_reports_json_paths() {
    let good = load("pipeedge-vit-base.json");
    let f = edgeplan::problems::family("pipeline").unwrap();
    f.validate(&good, Catalog::builtin()).unwrap();

    let mut d = good.clone();
    d["nodes"][2]["memory_bytes"] = serde_json::json!(-1.0);
    assert!(err_of(d).contains("$.nodes[2].memory_bytes"));

    let mut d = good.clone();
    d["nodes"][1]["device"] = serde_json::json!("Minnowboard-E3854");
    let e = err_of(d);
    assert!(
        e.contains("$.nodes[1].device")
            && e.contains("did you mean")
            && e.contains("Minnowboard-E3845"),
        "{e}"
    );

    let mut d = good.clone();
    d["nodes"] = serde_json::json!([]);
    assert!(err_of(d).contains("$.nodes"));

    let mut d = good.clone();
    d["source"] = serde_json::json!("rcc-9");
    let e = err_of(d);
    assert!(e.contains("$.source") && e.contains("rcc-"), "{e}");

    let mut d = good.clone();
    d["nodes"][3]["name"] = serde_json::json!("minnowboard-0");
    assert!(err_of(d).contains("duplicate"));

    let mut d = good.clone();
    d["links"] = serde_json::json!([{"from": "rcc-0", "to": "nowhere", "bandwidth_bps": 1e9}]);
    assert!(err_of(d).contains("$.links[0].to"));

    let mut d = good.clone();
    d["model"]["table"]["node_types"][0]["time_s"][3] = serde_json::json!(-0.5);
    assert!(err_of(d).contains("$.model.table.node_types[0].time_s[3]"));

    let mut d = good.clone();
    d["default_link"]["bandwidth_bps"] = serde_json::json!(0.0);
    assert!(err_of(d).contains("$.default_link.bandwidth_bps"));

    let mut d = good.clone();
    d["unknown_field"] = serde_json::json!(1);
    assert!(err_of(d).contains("unknown"));

    // NaN is not JSON; infinities cannot be written either: a huge literal overflows to an error
    let text =
        r#"{"family": "pipeline", "nodes": [], "model": {"table": {"weight_bytes": [NaN]}}}"#;
    assert!(edgeplan::problems::parse_document(text).is_err());
}

// ------------------------------------------------------------------ generated instances

#[test]
fn generated_instances_solve_and_report_gap() {
    let mut gaps = vec![];
    for seed in 0..6u64 {
        let inst = Pipeline::generate("medium", seed).unwrap();
        let p = prep(&inst);
        let e = run(&p, "exact", &exact_opts());
        assert_eq!(e.status.termination, Termination::Optimal);
        let h = run(&p, "local-search", &SolveOptions::default());
        let gap = h.objective.unwrap() / e.objective.unwrap() - 1.0;
        assert!(gap >= -1e-9);
        gaps.push(gap);
        for name in ["speed-dp", "petals-greedy", "equal-split"] {
            let r = run(&p, name, &SolveOptions::default());
            if let Some(o) = r.objective {
                assert!(o >= e.objective.unwrap() - 1e-9);
            }
        }
    }
    eprintln!("local-search gap on medium instances: {gaps:?}");
    assert!(gaps.iter().sum::<f64>() / gaps.len() as f64 <= 0.05);
}

#[test]
fn generator_sizes() {
    assert!(Pipeline::generate("small", 1).is_ok());
    let g = Pipeline::generate("12x5", 1).unwrap();
    assert_eq!(g.nodes.len(), 5);
    assert!(Pipeline::generate("huge", 1).is_err());
}

// ------------------------------------------------------------------ bundled catalog instances

#[test]
fn bundled_instances_solve() {
    let dir = format!("{}/instances/pipeline", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let doc = load(&name);
        let opts = SolveOptions {
            time_limit_s: Some(20.0),
            ..Default::default()
        };
        let r = edgeplan::problems::solve_document(&doc, "auto", &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let e = r
            .evaluation
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no solution, {:?} {:?}", r.status, r.notes));
        assert!(e.feasible, "{name}: {:?}", e.violations);
        eprintln!(
            "{name}: {} via {} objective {:.6} bound {:?} in {:.3}s, {} stages",
            r.status,
            r.solver,
            r.objective.unwrap(),
            r.bound,
            r.wall_time_s,
            e.metrics["num_stages"]
        );
    }
}
