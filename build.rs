//! Embeds the default catalog (`models/**.json`) into the library so the binary needs no data files.
use std::{env, fs, path::Path};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    println!("cargo:rerun-if-changed=models");
    let mut entries = Vec::new();
    for kind in ["llm", "device", "runtime"] {
        let dir = root.join(kind);
        println!("cargo:rerun-if-changed={}", dir.display());
        if let Ok(rd) = fs::read_dir(&dir) {
            let mut files: Vec<_> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                println!("cargo:rerun-if-changed={}", f.display());
                entries.push(format!(
                    "    ({:?}, {:?}, include_str!({:?})),",
                    kind,
                    f.file_name().unwrap().to_string_lossy(),
                    f.display().to_string()
                ));
            }
        }
    }
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded_catalog.rs");
    fs::write(
        out,
        format!(
            "/// (kind, file name, JSON text) of every embedded catalog card.\npub static EMBEDDED: &[(&str, &str, &str)] = &[\n{}\n];\n",
            entries.join("\n")
        ),
    )
    .unwrap();
}
