//! Integration tests of the `split_finetune` family: exact against brute force on hundreds of random
//! small instances (fixed rates: exact equality; shared bandwidth: within the grid's tolerance), every
//! solver's output through `evaluate`, monotonicity in bandwidth and memory, the fully frozen client
//! uploading its smashed data once, the worked example (LLaMA-2-7B, 8 phones, RTX 3090), generated
//! and bundled instances, and validation errors with JSON paths.

use edgeplan::catalog::Catalog;
use edgeplan::problems::split_finetune::*;
use edgeplan::solve::{
    self, Family, NoObserver, SolutionStatus, SolveOptions, StopFlag, Termination,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type R = solve::SolveResult<SplitFinetuneSolution>;

fn load(name: &str) -> SplitFinetuneInstance {
    let path = format!(
        "{}/instances/split_finetune/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut m = doc.as_object().unwrap().clone();
    for k in ["family", "schema_version", "description", "catalog"] {
        m.remove(k);
    }
    serde_json::from_value(serde_json::Value::Object(m)).unwrap()
}

fn prep(inst: &SplitFinetuneInstance) -> Prepared {
    SplitFinetune::prepare(inst, Catalog::builtin()).unwrap()
}

fn run(p: &Prepared, name: &str) -> R {
    let s = solve::find_solver::<SplitFinetune>(p, name).unwrap();
    solve::run::<SplitFinetune>(
        p,
        s.as_ref(),
        &SolveOptions::default(),
        &mut NoObserver,
        StopFlag::new(),
    )
    .unwrap()
}

fn metrics(p: &Prepared, sol: &SplitFinetuneSolution) -> serde_json::Value {
    let e = SplitFinetune::evaluate(p, sol);
    assert!(e.feasible, "{:?}", e.violations);
    e.metrics
}

const DEVICES: &[&str] = &[
    "snapdragon-8-gen-3",
    "apple-a17-pro",
    "jetson-orin-nano-8gb",
];

/// A random small instance on GPT-2 small (12 blocks).
fn random_instance(rng: &mut ChaCha8Rng, shared: bool) -> SplitFinetuneInstance {
    let k = if shared {
        rng.random_range(1..=2)
    } else {
        rng.random_range(1..=4)
    };
    let clients = (0..k)
        .map(|i| {
            let up = rng.random_range(1e6..5e8);
            ClientSpec {
                name: format!("c{i}"),
                device: DEVICES[rng.random_range(0..DEVICES.len())].into(),
                memory_bytes: rng.random_bool(0.3).then(|| rng.random_range(1e8..6e8)),
                energy_budget_j: rng.random_bool(0.2).then(|| rng.random_range(0.5..20.0)),
                batches_per_round: rng.random_range(1..=3),
                uplink_bps: (!shared).then_some(up),
                downlink_bps: (!shared).then(|| up * rng.random_range(0.5..4.0)),
                channel_gain: shared.then(|| generate::path_gain(rng.random_range(30.0..600.0))),
                downlink_channel_gain: None,
                tx_power_w: rng.random_range(0.1..0.5),
            }
        })
        .collect();
    let nlev = |rng: &mut ChaCha8Rng| -> Vec<f64> {
        let mut v: Vec<f64> = (0..rng.random_range(1..=3))
            .map(|_| (rng.random_range(0..=4) as f64) / 4.0)
            .collect();
        if rng.random_bool(0.5) {
            v.push(1.0);
        }
        v
    };
    let mut cuts: Vec<usize> = (0..rng.random_range(1..=4))
        .map(|_| rng.random_range(0..12))
        .collect();
    cuts.sort();
    cuts.dedup();
    let protocol = match rng.random_range(0..3) {
        0 => Protocol::Vanilla,
        1 => Protocol::Sfl,
        _ => Protocol::UShaped,
    };
    let objective = match rng.random_range(0..3) {
        0 => Objective::TotalTime,
        1 => Objective::RoundLatency,
        _ => Objective::Energy { deadline_s: 1.0 }, // set from the time optimum below
    };
    let convergence = if rng.random_bool(0.5) {
        ConvergenceSpec::Power {
            r_min: rng.random_range(1.0..50.0),
            a: rng.random_range(0.0..100.0),
            b: rng.random_range(0.5..3.0),
        }
    } else {
        ConvergenceSpec::Table {
            trainable_fraction: vec![0.0, 0.5, 1.0],
            rounds: vec![80.0, 30.0, 20.0],
        }
    };
    SplitFinetuneInstance {
        model: "gpt2-small".into(),
        dtype: None,
        runtime: None,
        lora: LoraSpec {
            rank: rng.random_range(1..=16),
            targets: None,
        },
        seq_len: rng.random_range(16..256),
        micro_batch: 1,
        clients,
        server: ServerSpec {
            device: "rtx-3090".into(),
            memory_bytes: rng.random_bool(0.2).then(|| rng.random_range(2e8..1e9)),
        },
        bandwidth_hz: shared.then(|| rng.random_range(1e6..5e7)),
        noise_psd_w_per_hz: 4e-21,
        server_tx_power_w: 1.0,
        protocol,
        cuts: Some(cuts),
        client_freeze_levels: Some(nlev(rng)),
        server_freeze_levels: Some(nlev(rng)),
        convergence,
        convergence_client_weight: rng.random_range(0.0..1.0),
        min_trainable_fraction: rng.random_bool(0.3).then(|| rng.random_range(0.0..0.8)),
        objective,
        baseline_cut: None,
        decisions: Decisions::Common,
    }
}

/// Sets an energy instance's deadline to a random multiple (0.9..2) of its total-time optimum.
fn set_deadline(rng: &mut ChaCha8Rng, inst: &mut SplitFinetuneInstance) {
    if let Objective::Energy { .. } = inst.objective {
        let mut t = inst.clone();
        t.objective = Objective::TotalTime;
        t.decisions = Decisions::Common;
        let r = run(&prep(&t), "exact");
        let base = r.objective.unwrap_or(1.0);
        inst.objective = Objective::Energy {
            deadline_s: base * rng.random_range(0.9..2.0),
        };
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}

fn check_all_solvers_evaluate(p: &Prepared) {
    for s in SplitFinetune::solvers() {
        if s.supports(p).is_err() {
            continue;
        }
        let r = run(p, s.name());
        assert_ne!(
            r.status.solution,
            SolutionStatus::Infeasible,
            "{}: {:?}",
            s.name(),
            r.notes
        );
        assert_ne!(
            r.status.termination,
            Termination::Error,
            "{}: {:?}",
            s.name(),
            r.notes
        );
        if let Some(e) = &r.evaluation {
            assert!(e.violations.is_empty(), "{}: {:?}", s.name(), e.violations);
        }
    }
}

#[test]
fn exact_matches_brute_force_fixed_rates() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut feasible = 0;
    for i in 0..300 {
        let mut inst = random_instance(&mut rng, false);
        set_deadline(&mut rng, &mut inst);
        let p = prep(&inst);
        let e = run(&p, "exact");
        let b = run(&p, "brute-force");
        match (e.objective, b.objective) {
            (Some(x), Some(y)) => {
                feasible += 1;
                assert_eq!(e.status.termination, Termination::Optimal);
                assert_eq!(b.status.termination, Termination::Optimal);
                assert!(rel(x, y) < 1e-9, "instance {i}: exact {x} brute {y}");
            }
            (None, None) => {
                assert_eq!(
                    e.status.termination,
                    Termination::Infeasible,
                    "instance {i}"
                );
                assert_eq!(
                    b.status.termination,
                    Termination::Infeasible,
                    "instance {i}"
                );
            }
            (x, y) => panic!("instance {i}: exact {x:?} brute {y:?}"),
        }
        if i % 10 == 0 {
            check_all_solvers_evaluate(&p);
        }
    }
    assert!(feasible > 100, "only {feasible} feasible instances");
}

#[test]
fn exact_matches_brute_force_shared_bandwidth() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut compared = 0;
    for i in 0..60 {
        let mut inst = random_instance(&mut rng, true);
        set_deadline(&mut rng, &mut inst);
        let p = prep(&inst);
        let e = run(&p, "exact");
        let b = run(&p, "brute-force");
        if let Some(y) = b.objective {
            // the grid's split is feasible, so the exact optimum is at least as good
            let x = e
                .objective
                .unwrap_or_else(|| panic!("instance {i}: exact found none, grid {y}"));
            assert!(x <= y * (1.0 + 1e-9), "instance {i}: exact {x} > grid {y}");
            // and the grid (1/4000, 1/200 of B) comes within 1 %
            assert!(y <= x * 1.01, "instance {i}: grid {y} vs exact {x}");
            compared += 1;
        }
        if e.objective.is_none() {
            assert!(b.objective.is_none());
        }
        if i % 6 == 0 {
            check_all_solvers_evaluate(&p);
        }
    }
    assert!(compared > 20, "only {compared} compared");
}

#[test]
fn more_bandwidth_or_memory_never_worse() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for i in 0..60 {
        let shared = i % 2 == 0;
        let mut inst = random_instance(&mut rng, shared);
        set_deadline(&mut rng, &mut inst);
        let base = run(&prep(&inst), "exact").objective;
        let mut more_bw = inst.clone();
        if let Some(b) = &mut more_bw.bandwidth_hz {
            *b *= 2.0;
        }
        for c in &mut more_bw.clients {
            c.uplink_bps = c.uplink_bps.map(|x| x * 2.0);
            c.downlink_bps = c.downlink_bps.map(|x| x * 2.0);
            c.channel_gain = c.channel_gain.map(|x| x * 2.0);
        }
        let mut more_mem = inst.clone();
        for c in &mut more_mem.clients {
            c.memory_bytes = c.memory_bytes.map(|x| x * 3.0);
        }
        more_mem.server.memory_bytes = more_mem.server.memory_bytes.map(|x| x * 3.0);
        for (what, v) in [("bandwidth", &more_bw), ("memory", &more_mem)] {
            let o = run(&prep(v), "exact").objective;
            if let Some(b) = base {
                let o = o.unwrap_or_else(|| panic!("instance {i}: more {what} made it infeasible"));
                assert!(
                    o <= b * (1.0 + 1e-9),
                    "instance {i}: more {what}: {o} > {b}"
                );
            }
        }
    }
}

