//! Criterion benches of the `pipeline` family (run with `cargo bench --bench pipeline -- --quick`).
//!
//! - `exact/large-82x16`: LLaMA-2-70B (embedding + 80 blocks + head) on 16 heterogeneous nodes with
//!   per-pair random links, proven optimum (bisection + subset-bitset DP);
//! - `local-search/large-82x16`: the heuristic on the same instance;
//! - `local-search/128x64`: 128 layers on 64 nodes;
//! - `exact/large-linkbound`, `local-search/large-linkbound`: the `-linkbound` regime (slow, uneven
//!   per-pair links, tight memory, shared fast nodes), where heuristics and the optimum separate.
//!
//! `PIPELINE_GAP=50` first prints the local-search gap to the proven optimum over that many generated
//! large instances (min / mean / median / p90 / max, and exact solve times).

use criterion::{criterion_group, criterion_main, Criterion};
use edgeplan::catalog::Catalog;
use edgeplan::problems::pipeline::{cost::Prepared, Pipeline};
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag, Termination};
use std::hint::black_box;
use std::time::Duration;

fn prep(size: &str, seed: u64) -> Prepared {
    Pipeline::prepare(&Pipeline::generate(size, seed).unwrap(), Catalog::builtin()).unwrap()
}

fn solve(
    p: &Prepared,
    name: &str,
) -> solve::SolveResult<edgeplan::problems::pipeline::PipelineSolution> {
    let s = solve::find_solver::<Pipeline>(p, name).unwrap();
    solve::run::<Pipeline>(
        p,
        s.as_ref(),
        &SolveOptions::default(),
        &mut NoObserver,
        StopFlag::new(),
    )
    .unwrap()
}

fn gap_report(n: u64) {
    let mut gaps = vec![];
    let mut times = vec![];
    let mut htimes = vec![];
    for seed in 0..n {
        let p = prep("large", 1000 + seed);
        let e = solve(&p, "exact");
        assert_eq!(e.status.termination, Termination::Optimal);
        let h = solve(&p, "local-search");
        gaps.push(h.objective.unwrap() / e.objective.unwrap() - 1.0);
        times.push(e.wall_time_s);
        htimes.push(h.wall_time_s);
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let k = v.len();
        format!(
            "min {:.4} mean {:.4} median {:.4} p90 {:.4} max {:.4}",
            v[0],
            v.iter().sum::<f64>() / k as f64,
            v[k / 2],
            v[(k * 9 / 10).min(k - 1)],
            v[k - 1]
        )
    };
    println!("pipeline gap report over {n} generated large (82x16) instances");
    println!("  local-search relative gap: {}", stats(&mut gaps));
    println!("  local-search wall s:       {}", stats(&mut htimes));
    println!("  exact wall s:              {}", stats(&mut times));
}

fn benches(c: &mut Criterion) {
    if let Some(n) = std::env::var("PIPELINE_GAP")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        gap_report(n);
    }
    let large = prep("large", 7);
    let big = prep("128x64", 7);
    let lb = prep("large-linkbound", 7);
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("exact/large-82x16", |b| {
        b.iter(|| black_box(solve(&large, "exact")))
    });
    g.bench_function("local-search/large-82x16", |b| {
        b.iter(|| black_box(solve(&large, "local-search")))
    });
    g.bench_function("local-search/128x64", |b| {
        b.iter(|| black_box(solve(&big, "local-search")))
    });
    g.bench_function("exact/large-linkbound", |b| {
        b.iter(|| black_box(solve(&lb, "exact")))
    });
    g.bench_function("local-search/large-linkbound", |b| {
        b.iter(|| black_box(solve(&lb, "local-search")))
    });
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
