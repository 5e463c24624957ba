//! Cost model: acceptance figures (formulas.md, llms.md) and the calibration fit (docs/calibration.md).
//!
//! The calibration tests re-run the documented fit procedure on the rows of
//! `../shared/reference/calibration.md` (B1, B2, B4, B5, B6), check that the efficiencies stored in
//! `models/runtime/*.json` are the fitted ones, and assert the documented error bounds for fitted and
//! held-out rows. Run `cargo test --test cost_model calibration_report -- --nocapture` to print the
//! predicted-vs-measured table that `docs/calibration.md` reproduces.

use edgeplan::catalog::{Catalog, DeviceCard, DeviceClass, LlmCard, RuntimeProfile};
use edgeplan::cost::*;
use std::sync::Arc;

fn cat() -> &'static Catalog {
    Catalog::builtin()
}
fn llm(n: &str) -> Arc<LlmCard> {
    cat().llm(n).unwrap()
}
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

// ------------------------------------------------------------------------------------------------
// Parameter counts
// ------------------------------------------------------------------------------------------------

/// Printed precision of rounded paper labels (GPT-3 Tab. 2.1 and DeepSeek's "2.4B active"): the
/// tolerance is max(1 %, half a unit of the label's last printed digit relative to the value).
/// Entries: (card, label as printed, half-unit in parameters, reason).
const LABEL_PRECISION: &[(&str, &str, f64, &str)] = &[
    ("gpt3-xl", "1.3B", 0.05e9, "one decimal of B"),
    ("gpt3-2.7b", "2.7B", 0.05e9, "one decimal of B"),
    ("gpt3-6.7b", "6.7B", 0.05e9, "one decimal of B"),
    ("gpt3-13b", "13B", 0.5e9, "integer B"),
    ("gpt3-175b", "175B", 0.5e9, "integer B"),
    // Tab. 2.1 rounds the small models to two significant figures (125M, 350M, 760M); the config
    // (GPT-2 medium with 2048 positions) counts 355.9M, 1.7 % above: the paper's count convention for
    // this row is not reproducible (GPT-2's own paper printed 345M for the same shapes). Allowed 2 %.
    (
        "gpt3-medium",
        "350M",
        7.0e6,
        "2 significant figures + unreproducible paper convention",
    ),
];

fn tolerance(name: &str, published: f64) -> f64 {
    let label = LABEL_PRECISION
        .iter()
        .find(|(n, ..)| *n == name)
        .map_or(0.0, |(_, _, h, _)| h / published);
    label.max(0.01)
}

#[test]
fn every_card_matches_its_published_total() {
    let mut n = 0;
    for c in cat().llms() {
        let p = param_count(c);
        let tol = tolerance(&c.name, c.published_params);
        let e = rel(p.total, c.published_params);
        assert!(
            e <= tol,
            "{}: computed {:.0} vs published {:.0} ({:.2}% > {:.2}%)",
            c.name,
            p.total,
            c.published_params,
            100.0 * e,
            100.0 * tol
        );
        n += 1;
    }
    assert!(n >= 33);
}

#[test]
fn llama2_7b_params_and_kv() {
    let c = llm("llama-2-7b");
    assert!(rel(param_count(&c).total, 6.738e9) < 0.001);
    assert_eq!(kv_bytes_per_token(&c, DType::Fp16), 512.0 * 1024.0);
    assert_eq!(
        kv_bytes_per_token(&llm("llama-2-70b"), DType::Fp16),
        320.0 * 1024.0
    );
    assert_eq!(
        kv_bytes_per_token(&llm("llama-3.1-8b"), DType::Fp16),
        128.0 * 1024.0
    );
    // MLA: (512 + 64) x 27 x 2 B.
    assert_eq!(
        kv_bytes_per_token(&llm("deepseek-v2-lite"), DType::Fp16),
        576.0 * 27.0 * 2.0
    );
    // Encoder-only caches nothing; T5 decoder self-attention 36 KiB.
    assert_eq!(kv_bytes_per_token(&llm("bert-base"), DType::Fp16), 0.0);
    assert_eq!(
        kv_bytes_per_token(&llm("t5-base"), DType::Fp16),
        36.0 * 1024.0
    );
}

#[test]
fn moe_active_params() {
    let m = param_count(&llm("mixtral-8x7b"));
    assert!(rel(m.active, 12.88e9) < 0.01, "mixtral active {}", m.active);
    assert!(rel(m.total, 46.70e9) < 0.01);
    let q = param_count(&llm("qwen1.5-moe-a2.7b"));
    assert!(rel(q.active, 2.7e9) < 0.01, "qwen-moe active {}", q.active);
    // DeepSeek's published 2.4B active excludes the input embedding; our count without it is 2.451B.
    // Label "2.4B": half a unit of the last digit = 0.05B (2.08 %); DeepSeek's exact convention is
    // unpublished, so we allow 2.5 %.
    let d = llm("deepseek-v2-lite");
    let p = param_count(&d);
    let act = p.active - p.embedding;
    assert!(
        rel(act, d.published_active_params.unwrap()) < 0.025,
        "deepseek active {act}"
    );
    assert!(rel(p.total, 15.7e9) < 0.01);
}

// ------------------------------------------------------------------------------------------------
// LoRA, memory, smashed data
// ------------------------------------------------------------------------------------------------

fn lora(rank: u64, t: &[LoraTarget]) -> Recipe {
    Recipe::Lora {
        rank,
        targets: t.to_vec(),
        base_dtype: DType::Bf16,
    }
}

