//! Tests of the `kv_split` family: exact MILP vs unpruned brute force on hundreds of random tiny
//! instances (three objectives), every solver's output through `evaluate`, the Lagrangian bound never
//! above the optimum, monotonicity (server memory, uplink, context), the worked example, bad input.

use edgeplan::catalog::Catalog;
use edgeplan::problems::kv_split::KvSplitSolution;
use edgeplan::problems::kv_split::{
    generate, KvKind, KvSplit, KvSplitInstance, Objective, Prepared,
};
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, SolveResult, StopFlag, Termination};

fn prep(inst: &KvSplitInstance) -> Prepared {
    KvSplit::prepare(inst, Catalog::builtin()).unwrap()
}

fn run(p: &Prepared, name: &str) -> SolveResult<KvSplitSolution> {
    let s = solve::find_solver::<KvSplit>(p, name).unwrap();
    solve::run::<KvSplit>(
        p,
        s.as_ref(),
        &SolveOptions::default(),
        &mut NoObserver,
        StopFlag::new(),
    )
    .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-9)
}

/// Checks every solver's result on `p`: evaluated solutions, no feasible value better than `opt`,
/// Lagrangian bound below `opt`.
fn check_solvers(p: &Prepared, opt: Option<f64>, skip_brute: bool) {
    let sense = KvSplit::sense(p);
    for s in KvSplit::solvers() {
        if s.supports(p).is_err() || (skip_brute && s.name() == "brute-force") {
            continue;
        }
        let r = run(p, s.name());
        if let Some(e) = &r.evaluation {
            assert!(
                e.violations.iter().all(|v| !v.contains("disagrees")),
                "{}: {:?}",
                s.name(),
                e.violations
            );
        }
        if let (Some(o), Some(best)) = (r.objective, opt) {
            assert!(
                !sense.better(o, best) || close(o, best),
                "{} found {o} better than the optimum {best}",
                s.name()
            );
        }
        if let (Some(b), Some(best)) = (r.bound, opt) {
            assert!(
                !sense.better(best, b) || close(b, best),
                "{} bound {b} beyond the optimum {best} ({:?})",
                s.name(),
                r.notes
            );
        }
        if opt.is_none() && s.kind() != solve::SolverKind::Baseline {
            assert!(
                r.objective.is_none(),
                "{} feasible on an infeasible instance",
                s.name()
            );
        }
    }
}

#[test]
fn milp_matches_brute_force_on_random_tiny_instances() {
    let mut agree = 0;
    let mut feasible = 0;
    for (k, suffix) in ["", "-max", "-admit"].iter().enumerate() {
        for seed in 0..100u64 {
            let inst =
                generate::generate(&format!("tiny{suffix}"), 1000 * k as u64 + seed).unwrap();
            let p = prep(&inst);
            let bf = run(&p, "brute-force");
            let mi = run(&p, "milp");
            match bf.status.termination {
                Termination::Optimal => {
                    feasible += 1;
                    let (a, b) = (bf.objective.unwrap(), mi.objective.unwrap_or(f64::NAN));
                    assert_eq!(
                        mi.status.termination,
                        Termination::Optimal,
                        "seed {seed}{suffix}"
                    );
                    assert!(close(a, b), "seed {seed}{suffix}: brute {a} vs milp {b}");
                }
                Termination::Infeasible => {
                    assert_eq!(
                        mi.status.termination,
                        Termination::Infeasible,
                        "seed {seed}{suffix}"
                    );
                }
                t => panic!("brute force ended {t:?}"),
            }
            agree += 1;
            check_solvers(&p, bf.objective, true);
        }
    }
    assert_eq!(agree, 300);
    // the generator must exercise feasible instances
    assert!(feasible >= 150, "only {feasible} feasible instances");
}

