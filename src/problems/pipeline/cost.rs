//! The family's cost functions: stage time, stage energy, stage memory, link time and energy, the
//! objective, plan evaluation and the replicated-pipeline max flow. `evaluate` and every solver call
//! these (solvers may cache them, never re-derive them).
//!
//! Conventions (see the module doc of [`super`] for the model):
//! - layers `0..L`, a stage holds the half-open range `[a, b)`; "boundary `b`" is the cut after layer `b-1`;
//! - element times are per request (inference) or per micro-batch (training, forward + backward);
//! - in training every inter-stage link carries the activation forward and its gradient back (factor 2),
//!   and so does the return to the sink; the input link carries the input once.

use super::instance::{Objective, Schedule};
use std::collections::HashMap;

/// Per-layer numbers of one node type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeProfile {
    pub name: String,
    /// Forward time per layer, s.
    pub fwd_s: Vec<f64>,
    /// Backward time per layer, s (0 for inference).
    pub bwd_s: Vec<f64>,
    /// Energy per layer (forward + backward), J; `None`: node power x time.
    pub energy_j: Option<Vec<f64>>,
}

/// The per-layer table the family works on (from an explicit table or from the cost model).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineProfile {
    pub layer_names: Vec<String>,
    /// Static memory per layer (weights, gradients, optimizer state), bytes.
    pub weight_bytes: Vec<f64>,
    /// Memory per in-flight micro-batch per layer, bytes.
    pub activation_bytes: Vec<f64>,
    /// Memory held once per layer (KV cache), bytes.
    pub kv_bytes: Vec<f64>,
    /// Output bytes per layer (per request / micro-batch).
    pub output_bytes: Vec<f64>,
    /// Input bytes of layer 0.
    pub input_bytes: f64,
    /// Extra input-buffer copies on stages other than the first.
    pub input_buffers: f64,
    /// Extra output-buffer copies on every stage.
    pub output_buffers: f64,
    pub types: Vec<TypeProfile>,
}

impl PipelineProfile {
    /// Number of layers `L`.
    pub fn num_layers(&self) -> usize {
        self.weight_bytes.len()
    }
}

/// A resolved node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeP {
    pub name: String,
    pub type_idx: usize,
    pub memory_bytes: f64,
    pub availability: f64,
    pub power_w: f64,
    pub tx_power_w: f64,
}

/// Link bandwidths and latencies, with optional multi-hop routing.
#[derive(Debug, Clone)]
pub struct LinkTable {
    /// Direct bandwidth, bits/s (0 = no link).
    pub bandwidth_bps: Vec<Vec<f64>>,
    /// Direct latency, s (infinite = no link).
    pub latency_s: Vec<Vec<f64>>,
    pub shortest_path: bool,
}

impl LinkTable {
    pub fn new(
        bandwidth_bps: Vec<Vec<f64>>,
        latency_s: Vec<Vec<f64>>,
        shortest_path: bool,
    ) -> Self {
        LinkTable {
            bandwidth_bps,
            latency_s,
            shortest_path,
        }
    }

    /// Direct transfer time of `bytes` from `u` to `v` (infinite without a link, 0 when `u == v`).
    pub fn direct_time_s(&self, u: usize, v: usize, bytes: f64) -> f64 {
        if u == v {
            return 0.0;
        }
        let bw = self.bandwidth_bps[u][v];
        if bw <= 0.0 || !self.latency_s[u][v].is_finite() {
            return f64::INFINITY;
        }
        self.latency_s[u][v] + bytes * 8.0 / bw
    }

    /// All-pairs transfer times of `bytes`: direct, or store-and-forward over the fastest route
    /// (Floyd–Warshall on per-hop `latency + bytes / bandwidth`).
    pub fn times_for(&self, bytes: f64) -> Vec<Vec<f64>> {
        let n = self.bandwidth_bps.len();
        let mut d: Vec<Vec<f64>> = (0..n)
            .map(|u| (0..n).map(|v| self.direct_time_s(u, v, bytes)).collect())
            .collect();
        if self.shortest_path {
            for k in 0..n {
                for i in 0..n {
                    let dik = d[i][k];
                    if !dik.is_finite() {
                        continue;
                    }
                    for j in 0..n {
                        let c = dik + d[k][j];
                        if c < d[i][j] {
                            d[i][j] = c;
                        }
                    }
                }
            }
        }
        d
    }
}