#[test]
fn fully_frozen_client_uploads_smashed_data_once() {
    let p = prep(&load("llama2-7b-8phones.json"));
    let frozen = SplitFinetuneSolution {
        cut: 4,
        client_freeze: 1.0,
        server_freeze: 0.0,
        bandwidth_hz: vec![],
        later_bandwidth_hz: None,
        per_client: None,
    };
    let m = metrics(&p, &frozen);
    let rounds = m["rounds"].as_f64().unwrap();
    assert!(rounds > 1.0);
    assert_eq!(m["client_trains"], false);
    for c in m["clients"].as_array().unwrap() {
        assert_eq!(c["smashed_upload_rounds"].as_f64().unwrap(), 1.0);
        assert_eq!(c["later_round_s"].as_f64().unwrap(), 0.0);
        assert_eq!(c["downlink_bytes_total"].as_f64().unwrap(), 0.0);
    }
    // total time = first round + (R - 1) later rounds, the later ones server-only
    let t = m["total_time_s"].as_f64().unwrap();
    let t1 = m["first_round_s"].as_f64().unwrap();
    let t2 = m["later_round_s"].as_f64().unwrap();
    assert!(rel(t, t1 + (rounds - 1.0) * t2) < 1e-12);
    assert!(rel(t2, m["server_round_s"].as_f64().unwrap()) < 1e-12);
    // a trainable client uploads every round
    let trained = SplitFinetuneSolution {
        client_freeze: 0.0,
        ..frozen
    };
    let m = metrics(&p, &trained);
    let rounds = m["rounds"].as_f64().unwrap();
    for c in m["clients"].as_array().unwrap() {
        assert!(rel(c["smashed_upload_rounds"].as_f64().unwrap(), rounds) < 1e-12);
    }
}

