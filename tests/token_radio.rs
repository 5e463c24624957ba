//! Integration tests of the `token_radio` family: exact (dual decomposition, max-min bisection)
//! against the grid brute force on random small instances (tolerance derived from the grid step),
//! duality gap and KKT residuals on generated instances, every solver's output through `evaluate`,
//! monotonicity in the bandwidth, the non-concave MILP path, infeasibility, the worked example, and
//! validation errors with JSON paths.

use edgeplan::catalog::Catalog;
use edgeplan::problems::token_radio::brute_force::grid;
use edgeplan::problems::token_radio::cost::{Prepared, Utility};
use edgeplan::problems::token_radio::*;
use edgeplan::solve::{
    self, Family, NoObserver, SolutionStatus, SolveOptions, StopFlag, Termination,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn prep(inst: &TokenRadioInstance) -> Prepared {
    TokenRadio::prepare(inst, Catalog::builtin()).unwrap()
}

fn run(p: &Prepared, name: &str) -> solve::SolveResult<TokenRadioSolution> {
    let s = solve::find_solver::<TokenRadio>(p, name).unwrap();
    solve::run::<TokenRadio>(
        p,
        s.as_ref(),
        &SolveOptions::default(),
        &mut NoObserver,
        StopFlag::new(),
    )
    .unwrap()
}

fn explicit_server(flops: f64) -> ServerSpec {
    // llama-2-7b-like prefill: 2·6.7e9 FLOPs per token, attention 4·L·d per token² (L = 32, d = 4096)
    ServerSpec {
        device: None,
        runtime: None,
        model: None,
        dtype: None,
        flops_per_token: Some(1.35e10),
        flops_per_token_sq: Some(5.2e5),
        effective_flops: Some(flops),
        overhead_s: Some(0.01),
    }
}

/// A random small instance with binding budgets (both resources scarce in most draws).
fn random_instance(rng: &mut ChaCha8Rng, k: usize, shannon: bool) -> TokenRadioInstance {
    let mut users = generate::users(k, rng);
    for u in &mut users {
        if shannon {
            u.channel_gain = Some(10f64.powf(rng.random_range(-12.0..-10.0)));
            u.tx_power_w = Some(0.2);
        }
        if rng.random_bool(0.3) {
            // concave piecewise-linear profile
            let s1: f64 = rng.random_range(0.7..1.3);
            let s2 = s1 * rng.random_range(0.1..0.6);
            let s3 = s2 * rng.random_range(0.0..0.9);
            let a0 = rng.random_range(0.1..0.25);
            let a1 = a0 + 0.3 * s1;
            let a2 = a1 + 0.4 * s2;
            let a3 = (a2 + 0.3 * s3).min(1.0);
            u.accuracy = AccuracySpec::Points(vec![[0.0, a0], [0.3, a1], [0.7, a2], [1.0, a3]]);
        }
    }
    TokenRadioInstance {
        bandwidth_hz: 0.4e6 * k as f64 * rng.random_range(0.05..1.0),
        noise_psd_w_per_hz: None,
        rate_model: if shannon {
            RateSpec::Shannon
        } else {
            RateSpec::Linear
        },
        objective: if rng.random_bool(0.25) {
            Objective::MaxMin
        } else {
            Objective::WeightedSum
        },
        allow_drop: false,
        server: explicit_server(k as f64 * rng.random_range(2e12..2e13)),
        users,
    }
}

/// Grid tolerance: rounding each optimal fraction down to the grid loses at most
/// `Σ w_k L_k (1 − ρ_min,k) / grid(K)` (weighted sum) or `max_k L_k (1 − ρ_min,k) / grid(K)` (max-min).
fn grid_tolerance(p: &Prepared) -> f64 {
    let per = p
        .users
        .iter()
        .map(|u| u.curve.max_slope() * (1.0 - u.rho_min) / grid(p.num_users()) as f64);
    match p.objective {
        Objective::WeightedSum => per.zip(&p.users).map(|(t, u)| u.weight * t).sum(),
        Objective::MaxMin => per.fold(0.0, f64::max),
    }
}

#[test]
fn exact_agrees_with_brute_force_grid() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut checked = 0;
    for case in 0..130 {
        let k = [1, 1, 2, 2, 2, 3][case % 6];
        let shannon = k == 1 && case % 12 == 0;
        let inst = random_instance(&mut rng, k, shannon);
        let p = prep(&inst);
        let e = run(&p, "exact");
        let b = run(&p, "brute-force");
        if b.status.solution == SolutionStatus::NoSolution {
            assert_eq!(e.status.termination, Termination::Infeasible, "case {case}");
            continue;
        }
        assert_eq!(
            e.status.solution,
            SolutionStatus::Optimal,
            "case {case}: {:?}",
            e.notes
        );
        let (eo, bo) = (e.objective.unwrap(), b.objective.unwrap());
        let tol = grid_tolerance(&p);
        assert!(
            bo <= eo + 1e-6 * eo.abs().max(1.0),
            "case {case}: brute {bo} > exact {eo}"
        );
        assert!(
            bo >= eo - tol - 1e-9,
            "case {case}: brute {bo} < exact {eo} - {tol}"
        );
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} feasible cases");
}

