//! Measured per-layer profile tables end to end: `profile` with a CSV (measured where a row matches,
//! analytic elsewhere, the source reported per layer), CSV validation with line numbers, and a
//! `pipeline` catalog instance whose stage times follow the table.

use edgeplan::catalog::Catalog;
use edgeplan::cost::profile::{profile, ProfileRequest};
use edgeplan::cost::{MeasuredProfiles, TimeSource};
use edgeplan::error::Error;
use edgeplan::problems::pipeline::{Pipeline, PipelineInstance, PipelineSolution};
use edgeplan::solve::Family;
use std::io::Write;

const HEADER: &str =
    "model,device,runtime,dtype,phase,batch,seq_len,layer,time_s,energy_j,memory_bytes";

fn write_csv(body: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(f, "{body}").unwrap();
    f.flush().unwrap();
    f
}

fn request(csv: Option<&str>) -> ProfileRequest {
    let mut r = ProfileRequest::new("llama-2-7b");
    r.device = Some("rtx-4090".into());
    r.seq_len = 448;
    r.gen_tokens = 128; // decode rows at the mean context 448 + 64 = 512
    r.measured = csv.map(str::to_string);
    r
}

fn rel_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-30)
}

#[test]
fn profile_uses_measured_rows_and_analytic_elsewhere() {
    let csv = write_csv(&format!(
        "{HEADER}\n\
         llama-2-7b,rtx-4090,llama.cpp,fp16,prefill,1,448,block.0,0.0125,3.5,\n\
         LLaMA-2-7B,RTX-4090,,fp16,prefill,1,448,3,0.0200,,\n\
         llama-2-7b,rtx-4090,llama.cpp,fp16,decode,1,512,head,0.00042,0.12,1e6\n\
         llama-2-7b,rtx-4090,llama.cpp,fp16,prefill,1,999,block.1,9.0,,\n\
         llama-2-7b,h100-sxm,vllm,fp16,prefill,1,448,block.1,9.0,,\n"
    ));
    let cat = Catalog::builtin();
    let an = profile(cat, &request(None)).unwrap();
    let me = profile(cat, &request(Some(csv.path().to_str().unwrap()))).unwrap();
    assert_eq!(an.layers.len(), me.layers.len());
    assert_eq!(an.measured_layers, 0);
    assert_eq!(me.measured_layers, 2);
    assert_eq!(me.measured_decode_layers, 1);
    let n = me.layers.len();
    let head = n - 1;
    assert_eq!(me.layers[head].cost.name, "head");
    for (i, (a, m)) in an.layers.iter().zip(&me.layers).enumerate() {
        let (ta, tm) = (a.time.unwrap(), m.time.unwrap());
        let (da, dm) = (a.decode_time.unwrap(), m.decode_time.unwrap());
        assert_eq!(a.time_source, Some(TimeSource::Analytic));
        // prefill: layer 1 = block.0 (by name), layer 3 = block.2 (by index)
        match i {
            1 => {
                assert_eq!(m.time_source, Some(TimeSource::Measured));
                assert!(rel_eq(tm.total_s(), 0.0125), "{}", tm.total_s());
                assert!(rel_eq(tm.total_j(), 3.5));
            }
            3 => {
                assert_eq!(m.time_source, Some(TimeSource::Measured));
                assert!(rel_eq(tm.total_s(), 0.02));
                // no energy: the analytic energy scaled by the time ratio
                assert!(rel_eq(tm.total_j(), ta.total_j() * 0.02 / ta.total_s()));
            }
            _ => {
                assert_eq!(m.time_source, Some(TimeSource::Analytic), "layer {i}");
                assert_eq!(tm, ta, "layer {i}");
            }
        }
        if i == head {
            assert_eq!(m.decode_time_source, Some(TimeSource::Measured));
            assert!(rel_eq(dm.total_s(), 0.00042));
            assert!(rel_eq(dm.total_j(), 0.12));
        } else {
            assert_eq!(
                m.decode_time_source,
                Some(TimeSource::Analytic),
                "layer {i}"
            );
            assert_eq!(dm, da, "layer {i}");
        }
    }
    // phase totals follow the layers
    let pre_an = an.prefill.unwrap().seconds;
    let pre_me = me.prefill.unwrap().seconds;
    let ta = |i: usize| an.layers[i].time.unwrap().total_s();
    assert!((pre_me - (pre_an - ta(1) - ta(3) + 0.0125 + 0.02)).abs() < 1e-9 * pre_an);
    assert_eq!(me.request.measured.as_deref(), csv.path().to_str());
    let js = serde_json::to_value(&me).unwrap();
    assert_eq!(js["measured_layers"], 2);
    assert_eq!(js["layers"][1]["time_source"], "measured");
    assert_eq!(js["layers"][2]["time_source"], "analytic");
}

