//! The one place the family's costs are computed (from `crate::cost` tables built in `instance.rs`):
//! the shape of a discrete choice (which layers train), its per-round phases, memory, rounds, and the
//! time / energy of a phase under a bandwidth allocation. `evaluate` and every solver call these.

use super::instance::{Objective, Protocol};
use crate::cost::radio::shannon_rate_slope;
use crate::cost::shannon_rate_bps;

/// Bytes per adapter parameter exchanged in aggregation (bf16).
pub const ADAPTER_BYTES_PER_PARAM: f64 = 2.0;

/// Per-layer time and energy of one micro-batch on one device.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Row {
    /// Forward only (frozen layer below the lowest trainable layer).
    pub fwd_s: f64,
    /// Forward + activation-gradient backward (frozen layer above a trainable one).
    pub act_s: f64,
    /// Forward + full LoRA backward (trainable layer).
    pub full_s: f64,
    pub fwd_j: f64,
    pub act_j: f64,
    pub full_j: f64,
}

/// Rows of one device card (embedding, blocks, head).
#[derive(Debug, Clone)]
pub struct DeviceTable {
    pub name: String,
    pub rows: Vec<Row>,
}

/// A client's link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    Fixed { up_bps: f64, down_bps: f64 },
    Shannon { gain_up: f64, gain_down: f64 },
}

/// A resolved client.
#[derive(Debug, Clone)]
pub struct ClientP {
    pub name: String,
    pub dev: usize,
    pub memory: f64,
    pub energy_budget_j: Option<f64>,
    pub batches: f64,
    pub tx_power_w: f64,
    pub link: Link,
}

/// Shared wireless bandwidth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bandwidth {
    pub total_hz: f64,
    pub noise_psd: f64,
    pub server_tx_power_w: f64,
}

/// Convergence model.
#[derive(Debug, Clone, PartialEq)]
pub enum Convergence {
    Table(Vec<f64>, Vec<f64>),
    Power { r_min: f64, a: f64, b: f64 },
}

impl Convergence {
    /// Rounds to target at trainable fraction `phi` (monotone non-increasing in `phi`).
    pub fn rounds(&self, phi: f64) -> f64 {
        let phi = phi.clamp(0.0, 1.0);
        match self {
            Convergence::Power { r_min, a, b } => r_min + a * (1.0 - phi).powf(*b),
            Convergence::Table(x, r) => {
                if phi <= x[0] {
                    return r[0];
                }
                for i in 1..x.len() {
                    if phi <= x[i] {
                        let t = (phi - x[i - 1]) / (x[i] - x[i - 1]);
                        return r[i - 1] + t * (r[i] - r[i - 1]);
                    }
                }
                r[r.len() - 1]
            }
        }
    }
}

/// The prepared problem.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub model: String,
    /// Transformer blocks `L` (rows: 0 = embedding, `1..=L` blocks, `L+1` head).
    pub nb: usize,
    pub tables: Vec<DeviceTable>,
    pub server_dev: usize,
    pub server_memory: f64,
    /// Per row: frozen weights, bytes.
    pub base_bytes: Vec<f64>,
    /// Per row: adapter weights + gradients + optimizer state when trainable, bytes.
    pub state_bytes: Vec<f64>,
    /// Per row: activations kept for backward, bytes per micro-batch.
    pub act_bytes: Vec<f64>,
    /// Per row: LoRA parameters.
    pub trainable: Vec<f64>,
    pub total_trainable: f64,
    /// Per row: output activation bytes per micro-batch (smashed data at a cut after this row).
    pub out_bytes: Vec<f64>,
    pub clients: Vec<ClientP>,
    pub bandwidth: Option<Bandwidth>,
    pub protocol: Protocol,
    pub cuts: Vec<usize>,
    pub client_levels: Vec<f64>,
    pub server_levels: Vec<f64>,
    pub convergence: Convergence,
    pub min_trainable: f64,
    /// Client-side weight in the convergence model.
    pub client_weight: f64,
    pub objective: Objective,
    pub baseline_cut: usize,
    /// Each client picks its own cut and client level (`decisions: per_client`).
    pub per_client: bool,
}

/// A discrete choice: cut (blocks on the client) and freezing-level indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Choice {
    pub cut: usize,
    pub cf: usize,
    pub sf: usize,
}

