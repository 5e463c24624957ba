//! `eplb` (baseline): DeepSeek's Expert-Parallelism Load Balancer (deepseek-ai/EPLB, `eplb.py`),
//! written from our description of the published algorithm, and an adapter to edge instances.
//!
//! [`rebalance_experts`] is the generic algorithm: per layer, hierarchical policy (groups packed onto
//! nodes, replicas by largest load per copy, replicas packed onto GPUs) when `groups % nodes == 0`,
//! else the global policy (hierarchical with one group and one node). It reproduces the README
//! example exactly (see `tests/moe_placement.rs`).
//!
//! Adapter: the servers are EPLB's GPUs (`P = S`, one node, one group: the global policy, as edge
//! servers have no node hierarchy); every server gets the same number of physical slots per layer,
//! `min(⌊(E + budget)/S⌋, min_s slots_s)`, so `R = S ×` that (must be `>= E`); the weights are the
//! layer's total activations/s per expert (EPLB assumes identical GPUs and ignores the network); a
//! token of expert `e` goes to each of its `logcnt[e]` physical copies with equal probability
//! (EPLB's convention), so a server holding two copies of `e` gets `2 / logcnt[e]` of it.

use super::cost::{LayerPlan, Prepared};
use super::{finish, MoePlacement};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

/// EPLB's `balanced_packing`: `n` weighted items into `m` packs of exactly `n / m` items each,
/// heaviest first into the lightest non-full pack (ties: lowest pack). Returns `(pack, rank)`.
pub fn balanced_packing(w: &[f64], m: usize) -> (Vec<usize>, Vec<usize>) {
    let n = w.len();
    let per = n / m;
    if per == 1 {
        return ((0..n).collect(), vec![0; n]);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
    let mut pack = vec![0; n];
    let mut rank = vec![0; n];
    let mut pw = vec![0.0; m];
    let mut pc = vec![0usize; m];
    for i in order {
        let mut best = usize::MAX;
        for k in 0..m {
            if pc[k] < per && (best == usize::MAX || pw[k] < pw[best]) {
                best = k;
            }
        }
        pack[i] = best;
        rank[i] = pc[best];
        pw[best] += w[i];
        pc[best] += 1;
    }
    (pack, rank)
}

/// EPLB's `replicate_experts`: `r >= n` physical copies of `n` logical experts, each extra copy to
/// the expert of largest load per copy (first maximum). Returns `(phy2log, rank, logcnt)`.
pub fn replicate_experts(w: &[f64], r: usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let n = w.len();
    let mut phy2log: Vec<usize> = (0..n).collect();
    let mut rank = vec![0; n];
    let mut cnt = vec![1usize; n];
    for _ in n..r {
        let mut j = 0;
        for k in 1..n {
            if w[k] / cnt[k] as f64 > w[j] / cnt[j] as f64 {
                j = k;
            }
        }
        phy2log.push(j);
        rank.push(cnt[j]);
        cnt[j] += 1;
    }
    (phy2log, rank, cnt)
}

fn hierarchical_layer(
    w: &[f64],
    r: usize,
    g: usize,
    nodes: usize,
    gpus: usize,
) -> (Vec<usize>, Vec<usize>) {
    let e = w.len();
    let gsize = e / g;
    let groups_per_node = g / nodes;
    let per_gpu = r / gpus;
    // 1. groups onto nodes
    let gw: Vec<f64> = (0..g)
        .map(|k| w[k * gsize..(k + 1) * gsize].iter().sum())
        .collect();
    let (gp, gr) = balanced_packing(&gw, nodes);
    let mut log2mlog = vec![0; e];
    for k in 0..g {
        for q in 0..gsize {
            log2mlog[k * gsize + q] = (gp[k] * groups_per_node + gr[k]) * gsize + q;
        }
    }
    let mut mlog2log = vec![0; e];
    for (l, &m) in log2mlog.iter().enumerate() {
        mlog2log[m] = l;
    }
    // 2-3. per node: replicate, then pack replicas onto the node's GPUs
    let per_node_log = e / nodes;
    let per_node_phy = r / nodes;
    let mut phy2log = vec![0; r];
    let mut mlogcnt = vec![0; e];
    for k in 0..nodes {
        let wm: Vec<f64> = (0..per_node_log)
            .map(|i| w[mlog2log[k * per_node_log + i]])
            .collect();
        let (p2m, _rank, cnt) = replicate_experts(&wm, per_node_phy);
        for i in 0..per_node_log {
            mlogcnt[k * per_node_log + i] = cnt[i];
        }
        let tp: Vec<f64> = p2m.iter().map(|&m| wm[m] / cnt[m] as f64).collect();
        let (pack, rank) = balanced_packing(&tp, gpus / nodes);
        for (phy, &m) in p2m.iter().enumerate() {
            let slot = pack[phy] * per_gpu + rank[phy];
            phy2log[k * per_node_phy + slot] = mlog2log[k * per_node_log + m];
        }
    }
    let logcnt = (0..e).map(|l| mlogcnt[log2mlog[l]]).collect();
    (phy2log, logcnt)
}

/// `(phy2log[L][R], logcnt[L][E])` of [`rebalance_experts`].
pub type Rebalanced = (Vec<Vec<usize>>, Vec<Vec<usize>>);

/// EPLB's `rebalance_experts`: `weight[L][E]`, `R` physical experts per layer, `G` expert groups,
/// `N` nodes, `P` GPUs. Returns `(phy2log[L][R], logcnt[L][E])`; physical slots are GPU-major
/// (`R / P` slots per GPU).
pub fn rebalance_experts(
    weight: &[Vec<f64>],
    r: usize,
    g: usize,
    n: usize,
    p: usize,
) -> std::result::Result<Rebalanced, String> {
    let e = weight.first().map_or(0, |w| w.len());
    if e == 0 || weight.iter().any(|w| w.len() != e) {
        return Err("weight must be a non-empty L x E matrix".into());
    }
    if p == 0 || n == 0 || g == 0 || r < e || !r.is_multiple_of(p) || !p.is_multiple_of(n) {
        return Err(format!(
            "need R >= E, R % P == 0, P % N == 0 (R={r}, E={e}, P={p}, N={n})"
        ));
    }
    let (g, n) = if g.is_multiple_of(n) { (g, n) } else { (1, 1) };
    if !e.is_multiple_of(g) || !r.is_multiple_of(n) || !e.is_multiple_of(n) {
        return Err(format!(
            "need E % G == 0 and E, R divisible by N (E={e}, G={g}, N={n})"
        ));
    }
    let mut phy = vec![];
    let mut cnt = vec![];
    for w in weight {
        let (a, b) = hierarchical_layer(w, r, g, n, p);
        phy.push(a);
        cnt.push(b);
    }
    Ok((phy, cnt))
}

/// Slots per server the adapter uses (`None` when EPLB cannot place one copy of each expert).
pub fn adapter_slots(p: &Prepared) -> Option<usize> {
    let ns = p.num_servers();
    let min_slots = p.servers.iter().map(|s| s.slots).min().unwrap_or(0);
    let per = (p.max_replicas / ns).min(min_slots);
    (per * ns >= p.experts && per > 0).then_some(per)
}

/// The EPLB placement of an edge instance, as layer plans.
pub fn eplb_plans(p: &Prepared) -> Option<Vec<LayerPlan>> {
    let per = adapter_slots(p)?;
    let ns = p.num_servers();
    let (phy, cnt) = rebalance_experts(&p.expert_demand, per * ns, 1, 1, ns).ok()?;
    Some(
        (0..p.layers)
            .map(|l| {
                let mut hold = vec![vec![false; p.experts]; ns];
                let mut copies = vec![vec![0usize; ns]; p.experts];
                for (slot, &e) in phy[l].iter().enumerate() {
                    hold[slot / per][e] = true;
                    copies[e][slot / per] += 1;
                }
                let shares = (0..p.experts)
                    .map(|e| {
                        (0..ns)
                            .filter(|&s| copies[e][s] > 0)
                            .map(|s| (s, copies[e][s] as f64 / cnt[l][e] as f64))
                            .collect()
                    })
                    .collect();
                p.plan_from_shares(hold, &shares)
            })
            .collect(),
    )
}

/// The `eplb` baseline solver.
pub struct Eplb;

impl Solver<MoePlacement> for Eplb {
    fn name(&self) -> &'static str {
        "eplb"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "DeepSeek EPLB (global policy): replicate by load per copy, balanced packing onto equal slots"
    }
    fn supports(&self, p: &Prepared) -> std::result::Result<(), String> {
        adapter_slots(p).map(|_| ()).ok_or_else(|| {
            "EPLB needs equal slots per server: min(floor((E + budget) / S), min slots) x S >= E".into()
        })
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<super::MoeSolution>> {
        Ok(match eplb_plans(p) {
            Some(plans) => finish(p, &plans, Termination::Completed, None),
            None => Outcome::none(Termination::Error),
        })
    }
}