#[test]
fn lora_trainable_params() {
    use LoraTarget::*;
    assert_eq!(
        trainable_params(&llm("llama-2-7b"), &lora(8, &[Q, V])),
        4_194_304.0
    );
    assert_eq!(
        trainable_params(&llm("llama-2-7b"), &lora(16, &LoraTarget::ALL)),
        39_976_960.0
    );
    assert_eq!(
        trainable_params(&llm("llama-3.1-8b"), &lora(16, &LoraTarget::ALL)),
        41_943_040.0
    );
    let g = trainable_params(&llm("gpt3-175b"), &lora(8, &[Q, V]));
    assert!(rel(g, 37.7e6) < 0.005, "{g}");
    let g1 = trainable_params(&llm("gpt3-175b"), &lora(1, &[Q, V]));
    assert!(rel(g1, 4.7e6) < 0.005, "{g1}");
    // Per-layer vector is aligned with the layer table.
    let c = llm("llama-2-7b");
    let v = trainable_params_per_layer(&c, &lora(8, &[Q, V]));
    assert_eq!(
        v.len(),
        layer_table(&c, &Workload::prefill(1, 8, DType::Fp16)).len()
    );
    assert_eq!(v[0], 0.0);
    assert_eq!(*v.last().unwrap(), 0.0);
}

#[test]
fn full_finetune_fp32_adam_llama2_7b() {
    // Assumption (docs/cost-model.md): micro-batch 1, sequence 512, fp32 compute, full activation
    // recomputation (gradient checkpointing), FlashAttention. 16 B/param x 6.738e9 = 107.8 GB plus
    // 32 checkpoints (8.4 MB each), one block's recompute working set and the fp32 logits.
    let c = llm("llama-2-7b");
    let mut w = Workload::training(1, 512, DType::Fp32);
    w.recompute = Recompute::Full;
    let m = memory(
        &c,
        &Recipe::Full {
            preset: OptimizerPreset::Fp32Adam,
        },
        &w,
    );
    let gb = m.total_bytes / 1e9;
    assert!((108.0..=112.0).contains(&gb), "{gb} GB: {m:?}");
    assert!(
        rel(
            m.weights_bytes + m.gradient_bytes + m.optimizer_bytes,
            16.0 * 6_738_415_616.0
        ) < 1e-12
    );
    // Without recomputation activations dominate more; more batch -> more memory.
    let mut w2 = w.clone();
    w2.recompute = Recompute::None;
    let m2 = memory(
        &c,
        &Recipe::Full {
            preset: OptimizerPreset::Fp32Adam,
        },
        &w2,
    );
    assert!(m2.activation_bytes > m.activation_bytes);
}

#[test]
fn korthikanti_gpt3_175b_activation_per_layer() {
    // formulas.md E.2: GPT-3 175B, s = 2048, b = 1, 16-bit, no FlashAttention: 2.87 GB per layer.
    let c = llm("gpt3-175b");
    let mut w = Workload::training(1, 2048, DType::Bf16);
    w.flash_attention = false;
    let t = layer_table(&c, &w);
    let per_layer = t[1].train_act_bytes;
    let expect = 2048.0 * 12288.0 * (34.0 + 5.0 * 96.0 * 2048.0 / 12288.0);
    assert!(rel(per_layer, expect) < 1e-9, "{per_layer} vs {expect}");
    assert!(rel(per_layer, 2.87e9) < 0.02);
    w.recompute = Recompute::Selective;
    assert!(
        rel(
            layer_table(&c, &w)[1].train_act_bytes,
            34.0 * 2048.0 * 12288.0
        ) < 1e-9
    );
    w.recompute = Recompute::Full;
    assert!(
        rel(
            layer_table(&c, &w)[1].train_act_bytes,
            2.0 * 2048.0 * 12288.0
        ) < 1e-9
    );
}

#[test]
fn qlora_memory_is_smaller() {
    use LoraTarget::*;
    let c = llm("llama-2-7b");
    let w = Workload::training(1, 512, DType::Bf16);
    let bf = memory(&c, &lora(16, &[Q, V]), &w);
    let q = memory(
        &c,
        &Recipe::Lora {
            rank: 16,
            targets: vec![Q, V],
            base_dtype: DType::Int4,
        },
        &w,
    );
    assert!(q.weights_bytes < 0.35 * bf.weights_bytes);
    assert_eq!(
        q.optimizer_bytes,
        12.0 * trainable_params(&c, &lora(16, &[Q, V]))
    );
}

#[test]
fn gpt3_medium_smashed_data() {
    let c = llm("gpt3-medium");
    let w = Workload::training(100, 1024, DType::Fp32);
    let t = layer_table(&c, &w);
    for l in t.iter().filter(|l| l.kind == LayerKind::Block) {
        assert_eq!(l.out_bytes, 100.0 * 1024.0 * 1024.0 * 4.0);
        assert_eq!(l.out_bytes_per_token, 4096.0);
    }
    assert!(rel(t[5].out_bytes, 419.4e6) < 0.001);
}

#[test]
fn inference_memory_and_windows() {
    let c = llm("llama-2-7b");
    let m = memory(
        &c,
        &Recipe::Inference,
        &Workload::decode(4, 4096, DType::Fp16),
    );
    assert_eq!(m.kv_cache_bytes, 4.0 * 4096.0 * 512.0 * 1024.0);
    assert!(rel(m.weights_bytes, 2.0 * 6_738_415_616.0) < 1e-12);
    let mi = llm("mistral-7b");
    let a = memory(
        &mi,
        &Recipe::Inference,
        &Workload::decode(1, 32768, DType::Fp16),
    );
    assert_eq!(a.kv_cache_bytes, 4096.0 * 128.0 * 1024.0);
}

// ------------------------------------------------------------------------------------------------
// FLOPs
// ------------------------------------------------------------------------------------------------