/// What a row does in backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fwd,
    Act,
    Full,
}

/// Which blocks are frozen and train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub cut: usize,
    /// Frozen client blocks (the lowest ones).
    pub client_frozen: usize,
    /// Frozen server blocks (the lowest server blocks).
    pub server_frozen: usize,
    pub lowest_trainable: Option<usize>,
    pub client_trains: bool,
    /// Trainable fraction φ of all LoRA parameters.
    pub phi: f64,
    /// Trained share of the client's LoRA parameters (0 without client blocks).
    pub phi_client: f64,
    /// `(1 − w)·φ + w·φ_client`, the argument of the convergence model.
    pub phi_eff: f64,
}

/// One client's share of a round phase.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PhaseClient {
    /// Client compute time, s.
    pub compute_s: f64,
    /// Client compute energy, J.
    pub compute_j: f64,
    pub up_bits: f64,
    pub down_bits: f64,
    /// Of which smashed data (bottom cut), bits.
    pub smashed_up_bits: f64,
}

/// A round: clients' parts and the shared server time.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub clients: Vec<PhaseClient>,
    pub server_s: f64,
}

impl Phase {
    /// Whether any client moves bits in this phase.
    pub fn has_comm(&self) -> bool {
        self.clients
            .iter()
            .any(|c| c.up_bits > 0.0 || c.down_bits > 0.0)
    }
}

/// Everything about a discrete choice that does not depend on bandwidth.
#[derive(Debug, Clone)]
pub struct Combo {
    /// Client `k`'s choice (all equal under common decisions; one server level for all).
    pub choices: Vec<Choice>,
    /// The shape of client `k`'s stream of micro-batches (its cut and client level, the server level).
    pub shapes: Vec<Shape>,
    /// Micro-batch-weighted mean of the streams' trainable fractions `φ_k`.
    pub phi: f64,
    /// Micro-batch-weighted mean of the streams' client trainable fractions.
    pub phi_client: f64,
    /// `(1 − w)·φ + w·φ_client`, the argument of the convergence model.
    pub phi_eff: f64,
    /// Every client trains a block (the later rounds equal the first).
    pub all_train: bool,
    pub rounds: f64,
    /// First round.
    pub first: Phase,
    /// Rounds 2..R (differs only for fully frozen clients).
    pub later: Phase,
    pub client_memory: Vec<f64>,
    pub server_memory: f64,
    /// Discrete violations (memory, trainable fraction).
    pub violations: Vec<String>,
}

/// Bandwidth-independent costs of one client's stream of micro-batches under its choice.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    pub shape: Shape,
    /// The client's part of the first round and of the later rounds.
    pub first: PhaseClient,
    pub later: PhaseClient,
    /// Client memory, bytes.
    pub memory: f64,
    /// Server time of the client's micro-batches per round, s.
    pub server_s: f64,
    /// Smashed data the server caches for a fully frozen client, bytes (else 0).
    pub cache_bytes: f64,
}

impl Prepared {
    pub fn num_clients(&self) -> usize {
        self.clients.len()
    }

    /// Parallel clients (SFL, U-shaped) share the bandwidth; vanilla clients take turns.
    pub fn parallel(&self) -> bool {
        self.protocol != Protocol::Vanilla
    }

    /// Whether the solution carries a per-client bandwidth allocation.
    pub fn has_allocation(&self) -> bool {
        self.bandwidth.is_some() && self.parallel()
    }

    /// Every discrete choice.
    pub fn choices(&self) -> Vec<Choice> {
        let mut v = vec![];
        for &cut in &self.cuts {
            for cf in 0..self.client_levels.len() {
                for sf in 0..self.server_levels.len() {
                    v.push(Choice { cut, cf, sf });
                }
            }
        }
        v
    }