#[test]
fn training_rows_cover_forward_and_backward() {
    let csv = write_csv(&format!(
        "{HEADER}\nllama-2-7b,rtx-4090,pytorch,fp16,training,1,256,block.5,0.3,,\n"
    ));
    let mut r = request(Some(csv.path().to_str().unwrap()));
    r.seq_len = 256;
    r.recipe = serde_json::from_value(serde_json::json!({"kind": "full", "preset": "mixed_adam"}))
        .unwrap();
    let rep = profile(Catalog::builtin(), &r).unwrap();
    assert_eq!(rep.measured_layers, 1);
    let t = rep.layers[6].time.unwrap();
    assert_eq!(rep.layers[6].time_source, Some(TimeSource::Measured));
    assert!(rel_eq(t.total_s(), 0.3));
    assert!(t.fwd_s > 0.0 && t.bwd_s > t.fwd_s);
}

fn invalid_message(e: Error) -> (String, String) {
    match e {
        Error::Invalid { path, message } => (path, message),
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
}

#[test]
fn bad_csv_rows_name_the_line_and_column() {
    let ok = "llama-2-7b,rtx-4090,,fp16,prefill,1,448,block.0,0.01,,";
    let cases = [
        (
            "llama-2-7b,rtx-4090,,fp16,prefill,1,448,block.1,NaN,,",
            "line 3, column 'time_s'",
        ),
        (
            "llama-2-7b,rtx-4090,,fp16,prefill,1,448,block.1,-0.5,,",
            "line 3, column 'time_s'",
        ),
        (
            "llama-2-7b,rtx-4090,,fp16,prefill,1,448,block.1,inf,,",
            "line 3, column 'time_s'",
        ),
        (
            "llama-2-7b,rtx-4090,,fp16,prefill,1,448,block.1,0.1,-2,",
            "line 3, column 'energy_j'",
        ),
        (
            "llama-2-7b,rtx-4090,,fp16,warmup,1,448,block.1,0.1,,",
            "line 3, column 'phase'",
        ),
        (
            "llama-2-7b,rtx-4090,,fp16,prefill,one,448,block.1,0.1,,",
            "line 3, column 'batch'",
        ),
        (
            "llama-2-7b,rtx-4090,,fp16,prefill,0,448,block.1,0.1,,",
            "line 3, column 'batch'",
        ),
        (
            "llama-2-7b,rtx-4090,,fp16,prefill,1,448,,0.1,,",
            "line 3, column 'layer'",
        ),
        ("llama-2-7b,rtx-4090,,fp16,prefill,1,448,block.1", "line 3"),
        (
            "llama-2-7b,rtx-4090,llama.cpp,fp16,prefill,1,448,block.0,0.02,,",
            "as line 2",
        ),
    ];
    for (row, want) in cases {
        let f = write_csv(&format!("{HEADER}\n{ok}\n{row}\n"));
        let e = MeasuredProfiles::from_csv_path(f.path()).unwrap_err();
        let (_, msg) = invalid_message(e);
        assert!(msg.contains(want), "{row}: {msg}");
        assert!(msg.contains(f.path().to_str().unwrap()), "{msg}");
        // the same through `profile`: an error at $.measured, never a panic
        let e = profile(
            Catalog::builtin(),
            &request(Some(f.path().to_str().unwrap())),
        )
        .unwrap_err();
        let (path, msg) = invalid_message(e);
        assert_eq!(path, "$.measured");
        assert!(msg.contains(want), "{row}: {msg}");
    }
    let unknown = MeasuredProfiles::from_reader(
        "model,device,phase,batch,seq_len,layer,time_ms\n".as_bytes(),
    );
    assert!(invalid_message(unknown.unwrap_err())
        .1
        .contains("unknown column 'time_ms'"));
    let missing =
        MeasuredProfiles::from_reader("model,device,phase,batch,seq_len,layer\n".as_bytes());
    assert!(invalid_message(missing.unwrap_err())
        .1
        .contains("missing column 'time_s'"));
    // a missing file, and a table without a device
    let e = profile(Catalog::builtin(), &request(Some("/no/such/measured.csv"))).unwrap_err();
    let (path, msg) = invalid_message(e);
    assert_eq!(path, "$.measured");
    assert!(msg.contains("/no/such/measured.csv"), "{msg}");
    let mut r = request(Some("/no/such/measured.csv"));
    r.device = None;
    assert_eq!(
        invalid_message(profile(Catalog::builtin(), &r).unwrap_err()).0,
        "$.measured"
    );
}

#[test]
fn bundled_example_parses() {
    let m = MeasuredProfiles::from_csv_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/measured/example.csv"
    ))
    .unwrap();
    assert!(!m.rows.is_empty());
}