#[test]
fn forward_flops_match_narayanan() {
    // MHA GPT (no GQA, 4h MLP): forward = 24·B·s·L·h²·(1 + s/(6h) + V/(12·L·h)) (formulas.md E.3),
    // with our causal halving of the attention term: s/(6h) -> (s+1)/(12h).
    for (name, b, s) in [
        ("gpt3-6.7b", 4u64, 2048u64),
        ("gpt3-175b", 1, 2048),
        ("gpt2-small", 8, 1024),
    ] {
        let c = llm(name);
        let w = Workload::training(b, s, DType::Bf16);
        let ours: f64 = layer_table(&c, &w).iter().map(|l| l.fwd_flops).sum();
        let (bf, sf, l, h, v) = (
            b as f64,
            s as f64,
            c.n_layers as f64,
            c.d_model as f64,
            c.vocab_size as f64,
        );
        let nar = 24.0 * bf * sf * l * h * h * (1.0 + (sf + 1.0) / (12.0 * h) + v / (12.0 * l * h));
        assert!(rel(ours, nar) < 0.01, "{name}: {ours:e} vs {nar:e}");
        // Training step = 3 x forward (72·B·s·L·h²(...)).
        let bwd: f64 = layer_table(&c, &w)
            .iter()
            .map(|l| l.bwd_act_flops + l.bwd_weight_flops)
            .sum();
        assert!(rel(ours + bwd, 3.0 * nar) < 0.01);
    }
}

#[test]
fn decode_flops_per_token() {
    // ≈ 2·N_active + 4·L·ctx·a·d_head (formulas.md E.3) — N without the input embedding (a lookup).
    let c = llm("llama-3.1-8b");
    let ctx = 4096u64;
    let w = Workload::decode(1, ctx, DType::Fp16);
    let ours: f64 = layer_table(&c, &w).iter().map(|l| l.fwd_flops).sum();
    let p = param_count(&c);
    let n = p.active - p.embedding;
    let expect = 2.0 * n + 4.0 * 32.0 * ctx as f64 * 32.0 * 128.0;
    assert!(rel(ours, expect) < 0.01, "{ours:e} vs {expect:e}");
    // Tied heads still do the logits FLOPs.
    let q = llm("qwen2.5-0.5b");
    let t = layer_table(&q, &Workload::decode(1, 16, DType::Fp16));
    let head = t.last().unwrap();
    assert_eq!(head.params, 896.0);
    assert_eq!(head.fwd_flops, 2.0 * 896.0 * 151936.0);
}

// ------------------------------------------------------------------------------------------------
// Roofline sanity
// ------------------------------------------------------------------------------------------------

fn hw(dev: &str, rt: Option<&str>) -> Hardware {
    Hardware::from_catalog(cat(), dev, rt).unwrap()
}

fn pass_s(card: &LlmCard, h: &Hardware, w: &Workload) -> f64 {
    layer_times(card, h, w, None)
        .iter()
        .map(|t| t.total_s())
        .sum()
}

#[test]
fn monotone_in_batch_and_device() {
    let c = llm("llama-2-7b");
    let h = hw("h100-sxm", None);
    let mut last = 0.0;
    for b in [1, 2, 8, 32, 128, 512] {
        let t = pass_s(&c, &h, &Workload::decode(b, 1024, DType::Fp16));
        assert!(t > last, "batch {b}");
        last = t;
        let p = pass_s(&c, &h, &Workload::prefill(b, 512, DType::Fp16));
        assert!(p > 0.0);
    }
    let c8 = llm("llama-3.1-8b");
    let fast = pass_s(
        &c8,
        &hw("h100-sxm", None),
        &Workload::decode(1, 512, DType::Int4),
    );
    let slow = pass_s(
        &c8,
        &hw("jetson-orin-nano-8gb", None),
        &Workload::decode(1, 512, DType::Int4),
    );
    assert!(fast < slow / 5.0, "{fast} vs {slow}");
    // Training: backward exists and LoRA's is cheaper than full.
    let w = Workload::training(1, 512, DType::Bf16);
    let full: f64 = layer_times_for(
        &c,
        &h,
        &w,
        &Recipe::Full {
            preset: OptimizerPreset::MixedAdam,
        },
        None,
    )
    .iter()
    .map(|t| t.bwd_s)
    .sum();
    let lo: f64 = layer_times_for(&c, &h, &w, &lora(8, &[LoraTarget::Q, LoraTarget::V]), None)
        .iter()
        .map(|t| t.bwd_s)
        .sum();
    assert!(lo < full && lo > 0.0);
}

#[test]
fn peak_flops_fallback() {
    let h = hw("jetson-orin-nano-8gb", None);
    assert_eq!(h.peak_flops(DType::Int4), h.peak_flops(DType::Int8));
    assert_eq!(hw("apple-m2", None).peak_flops(DType::Bf16), 3.6e12);
    assert_eq!(
        hw("edge-tpu", Some("pytorch-eager")).peak_flops(DType::Fp16),
        4e12
    );
    assert_eq!(hw("h100-sxm", None).runtime.name, "vllm");
    assert_eq!(hw("jetson-agx-orin-64gb", None).runtime.name, "mlc");
    assert_eq!(hw("rtx-4090", None).runtime.name, "llama.cpp");
}

#[test]
fn measured_rows_replace_analytic() {
    let m = MeasuredProfiles::from_csv_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/measured/example.csv"
    ))
    .unwrap();
    assert!(!m.rows.is_empty());
    let c = llm("llama-2-7b");
    let h = hw("rtx-4090", None);
    let w = Workload::decode(1, 512, DType::Fp16);
    let an = layer_times(&c, &h, &w, None);
    let me = layer_times(&c, &h, &w, Some(&m));
    let r = m
        .lookup("llama-2-7b", "rtx-4090", Phase::Decode, 1, 512, "block.0")
        .unwrap();
    assert!((me[1].fwd_s - r.time_s).abs() < 1e-12);
    assert_eq!(me[2].fwd_s, an[2].fwd_s);
}