    /// Frozen-block counts: `round(level · blocks)` on each side.
    pub fn shape(&self, ch: Choice) -> Shape {
        let sb = self.nb - ch.cut;
        let client_frozen =
            ((self.client_levels[ch.cf] * ch.cut as f64).round() as usize).min(ch.cut);
        let server_frozen = ((self.server_levels[ch.sf] * sb as f64).round() as usize).min(sb);
        let client_trains = client_frozen < ch.cut;
        let lowest_trainable = if client_trains {
            Some(client_frozen)
        } else if server_frozen < sb {
            Some(ch.cut + server_frozen)
        } else {
            None
        };
        let (mut tr, mut tr_c, mut all_c) = (0.0, 0.0, 0.0);
        for b in 0..self.nb {
            let t = self.trainable[b + 1];
            let on = self.block_trains(ch.cut, client_frozen, server_frozen, b);
            if on {
                tr += t;
            }
            if b < ch.cut {
                all_c += t;
                if on {
                    tr_c += t;
                }
            }
        }
        let phi = tr / self.total_trainable;
        let phi_client = if all_c > 0.0 { tr_c / all_c } else { 0.0 };
        Shape {
            cut: ch.cut,
            client_frozen,
            server_frozen,
            lowest_trainable,
            client_trains,
            phi,
            phi_client,
            phi_eff: (1.0 - self.client_weight) * phi + self.client_weight * phi_client,
        }
    }

    fn block_trains(&self, cut: usize, cfz: usize, sfz: usize, b: usize) -> bool {
        if b < cut {
            b >= cfz
        } else {
            b >= cut + sfz
        }
    }

    /// Backward mode of row `l`.
    pub fn mode(&self, s: &Shape, l: usize) -> Mode {
        let Some(low) = s.lowest_trainable else {
            return Mode::Fwd;
        };
        if l == 0 {
            return Mode::Fwd;
        }
        if l == self.nb + 1 {
            return Mode::Act;
        }
        let b = l - 1;
        if b < low {
            Mode::Fwd
        } else if self.block_trains(s.cut, s.client_frozen, s.server_frozen, b) {
            Mode::Full
        } else {
            Mode::Act
        }
    }

    /// Time and energy of rows `ls` on device `dev` for one micro-batch.
    fn rows_cost(&self, s: &Shape, dev: usize, ls: impl Iterator<Item = usize>) -> (f64, f64) {
        let t = &self.tables[dev].rows;
        let (mut ts, mut js) = (0.0, 0.0);
        for l in ls {
            let r = &t[l];
            match self.mode(s, l) {
                Mode::Fwd => {
                    ts += r.fwd_s;
                    js += r.fwd_j;
                }
                Mode::Act => {
                    ts += r.act_s;
                    js += r.act_j;
                }
                Mode::Full => {
                    ts += r.full_s;
                    js += r.full_j;
                }
            }
        }
        (ts, js)
    }

    /// Memory of rows `ls` (weights, adapter state of trainable rows, activations of rows in backward).
    fn rows_memory(&self, s: &Shape, ls: impl Iterator<Item = usize>) -> f64 {
        ls.map(|l| {
            let m = self.mode(s, l);
            self.base_bytes[l]
                + if m == Mode::Full {
                    self.state_bytes[l]
                } else {
                    0.0
                }
                + if m != Mode::Fwd {
                    self.act_bytes[l]
                } else {
                    0.0
                }
        })
        .sum()
    }

    pub fn client_rows(&self, cut: usize) -> std::ops::RangeInclusive<usize> {
        0..=cut
    }

    pub fn server_rows(&self, cut: usize) -> std::ops::RangeInclusive<usize> {
        let last = if self.protocol == Protocol::UShaped {
            self.nb
        } else {
            self.nb + 1
        };
        cut + 1..=last
    }

    /// All bandwidth-independent costs of a common choice (every client takes `ch`).
    pub fn combo(&self, ch: Choice) -> Combo {
        self.combo_of(&vec![ch; self.num_clients()])
    }

