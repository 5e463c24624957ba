//! The `edgeplan` binary end to end, on temporary directories: errors carry JSON paths and never
//! panic, batch runs survive bad files and write atomically, and every subcommand's output has the
//! promised shape.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn edgeplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeplan"))
        .args(args)
        .env_remove("EDGEPLAN_CATALOG")
        .output()
        .expect("run edgeplan")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_no_panic(o: &Output) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "edgeplan panicked:\n{e}");
}

/// Writes a generated pipeline instance to `path`.
fn generate(path: &Path, seed: u64) {
    let o = edgeplan(&[
        "generate",
        "pipeline",
        "--size",
        "small",
        "--seed",
        &seed.to_string(),
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "generate failed: {}", stderr(&o));
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn device_names() -> Vec<String> {
    let o = edgeplan(&["catalog", "device", "--json"]);
    assert!(o.status.success());
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn replace_strings(v: &mut Value, names: &[String], new: &str) -> usize {
    match v {
        Value::String(s) if names.contains(s) => {
            *s = new.to_string();
            1
        }
        Value::Array(a) => a.iter_mut().map(|x| replace_strings(x, names, new)).sum(),
        Value::Object(m) => m.values_mut().map(|x| replace_strings(x, names, new)).sum(),
        _ => 0,
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A device card (all required fields) with a negative memory size.
const BAD_CARD: &str = r#"{
  "name": "broken-board", "class": "embedded_gpu",
  "peak_flops": {"fp16": {"value": 1e12, "source": "test"}},
  "memory_bytes": {"value": -1.0, "source": "test"},
  "memory_bandwidth_bytes_per_s": {"value": 1e11, "source": "test"},
  "idle_power_w": {"value": 5, "source": "test"},
  "peak_power_w": {"value": 15, "source": "test"}
}"#;

#[test]
fn validate_reports_json_paths_without_panicking() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.json");
    generate(&good, 1);
    let doc = read_json(&good);

    let nan = d.path().join("nan.json");
    std::fs::write(
        &nan,
        "{\"family\": \"pipeline\",\n \"schema_version\": 1, \"x\": NaN}",
    )
    .unwrap();

    let mut neg = doc.clone();
    neg["catalog"] =
        serde_json::json!({ "device": [serde_json::from_str::<Value>(BAD_CARD).unwrap()] });
    let negp = d.path().join("negative-memory.json");
    std::fs::write(&negp, serde_json::to_string_pretty(&neg).unwrap()).unwrap();

    let mut unknown = doc.clone();
    assert!(replace_strings(&mut unknown, &device_names(), "no-such-device") > 0);
    let unknownp = d.path().join("unknown-device.json");
    std::fs::write(&unknownp, serde_json::to_string_pretty(&unknown).unwrap()).unwrap();

    let o = edgeplan(&["validate", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok"));

    for (path, expect) in [
        (&nan, "$ (line 2"),
        (&negp, "$.catalog.device[0].memory_bytes.value"),
        (&unknownp, "no-such-device"),
    ] {
        let o = edgeplan(&["validate", path.to_str().unwrap()]);
        assert_no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(e.starts_with("error: "), "{e}");
        assert!(e.contains(expect), "expected {expect:?} in {e}");
        assert!(e.contains("$"), "no JSON path in {e}");
    }
    let o = edgeplan(&["validate", unknownp.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("$."),
        "unknown name error lacks a field path: {}",
        stderr(&o)
    );

    // one bad file among good ones still fails the run
    let o = edgeplan(&["validate", good.to_str().unwrap(), nan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn batch_records_bad_files_writes_atomically_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let inst = d.path().join("instances");
    std::fs::create_dir_all(inst.join("pipeline")).unwrap();
    generate(&inst.join("pipeline/good.json"), 2);
    std::fs::write(
        inst.join("pipeline/bad.json"),
        "{\"family\": \"pipeline\", \"x\": NaN}",
    )
    .unwrap();
    let out = d.path().join("out");
    let args = [
        "batch",
        inst.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
        "--time-limit",
        "20",
    ];
    let o = edgeplan(&args);
    assert_no_panic(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    let table = stdout(&o);
    for col in [
        "instance",
        "family",
        "solver",
        "status",
        "objective",
        "gap",
        "time",
    ] {
        assert!(table.contains(col), "summary table lacks {col}:\n{table}");
    }

    let good = out.join("pipeline/good.result.json");
    let r = read_json(&good);
    assert_eq!(r["family"], "pipeline");
    assert!(r["status"]["termination"].is_string());
    let bad = read_json(&out.join("pipeline/bad.error.json"));
    assert!(bad["path"].as_str().unwrap().ends_with("bad.json"));
    assert!(
        bad["message"].as_str().unwrap().contains("NaN")
            || bad["message"].as_str().unwrap().contains("line")
    );
    assert!(!out.join("pipeline/bad.result.json").exists());

    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["total"], 2);
    assert_eq!(summary["results"].as_array().unwrap().len(), 1);
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(errors[0]["path"].as_str().unwrap().ends_with("bad.json"));
    assert!(errors[0]["message"].is_string());

    let leftovers: Vec<_> = files_under(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // --resume skips the solved instance (its file is untouched) and retries the bad one
    let before = std::fs::read(&good).unwrap();
    let mtime = std::fs::metadata(&good).unwrap().modified().unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let o = edgeplan(&resume);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("resumed"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&good).unwrap(), before);
    assert_eq!(std::fs::metadata(&good).unwrap().modified().unwrap(), mtime);
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["results"][0]["resumed"], true);

    // all good: exit 0
    std::fs::remove_file(inst.join("pipeline/bad.json")).unwrap();
    let o = edgeplan(&resume);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn batch_usage_error_exits_1() {
    let o = edgeplan(&["batch", "somewhere"]);
    assert_eq!(o.status.code(), Some(1));
    let o = edgeplan(&["no-such-command"]);
    assert_eq!(o.status.code(), Some(1));
    let o = edgeplan(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("Exit codes"));
}

#[test]
fn solve_prints_result_with_required_keys() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("inst.json");
    generate(&f, 3);
    let o = edgeplan(&["solve", f.to_str().unwrap(), "--time-limit", "20"]);
    assert_no_panic(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(&stdout(&o)).expect("solve prints JSON");
    for key in [
        "family",
        "solver",
        "status",
        "objective",
        "bound",
        "gap",
        "wall_time_s",
        "solution",
        "evaluation",
    ] {
        assert!(r.get(key).is_some(), "result lacks {key}: {r}");
    }
    assert!(r["status"]["termination"].is_string());
    assert!(r["status"]["solution"].is_string());
    assert_eq!(r["evaluation"]["feasible"], true);

    // several files go to --out DIR
    let g = d.path().join("other.json");
    generate(&g, 4);
    let out = d.path().join("res");
    let o = edgeplan(&[
        "solve",
        f.to_str().unwrap(),
        g.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("inst.result.json").is_file());
    assert!(out.join("other.result.json").is_file());

    let o = edgeplan(&["solve", f.to_str().unwrap(), "--solver", "no-such-solver"]);
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown solver"));
}

#[test]
fn compare_json_is_a_list_of_rows() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("inst.json");
    generate(&f, 5);
    let o = edgeplan(&[
        "compare",
        f.to_str().unwrap(),
        "--json",
        "--time-limit",
        "20",
    ]);
    assert_no_panic(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rows = rows.as_array().expect("a JSON list");
    assert!(!rows.is_empty());
    for r in rows {
        for key in [
            "solver",
            "kind",
            "status",
            "objective",
            "gap_to_best_bound",
            "wall_time_s",
            "feasible",
        ] {
            assert!(r.get(key).is_some(), "row lacks {key}: {r}");
        }
    }
    // text output with two instances has the per-solver summary
    let g = d.path().join("other.json");
    generate(&g, 6);
    let o = edgeplan(&[
        "compare",
        f.to_str().unwrap(),
        g.to_str().unwrap(),
        "--time-limit",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("median_gap"), "{}", stdout(&o));
}

#[test]
fn catalog_json_has_names_and_key_numbers() {
    let o = edgeplan(&["catalog", "--json"]);
    assert!(o.status.success());
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(rows.iter().all(|r| r["name"].is_string()));
    let llama = rows.iter().find(|r| r["name"] == "llama-2-7b").unwrap();
    assert_eq!(llama["layers"], 32);
    assert_eq!(llama["d_model"], 4096);
    assert!(llama["params"].as_f64().unwrap() > 6e9);
    let h100 = rows.iter().find(|r| r["name"] == "h100-sxm").unwrap();
    assert!(h100["peak_fp16_flops"].as_f64().unwrap() > 1e14);
    assert!(h100["memory_bytes"].as_f64().unwrap() > 1e10);
    assert!(h100["memory_bandwidth_bytes_per_s"].as_f64().unwrap() > 1e12);

    let o = edgeplan(&["catalog", "device"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("h100-sxm"));
    assert!(!stdout(&o).contains("llama-2-7b"));
}

#[test]
fn extra_catalog_dir_adds_cards() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("device")).unwrap();
    let card = BAD_CARD
        .replace("-1.0", "8e9")
        .replace("broken-board", "my-board");
    std::fs::write(d.path().join("device/my-board.json"), card).unwrap();
    let o = edgeplan(&[
        "--catalog",
        d.path().to_str().unwrap(),
        "catalog",
        "device",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("my-board"));
    let o = Command::new(env!("CARGO_BIN_EXE_edgeplan"))
        .args(["catalog", "device", "--json"])
        .env("EDGEPLAN_CATALOG", d.path())
        .output()
        .unwrap();
    assert!(stdout(&o).contains("my-board"));

    std::fs::write(d.path().join("device/my-board.json"), BAD_CARD).unwrap();
    let o = edgeplan(&["--catalog", d.path().to_str().unwrap(), "catalog"]);
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("memory_bytes.value"), "{}", stderr(&o));
}

#[test]
fn generate_validate_round_trip_and_schema() {
    let d = tempfile::tempdir().unwrap();
    for seed in 0..3 {
        let f = d.path().join(format!("g{seed}.json"));
        generate(&f, seed);
        let o = edgeplan(&["validate", f.to_str().unwrap()]);
        assert!(o.status.success(), "seed {seed}: {}", stderr(&o));
    }
    let a = edgeplan(&["generate", "pipeline", "--seed", "7"]);
    let b = edgeplan(&["generate", "pipeline", "--seed", "7"]);
    assert_eq!(stdout(&a), stdout(&b), "generate is deterministic per seed");

    let o = edgeplan(&["schema"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("pipeline"));
    let o = edgeplan(&["schema", "pipeline"]);
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["properties"]["family"]["const"], "pipeline");
    let o = edgeplan(&["schema", "pipeline", "--solution"]);
    assert!(serde_json::from_str::<Value>(&stdout(&o)).is_ok());
    let o = edgeplan(&["schema", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown family"));
}

#[test]
fn profile_prints_layers_and_json() {
    let o = edgeplan(&["profile", "llama-2-7b", "--device", "h100-sxm"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("block.0"));
    let o = edgeplan(&[
        "profile",
        "llama-2-7b",
        "--recipe",
        "qlora",
        "--lora-rank",
        "16",
        "--lora-targets",
        "q,k,v,o",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(r["trainable_params"].as_f64().unwrap() > 0.0);
    let o = edgeplan(&["profile", "lama-2-7b"]);
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("llama-2-7b"),
        "suggests the close name: {}",
        stderr(&o)
    );
}

#[test]
fn profile_measured_csv_replaces_layer_times() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("m.csv");
    std::fs::write(
        &csv,
        "model,device,phase,batch,seq_len,layer,time_s\n\
         llama-2-7b,rtx-4090,prefill,1,512,block.0,0.125\n",
    )
    .unwrap();
    fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "profile",
            "llama-2-7b",
            "--device",
            "rtx-4090",
            "--measured",
        ];
        a.extend_from_slice(extra);
        a
    }
    let o = edgeplan(&args(&[csv.to_str().unwrap(), "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["measured_layers"], 1);
    assert_eq!(r["layers"][1]["time_source"], "measured");
    assert_eq!(r["layers"][2]["time_source"], "analytic");
    let t = &r["layers"][1]["time"];
    let total = t["fwd_s"].as_f64().unwrap() + t["bwd_s"].as_f64().unwrap();
    assert!((total - 0.125).abs() < 1e-12, "{total}");
    // the table marks measured layers
    let o = edgeplan(&args(&[csv.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("measured ("), "{}", stdout(&o));
    assert!(stdout(&o).contains("125.000*"), "{}", stdout(&o));
    // a bad row: exit 1, the file, the line and the column, no panic
    std::fs::write(
        &csv,
        "model,device,phase,batch,seq_len,layer,time_s\n\
         llama-2-7b,rtx-4090,prefill,1,512,block.0,NaN\n",
    )
    .unwrap();
    let o = edgeplan(&args(&[csv.to_str().unwrap()]));
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("$.measured") && e.contains("line 2, column 'time_s'") && e.contains("m.csv"),
        "{e}"
    );
    let o = edgeplan(&args(&["/no/such/file.csv"]));
    assert_no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/no/such/file.csv"), "{}", stderr(&o));
}
