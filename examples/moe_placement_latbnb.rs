//! The `lagrangian-bnb` search layer by layer on a catalog bench instance under `latency`
//! (`cargo run --release --example moe_placement_latbnb -- mixtral-8x7b 8 0 5`: model, servers,
//! layer or `all`, seconds per layer): the `ils` start, the root bound, the proven value or the
//! bound at the limit, nodes and leaf LPs, one thread. Settings of `latbnb::Params` for
//! experiments: `MOE_ITERS=root,node,leaf` (subgradient iterations), `MOE_SIGMA`, `MOE_PATIENCE`,
//! `MOE_THETA`, `MOE_DEFLECT`, `MOE_CHECK`, `MOE_PHI`; `MOE_NODES` a node limit, `MOE_DEPTH=1` the
//! nodes per depth, bound evaluations and the start's time, `MOE_TWICE=1` a first search whose
//! best plan starts the measured one, `MOE_ILS_ROUNDS` the kicks of the `ils` start.

use edgeplan::catalog::Catalog;
use edgeplan::problems::moe_placement::generate::catalog_instance;
use edgeplan::problems::moe_placement::{ils, latbnb, MoePlacement};
use edgeplan::solve::{Family, StopFlag};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("mixtral-8x7b", |s| s.as_str());
    let servers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let which = args.get(3).map_or("0", |s| s.as_str());
    let limit: f64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let mut prm = latbnb::Params::default();
    if let Ok(v) = std::env::var("MOE_ITERS") {
        let it: Vec<usize> = v.split(',').filter_map(|x| x.parse().ok()).collect();
        if it.len() == 3 {
            prm.root_iters = it[0];
            prm.node_iters = it[1];
            prm.leaf_iters = it[2];
        }
    }
    if let Some(v) = std::env::var("MOE_SIGMA").ok().and_then(|v| v.parse().ok()) {
        prm.sigma = v;
    }
    if let Some(v) = std::env::var("MOE_PATIENCE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        prm.patience = v;
    }
    if let Some(v) = std::env::var("MOE_THETA").ok().and_then(|v| v.parse().ok()) {
        prm.theta = v;
    }
    if let Some(v) = std::env::var("MOE_DEFLECT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        prm.deflect = v;
    }
    if let Some(v) = std::env::var("MOE_CHECK").ok().and_then(|v| v.parse().ok()) {
        prm.check = v;
    }
    if let Some(v) = std::env::var("MOE_PHI").ok().and_then(|v| v.parse().ok()) {
        prm.max_phi = v;
    }
    let node_limit: Option<u64> = std::env::var("MOE_NODES").ok().and_then(|v| v.parse().ok());
    let devices = ["a100-80gb-pcie", "l40s", "rtx-4090", "jetson-agx-orin-64gb"];
    let inst = catalog_instance(model, &devices, servers, 1).unwrap();
    let p = MoePlacement::prepare(&inst, Catalog::builtin()).unwrap();
    let layers: Vec<usize> = if which == "all" {
        (0..p.layers).collect()
    } else {
        vec![which.parse().unwrap_or(0)]
    };
    let stop = StopFlag::new();
    let (mut tot_t, mut tot_v, mut tot_b, mut tot_n) = (0.0, 0.0, 0.0, 0u64);
    let mut tot_ils = 0.0;
    for l in layers {
        // the solver's start: `ils` with `latbnb::START_ROUNDS` kicks (`MOE_ILS_ROUNDS` sets them)
        let mut iprm = ils::Params {
            rounds: latbnb::START_ROUNDS,
            ..ils::Params::default()
        };
        if let Some(r) = std::env::var("MOE_ILS_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            iprm.rounds = r;
        }
        let t_ils = Instant::now();
        let warm = ils::layer_plan(&p, l, None, &iprm, None, None, stop.clone()).0;
        let ils_s = t_ils.elapsed().as_secs_f64();
        tot_ils += ils_s;
        if std::env::var("MOE_DEPTH").is_ok() {
            println!("  ils {ils_s:.4} s");
        }
        let mut warm = warm;
        if std::env::var("MOE_TWICE").is_ok() {
            // a first search, then the measured one from its best plan (how much the start matters)
            let r = latbnb::solve_layer(&p, l, Some(&warm), prm, None, node_limit, &stop);
            if let Some(pl) = r.plan {
                warm = pl;
            }
        }
        let wv = p.plan_layer_value(l, &warm).objective;
        let t = Instant::now();
        let r = latbnb::solve_layer(
            &p,
            l,
            Some(&warm),
            prm,
            Some(t + Duration::from_secs_f64(limit)),
            node_limit,
            &stop,
        );
        let dt = t.elapsed().as_secs_f64();
        if std::env::var("MOE_DEPTH").is_ok() {
            println!(
                "  nodes per depth {:?}, bound evaluations {}",
                r.depth_nodes, r.evals
            );
        }
        tot_t += dt;
        tot_v += r.value;
        tot_b += r.bound;
        tot_n += r.nodes;
        println!(
            "layer {l:2}: complete {} nodes {:8} lps {:5} value {:.7} bound {:.7} root {:.7} ({:.2} % below) ils {:.7} in {:.3} s",
            r.complete,
            r.nodes,
            r.lps,
            r.value,
            r.bound,
            r.root_bound,
            100.0 * (1.0 - r.root_bound / r.value),
            wv,
            dt
        );
    }
    println!("total: value {tot_v:.6} bound {tot_b:.6} nodes {tot_n} search time {tot_t:.3} s, ils (start) {tot_ils:.3} s");
}
