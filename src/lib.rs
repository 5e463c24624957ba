//! # edgeplan
//!
//! Optimization toolkit and solver library for deploying large language models at the mobile (5G/6G)
//! network edge. Data flows one way:
//!
//! catalog -> cost model -> problem instance -> solver -> solution -> evaluate -> result
//!
//! - [`catalog`]: LLM architecture cards, device cards, runtime (engine) profiles, each figure sourced.
//! - [`cost`]: the analytic cost model (per-layer FLOPs, bytes, memory recipes, roofline time, energy, radio).
//! - [`solve`]: options, results with honest statuses, the `Solver` trait, registries, the HiGHS backend.
//! - [`problems`]: one module per problem family, each with its formal model, `evaluate` and solvers.
//! - [`batch`]: the batch runner behind `edgeplan batch` (parallel solves, atomic result files).

pub mod batch;
pub mod catalog;
pub mod cost;
pub mod error;
pub mod problems;
pub mod solve;
pub mod validate;

pub use error::{Error, Result};
