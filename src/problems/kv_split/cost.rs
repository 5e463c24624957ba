//! The one place the family's costs are computed (from `crate::cost`): per-user prefix/suffix tables,
//! the cost of one user's choice, the plan evaluator used by `evaluate` and every solver, and the
//! dominance-pruned candidate lists the MILP, the Lagrangian and the heuristics share.

use super::instance::{KvKind, KvOptionSpec, KvSplitInstance, LatencyContext, Objective};
use crate::catalog::{Arch, Catalog, LlmCard};
use crate::cost::roofline::{layer_time, Hardware};
use crate::cost::{layer_table, DType, LayerCost, Workload};
use crate::error::{Error, Result};
use crate::validate::Check;
use std::collections::HashMap;
use std::sync::Arc;

/// Marks an unused side (device option at split 0, server option and server at split L).
pub const UNUSED: usize = usize::MAX;

/// Bytes of a token id (split 0 uplink, the downlink of the sampled token).
pub const TOKEN_ID_BYTES: f64 = 4.0;

/// One user's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Choice {
    /// Layers `[0, split)` run on the device, `[split, L)` on the server.
    pub split: usize,
    /// Device-side KV option (`UNUSED` when `split = 0`).
    pub od: usize,
    /// Server-side KV option (`UNUSED` when `split = L`).
    pub os: usize,
    /// Server index (`UNUSED` when `split = L`).
    pub server: usize,
    /// Admitted (always true under latency objectives).
    pub admitted: bool,
}

impl Choice {
    /// A rejected user (admission objective).
    pub fn reject(l: usize) -> Self {
        Choice {
            split: l,
            od: UNUSED,
            os: UNUSED,
            server: UNUSED,
            admitted: false,
        }
    }
}

/// The costs of one choice that do not depend on other users.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChoiceCost {
    /// Device time + uplink + downlink per token, s (everything but the server step).
    pub lat: f64,
    /// Device memory, bytes (its layers' weights + its KV at the final context + hidden-state buffer).
    pub dev_mem: f64,
    /// Server KV memory of this user, bytes.
    pub srv_mem: f64,
    /// This user's share of the server's batched step (its KV reads and its compute), s.
    pub work: f64,
    /// Sum of the used sides' accuracy costs.
    pub acc: f64,
}

/// A candidate: a choice and its costs.
pub type Cand = (Choice, ChoiceCost);

/// A resolved user.
#[derive(Debug, Clone)]
pub struct UserP {
    pub name: String,
    pub weight: f64,
    pub target: Option<f64>,
    pub memory_bytes: f64,
    pub max_acc: f64,
    pub fixed_server: Option<usize>,
    pub ctx_lat: u64,
    pub ctx_final: u64,
    pub uplink_bps: f64,
    pub downlink_bps: f64,
    pub link_latency_s: f64,
    /// `[o][c]`: device time per token of layers `< c` under option `o`, s.
    pub dev_time: Vec<Vec<f64>>,
    /// `[o][c]`: device KV bytes of layers `< c` at the final context.
    pub dev_kv: Vec<Vec<f64>>,
    /// `[c]`: bytes per token crossing cut `c` (token id at 0, 0 at L).
    pub cut_bytes: Vec<f64>,
    /// `[s][o][c]`: per-user server work of layers `>= c`, s.
    pub srv_work: Vec<Vec<Vec<f64>>>,
    /// `[o][c]`: server KV bytes of layers `>= c` at the final context.
    pub srv_kv: Vec<Vec<f64>>,
    /// Dominance-pruned candidates (see [`Prepared::candidates`]).
    pub cands: Vec<Cand>,
}

/// A resolved server.
#[derive(Debug, Clone)]
pub struct ServerP {
    pub name: String,
    pub memory_bytes: f64,
    /// `[c]`: shared per-step time (weight streaming + fixed op latency) of layers `>= c`, s.
    pub fixed: Vec<f64>,
    /// `[c]`: weight bytes of layers `>= c`.
    pub weights: Vec<f64>,
}

/// The prepared problem.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub model: String,
    pub layer_names: Vec<String>,
    /// Weight bytes per layer.
    pub weight_bytes: Vec<f64>,
    /// `[c]`: weight bytes of layers `< c`.
    pub weight_prefix: Vec<f64>,
    pub options: Vec<KvOptionSpec>,
    pub users: Vec<UserP>,
    pub servers: Vec<ServerP>,
    pub objective: Objective,
    /// Candidates per user before pruning (for notes).
    pub raw_candidates: usize,
}

