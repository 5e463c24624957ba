//! Cost-model speed: building per-layer tables and full profiles (what every family's `prepare` pays).
use criterion::{criterion_group, criterion_main, Criterion};
use edgeplan::catalog::Catalog;
use edgeplan::cost::profile::{profile, ProfileRequest};
use edgeplan::cost::{layer_table, DType, Workload};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let cat = Catalog::builtin();
    let card = cat.llm("llama-2-70b").unwrap();
    c.bench_function("cost/layer_table llama-2-70b prefill 4x2048", |b| {
        b.iter(|| layer_table(black_box(&card), &Workload::prefill(4, 2048, DType::Fp16)))
    });
    let req: ProfileRequest = serde_json::from_value(serde_json::json!({
        "model": "llama-2-70b", "device": "h100-sxm", "batch": 4, "seq_len": 2048
    }))
    .unwrap();
    c.bench_function("cost/profile llama-2-70b on h100-sxm", |b| {
        b.iter(|| profile(cat, black_box(&req)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
