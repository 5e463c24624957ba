//! Criterion benches of the `kv_split` family (run with `cargo bench --bench kv_split -- --quick`).
//!
//! The acceptance size: `large` = 200 users, LLaMA-2-13B (40 blocks + embedding + head = 42 layers),
//! 4 edge servers, half of the associations decided by the solver.
//! - `milp-1pct/large`: MILP to a 1 % relative gap (10 s limit);
//! - `local-search/large`, `greedy/large`: the heuristics;
//! - `lagrangian/large`: the subgradient method (150 iterations).
//!
//! `KV_SPLIT_GAP=N` first prints, over N generated large instances, the heuristics' gap to the MILP's
//! best (MILP at 1 % gap, 10 s) and the MILP times.

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
    for seed in 0..n {
        for suffix in ["large", "large-max"] {
            let p = prep(suffix, 100 + seed);
            let m = solve(&p, "milp", &milp_o);
            let Some(best) = m.objective else { continue };
            mt.push(m.wall_time_s);
            mg.push(m.gap.unwrap_or(f64::NAN));
            for (name, gaps, times) in &mut rows {
                let r = solve(&p, name, &d);
                gaps.push(r.objective.map_or(f64::INFINITY, |o| o / best - 1.0));
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
    for (name, gaps, times) in &mut rows {
        let (a, b, c, d) = stats(gaps);
        let (_, tb, _, td) = stats(times);
        eprintln!("{name}: gap to milp min {a:.4} mean {b:.4} median {c:.4} max {d:.4}; time mean {tb:.4} max {td:.4} s");
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