#[test]
fn profile_report_fields() {
    let mut req = ProfileRequest::new("llama-2-7b");
    req.device = Some("rtx-4090".into());
    let r = profile(cat(), &req).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    for k in [
        "params",
        "weight_bytes",
        "kv_bytes_per_token",
        "trainable_params",
    ] {
        assert!(v[k].is_number(), "{k}");
    }
    assert!(v["memory"]["total_bytes"].is_number());
    assert!(v["layers"][1]["out_bytes_per_token"].is_number());
    assert!(v["layers"][1]["time"]["fwd_s"].is_number());
    assert!(v["decode"]["tokens_per_s"].as_f64().unwrap() > 10.0);
    assert!(v["decode"]["joules_per_token"].is_number());
    assert!(v["prefill"]["tokens_per_s"].is_number());
    assert!(render_table(&r).contains("block.31"));
    let req: ProfileRequest = serde_json::from_str(
        r#"{"model":"llama-2-7b","recipe":{"kind":"lora","rank":8,"targets":["q","v"]}}"#,
    )
    .unwrap();
    let r = profile(cat(), &req).unwrap();
    assert_eq!(r.trainable_params, 4_194_304.0);
    assert!(r.decode.is_none());
}

// ------------------------------------------------------------------------------------------------
// Calibration (docs/calibration.md)
// ------------------------------------------------------------------------------------------------

fn inline_device(name: &str, class: &str, fp16: f64, bw: f64) -> Arc<DeviceCard> {
    let j = format!(
        r#"{{"name":"{name}","class":"{class}","peak_flops":{{"fp16":{{"value":{fp16},"source":"calibration.md","confidence":"recalled"}}}},
        "memory_bytes":{{"value":1e11,"source":"n/a"}},"memory_bandwidth_bytes_per_s":{{"value":{bw},"source":"calibration.md"}},
        "idle_power_w":{{"value":10,"source":"n/a"}},"peak_power_w":{{"value":100,"source":"n/a"}}}}"#
    );
    Arc::new(serde_json::from_str(&j).unwrap())
}