    /// All bandwidth-independent costs when client `k` takes `chs[k]` (one server level: every
    /// `chs[k].sf` is equal). Client `k`'s micro-batches run rows `0..=c_k` on the client and the rest
    /// on the server with the freezing of its own stream (`shape(chs[k])`); the server time is the sum
    /// over all micro-batches of their server rows; the server memory holds the union of the
    /// server-side rows (weights from the smallest cut on, adapter state of a row trained by any
    /// stream), the activations of the most demanding stream (one micro-batch in flight), and the
    /// cached smashed data of fully frozen clients.
    pub fn combo_of(&self, chs: &[Choice]) -> Combo {
        debug_assert_eq!(chs.len(), self.num_clients());
        debug_assert!(chs.iter().all(|c| c.sf == chs[0].sf));
        let streams: Vec<Stream> = (0..chs.len()).map(|k| self.stream(k, chs[k])).collect();
        let shapes: Vec<Shape> = streams.iter().map(|s| s.shape).collect();
        let first: Vec<PhaseClient> = streams.iter().map(|s| s.first).collect();
        let later: Vec<PhaseClient> = streams.iter().map(|s| s.later).collect();
        let client_memory: Vec<f64> = streams.iter().map(|s| s.memory).collect();
        let server_s: f64 = streams.iter().map(|s| s.server_s).sum();
        let cache_bytes: f64 = streams.iter().map(|s| s.cache_bytes).sum();
        let server_memory = self.server_memory_of(&shapes) + cache_bytes;
        let nsum: f64 = self.clients.iter().map(|c| c.batches).sum();
        let wavg = |f: &dyn Fn(&Shape) -> f64| -> f64 {
            self.clients
                .iter()
                .zip(&shapes)
                .map(|(c, s)| c.batches * f(s))
                .sum::<f64>()
                / nsum
        };
        let phi = wavg(&|s| s.phi);
        let phi_client = wavg(&|s| s.phi_client);
        let phi_eff = (1.0 - self.client_weight) * phi + self.client_weight * phi_client;
        let mut violations = vec![];
        for (k, c) in self.clients.iter().enumerate() {
            if client_memory[k] > c.memory * (1.0 + 1e-12) {
                violations.push(format!(
                    "client '{}' memory {:.4e} B exceeds {:.4e} B",
                    c.name, client_memory[k], c.memory
                ));
            }
        }
        if server_memory > self.server_memory * (1.0 + 1e-12) {
            violations.push(format!(
                "server memory {server_memory:.4e} B exceeds {:.4e} B",
                self.server_memory
            ));
        }
        if shapes.iter().all(|s| s.phi <= 0.0) {
            violations.push("nothing trains (trainable fraction 0)".into());
        } else {
            for (k, s) in shapes.iter().enumerate() {
                if s.phi <= 0.0 {
                    violations.push(format!(
                        "client '{}': nothing trains on its micro-batches",
                        self.clients[k].name
                    ));
                }
            }
            if phi < self.min_trainable - 1e-12 {
                violations.push(format!(
                    "trainable fraction {phi:.4} below the minimum {:.4}",
                    self.min_trainable
                ));
            }
        }
        Combo {
            choices: chs.to_vec(),
            all_train: shapes.iter().all(|s| s.client_trains),
            shapes,
            phi,
            phi_client,
            phi_eff,
            rounds: self.convergence.rounds(phi_eff),
            first: Phase {
                clients: first,
                server_s,
            },
            later: Phase {
                clients: later,
                server_s,
            },
            client_memory,
            server_memory,
            violations,
        }
    }

    /// Client `k`'s stream under choice `ch`: its part of each round, memory, server time.
    pub fn stream(&self, k: usize, ch: Choice) -> Stream {
        let c = &self.clients[k];
        let s = self.shape(ch);
        let u = self.protocol == Protocol::UShaped;
        let head = self.nb + 1;
        let top = self.out_bytes[self.nb] * 8.0; // last block's output (U-shaped)
        let smashed = self.out_bytes[ch.cut] * 8.0;
        let (bt, bj) = self.rows_cost(&s, c.dev, self.client_rows(ch.cut));
        let (ht, hj) = if u {
            self.rows_cost(&s, c.dev, std::iter::once(head))
        } else {
            (0.0, 0.0)
        };
        let mut memory = self.rows_memory(&s, self.client_rows(ch.cut));
        if u {
            memory += self.rows_memory(&s, std::iter::once(head));
        }
        let (st, _) = self.rows_cost(&s, self.server_dev, self.server_rows(ch.cut));
        let n = c.batches;
        let adapter_bits: f64 = if s.client_trains {
            (s.client_frozen..ch.cut)
                .map(|b| self.trainable[b + 1])
                .sum::<f64>()
                * ADAPTER_BYTES_PER_PARAM
                * 8.0
        } else {
            0.0
        };
        let grad_down = if s.client_trains { smashed } else { 0.0 };
        let (uu, ud) = if u { (top, top) } else { (0.0, 0.0) };
        let first = PhaseClient {
            compute_s: n * (bt + ht),
            compute_j: n * (bj + hj),
            up_bits: n * (smashed + uu) + adapter_bits,
            down_bits: n * (grad_down + ud) + adapter_bits,
            smashed_up_bits: n * smashed,
        };
        let (later, cache_bytes) = if s.client_trains {
            (first, 0.0)
        } else {
            // Fully frozen bottom: its smashed data were uploaded once and are cached.
            (
                PhaseClient {
                    compute_s: n * ht,
                    compute_j: n * hj,
                    up_bits: n * uu,
                    down_bits: n * ud,
                    smashed_up_bits: 0.0,
                },
                n * smashed / 8.0,
            )
        };
        Stream {
            shape: s,
            first,
            later,
            memory,
            server_s: n * st,
            cache_bytes,
        }
    }

