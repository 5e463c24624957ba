//! The one place where the family's costs are computed: demands, server utilisation, dispatch and
//! combine time, migration bytes, the per-layer objective and the feasibility checks. `evaluate` and
//! every solver call these functions; expert sizes come from `crate::cost::moe`.

use super::instance::Objective;

/// A resolved server.
#[derive(Debug, Clone)]
pub struct ServerP {
    pub name: String,
    /// Effective FLOP/s for expert MLPs.
    pub flops: f64,
    /// Memory for routed experts, bytes.
    pub memory_bytes: f64,
    /// Experts of each layer it can hold: `floor(memory / (layers × expert_bytes))`, at most E.
    pub slots: usize,
}

/// A resolved user group.
#[derive(Debug, Clone)]
pub struct GroupP {
    pub name: String,
    /// Home server index.
    pub home: usize,
    /// Tokens per second.
    pub rate: f64,
    /// One-way access time user -> home per token, s (constant; reported only).
    pub access_s: f64,
}

/// The prepared problem.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub objective: Objective,
    pub servers: Vec<ServerP>,
    pub groups: Vec<GroupP>,
    /// `comm[h][s]`: dispatch + combine time of one token activation from home `h` to server `s`, s
    /// (0 on the diagonal, infinite without a link).
    pub comm: Vec<Vec<f64>>,
    pub layers: usize,
    pub experts: usize,
    pub top_k: usize,
    pub expert_bytes: f64,
    /// FLOPs of one expert for one token.
    pub flops_per_act: f64,
    pub hidden_bytes: f64,
    /// `[l][g][e]`: activations/s of expert `e` from group `g`.
    pub group_demand: Vec<Vec<Vec<f64>>>,
    /// Distinct home servers (ascending); the solvers' routing units.
    pub homes: Vec<usize>,
    /// Index in `homes` of each group's home.
    pub group_home: Vec<usize>,
    /// `[l][h][e]`: activations/s of expert `e` arriving at home `homes[h]`.
    pub home_demand: Vec<Vec<Vec<f64>>>,
    /// `[l][e]`: total activations/s.
    pub expert_demand: Vec<Vec<f64>>,
    /// Σ_g tokens/s.
    pub total_rate: f64,
    /// Most physical copies per layer: `E + replication_budget`.
    pub max_replicas: usize,
    pub budget: usize,
    pub max_utilization: f64,
    /// Per-layer utilisation cap of a server: `max_utilization / layers`.
    pub layer_cap: f64,
    /// `step_window_s`.
    pub tau: f64,
    /// `[l][s][e]`: current placement.
    pub current: Option<Vec<Vec<Vec<bool>>>>,
    pub mig_per_byte: f64,
    pub load_slack: f64,
}

/// Routing of one demand unit (group or home): per expert, `(server, fraction)` pairs.
pub type Route = Vec<Vec<(usize, f64)>>;

/// One layer of a plan: holdings and per-home routing.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    /// `[s][e]`.
    pub hold: Vec<Vec<bool>>,
    /// `[home index][e]`.
    pub route: Vec<Route>,
}

/// The value of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerValue {
    /// Expected dispatch + combine time per token, s.
    pub comm_s: f64,
    /// Utilisation of each server by this layer (FLOP/s routed / FLOP/s).
    pub util: Vec<f64>,
    pub max_util: f64,
    /// Expert bytes moved onto servers that did not hold them.
    pub migration_bytes: f64,
    /// The layer's share of the objective.
    pub objective: f64,
}

/// Tolerance of the routing and capacity checks.
pub const TOL: f64 = 1e-6;

