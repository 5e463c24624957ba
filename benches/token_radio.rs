//! Criterion benches of the `token_radio` family (run with `cargo bench --bench token_radio -- --quick`).
//!
//! - `exact/10000-users`: the acceptance instance of issue 7, 10,000 users (generated, seed 1),
//!   solved by dual decomposition to a certified relative duality gap ≤ 1e-6 (asserted once before
//!   timing);
//! - `dual-gradient/10000-users`: the projected-gradient method on the same instance (200 steps);
//! - `exact/vlm-50-users-20mhz`: the worked example.
//!
//! `TOKEN_RADIO_GAP=20` first prints the gap of the gradient method and of the baselines to the
//! certified optimum over that many generated 50-user instances.

use criterion::{criterion_group, criterion_main, Criterion};
use edgeplan::catalog::Catalog;
use edgeplan::problems::token_radio::{cost::Prepared, TokenRadio, TokenRadioSolution};
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag, Termination};
use std::hint::black_box;
use std::time::Duration;

fn prep(size: &str, seed: u64) -> Prepared {
    TokenRadio::prepare(
        &TokenRadio::generate(size, seed).unwrap(),
        Catalog::builtin(),
    )
    .unwrap()
}

fn solve(p: &Prepared, name: &str) -> solve::SolveResult<TokenRadioSolution> {
    let s = solve::find_solver::<TokenRadio>(p, name).unwrap();
    solve::run::<TokenRadio>(
        p,
        s.as_ref(),
        &SolveOptions::default(),
        &mut NoObserver,
        StopFlag::new(),
    )
    .unwrap()
}

fn gap_report(n: u64) {
    let names = [
        "dual-gradient",
        "prop-fair",
        "equal-prune",
        "no-prune-equal",
    ];
    let mut gaps: Vec<Vec<f64>> = vec![vec![]; names.len()];
    for seed in 0..n {
        let p = prep("medium", 100 + seed);
        let e = solve(&p, "exact");
        assert_eq!(e.status.termination, Termination::Optimal);
        let opt = e.objective.unwrap();
        for (i, name) in names.iter().enumerate() {
            let r = solve(&p, name);
            // infeasible (dropped users not allowed): count as accuracy of the served users only
            let v = r.objective.unwrap_or_else(|| {
                r.evaluation
                    .as_ref()
                    .and_then(|e| {
                        e.metrics["users"].as_array().map(|u| {
                            u.iter()
                                .zip(&p.users)
                                .map(|(x, user)| {
                                    user.weight * x["accuracy"].as_f64().unwrap_or(0.0)
                                })
                                .sum()
                        })
                    })
                    .unwrap_or(0.0)
            });
            gaps[i].push(1.0 - v / opt);
        }
    }
    for (name, g) in names.iter().zip(&mut gaps) {
        g.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        println!(
            "gap {name:>15}: min {:.2e} mean {:.2e} median {:.2e} max {:.2e} (n={n})",
            g[0],
            mean,
            g[g.len() / 2],
            g[g.len() - 1]
        );
    }
}

fn benches(c: &mut Criterion) {
    if let Some(n) = std::env::var("TOKEN_RADIO_GAP")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        gap_report(n);
    }
    let big = prep("10000", 1);
    let r = solve(&big, "exact");
    assert_eq!(r.status.termination, Termination::Optimal);
    println!(
        "exact/10000-users: gap {:.2e}, {} dual evaluations, {:.3} s",
        r.gap.unwrap(),
        r.iterations,
        r.wall_time_s
    );
    let g = solve(&big, "dual-gradient");
    println!(
        "dual-gradient/10000-users: relative gap to exact {:.2e}, {:.3} s",
        1.0 - g.objective.unwrap_or(0.0) / r.objective.unwrap(),
        g.wall_time_s
    );
    let mut grp = c.benchmark_group("token_radio");
    grp.sample_size(10)
        .measurement_time(Duration::from_secs(10));
    grp.bench_function("exact/10000-users", |b| {
        b.iter(|| black_box(solve(&big, "exact")))
    });
    grp.bench_function("dual-gradient/10000-users", |b| {
        b.iter(|| black_box(solve(&big, "dual-gradient")))
    });
    let path = format!(
        "{}/instances/token_radio/vlm-50-users-20mhz.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let fam = edgeplan::problems::family("token_radio").unwrap();
    grp.bench_function("exact/vlm-50-users-20mhz", |b| {
        b.iter(|| {
            black_box(
                fam.solve(
                    &doc,
                    "exact",
                    &SolveOptions::default(),
                    Catalog::builtin(),
                    &mut NoObserver,
                    StopFlag::new(),
                )
                .unwrap(),
            )
        })
    });
    grp.finish();
}

criterion_group!(token_radio, benches);
criterion_main!(token_radio);
