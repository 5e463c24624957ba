//! # Family `split_finetune`: joint cut layer, freezing ratios and bandwidth for split LoRA fine-tuning
//!
//! Seeds: survey 000 §V-A1–V-A3 (split learning for LLM fine-tuning; SplitLoRA, "how to jointly
//! determine the optimal freezing ratio is an interesting research direction"; a fully frozen client
//! runs forward only and uploads its smashed data in the first epoch only), §VII-A (shift energy from
//! devices to the infrastructure under the same accuracy), and survey 003 §8.3 (split learning:
//! vanilla, SFL / parallel SL, U-shaped).
//!
//! ## Sets
//! - blocks `b ∈ {0..L−1}` of a catalog LLM; rows `0` = embedding, `1..=L` blocks, `L+1` = head;
//! - clients `k ∈ K` (device card, usable memory `M_k` B, per-round energy budget `E_k` J, micro-batches
//!   per round `n_k`, transmit power `P_k` W, and either fixed rates `r^up_k`, `r^dn_k` bit/s or
//!   channel gains `g^up_k`, `g^dn_k` for Shannon rates on a share of the bandwidth);
//! - one edge server (device card, memory `M_s`);
//! - admissible cuts `C ⊆ {0..L−1}` (blocks on the client), freezing levels `F^c, F^s ⊆ [0,1]`.
//!
//! ## Parameters (per micro-batch of `micro_batch × seq_len` tokens, from `crate::cost`)
//! `cost::layer_table` on the LoRA training workload (`recipe_workload`), LoRA parameters per layer
//! from `memory::trainable_params_per_layer` (rank, targets), memory from `memory::layer_memory`
//! (frozen weights; adapter weights + gradients + Adam state when trainable; `train_act_bytes` when the
//! layer is in backward), roofline time and energy from `roofline::layer_time` on each device card in
//! three modes: forward only, forward + activation gradient (frozen layer above a trainable one),
//! forward + full LoRA backward. Smashed data = `out_bytes` of the last client row. Shannon rate
//! `b·log2(1 + P·g/(N0·b))` (`cost::radio`); the downlink uses `server_tx_power_w`.
//!
//! ## Decisions
//! Cut `c ∈ C` (common to all clients), client level `f_c ∈ F^c`, server level `f_s ∈ F^s`, and with a
//! shared bandwidth `B` under a parallel protocol the shares `b_k ≥ 0`, `Σ_k b_k ≤ B`, for the first
//! round and (possibly different) for the later rounds. With `decisions: per_client` each client
//! picks its own cut `c_k ∈ C` and client level `f_k ∈ F^c` (the server level stays common).
//!
//! ## Streams (per-client decisions)
//! Client `k`'s micro-batches form a stream with the shape of `(c_k, f_k, f_s)`: rows `0..=c_k` on the
//! client, the rest on the server, frozen blocks as below. Under common decisions all streams are
//! equal and everything below reduces to the common model. The server runs rows `c_k+1..` for
//! client `k`'s batches; it holds the union of the server-side rows (weights from `min_k c_k` on,
//! adapter state of every row some stream trains there), the activations of the most demanding
//! stream (one micro-batch in flight) and the cached smashed data of every fully frozen client.
//!
//! ## Freezing
//! The client freezes its lowest `round(f_c·c)` blocks, the server its lowest `round(f_s·(L−c))`
//! blocks; the embedding and the head carry no adapter. Backward stops at the lowest trainable block:
//! rows below it run forward only (no activations kept), frozen rows above it compute activation
//! gradients only, trainable rows the full LoRA backward. The trainable fraction `φ_k` of a stream =
//! LoRA parameters it trains / all LoRA parameters, and `φ = Σ_k n_k φ_k / Σ_k n_k` (the share a
//! micro-batch trains on average; `= φ_k` under common decisions); likewise `φ_client`. A client side with no trainable block ("fully frozen") gets no
//! gradient back, has no adapter to aggregate, and uploads its smashed data **once**: the server caches
//! it (counted in the server's memory) and the client's bottom part costs nothing after round 1.
//!
//! ## Round (per client `k`, `n_k` micro-batches)
//! - client compute `C_k = n_k·Σ_{rows 0..=c} t_k(row)` (+ the head under U-shaped);
//! - uplink `n_k·o_c` smashed bits (+ U-shaped: the gradient of the last block's output) + adapter bits
//!   `16·Σ trainable client params` (aggregation upload); downlink `n_k·o_c` gradient bits if the client
//!   trains (+ U-shaped: the last block's output) + adapter bits (aggregate download);
//! - server `S = Σ_k n_k · Σ_{server rows of stream k} t_s(row)` (the server is shared and works
//!   through all batches);
//! - round latency: vanilla SL `Σ_k (C_k + comm_k) + S` (clients in turn, each on the whole bandwidth);
//!   SFL / U-shaped `max_k (C_k + comm_k(b_k)) + S` (no overlap of server and client work assumed:
//!   a conservative, simple schedule); `comm_k = up/r_up + down/r_dn`;
//! - client energy: compute energy + `P_k · up / r_up` (reception energy not counted).
//!
//! Round 1 is `T_1`; rounds `2..R` take `T_2` (`T_2 = T_1` unless some client is fully frozen).
//!
//! ## Convergence
//! `R(φ)` rounds to the target accuracy: a profiled table (linear interpolation, constant outside,
//! required non-increasing) or `R(φ) = r_min + a·(1 − φ)^b` (monotone non-increasing for `a ≥ 0`).
//! `R` is a real number (expected rounds), `≥ 1`. Its argument is `φ_eff = (1 − w)·φ + w·φ_client`
//! with `φ_client` the trained share of the client's LoRA parameters (0 when the client holds no
//! block) and `w = convergence_client_weight` (default 0): a client-side term for non-IID client data
//! (frozen client layers adapt less to each client's data), so the rounds depend on the trainable
//! fraction of each side. Monotone: training more blocks on either side never adds rounds.
//!
//! ## Objectives
//! - `total_time`: `T_1 + (R − 1)·T_2` s;
//! - `round_latency`: `T_1` (the longest round) s, with `min_trainable_fraction`;
//! - `energy {deadline_s}`: total client energy `E_1 + (R − 1)·E_2` J with `T_1 + (R − 1)·T_2 ≤ D`.
//!
//! ## Constraints
//! Client memory (weights of its rows, activations of rows in backward, adapter state of trainable
//! rows) `≤ M_k`; server memory (same for its rows, one micro-batch in flight, + cached smashed data
//! when the clients are fully frozen) `≤ M_s`; per-round client energy `≤ E_k` in every round;
//! bandwidth `Σ b_k ≤ B`; `φ ≥ min_trainable_fraction` and every stream trains something, `φ_k > 0`.
//!
//! ## Solvers
//! `exact` (enumeration of the distinct (cut, frozen-block) shapes, best-first by a lower bound — every
//! client alone on the whole bandwidth — with the exact bandwidth sub-problem of `bandwidth.rs`),
//! `brute-force` (tests: no pruning, grid over the split, ≤ 2 parallel clients), `coordinate-descent`
//! (heuristic), `projected-gradient` (gradient: continuous freezing ratios on an interpolated
//! surrogate, rounded), `splitlora`, `freeze-client`, `equal-bandwidth` (baselines). Per-client
//! decisions: `milp` (exact, `round_latency` only; see `milp.rs`), `per-client-brute-force` (exact,
//! tests), `per-client-descent` (heuristic); `exact` and `brute-force` do not apply to them (they
//! would only prove the common optimum), the other heuristics and baselines return common solutions.
//!
//! ## Not built (simplifications)
//! - a MILP for `total_time` and `energy` with per-client decisions (the rounds `R(φ_eff)` depend
//!   on every client's choice and multiply the later rounds' latency); per-client server levels;
//! - a gradient method on a closed-form smooth cost (argmin / L-BFGS): `projected-gradient` works on
//!   an interpolation of the exact objective instead;
//! - PEFT kinds other than LoRA; measured profiles; convergence models beyond `R(φ_eff)`;
//! - overlap of server and client work in SFL, link latencies, reception energy, server energy in the
//!   objective (reported in no metric).

