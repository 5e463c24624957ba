//! One error type for the whole library.
//!
//! Every error a user can cause by bad input carries the JSON path of the offending field
//! (`$.nodes[3].memory_bytes`) and says what is wrong with it. Solvers never see invalid input:
//! families validate an instance completely before any solver runs.

use std::fmt;

/// The result type used throughout edgeplan.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in edgeplan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of an instance (or card) is malformed: `path` is a JSON path such as `$.links[2].bandwidth_bps`.
    #[error("invalid input at {path}: {message}")]
    Invalid { path: String, message: String },

    /// A catalog name (model, device, runtime) is not known.
    #[error("unknown {kind} '{name}'{}", suggestion_text(.suggestions))]
    UnknownName {
        kind: &'static str,
        name: String,
        suggestions: Vec<String>,
    },

    /// A solver name is not registered for the family.
    #[error("unknown solver '{name}' for family '{family}'; available: {}", .available.join(", "))]
    UnknownSolver {
        family: String,
        name: String,
        available: Vec<String>,
    },

    /// A family tag is not known.
    #[error("unknown family '{name}'; available: {}", .available.join(", "))]
    UnknownFamily {
        name: String,
        available: Vec<String>,
    },

    /// The solver cannot handle this instance (e.g. an objective it does not support).
    #[error("solver '{solver}' does not apply: {reason}")]
    NotApplicable { solver: String, reason: String },

    /// A solver backend failed (HiGHS error, numerical trouble).
    #[error("solver error: {0}")]
    Solver(String),

    /// File system errors, with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// JSON that does not parse, with the JSON path where parsing stopped.
    #[error("invalid JSON at {path}: {message}")]
    Json { path: String, message: String },
}

fn suggestion_text(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", s.join(", "))
    }
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Wraps an I/O error with the path involved.
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    /// Prefixes the JSON path of an `Invalid`/`Json` error (used when a nested object is validated
    /// on its own and then placed inside a larger document).
    pub fn at(self, prefix: &str) -> Self {
        match self {
            Error::Invalid { path, message } => Error::Invalid {
                path: join_path(prefix, &path),
                message,
            },
            Error::Json { path, message } => Error::Json {
                path: join_path(prefix, &path),
                message,
            },
            Error::UnknownName {
                kind,
                name,
                suggestions,
            } => Error::Invalid {
                path: prefix.to_string(),
                message: format!("unknown {kind} '{name}'{}", suggestion_text(&suggestions)),
            },
            other => other,
        }
    }

    /// A short machine-readable kind, used by the CLI's JSON output and the Python exceptions.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Invalid { .. } | Error::Json { .. } | Error::UnknownName { .. } => {
                "invalid_instance"
            }
            Error::UnknownSolver { .. } | Error::UnknownFamily { .. } => "unknown_name",
            Error::NotApplicable { .. } => "not_applicable",
            Error::Solver(_) => "solver_error",
            Error::Io { .. } => "io_error",
        }
    }

    /// The JSON path of the offending field, when the error has one.
    pub fn json_path(&self) -> Option<&str> {
        match self {
            Error::Invalid { path, .. } | Error::Json { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn join_path(prefix: &str, path: &str) -> String {
    let rest = path.strip_prefix('$').unwrap_or(path);
    if rest.is_empty() {
        prefix.to_string()
    } else if rest.starts_with('.') || rest.starts_with('[') {
        format!("{prefix}{rest}")
    } else {
        format!("{prefix}.{rest}")
    }
}

/// Parses JSON into `T`, reporting the JSON path of the first field that does not fit.
pub fn from_json_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| Error::Json {
        path: format!("$.{}", e.path())
            .replace("$..", "$.")
            .replace(".[", "["),
        message: e.inner().to_string(),
    })
}

/// Parses JSON text into `T`, reporting the JSON path of the first field that does not fit.
pub fn from_json_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let p = e.path().to_string();
        Error::Json {
            path: if p == "." {
                "$".into()
            } else {
                format!("$.{p}").replace(".[", "[")
            },
            message: e.inner().to_string(),
        }
    })
}

/// Returns names from `candidates` close to `name` (case-insensitive Jaro-Winkler and substring).
pub fn close_matches<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let lname = name.to_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| {
            let lc = c.to_lowercase();
            let mut s = strsim::jaro_winkler(&lname, &lc);
            if !lname.is_empty() && (lc.contains(&lname) || lname.contains(&lc)) {
                s = s.max(0.9);
            }
            (s, c)
        })
        .filter(|(s, _)| *s >= 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(5)
        .map(|(_, c)| c.to_string())
        .collect()
}
