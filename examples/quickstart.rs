//! The README's Rust quick start, compiled and run by `cargo test --all-targets` / `cargo run --example quickstart`.
use edgeplan::catalog::Catalog;
use edgeplan::cost::{kv_bytes_per_token, layer_table, param_count, DType, Workload};
use edgeplan::solve::SolveOptions;

fn main() -> edgeplan::Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/instances/pipeline/inference-small.json"
    );
    let text = std::fs::read_to_string(path).map_err(|e| edgeplan::Error::io(path, e))?;
    let doc = edgeplan::problems::parse_document(&text)?;
    let r = edgeplan::problems::solve_document(&doc, "auto", &SolveOptions::default())?;
    println!(
        "{} {} objective {:?} bound {:?} gap {:?}",
        r.family, r.status, r.objective, r.bound, r.gap
    );

    let card = Catalog::builtin().llm("llama-2-7b")?;
    assert_eq!(param_count(&card).total as u64, 6_738_415_616);
    assert_eq!(kv_bytes_per_token(&card, DType::Fp16), 512.0 * 1024.0);
    let layers = layer_table(&card, &Workload::prefill(1, 1024, DType::Fp16));
    println!(
        "llama-2-7b: {} layers in the table (embedding, blocks, head)",
        layers.len()
    );
    Ok(())
}