// Index loops follow the math.
#![allow(clippy::needless_range_loop)]

pub mod bandwidth;
pub mod brute_force;
pub mod cost;
pub mod generate;
pub mod gradient;
pub mod instance;
pub mod milp;
pub mod per_client;
pub mod search;
pub mod solvers;

pub use cost::{Choice, Prepared};
pub use instance::*;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::solve::{Evaluation, Family, Sense, Solver};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The family marker.
pub struct SplitFinetune;

/// A solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitFinetuneSolution {
    /// Blocks on the client side (with `per_client`: the smallest client cut, where the server's
    /// blocks start).
    pub cut: usize,
    /// Client freezing ratio (one of `client_freeze_levels`; with `per_client`: that of the first
    /// client with the smallest cut).
    pub client_freeze: f64,
    /// Server freezing ratio (one of `server_freeze_levels`), common to all clients.
    pub server_freeze: f64,
    /// Bandwidth per client in round 1, Hz (shared bandwidth with a parallel protocol; else empty).
    #[serde(default)]
    pub bandwidth_hz: Vec<f64>,
    /// Bandwidth per client in rounds 2..R, Hz (absent: as in round 1).
    #[serde(default)]
    pub later_bandwidth_hz: Option<Vec<f64>>,
    /// Per-client decisions, one per client in instance order (instances with
    /// `"decisions": "per_client"`); absent: every client takes `cut` and `client_freeze`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_client: Option<Vec<ClientDecision>>,
}