    /// Server rows of a stream with their backward modes.
    pub fn server_row_modes<'a>(
        &'a self,
        s: &'a Shape,
    ) -> impl Iterator<Item = (usize, Mode)> + 'a {
        self.server_rows(s.cut).map(move |l| (l, self.mode(s, l)))
    }

    /// Activations a stream keeps on the server for one micro-batch, bytes.
    pub fn server_act_bytes(&self, s: &Shape) -> f64 {
        self.server_row_modes(s)
            .filter(|&(_, m)| m != Mode::Fwd)
            .map(|(l, _)| self.act_bytes[l])
            .sum()
    }

    /// Server memory without cached smashed data: weights of every row some stream runs on the
    /// server, adapter state of every row some stream trains there, and the largest stream's
    /// activations.
    pub fn server_memory_of(&self, shapes: &[Shape]) -> f64 {
        let rows = self.nb + 2;
        let mut held = vec![false; rows];
        let mut trained = vec![false; rows];
        let mut act: f64 = 0.0;
        for s in shapes {
            for (l, m) in self.server_row_modes(s) {
                held[l] = true;
                trained[l] |= m == Mode::Full;
            }
            act = act.max(self.server_act_bytes(s));
        }
        (0..rows)
            .map(|l| {
                (if held[l] { self.base_bytes[l] } else { 0.0 })
                    + if trained[l] { self.state_bytes[l] } else { 0.0 }
            })
            .sum::<f64>()
            + act
    }

    /// Bandwidth client `k` uses given an allocation (vanilla clients take turns on all of it).
    pub fn bw_of(&self, alloc: &[f64], k: usize) -> f64 {
        match self.bandwidth {
            None => 0.0,
            Some(b) if !self.parallel() => b.total_hz,
            Some(_) => alloc.get(k).copied().unwrap_or(0.0),
        }
    }

    /// Uplink and downlink rates of client `k` on bandwidth `b` Hz (fixed links ignore `b`).
    pub fn rates(&self, k: usize, b: f64) -> (f64, f64) {
        let c = &self.clients[k];
        match (c.link, self.bandwidth) {
            (Link::Fixed { up_bps, down_bps }, _) => (up_bps, down_bps),
            (Link::Shannon { gain_up, gain_down }, Some(bw)) => (
                shannon_rate_bps(b, c.tx_power_w, gain_up, bw.noise_psd),
                shannon_rate_bps(b, bw.server_tx_power_w, gain_down, bw.noise_psd),
            ),
            (Link::Shannon { .. }, None) => (0.0, 0.0),
        }
    }

    /// Communication time of client `k` moving `pc`'s bits on `b` Hz.
    pub fn comm_s(&self, k: usize, pc: &PhaseClient, b: f64) -> f64 {
        let (ru, rd) = self.rates(k, b);
        div(pc.up_bits, ru) + div(pc.down_bits, rd)
    }

    /// Client `k`'s time in a phase (compute + communication).
    pub fn client_s(&self, k: usize, pc: &PhaseClient, b: f64) -> f64 {
        pc.compute_s + self.comm_s(k, pc, b)
    }

    /// Client `k`'s energy in a phase (compute + transmit; reception not counted).
    pub fn client_j(&self, k: usize, pc: &PhaseClient, b: f64) -> f64 {
        let (ru, _) = self.rates(k, b);
        pc.compute_j + self.clients[k].tx_power_w * div(pc.up_bits, ru)
    }

    /// Energy saved per extra Hz, `−dE/db = P·bits·r'(b)/r(b)²` (J/Hz; 0 without uplink bits or for a
    /// fixed link). Positive and decreasing in `b` (the transmit energy is convex in the bandwidth).
    pub fn tx_marginal(&self, k: usize, pc: &PhaseClient, b: f64) -> f64 {
        let c = &self.clients[k];
        match (c.link, self.bandwidth) {
            (Link::Shannon { gain_up, .. }, Some(bw)) if pc.up_bits > 0.0 => {
                let r = shannon_rate_bps(b, c.tx_power_w, gain_up, bw.noise_psd);
                if r <= 0.0 {
                    return f64::INFINITY;
                }
                let d = shannon_rate_slope(b, c.tx_power_w, gain_up, bw.noise_psd);
                c.tx_power_w * pc.up_bits * d / (r * r)
            }
            _ => 0.0,
        }
    }

    /// Phase latency: parallel `max_k client + server`, vanilla `Σ_k client + server`.
    pub fn phase_time(&self, ph: &Phase, alloc: &[f64]) -> f64 {
        let it = ph
            .clients
            .iter()
            .enumerate()
            .map(|(k, pc)| self.client_s(k, pc, self.bw_of(alloc, k)));
        let c = if self.parallel() {
            it.fold(0.0, f64::max)
        } else {
            it.sum()
        };
        c + ph.server_s
    }

    /// Total client energy of a phase.
    pub fn phase_energy(&self, ph: &Phase, alloc: &[f64]) -> f64 {
        ph.clients
            .iter()
            .enumerate()
            .map(|(k, pc)| self.client_j(k, pc, self.bw_of(alloc, k)))
            .sum()
    }
}