#[test]
fn duality_gap_and_kkt_on_generated_instances() {
    for (size, seed) in [("medium", 1), ("medium", 2), ("medium", 3), ("120", 4)] {
        let inst = TokenRadio::generate(size, seed).unwrap();
        let p = prep(&inst);
        let r = run(&p, "exact");
        assert_eq!(r.status.termination, Termination::Optimal, "{size}/{seed}");
        let (obj, bound) = (r.objective.unwrap(), r.bound.unwrap());
        assert!(
            (bound - obj) / obj <= 1e-6,
            "{size}/{seed}: gap {}",
            (bound - obj) / obj
        );
        // KKT residuals at the multipliers the solver reports
        let ctx_opts = SolveOptions::default();
        let mut obs = NoObserver;
        let ctx = solve::Context::new(&ctx_opts, &mut obs, StopFlag::new());
        let d = exact::dual_solve(&p, Utility::Weighted { envelope: false }, &ctx).unwrap();
        let sol = r.solution.unwrap();
        let (sb, sf): (f64, f64) = sol.users.iter().fold((0.0, 0.0), |a, u| {
            (a.0 + u.bandwidth_hz, a.1 + u.compute_share)
        });
        if d.lambda > 0.0 {
            // complementary slackness: both budgets used
            assert!(
                (p.bandwidth_hz - sb) / p.bandwidth_hz <= 1e-6,
                "bandwidth slack"
            );
            assert!(1.0 - sf <= 1e-6, "compute slack");
        }
        // stationarity: each kept count maximises w A − C on a fine grid (relative to the scale)
        for (k, u) in sol.users.iter().enumerate() {
            let user = &p.users[k];
            let n = u.kept_fraction * user.tokens;
            let val = |n: f64| {
                user.weight * user.curve.value(n / user.tokens)
                    - p.min_cost(k, n, d.lambda, d.mu).cost
            };
            let at = val(n);
            for g in 0..=200 {
                let m = user.tokens * (user.rho_min + (1.0 - user.rho_min) * g as f64 / 200.0);
                assert!(
                    val(m) <= at + 1e-6 * user.weight.max(1e-3),
                    "user {k}: not stationary"
                );
            }
        }
    }
}

#[test]
fn every_solver_output_passes_evaluate() {
    for (size, seed) in [("small", 1), ("medium", 5), ("2", 6)] {
        let p = prep(&TokenRadio::generate(size, seed).unwrap());
        for s in TokenRadio::solvers() {
            if s.supports(&p).is_err() {
                continue;
            }
            let r = run(&p, s.name());
            let Some(sol) = &r.solution else { continue };
            let e = evaluate(&p, sol);
            if s.name() == "no-prune-equal" && !e.feasible {
                // drops users although the instance does not allow it: reported infeasible
                assert_eq!(r.status.solution, SolutionStatus::Infeasible);
                continue;
            }
            assert!(e.feasible, "{size}/{}: {:?}", s.name(), e.violations);
            if let Some(b) = r.bound {
                assert!(
                    r.objective.unwrap() <= b + 1e-9,
                    "{}: objective above bound",
                    s.name()
                );
            }
        }
    }
}