/// One client's own cut and freezing level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientDecision {
    /// Blocks on this client.
    pub cut: usize,
    /// This client's freezing ratio (one of `client_freeze_levels`).
    pub client_freeze: f64,
}

impl SplitFinetuneSolution {
    /// The solution of per-client choices `chs` (common when they are all equal) with allocations.
    pub fn from_choices(p: &Prepared, chs: &[Choice], a1: Vec<f64>, a2: Vec<f64>) -> Self {
        let first = (0..chs.len()).min_by_key(|&k| (chs[k].cut, k)).unwrap_or(0);
        let common = chs.iter().all(|c| c.cut == chs[0].cut && c.cf == chs[0].cf);
        SplitFinetuneSolution {
            cut: chs[first].cut,
            client_freeze: p.client_levels[chs[first].cf],
            server_freeze: p.server_levels[chs[first].sf],
            later_bandwidth_hz: if a2 == a1 { None } else { Some(a2) },
            bandwidth_hz: a1,
            per_client: (!common).then(|| {
                chs.iter()
                    .map(|c| ClientDecision {
                        cut: c.cut,
                        client_freeze: p.client_levels[c.cf],
                    })
                    .collect()
            }),
        }
    }
}

fn bad(msg: String) -> Evaluation {
    Evaluation {
        feasible: false,
        objective: f64::NAN,
        violations: vec![msg],
        metrics: serde_json::Value::Null,
    }
}

fn level_index(levels: &[f64], x: f64, what: &str) -> std::result::Result<usize, String> {
    levels
        .iter()
        .position(|&l| (l - x).abs() <= 1e-9)
        .ok_or_else(|| format!("{what} {x} is not an admissible level {levels:?}"))
}

fn check_alloc(p: &Prepared, a: &[f64], what: &str, viol: &mut Vec<String>) {
    if !p.has_allocation() {
        if !a.is_empty() {
            viol.push(format!(
                "{what}: no shared bandwidth to allocate, must be empty"
            ));
        }
        return;
    }
    if a.len() != p.num_clients() {
        viol.push(format!(
            "{what}: needs one entry per client ({})",
            p.num_clients()
        ));
        return;
    }
    if a.iter().any(|x| !x.is_finite() || *x < 0.0) {
        viol.push(format!("{what}: entries must be finite and >= 0"));
        return;
    }
    let total = p.bandwidth.map_or(0.0, |b| b.total_hz);
    let s: f64 = a.iter().sum();
    if s > total * (1.0 + 1e-9) {
        viol.push(format!(
            "{what}: {s:.6e} Hz allocated, more than the {total:.6e} Hz shared"
        ));
    }
}