#[test]
fn worked_example_cut_and_freezing_move_with_uplink() {
    let base = load("llama2-7b-8phones.json");
    let at = |bps: f64| {
        let mut inst = base.clone();
        for c in &mut inst.clients {
            c.uplink_bps = Some(bps);
        }
        let p = prep(&inst);
        let r = run(&p, "exact");
        assert_eq!(r.status.termination, Termination::Optimal);
        let m = r.evaluation.unwrap().metrics;
        (r.solution.unwrap(), m)
    };
    let (slow, ms) = at(10e6);
    let (fast, mf) = at(1e9);
    // At 10 Mbit/s a smashed micro-batch (512 x 4096 bf16 = 33.6 Mbit) takes 3.4 s each way per
    // micro-batch, more than the phones' compute: freezing the client (one upload in total) wins. At
    // 1 Gbit/s the exchange is cheap and training the client side saves rounds.
    assert_eq!(ms["client_trains"], false, "{slow:?}");
    assert_eq!(mf["client_trains"], true, "{fast:?}");
    assert!(mf["rounds"].as_f64().unwrap() < ms["rounds"].as_f64().unwrap());
    assert_ne!(slow, fast);
}

#[test]
fn bundled_instances_solve_to_optimal() {
    let dir = format!("{}/instances/split_finetune", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let p = prep(&load(&name));
        let r = run(&p, "auto");
        assert_eq!(r.status.termination, Termination::Optimal, "{name}");
        assert_eq!(r.status.solution, SolutionStatus::Optimal, "{name}");
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn generated_instances_solve_and_pass_evaluate() {
    for size in ["small", "medium"] {
        for seed in 0..2 {
            let p = prep(&SplitFinetune::generate(size, seed).unwrap());
            check_all_solvers_evaluate(&p);
            let e = run(&p, "exact");
            assert_eq!(e.status.termination, Termination::Optimal, "{size}/{seed}");
            // heuristics and baselines are never better than the optimum
            for h in [
                "coordinate-descent",
                "splitlora",
                "freeze-client",
                "equal-bandwidth",
            ] {
                if let (Some(o), Some(x)) = (run(&p, h).objective, e.objective) {
                    assert!(o >= x * (1.0 - 1e-9), "{size}/{seed} {h}: {o} < {x}");
                }
            }
        }
    }
    let g = SplitFinetune::generate("large", 1).unwrap();
    assert_eq!(g.clients.len(), 64);
    assert!(SplitFinetune::generate("huge", 1).is_err());
}

#[test]
fn convergence_is_monotone() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let inst = random_instance(&mut rng, false);
    let p = prep(&inst);
    let mut last = f64::INFINITY;
    for i in 0..=100 {
        let r = p.convergence.rounds(i as f64 / 100.0);
        assert!(r <= last + 1e-12 && r >= 1.0);
        last = r;
    }
}

#[test]
fn bad_input_errors_carry_paths() {
    let base = load("llama2-7b-8phones.json");
    type Mutate = Box<dyn Fn(&mut SplitFinetuneInstance)>;
    let cases: Vec<(Mutate, &str)> = vec![
        (
            Box::new(|i| i.clients[2].uplink_bps = Some(f64::NAN)),
            "$.clients[2].uplink_bps",
        ),
        (
            Box::new(|i| i.clients[1].memory_bytes = Some(-1.0)),
            "$.clients[1].memory_bytes",
        ),
        (
            Box::new(|i| i.clients[0].device = "iphone-99".into()),
            "$.clients[0].device",
        ),
        (Box::new(|i| i.clients.clear()), "$.clients"),
        (Box::new(|i| i.model = "llama-9".into()), "$.model"),
        (
            Box::new(|i| i.server.device = "nope".into()),
            "$.server.device",
        ),
        (
            Box::new(|i| i.client_freeze_levels = Some(vec![0.0, 1.5])),
            "$.client_freeze_levels[1]",
        ),
        (Box::new(|i| i.cuts = Some(vec![40])), "$.cuts[0]"),
        (Box::new(|i| i.lora.rank = 0), "$.lora.rank"),
        (Box::new(|i| i.seq_len = 0), "$.seq_len"),
        (
            Box::new(|i| {
                i.convergence = ConvergenceSpec::Table {
                    trainable_fraction: vec![0.0, 1.0],
                    rounds: vec![10.0, 20.0],
                }
            }),
            "$.convergence.table.rounds[1]",
        ),
        (
            Box::new(|i| {
                i.convergence = ConvergenceSpec::Power {
                    r_min: 0.5,
                    a: 1.0,
                    b: 1.0,
                }
            }),
            "$.convergence.power.r_min",
        ),
        (
            Box::new(|i| i.bandwidth_hz = Some(1e7)),
            "$.clients[0].channel_gain",
        ),
        (
            Box::new(|i| i.bandwidth_hz = Some(f64::INFINITY)),
            "$.bandwidth_hz",
        ),
        (
            Box::new(|i| i.objective = Objective::Energy { deadline_s: -3.0 }),
            "$.objective.energy.deadline_s",
        ),
        (
            Box::new(|i| i.convergence_client_weight = 2.0),
            "$.convergence_client_weight",
        ),
        (
            Box::new(|i| i.clients[3].name = "sd8g3-0".into()),
            "$.clients[3].name",
        ),
    ];
    for (f, path) in cases {
        let mut inst = base.clone();
        f(&mut inst);
        let err = SplitFinetune::prepare(&inst, Catalog::builtin()).unwrap_err();
        assert_eq!(err.json_path(), Some(path), "{err}");
    }
    // a solution with an unknown level or an over-allocated bandwidth is rejected by evaluate
    let p = prep(&base);
    let e = SplitFinetune::evaluate(
        &p,
        &SplitFinetuneSolution {
            cut: 4,
            client_freeze: 0.33,
            server_freeze: 0.0,
            bandwidth_hz: vec![],
            later_bandwidth_hz: None,
            per_client: None,
        },
    );
    assert!(!e.feasible);
}

#[test]
fn shared_bandwidth_allocation_is_checked() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut inst = random_instance(&mut rng, true);
    inst.protocol = Protocol::Sfl;
    inst.objective = Objective::TotalTime;
    inst.min_trainable_fraction = None;
    for c in &mut inst.clients {
        c.memory_bytes = None;
        c.energy_budget_j = None;
    }
    inst.server.memory_bytes = None;
    let p = prep(&inst);
    let r = run(&p, "exact");
    let mut sol = r.solution.unwrap();
    let total: f64 = sol.bandwidth_hz.iter().sum();
    assert!(total <= inst.bandwidth_hz.unwrap() * (1.0 + 1e-9));
    sol.bandwidth_hz[0] += inst.bandwidth_hz.unwrap();
    assert!(!SplitFinetune::evaluate(&p, &sol).feasible);
    sol.bandwidth_hz.push(1.0);
    assert!(!SplitFinetune::evaluate(&p, &sol).feasible);
}