#[test]
fn baselines_never_beat_the_optimum() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for case in 0..20 {
        let mut inst = random_instance(&mut rng, 6, false);
        inst.objective = Objective::WeightedSum;
        inst.allow_drop = case % 2 == 0;
        let p = prep(&inst);
        let e = run(&p, "exact");
        if e.status.solution == SolutionStatus::NoSolution {
            continue;
        }
        let bound = e.bound.unwrap();
        for name in [
            "equal-prune",
            "no-prune-equal",
            "prop-fair",
            "dual-gradient",
        ] {
            let r = run(&p, name);
            if let Some(o) = r.objective {
                assert!(
                    o <= bound * (1.0 + 1e-9) + 1e-12,
                    "case {case} {name}: {o} > {bound}"
                );
            }
        }
    }
}

#[test]
fn more_bandwidth_never_lowers_the_optimum() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for case in 0..25 {
        let mut inst = random_instance(&mut rng, 1 + case % 5, false);
        let p1 = prep(&inst);
        let r1 = run(&p1, "exact");
        inst.bandwidth_hz *= rng.random_range(1.05..2.0);
        let r2 = run(&prep(&inst), "exact");
        match (r1.objective, r2.objective) {
            (Some(a), Some(b)) => {
                assert!(b >= a - 1e-7 * a.abs().max(1.0), "case {case}: {b} < {a}")
            }
            (Some(_), None) => panic!("case {case}: more bandwidth became infeasible"),
            _ => {}
        }
    }
}

#[test]
fn non_concave_curves_go_to_milp_with_a_valid_bound() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for case in 0..6 {
        let mut inst = random_instance(&mut rng, 3, false);
        inst.objective = Objective::WeightedSum;
        for u in &mut inst.users {
            // convex-then-flat (S-shaped) profile: not concave
            u.accuracy =
                AccuracySpec::Points(vec![[0.0, 0.1], [0.5, 0.2], [0.8, 0.8], [1.0, 0.85]]);
            u.min_kept_fraction = 0.0;
        }
        let p = prep(&inst);
        assert_eq!(TokenRadio::auto_solver(&p), "milp");
        assert!(solve::find_solver::<TokenRadio>(&p, "exact")
            .unwrap()
            .supports(&p)
            .is_err());
        let m = run(&p, "milp");
        let b = run(&p, "brute-force");
        let (mo, bound) = (m.objective.unwrap(), m.bound.unwrap());
        assert!(m.evaluation.unwrap().feasible);
        let bo = b.objective.unwrap();
        assert!(
            bo <= bound + 1e-9,
            "case {case}: brute {bo} above the envelope bound {bound}"
        );
        assert!(mo <= bound + 1e-9);
    }
}

#[test]
fn infeasible_when_minimum_tokens_do_not_fit() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut inst = random_instance(&mut rng, 3, false);
    inst.bandwidth_hz = 1.0;
    let p = prep(&inst);
    for name in ["exact", "dual-gradient", "brute-force"] {
        let s = solve::find_solver::<TokenRadio>(&p, name).unwrap();
        if s.supports(&p).is_err() {
            continue;
        }
        let r = run(&p, name);
        assert_eq!(r.status.termination, Termination::Infeasible, "{name}");
    }
    // with drops allowed, dropping everyone is feasible
    inst.allow_drop = true;
    inst.objective = Objective::WeightedSum;
    let r = run(&prep(&inst), "exact");
    assert!(r.evaluation.unwrap().feasible);
}

