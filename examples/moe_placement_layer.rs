//! A bench instance (`catalog_instance(model, devices, servers, 1)`) through `milp`: one layer with
//! the HiGHS log, or all layers with the solver's status, bound and gap
//! (`cargo run --release --example moe_placement_layer -- mixtral-8x7b 8 all 5 [gap]`).

use edgeplan::catalog::Catalog;
use edgeplan::problems::moe_placement::generate::catalog_instance;
use edgeplan::problems::moe_placement::model::{solve_layer, Mode};
use edgeplan::problems::moe_placement::MoePlacement;
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("mixtral-8x7b", |s| s.as_str());
    let servers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let which = args.get(3).map_or("all", |s| s.as_str());
    let limit: f64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let gap: Option<f64> = args.get(5).and_then(|a| a.parse().ok());
    if std::env::var("MOE_NO_CUTS").is_ok() {
        edgeplan::problems::moe_placement::model::COPY_CUTS
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
    let devices = ["a100-80gb-pcie", "l40s", "rtx-4090", "jetson-agx-orin-64gb"];
    let mut inst = catalog_instance(model, &devices, servers, 1).unwrap();
    if std::env::var("MOE_MAXLOAD").is_ok() {
        inst.objective = edgeplan::problems::moe_placement::Objective::MaxLoad;
    }
    if let Ok(path) = std::env::var("MOE_DUMP") {
        std::fs::write(&path, serde_json::to_string_pretty(&inst).unwrap()).unwrap();
    }
    let p = MoePlacement::prepare(&inst, Catalog::builtin()).unwrap();
    let t = Instant::now();
    if which == "all" {
        let opts = SolveOptions {
            time_limit_s: Some(limit),
            mip_rel_gap: gap,
            ..Default::default()
        };
        for name in std::env::var("MOE_SOLVERS")
            .unwrap_or("greedy,eplb,milp".into())
            .split(",")
        {
            let s = solve::find_solver::<MoePlacement>(&p, name).unwrap();
            let t = Instant::now();
            let r =
                solve::run::<MoePlacement>(&p, s.as_ref(), &opts, &mut NoObserver, StopFlag::new())
                    .unwrap();
            println!(
                "{model} {servers} servers {name}: status {} objective {:?} bound {:?} gap {:?} in {:.3} s",
                r.status,
                r.objective,
                r.bound,
                r.gap,
                t.elapsed().as_secs_f64()
            );
        }
        return;
    }
    let l: usize = which.parse().unwrap_or(0);
    let opts = SolveOptions {
        verbose: true,
        mip_rel_gap: gap,
        ..Default::default()
    };
    let dl = Instant::now() + Duration::from_secs_f64(limit);
    let r = solve_layer(&p, l, Mode::Integer, &opts, Some(dl), StopFlag::new(), None).unwrap();
    println!(
        "layer {l}: status {:?} bound {:?} nodes {} in {:.3} s",
        r.status,
        r.bound,
        r.nodes,
        t.elapsed().as_secs_f64()
    );
}