// ---------------------------------------------------------------------------------------------
// Per-client decisions

fn run_with(p: &Prepared, name: &str, opts: &SolveOptions) -> R {
    let s = solve::find_solver::<SplitFinetune>(p, name).unwrap();
    solve::run::<SplitFinetune>(p, s.as_ref(), opts, &mut NoObserver, StopFlag::new()).unwrap()
}

fn tight() -> SolveOptions {
    SolveOptions {
        mip_rel_gap: Some(1e-9),
        ..SolveOptions::default()
    }
}

/// A random small per-client instance: heterogeneous clients, few cuts and levels.
fn random_per_client(
    rng: &mut ChaCha8Rng,
    shared: bool,
    objective: Objective,
) -> SplitFinetuneInstance {
    let mut inst = random_instance(rng, shared);
    inst.decisions = Decisions::PerClient;
    inst.objective = objective;
    let ncuts = if shared { 2 } else { 3 };
    let mut cuts: Vec<usize> = (0..rng.random_range(1..=ncuts))
        .map(|_| rng.random_range(0..12))
        .collect();
    cuts.sort();
    cuts.dedup();
    inst.cuts = Some(cuts);
    let lv = |rng: &mut ChaCha8Rng, n: usize| -> Vec<f64> {
        let mut v: Vec<f64> = (0..rng.random_range(1..=n))
            .map(|_| (rng.random_range(0..=4) as f64) / 4.0)
            .collect();
        v.push(1.0);
        v
    };
    inst.client_freeze_levels = Some(lv(rng, if shared { 1 } else { 2 }));
    inst.server_freeze_levels = Some(lv(rng, 1));
    if shared {
        inst.clients.truncate(2);
    } else {
        inst.clients.truncate(3);
    }
    inst
}

