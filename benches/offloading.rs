//! Criterion benches of the `offloading` family (`cargo bench --bench offloading -- --quick`).
//!
//! - `exact/large-1000`: 1,000 devices (mixed partitionable tasks with fixed-energy and DVFS local
//!   computing, power caps, and Qwen2.5-0.5B requests on phones / Jetsons against an L4; binding
//!   server capacity), to a certified 0.1 % gap (`mip_rel_gap = 1e-3`);
//! - `exact/classic-1000`: You et al.'s classic TDMA model with 1,000 users, same gap;
//! - `exact/ofdma-large-1000`: the `large-1000` instance with OFDMA bandwidth sharing (`Σ b ≤ B`),
//!   same gap;
//! - `exact/narrow-1000`, `exact/ofdma-narrow-1000`: the same with a 50× narrower band (2 MHz for
//!   1,000 devices), where power caps bind (under TDMA 120 devices send at their cap);
//! - `threshold/classic-1000`, `gradient/large-1000`, `gradient/ofdma-large-1000`: the closed-form
//!   policy and dual ascent.

use criterion::{criterion_group, criterion_main, Criterion};
use edgeplan::catalog::Catalog;
use edgeplan::problems::offloading::{Offloading, Prepared};
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag, Termination};
use std::hint::black_box;

fn prep(size: &str, seed: u64) -> Prepared {
    Offloading::prepare(
        &Offloading::generate(size, seed).unwrap(),
        Catalog::builtin(),
    )
    .unwrap()
}

fn solve(
    p: &Prepared,
    name: &str,
) -> solve::SolveResult<edgeplan::problems::offloading::OffloadingSolution> {
    let s = solve::find_solver::<Offloading>(p, name).unwrap();
    let o = SolveOptions {
        mip_rel_gap: Some(1e-3),
        threads: Some(2),
        ..Default::default()
    };
    solve::run::<Offloading>(p, s.as_ref(), &o, &mut NoObserver, StopFlag::new()).unwrap()
}

fn benches(c: &mut Criterion) {
    let large = prep("large", 7);
    let classic = prep("classic-1000", 7);
    let ofdma = prep("ofdma-large", 7);
    // the same instances with a 50× narrower band (power caps bind)
    let narrow = |size: &str| {
        let mut i = Offloading::generate(size, 7).unwrap();
        i.spectrum.bandwidth_hz *= 0.02;
        Offloading::prepare(&i, Catalog::builtin()).unwrap()
    };
    let tdma_narrow = narrow("large");
    let ofdma_narrow = narrow("ofdma-large");
    for (n, p) in [
        ("large-1000", &large),
        ("classic-1000", &classic),
        ("ofdma-large-1000", &ofdma),
        ("narrow-1000", &tdma_narrow),
        ("ofdma-narrow-1000", &ofdma_narrow),
    ] {
        let r = solve(p, "exact");
        assert_eq!(r.status.termination, Termination::Optimal);
        eprintln!(
            "exact/{n}: objective {:?} bound {:?} gap {:?} time {:.3}s",
            r.objective, r.bound, r.gap, r.wall_time_s
        );
        let g = solve(p, "gradient");
        eprintln!(
            "gradient/{n}: objective {:?} bound {:?} gap {:?}",
            g.objective, g.bound, g.gap
        );
    }
    let mut grp = c.benchmark_group("offloading");
    grp.sample_size(10);
    grp.bench_function("exact/large-1000", |b| {
        b.iter(|| black_box(solve(&large, "exact")))
    });
    grp.bench_function("exact/classic-1000", |b| {
        b.iter(|| black_box(solve(&classic, "exact")))
    });
    grp.bench_function("exact/ofdma-large-1000", |b| {
        b.iter(|| black_box(solve(&ofdma, "exact")))
    });
    grp.bench_function("exact/narrow-1000", |b| {
        b.iter(|| black_box(solve(&tdma_narrow, "exact")))
    });
    grp.bench_function("exact/ofdma-narrow-1000", |b| {
        b.iter(|| black_box(solve(&ofdma_narrow, "exact")))
    });
    grp.bench_function("threshold/classic-1000", |b| {
        b.iter(|| black_box(solve(&classic, "threshold")))
    });
    grp.bench_function("gradient/large-1000", |b| {
        b.iter(|| black_box(solve(&large, "gradient")))
    });
    grp.bench_function("gradient/ofdma-large-1000", |b| {
        b.iter(|| black_box(solve(&ofdma, "gradient")))
    });
    grp.finish();
}

criterion_group!(g, benches);
criterion_main!(g);
