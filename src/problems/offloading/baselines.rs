//! Baselines: `all-local`, `all-offload` (every device in one fixed mode, partitionable tasks at
//! the least / the whole offload), `neurosurgeon` (each device picks its own best mode and offload
//! ignoring the shared spectrum and server, Neurosurgeon-style); each then gets its upload times
//! (TDMA) or bandwidths (OFDMA) from the fixed-mode convex solve (so only the mode/offload policy
//! is naive).

use super::cost::Prepared;
use super::exact::fixed;
use super::{tolerance, Offloading, OffloadingSolution};
use crate::error::Result;
use crate::solve::{Context, Outcome, Solver, SolverKind, Termination};

fn run_fixed(
    p: &Prepared,
    ctx: &Context<'_>,
    pick: impl Fn(&Prepared, usize) -> Option<(usize, Option<f64>)>,
) -> Result<Outcome<OffloadingSolution>> {
    let mut q = p.clone();
    let mut modes = vec![];
    for k in 0..p.k() {
        let Some((m, l)) = pick(p, k) else {
            let mut o = Outcome::none(Termination::Completed);
            o.notes.push(format!(
                "{}: no allowed mode for this policy",
                p.devs[k].name
            ));
            return Ok(o);
        };
        if let Some(l) = l {
            q.devs[k].modes[m].lo = l;
            q.devs[k].modes[m].hi = l;
        }
        modes.push(m);
    }
    match fixed(&q, &modes, tolerance(ctx.options)) {
        Some((pts, o)) => Ok(Outcome::with(
            Termination::Completed,
            OffloadingSolution::from_points(p, &pts),
            o,
        )),
        None => {
            let mut o = Outcome::none(Termination::Completed);
            o.notes
                .push("the policy's modes do not fit the spectrum / server together".into());
            Ok(o)
        }
    }
}

/// The allowed mode with a label, else the allowed mode maximising `key`.
fn mode_or(
    p: &Prepared,
    k: usize,
    label: &str,
    key: impl Fn(&super::cost::Mode) -> f64,
) -> Option<usize> {
    let d = &p.devs[k];
    let ok = |m: &&super::cost::Mode| m.allowed.is_ok();
    d.modes
        .iter()
        .position(|m| m.label == label && m.allowed.is_ok())
        .or_else(|| {
            d.modes
                .iter()
                .enumerate()
                .filter(|(_, m)| ok(m))
                .max_by(|a, b| key(a.1).total_cmp(&key(b.1)))
                .map(|(i, _)| i)
        })
}

pub struct AllLocal;
impl Solver<Offloading> for AllLocal {
    fn name(&self) -> &'static str {
        "all-local"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "everything on the device (partitionable: least offload m⁺; LLM: local, else most local layers)"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<OffloadingSolution>> {
        run_fixed(p, ctx, |p, k| {
            let m = mode_or(p, k, "local", |m| m.tau_loc)?;
            let mm = &p.devs[k].modes[m];
            Some((m, (mm.label == "partial").then_some(mm.lo)))
        })
    }
}

pub struct AllOffload;
impl Solver<Offloading> for AllOffload {
    fn name(&self) -> &'static str {
        "all-offload"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "everything to the server (partitionable: all bits; LLM: offload, else fewest local layers)"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<OffloadingSolution>> {
        run_fixed(p, ctx, |p, k| {
            let m = mode_or(p, k, "offload", |m| -m.tau_loc)?;
            let d = &p.devs[k];
            let mm = &d.modes[m];
            Some((m, (mm.label == "partial").then_some(mm.hi_eff(d.rmax))))
        })
    }
}

pub struct Neurosurgeon;
impl Solver<Offloading> for Neurosurgeon {
    fn name(&self) -> &'static str {
        "neurosurgeon"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "per-device best mode and offload ignoring the shared spectrum and server (Neurosurgeon-style), then upload times / bandwidths"
    }
    fn solve(&self, p: &Prepared, ctx: &mut Context<'_>) -> Result<Outcome<OffloadingSolution>> {
        let allowed = p.all_allowed();
        run_fixed(p, ctx, |p, k| {
            if allowed[k].is_empty() {
                return None;
            }
            let r = p.respond(k, &allowed[k], 0.0, 0.0);
            Some((r.pt.mode, Some(r.pt.l)))
        })
    }
}

/// Equal shares: every device gets `T/K` of the frame (TDMA) or `B/K` of the band (OFDMA) and
/// `F/K` of the server, and picks its best mode and offload within them (no coupling).
pub struct EqualShare;
impl Solver<Offloading> for EqualShare {
    fn name(&self) -> &'static str {
        "equal-share"
    }
    fn kind(&self) -> SolverKind {
        SolverKind::Baseline
    }
    fn description(&self) -> &'static str {
        "equal slots (TDMA) or equal bandwidth (OFDMA) and equal server time per device; each device its best mode and offload (60-point grid) within its share"
    }
    fn solve(&self, p: &Prepared, _ctx: &mut Context<'_>) -> Result<Outcome<OffloadingSolution>> {
        let kk = p.k() as f64;
        let mut pts = vec![];
        for k in 0..p.k() {
            let Some((pt, _)) =
                super::brute_force::best_given_share(p, k, p.budget() / kk, p.capacity_s / kk)
            else {
                let mut o = Outcome::none(Termination::Completed);
                o.notes.push(format!(
                    "{}: no mode fits an equal share of the spectrum and server",
                    p.devs[k].name
                ));
                return Ok(o);
            };
            pts.push(pt);
        }
        let obj = p.objective(&pts);
        Ok(Outcome::with(
            Termination::Completed,
            OffloadingSolution::from_points(p, &pts),
            obj,
        ))
    }
}