#[test]
fn worked_example_vlm_50_users_20mhz() {
    let path = format!(
        "{}/instances/token_radio/vlm-50-users-20mhz.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut m = doc.as_object().unwrap().clone();
    for k in ["family", "schema_version", "description"] {
        m.remove(k);
    }
    let inst: TokenRadioInstance = serde_json::from_value(serde_json::Value::Object(m)).unwrap();
    assert_eq!(inst.users.len(), 50);
    assert_eq!(inst.bandwidth_hz, 20e6);
    let p = prep(&inst);
    let e = run(&p, "exact");
    assert_eq!(e.status.termination, Termination::Optimal);
    let opt = e.objective.unwrap();
    for name in ["no-prune-equal", "equal-prune", "prop-fair"] {
        let r = run(&p, name);
        if let Some(o) = r.objective {
            assert!(o <= opt * (1.0 + 1e-9), "{name} beats the optimum");
        }
    }
}

#[test]
fn bad_input_errors_carry_json_paths() {
    let base = TokenRadio::generate("small", 1).unwrap();
    let cases: Vec<(Box<dyn Fn(&mut TokenRadioInstance)>, &str)> = vec![
        (Box::new(|i| i.bandwidth_hz = f64::NAN), "$.bandwidth_hz"),
        (Box::new(|i| i.bandwidth_hz = -1.0), "$.bandwidth_hz"),
        (Box::new(|i| i.users.clear()), "$.users"),
        (
            Box::new(|i| i.users[1].text_tokens = -3.0),
            "$.users[1].text_tokens",
        ),
        (
            Box::new(|i| i.users[2].deadline_s = f64::INFINITY),
            "$.users[2].deadline_s",
        ),
        (
            Box::new(|i| i.users[0].min_kept_fraction = 1.5),
            "$.users[0].min_kept_fraction",
        ),
        (
            Box::new(|i| i.users[0].spectral_efficiency = None),
            "$.users[0].spectral_efficiency",
        ),
        (
            Box::new(|i| i.server.model = Some("llama-9-7b".into())),
            "$.server.model",
        ),
        (
            Box::new(|i| i.server.device = Some("h900".into())),
            "$.server.device",
        ),
        (
            Box::new(|i| {
                i.users[0].accuracy = AccuracySpec::Points(vec![[0.0, 0.5], [0.5, 0.4], [1.0, 0.9]])
            }),
            "$.users[0].accuracy.points[1][1]",
        ),
        (
            Box::new(|i| {
                i.users[0].accuracy = AccuracySpec::Saturating {
                    floor: 0.2,
                    max: 0.9,
                    rate: f64::NAN,
                }
            }),
            "$.users[0].accuracy.saturating.rate",
        ),
        (
            Box::new(|i| {
                i.rate_model = RateSpec::Shannon;
            }),
            "$.users[0].channel_gain",
        ),
    ];
    for (f, path) in cases {
        let mut inst = base.clone();
        f(&mut inst);
        let e = TokenRadio::prepare(&inst, Catalog::builtin())
            .err()
            .unwrap();
        assert_eq!(e.json_path(), Some(path), "{e}");
    }
}

#[test]
fn json_round_trip_through_the_dynamic_layer() {
    let fam = edgeplan::problems::family("token_radio").unwrap();
    let doc = fam.generate("small", 3).unwrap();
    let r = fam
        .solve(
            &doc,
            "auto",
            &SolveOptions::default(),
            Catalog::builtin(),
            &mut NoObserver,
            StopFlag::new(),
        )
        .unwrap();
    assert_eq!(r.status.termination, Termination::Optimal);
    let ev = fam
        .evaluate(&doc, r.solution.as_ref().unwrap(), Catalog::builtin())
        .unwrap();
    assert!(ev.feasible);
}

#[test]
fn analytic_price_jacobian_matches_finite_differences() {
    // the Newton step on the log-prices uses Σ d(b, φ)/d(ln λ, ln μ) from the per-user responses
    let p = prep(&TokenRadio::generate("medium", 2).unwrap());
    let ut = Utility::Weighted { envelope: false };
    let opts = SolveOptions::default();
    let mut obs = NoObserver;
    let ctx = solve::Context::new(&opts, &mut obs, StopFlag::new());
    let d = exact::dual_solve(&p, ut, &ctx).unwrap();
    for (sx, sy) in [(0.0, 0.0), (0.3, -0.2), (-0.5, 0.4)] {
        let (x, y) = (d.lambda.ln() + sx, d.mu.ln() + sy);
        let mut st = exact::DualState::new(&p, ut);
        let r = st.residual(x, y);
        let j = st.jacobian.unwrap();
        let h = 1e-6;
        let rx = st.residual(x + h, y);
        let ry = st.residual(x, y + h);
        let fd = [
            (rx.0 - r.0) / h,
            (ry.0 - r.0) / h,
            (rx.1 - r.1) / h,
            (ry.1 - r.1) / h,
        ];
        let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..4 {
            assert!(
                (j[i] - fd[i]).abs() <= 1e-4 * scale,
                "({sx}, {sy}) entry {i}: analytic {} vs fd {}",
                j[i],
                fd[i]
            );
        }
    }
}
