//! Criterion benches of the `kv_split` family (run with `cargo bench --bench kv_split -- --quick`).
//!
//! The acceptance size: `large` = 200 users, LLaMA-2-13B (40 blocks + embedding + head = 42 layers),
//! 4 edge servers, half of the associations decided by the solver.
//! - `milp-1pct/large`: MILP to a 1 % relative gap (10 s limit);
//! - `priced-search/large`, `local-search/large`, `greedy/large`: the heuristics;
//! - `priced-search/large-max`: the priced search under the maximum latency (seed 1);
//! - `lagrangian/large`: the subgradient method (150 iterations).
//!
//! `KV_SPLIT_GAP=N` first prints, over N generated `large` and N `large-max` instances, the MILP's
//! times and reported gaps, the best known plan's gap to the MILP bound, and each heuristic's and
//! baseline's gap to the best known plan (the MILP's incumbent or a better heuristic plan).

use criterion::{criterion_group, criterion_main, Criterion};
use edgeplan::catalog::Catalog;
use edgeplan::problems::kv_split::{
    cost::Prepared, generate, milp::options_with_gap, KvSplit, KvSplitSolution,
};
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag};
use std::hint::black_box;
use std::time::Duration;

fn prep(size: &str, seed: u64) -> Prepared {
    KvSplit::prepare(&generate::generate(size, seed).unwrap(), Catalog::builtin()).unwrap()
}

fn solve(p: &Prepared, name: &str, o: &SolveOptions) -> solve::SolveResult<KvSplitSolution> {
    let s = solve::find_solver::<KvSplit>(p, name).unwrap();
    solve::run::<KvSplit>(p, s.as_ref(), o, &mut NoObserver, StopFlag::new()).unwrap()
}

fn gap_report(n: u64) {
    let milp_o = options_with_gap(0.01, 10.0);
    let d = SolveOptions::default();
    let mut rows: Vec<(String, Vec<f64>, Vec<f64>)> = [
        "priced-search",
        "greedy",
        "local-search",
        "lagrangian",
        "cache-everywhere",
        "fixed-split",
        "all-offload",
    ]
    .iter()
    .map(|s| (s.to_string(), vec![], vec![]))
    .collect();
    let mut mt = vec![];
    let mut mg = vec![];
    let mut lb_gap = vec![];
    for seed in 0..n {
        for suffix in ["large", "large-max"] {
            let p = prep(suffix, 100 + seed);
            let m = solve(&p, "milp", &milp_o);
            let Some(mut best) = m.objective else {
                continue;
            };
            mt.push(m.wall_time_s);
            mg.push(m.gap.unwrap_or(f64::NAN));
            let results: Vec<_> = rows.iter().map(|r| solve(&p, &r.0, &d)).collect();
            // the best known plan: the MILP's or any heuristic's
            for r in &results {
                if let Some(o) = r.objective {
                    if r.evaluation.as_ref().is_some_and(|e| e.feasible) {
                        best = best.min(o);
                    }
                }
            }
            if let Some(b) = m.bound {
                lb_gap.push(best / b - 1.0);
            }
            for ((_, gaps, times), r) in rows.iter_mut().zip(results) {
                let feasible = r.evaluation.as_ref().is_some_and(|e| e.feasible);
                gaps.push(match r.objective {
                    Some(o) if feasible => o / best - 1.0,
                    _ => f64::INFINITY,
                });
                times.push(r.wall_time_s);
            }
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (v[0], mean, v[v.len() / 2], v[v.len() - 1])
    };
    let (a, b, c, d) = stats(&mut mt);
    eprintln!("milp (1% gap) time s: min {a:.3} mean {b:.3} median {c:.3} max {d:.3}");
    let (a, b, c, d) = stats(&mut mg);
    eprintln!("milp reported gap: min {a:.4} mean {b:.4} median {c:.4} max {d:.4}");
    if !lb_gap.is_empty() {
        let (a, b, c, d) = stats(&mut lb_gap);
        eprintln!("best known / milp bound - 1: min {a:.4} mean {b:.4} median {c:.4} max {d:.4}");
    }
    for (name, gaps, times) in &mut rows {
        let (a, b, c, d) = stats(gaps);
        let (_, tb, _, td) = stats(times);
        eprintln!("{name}: gap to best known min {a:.4} mean {b:.4} median {c:.4} max {d:.4}; time mean {tb:.4} max {td:.4} s");
    }
}

fn benches(c: &mut Criterion) {
    if let Some(n) = std::env::var("KV_SPLIT_GAP")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        gap_report(n);
    }
    let p = prep("large", 1);
    let d = SolveOptions::default();
    let m = options_with_gap(0.01, 10.0);
    let mut g = c.benchmark_group("kv_split");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("milp-1pct/large", |b| {
        b.iter(|| black_box(solve(&p, "milp", &m)))
    });
    g.bench_function("priced-search/large", |b| {
        b.iter(|| black_box(solve(&p, "priced-search", &d)))
    });
    let p_max = prep("large-max", 1);
    g.bench_function("priced-search/large-max", |b| {
        b.iter(|| black_box(solve(&p_max, "priced-search", &d)))
    });
    g.bench_function("local-search/large", |b| {
        b.iter(|| black_box(solve(&p, "local-search", &d)))
    });
    g.bench_function("greedy/large", |b| {
        b.iter(|| black_box(solve(&p, "greedy", &d)))
    });
    g.bench_function("lagrangian/large", |b| {
        b.iter(|| black_box(solve(&p, "lagrangian", &d)))
    });
    g.finish();
}

criterion_group!(kv, benches);
criterion_main!(kv);
