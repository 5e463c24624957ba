//! `greedy` against `ils` (with chosen parameters) on a bench instance, layer by layer totals:
//! `cargo run --release --example moe_placement_ils -- deepseek-v2-lite 16 [rounds] [q,q,..] [seed] [kick] [heavy]`
//! (`catalog_instance(model, devices, servers, 1)`, latency objective). Prints the objective, its
//! dispatch and compute parts, and the wall time of each. `MOE_LP=1`: the per-layer LP bounds;
//! `MOE_MILP=secs`: HiGHS on layer 0 warm-started from the `ils` plan.

use edgeplan::catalog::Catalog;
use edgeplan::problems::moe_placement::generate::catalog_instance;
use edgeplan::problems::moe_placement::*;
use edgeplan::solve::{Family, StopFlag};
use std::time::Instant;

fn report(p: &Prepared, name: &str, plans: &[LayerPlan], t: f64) {
    let ev = MoePlacement::evaluate(p, &MoeSolution::from_plans(p, plans));
    assert!(ev.feasible, "{name}: {:?}", ev.violations);
    println!(
        "{name}: objective {:.5} (dispatch {:.5} + compute {:.5}) in {t:.2} s",
        ev.objective, ev.metrics["comm_s_per_token"], ev.metrics["compute_s_per_token"]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("deepseek-v2-lite", |s| s.as_str());
    let servers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let mut prm = ils::Params::default();
    if let Some(r) = args.get(3).and_then(|a| a.parse().ok()) {
        prm.rounds = r;
    }
    if let Some(q) = args.get(4) {
        prm.q = q.split(',').filter_map(|x| x.parse().ok()).collect();
    }
    if let Some(s) = args.get(5).and_then(|a| a.parse().ok()) {
        prm.seed = s;
    }
    if let Some(k) = args.get(6).and_then(|a| a.parse().ok()) {
        prm.kick = k;
    }
    if let Some(h) = args.get(7).and_then(|a| a.parse().ok()) {
        prm.heavy = h;
    }

    let devices = ["a100-80gb-pcie", "l40s", "rtx-4090", "jetson-agx-orin-64gb"];
    let inst = catalog_instance(model, &devices, servers, 1).unwrap();
    let p = MoePlacement::prepare(&inst, Catalog::builtin()).unwrap();
    let bal: f64 = (0..p.layers).map(|l| p.layer_lower_bound(l)).sum();
    println!("{model} on {servers} servers: balanced-load bound {bal:.5}, {prm:?}");
    let t = Instant::now();
    let (g, _) = greedy::plans(&p, None, StopFlag::new());
    report(&p, "greedy", &g, t.elapsed().as_secs_f64());
    let t = Instant::now();
    let (i, moves) = ils::plans_with(&p, &prm, None, StopFlag::new());
    report(
        &p,
        &format!("ils ({moves} moves)"),
        &i,
        t.elapsed().as_secs_f64(),
    );
    if std::env::var("MOE_LP").is_ok() {
        // per layer: the LP relaxation bound against greedy and ils
        use edgeplan::problems::moe_placement::model::{solve_layer, Mode};
        use edgeplan::solve::SolveOptions;
        let mut tot = 0.0;
        for l in 0..p.layers {
            let opts = SolveOptions::default();
            let r = solve_layer(&p, l, Mode::Relaxed, &opts, None, StopFlag::new(), None).unwrap();
            let b = r.bound.unwrap_or(f64::NAN);
            tot += b;
            let (gv, iv) = (p.plan_layer_value(l, &g[l]), p.plan_layer_value(l, &i[l]));
            println!(
                "layer {l:2}: lp {b:.6} greedy +{:5.2} % ils +{:5.2} % (dispatch {:.6} load {:.6})",
                100.0 * (gv.objective / b - 1.0),
                100.0 * (iv.objective / b - 1.0),
                iv.comm_s,
                p.tau * iv.max_util
            );
        }
        println!("lp total {tot:.5}");
    }
    if let Some(secs) = std::env::var("MOE_MILP")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        // layer 0: HiGHS warm-started from the ils plan
        use edgeplan::problems::moe_placement::model::{solve_layer, Mode};
        use edgeplan::solve::SolveOptions;
        let dl = Instant::now() + std::time::Duration::from_secs_f64(secs);
        let opts = SolveOptions::default();
        let r = solve_layer(
            &p,
            0,
            Mode::Integer,
            &opts,
            Some(dl),
            StopFlag::new(),
            Some(&i[0]),
        )
        .unwrap();
        let inc = r
            .plan
            .as_ref()
            .map(|pl| p.plan_layer_value(0, pl).objective);
        println!(
            "layer 0 milp from ils ({secs} s): ils {:.6} incumbent {inc:?} bound {:?} {:?}",
            p.plan_layer_value(0, &i[0]).objective,
            r.bound,
            r.status
        );
    }
}