fn common_of(inst: &SplitFinetuneInstance) -> SplitFinetuneInstance {
    let mut c = inst.clone();
    c.decisions = Decisions::Common;
    c
}

#[test]
fn milp_matches_per_client_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let (mut compared, mut strictly_better) = (0, 0);
    for i in 0..150 {
        let shared = i % 5 == 4;
        let inst = random_per_client(&mut rng, shared, Objective::RoundLatency);
        let p = prep(&inst);
        let m = run_with(&p, "milp", &tight());
        let b = run(&p, "per-client-brute-force");
        let c = run(&prep(&common_of(&inst)), "exact");
        match (m.objective, b.objective) {
            (Some(x), Some(y)) => {
                compared += 1;
                assert_eq!(
                    m.status.termination,
                    Termination::Optimal,
                    "{i}: {:?}",
                    m.notes
                );
                assert_eq!(b.status.termination, Termination::Optimal, "{i}");
                let tol = if shared { 1e-6 } else { 1e-9 };
                assert!(rel(x, y) < tol, "instance {i}: milp {x} brute {y}");
                // per-client decisions relax the common ones
                if let Some(z) = c.objective {
                    assert!(
                        y <= z * (1.0 + 1e-9),
                        "instance {i}: per-client {y} > common {z}"
                    );
                    if y < z * (1.0 - 1e-6) {
                        strictly_better += 1;
                    }
                }
                // the descent lies between them
                let d = run(&p, "per-client-descent");
                if let Some(d) = d.objective {
                    assert!(d >= y * (1.0 - 1e-9), "instance {i}: descent {d} < {y}");
                    if let Some(z) = c.objective {
                        assert!(d <= z * (1.0 + 1e-9), "instance {i}: descent {d} > {z}");
                    }
                }
            }
            (None, None) => {
                assert_eq!(m.status.termination, Termination::Infeasible, "{i}");
                assert_eq!(b.status.termination, Termination::Infeasible, "{i}");
                assert!(
                    c.objective.is_none(),
                    "{i}: common feasible, per-client not"
                );
            }
            (x, y) => panic!("instance {i}: milp {x:?} brute {y:?} ({:?})", m.notes),
        }
        if i % 15 == 0 {
            check_all_solvers_evaluate(&p);
        }
    }
    assert!(compared >= 100, "only {compared} compared");
    assert!(strictly_better > 0, "per-client never beat common");
}