impl Prepared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        objective: Objective,
        servers: Vec<ServerP>,
        groups: Vec<GroupP>,
        comm: Vec<Vec<f64>>,
        layers: usize,
        experts: usize,
        top_k: usize,
        expert_bytes: f64,
        flops_per_act: f64,
        hidden_bytes: f64,
        loads: &[Vec<Vec<f64>>],
        budget: usize,
        max_utilization: f64,
        tau: f64,
        current: Option<Vec<Vec<Vec<bool>>>>,
        mig_per_byte: f64,
        load_slack: f64,
    ) -> Self {
        let mut homes: Vec<usize> = groups.iter().map(|g| g.home).collect();
        homes.sort_unstable();
        homes.dedup();
        let group_home: Vec<usize> = groups
            .iter()
            .map(|g| homes.iter().position(|&h| h == g.home).unwrap_or(0))
            .collect();
        let group_demand: Vec<Vec<Vec<f64>>> = (0..layers)
            .map(|l| {
                groups
                    .iter()
                    .enumerate()
                    .map(|(g, gp)| loads[g][l].iter().map(|v| v * gp.rate).collect())
                    .collect()
            })
            .collect();
        let home_demand: Vec<Vec<Vec<f64>>> = (0..layers)
            .map(|l| {
                let mut d = vec![vec![0.0; experts]; homes.len()];
                for (g, gd) in group_demand[l].iter().enumerate() {
                    for e in 0..experts {
                        d[group_home[g]][e] += gd[e];
                    }
                }
                d
            })
            .collect();
        let expert_demand = home_demand
            .iter()
            .map(|hd| {
                (0..experts)
                    .map(|e| hd.iter().map(|r| r[e]).sum())
                    .collect()
            })
            .collect();
        Prepared {
            objective,
            total_rate: groups.iter().map(|g| g.rate).sum(),
            servers,
            groups,
            comm,
            layers,
            experts,
            top_k,
            expert_bytes,
            flops_per_act,
            hidden_bytes,
            group_demand,
            homes,
            group_home,
            home_demand,
            expert_demand,
            max_replicas: experts + budget,
            budget,
            max_utilization,
            layer_cap: max_utilization / layers as f64,
            tau,
            current,
            mig_per_byte,
            load_slack,
        }
    }

    pub fn num_servers(&self) -> usize {
        self.servers.len()
    }

    /// Utilisation of server `s` per activation/s.
    pub fn util_per_act(&self, s: usize) -> f64 {
        self.flops_per_act / self.servers[s].flops
    }

    /// Weight of the max-utilisation term in the layer objective.
    pub fn load_weight(&self) -> f64 {
        match self.objective {
            Objective::Latency => self.tau,
            Objective::MaxLoad => 1.0,
        }
    }

    /// Weight of the dispatch/combine term (per activation/s × s) in the layer objective.
    pub fn comm_weight(&self) -> f64 {
        match self.objective {
            Objective::Latency => 1.0 / self.total_rate,
            Objective::MaxLoad => 0.0,
        }
    }

    /// Objective cost of holding expert `e` of layer `l` on `s` (migration if not held now).
    pub fn hold_cost(&self, l: usize, s: usize, e: usize) -> f64 {
        match &self.current {
            Some(c) if !c[l][s][e] => self.mig_per_byte * self.expert_bytes,
            _ => 0.0,
        }
    }

    /// A lower bound on layer `l`'s objective without an LP: every plan has a max utilisation
    /// `z ≥ z̄ = Σ_e d_e f / Σ_s F_s` (balanced load), and under `latency` a home `h` serves locally
    /// at most the demand of the `k_h` experts its own slots hold (`T_h`, its heaviest) and at most
    /// its own capacity at utilisation `z` (`z F_h / f`); every other activation of `h` costs at
    /// least `c_h = min_{s≠h} c_{hs}`. So the objective is at least
    /// `min_{z ≥ z̄} w z + Σ_h c_h·max(0, D_h − min(T_h, z F_h / f)) / Λ` (convex piecewise linear in
    /// `z`: its minimum is at `z̄` or at a breakpoint `T_h f/F_h`, `D_h f/F_h`). Migration costs ≥ 0.
    pub fn layer_lower_bound(&self, l: usize) -> f64 {
        let work: f64 = self.expert_demand[l].iter().sum::<f64>() * self.flops_per_act;
        let flops: f64 = self.servers.iter().map(|s| s.flops).sum();
        let z_bal = work / flops;
        let w = self.load_weight();
        if self.objective != Objective::Latency {
            return w * z_bal;
        }
        // per home: (remote cost, demand, heaviest-k demand, activations per unit of utilisation)
        let homes: Vec<(f64, f64, f64, f64)> = self
            .homes
            .iter()
            .enumerate()
            .map(|(h, &hs)| {
                let mut d = self.home_demand[l][h].clone();
                d.sort_by(|a, b| b.total_cmp(a));
                let total: f64 = d.iter().sum();
                let top: f64 = d.iter().take(self.servers[hs].slots).sum();
                let remote = (0..self.num_servers())
                    .filter(|&s| s != hs)
                    .map(|s| self.comm[hs][s])
                    .fold(f64::INFINITY, f64::min);
                let per_util = self.servers[hs].flops / self.flops_per_act;
                (remote, total, top, per_util)
            })
            .collect();
        let value = |z: f64| {
            let mut v = w * z;
            for &(c, total, top, per_util) in &homes {
                let left = total - top.min(z * per_util);
                if left > 0.0 && c.is_finite() {
                    v += c * left / self.total_rate;
                }
            }
            v
        };
        let mut best = value(z_bal);
        for &(_, total, top, per_util) in &homes {
            for z in [top / per_util, total / per_util] {
                if z > z_bal && z.is_finite() {
                    best = best.min(value(z));
                }
            }
        }
        best
    }

    /// Whether every home reaches every server (the heuristics' assumption).
    pub fn fully_connected(&self) -> bool {
        self.homes
            .iter()
            .all(|&h| self.comm[h].iter().all(|c| c.is_finite()))
    }

    /// Whether the slots can hold one copy of each expert (otherwise infeasible by counting).
    pub fn enough_slots(&self) -> bool {
        self.servers.iter().map(|s| s.slots).sum::<usize>() >= self.experts
    }

    /// Value of a layer for demand units `(home server, demand[e], route[e])`.
    pub fn layer_value(
        &self,
        l: usize,
        hold: &[Vec<bool>],
        units: &[(usize, &[f64], &Route)],
    ) -> LayerValue {
        let ns = self.num_servers();
        let mut util = vec![0.0; ns];
        let mut comm = 0.0;
        for &(h, dem, route) in units {
            for (e, r) in route.iter().enumerate() {
                for &(s, f) in r {
                    let a = dem[e] * f;
                    util[s] += a * self.util_per_act(s);
                    if a > 0.0 {
                        comm += a * self.comm[h][s];
                    }
                }
            }
        }
        let comm_s = comm / self.total_rate;
        let max_util = util.iter().cloned().fold(0.0, f64::max);
        let mut mig = 0.0;
        let mut mig_cost = 0.0;
        for s in 0..ns {
            for e in 0..self.experts {
                if hold[s][e] {
                    if self.current.as_ref().is_some_and(|c| !c[l][s][e]) {
                        mig += self.expert_bytes;
                    }
                    mig_cost += self.hold_cost(l, s, e);
                }
            }
        }
        let comm_term = if self.objective == Objective::Latency {
            comm_s
        } else {
            0.0
        };
        LayerValue {
            objective: comm_term + self.load_weight() * max_util + mig_cost,
            comm_s,
            util,
            max_util,
            migration_bytes: mig,
        }
    }

    /// The per-home demand units of a layer plan.
    pub fn home_units<'a>(
        &'a self,
        l: usize,
        plan: &'a LayerPlan,
    ) -> Vec<(usize, &'a [f64], &'a Route)> {
        self.homes
            .iter()
            .enumerate()
            .map(|(h, &hs)| (hs, self.home_demand[l][h].as_slice(), &plan.route[h]))
            .collect()
    }

    /// Value of a layer plan (per-home routing).
    pub fn plan_layer_value(&self, l: usize, plan: &LayerPlan) -> LayerValue {
        self.layer_value(l, &plan.hold, &self.home_units(l, plan))
    }

    /// Objective of a whole plan.
    pub fn plan_objective(&self, plan: &[LayerPlan]) -> f64 {
        plan.iter()
            .enumerate()
            .map(|(l, lp)| self.plan_layer_value(l, lp).objective)
            .sum()
    }

    /// Every violated constraint of a layer (empty when feasible).
    pub fn layer_violations(
        &self,
        l: usize,
        hold: &[Vec<bool>],
        units: &[(usize, &[f64], &Route)],
        value: &LayerValue,
    ) -> Vec<String> {
        let mut v = vec![];
        let mut copies = 0;
        for (s, hs) in hold.iter().enumerate() {
            let n = hs.iter().filter(|x| **x).count();
            copies += n;
            if n > self.servers[s].slots {
                v.push(format!(
                    "layer {l}: server '{}' holds {n} experts, memory allows {} per layer ({} bytes)",
                    self.servers[s].name, self.servers[s].slots, self.servers[s].memory_bytes
                ));
            }
        }
        for e in 0..self.experts {
            if !hold.iter().any(|hs| hs[e]) {
                v.push(format!("layer {l}: expert {e} is held by no server"));
            }
        }
        if copies > self.max_replicas {
            v.push(format!(
                "layer {l}: {copies} expert copies exceed experts + replication budget = {}",
                self.max_replicas
            ));
        }
        for (u, &(h, dem, route)) in units.iter().enumerate() {
            for (e, r) in route.iter().enumerate() {
                let mut sum = 0.0;
                for &(s, f) in r {
                    if !(f.is_finite() && f >= -TOL) {
                        v.push(format!(
                            "layer {l}: unit {u} expert {e}: fraction {f} to server {s}"
                        ));
                    }
                    sum += f;
                    if f > TOL && !hold[s][e] {
                        v.push(format!(
                            "layer {l}: unit {u} routes expert {e} to '{}', which does not hold it",
                            self.servers[s].name
                        ));
                    }
                    if f > TOL && dem[e] > 0.0 && !self.comm[h][s].is_finite() {
                        v.push(format!(
                            "layer {l}: unit {u} routes expert {e} from '{}' to '{}' without a link",
                            self.servers[h].name, self.servers[s].name
                        ));
                    }
                }
                if dem[e] > 0.0 && (sum - 1.0).abs() > TOL {
                    v.push(format!(
                        "layer {l}: unit {u} expert {e}: routing fractions sum to {sum}, not 1"
                    ));
                }
            }
        }
        for (s, &u) in value.util.iter().enumerate() {
            if u > self.layer_cap * (1.0 + TOL) + 1e-12 {
                v.push(format!(
                    "layer {l}: server '{}' utilisation {u:.6} exceeds its per-layer share {:.6} of compute",
                    self.servers[s].name, self.layer_cap
                ));
            }
        }
        v
    }

    /// A layer plan whose every home uses the same per-expert shares.
    pub fn plan_from_shares(&self, hold: Vec<Vec<bool>>, shares: &Route) -> LayerPlan {
        LayerPlan {
            hold,
            route: vec![shares.clone(); self.homes.len()],
        }
    }
}

