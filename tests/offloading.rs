//! Tests of the `offloading` family: exact vs brute force (tiny instances), exact vs You et al.'s
//! threshold policy (classic TDMA model), every solver's output through `evaluate`, monotonicity in
//! the frame / deadline and the bandwidth, bad-input errors with JSON paths, bundled instances.

use edgeplan::catalog::Catalog;
use edgeplan::problems::offloading::{generate, Offloading, OffloadingInstance, Prepared};
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag, Termination};

fn prep(i: &OffloadingInstance) -> Prepared {
    Offloading::prepare(i, Catalog::builtin()).unwrap()
}

fn run(
    p: &Prepared,
    name: &str,
) -> solve::SolveResult<edgeplan::problems::offloading::OffloadingSolution> {
    let s = solve::find_solver::<Offloading>(p, name).unwrap();
    solve::run::<Offloading>(
        p,
        s.as_ref(),
        &SolveOptions::default(),
        &mut NoObserver,
        StopFlag::new(),
    )
    .unwrap()
}

fn exact_obj(p: &Prepared) -> f64 {
    let r = run(p, "exact");
    assert_eq!(r.status.termination, Termination::Optimal, "{:?}", r.notes);
    assert!(r.evaluation.as_ref().unwrap().feasible);
    r.objective.unwrap()
}

#[test]
fn exact_matches_threshold_policy_on_classic_model() {
    // You et al.'s closed form is optimal for the classic model; the general solver must agree.
    for seed in 0..120u64 {
        let k = 2 + (seed as usize % 29);
        let inst = generate::instance(k, true, 1000 + seed);
        let p = prep(&inst);
        let e = exact_obj(&p);
        let t = run(&p, "threshold");
        assert!(
            t.evaluation.as_ref().unwrap().feasible,
            "seed {seed}: {:?}",
            t.evaluation
        );
        let o = t.objective.unwrap();
        assert!(
            ((o - e) / e).abs() < 1e-5,
            "seed {seed} k {k}: exact {e} threshold {o}"
        );
    }
}

#[test]
fn exact_agrees_with_brute_force_on_tiny_instances() {
    let mut compared = 0;
    let mut worst: f64 = 0.0;
    for seed in 0..200u64 {
        let classic = seed % 4 == 0;
        // three devices only without a server limit (keeps the debug-profile grid small)
        let k = if classic {
            1 + (seed as usize % 3)
        } else {
            1 + (seed as usize % 2)
        };
        let mut inst = generate::instance(k, classic, seed);
        // tiny LLM requests: local or offload only (keeps the mode product small)
        for d in &mut inst.devices {
            if let edgeplan::problems::offloading::Task::Llm(t) = &mut d.task {
                t.allow_split = false;
            }
        }
        // make the server capacity bind on a third of them, relax it on another third
        if let Some(c) = inst.server.capacity_s.as_mut() {
            match seed % 3 {
                0 => *c *= 0.5,
                1 => *c *= 100.0,
                _ => {}
            }
        }
        let p = prep(&inst);
        let b = run(&p, "brute-force");
        let ex = run(&p, "exact");
        match (b.objective, ex.objective) {
            (Some(bo), Some(eo)) => {
                assert_eq!(ex.status.termination, Termination::Optimal);
                // exact (feasible by evaluate, so ≥ the optimum) is never worse than the best grid
                // point, and its certified bound never exceeds it; the grid itself is coarse (the
                // transmit energy is exponential in the rate), so only a loose closeness check
                assert!(
                    eo <= bo * (1.0 + 1e-6) + 1e-12,
                    "seed {seed}: exact {eo} > brute {bo}"
                );
                assert!(
                    ex.bound.unwrap() <= bo * (1.0 + 1e-6) + 1e-12,
                    "seed {seed}: bound above brute"
                );
                assert!(
                    bo <= eo * 1.15 + 1e-9,
                    "seed {seed}: brute {bo} far above exact {eo}"
                );
                worst = worst.max(bo / eo - 1.0);
                compared += 1;
            }
            (None, None) => {}
            (Some(bo), None) => {
                panic!("seed {seed}: brute found {bo}, exact none: {:?}", ex.status)
            }
            (None, Some(_)) => {} // the grid may miss a thin feasible set
        }
    }
    eprintln!("brute force vs exact: {compared} instances, worst grid excess {worst:.4}");
    assert!(compared >= 150, "only {compared} instances compared");
}

