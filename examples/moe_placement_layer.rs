//! One layer of the Mixtral bench instance through the `milp` layer model, with the HiGHS log
//! (`cargo run --release --example moe_placement_layer -- [layer] [limit_s]`).

use edgeplan::catalog::Catalog;
use edgeplan::problems::moe_placement::generate::catalog_instance;
use edgeplan::problems::moe_placement::model::{solve_layer, Mode};
use edgeplan::problems::moe_placement::MoePlacement;
use edgeplan::solve::{Family, SolveOptions, StopFlag};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let l: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    let limit: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let devices = ["a100-80gb-pcie", "l40s", "rtx-4090", "jetson-agx-orin-64gb"];
    let inst = catalog_instance("mixtral-8x7b", &devices, 8, 1).unwrap();
    let p = MoePlacement::prepare(&inst, Catalog::builtin()).unwrap();
    let opts = SolveOptions {
        verbose: true,
        ..Default::default()
    };
    let t = Instant::now();
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
