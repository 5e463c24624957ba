//! Field checks with JSON paths, used by every family's `validate` and by the catalog loader.
//!
//! ```
//! use edgeplan::validate::Check;
//! let c = Check::root();
//! assert!(c.field("bandwidth_bps").positive(1e9).is_ok());
//! let err = c.field("nodes").index(2).field("memory_bytes").nonneg(-1.0).unwrap_err();
//! assert!(err.to_string().contains("$.nodes[2].memory_bytes"));
//! ```

use crate::error::{Error, Result};

/// A JSON path under construction, with checks that fail with that path.
#[derive(Debug, Clone)]
pub struct Check {
    path: String,
}

impl Check {
    /// The document root, `$`.
    pub fn root() -> Self {
        Check { path: "$".into() }
    }

    /// A check rooted at an arbitrary path.
    pub fn at(path: impl Into<String>) -> Self {
        Check { path: path.into() }
    }

    /// `path.name`.
    pub fn field(&self, name: &str) -> Self {
        Check {
            path: format!("{}.{}", self.path, name),
        }
    }

    /// `path[i]`.
    pub fn index(&self, i: usize) -> Self {
        Check {
            path: format!("{}[{}]", self.path, i),
        }
    }

    /// The path as a string.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// An [`Error::Invalid`] at this path.
    pub fn err(&self, message: impl Into<String>) -> Error {
        Error::invalid(self.path.clone(), message)
    }

    /// Fails at this path when `cond` is false.
    pub fn ensure(&self, cond: bool, message: impl FnOnce() -> String) -> Result<()> {
        if cond {
            Ok(())
        } else {
            Err(self.err(message()))
        }
    }

    /// A finite number (no NaN, no infinity).
    pub fn finite(&self, x: f64) -> Result<f64> {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(self.err(format!("must be a finite number, got {x}")))
        }
    }

    /// A finite number `>= 0`.
    pub fn nonneg(&self, x: f64) -> Result<f64> {
        self.finite(x)?;
        if x >= 0.0 {
            Ok(x)
        } else {
            Err(self.err(format!("must be >= 0, got {x}")))
        }
    }

    /// A finite number `> 0`.
    pub fn positive(&self, x: f64) -> Result<f64> {
        self.finite(x)?;
        if x > 0.0 {
            Ok(x)
        } else {
            Err(self.err(format!("must be > 0, got {x}")))
        }
    }

    /// A finite number in `[lo, hi]`.
    pub fn in_range(&self, x: f64, lo: f64, hi: f64) -> Result<f64> {
        self.finite(x)?;
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(self.err(format!("must be in [{lo}, {hi}], got {x}")))
        }
    }

    /// An integer `>= 1`.
    pub fn at_least_one(&self, n: u64) -> Result<u64> {
        if n >= 1 {
            Ok(n)
        } else {
            Err(self.err("must be at least 1"))
        }
    }

    /// A non-empty list.
    pub fn non_empty<T>(&self, v: &[T]) -> Result<()> {
        if v.is_empty() {
            Err(self.err("must not be empty"))
        } else {
            Ok(())
        }
    }

    /// Every element finite and `>= 0`.
    pub fn all_nonneg(&self, v: &[f64]) -> Result<()> {
        for (i, &x) in v.iter().enumerate() {
            self.index(i).nonneg(x)?;
        }
        Ok(())
    }

    /// Every element finite and `> 0`.
    pub fn all_positive(&self, v: &[f64]) -> Result<()> {
        for (i, &x) in v.iter().enumerate() {
            self.index(i).positive(x)?;
        }
        Ok(())
    }

    /// A list of exactly `n` elements.
    pub fn len_eq<T>(&self, v: &[T], n: usize, what: &str) -> Result<()> {
        if v.len() == n {
            Ok(())
        } else {
            Err(self.err(format!("must have {n} entries ({what}), got {}", v.len())))
        }
    }
}