fn device(name: &str) -> Arc<DeviceCard> {
    match name {
        // Not in the catalog: peaks as printed in calibration.md B1/B4 (FP32 TFLOPS of Apple GPUs
        // recalled [R]; only the bandwidth matters for the decode rows).
        "a40" => inline_device("a40", "datacenter_gpu", 149.7e12, 696e9),
        "m2-ultra" => inline_device("m2-ultra", "laptop_soc", 27.2e12, 800e9),
        "m3-max" => inline_device("m3-max", "laptop_soc", 16.4e12, 400e9),
        "m3" => inline_device("m3", "laptop_soc", 4.1e12, 100e9),
        n => cat().device(n).unwrap(),
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// Single-stream decode tok/s at context 64 (llama-bench tg128 midpoint).
    Decode,
    /// Prefill tok/s of a 512-token prompt (pp512).
    Prefill,
    /// Decode tok/s at context 256 (ML.ENERGY chat responses).
    DecodeChat,
    /// One GEMM: measured seconds; (M, N, K).
    Gemm(u64, u64, u64),
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Use {
    Fit,
    HeldOut,
}

#[derive(Clone, Debug)]
struct Row {
    id: &'static str,
    runtime: &'static str,
    device: &'static str,
    model: &'static str,
    dtype: DType,
    kind: Kind,
    measured: f64,
    use_: Use,
}

fn row(
    id: &'static str,
    runtime: &'static str,
    device: &'static str,
    model: &'static str,
    dtype: DType,
    kind: Kind,
    measured: f64,
    use_: Use,
) -> Row {
    Row {
        id,
        runtime,
        device,
        model,
        dtype,
        kind,
        measured,
        use_,
    }
}

fn rows() -> Vec<Row> {
    use DType::*;
    use Kind::*;
    use Use::*;
    let mut v = vec![
        // B4 llama.cpp decode (XiongjieDai)
        row(
            "B4-4090-f16",
            "llama.cpp",
            "rtx-4090",
            "llama-2-7b",
            Fp16,
            Decode,
            60.78,
            Fit,
        ),
        row(
            "B4-4090-q4",
            "llama.cpp",
            "rtx-4090",
            "llama-2-7b",
            Int4,
            Decode,
            149.37,
            Fit,
        ),
        row(
            "B4-a100-f16",
            "llama.cpp",
            "a100-80gb-sxm",
            "llama-2-7b",
            Fp16,
            Decode,
            73.83,
            Fit,
        ),
        row(
            "B4-a100-q4",
            "llama.cpp",
            "a100-80gb-sxm",
            "llama-2-7b",
            Int4,
            Decode,
            136.24,
            Fit,
        ),
        row(
            "B4-h100p-f16",
            "llama.cpp",
            "h100-pcie",
            "llama-2-7b",
            Fp16,
            Decode,
            83.32,
            Fit,
        ),
        row(
            "B4-h100p-q4",
            "llama.cpp",
            "h100-pcie",
            "llama-2-7b",
            Int4,
            Decode,
            133.77,
            Fit,
        ),
        row(
            "B4-m2u-f16",
            "llama.cpp",
            "m2-ultra",
            "llama-2-7b",
            Fp16,
            Decode,
            40.68,
            Fit,
        ),
        row(
            "B4-m2u-q4",
            "llama.cpp",
            "m2-ultra",
            "llama-2-7b",
            Int4,
            Decode,
            91.89,
            Fit,
        ),
        row(
            "B4-m3max-f16",
            "llama.cpp",
            "m3-max",
            "llama-2-7b",
            Fp16,
            Decode,
            24.76,
            Fit,
        ),
        row(
            "B4-m3max-q4",
            "llama.cpp",
            "m3-max",
            "llama-2-7b",
            Int4,
            Decode,
            63.11,
            Fit,
        ),
        row(
            "B4-m1max-f16",
            "llama.cpp",
            "apple-m1-max",
            "llama-2-7b",
            Fp16,
            Decode,
            13.83,
            HeldOut,
        ),
        row(
            "B4-m1max-q4",
            "llama.cpp",
            "apple-m1-max",
            "llama-2-7b",
            Int4,
            Decode,
            48.65,
            HeldOut,
        ),
        row(
            "B4-m3-q4",
            "llama.cpp",
            "m3",
            "llama-2-7b",
            Int4,
            Decode,
            20.79,
            HeldOut,
        ),
        row(
            "B4-nanoS-qwen05",
            "llama.cpp",
            "jetson-orin-nano-super",
            "qwen2.5-0.5b",
            Int4,
            Decode,
            92.9,
            Fit,
        ),
        row(
            "B4-nanoS-l32-1b",
            "llama.cpp",
            "jetson-orin-nano-super",
            "llama-3.2-1b",
            Int4,
            Decode,
            47.1,
            Fit,
        ),
        // B5 / B4 prefill (pp512)
        row(
            "B5-4090-pp",
            "llama.cpp",
            "rtx-4090",
            "llama-2-7b",
            Fp16,
            Prefill,
            7349.0,
            Fit,
        ),
        row(
            "B5-a100-pp",
            "llama.cpp",
            "a100-80gb-sxm",
            "llama-2-7b",
            Fp16,
            Prefill,
            5106.0,
            Fit,
        ),
        row(
            "B5-h100p-pp",
            "llama.cpp",
            "h100-pcie",
            "llama-2-7b",
            Fp16,
            Prefill,
            7367.0,
            Fit,
        ),
        row(
            "B5-m1max-pp",
            "llama.cpp",
            "apple-m1-max",
            "llama-2-7b",
            Fp16,
            Prefill,
            213.0,
            Fit,
        ),
        row(
            "B4-m2u-pp",
            "llama.cpp",
            "m2-ultra",
            "llama-2-7b",
            Fp16,
            Prefill,
            1380.0,
            HeldOut,
        ),
        row(
            "B4-m3max-pp",
            "llama.cpp",
            "m3-max",
            "llama-2-7b",
            Fp16,
            Prefill,
            761.0,
            HeldOut,
        ),
        // B4 MLC on Jetson (jetson-ai-lab): Super rows fit, original Orin Nano and AGX Orin held out.
        row(
            "B4-nanoS-l32-3b",
            "mlc",
            "jetson-orin-nano-super",
            "llama-3.2-3b",
            Int4,
            Decode,
            43.07,
            Fit,
        ),
        row(
            "B4-nanoS-qwen7b",
            "mlc",
            "jetson-orin-nano-super",
            "qwen2.5-7b",
            Int4,
            Decode,
            21.75,
            Fit,
        ),
        row(
            "B4-nanoS-gemma2b",
            "mlc",
            "jetson-orin-nano-super",
            "gemma-2-2b",
            Int4,
            Decode,
            34.97,
            Fit,
        ),
        row(
            "B4-nanoS-phi3",
            "mlc",
            "jetson-orin-nano-super",
            "phi-3-mini",
            Int4,
            Decode,
            38.1,
            Fit,
        ),
        row(
            "B4-nano-l32-3b",
            "mlc",
            "jetson-orin-nano-8gb",
            "llama-3.2-3b",
            Int4,
            Decode,
            27.7,
            HeldOut,
        ),
        row(
            "B4-nano-qwen7b",
            "mlc",
            "jetson-orin-nano-8gb",
            "qwen2.5-7b",
            Int4,
            Decode,
            14.2,
            HeldOut,
        ),
        row(
            "B4-nano-gemma2b",
            "mlc",
            "jetson-orin-nano-8gb",
            "gemma-2-2b",
            Int4,
            Decode,
            21.5,
            HeldOut,
        ),
        row(
            "B4-nano-phi3",
            "mlc",
            "jetson-orin-nano-8gb",
            "phi-3-mini",
            Int4,
            Decode,
            24.7,
            HeldOut,
        ),
        row(
            "B4-nano-l31-8b",
            "mlc",
            "jetson-orin-nano-8gb",
            "llama-3.1-8b",
            Int4,
            Decode,
            14.0,
            HeldOut,
        ),
        row(
            "B4-agx-l2-7b",
            "mlc",
            "jetson-agx-orin-64gb",
            "llama-2-7b",
            Int4,
            Decode,
            46.9,
            HeldOut,
        ),
        // B6 pytorch eager (ML.ENERGY v1, A100, Llama-2-13B-chat, batch 1)
        row(
            "B6-a100-l2-13b",
            "pytorch-eager",
            "a100-80gb-sxm",
            "llama-2-13b",
            Fp16,
            DecodeChat,
            30.0,
            Fit,
        ),
    ];
    // B1 vidur MLP GEMMs (ms) -> vllm
    let ts = [1u64, 8, 32, 128, 512, 2048, 4096];
    let vidur: &[(&'static str, &'static str, u64, u64, [f64; 7])] = &[
        (
            "h100-sxm",
            "7b-gu",
            22016,
            4096,
            [0.064, 0.064, 0.066, 0.071, 0.134, 0.492, 0.987],
        ),
        (
            "h100-sxm",
            "7b-dn",
            4096,
            11008,
            [0.038, 0.036, 0.039, 0.048, 0.0755, 0.218, 0.441],
        ),
        (
            "a100-80gb-sxm",
            "7b-gu",
            22016,
            4096,
            [0.116, 0.111, 0.115, 0.157, 0.402, 1.69, 3.37],
        ),
        (
            "a100-80gb-sxm",
            "7b-dn",
            4096,
            11008,
            [0.06, 0.061, 0.065, 0.088, 0.229, 0.851, 1.6],
        ),
        (
            "a40",
            "7b-gu",
            22016,
            4096,
            [0.321, 0.325, 0.36, 0.431, 0.885, 3.17, 6.74],
        ),
        (
            "a40",
            "7b-dn",
            4096,
            11008,
            [0.161, 0.166, 0.171, 0.18, 0.485, 1.8, 3.38],
        ),
        (
            "h100-sxm",
            "70b-gu",
            57344,
            8192,
            [0.311, 0.305, 0.314, 0.327, 0.65, 2.73, 5.67],
        ),
        (
            "h100-sxm",
            "70b-dn",
            8192,
            28672,
            [0.171, 0.162, 0.164, 0.166, 0.269, 1.28, 2.65],
        ),
        (
            "a100-80gb-sxm",
            "70b-gu",
            57344,
            8192,
            [0.58, 0.597, 0.613, 0.72, 2.13, 8.1, 15.9],
        ),
        (
            "a100-80gb-sxm",
            "70b-dn",
            8192,
            28672,
            [0.29, 0.29, 0.297, 0.322, 1.04, 4.08, 8.06],
        ),
        (
            "a40",
            "70b-gu",
            57344,
            8192,
            [1.83, 1.69, 1.74, 1.89, 4.37, 15.9, 35.4],
        ),
        (
            "a40",
            "70b-dn",
            8192,
            28672,
            [0.814, 0.843, 0.894, 0.91, 3.12, 8.35, 16.9],
        ),
    ];
    for (dev, op, n, k, ms) in vidur {
        for (i, &t) in ts.iter().enumerate() {
            // Fit on the clearly memory-bound (T <= 32) and compute-bound (T >= 2048) points;
            // the ridge region (128, 512) is held out.
            let u = if t == 128 || t == 512 {
                Use::HeldOut
            } else {
                Use::Fit
            };
            let id: &'static str = Box::leak(format!("B1-{dev}-{op}-T{t}").into_boxed_str());
            v.push(row(
                id,
                "vllm",
                dev,
                op,
                Fp16,
                Gemm(t, *n, *k),
                ms[i] * 1e-3,
                u,
            ));
        }
    }
    // B2 aiconfigurator GEMMs (us) -> tensorrt-llm
    let ms_ = [1u64, 32, 128, 512, 2048, 8192];
    let aic: &[(&'static str, DType, u64, [f64; 6])] = &[
        (
            "h100-sxm",
            Bf16,
            4096,
            [17.0, 15.0, 16.0, 25.0, 88.0, 344.0],
        ),
        (
            "h100-sxm",
            Bf16,
            8192,
            [49.0, 50.0, 52.0, 90.0, 346.0, 1405.0],
        ),
        (
            "h100-sxm",
            Fp8,
            8192,
            [37.0, 39.0, 42.0, 68.0, 235.0, 885.0],
        ),
        (
            "h200-sxm",
            Bf16,
            8192,
            [36.0, 36.0, 39.0, 88.0, 351.0, 1364.0],
        ),
        (
            "a100-80gb-sxm",
            Bf16,
            8192,
            [88.0, 99.0, 114.0, 317.0, 1008.0, 4189.0],
        ),
        (
            "l40s",
            Bf16,
            8192,
            [145.0, 214.0, 226.0, 357.0, 1394.0, 4939.0],
        ),
    ];
    for (dev, dt, n, us) in aic {
        for (i, &m) in ms_.iter().enumerate() {
            // fp8 rows held out (see tensorrt-llm.json notes); L40S M=1 hits L2 cache (discarded);
            // the ridge point M=512 held out.
            let skip = *dev == "l40s" && m == 1;
            if skip {
                continue;
            }
            let u = if *dt == Fp8 || m == 512 {
                Use::HeldOut
            } else {
                Use::Fit
            };
            let id: &'static str =
                Box::leak(format!("B2-{dev}-{}-{n}-M{m}", dt.key()).into_boxed_str());
            v.push(row(
                id,
                "tensorrt-llm",
                dev,
                "gemm",
                *dt,
                Gemm(m, *n, *n),
                us[i] * 1e-6,
                u,
            ));
        }
    }
    v
}

/// Predicted value in the unit of `measured` (tok/s or seconds) under runtime profile `rt`.
fn predict(r: &Row, rt: &Arc<RuntimeProfile>) -> f64 {
    let h = Hardware::new(device(r.device), rt.clone());
    match r.kind {
        Kind::Gemm(m, n, k) => {
            let (mf, nf, kf) = (m as f64, n as f64, k as f64);
            let b = r.dtype.bytes();
            let bytes = nf * kf * b + mf * kf * b + mf * nf * 2.0;
            op_time_s(2.0 * mf * nf * kf, bytes, &h, r.dtype, 1)
        }
        Kind::Decode | Kind::DecodeChat => {
            let ctx = if r.kind == Kind::Decode { 64 } else { 256 };
            1.0 / pass_s(&llm(r.model), &h, &Workload::decode(1, ctx, r.dtype))
        }
        Kind::Prefill => 512.0 / pass_s(&llm(r.model), &h, &Workload::prefill(1, 512, r.dtype)),
    }
}

fn err(r: &Row, rt: &Arc<RuntimeProfile>) -> f64 {
    (predict(r, rt) - r.measured) / r.measured
}

#[derive(Clone, Copy, Debug)]
enum Param {
    Ce,
    Be,
    Q4,
}

/// Sets a parameter at a scope: `None` = profile default, `Some("class:x")` or `Some("device:x")`.
fn set(rt: &mut RuntimeProfile, scope: Option<&str>, p: Param, v: f64) {
    let slot = match scope {
        None => match p {
            Param::Ce => &mut rt.compute_efficiency,
            Param::Be => &mut rt.bandwidth_efficiency,
            Param::Q4 => rt.int4_bandwidth_factor.as_mut().unwrap(),
        },
        Some(s) => {
            let o = rt
                .overrides
                .iter_mut()
                .find(|o| match s.split_once(':').unwrap() {
                    ("class", c) => o
                        .class
                        .map(|k| serde_json::to_value(k).unwrap() == c)
                        .unwrap_or(false),
                    (_, d) => o.device.as_deref() == Some(d),
                })
                .unwrap_or_else(|| panic!("no override {s} in {}", rt.name));
            match p {
                Param::Ce => o.compute_efficiency.as_mut().unwrap(),
                Param::Be => o.bandwidth_efficiency.as_mut().unwrap(),
                Param::Q4 => o.int4_bandwidth_factor.as_mut().unwrap(),
            }
        }
    };
    slot.value = v;
}

/// One step of the fit: (runtime, scope, parameter, selector of the rows it is fitted on).
type Step = (&'static str, Option<&'static str>, Param, fn(&Row) -> bool);

fn steps() -> Vec<Step> {
    fn dc(r: &Row) -> bool {
        matches!(
            r.device,
            "a100-80gb-sxm" | "h100-pcie" | "h100-sxm" | "h200-sxm" | "a40"
        )
    }
    fn gemm_m(r: &Row) -> u64 {
        if let Kind::Gemm(m, ..) = r.kind {
            m
        } else {
            0
        }
    }
    vec![
        ("llama.cpp", Some("class:desktop_gpu"), Param::Be, |r| {
            r.device == "rtx-4090" && r.kind == Kind::Decode && r.dtype == DType::Fp16
        }),
        ("llama.cpp", Some("class:desktop_gpu"), Param::Q4, |r| {
            r.device == "rtx-4090" && r.kind == Kind::Decode && r.dtype == DType::Int4
        }),
        ("llama.cpp", Some("class:desktop_gpu"), Param::Ce, |r| {
            r.device == "rtx-4090" && r.kind == Kind::Prefill
        }),
        ("llama.cpp", Some("class:datacenter_gpu"), Param::Be, |r| {
            dc(r) && r.kind == Kind::Decode && r.dtype == DType::Fp16
        }),
        ("llama.cpp", Some("class:datacenter_gpu"), Param::Q4, |r| {
            dc(r) && r.kind == Kind::Decode && r.dtype == DType::Int4
        }),
        ("llama.cpp", Some("class:datacenter_gpu"), Param::Ce, |r| {
            r.device == "a100-80gb-sxm" && r.kind == Kind::Prefill
        }),
        // llama.cpp is far from cuBLAS-optimal on Hopper (B5): H100 PCIe gets its own compute efficiency.
        ("llama.cpp", Some("device:h100-pcie"), Param::Ce, |r| {
            r.device == "h100-pcie" && r.kind == Kind::Prefill
        }),
        ("llama.cpp", Some("class:laptop_soc"), Param::Be, |r| {
            matches!(r.device, "m2-ultra" | "m3-max")
                && r.kind == Kind::Decode
                && r.dtype == DType::Fp16
        }),
        ("llama.cpp", Some("class:laptop_soc"), Param::Q4, |r| {
            matches!(r.device, "m2-ultra" | "m3-max")
                && r.kind == Kind::Decode
                && r.dtype == DType::Int4
        }),
        ("llama.cpp", Some("class:laptop_soc"), Param::Ce, |r| {
            r.device == "apple-m1-max" && r.kind == Kind::Prefill
        }),
        ("llama.cpp", Some("class:embedded_gpu"), Param::Q4, |r| {
            r.device == "jetson-orin-nano-super"
        }),
        ("mlc", Some("class:embedded_gpu"), Param::Be, |r| {
            r.device == "jetson-orin-nano-super"
        }),
        ("vllm", None, Param::Be, |r| gemm_m(r) <= 32),
        ("vllm", None, Param::Ce, |r| gemm_m(r) >= 2048),
        ("tensorrt-llm", None, Param::Be, |r| {
            r.device != "l40s" && gemm_m(r) <= 32 && r.dtype == DType::Bf16
        }),
        ("tensorrt-llm", None, Param::Ce, |r| {
            r.device != "l40s" && gemm_m(r) >= 2048 && r.dtype == DType::Bf16
        }),
        ("tensorrt-llm", Some("device:l40s"), Param::Be, |r| {
            r.device == "l40s" && gemm_m(r) <= 128
        }),
        ("tensorrt-llm", Some("device:l40s"), Param::Ce, |r| {
            r.device == "l40s" && gemm_m(r) >= 2048
        }),
        ("pytorch-eager", None, Param::Be, |r| {
            r.runtime == "pytorch-eager"
        }),
    ]
}

/// Least squares on log errors, golden-section search over (0.02, 1].
fn fit_one(rt: &RuntimeProfile, scope: Option<&str>, p: Param, rows: &[&Row]) -> f64 {
    let loss = |x: f64| -> f64 {
        let mut r2 = rt.clone();
        set(&mut r2, scope, p, x);
        let r2 = Arc::new(r2);
        rows.iter()
            .map(|r| (predict(r, &r2) / r.measured).ln().powi(2))
            .sum::<f64>()
    };
    let (mut a, mut b) = (0.02f64, 1.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let c = b - g * (b - a);
        let d = a + g * (b - a);
        if loss(c) < loss(d) {
            b = d;
        } else {
            a = c;
        }
    }
    (a + b) / 2.0
}

/// Runs the fit in order, starting from the catalog profiles; returns (step, fitted value).
fn run_fit() -> (
    Vec<(String, f64)>,
    std::collections::BTreeMap<String, RuntimeProfile>,
) {
    let all = rows();
    let mut rts: std::collections::BTreeMap<String, RuntimeProfile> = cat()
        .runtimes()
        .map(|r| (r.name.clone(), (**r).clone()))
        .collect();
    let mut out = Vec::new();
    for (rt, scope, p, sel) in steps() {
        let rs: Vec<&Row> = all
            .iter()
            .filter(|r| r.runtime == rt && r.use_ == Use::Fit && sel(r))
            .collect();
        assert!(!rs.is_empty(), "{rt} {scope:?} {p:?}: no rows");
        let prof = rts.get_mut(rt).unwrap();
        let v = fit_one(prof, scope, p, &rs);
        set(prof, scope, p, v);
        out.push((format!("{rt} {} {p:?}", scope.unwrap_or("default")), v));
    }
    (out, rts)
}

#[test]
fn calibration_report() {
    let (fits, _) = run_fit();
    for (k, v) in &fits {
        println!("fit {k:<45} {v:.3}");
    }
    let rows = rows();
    println!("| row | runtime | device | model | dtype | use | measured | predicted | error |");
    for r in &rows {
        let rt = cat().runtime(r.runtime).unwrap();
        let p = predict(r, &rt);
        println!(
            "| {} | {} | {} | {} | {} | {:?} | {:.4e} | {:.4e} | {:+.1}% |",
            r.id,
            r.runtime,
            r.device,
            r.model,
            r.dtype.key(),
            r.use_,
            r.measured,
            p,
            100.0 * (p - r.measured) / r.measured
        );
    }
    for rt in ["llama.cpp", "mlc", "vllm", "tensorrt-llm", "pytorch-eager"] {
        for u in [Use::Fit, Use::HeldOut] {
            let e: Vec<f64> = rows
                .iter()
                .filter(|r| r.runtime == rt && r.use_ == u)
                .map(|r| err(r, &cat().runtime(rt).unwrap()).abs())
                .collect();
            if !e.is_empty() {
                let mean = e.iter().sum::<f64>() / e.len() as f64;
                let max = e.iter().cloned().fold(0.0, f64::max);
                println!(
                    "summary {rt:<14} {u:?}: n={} MAPE {:.1}% max {:.1}%",
                    e.len(),
                    100.0 * mean,
                    100.0 * max
                );
            }
        }
    }
}

#[test]
fn catalog_efficiencies_are_the_fitted_ones() {
    let (fits, rts) = run_fit();
    for (rt, prof) in &rts {
        let cat_rt = cat().runtime(rt).unwrap();
        for class in [
            DeviceClass::DatacenterGpu,
            DeviceClass::DesktopGpu,
            DeviceClass::LaptopSoc,
            DeviceClass::EmbeddedGpu,
        ] {
            for dev in ["l40s", "x"] {
                let a = prof.efficiencies(dev, class);
                let b = cat_rt.efficiencies(dev, class);
                for (x, y) in [(a.0, b.0), (a.1, b.1), (a.2, b.2)] {
                    assert!(
                        (x - y).abs() <= 0.006,
                        "{rt} {class:?} {dev}: refit {a:?} vs catalog {b:?}; fits {fits:?}"
                    );
                }
            }
        }
    }
}

/// Documented bounds (docs/calibration.md): (runtime, use, max mean |error|, max |error|).
const BOUNDS: &[(&str, Use, f64, f64)] = &[
    ("llama.cpp", Use::Fit, 0.06, 0.16),
    ("llama.cpp", Use::HeldOut, 0.50, 0.70),
    ("mlc", Use::Fit, 0.12, 0.15),
    ("mlc", Use::HeldOut, 0.12, 0.25),
    ("vllm", Use::Fit, 0.06, 0.18),
    ("vllm", Use::HeldOut, 0.15, 0.35),
    ("tensorrt-llm", Use::Fit, 0.06, 0.25),
    ("tensorrt-llm", Use::HeldOut, 0.20, 0.35),
    ("pytorch-eager", Use::Fit, 0.01, 0.01),
];

#[test]
fn calibration_errors_within_documented_bounds() {
    let rows = rows();
    for &(rt, u, mean_b, max_b) in BOUNDS {
        let prof = cat().runtime(rt).unwrap();
        let e: Vec<(f64, &str)> = rows
            .iter()
            .filter(|r| r.runtime == rt && r.use_ == u)
            .map(|r| (err(r, &prof).abs(), r.id))
            .collect();
        assert!(!e.is_empty());
        let mean = e.iter().map(|x| x.0).sum::<f64>() / e.len() as f64;
        let worst = e
            .iter()
            .cloned()
            .fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a });
        assert!(
            mean <= mean_b,
            "{rt} {u:?}: MAPE {:.1}% > {:.0}%",
            100.0 * mean,
            100.0 * mean_b
        );
        assert!(
            worst.0 <= max_b,
            "{rt} {u:?}: {} off by {:.1}% > {:.0}%",
            worst.1,
            100.0 * worst.0,
            100.0 * max_b
        );
    }
}

#[test]
fn energy_per_token_ml_energy_a100() {
    // Held out: ML.ENERGY v1, A100, Llama-2-13B, batch 1: 8.04 J/token (calibration.md B6).
    let h = hw("a100-80gb-sxm", Some("pytorch-eager"));
    let ts = layer_times(
        &llm("llama-2-13b"),
        &h,
        &Workload::decode(1, 256, DType::Fp16),
        None,
    );
    let j: f64 = ts.iter().map(|t| t.total_j()).sum();
    assert!(rel(j, 8.04) < 0.25, "{j} J/token");
}
