//! Criterion benches of the `moe_placement` family (`cargo bench --bench moe_placement -- --quick`).
//!
//! - `milp/mixtral-8x7b-32x8-s8`: Mixtral 8x7B (32 MoE layers × 8 experts) on 8 servers (A100-80GB,
//!   L40S, RTX 4090, Jetson AGX Orin, twice), latency objective, proven optimum;
//! - `greedy/58x256x32`, `eplb/58x256x32`: 58 layers × 256 experts on 32 servers (DeepSeek-V3's
//!   shape, explicit sizes);
//! - `greedy/mixtral-8x7b-32x8-s8`, `ils/mixtral-8x7b-32x8-s8`, `lp-round/mixtral-8x7b-32x8-s8`;
//! - `lagrangian-bnb/mixtral-8x7b-32x8-s8`: the same instance (latency), proven optimum by the
//!   Lagrangian branch and bound (no limit; its 5 s run is printed once);
//! - `branch-and-bound/mixtral-8x7b-32x8-s8-maxload`: the same servers under the `max_load` objective
//!   (EPLB's metric), proven optimum by the combinatorial search (no time limit).
//!
//! Printed once before the criterion groups (one run each, too slow for criterion's 10 samples):
//! DeepSeek-V2-Lite (26 MoE layers × 64 experts) on 16 servers, MILP to a 1 % gap with a 30 s limit,
//! then `greedy` and `ils` against its bound.
//! `MOE_GAP=n` also prints the gap of `greedy`, `ils`, `lp-round` and `eplb` to the MILP's bound over `n`
//! generated `4x16x6` instances of each objective.

use criterion::{criterion_group, criterion_main, Criterion};
use edgeplan::catalog::Catalog;
use edgeplan::problems::moe_placement::generate::{catalog_instance, table_instance};
use edgeplan::problems::moe_placement::*;
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag};
use std::hint::black_box;
use std::time::Duration;

const DEVICES: &[&str] = &["a100-80gb-pcie", "l40s", "rtx-4090", "jetson-agx-orin-64gb"];

fn prep(i: &MoePlacementInstance) -> Prepared {
    MoePlacement::prepare(i, Catalog::builtin()).unwrap()
}

fn solve(p: &Prepared, name: &str, opts: &SolveOptions) -> solve::SolveResult<MoeSolution> {
    let s = solve::find_solver::<MoePlacement>(p, name).unwrap();
    solve::run::<MoePlacement>(p, s.as_ref(), opts, &mut NoObserver, StopFlag::new()).unwrap()
}

fn one_shot() {
    let p = prep(&catalog_instance("deepseek-v2-lite", DEVICES, 16, 1).unwrap());
    let opts = SolveOptions {
        mip_rel_gap: Some(0.01),
        time_limit_s: Some(30.0),
        ..Default::default()
    };
    let r = solve(&p, "milp", &opts);
    eprintln!(
        "one-shot milp/deepseek-v2-lite-26x64-s16 (gap 1%, limit 30 s): status {} time {:.2} s objective {:?} bound {:?} gap {:?}",
        r.status, r.wall_time_s, r.objective, r.bound, r.gap
    );
    let g = solve(&p, "greedy", &SolveOptions::default());
    eprintln!(
        "one-shot greedy/deepseek-v2-lite-26x64-s16: time {:.3} s objective {:?} (gap to milp bound {:.4})",
        g.wall_time_s,
        g.objective,
        g.objective.unwrap() / r.bound.unwrap() - 1.0
    );
    let i = solve(&p, "ils", &SolveOptions::default());
    eprintln!(
        "one-shot ils/deepseek-v2-lite-26x64-s16: time {:.3} s objective {:?} (gap to milp bound {:.4})",
        i.wall_time_s,
        i.objective,
        i.objective.unwrap() / r.bound.unwrap() - 1.0
    );
}

