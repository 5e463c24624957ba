//! The embedded catalog (`models/llm`, `models/device`): every expected card is present and parses,
//! every hardware figure carries a source, and unknown names suggest close matches.

use edgeplan::catalog::{Arch, Catalog, Confidence, Sourced};
use edgeplan::Error;

const LLMS: &[&str] = &[
    "gpt2-small",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "gpt3-medium",
    "gpt3-xl",
    "gpt3-2.7b",
    "gpt3-6.7b",
    "gpt3-13b",
    "gpt3-175b",
    "opt-6.7b",
    "opt-13b",
    "llama-2-7b",
    "llama-2-13b",
    "llama-2-70b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.2-1b",
    "llama-3.2-3b",
    "mistral-7b",
    "mixtral-8x7b",
    "qwen2.5-0.5b",
    "qwen2.5-7b",
    "phi-3-mini",
    "gemma-2-2b",
    "mobilellm-125m",
    "mobilellm-350m",
    "deepseek-v2-lite",
    "qwen1.5-moe-a2.7b",
    "bert-base",
    "bert-large",
    "t5-small",
    "t5-base",
];

const DEVICES: &[&str] = &[
    "h100-sxm",
    "h100-pcie",
    "h200-sxm",
    "a100-80gb-sxm",
    "a100-40gb-sxm",
    "l4",
    "l40s",
    "t4",
    "a10",
    "rtx-3090",
    "rtx-4090",
    "jetson-agx-orin-64gb",
    "jetson-orin-nx-16gb",
    "jetson-orin-nano-8gb",
    "jetson-orin-nano-super",
    "apple-m1-max",
    "apple-m2",
    "apple-m3-pro",
    "apple-a17-pro",
    "apple-a18",
    "snapdragon-8-gen-3",
    "ascend-910b",
    "edge-tpu",
];

fn cat() -> &'static Catalog {
    Catalog::builtin()
}

#[test]
fn every_expected_llm_resolves_under_its_own_name() {
    for &name in LLMS {
        let card = cat()
            .llm(name)
            .unwrap_or_else(|e| panic!("model {name}: {e}"));
        assert_eq!(card.name, name);
        assert!(!card.source.trim().is_empty(), "{name}: empty source");
        assert!(card.published_params > 0.0, "{name}: published_params");
    }
}

#[test]
fn every_expected_device_resolves_under_its_own_name() {
    for &name in DEVICES {
        let card = cat()
            .device(name)
            .unwrap_or_else(|e| panic!("device {name}: {e}"));
        assert_eq!(card.name, name);
    }
}

#[test]
fn catalog_has_enough_cards() {
    let n_llm = cat().llms().count();
    let n_dev = cat().devices().count();
    assert!(n_llm >= 31, "only {n_llm} LLM cards");
    assert!(n_dev >= 20, "only {n_dev} device cards");
}

#[test]
fn aliases_resolve_case_insensitively() {
    for (alias, name) in [
        ("meta-llama/Llama-2-7b-hf", "llama-2-7b"),
        ("LLAMA-2-7B", "llama-2-7b"),
        ("meta-llama/Llama-3.1-8B", "llama-3.1-8b"),
        ("mistralai/Mixtral-8x7B-v0.1", "mixtral-8x7b"),
        ("Qwen/Qwen2.5-0.5B", "qwen2.5-0.5b"),
        ("deepseek-ai/DeepSeek-V2-Lite", "deepseek-v2-lite"),
        ("openai-community/gpt2", "gpt2-small"),
        ("GPT-3 XL", "gpt3-xl"),
        ("google/gemma-2-2b", "gemma-2-2b"),
        ("bert-base-uncased", "bert-base"),
        ("google-t5/t5-base", "t5-base"),
    ] {
        assert_eq!(
            cat()
                .llm(alias)
                .unwrap_or_else(|e| panic!("{alias}: {e}"))
                .name,
            name,
            "alias {alias}"
        );
    }
    for (alias, name) in [
        ("H100", "h100-sxm"),
        ("h100 sxm5", "h100-sxm"),
        ("RTX 4090", "rtx-4090"),
        ("Jetson AGX Orin", "jetson-agx-orin-64gb"),
        ("Jetson Orin Nano Super", "jetson-orin-nano-super"),
        ("M1 Max", "apple-m1-max"),
        ("Snapdragon 8 Gen 3", "snapdragon-8-gen-3"),
    ] {
        assert_eq!(
            cat()
                .device(alias)
                .unwrap_or_else(|e| panic!("{alias}: {e}"))
                .name,
            name,
            "alias {alias}"
        );
    }
}

#[test]
fn every_device_has_a_16_bit_or_int8_peak() {
    for d in cat().devices() {
        assert!(
            ["fp16", "bf16", "int8"]
                .iter()
                .any(|k| d.peak_flops.contains_key(*k)),
            "{}: no fp16/bf16/int8 peak",
            d.name
        );
    }
}

fn check_sourced(owner: &str, field: &str, s: &Sourced) {
    assert!(!s.source.trim().is_empty(), "{owner}.{field}: empty source");
    assert!(
        s.value.is_finite() && s.value >= 0.0,
        "{owner}.{field}: value {}",
        s.value
    );
    assert_ne!(
        s.confidence,
        Confidence::User,
        "{owner}.{field}: built-in figures are not user figures"
    );
}