fn parse_dtype(s: &Option<String>, c: &Check) -> Result<DType> {
    match s {
        None => Ok(DType::Fp16),
        Some(s) => serde_json::from_value(serde_json::Value::String(s.clone())).map_err(|_| {
            c.err(format!(
                "unknown dtype '{s}' (fp32, bf16, fp16, fp8, int8, int4)"
            ))
        }),
    }
}

fn kv_dtype(base: DType, kind: KvKind) -> DType {
    match kind {
        KvKind::Quantized { bits: 8 } => DType::Int8,
        KvKind::Quantized { .. } => DType::Int4,
        _ => base.default_kv(),
    }
}

/// A workload and its layer table.
type Table = Arc<(Workload, Vec<LayerCost>)>;

/// Cached layer tables keyed by (phase, context, option).
struct Tables<'a> {
    card: &'a LlmCard,
    dtype: DType,
    options: &'a [KvOptionSpec],
    map: HashMap<(bool, u64, usize), Table>,
}

impl Tables<'_> {
    /// The table one token of a sequence at context `ctx` costs under option `o` (decode with the
    /// option's KV dtype and window; prefill of `ctx` tokens for `none`).
    fn get(&mut self, ctx: u64, o: usize) -> Table {
        let kind = self.options[o].kind;
        let recompute = matches!(kind, KvKind::None);
        let key = (recompute, ctx, if recompute { 0 } else { o });
        let (card, dtype) = (self.card, self.dtype);
        self.map
            .entry(key)
            .or_insert_with(|| {
                let w = if recompute {
                    Workload::prefill(1, ctx, dtype)
                } else {
                    let c = match kind {
                        KvKind::Window { tokens } => ctx.min(tokens),
                        _ => ctx,
                    };
                    let mut w = Workload::decode(1, c, dtype);
                    w.kv_dtype = kv_dtype(dtype, kind);
                    w
                };
                let t = layer_table(card, &w);
                Arc::new((w, t))
            })
            .clone()
    }
}

/// KV bytes of one layer of one sequence at `ctx` tokens under option kind `kind` (`lc` from the
/// option's table, so `kv_bytes_per_token` is already in the option's KV dtype).
fn layer_kv_bytes(lc: &LayerCost, kind: KvKind, ctx: u64) -> f64 {
    let mut tokens = lc.kv_window.map_or(ctx, |w| ctx.min(w));
    match kind {
        KvKind::None => return 0.0,
        KvKind::Window { tokens: w } => tokens = tokens.min(w),
        _ => {}
    }
    lc.kv_bytes_per_token * tokens as f64
}