#[test]
fn per_client_brute_force_relaxes_common_for_every_objective() {
    let mut rng = ChaCha8Rng::seed_from_u64(43);
    let mut compared = 0;
    for i in 0..40 {
        let shared = i % 4 == 3;
        let obj = if i % 2 == 0 {
            Objective::TotalTime
        } else {
            Objective::Energy { deadline_s: 1.0 }
        };
        let mut inst = random_per_client(&mut rng, shared, obj);
        set_deadline(&mut rng, &mut inst);
        let p = prep(&inst);
        let b = run(&p, "per-client-brute-force");
        let c = run(&prep(&common_of(&inst)), "exact");
        let d = run(&p, "per-client-descent");
        if let Some(z) = c.objective {
            let y = b.objective.expect("common feasible => per-client feasible");
            assert!(y <= z * (1.0 + 1e-9), "instance {i}: {y} > {z}");
            let dd = d.objective.expect("descent starts from the common optimum");
            assert!(
                dd <= z * (1.0 + 1e-9) && dd >= y * (1.0 - 1e-9),
                "{i}: {dd}"
            );
            compared += 1;
        }
        if i % 10 == 0 {
            check_all_solvers_evaluate(&p);
        }
    }
    assert!(compared > 15, "only {compared}");
}

#[test]
fn per_client_more_bandwidth_or_memory_never_worse() {
    let mut rng = ChaCha8Rng::seed_from_u64(47);
    for i in 0..40 {
        let inst = random_per_client(&mut rng, i % 4 == 3, Objective::RoundLatency);
        let base = run_with(&prep(&inst), "milp", &tight()).objective;
        let mut more = inst.clone();
        if let Some(b) = &mut more.bandwidth_hz {
            *b *= 2.0;
        }
        for c in &mut more.clients {
            c.uplink_bps = c.uplink_bps.map(|x| x * 2.0);
            c.memory_bytes = c.memory_bytes.map(|x| x * 3.0);
        }
        more.server.memory_bytes = more.server.memory_bytes.map(|x| x * 3.0);
        let o = run_with(&prep(&more), "milp", &tight()).objective;
        if let Some(b) = base {
            let o = o.unwrap_or_else(|| panic!("{i}: more made it infeasible"));
            assert!(o <= b * (1.0 + 1e-6), "instance {i}: {o} > {b}");
        }
    }
}