fn pipeline_instance(measured: Option<&str>) -> PipelineInstance {
    let mut model = serde_json::json!({"name": "llama-2-7b", "dtype": "fp16"});
    if let Some(p) = measured {
        model["measured"] = p.into();
    }
    serde_json::from_value(serde_json::json!({
        "model": {"catalog": model},
        "workload": {"inference": {"batch": 1, "prompt_len": 448, "gen_len": 0}},
        "nodes": [
            {"name": "a", "device": "rtx-4090"},
            {"name": "b", "device": "a100-80gb-pcie"}
        ],
        "default_link": {"bandwidth_bps": 1e9, "latency_s": 0.0},
        "objective": "latency"
    }))
    .unwrap()
}

#[test]
fn pipeline_catalog_model_uses_the_measured_table() {
    let csv = write_csv(&format!(
        "{HEADER}\n\
         llama-2-7b,rtx-4090,,fp16,prefill,1,448,block.0,0.5,2.0,\n\
         llama-2-7b,rtx-4090,,fp16,prefill,1,448,block.1,0.25,,\n"
    ));
    let cat = Catalog::builtin();
    let base = Pipeline::prepare(&pipeline_instance(None), cat).unwrap();
    let meas =
        Pipeline::prepare(&pipeline_instance(Some(csv.path().to_str().unwrap())), cat).unwrap();
    let (pb, pm) = (&base.profile, &meas.profile);
    let t4090 = pb.types.iter().position(|t| t.name == "rtx-4090").unwrap();
    let ta100 = pb
        .types
        .iter()
        .position(|t| t.name == "a100-80gb-pcie")
        .unwrap();
    let l = pb.num_layers();
    for i in 0..l {
        let (b, m) = (pb.types[t4090].fwd_s[i], pm.types[t4090].fwd_s[i]);
        match i {
            1 => assert!(rel_eq(m, 0.5), "{m}"),
            2 => assert!(rel_eq(m, 0.25), "{m}"),
            _ => assert_eq!(m, b, "layer {i}"),
        }
        // the other node type has no rows: unchanged
        assert_eq!(pm.types[ta100].fwd_s[i], pb.types[ta100].fwd_s[i]);
    }
    assert!(rel_eq(pm.types[t4090].energy_j.as_ref().unwrap()[1], 2.0));

    // evaluate: stage 0 = layers 0..=2 on the 4090 takes the measured time, stage 1 is unchanged
    let sol: PipelineSolution = serde_json::from_value(serde_json::json!({"stages": [
        {"node": "a", "first_layer": 0, "last_layer": 2},
        {"node": "b", "first_layer": 3, "last_layer": l - 1}
    ]}))
    .unwrap();
    let eb = Pipeline::evaluate(&base, &sol);
    let em = Pipeline::evaluate(&meas, &sol);
    assert!(
        eb.feasible && em.feasible,
        "{:?} {:?}",
        eb.violations,
        em.violations
    );
    let compute = |e: &edgeplan::solve::Evaluation, s: usize| {
        e.metrics["stages"][s]["compute_s"].as_f64().unwrap()
    };
    let expect = 0.5 + 0.25 - pb.types[t4090].fwd_s[1] - pb.types[t4090].fwd_s[2];
    let delta = compute(&em, 0) - compute(&eb, 0);
    assert!((delta - expect).abs() < 1e-9, "{delta} vs {expect}");
    assert_eq!(compute(&em, 1), compute(&eb, 1));
    assert!((em.objective - eb.objective - expect).abs() < 1e-9);
}

#[test]
fn pipeline_measured_errors_at_the_field() {
    let cat = Catalog::builtin();
    let e = Pipeline::prepare(&pipeline_instance(Some("/no/such/file.csv")), cat).unwrap_err();
    let (path, msg) = invalid_message(e);
    assert_eq!(path, "$.model.catalog.measured");
    assert!(msg.contains("/no/such/file.csv"), "{msg}");
    let bad = write_csv(&format!(
        "{HEADER}\nllama-2-7b,rtx-4090,,fp16,prefill,1,448,block.0,NaN,,\n"
    ));
    let e =
        Pipeline::prepare(&pipeline_instance(Some(bad.path().to_str().unwrap())), cat).unwrap_err();
    let (path, msg) = invalid_message(e);
    assert_eq!(path, "$.model.catalog.measured");
    assert!(msg.contains("line 2, column 'time_s'"), "{msg}");
}