/// Builds the prepared problem (called by `KvSplitInstance::prepare` after field checks).
pub fn build(inst: &KvSplitInstance, catalog: &Catalog) -> Result<Prepared> {
    let mc = Check::root().field("model");
    let mut card = (*catalog
        .llm(&inst.model.name)
        .map_err(|e| e.at(mc.field("name").path()))?)
    .clone();
    let dtype = parse_dtype(&inst.model.dtype, &mc.field("dtype"))?;
    if let Some(b) = inst.model.blocks {
        let c = mc.field("blocks");
        c.at_least_one(b as u64)?;
        c.ensure(card.arch != Arch::EncoderDecoder, || {
            "only decoder-only models can be truncated".into()
        })?;
        c.ensure(b <= card.n_layers, || {
            format!("the model has {} blocks, got {b}", card.n_layers)
        })?;
        card.n_layers = b;
    }
    let options = inst.kv_options.clone();
    let mut tables = Tables {
        card: &card,
        dtype,
        options: &options,
        map: HashMap::new(),
    };
    let base = tables.get(
        1,
        options
            .iter()
            .position(|o| !matches!(o.kind, KvKind::None))
            .unwrap_or(0),
    );
    let l = base.1.len();
    let layer_names: Vec<String> = base.1.iter().map(|x| x.name.clone()).collect();
    let weight_bytes: Vec<f64> = base.1.iter().map(|x| x.weight_bytes).collect();
    let mut weight_prefix = vec![0.0; l + 1];
    for i in 0..l {
        weight_prefix[i + 1] = weight_prefix[i] + weight_bytes[i];
    }
    // servers
    let mut servers = vec![];
    let mut server_hw = vec![];
    for (i, s) in inst.servers.iter().enumerate() {
        let c = Check::root().field("servers").index(i);
        let hw = Hardware::from_catalog(catalog, &s.device, None)
            .map_err(|e| e.at(c.field("device").path()))?;
        let bw = hw.effective_bandwidth(dtype) * s.compute_share;
        let lat = hw.per_op_latency_s();
        let mut fixed = vec![0.0; l + 1];
        let mut weights = vec![0.0; l + 1];
        for j in (0..l).rev() {
            let lc = &base.1[j];
            // weight streaming (the rows read: the whole matrix for blocks and head, one row for the
            // embedding) = the non-attention bytes of a one-token decode step
            let stream = (lc.fwd_bytes - lc.attn_fwd_bytes).max(0.0);
            fixed[j] = fixed[j + 1] + stream / bw + hw.ops_for(lc.kind) as f64 * lat;
            weights[j] = weights[j + 1] + lc.weight_bytes;
        }
        servers.push(ServerP {
            name: s.name.clone(),
            memory_bytes: s.memory_bytes.unwrap_or(hw.device.memory_bytes.value),
            fixed,
            weights,
        });
        server_hw.push((hw, s.compute_share));
    }
    let mut users = vec![];
    for (i, u) in inst.users.iter().enumerate() {
        let c = Check::root().field("users").index(i);
        let hw = Hardware::from_catalog(catalog, &u.device, None)
            .map_err(|e| e.at(c.field("device").path()))?;
        let ctx_final = u.prompt_len + u.gen_len;
        let ctx_lat = match inst.latency_context {
            LatencyContext::Mean => u.prompt_len + u.gen_len / 2,
            LatencyContext::Final => ctx_final,
        }
        .max(1);
        let mut dev_time = vec![];
        let mut dev_kv = vec![];
        let mut srv_kv = vec![];
        let mut srv_work = vec![vec![]; servers.len()];
        for (o, opt) in options.iter().enumerate() {
            let tw = tables.get(ctx_lat, o);
            let (w, t) = (&tw.0, &tw.1);
            let mut dt = vec![0.0; l + 1];
            let mut dk = vec![0.0; l + 1];
            for j in 0..l {
                let lt = layer_time(&t[j], &hw, w, 0.0, true);
                dt[j + 1] = dt[j] + lt.fwd_s / u.compute_share;
                dk[j + 1] = dk[j] + layer_kv_bytes(&t[j], opt.kind, ctx_final);
            }
            let mut sk = vec![0.0; l + 1];
            for j in (0..l).rev() {
                sk[j] = sk[j + 1] + layer_kv_bytes(&t[j], opt.kind, ctx_final);
            }
            for (s, (shw, share)) in server_hw.iter().enumerate() {
                let f = shw.effective_flops(dtype.compute()) * share;
                let b = shw.effective_bandwidth(dtype.activation()) * share;
                let mut sw = vec![0.0; l + 1];
                for j in (0..l).rev() {
                    sw[j] = sw[j + 1] + t[j].fwd_flops / f + t[j].attn_fwd_bytes / b;
                }
                srv_work[s].push(sw);
            }
            dev_time.push(dt);
            dev_kv.push(dk);
            srv_kv.push(sk);
        }
        let mut cut_bytes = vec![0.0; l + 1];
        cut_bytes[0] = TOKEN_ID_BYTES;
        for j in 1..l {
            cut_bytes[j] = base.1[j - 1].out_bytes_per_token;
        }
        let fixed_server = u
            .server
            .as_ref()
            .and_then(|n| inst.servers.iter().position(|s| &s.name == n));
        users.push(UserP {
            name: u.name.clone().unwrap_or_else(|| format!("user{i}")),
            weight: u.weight,
            target: u.latency_target_s,
            memory_bytes: u.memory_bytes.unwrap_or(hw.device.memory_bytes.value),
            max_acc: u.max_accuracy_cost.unwrap_or(f64::INFINITY),
            fixed_server,
            ctx_lat,
            ctx_final,
            uplink_bps: u.uplink_bps,
            downlink_bps: u.downlink_bps,
            link_latency_s: u.link_latency_s,
            dev_time,
            dev_kv,
            cut_bytes,
            srv_work,
            srv_kv,
            cands: vec![],
        });
    }
    // user names unique
    for i in 0..users.len() {
        if users[..i].iter().any(|x| x.name == users[i].name) {
            return Err(Error::invalid(
                format!("$.users[{i}].name"),
                format!("duplicate user name '{}'", users[i].name),
            ));
        }
    }
    let mut p = Prepared {
        model: inst.model.name.clone(),
        layer_names,
        weight_bytes,
        weight_prefix,
        options,
        users,
        servers,
        objective: inst.objective,
        raw_candidates: 0,
    };
    let mut raw = 0;
    for u in 0..p.users.len() {
        let (c, r) = p.candidates(u);
        raw += r;
        p.users[u].cands = c;
    }
    p.raw_candidates = raw;
    Ok(p)
}