#[test]
fn per_client_solutions_are_checked() {
    let mut inst = load("llama2-7b-8phones.json");
    inst.objective = Objective::RoundLatency;
    inst.min_trainable_fraction = Some(0.5);
    let common = prep(&inst);
    inst.decisions = Decisions::PerClient;
    let p = prep(&inst);
    // common solvers that prove optimality do not apply; per-client solvers need per_client
    assert!(solvers_support(&p, "exact").is_err());
    assert!(solvers_support(&common, "milp").is_err());
    assert!(solvers_support(&common, "per-client-descent").is_err());
    let mut tt = inst.clone();
    tt.objective = Objective::TotalTime;
    let err = solvers_support(&prep(&tt), "milp").unwrap_err();
    assert!(err.contains("round_latency"), "{err}");
    let r = run(&p, "milp");
    assert_eq!(r.status.termination, Termination::Optimal, "{:?}", r.notes);
    let sol = r.solution.unwrap();
    // JSON round trip; a common solution carries no per_client field
    let j = serde_json::to_value(&sol).unwrap();
    let back: SplitFinetuneSolution = serde_json::from_value(j).unwrap();
    assert_eq!(back, sol);
    let c = run(&common, "exact").solution.unwrap();
    assert!(serde_json::to_value(&c)
        .unwrap()
        .get("per_client")
        .is_none());
    assert!(SplitFinetune::evaluate(&p, &c).feasible);
    // a per-client vector of the wrong length, on a common instance, or with a wrong summary
    let pc = vec![
        ClientDecision {
            cut: 2,
            client_freeze: 0.0
        };
        8
    ];
    let mut s = SplitFinetuneSolution {
        cut: 2,
        client_freeze: 0.0,
        server_freeze: 0.0,
        bandwidth_hz: vec![],
        later_bandwidth_hz: None,
        per_client: Some(pc[..7].to_vec()),
    };
    assert!(!SplitFinetune::evaluate(&p, &s).feasible);
    let mut pc2 = pc.clone();
    pc2[3].cut = 4;
    s.per_client = Some(pc2.clone());
    assert!(SplitFinetune::evaluate(&p, &s).feasible);
    assert!(!SplitFinetune::evaluate(&common, &s).feasible);
    s.cut = 4;
    assert!(!SplitFinetune::evaluate(&p, &s).feasible);
    // every client on its own cut: metrics per client
    let m = SplitFinetune::evaluate(
        &p,
        &SplitFinetuneSolution {
            cut: 2,
            ..s.clone()
        },
    )
    .metrics;
    assert_eq!(m["clients"][3]["cut"], 4);
    assert_eq!(m["clients"][0]["cut"], 2);
}