/// The per-client choices a solution encodes (or why it encodes none).
pub fn solution_choices(
    p: &Prepared,
    sol: &SplitFinetuneSolution,
) -> std::result::Result<Vec<Choice>, String> {
    let sf = level_index(&p.server_levels, sol.server_freeze, "server_freeze")?;
    let one = |cut: usize, f: f64, what: &str| -> std::result::Result<Choice, String> {
        if !p.cuts.contains(&cut) {
            return Err(format!("{what}cut {cut} is not admissible {:?}", p.cuts));
        }
        let cf = level_index(&p.client_levels, f, &format!("{what}client_freeze"))?;
        Ok(Choice { cut, cf, sf })
    };
    let top = one(sol.cut, sol.client_freeze, "")?;
    let Some(pc) = &sol.per_client else {
        return Ok(vec![top; p.num_clients()]);
    };
    if pc.len() != p.num_clients() {
        return Err(format!(
            "per_client: needs one entry per client ({}), got {}",
            p.num_clients(),
            pc.len()
        ));
    }
    let chs = pc
        .iter()
        .enumerate()
        .map(|(k, d)| one(d.cut, d.client_freeze, &format!("per_client[{k}].")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if !p.per_client && chs.iter().any(|c| *c != top) {
        return Err(
            "per-client cuts or levels need \"decisions\": \"per_client\" in the instance".into(),
        );
    }
    let first = (0..chs.len()).min_by_key(|&k| (chs[k].cut, k)).unwrap_or(0);
    if chs[first] != top {
        return Err(format!(
            "cut {} / client_freeze {} must be the smallest per-client cut and its client's level ({} / {})",
            sol.cut, sol.client_freeze, chs[first].cut, p.client_levels[chs[first].cf]
        ));
    }
    Ok(chs)
}

/// Evaluates a solution from the instance alone.
pub fn evaluate(p: &Prepared, sol: &SplitFinetuneSolution) -> Evaluation {
    let chs = match solution_choices(p, sol) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let c = p.combo_of(&chs);
    let mut viol = c.violations.clone();
    let a1 = &sol.bandwidth_hz;
    let a2 = sol.later_bandwidth_hz.as_ref().unwrap_or(a1);
    check_alloc(p, a1, "bandwidth_hz", &mut viol);
    check_alloc(p, a2, "later_bandwidth_hz", &mut viol);
    let usable = !viol.iter().any(|v| v.contains("bandwidth_hz"));
    let (v, vv) = if usable {
        p.value(&c, a1, a2)
    } else {
        return Evaluation {
            feasible: false,
            objective: f64::NAN,
            violations: viol,
            metrics: serde_json::Value::Null,
        };
    };
    viol.extend(vv);
    let w = (c.rounds - 1.0).max(0.0);
    let clients: Vec<_> = p
        .clients
        .iter()
        .enumerate()
        .map(|(k, cl)| {
            let (f, l) = (&c.first.clients[k], &c.later.clients[k]);
            let smashed_total = f.smashed_up_bits + w * l.smashed_up_bits;
            json!({
                "name": cl.name,
                "cut": c.choices[k].cut,
                "client_freeze": p.client_levels[c.choices[k].cf],
                "client_frozen_blocks": c.shapes[k].client_frozen,
                "server_frozen_blocks": c.shapes[k].server_frozen,
                "client_trains": c.shapes[k].client_trains,
                "trainable_fraction": c.shapes[k].phi,
                "first_round_s": p.client_s(k, f, p.bw_of(a1, k)),
                "later_round_s": p.client_s(k, l, p.bw_of(a2, k)),
                "first_round_energy_j": p.client_j(k, f, p.bw_of(a1, k)),
                "later_round_energy_j": p.client_j(k, l, p.bw_of(a2, k)),
                "memory_bytes": c.client_memory[k],
                "smashed_upload_bytes_total": smashed_total / 8.0,
                "smashed_upload_rounds": if f.smashed_up_bits > 0.0 { smashed_total / f.smashed_up_bits } else { 0.0 },
                "uplink_bytes_total": (f.up_bits + w * l.up_bits) / 8.0,
                "downlink_bytes_total": (f.down_bits + w * l.down_bits) / 8.0,
            })
        })
        .collect();
    let metrics = json!({
        "cut": sol.cut,
        "client_frozen_blocks": c.shapes[0].client_frozen,
        "server_frozen_blocks": c.shapes[0].server_frozen,
        "client_trains": c.shapes.iter().any(|s| s.client_trains),
        "clients_training": c.shapes.iter().filter(|s| s.client_trains).count(),
        "trainable_fraction": c.phi,
        "client_trainable_fraction": c.phi_client,
        "effective_trainable_fraction": c.phi_eff,
        "rounds": c.rounds,
        "first_round_s": v.first_s,
        "later_round_s": v.later_s,
        "total_time_s": v.total_s,
        "first_round_energy_j": v.first_j,
        "later_round_energy_j": v.later_j,
        "total_client_energy_j": v.total_j,
        "server_round_s": c.first.server_s,
        "server_memory_bytes": c.server_memory,
        "clients": clients,
    });
    Evaluation {
        feasible: viol.is_empty(),
        objective: v.objective,
        violations: viol,
        metrics,
    }
}

impl Family for SplitFinetune {
    const NAME: &'static str = "split_finetune";
    type Instance = SplitFinetuneInstance;
    type Prepared = Prepared;
    type Solution = SplitFinetuneSolution;

    fn prepare(instance: &SplitFinetuneInstance, catalog: &Catalog) -> Result<Prepared> {
        instance.prepare(catalog)
    }

    fn sense(_: &Prepared) -> Sense {
        Sense::Minimize
    }

    fn evaluate(p: &Prepared, solution: &SplitFinetuneSolution) -> Evaluation {
        evaluate(p, solution)
    }

    fn solvers() -> Vec<Box<dyn Solver<Self>>> {
        vec![
            Box::new(solvers::Exact),
            Box::new(brute_force::BruteForce),
            Box::new(solvers::CoordinateDescent),
            Box::new(gradient::ProjectedGradient),
            Box::new(solvers::SplitLora),
            Box::new(solvers::FreezeClient),
            Box::new(solvers::EqualBandwidth),
            Box::new(milp::MilpSolver),
            Box::new(per_client::PerClientBruteForce),
            Box::new(per_client::PerClientDescent),
        ]
    }

    fn auto_solver(p: &Prepared) -> &'static str {
        if !p.per_client {
            "exact"
        } else if p.objective == Objective::RoundLatency {
            "milp"
        } else {
            "per-client-descent"
        }
    }

    fn generate(size: &str, seed: u64) -> Result<SplitFinetuneInstance> {
        generate::generate(size, seed)
    }
}