#[test]
fn every_solver_output_passes_evaluate() {
    for (size, seed) in [("small", 1), ("medium", 2), ("classic-20", 3), ("12", 4)] {
        let inst = generate::generate(size, seed).unwrap();
        let p = prep(&inst);
        let best = exact_obj(&p);
        for s in Offloading::solvers() {
            if s.supports(&p).is_err() {
                continue;
            }
            let r = solve::run::<Offloading>(
                &p,
                s.as_ref(),
                &SolveOptions::default(),
                &mut NoObserver,
                StopFlag::new(),
            )
            .unwrap();
            if let Some(e) = &r.evaluation {
                assert!(e.feasible, "{size} {}: {:?}", s.name(), e.violations);
                assert!(
                    e.violations.is_empty(),
                    "{size} {}: {:?}",
                    s.name(),
                    e.violations
                );
                assert!(
                    r.objective.unwrap() >= best * (1.0 - 1e-6),
                    "{size} {} beats exact",
                    s.name()
                );
            }
            if let Some(b) = r.bound {
                assert!(
                    b <= best * (1.0 + 1e-6),
                    "{size} {}: bound {b} above optimum {best}",
                    s.name()
                );
            }
        }
    }
}

#[test]
fn longer_deadline_or_more_spectrum_never_costs_more() {
    for seed in 0..25u64 {
        let inst = generate::instance(2 + seed as usize % 8, seed % 2 == 0, 500 + seed);
        let base = exact_obj(&prep(&inst));
        let mut longer = inst.clone();
        longer.spectrum.frame_s *= 1.3;
        for d in &mut longer.devices {
            if let Some(x) = d.deadline_s.as_mut() {
                *x *= 1.3;
            }
        }
        // DVFS energy depends on the deadline (more time, lower frequency): also non-increasing
        let lo = exact_obj(&prep(&longer));
        assert!(
            lo <= base * (1.0 + 2e-6),
            "seed {seed}: longer deadline {lo} > {base}"
        );
        let mut wider = inst.clone();
        wider.spectrum.bandwidth_hz *= 1.5;
        let wo = exact_obj(&prep(&wider));
        assert!(
            wo <= base * (1.0 + 2e-6),
            "seed {seed}: more spectrum {wo} > {base}"
        );
        if let Some(c) = inst.server.capacity_s {
            let mut more = inst.clone();
            more.server.capacity_s = Some(c * 1.5);
            let mo = exact_obj(&prep(&more));
            assert!(
                mo <= base * (1.0 + 2e-6),
                "seed {seed}: more server {mo} > {base}"
            );
        }
    }
}

fn doc_err(doc: serde_json::Value) -> String {
    let cat = Catalog::builtin();
    let fam = edgeplan::problems::family("offloading").unwrap();
    fam.validate(&doc, cat).unwrap_err().to_string()
}

#[test]
fn bad_inputs_report_json_paths() {
    let base = serde_json::json!({
        "family": "offloading",
        "spectrum": {"bandwidth_hz": 1e6, "frame_s": 0.1},
        "devices": [{"name": "a", "channel_gain": 1e-10, "weight": 1.0,
            "task": {"partitionable": {"bits": 1e5, "cycles_per_bit": 1000,
                "local": {"fixed": {"energy_per_cycle_j": 1e-10}}}}}]
    });
    let fam = edgeplan::problems::family("offloading").unwrap();
    fam.validate(&base, Catalog::builtin()).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "/spectrum/bandwidth_hz",
            serde_json::json!(-1.0),
            "$.spectrum.bandwidth_hz",
        ),
        (
            "/spectrum/frame_s",
            serde_json::json!(0.0),
            "$.spectrum.frame_s",
        ),
        (
            "/devices/0/channel_gain",
            serde_json::json!(0.0),
            "$.devices[0].channel_gain",
        ),
        (
            "/devices/0/weight",
            serde_json::json!(-2.0),
            "$.devices[0].weight",
        ),
        (
            "/devices/0/task/partitionable/bits",
            serde_json::json!(-5.0),
            "$.devices[0].task.partitionable.bits",
        ),
        ("/devices", serde_json::json!([]), "$.devices"),
    ];
    for (ptr, val, path) in cases {
        let mut d = base.clone();
        *d.pointer_mut(ptr).unwrap() = val;
        let e = doc_err(d);
        assert!(e.contains(path), "{ptr}: {e}");
    }
    let mut d = base.clone();
    d["devices"][0]["task"] = serde_json::json!({"llm": {"model": "llama-9000", "device": "l4",
        "prompt_tokens": 10, "gen_tokens": 1}});
    let e = doc_err(d);
    assert!(e.contains("$.devices[0].task.llm.model"), "{e}");
    let mut d = base.clone();
    d["devices"][0]["task"] = serde_json::json!({"llm": {"model": "llama-3.1-8b", "device": "phone-x",
        "prompt_tokens": 10, "gen_tokens": 1}});
    let e = doc_err(d);
    assert!(e.contains("$.devices[0].task.llm.device"), "{e}");
}

#[test]
fn bundled_instances_solve_to_optimal() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("instances/offloading");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let r = edgeplan::problems::solve_document(&doc, "auto", &SolveOptions::default()).unwrap();
        assert_eq!(
            r.status.termination,
            Termination::Optimal,
            "{}",
            path.display()
        );
        assert!(r.evaluation.unwrap().feasible);
        n += 1;
    }
    assert!(n >= 2);
}