fn solvers_support(p: &Prepared, name: &str) -> Result<(), String> {
    solve::find_solver::<SplitFinetune>(p, name)
        .unwrap()
        .supports(p)
}

#[test]
fn per_client_server_memory_holds_the_union_of_server_rows() {
    let mut inst = load("llama2-7b-8phones.json");
    inst.decisions = Decisions::PerClient;
    let p = prep(&inst);
    let at = |cuts: &[usize]| -> serde_json::Value {
        let per: Vec<ClientDecision> = cuts
            .iter()
            .map(|&c| ClientDecision {
                cut: c,
                client_freeze: 0.0,
            })
            .collect();
        let min = *cuts.iter().min().unwrap();
        let sol = SplitFinetuneSolution {
            cut: min,
            client_freeze: 0.0,
            server_freeze: 0.0,
            bandwidth_hz: vec![],
            later_bandwidth_hz: None,
            per_client: Some(per),
        };
        metrics(&p, &sol)
    };
    let all2 = at(&[2; 8]);
    let all4 = at(&[4; 8]);
    let mixed = at(&[2, 2, 2, 2, 4, 4, 4, 4]);
    let mem = |m: &serde_json::Value| m["server_memory_bytes"].as_f64().unwrap();
    let srv = |m: &serde_json::Value| m["server_round_s"].as_f64().unwrap();
    // the server holds the rows from the smallest cut on: as much as with every cut at 2
    assert!(rel(mem(&mixed), mem(&all2)) < 1e-12);
    assert!(mem(&all4) < mem(&all2));
    // and works through each client's batches from its own cut: between the two
    assert!(srv(&all4) < srv(&mixed) && srv(&mixed) < srv(&all2));
    assert!(rel(srv(&mixed), 0.5 * (srv(&all2) + srv(&all4))) < 1e-9);
}

#[test]
fn bundled_per_client_instance_beats_common_decisions() {
    let inst = load("per-client-8-heterogeneous.json");
    let p = prep(&inst);
    let m = run(&p, "auto");
    assert_eq!(m.solver, "milp");
    assert_eq!(m.status.termination, Termination::Optimal);
    let c = run(&prep(&common_of(&inst)), "exact");
    let (x, z) = (m.objective.unwrap(), c.objective.unwrap());
    assert!(x < 0.95 * z, "per-client {x} vs common {z}");
    let cuts: std::collections::BTreeSet<u64> = m.evaluation.unwrap().metrics["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cut"].as_u64().unwrap())
        .collect();
    assert!(cuts.len() > 1, "{cuts:?}");
    // the heuristic lies between
    let d = run(&p, "per-client-descent").objective.unwrap();
    assert!(d >= x * (1.0 - 1e-9) && d <= z * (1.0 + 1e-9));
}