/// `bits / rate` with 0 bits free and a zero rate infinite.
pub fn div(bits: f64, rate: f64) -> f64 {
    if bits <= 0.0 {
        0.0
    } else if rate <= 0.0 {
        f64::INFINITY
    } else {
        bits / rate
    }
}

/// Time, energy and objective of a combo under allocations for the first and later rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value {
    pub first_s: f64,
    pub later_s: f64,
    pub total_s: f64,
    pub first_j: f64,
    pub later_j: f64,
    pub total_j: f64,
    pub objective: f64,
    /// Per-phase, per-client energy budget and the deadline hold.
    pub feasible: bool,
}

impl Prepared {
    /// Evaluates a combo under the two allocations (objective and bandwidth-dependent constraints).
    pub fn value(&self, c: &Combo, a1: &[f64], a2: &[f64]) -> (Value, Vec<String>) {
        let mut viol = vec![];
        let first_s = self.phase_time(&c.first, a1);
        let later_s = self.phase_time(&c.later, a2);
        let first_j = self.phase_energy(&c.first, a1);
        let later_j = self.phase_energy(&c.later, a2);
        let w = (c.rounds - 1.0).max(0.0);
        let total_s = first_s + w * later_s;
        let total_j = first_j + w * later_j;
        for (ph, a, what) in [(&c.first, a1, "first"), (&c.later, a2, "later")] {
            for (k, pc) in ph.clients.iter().enumerate() {
                if let Some(bud) = self.clients[k].energy_budget_j {
                    let e = self.client_j(k, pc, self.bw_of(a, k));
                    if e > bud * (1.0 + 1e-9) {
                        viol.push(format!(
                            "client '{}' {what}-round energy {e:.6e} J exceeds budget {bud:.6e} J",
                            self.clients[k].name
                        ));
                    }
                }
            }
        }
        if !total_s.is_finite() {
            viol.push("a client with bits to send has no bandwidth".into());
        }
        let objective = match self.objective {
            Objective::TotalTime => total_s,
            Objective::RoundLatency => first_s,
            Objective::Energy { deadline_s } => {
                if total_s > deadline_s * (1.0 + 1e-9) {
                    viol.push(format!(
                        "total time {total_s:.6e} s exceeds the deadline {deadline_s:.6e} s"
                    ));
                }
                total_j
            }
        };
        (
            Value {
                first_s,
                later_s,
                total_s,
                first_j,
                later_j,
                total_j,
                objective,
                feasible: viol.is_empty(),
            },
            viol,
        )
    }
}