/// The aggregate of a (partial) pipeline: sum and max of element times, total energy.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Agg {
    pub sum_s: f64,
    pub max_s: f64,
    pub energy_j: f64,
}

impl Agg {
    /// One element of time `t_s` and energy `e_j`.
    pub fn element(t_s: f64, e_j: f64) -> Agg {
        Agg {
            sum_s: t_s,
            max_s: t_s,
            energy_j: e_j,
        }
    }
    /// Both together.
    pub fn plus(self, o: Agg) -> Agg {
        Agg {
            sum_s: self.sum_s + o.sum_s,
            max_s: self.max_s.max(o.max_s),
            energy_j: self.energy_j + o.energy_j,
        }
    }
    pub fn is_finite(&self) -> bool {
        self.sum_s.is_finite() && self.max_s.is_finite() && self.energy_j.is_finite()
    }
}

/// An internal plan: ordered stages `(node, a, b)` with layers `[a, b)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plan {
    pub stages: Vec<(usize, usize, usize)>,
}

/// The prepared problem: profile, nodes, links, objective, and cached cost tables.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub profile: PipelineProfile,
    pub nodes: Vec<NodeP>,
    pub links: LinkTable,
    pub source: Option<usize>,
    pub sink: Option<usize>,
    pub objective: Objective,
    pub energy_budget_j: Option<f64>,
    /// Micro-batches per iteration `m` (1 for inference).
    pub micro_batches: f64,
    pub schedule: Schedule,
    pub training: bool,
    /// Tokens per request / micro-batch (for tokens/s).
    pub tokens_per_pass: f64,
    // caches
    time_prefix: Vec<Vec<f64>>,
    energy_prefix: Vec<Vec<f64>>,
    weight_prefix: Vec<f64>,
    act_prefix: Vec<f64>,
    kv_prefix: Vec<f64>,
    /// `link_s[b][u*N+v]`: time to send the output of layer `b-1` from `u` to `v`, for `b` in `1..=L`.
    link_s: Vec<Vec<f64>>,
    input_s: Vec<f64>,
    output_s: Vec<f64>,
}