/// Whether `a` dominates `b` (no worse in latency, server KV and server work).
fn dominates(a: &ChoiceCost, b: &ChoiceCost) -> bool {
    a.lat <= b.lat && a.srv_mem <= b.srv_mem && a.work <= b.work
}

impl Prepared {
    pub fn num_layers(&self) -> usize {
        self.layer_names.len()
    }

    pub fn uses_admission(&self) -> bool {
        self.objective == Objective::Admitted
    }

    /// Servers user `u` may use.
    pub fn allowed_servers(&self, u: usize) -> Vec<usize> {
        match self.users[u].fixed_server {
            Some(s) => vec![s],
            None => (0..self.servers.len()).collect(),
        }
    }

    /// The costs of a choice (no validity check beyond indices; see [`Prepared::check_choice`]).
    pub fn choice_cost(&self, u: usize, ch: &Choice) -> ChoiceCost {
        let l = self.num_layers();
        let up = &self.users[u];
        if !ch.admitted {
            return ChoiceCost::default();
        }
        let c = ch.split;
        let mut cc = ChoiceCost {
            dev_mem: self.weight_prefix[c],
            ..Default::default()
        };
        if c > 0 {
            cc.lat += up.dev_time[ch.od][c];
            cc.dev_mem += up.dev_kv[ch.od][c];
            cc.acc += self.options[ch.od].accuracy_cost;
        }
        if c < l {
            let recompute = matches!(self.options[ch.os].kind, KvKind::None);
            let tokens = if recompute { up.ctx_lat as f64 } else { 1.0 };
            cc.lat += 2.0 * up.link_latency_s
                + tokens * up.cut_bytes[c] * 8.0 / up.uplink_bps
                + TOKEN_ID_BYTES * 8.0 / up.downlink_bps;
            if recompute {
                // the device keeps the cut's hidden states of every token to resend them
                cc.dev_mem += up.ctx_final as f64 * up.cut_bytes[c];
            }
            cc.srv_mem = up.srv_kv[ch.os][c];
            cc.work = up.srv_work[ch.server][ch.os][c];
            cc.acc += self.options[ch.os].accuracy_cost;
        }
        cc
    }

