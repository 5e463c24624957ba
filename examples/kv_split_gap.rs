//! Gap of the `kv_split` heuristics on generated instances (development aid):
//! `cargo run --release --example kv_split_gap -- [size] [seeds] [solvers,...] [first seed]`.

use edgeplan::catalog::Catalog;
use edgeplan::problems::kv_split::{generate, milp::options_with_gap, KvSplit};
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size = args.get(1).map_or("large", |s| s.as_str());
    let seeds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let solvers: Vec<String> = args
        .get(3)
        .map_or("priced-search,local-search,lagrangian", |s| s.as_str())
        .split(',')
        .map(String::from)
        .collect();
    let first: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(100);
    for seed in first..first + seeds {
        let p =
            KvSplit::prepare(&generate::generate(size, seed).unwrap(), Catalog::builtin()).unwrap();
        let mut line = format!("{size} seed {seed}:");
        for name in &solvers {
            let o = if name == "milp" {
                SolveOptions {
                    verbose: std::env::var("KV_VERBOSE").is_ok(),
                    ..options_with_gap(
                        0.01,
                        std::env::var("KV_TIME")
                            .ok()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(10.0),
                    )
                }
            } else {
                SolveOptions::default()
            };
            let s = solve::find_solver::<KvSplit>(&p, name).unwrap();
            let r = solve::run::<KvSplit>(&p, s.as_ref(), &o, &mut NoObserver, StopFlag::new())
                .unwrap();
            if std::env::var("KV_NOTES").is_ok() {
                eprintln!("{name}: {:?} {:?}", r.status, r.notes);
            }
            line += &format!(
                "  {name} {:.6} (bound {}) {:.3}s;",
                r.objective.unwrap_or(f64::NAN),
                r.bound.map_or("-".into(), |b| format!("{b:.6}")),
                r.wall_time_s
            );
        }
        println!("{line}");
    }
}