/// The MILP's cuts (floors, Cauchy–Schwarz congestion cuts, max-latency congestion rows) alone,
/// without the warm start and its step caps, and its root bound (one node): never above the brute
/// force optimum, and the cold solve reaches it.
#[test]
fn cold_milp_and_its_root_bound_match_brute_force_on_tiny_instances() {
    let mut checked = 0;
    for (k, suffix) in ["", "-max", "-fixed"].iter().enumerate() {
        for seed in 0..60u64 {
            let inst =
                generate::generate(&format!("tiny{suffix}"), 7000 + 100 * k as u64 + seed).unwrap();
            let p = prep(&inst);
            let bf = run(&p, "brute-force");
            let Some(best) = bf.objective else { continue };
            let s = solve::find_solver::<KvSplit>(&p, "milp").unwrap();
            for nodes in [None, Some(1)] {
                let o = SolveOptions {
                    warm_start: false,
                    iteration_limit: nodes,
                    ..SolveOptions::default()
                };
                let r = solve::run::<KvSplit>(&p, s.as_ref(), &o, &mut NoObserver, StopFlag::new())
                    .unwrap();
                if let Some(b) = r.bound {
                    assert!(
                        b <= best || close(b, best),
                        "seed {seed}{suffix} nodes {nodes:?}: bound {b} above the optimum {best}"
                    );
                }
                if nodes.is_none() {
                    assert_eq!(
                        r.status.termination,
                        Termination::Optimal,
                        "seed {seed}{suffix}"
                    );
                    assert!(close(r.objective.unwrap(), best), "seed {seed}{suffix}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 90, "only {checked} feasible instances");
}

#[test]
fn every_solver_passes_evaluate_on_small_instances() {
    for suffix in ["", "-max", "-admit"] {
        for seed in 0..3u64 {
            let p = prep(&generate::generate(&format!("small{suffix}"), seed).unwrap());
            let mi = run(&p, "milp");
            assert_eq!(mi.status.termination, Termination::Optimal);
            check_solvers(&p, mi.objective, true);
            for s in [
                "greedy",
                "local-search",
                "priced-search",
                "lagrangian",
                "milp",
            ] {
                if s == "lagrangian" && suffix == "-admit" {
                    continue;
                }
                let r = run(&p, s);
                assert!(
                    r.evaluation.unwrap().feasible,
                    "{s} infeasible on small{suffix} {seed}"
                );
            }
        }
    }
}

#[test]
fn incremental_move_scores_match_the_evaluator() {
    use edgeplan::problems::kv_split::search::Fast;
    use rand::{Rng, SeedableRng};
    let mut checked = 0;
    for (k, size) in ["tiny", "tiny-max", "small", "small-max", "medium"]
        .iter()
        .enumerate()
    {
        for seed in 0..6u64 {
            let p = prep(&generate::generate(size, 40 + seed).unwrap());
            let start = run(&p, "priced-search");
            if !start.evaluation.as_ref().is_some_and(|e| e.feasible) {
                continue;
            }
            let lists: Vec<_> = p.users.iter().map(|u| u.cands.clone()).collect();
            let plan = start.solution.unwrap().to_plan(&p).unwrap();
            let pick: Vec<usize> = plan
                .iter()
                .enumerate()
                .map(|(u, c)| lists[u].iter().position(|x| x.0 == *c).unwrap())
                .collect();
            let mut st = Fast::new(&p, &lists, &pick);
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(k as u64 * 100 + seed);
            for _ in 0..300 {
                let u = r.random_range(0..lists.len());
                let j = r.random_range(0..lists[u].len());
                let mut plan = st.plan();
                plan[u] = lists[u][j].0;
                let ev = p.evaluate_plan(&plan);
                match st.eval(u, j) {
                    Some(v) => {
                        assert!(
                            ev.violations.is_empty(),
                            "{size} {seed}: {:?}",
                            ev.violations
                        );
                        assert!(
                            close(v, ev.objective),
                            "{size} {seed}: {v} vs {}",
                            ev.objective
                        );
                        st.set(u, j);
                        assert!(close(st.objective(), ev.objective));
                        checked += 1;
                    }
                    None => assert!(
                        !ev.violations.is_empty(),
                        "{size} {seed}: feasible move refused"
                    ),
                }
            }
        }
    }
    assert!(checked >= 100, "only {checked} moves applied");
}

#[test]
fn best_moves_match_the_evaluated_best_response() {
    // Fast::best_move (O(1) scoring through the mover, own-bound skip) against every candidate of
    // the user evaluated from scratch, with and without a threshold, under both objectives
    use edgeplan::problems::kv_split::search::Fast;
    use rand::{Rng, SeedableRng};
    let mut compared = 0;
    for (k, size) in ["tiny-max", "small", "small-max", "medium-max", "medium"]
        .iter()
        .enumerate()
    {
        for seed in 0..4u64 {
            let p = prep(&generate::generate(size, 60 + seed).unwrap());
            let start = run(&p, "priced-search");
            if !start.evaluation.as_ref().is_some_and(|e| e.feasible) {
                continue;
            }
            let lists: Vec<_> = p.users.iter().map(|u| u.cands.clone()).collect();
            let plan = start.solution.unwrap().to_plan(&p).unwrap();
            let pick: Vec<usize> = plan
                .iter()
                .enumerate()
                .map(|(u, c)| lists[u].iter().position(|x| x.0 == *c).unwrap())
                .collect();
            let mut st = Fast::new(&p, &lists, &pick);
            let zero = vec![0.0; p.servers.len()];
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(k as u64 * 100 + seed);
            for step in 0..40 {
                let u = r.random_range(0..lists.len());
                // the best response from scratch: every candidate of u through evaluate_plan
                let mut best: Option<f64> = None;
                for j in 0..lists[u].len() {
                    let mut plan = st.plan();
                    plan[u] = lists[u][j].0;
                    let ev = p.evaluate_plan(&plan);
                    if ev.violations.is_empty() && best.is_none_or(|b| ev.objective < b) {
                        best = Some(ev.objective);
                    }
                }
                let cur = p.plan_value(&st.plan()).expect("the plan stays feasible");
                // unrestricted: the same best value, and its candidate reaches it
                let fast = st.best_move(u, &zero, f64::INFINITY);
                match (fast, best) {
                    (Some((v, j)), Some(b)) => {
                        assert!(close(v, b), "{size} {seed}: best move {v} vs {b}");
                        let mut plan = st.plan();
                        plan[u] = lists[u][j].0;
                        assert!(close(p.plan_value(&plan).unwrap(), b));
                    }
                    (None, None) => {}
                    (f, b) => panic!("{size} {seed}: best move {f:?} vs best response {b:?}"),
                }
                // below the current value: found exactly when the best response improves
                let below = cur * (1.0 - 1e-6);
                match st.best_move(u, &zero, below) {
                    Some((v, _)) if v < below => {
                        assert!(close(v, best.unwrap()), "{size} {seed}: {v} vs {best:?}")
                    }
                    _ => assert!(
                        best.is_none_or(|b| b >= below * (1.0 - 1e-9)),
                        "{size} {seed}: an improving move {best:?} < {below} was missed"
                    ),
                }
                compared += 1;
                // move on: a random feasible move, or the best one every fourth step
                let j = if step % 4 == 0 {
                    fast.map(|x| x.1)
                } else {
                    let j = r.random_range(0..lists[u].len());
                    st.eval(u, j).map(|_| j)
                };
                if let Some(j) = j {
                    st.set(u, j);
                }
            }
        }
    }
    assert!(compared >= 200, "only {compared} best moves compared");
}

fn optimum(inst: &KvSplitInstance) -> Option<f64> {
    run(&prep(inst), "milp").objective
}

#[test]
fn more_server_memory_or_uplink_never_hurts_and_longer_context_never_helps() {
    let mut checked = 0;
    for seed in 0..40u64 {
        let base = generate::generate("tiny", 500 + seed).unwrap();
        let Some(o) = optimum(&base) else { continue };
        checked += 1;
        let mut more_mem = base.clone();
        for s in &mut more_mem.servers {
            s.memory_bytes = s.memory_bytes.map(|m| m * 2.0);
        }
        let o2 = optimum(&more_mem).unwrap();
        assert!(o2 <= o * (1.0 + 1e-9), "memory x2: {o2} > {o}");
        let mut fast = base.clone();
        for u in &mut fast.users {
            u.uplink_bps *= 4.0;
        }
        let o3 = optimum(&fast).unwrap();
        assert!(o3 <= o * (1.0 + 1e-9), "uplink x4: {o3} > {o}");
        let mut long = base.clone();
        for u in &mut long.users {
            u.prompt_len *= 2;
        }
        if let Some(o4) = optimum(&long) {
            assert!(o4 >= o * (1.0 - 1e-9), "context x2: {o4} < {o}");
        }
    }
    assert!(checked >= 10);
}

#[test]
fn lagrangian_bound_is_valid_on_medium_instances() {
    for suffix in ["", "-max"] {
        let p = prep(&generate::generate(&format!("small{suffix}"), 7).unwrap());
        let mi = run(&p, "milp");
        let lg = run(&p, "lagrangian");
        let (o, b) = (mi.objective.unwrap(), lg.bound.unwrap());
        assert!(b <= o * (1.0 + 1e-6), "bound {b} > optimum {o}");
        assert!(lg.objective.unwrap() >= o * (1.0 - 1e-6));
    }
}

fn load(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn worked_example_split_moves_with_context() {
    // Llama-3.1-8B, six end devices + one L4 (22 GB): at 512 tokens every cache fits on the server; at
    // 32k six fp16 caches (128 KiB/token each, ≈4.3 GB per user) no longer fit next to the weights, so
    // the optimum must move layers (and their KV) to the devices or compress the server cache.
    let mut splits = vec![];
    for ctx in ["512", "32k"] {
        let doc = load(&format!(
            "{}/instances/kv_split/llama3.1-8b-phones-l4-{ctx}.json",
            env!("CARGO_MANIFEST_DIR")
        ));
        let r = edgeplan::problems::solve_document(&doc, "auto", &SolveOptions::default()).unwrap();
        assert_eq!(r.status.termination, Termination::Optimal, "{ctx}");
        let sol = r.solution.unwrap();
        let users = sol["users"].as_array().unwrap();
        let mean: f64 = users
            .iter()
            .map(|u| u["split"].as_f64().unwrap())
            .sum::<f64>()
            / users.len() as f64;
        let compressed = users
            .iter()
            .filter(|u| u["server_kv"].as_str().is_some_and(|k| k != "full"))
            .count();
        splits.push((mean, compressed));
    }
    assert!(
        splits[0] != splits[1],
        "split and server KV unchanged from 512 to 32k: {splits:?}"
    );
}

#[test]
fn bad_input_is_reported_with_paths() {
    let base = generate::generate("small", 1).unwrap();
    let cat = Catalog::builtin();
    type Edit = Box<dyn Fn(&mut KvSplitInstance)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|i| i.users[3].uplink_bps = f64::NAN),
            "$.users[3].uplink_bps",
        ),
        (
            Box::new(|i| i.users[0].downlink_bps = -1.0),
            "$.users[0].downlink_bps",
        ),
        (
            Box::new(|i| i.users[1].prompt_len = 0),
            "$.users[1].prompt_len",
        ),
        (
            Box::new(|i| i.users[2].compute_share = 1.5),
            "$.users[2].compute_share",
        ),
        (
            Box::new(|i| i.users[2].device = "iphone-99".into()),
            "$.users[2].device",
        ),
        (
            Box::new(|i| i.users[0].server = Some("nowhere".into())),
            "$.users[0].server",
        ),
        (
            Box::new(|i| i.servers[1].memory_bytes = Some(f64::INFINITY)),
            "$.servers[1].memory_bytes",
        ),
        (Box::new(|i| i.servers.clear()), "$.servers"),
        (Box::new(|i| i.users.clear()), "$.users"),
        (
            Box::new(|i| i.model.name = "llama-9".into()),
            "$.model.name",
        ),
        (Box::new(|i| i.model.blocks = Some(999)), "$.model.blocks"),
        (
            Box::new(|i| i.kv_options[2].kind = KvKind::Quantized { bits: 3 }),
            "$.kv_options[2].kind.quantized.bits",
        ),
        (
            Box::new(|i| i.kv_options[0].accuracy_cost = -0.1),
            "$.kv_options[0].accuracy_cost",
        ),
        (
            Box::new(|i| {
                i.objective = Objective::Admitted;
                i.users[4].latency_target_s = None;
            }),
            "$.users",
        ),
    ];
    for (f, path) in cases {
        let mut i = base.clone();
        f(&mut i);
        let e = KvSplit::prepare(&i, cat).expect_err(path).to_string();
        assert!(e.contains(path), "expected path {path} in: {e}");
    }
}

/// Reduced-cost fixing is exact: every feasible plan (over the pruned candidates, enumerated) that
/// uses candidate `j` of user `u` is worth at least the Lagrangian bound plus `rc[u][j]`.
#[test]
fn lagrangian_reduced_costs_are_valid_on_tiny_instances() {
    use edgeplan::problems::kv_split::lagrangian::subgradient;
    use edgeplan::solve::Context;
    let mut checked = 0;
    for suffix in ["", "-max", "-fixed"] {
        for seed in 0..40u64 {
            let p = prep(&generate::generate(&format!("tiny{suffix}"), 500 + seed).unwrap());
            let lists: Vec<_> = p.users.iter().map(|u| u.cands.clone()).collect();
            let combos: usize = lists.iter().map(|l| l.len()).product();
            if combos == 0 || combos > 20_000 {
                continue;
            }
            let opts = SolveOptions::default();
            let mut obs = NoObserver;
            let ctx = Context::new(&opts, &mut obs, StopFlag::new());
            let d = subgradient(&p, &lists, vec![], f64::INFINITY, 60, false, &ctx);
            if !d.bound.is_finite() {
                continue;
            }
            // best[u][j]: the best feasible plan with user u at candidate j
            let mut best: Vec<Vec<f64>> =
                lists.iter().map(|l| vec![f64::INFINITY; l.len()]).collect();
            let mut idx = vec![0usize; lists.len()];
            loop {
                let plan: Vec<_> = idx
                    .iter()
                    .enumerate()
                    .map(|(u, &j)| lists[u][j].0)
                    .collect();
                if let Some(v) = p.plan_value(&plan) {
                    for (u, &j) in idx.iter().enumerate() {
                        best[u][j] = best[u][j].min(v);
                    }
                }
                let mut k = 0;
                while k < idx.len() {
                    idx[k] += 1;
                    if idx[k] < lists[k].len() {
                        break;
                    }
                    idx[k] = 0;
                    k += 1;
                }
                if k == idx.len() {
                    break;
                }
            }
            for (u, l) in lists.iter().enumerate() {
                for j in 0..l.len() {
                    let lb = d.bound + d.rc[u][j];
                    assert!(
                        lb <= best[u][j] || close(lb, best[u][j]),
                        "tiny{suffix} {seed}: user {u} candidate {j}: {lb} > {}",
                        best[u][j]
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 200, "only {checked} candidates checked");
}

/// The MILP's neighbourhood search (sub-MILPs over a few freed users, the others fixed): the plan
/// it returns is feasible, evaluates to the value it reports, is no worse than its start (the worst
/// feasible plan) and no better than the brute-force optimum; on tiny instances every user is
/// freed and every server is in the neighbourhood, so one sub-MILP reaches the optimum.
#[test]
fn neighbourhood_search_returns_valid_plans_and_reaches_tiny_optima() {
    use edgeplan::problems::kv_split::milp::neighbourhood_search;
    use edgeplan::solve::Context;
    let mut checked = 0;
    for (k, suffix) in ["", "-max", "-fixed"].iter().enumerate() {
        for seed in 0..30u64 {
            let p = prep(
                &generate::generate(&format!("tiny{suffix}"), 700 + 100 * k as u64 + seed).unwrap(),
            );
            let bf = run(&p, "brute-force");
            let Some(opt) = bf.objective else { continue };
            let lists: Vec<_> = p.users.iter().map(|u| u.cands.clone()).collect();
            let combos: usize = lists.iter().map(|l| l.len()).product();
            if combos == 0 || combos > 20_000 {
                continue;
            }
            // the worst feasible plan
            let mut worst: Option<(Vec<usize>, f64)> = None;
            let mut idx = vec![0usize; lists.len()];
            loop {
                let plan: Vec<_> = idx
                    .iter()
                    .enumerate()
                    .map(|(u, &j)| lists[u][j].0)
                    .collect();
                if let Some(v) = p.plan_value(&plan) {
                    if worst.as_ref().is_none_or(|w| v > w.1) {
                        worst = Some((idx.clone(), v));
                    }
                }
                let mut u = 0;
                while u < idx.len() {
                    idx[u] += 1;
                    if idx[u] < lists[u].len() {
                        break;
                    }
                    idx[u] = 0;
                    u += 1;
                }
                if u == idx.len() {
                    break;
                }
            }
            let Some(mut best) = worst else { continue };
            let start = best.1;
            let opts = SolveOptions::default();
            let mut obs = NoObserver;
            let ctx = Context::new(&opts, &mut obs, StopFlag::new());
            neighbourhood_search(&p, &lists, &mut best, &ctx, 1, f64::NEG_INFINITY).unwrap();
            let plan: Vec<_> = (0..lists.len()).map(|u| lists[u][best.0[u]].0).collect();
            let v = p.plan_value(&plan).expect("infeasible plan");
            assert!(
                close(v, best.1),
                "tiny{suffix} {seed}: {v} vs reported {}",
                best.1
            );
            assert!(
                v <= start || close(v, start),
                "tiny{suffix} {seed}: {v} > start {start}"
            );
            assert!(
                v >= opt || close(v, opt),
                "tiny{suffix} {seed}: {v} < optimum {opt}"
            );
            assert!(
                close(v, opt),
                "tiny{suffix} {seed}: {v} after one sub-MILP, optimum {opt}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} instances checked");
}