fn gap_report(n: u64) {
    for suffix in ["", "-maxload"] {
        let mut rows: Vec<(String, Vec<f64>)> = ["greedy", "ils", "lp-round", "eplb"]
            .iter()
            .map(|s| (s.to_string(), vec![]))
            .collect();
        let mut optimal = 0;
        for seed in 0..n {
            let p = prep(&MoePlacement::generate(&format!("4x16x6{suffix}"), 500 + seed).unwrap());
            let opts = SolveOptions {
                time_limit_s: Some(20.0),
                ..Default::default()
            };
            let m = solve(&p, "milp", &opts);
            if m.status.termination == solve::Termination::Optimal {
                optimal += 1;
            }
            let b = m.bound.unwrap();
            for (name, v) in rows.iter_mut() {
                let r = solve(&p, name, &SolveOptions::default());
                if let Some(o) = r.objective {
                    v.push(o / b - 1.0);
                }
            }
        }
        eprintln!("gap to the MILP bound, 4x16x6{suffix}, {n} seeds ({optimal} proven optimal):");
        for (name, v) in rows.iter_mut() {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let k = v.len().max(1);
            eprintln!(
                "  {name:9} mean {:.4} median {:.4} max {:.4}",
                v.iter().sum::<f64>() / k as f64,
                v[v.len() / 2],
                v[v.len() - 1]
            );
        }
    }
}

fn benches(c: &mut Criterion) {
    one_shot();
    if let Some(n) = std::env::var("MOE_GAP").ok().and_then(|v| v.parse().ok()) {
        gap_report(n);
    }
    let mix = prep(&catalog_instance("mixtral-8x7b", DEVICES, 8, 1).unwrap());
    let mut mix_ml = catalog_instance("mixtral-8x7b", DEVICES, 8, 1).unwrap();
    mix_ml.objective = Objective::MaxLoad;
    let mix_ml = prep(&mix_ml);
    let r = solve(&mix_ml, "branch-and-bound", &SolveOptions::default());
    eprintln!(
        "one-shot branch-and-bound/mixtral-8x7b-32x8-s8-maxload (no limit): status {} time {:.2} s objective {:?} bound {:?} nodes {}",
        r.status, r.wall_time_s, r.objective, r.bound, r.nodes
    );
    let big = prep(&table_instance(58, 256, 32, 1));
    let opts = SolveOptions::default();
    // the MILP runs under the 5 s target; its status and gap at the limit are printed once
    let milp_opts = SolveOptions {
        time_limit_s: Some(5.0),
        ..Default::default()
    };
    let r = solve(&mix, "milp", &milp_opts);
    eprintln!(
        "one-shot milp/mixtral-8x7b-32x8-s8 (limit 5 s): status {} time {:.2} s objective {:?} bound {:?} gap {:?}",
        r.status, r.wall_time_s, r.objective, r.bound, r.gap
    );
    // the Lagrangian branch and bound proves the latency optimum (no limit)
    let r = solve(&mix, "lagrangian-bnb", &opts);
    eprintln!(
        "one-shot lagrangian-bnb/mixtral-8x7b-32x8-s8 (no limit): status {} time {:.2} s objective {:?} bound {:?} nodes {}",
        r.status, r.wall_time_s, r.objective, r.bound, r.nodes
    );
    let r = solve(&mix, "lagrangian-bnb", &milp_opts);
    eprintln!(
        "one-shot lagrangian-bnb/mixtral-8x7b-32x8-s8 (limit 5 s): status {} time {:.2} s objective {:?} bound {:?} gap {:?}",
        r.status, r.wall_time_s, r.objective, r.bound, r.gap
    );
    let mut g = c.benchmark_group("moe_placement");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("milp/mixtral-8x7b-32x8-s8", |b| {
        b.iter(|| black_box(solve(&mix, "milp", &milp_opts)))
    });
    g.bench_function("lagrangian-bnb/mixtral-8x7b-32x8-s8", |b| {
        b.iter(|| black_box(solve(&mix, "lagrangian-bnb", &opts)))
    });
    g.bench_function("branch-and-bound/mixtral-8x7b-32x8-s8-maxload", |b| {
        b.iter(|| black_box(solve(&mix_ml, "branch-and-bound", &opts)))
    });
    g.bench_function("greedy/mixtral-8x7b-32x8-s8", |b| {
        b.iter(|| black_box(solve(&mix, "greedy", &opts)))
    });
    g.bench_function("ils/mixtral-8x7b-32x8-s8", |b| {
        b.iter(|| black_box(solve(&mix, "ils", &opts)))
    });
    g.bench_function("lp-round/mixtral-8x7b-32x8-s8", |b| {
        b.iter(|| black_box(solve(&mix, "lp-round", &opts)))
    });
    g.bench_function("greedy/58x256x32", |b| {
        b.iter(|| black_box(solve(&big, "greedy", &opts)))
    });
    g.bench_function("eplb/58x256x32", |b| {
        b.iter(|| black_box(solve(&big, "eplb", &opts)))
    });
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