    /// Structural validity of a choice for user `u` (`Err` with the reason).
    pub fn check_choice(&self, u: usize, ch: &Choice) -> std::result::Result<(), String> {
        let l = self.num_layers();
        let no = self.options.len();
        if !ch.admitted {
            return if self.uses_admission() {
                Ok(())
            } else {
                Err("users can be rejected only under the admitted objective".into())
            };
        }
        if ch.split > l {
            return Err(format!("split {} > {l} layers", ch.split));
        }
        if ch.split > 0 && ch.od >= no {
            return Err("device KV option missing".into());
        }
        if ch.split < l {
            if ch.os >= no {
                return Err("server KV option missing".into());
            }
            if ch.server >= self.servers.len() {
                return Err("server missing".into());
            }
            if let Some(s) = self.users[u].fixed_server {
                if s != ch.server {
                    return Err(format!(
                        "associated with '{}', got '{}'",
                        self.servers[s].name, self.servers[ch.server].name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every choice of user `u` (brute force): splits × used options × allowed servers, + reject.
    pub fn all_choices(&self, u: usize) -> Vec<Choice> {
        let l = self.num_layers();
        let no = self.options.len();
        let mut v = vec![];
        for c in 0..=l {
            let ods: Vec<usize> = if c == 0 {
                vec![UNUSED]
            } else {
                (0..no).collect()
            };
            for &od in &ods {
                if c == l {
                    v.push(Choice {
                        split: c,
                        od,
                        os: UNUSED,
                        server: UNUSED,
                        admitted: true,
                    });
                    continue;
                }
                for os in 0..no {
                    for s in self.allowed_servers(u) {
                        v.push(Choice {
                            split: c,
                            od,
                            os,
                            server: s,
                            admitted: true,
                        });
                    }
                }
            }
        }
        if self.uses_admission() {
            v.push(Choice::reject(l));
        }
        v
    }

    /// Whether a choice passes the user-private constraints (device memory, accuracy).
    pub fn privately_feasible(&self, u: usize, cc: &ChoiceCost) -> bool {
        let up = &self.users[u];
        cc.dev_mem <= up.memory_bytes * (1.0 + 1e-12) && cc.acc <= up.max_acc + 1e-12
    }

    /// Step time of server `s` (s per decode step): the fixed part of the layers from the smallest
    /// split `min_split` of its users on, plus the users' own work `work`.
    #[inline]
    pub fn server_step(&self, s: usize, min_split: usize, work: f64) -> f64 {
        self.servers[s].fixed[min_split] + work
    }

    /// Lower bound on the server step a user on server `s` at split `c` sees.
    pub fn step_lower_bound(&self, s: usize, c: usize, cc: &ChoiceCost) -> f64 {
        self.server_step(s, c, cc.work)
    }

    /// Dominance-pruned candidates of user `u` and the raw count. Exact: a pruned choice is never
    /// needed in an optimum. Steps: (1) drop choices failing the device memory or accuracy limit;
    /// (2) per (server, split, server option) keep the device option with least latency (the device
    /// option touches only latency and private constraints); (3) drop a server choice that cannot meet
    /// the target even alone on its server (`lat + fixed_s[c] + work > target`) or whose weights + KV
    /// exceed the server's memory; (4) drop a server choice dominated by one at a split `>=` its own on
    /// the same server (needs a subset of the server's layers) with no worse latency, server KV and
    /// work, or by the local choice (split L) when its latency is no better.
    pub fn candidates(&self, u: usize) -> (Vec<Cand>, usize) {
        let l = self.num_layers();
        let no = self.options.len();
        let up = &self.users[u];
        let mut raw = 0;
        let meets = |v: f64| up.target.is_none_or(|t| v <= t * (1.0 + 1e-12));
        // local
        let mut local: Option<Cand> = None;
        for od in 0..no {
            let ch = Choice {
                split: l,
                od,
                os: UNUSED,
                server: UNUSED,
                admitted: true,
            };
            let cc = self.choice_cost(u, &ch);
            raw += 1;
            if self.privately_feasible(u, &cc)
                && meets(cc.lat)
                && local.is_none_or(|(_, b)| cc.lat < b.lat)
            {
                local = Some((ch, cc));
            }
        }
        let mut out: Vec<Cand> = vec![];
        for s in self.allowed_servers(u) {
            let mut archive: Vec<ChoiceCost> = local.iter().map(|x| x.1).collect();
            for c in (0..l).rev() {
                let mut here: Vec<Cand> = vec![];
                for os in 0..no {
                    let mut best: Option<Cand> = None;
                    let ods: Vec<usize> = if c == 0 {
                        vec![UNUSED]
                    } else {
                        (0..no).collect()
                    };
                    for od in ods {
                        let ch = Choice {
                            split: c,
                            od,
                            os,
                            server: s,
                            admitted: true,
                        };
                        let cc = self.choice_cost(u, &ch);
                        raw += 1;
                        if !self.privately_feasible(u, &cc) {
                            continue;
                        }
                        if best.is_none_or(|(_, b)| cc.lat < b.lat) {
                            best = Some((ch, cc));
                        }
                    }
                    let Some((ch, cc)) = best else { continue };
                    let sv = &self.servers[s];
                    if !meets(cc.lat + self.step_lower_bound(s, c, &cc))
                        || sv.weights[c] + cc.srv_mem > sv.memory_bytes * (1.0 + 1e-12)
                    {
                        continue;
                    }
                    here.push((ch, cc));
                }
                // dominance within the split, then against larger splits
                let mut kept: Vec<Cand> = vec![];
                for (i, x) in here.iter().enumerate() {
                    let dom = here.iter().enumerate().any(|(k, y)| {
                        k != i && dominates(&y.1, &x.1) && (!dominates(&x.1, &y.1) || k < i)
                    }) || archive.iter().any(|a| dominates(a, &x.1));
                    if !dom {
                        kept.push(*x);
                    }
                }
                archive.extend(kept.iter().map(|x| x.1));
                out.extend(kept);
            }
        }
        if let Some(x) = local {
            out.push(x);
        }
        if self.uses_admission() {
            out.push((Choice::reject(l), ChoiceCost::default()));
        }
        (out, raw)
    }

    /// Evaluates a whole plan (one choice per user) from scratch.
    pub fn evaluate_plan(&self, plan: &[Choice]) -> PlanEval {
        let l = self.num_layers();
        let ns = self.servers.len();
        let mut ev = PlanEval {
            costs: vec![ChoiceCost::default(); plan.len()],
            latency: vec![f64::NAN; plan.len()],
            step_s: vec![0.0; ns],
            server_mem: vec![0.0; ns],
            min_split: vec![l; ns],
            users_on: vec![0; ns],
            violations: vec![],
            objective: f64::NAN,
        };
        if plan.len() != self.users.len() {
            ev.violations.push(format!(
                "{} user plans for {} users",
                plan.len(),
                self.users.len()
            ));
            return ev;
        }
        for (u, ch) in plan.iter().enumerate() {
            if let Err(e) = self.check_choice(u, ch) {
                ev.violations
                    .push(format!("user '{}': {e}", self.users[u].name));
            }
        }
        if !ev.violations.is_empty() {
            return ev;
        }
        for (u, ch) in plan.iter().enumerate() {
            let cc = self.choice_cost(u, ch);
            ev.costs[u] = cc;
            if !ch.admitted {
                continue;
            }
            let up = &self.users[u];
            if cc.dev_mem > up.memory_bytes * (1.0 + 1e-9) {
                ev.violations.push(format!(
                    "user '{}': device memory {:.4e} B > {:.4e} B",
                    up.name, cc.dev_mem, up.memory_bytes
                ));
            }
            if cc.acc > up.max_acc + 1e-9 {
                ev.violations.push(format!(
                    "user '{}': accuracy cost {} > {}",
                    up.name, cc.acc, up.max_acc
                ));
            }
            if ch.split < l {
                let s = ch.server;
                ev.min_split[s] = ev.min_split[s].min(ch.split);
                ev.step_s[s] += cc.work;
                ev.server_mem[s] += cc.srv_mem;
                ev.users_on[s] += 1;
            }
        }
        for (s, sv) in self.servers.iter().enumerate() {
            ev.step_s[s] = self.server_step(s, ev.min_split[s], ev.step_s[s]);
            ev.server_mem[s] += sv.weights[ev.min_split[s]];
            if ev.server_mem[s] > sv.memory_bytes * (1.0 + 1e-9) {
                ev.violations.push(format!(
                    "server '{}': memory {:.4e} B > {:.4e} B",
                    sv.name, ev.server_mem[s], sv.memory_bytes
                ));
            }
        }
        for (u, ch) in plan.iter().enumerate() {
            if !ch.admitted {
                continue;
            }
            let mut t = ev.costs[u].lat;
            if ch.split < l {
                t += ev.step_s[ch.server];
            }
            ev.latency[u] = t;
            if let Some(tg) = self.users[u].target {
                if t > tg * (1.0 + 1e-9) {
                    ev.violations.push(format!(
                        "user '{}': latency {t:.6} s > target {tg} s",
                        self.users[u].name
                    ));
                }
            }
        }
        ev.objective = self.objective_of(plan, &ev.latency);
        ev
    }

    /// The objective from per-user latencies (NaN for rejected users).
    pub fn objective_of(&self, plan: &[Choice], latency: &[f64]) -> f64 {
        match self.objective {
            Objective::MeanLatency => {
                let w: f64 = self.users.iter().map(|u| u.weight).sum();
                self.users
                    .iter()
                    .zip(latency)
                    .map(|(u, t)| u.weight * t)
                    .sum::<f64>()
                    / w
            }
            Objective::MaxLatency => latency.iter().copied().fold(0.0, f64::max),
            Objective::Admitted => self
                .users
                .iter()
                .zip(plan)
                .filter(|(_, c)| c.admitted)
                .map(|(u, _)| u.weight)
                .sum(),
        }
    }

    /// The objective of a plan when feasible.
    pub fn plan_value(&self, plan: &[Choice]) -> Option<f64> {
        let ev = self.evaluate_plan(plan);
        ev.violations.is_empty().then_some(ev.objective)
    }
}

/// The result of [`Prepared::evaluate_plan`].
#[derive(Debug, Clone)]
pub struct PlanEval {
    pub costs: Vec<ChoiceCost>,
    /// Per-token latency per user (NaN when rejected), s.
    pub latency: Vec<f64>,
    /// Batched decode step per server, s.
    pub step_s: Vec<f64>,
    /// Server memory (shared weights + KV), bytes.
    pub server_mem: Vec<f64>,
    /// Lowest split among the server's users (L = unused).
    pub min_split: Vec<usize>,
    pub users_on: Vec<usize>,
    pub violations: Vec<String>,
    pub objective: f64,
}