impl Prepared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        profile: PipelineProfile,
        nodes: Vec<NodeP>,
        links: LinkTable,
        source: Option<usize>,
        sink: Option<usize>,
        objective: Objective,
        energy_budget_j: Option<f64>,
        micro_batches: f64,
        schedule: Schedule,
        training: bool,
        tokens_per_pass: f64,
    ) -> Self {
        let l = profile.num_layers();
        let n = nodes.len();
        let prefix = |v: &[f64]| {
            let mut p = vec![0.0; v.len() + 1];
            for i in 0..v.len() {
                p[i + 1] = p[i] + v[i];
            }
            p
        };
        let mut time_prefix = vec![];
        let mut energy_prefix = vec![];
        for nd in &nodes {
            let ty = &profile.types[nd.type_idx];
            let t: Vec<f64> = (0..l)
                .map(|i| {
                    if nd.availability <= 0.0 {
                        f64::INFINITY
                    } else {
                        (ty.fwd_s[i] + ty.bwd_s[i]) / nd.availability
                    }
                })
                .collect();
            let e: Vec<f64> = match &ty.energy_j {
                Some(e) => e.clone(),
                None => t
                    .iter()
                    .map(|x| if x.is_finite() { x * nd.power_w } else { 0.0 })
                    .collect(),
            };
            time_prefix.push(prefix(&t));
            energy_prefix.push(prefix(&e));
        }
        let factor = if training { 2.0 } else { 1.0 };
        let mut cache: HashMap<u64, Vec<Vec<f64>>> = HashMap::new();
        let mut times = |bytes: f64| -> Vec<Vec<f64>> {
            cache
                .entry(bytes.to_bits())
                .or_insert_with(|| links.times_for(bytes))
                .clone()
        };
        let mut link_s = vec![vec![]];
        for b in 1..=l {
            let t = times(profile.output_bytes[b - 1]);
            link_s.push(t.iter().flatten().map(|x| x * factor).collect());
        }
        let tin = times(profile.input_bytes);
        let input_s = (0..n).map(|v| source.map_or(0.0, |s| tin[s][v])).collect();
        let tout = times(profile.output_bytes[l - 1]);
        let output_s = (0..n)
            .map(|u| sink.map_or(0.0, |k| tout[u][k] * factor))
            .collect();
        Prepared {
            weight_prefix: prefix(&profile.weight_bytes),
            act_prefix: prefix(&profile.activation_bytes),
            kv_prefix: prefix(&profile.kv_bytes),
            profile,
            nodes,
            links,
            source,
            sink,
            objective,
            energy_budget_j,
            micro_batches,
            schedule,
            training,
            tokens_per_pass,
            time_prefix,
            energy_prefix,
            link_s,
            input_s,
            output_s,
        }
    }

    /// Number of layers `L`.
    pub fn num_layers(&self) -> usize {
        self.profile.num_layers()
    }

    /// Number of nodes `N`.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Compute time of layers `[a, b)` on node `n` (forward + backward when training), s.
    #[inline]
    pub fn stage_time_s(&self, n: usize, a: usize, b: usize) -> f64 {
        let p = &self.time_prefix[n];
        if p[b].is_infinite() {
            return f64::INFINITY;
        }
        p[b] - p[a]
    }

    /// Compute energy of layers `[a, b)` on node `n` (per request / micro-batch), J.
    #[inline]
    pub fn stage_energy_j(&self, n: usize, a: usize, b: usize) -> f64 {
        self.energy_prefix[n][b] - self.energy_prefix[n][a]
    }

    /// Micro-batches of activations a stage holds when it is `r`-th from the end (`r = S - s`).
    #[inline]
    pub fn in_flight(&self, r: usize) -> f64 {
        if !self.training {
            1.0
        } else {
            match self.schedule {
                Schedule::Gpipe => self.micro_batches,
                Schedule::OneFOneB => self.micro_batches.min(r as f64),
            }
        }
    }

    /// Whether stage memory depends on the position `r` (1F1B with activation memory).
    pub fn memory_depends_on_position(&self) -> bool {
        self.training
            && self.schedule == Schedule::OneFOneB
            && self.micro_batches > 1.0
            && self.act_prefix[self.num_layers()] > 0.0
    }

    /// Bytes received by the stage starting at layer `a`.
    #[inline]
    pub fn input_bytes_of(&self, a: usize) -> f64 {
        if a == 0 {
            self.profile.input_bytes
        } else {
            self.profile.output_bytes[a - 1]
        }
    }

    /// Memory of a stage holding `[a, b)`, `r`-th from the end: weights/state + in-flight activations
    /// + KV cache + communication buffers, bytes.
    #[inline]
    pub fn stage_memory_bytes(&self, a: usize, b: usize, r: usize) -> f64 {
        let pr = &self.profile;
        let w = self.weight_prefix[b] - self.weight_prefix[a];
        let act = (self.act_prefix[b] - self.act_prefix[a]) * self.in_flight(r);
        let kv = self.kv_prefix[b] - self.kv_prefix[a];
        let inb = self.input_bytes_of(a) * (1.0 + if a > 0 { pr.input_buffers } else { 0.0 });
        let outb = pr.output_bytes[b - 1] * (1.0 + pr.output_buffers);
        w + act + kv + inb + outb
    }

    /// Whether `[a, b)` fits node `n` at position `r` from the end.
    #[inline]
    pub fn stage_fits(&self, n: usize, a: usize, b: usize, r: usize) -> bool {
        self.stage_memory_bytes(a, b, r) <= self.nodes[n].memory_bytes * (1.0 + 1e-12)
    }

    /// Whether `[a, b)` on `n` at position `r` is allowed (fits, finite time).
    #[inline]
    pub fn stage_ok(&self, n: usize, a: usize, b: usize, r: usize) -> bool {
        a < b && self.stage_time_s(n, a, b).is_finite() && self.stage_fits(n, a, b, r)
    }

    /// Time to send the output of layer `b - 1` from `u` to `v` (both directions when training), s.
    #[inline]
    pub fn link_time_s(&self, u: usize, v: usize, b: usize) -> f64 {
        self.link_s[b][u * self.nodes.len() + v]
    }

    /// Energy of that transfer (sender's transmit power x time), J.
    #[inline]
    pub fn link_energy_j(&self, u: usize, v: usize, b: usize) -> f64 {
        let t = self.link_time_s(u, v, b);
        if t > 0.0 && t.is_finite() {
            t * self.nodes[u].tx_power_w
        } else {
            0.0
        }
    }

    /// Time to bring the input from the source to node `v` (0 without a source), s.
    #[inline]
    pub fn input_time_s(&self, v: usize) -> f64 {
        self.input_s[v]
    }

    /// Energy of the input transfer, J.
    pub fn input_energy_j(&self, v: usize) -> f64 {
        let t = self.input_s[v];
        match self.source {
            Some(s) if t > 0.0 && t.is_finite() => t * self.nodes[s].tx_power_w,
            _ => 0.0,
        }
    }

    /// Time to return the final output from `u` to the sink (0 without a sink), s.
    #[inline]
    pub fn output_time_s(&self, u: usize) -> f64 {
        self.output_s[u]
    }

    /// Energy of the output transfer, J.
    pub fn output_energy_j(&self, u: usize) -> f64 {
        let t = self.output_s[u];
        if t > 0.0 && t.is_finite() {
            t * self.nodes[u].tx_power_w
        } else {
            0.0
        }
    }

    /// The stage element `[a, b)` on `n`.
    #[inline]
    pub fn stage_agg(&self, n: usize, a: usize, b: usize) -> Agg {
        Agg::element(self.stage_time_s(n, a, b), self.stage_energy_j(n, a, b))
    }

    /// The link element from `u` to `v` at boundary `b`.
    #[inline]
    pub fn link_agg(&self, u: usize, v: usize, b: usize) -> Agg {
        Agg::element(self.link_time_s(u, v, b), self.link_energy_j(u, v, b))
    }

    /// The input element into `v`.
    #[inline]
    pub fn input_agg(&self, v: usize) -> Agg {
        Agg::element(self.input_time_s(v), self.input_energy_j(v))
    }

    /// The output element out of `u`.
    #[inline]
    pub fn output_agg(&self, u: usize) -> Agg {
        Agg::element(self.output_time_s(u), self.output_energy_j(u))
    }

    /// Energy per request / iteration of an aggregate, J.
    pub fn energy_total_j(&self, g: &Agg) -> f64 {
        g.energy_j * self.micro_batches
    }

    /// Whether the aggregate meets the energy budget.
    pub fn budget_ok(&self, g: &Agg) -> bool {
        self.energy_budget_j
            .is_none_or(|b| self.energy_total_j(g) <= b * (1.0 + 1e-9) + 1e-12)
    }

    /// The single-pipeline objective of a complete aggregate (monotone in each component).
    pub fn objective_of(&self, g: &Agg) -> f64 {
        match self.objective {
            Objective::Bottleneck | Objective::ReplicatedThroughput => g.max_s,
            Objective::Latency => g.sum_s,
            Objective::TrainingIteration => g.sum_s + (self.micro_batches - 1.0) * g.max_s,
            Objective::Energy => self.energy_total_j(g),
        }
    }

    /// Which aggregate components the objective and constraints look at: (sum, max, energy).
    pub fn criteria(&self) -> (bool, bool, bool) {
        let e = self.energy_budget_j.is_some();
        match self.objective {
            Objective::Bottleneck | Objective::ReplicatedThroughput => (false, true, e),
            Objective::Latency => (true, false, e),
            Objective::TrainingIteration => (true, true, e),
            Objective::Energy => (false, false, true),
        }
    }

    /// Whether label `a` dominates `b` on the criteria that matter.
    #[inline]
    pub fn dominates(&self, a: &Agg, b: &Agg) -> bool {
        let (s, m, e) = self.criteria();
        (!s || a.sum_s <= b.sum_s) && (!m || a.max_s <= b.max_s) && (!e || a.energy_j <= b.energy_j)
    }

    /// The aggregate of a complete plan, or the first reason it is infeasible.
    pub fn plan_agg(&self, plan: &Plan) -> Result<Agg, String> {
        let l = self.num_layers();
        let st = &plan.stages;
        if st.is_empty() {
            return Err("no stages".into());
        }
        let mut used = vec![false; self.num_nodes()];
        let mut g = self.input_agg(st[0].0);
        if !g.is_finite() {
            return Err(format!(
                "no route from the source to {}",
                self.nodes[st[0].0].name
            ));
        }
        let mut expect = 0;
        let s_count = st.len();
        for (s, &(n, a, b)) in st.iter().enumerate() {
            let name = &self.nodes[n].name;
            if used[n] {
                return Err(format!("node {name} used by more than one stage"));
            }
            used[n] = true;
            if a != expect {
                return Err(format!("stage {s} starts at layer {a}, expected {expect}"));
            }
            if b <= a || b > l {
                return Err(format!(
                    "stage {s} has an empty or out-of-range layer range"
                ));
            }
            let t = self.stage_time_s(n, a, b);
            if !t.is_finite() {
                return Err(format!("node {name} is unavailable"));
            }
            let r = s_count - s;
            let mem = self.stage_memory_bytes(a, b, r);
            if mem > self.nodes[n].memory_bytes * (1.0 + 1e-12) {
                return Err(format!(
                    "stage {s} on {name} needs {mem:.6e} bytes > {:.6e} available",
                    self.nodes[n].memory_bytes
                ));
            }
            g = g.plus(self.stage_agg(n, a, b));
            if s + 1 < s_count {
                let v = st[s + 1].0;
                let lk = self.link_agg(n, v, b);
                if !lk.is_finite() {
                    return Err(format!("no link from {name} to {}", self.nodes[v].name));
                }
                g = g.plus(lk);
            } else {
                let o = self.output_agg(n);
                if !o.is_finite() {
                    return Err(format!("no route from {name} to the sink"));
                }
                g = g.plus(o);
            }
            expect = b;
        }
        if expect != l {
            return Err(format!("layers {expect}..{l} are not assigned"));
        }
        if !self.budget_ok(&g) {
            return Err(format!(
                "energy {:.6e} J exceeds the budget {:.6e} J",
                self.energy_total_j(&g),
                self.energy_budget_j.unwrap_or(0.0)
            ));
        }
        Ok(g)
    }

    /// Objective of a feasible plan (single-pipeline objectives), or `None`.
    pub fn plan_objective(&self, plan: &Plan) -> Option<f64> {
        self.plan_agg(plan).ok().map(|g| self.objective_of(&g))
    }

    /// Checks a replicated placement (each node at most once, valid ranges, memory with the
    /// conservative in-flight count `m`) and returns its max flow in passes/s.
    pub fn replicated_flow(
        &self,
        stages: &[(usize, usize, usize)],
    ) -> Result<(f64, Vec<f64>), String> {
        let l = self.num_layers();
        let n = self.num_nodes();
        let mut used = vec![false; n];
        for &(v, a, b) in stages {
            let name = &self.nodes[v].name;
            if used[v] {
                return Err(format!("node {name} holds more than one range"));
            }
            used[v] = true;
            if b <= a || b > l {
                return Err(format!(
                    "node {name} has an empty or out-of-range layer range"
                ));
            }
            if !self.stage_time_s(v, a, b).is_finite() {
                return Err(format!("node {name} is unavailable"));
            }
            if !self.stage_fits(v, a, b, usize::MAX) {
                return Err(format!("range {a}..{b} does not fit node {name}"));
            }
        }
        Ok(self.max_flow(stages))
    }

    /// Capacity (passes/s) of an element of time `t`.
    #[inline]
    pub fn capacity(t: f64) -> f64 {
        if t <= 0.0 {
            f64::INFINITY
        } else {
            1.0 / t
        }
    }

    /// Max source-to-sink flow through a set of ranges (Helix-style): a node holding `[a, b)` is an
    /// arc of capacity `1 / stage time`; it feeds every node starting at `b` through an arc of capacity
    /// `1 / link time`; nodes starting at 0 take the input (capacity `1 / input time`), nodes ending at
    /// `L` return the output (capacity `1 / output time`). Returns the flow and each range's flow.
    pub fn max_flow(&self, stages: &[(usize, usize, usize)]) -> (f64, Vec<f64>) {
        let (f, per, _) = self.max_flow_arcs(stages);
        (f, per)
    }

    /// [`Self::max_flow`] plus the arc flows: `arcs[i][j]` from range `i` to range `j`, and
    /// `arcs[i][k]` with `k = stages.len()` the source arc into `i`, `k + 1` the sink arc out of `i`.
    pub fn max_flow_arcs(
        &self,
        stages: &[(usize, usize, usize)],
    ) -> (f64, Vec<f64>, Vec<Vec<f64>>) {
        let l = self.num_layers();
        let k = stages.len();
        // vertices: 0 = S, 1 = T, 2 + 2i = in_i, 3 + 2i = out_i
        let nv = 2 + 2 * k;
        let mut cap = vec![vec![0.0f64; nv]; nv];
        let big = 1e30;
        let c = |t: f64| Self::capacity(t).min(big);
        for (i, &(v, a, b)) in stages.iter().enumerate() {
            cap[2 + 2 * i][3 + 2 * i] = c(self.stage_time_s(v, a, b));
            if a == 0 {
                cap[0][2 + 2 * i] = c(self.input_time_s(v));
            }
            if b == l {
                cap[3 + 2 * i][1] = c(self.output_time_s(v));
            }
            for (j, &(w, a2, _)) in stages.iter().enumerate() {
                if i != j && a2 == b && b < l {
                    let t = self.link_time_s(v, w, b);
                    if t.is_finite() {
                        cap[3 + 2 * i][2 + 2 * j] = c(t);
                    }
                }
            }
        }
        let orig = cap.clone();
        let mut total = 0.0;
        // Edmonds–Karp on the small dense graph.
        loop {
            let mut prev = vec![usize::MAX; nv];
            prev[0] = 0;
            let mut q = std::collections::VecDeque::from([0usize]);
            while let Some(u) = q.pop_front() {
                for w in 0..nv {
                    if prev[w] == usize::MAX && cap[u][w] > 1e-15 {
                        prev[w] = u;
                        q.push_back(w);
                    }
                }
            }
            if prev[1] == usize::MAX {
                break;
            }
            let mut f = f64::INFINITY;
            let mut w = 1;
            while w != 0 {
                f = f.min(cap[prev[w]][w]);
                w = prev[w];
            }
            if f >= big * 0.5 || f <= 1e-15 {
                break;
            }
            let mut w = 1;
            while w != 0 {
                let u = prev[w];
                cap[u][w] -= f;
                cap[w][u] += f;
                w = u;
            }
            total += f;
        }
        let fl = |x: usize, y: usize| (orig[x][y] - cap[x][y]).max(0.0);
        let per: Vec<f64> = (0..k).map(|i| fl(2 + 2 * i, 3 + 2 * i)).collect();
        let mut arcs = vec![vec![0.0; k + 2]; k];
        for i in 0..k {
            for j in 0..k {
                arcs[i][j] = fl(3 + 2 * i, 2 + 2 * j);
            }
            arcs[i][k] = fl(0, 2 + 2 * i);
            arcs[i][k + 1] = fl(3 + 2 * i, 1);
        }
        (total, per, arcs)
    }

    /// Replicated objective: tokens/s of a flow in passes/s.
    pub fn tokens_per_s(&self, flow: f64) -> f64 {
        flow * self.tokens_per_pass
    }
}
