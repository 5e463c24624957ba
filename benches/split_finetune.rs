//! Criterion benches of the `split_finetune` family (run with
//! `cargo bench --bench split_finetune -- --quick`).
//!
//! The size: LLaMA-2-7B (32 blocks), 64 clients sharing 100 MHz, 11 freezing levels per side,
//! 32 cuts (3,872 discrete choices), SFL (`generate("large", 7)`):
//! - `exact/large-time`: minimum total fine-tuning time (bisection on the round time per choice);
//! - `exact/large-energy`: minimum client energy under a deadline of 1.3 x the minimum time
//!   (water-filling per choice);
//! - `coordinate-descent/large-time`, `equal-bandwidth/large-time`: heuristic and baseline.
//!
//! Per-client decisions (`decisions: per_client`, round latency with at least 30 % trainable, 6 levels
//! per side, LLaMA-2-7B, `generate("16", seed)` with its clients):
//! - `milp/per-client-16-fixed`: 16 clients on fixed links (10–200 Mbit/s up), all 32 cuts: one
//!   MILP per server level;
//! - `milp/per-client-8-shared`: the first 8 clients sharing the bandwidth, cuts 0, 4, ..., 28: bisection
//!   on the round deadline with a min-server-time MILP per step, from the `per-client-descent`
//!   incumbent;
//! - `per-client-descent/...`: the heuristic on both.
//!
//! `SPLIT_FINETUNE_GAP=20` first prints the gaps of the heuristic and baselines to the proven optimum
//! over that many generated large instances (min / mean / median / p90 / max) and exact solve times.

use criterion::{criterion_group, criterion_main, Criterion};
use edgeplan::catalog::Catalog;
use edgeplan::problems::split_finetune::{
    Decisions, Objective, Prepared, SplitFinetune, SplitFinetuneInstance, SplitFinetuneSolution,
};
use edgeplan::solve::{self, Family, NoObserver, SolveOptions, StopFlag, Termination};
use std::hint::black_box;
use std::time::Duration;

fn prep(inst: &SplitFinetuneInstance) -> Prepared {
    SplitFinetune::prepare(inst, Catalog::builtin()).unwrap()
}

fn solve(p: &Prepared, name: &str) -> solve::SolveResult<SplitFinetuneSolution> {
    let s = solve::find_solver::<SplitFinetune>(p, name).unwrap();
    solve::run::<SplitFinetune>(
        p,
        s.as_ref(),
        &SolveOptions::default(),
        &mut NoObserver,
        StopFlag::new(),
    )
    .unwrap()
}

fn energy_variant(inst: &SplitFinetuneInstance, t: f64) -> SplitFinetuneInstance {
    let mut e = inst.clone();
    e.objective = Objective::Energy {
        deadline_s: 1.3 * t,
    };
    e
}

fn stats(v: &mut [f64]) -> String {
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
}

/// The per-client round-latency variant of a generated instance (see the module doc).
fn per_client_variant(inst: &SplitFinetuneInstance, shared: bool) -> SplitFinetuneInstance {
    let mut i = inst.clone();
    let lv: Vec<f64> = (0..6).map(|x| x as f64 / 5.0).collect();
    i.client_freeze_levels = Some(lv.clone());
    i.server_freeze_levels = Some(lv);
    i.objective = Objective::RoundLatency;
    i.min_trainable_fraction = Some(0.3);
    i.decisions = Decisions::PerClient;
    if shared {
        i.clients.truncate(8);
        i.cuts = Some((0..32).step_by(4).collect());
    } else {
        i.bandwidth_hz = None;
        for (k, c) in i.clients.iter_mut().enumerate() {
            let up = 10e6 + 190e6 * ((k * 7919) % 97) as f64 / 96.0;
            c.channel_gain = None;
            c.uplink_bps = Some(up);
            c.downlink_bps = Some(2.0 * up);
        }
    }
    i
}

