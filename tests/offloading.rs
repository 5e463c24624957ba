//! Tests of the `offloading` family: exact vs brute force (tiny instances), exact vs You et al.'s
//! threshold policy (classic TDMA model), every solver's output through `evaluate`, monotonicity in
//! the frame / deadline and the bandwidth, bad-input errors with JSON paths, bundled instances.

use edgeplan::catalog::Catalog;
use edgeplan::problems::offloading::{
    generate, Access, Offloading, OffloadingInstance, OffloadingSolution, Prepared,
};
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
    brute_vs_exact(Access::Tdma, 0..200, 150);
}

#[test]
fn ofdma_exact_agrees_with_brute_force_on_tiny_instances() {
    brute_vs_exact(Access::Ofdma, 1000..1120, 90);
}

fn brute_vs_exact(access: Access, seeds: std::ops::Range<u64>, min_compared: usize) {
    let mut compared = 0;
    let mut worst: f64 = 0.0;
    for seed in seeds {
        let classic = seed % 4 == 0;
        // three devices only without a server limit (keeps the debug-profile grid small)
        let k = if classic {
            1 + (seed as usize % 3)
        } else {
            1 + (seed as usize % 2)
        };
        let mut inst = generate::instance(k, classic, seed);
        inst.spectrum.access = access;
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
    eprintln!(
        "{access:?} brute force vs exact: {compared} instances, worst grid excess {worst:.4}"
    );
    assert!(
        compared >= min_compared,
        "only {compared} instances compared"
    );
}

#[test]
fn every_solver_output_passes_evaluate() {
    for (size, seed) in [
        ("small", 1),
        ("medium", 2),
        ("classic-20", 3),
        ("12", 4),
        ("ofdma-small", 5),
        ("ofdma-medium", 6),
        ("ofdma-classic-20", 7),
        ("ofdma-12", 8),
    ] {
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
    monotone(Access::Tdma, 0..25);
}

#[test]
fn ofdma_longer_deadline_or_more_bandwidth_never_costs_more() {
    monotone(Access::Ofdma, 100..120);
}

fn monotone(access: Access, seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let mut inst = generate::instance(2 + seed as usize % 8, seed % 2 == 0, 500 + seed);
        inst.spectrum.access = access;
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
    d["spectrum"]["access"] = serde_json::json!("fdma");
    let e = doc_err(d);
    assert!(e.contains("$.spectrum.access"), "{e}");
    let mut d = base.clone();
    d["spectrum"]["access"] = serde_json::json!("ofdma");
    fam.validate(&d, Catalog::builtin()).unwrap();
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

/// TDMA vs OFDMA on the same instances. The transmit energy `t (N0 b/g)(2^{ℓ/(t b)} − 1)` depends
/// on `t` and `b` only through the time-bandwidth product `s = t b`. TDMA allows `Σ s ≤ T B`
/// with `s_k ≤ t^max_k B`; OFDMA `Σ s_k / t^max_k ≤ B`, a subset; the power cap
/// `ℓ ≤ s log2(1 + P/(a' b))` is looser on the narrower OFDMA band. Hence: without power caps
/// TDMA ≤ OFDMA, equal when every window is the whole frame (classic model); with every window
/// the whole frame OFDMA ≤ TDMA. Mixed instances: reported, not asserted.
#[test]
fn tdma_vs_ofdma_on_the_same_instances() {
    // (TDMA, OFDMA) optimum, None when either is infeasible
    let both = |inst: &OffloadingInstance| {
        let solve = |i: &OffloadingInstance| {
            let r = run(&prep(i), "exact");
            if r.status.termination == Termination::Infeasible {
                return None;
            }
            Some(exact_obj(&prep(i)))
        };
        let mut o = inst.clone();
        o.spectrum.access = Access::Ofdma;
        Some((solve(inst)?, solve(&o)?))
    };
    let mut strict = 0;
    for seed in 0..10u64 {
        // classic: equal
        let inst = generate::instance(2 + seed as usize % 12, true, 3000 + seed);
        let (t, o) = both(&inst).unwrap();
        assert!(
            ((t - o) / t).abs() < 1e-5,
            "classic seed {seed}: {t} vs {o}"
        );
        // partitionable only, windows = frame, power caps: OFDMA ≤ TDMA
        let mut inst = generate::instance(2 + seed as usize % 12, false, 3100 + seed);
        inst.devices.retain(|d| {
            matches!(
                d.task,
                edgeplan::problems::offloading::Task::Partitionable(_)
            )
        });
        if inst.devices.iter().all(|d| d.max_tx_power_w.is_none()) {
            inst.devices[0].max_tx_power_w = Some(0.2);
        }
        let (t, o) = both(&inst).unwrap();
        assert!(
            o <= t * (1.0 + 1e-5),
            "capped seed {seed}: ofdma {o} > tdma {t}"
        );
        // no power caps, LLM windows shorter than the frame: TDMA ≤ OFDMA
        let mut inst = short_llm_deadlines(generate::instance(
            5 + seed as usize % 10,
            false,
            3200 + seed,
        ));
        for d in &mut inst.devices {
            d.max_tx_power_w = None;
        }
        if let Some((t, o)) = both(&inst) {
            assert!(
                t <= o * (1.0 + 1e-5),
                "uncapped seed {seed}: tdma {t} > ofdma {o}"
            );
            strict += (t < o * (1.0 - 1e-6)) as usize;
        }
    }
    eprintln!("uncapped with short LLM deadlines: TDMA strictly better on {strict} of 10");
    for size in ["small", "medium", "30"] {
        let inst = generate::generate(size, 9).unwrap();
        if let Some((t, o)) = both(&inst) {
            eprintln!(
                "{size}: TDMA {t:.6} J, OFDMA {o:.6} J, OFDMA/TDMA {:.6}",
                o / t
            );
        }
        match both(&short_llm_deadlines(inst)) {
            Some((t, o)) => eprintln!(
                "{size}, LLM due in 0.4 s: TDMA {t:.6} J, OFDMA {o:.6} J, OFDMA/TDMA {:.6}",
                o / t
            ),
            None => eprintln!("{size}, LLM due in 0.4 s: infeasible"),
        }
    }
}

/// LLM requests due in 0.4 s (upload windows shorter than the 1 s frame).
fn short_llm_deadlines(mut inst: OffloadingInstance) -> OffloadingInstance {
    for d in &mut inst.devices {
        if matches!(d.task, edgeplan::problems::offloading::Task::Llm(_)) {
            d.deadline_s = Some(0.4);
        }
    }
    inst
}

/// `evaluate` is independent of the solvers: it rejects OFDMA decisions without a bandwidth,
/// above the band, or above the power cap, and TDMA decisions with a partial band.
#[test]
fn evaluate_checks_ofdma_bandwidth() {
    let mut inst = generate::instance(4, false, 77);
    inst.spectrum.access = Access::Ofdma;
    let p = prep(&inst);
    let r = run(&p, "exact");
    let sol: OffloadingSolution = r.solution.clone().unwrap();
    assert!(Offloading::evaluate(&p, &sol).feasible);
    let mut no_b = sol.clone();
    no_b.devices[0].bandwidth_hz = None;
    assert!(!Offloading::evaluate(&p, &no_b).feasible);
    let mut over = sol.clone();
    for d in &mut over.devices {
        d.bandwidth_hz = Some(p.bandwidth_hz);
    }
    let e = Offloading::evaluate(&p, &over);
    assert!(
        e.violations.iter().any(|v| v.contains("OFDMA band")),
        "{:?}",
        e.violations
    );
    // an uploading device squeezed to a sliver of the band: power or rate above the cap, or energy up
    let k = sol
        .devices
        .iter()
        .position(|d| d.offloaded_bits > 0.0)
        .unwrap();
    let mut thin = sol.clone();
    thin.devices[k].bandwidth_hz = Some(thin.devices[k].bandwidth_hz.unwrap() * 0.5);
    let e = Offloading::evaluate(&p, &thin);
    assert!(!e.feasible || e.objective > r.objective.unwrap());
    // the same decisions under TDMA with a partial band are rejected
    let mut t = inst.clone();
    t.spectrum.access = Access::Tdma;
    let pt = prep(&t);
    assert!(!Offloading::evaluate(&pt, &sol).feasible);
}

/// Binding power caps (three users that want to offload everything over a narrow band), TDMA
/// and OFDMA: exact is optimal, feasible, some user sends at its cap, and neither its objective
/// nor its bound exceeds the brute-force grid. (Regression: the TDMA response once used the
/// interior slope where the cap binds, so its dual value was no bound and the bracket failed.)
#[test]
fn binding_power_caps_against_brute_force() {
    for access in [Access::Tdma, Access::Ofdma] {
        binding_caps(access);
    }
}

fn binding_caps(access: Access) {
    let mut at_cap = 0;
    for (bits, pmax) in [
        ([4e6, 3e6, 2e6], 0.006),
        ([3e6, 3e6, 3e6], 0.006),
        ([5e6, 1e6, 2e6], 0.005),
    ] {
        let devices: Vec<_> = bits
            .iter()
            .zip([1e-10, 2e-10, 5e-11])
            .enumerate()
            .map(|(i, (b, g))| {
                serde_json::json!({"name": format!("u{i}"), "channel_gain": g,
                    "max_tx_power_w": pmax, "task": {"partitionable": {"bits": b,
                    "cycles_per_bit": 1000, "local": {"fixed": {"energy_per_cycle_j": 1e-9}}}}})
            })
            .collect();
        let mut inst: OffloadingInstance = serde_json::from_value(serde_json::json!({
            "spectrum": {"bandwidth_hz": 1e6, "frame_s": 1.0},
            "devices": devices
        }))
        .unwrap();
        inst.spectrum.access = access;
        let p = prep(&inst);
        let e = exact_obj(&p);
        let r = run(&p, "exact");
        let ev = r.evaluation.unwrap();
        for d in ev.metrics["devices"].as_array().unwrap() {
            at_cap += (d["tx_power_w"].as_f64().unwrap() >= pmax * (1.0 - 1e-6)) as usize;
        }
        let b = run(&p, "brute-force").objective.unwrap();
        assert!(
            e <= b * (1.0 + 1e-9),
            "{access:?} {bits:?}: exact {e} > brute {b}"
        );
        assert!(r.bound.unwrap() <= b * (1.0 + 1e-9));
        // the certified bound is also below every baseline that finds a solution
        for s in ["all-local", "all-offload", "neurosurgeon", "gradient"] {
            if let Some(o) = run(&p, s).objective {
                assert!(r.bound.unwrap() <= o * (1.0 + 1e-9), "{access:?} {s}");
            }
        }
    }
    assert!(at_cap >= 3, "{access:?}: only {at_cap} users at their cap");
}