#[test]
fn every_sourced_figure_has_a_source() {
    for d in cat().devices() {
        for (k, s) in &d.peak_flops {
            check_sourced(&d.name, &format!("peak_flops.{k}"), s);
        }
        check_sourced(&d.name, "memory_bytes", &d.memory_bytes);
        check_sourced(
            &d.name,
            "memory_bandwidth_bytes_per_s",
            &d.memory_bandwidth_bytes_per_s,
        );
        check_sourced(&d.name, "idle_power_w", &d.idle_power_w);
        check_sourced(&d.name, "peak_power_w", &d.peak_power_w);
    }
}

#[test]
fn device_figures_are_in_si_units_and_dense() {
    // Catch unit slips (TFLOPS written as 989.4, GB as 80, GiB instead of GB) and sparse numbers.
    let h100 = cat().device("h100-sxm").unwrap();
    assert_eq!(h100.peak_flops["bf16"].value, 989.4e12);
    assert_eq!(h100.memory_bytes.value, 80e9);
    assert_eq!(h100.memory_bandwidth_bytes_per_s.value, 3.35e12);
    assert_eq!(cat().device("h200-sxm").unwrap().memory_bytes.value, 141e9);
    assert_eq!(
        cat().device("rtx-4090").unwrap().peak_flops["fp16"].value,
        165.2e12,
        "GeForce: FP32-accumulate figure"
    );
    for d in cat().devices() {
        for (k, s) in &d.peak_flops {
            assert!(
                s.value >= 1e11 && s.value <= 5e15,
                "{}: peak_flops.{k} = {} not in FLOP/s",
                d.name,
                s.value
            );
        }
        assert!(d.memory_bytes.value >= 1e6, "{}: memory_bytes", d.name);
        assert!(
            d.memory_bandwidth_bytes_per_s.value >= 1e8,
            "{}: bandwidth",
            d.name
        );
        assert!(
            d.idle_power_w.value <= d.peak_power_w.value,
            "{}: idle > peak",
            d.name
        );
    }
}

#[test]
fn architecture_details_are_encoded() {
    let c = cat();
    let ds = c.llm("deepseek-v2-lite").unwrap();
    let moe = ds.moe.as_ref().expect("deepseek moe");
    assert_eq!(
        (moe.n_experts, moe.top_k, moe.n_shared, moe.expert_d_ff),
        (64, 6, 2, 1408)
    );
    assert_eq!(moe.dense_layers, vec![0]);
    let mla = ds.mla.as_ref().expect("deepseek mla");
    assert_eq!(
        (mla.kv_lora_rank, mla.q_lora_rank, mla.qk_rope_head_dim),
        (512, None, 64)
    );
    assert!(!ds.is_moe_block(0) && ds.is_moe_block(1));

    let qm = c.llm("qwen1.5-moe-a2.7b").unwrap();
    let m = qm.moe.as_ref().unwrap();
    assert_eq!(
        (
            m.n_experts,
            m.top_k,
            m.n_shared,
            m.shared_d_ff,
            m.shared_gate
        ),
        (60, 4, 1, Some(5632), true)
    );
    assert!(qm.qkv_bias);

    let g = c.llm("gemma-2-2b").unwrap();
    let sw = g.sliding_window.as_ref().unwrap();
    assert_eq!((sw.window, sw.global_every), (4096, Some(2)));
    assert!(g.tied_embeddings);
    let mi = c.llm("mistral-7b").unwrap();
    assert_eq!(
        mi.sliding_window
            .as_ref()
            .map(|s| (s.window, s.global_every)),
        Some((4096, None))
    );

    let t5 = c.llm("t5-base").unwrap();
    assert_eq!(t5.arch, Arch::EncoderDecoder);
    assert_eq!(
        (t5.n_layers, t5.decoder_layers, t5.total_blocks()),
        (12, Some(12), 24)
    );
    assert!(!t5.gated_mlp && t5.tied_embeddings && !t5.linear_bias);

    assert_eq!(c.llm("opt-6.7b").unwrap().position_embeddings, Some(2050));
    assert_eq!(c.llm("bert-base").unwrap().token_type_vocab, Some(2));
    assert!(c.llm("mobilellm-125m").unwrap().tied_embeddings);
    assert_eq!(c.llm("gpt3-13b").unwrap().d_model, 5140);
    // GPT-3 XL: attention width must equal d_model to reproduce 1.3B (see the card's notes).
    let xl = c.llm("gpt3-xl").unwrap();
    assert_eq!(xl.n_heads * xl.head_dim, xl.d_model);
}

#[test]
fn unknown_name_suggests_close_match() {
    let err = cat()
        .llm("llama-2-7bb")
        .expect_err("llama-2-7bb must not resolve");
    match &err {
        Error::UnknownName { suggestions, .. } => {
            assert!(
                suggestions.iter().any(|s| s == "llama-2-7b"),
                "suggestions: {suggestions:?}"
            )
        }
        other => panic!("expected UnknownName, got {other:?}"),
    }
    let msg = err.to_string();
    let (_, suggested) = msg
        .split_once("did you mean")
        .unwrap_or_else(|| panic!("no suggestion in '{msg}'"));
    assert!(suggested.contains("llama-2-7b"), "{msg}");

    let err = cat()
        .device("h100-sxmm")
        .expect_err("h100-sxmm must not resolve");
    assert!(err.to_string().contains("h100-sxm"), "{err}");
}
