//! The `branch-and-bound` search layer by layer on a catalog bench instance under `max_load`
//! (`cargo run --release --example moe_placement_bnb_layers -- mixtral-8x7b 8 2`: model, servers,
//! seconds per layer): nodes, proven value, bound, the greedy start and the balanced load per layer,
//! one thread.

use edgeplan::catalog::Catalog;
use edgeplan::problems::moe_placement::generate::catalog_instance;
use edgeplan::problems::moe_placement::{bnb, greedy, MoePlacement};
use edgeplan::solve::{Family, StopFlag};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("mixtral-8x7b", |s| s.as_str());
    let servers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let limit: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let devices = ["a100-80gb-pcie", "l40s", "rtx-4090", "jetson-agx-orin-64gb"];
    let mut inst = catalog_instance(model, &devices, servers, 1).unwrap();
    inst.objective = edgeplan::problems::moe_placement::Objective::MaxLoad;
    let p = MoePlacement::prepare(&inst, Catalog::builtin()).unwrap();
    let warm = greedy::plans(&p, None, StopFlag::new()).0;
    let stop = StopFlag::new();
    for l in 0..p.layers {
        let t = Instant::now();
        let r = bnb::solve_layer(
            &p,
            l,
            Some(&warm[l]),
            Some(t + Duration::from_secs_f64(limit)),
            None,
            &stop,
        );
        let wv = p.plan_layer_value(l, &warm[l]).objective;
        println!("layer {l:2}: complete {} nodes {:8} value {:.6} bound {:.6} greedy {:.6} balanced {:.6} in {:.3}s",
            r.complete, r.nodes, r.value, r.bound, wv, p.layer_lower_bound(l), t.elapsed().as_secs_f64());
    }
}