/// Heuristic routing state of one layer: holders, per-expert shares (the same for every home) and
/// server loads, with water-filling of one expert's demand over its holders.
#[derive(Debug, Clone)]
pub struct ShareState {
    pub hold: Vec<Vec<bool>>,
    /// `[e]`: `(server, fraction)`.
    pub shares: Route,
    /// Activations/s routed to each server.
    pub acts: Vec<f64>,
    /// Demand of each expert (activations/s).
    pub demand: Vec<f64>,
}

impl ShareState {
    /// Empty routing for `hold`, then every expert water-filled (heaviest first).
    pub fn new(p: &Prepared, l: usize, hold: Vec<Vec<bool>>) -> Self {
        let mut st = ShareState {
            hold,
            shares: vec![vec![]; p.experts],
            acts: vec![0.0; p.num_servers()],
            demand: p.expert_demand[l].clone(),
        };
        let mut order: Vec<usize> = (0..p.experts).collect();
        order.sort_by(|&a, &b| st.demand[b].total_cmp(&st.demand[a]));
        for _ in 0..2 {
            for &e in &order {
                st.refill(p, e);
            }
        }
        st
    }

    /// Servers holding `e`.
    pub fn holders(&self, e: usize) -> Vec<usize> {
        (0..self.hold.len()).filter(|&s| self.hold[s][e]).collect()
    }