fn per_client_gap_report(n: u64) {
    for shared in [false, true] {
        let (mut gaps, mut common, mut times) = (vec![], vec![], vec![]);
        for seed in 0..n {
            let inst =
                per_client_variant(&SplitFinetune::generate("16", 2000 + seed).unwrap(), shared);
            let p = prep(&inst);
            let m = solve(&p, "milp");
            assert_eq!(m.status.termination, Termination::Optimal);
            let x = m.objective.unwrap();
            times.push(m.wall_time_s);
            let d = solve(&p, "per-client-descent")
                .objective
                .unwrap_or(f64::INFINITY);
            gaps.push(d / x - 1.0);
            let mut c = inst.clone();
            c.decisions = Decisions::Common;
            let z = solve(&prep(&c), "exact").objective.unwrap_or(f64::INFINITY);
            common.push(z / x - 1.0);
        }
        let what = if shared {
            "8 clients sharing the bandwidth, 8 cuts"
        } else {
            "16 clients on fixed links, 32 cuts"
        };
        println!(
            "split_finetune per-client gap report (round latency, {what}, 6 levels), {n} instances"
        );
        println!("  per-client-descent vs milp:     {}", stats(&mut gaps));
        println!("  common-decision exact vs milp:  {}", stats(&mut common));
        println!("  milp wall s:                    {}", stats(&mut times));
    }
}

fn gap_report(n: u64) {
    let names = [
        "coordinate-descent",
        "equal-bandwidth",
        "freeze-client",
        "splitlora",
    ];
    for energy in [false, true] {
        let mut gaps: Vec<Vec<f64>> = vec![vec![]; names.len()];
        let mut times = vec![];
        for seed in 0..n {
            let inst = SplitFinetune::generate("large", 1000 + seed).unwrap();
            let mut p = prep(&inst);
            let mut e = solve(&p, "exact");
            if energy {
                p = prep(&energy_variant(&inst, e.objective.unwrap()));
                e = solve(&p, "exact");
            }
            assert_eq!(e.status.termination, Termination::Optimal);
            let x = e.objective.unwrap();
            times.push(e.wall_time_s);
            for (i, h) in names.iter().enumerate() {
                let o = solve(&p, h).objective.unwrap_or(f64::INFINITY);
                gaps[i].push(o / x - 1.0);
            }
        }
        let what = if energy {
            "energy (deadline 1.3 x min time)"
        } else {
            "total time"
        };
        println!("split_finetune gap report, {what}, over {n} generated large instances");
        for (i, h) in names.iter().enumerate() {
            println!("  {h:<20} relative gap: {}", stats(&mut gaps[i]));
        }
        println!("  exact wall s:                     {}", stats(&mut times));
    }
}

fn benches(c: &mut Criterion) {
    if let Some(n) = std::env::var("SPLIT_FINETUNE_GAP")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        gap_report(n);
        per_client_gap_report(n.min(5));
    }
    let inst = SplitFinetune::generate("large", 7).unwrap();
    let time = prep(&inst);
    let t = solve(&time, "exact").objective.unwrap();
    let energy = prep(&energy_variant(&inst, t));
    let mut g = c.benchmark_group("split_finetune");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("exact/large-time", |b| {
        b.iter(|| black_box(solve(&time, "exact")))
    });
    g.bench_function("exact/large-energy", |b| {
        b.iter(|| black_box(solve(&energy, "exact")))
    });
    g.bench_function("coordinate-descent/large-time", |b| {
        b.iter(|| black_box(solve(&time, "coordinate-descent")))
    });
    g.bench_function("equal-bandwidth/large-time", |b| {
        b.iter(|| black_box(solve(&time, "equal-bandwidth")))
    });
    for (shared, name) in [
        (false, "per-client-16-fixed"),
        (true, "per-client-8-shared"),
    ] {
        let pc = prep(&per_client_variant(
            &SplitFinetune::generate("16", 7).unwrap(),
            shared,
        ));
        g.bench_function(format!("milp/{name}"), |b| {
            b.iter(|| black_box(solve(&pc, "milp")))
        });
        g.bench_function(format!("per-client-descent/{name}"), |b| {
            b.iter(|| black_box(solve(&pc, "per-client-descent")))
        });
    }
    g.finish();
}

criterion_group!(split_finetune, benches);
criterion_main!(split_finetune);