    /// Removes `e`'s routed load and water-fills its demand over its holders (minimising the
    /// largest utilisation among them). Returns `e`'s previous shares.
    pub fn refill(&mut self, p: &Prepared, e: usize) -> Vec<(usize, f64)> {
        for &(s, f) in &self.shares[e] {
            self.acts[s] -= f * self.demand[e];
        }
        let w = self.demand[e];
        // (server, utilisation per activation, current utilisation), least loaded first
        let mut hs: Vec<(usize, f64, f64)> = Vec::with_capacity(4);
        for s in 0..self.hold.len() {
            if self.hold[s][e] {
                let k = p.util_per_act(s);
                hs.push((s, k, self.acts[s].max(0.0) * k));
            }
        }
        let new = if hs.is_empty() {
            vec![]
        } else if w <= 0.0 || hs.len() == 1 {
            vec![(hs[0].0, 1.0)]
        } else {
            // utilisation u_s = acts_s * k_s; fill level lambda: sum max(0, lambda/k_s - acts_s) = w
            hs.sort_by(|a, b| a.2.total_cmp(&b.2));
            let mut inv_k = 0.0;
            let mut base = 0.0;
            let mut lambda = 0.0;
            for j in 0..hs.len() {
                inv_k += 1.0 / hs[j].1;
                base += self.acts[hs[j].0].max(0.0);
                lambda = (w + base) / inv_k;
                if hs.get(j + 1).is_none_or(|n| lambda <= n.2) {
                    break;
                }
            }
            hs.sort_by_key(|h| h.0);
            let mut out = Vec::with_capacity(hs.len());
            let mut tot = 0.0;
            for &(s, k, _) in &hs {
                let a = (lambda / k - self.acts[s].max(0.0)).max(0.0);
                if a > 0.0 {
                    out.push((s, a));
                    tot += a;
                }
            }
            if tot <= 0.0 {
                vec![(hs[0].0, 1.0)]
            } else {
                out.iter_mut().for_each(|x| x.1 /= tot);
                out
            }
        };
        let old = std::mem::replace(&mut self.shares[e], new);
        for &(s, f) in &self.shares[e] {
            self.acts[s] += f * self.demand[e];
        }
        old
    }

    /// The layer plan.
    pub fn plan(&self, p: &Prepared) -> LayerPlan {
        p.plan_from_shares(self.hold.clone(), &self.shares)
    }
}
