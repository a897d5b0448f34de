//! The verdicts: a parsed [`Setup`] judged against the known child-segfault recipe of 2.4.27+,
//! ingredient by ingredient (version, threaded MPM, mod_php, http2 + ssl, `Protocols ... h2`,
//! no `H2MaxWorkers` stopgap), and the overall [`Verdict`]. An ingredient Apache's answers do
//! not settle (no module list, an unreadable configuration file) is [`Presence::Unknown`],
//! never guessed; rendering the result is [`super::report`]'s.

use super::parse::{Location, Setup};
use serde::Serialize;

/// The first version with the crash recipe (mod_http2 stopped working under prefork).
pub const FIRST_AFFECTED: (u32, u32, u32) = (2, 4, 27);
/// The highest `H2MaxWorkers` that is the stopgap: one HTTP/2 worker thread runs PHP at a time.
pub const STOPGAP_MAX_WORKERS: u32 = 1;

/// Whether one ingredient of the recipe is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// The ingredient is there.
    Yes,
    /// It is not.
    No,
    /// Apache's output did not say.
    Unknown,
}

impl From<Option<bool>> for Presence {
    /// `Some(present)` when Apache's answers settle it, `None` when they do not.
    fn from(known: Option<bool>) -> Self {
        match known {
            Some(true) => Presence::Yes,
            Some(false) => Presence::No,
            None => Presence::Unknown,
        }
    }
}

/// One ingredient of the recipe and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is checked, in words.
    pub ingredient: &'static str,
    /// Whether it is present.
    pub present: Presence,
    /// What was found (a version, a module, a file:line).
    pub found: String,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every ingredient is there: expect child segfaults under HTTP/2 load.
    Recipe,
    /// Every ingredient but `H2MaxWorkers` is there: the stopgap is in place.
    Mitigated,
    /// At least one ingredient is missing.
    NoRecipe,
}

/// What the doctor found, ingredient by ingredient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// What the server runs (serialized inline, beside the checks).
    #[serde(flatten)]
    pub setup: Setup,
    /// The recipe's ingredients in order, the stopgap last.
    pub checks: Vec<Check>,
    /// The verdict.
    pub verdict: Verdict,
}

impl Diagnosis {
    /// True when every ingredient of the crash recipe is present.
    pub fn matches_recipe(&self) -> bool {
        self.verdict == Verdict::Recipe
    }
}

/// Judges `setup` against the recipe.
pub fn judge(setup: Setup) -> Diagnosis {
    let known_modules = !setup.modules.is_empty();
    let files_known = !setup.files.is_empty() && setup.unreadable.is_empty();
    let php = setup.php_modules();
    let h2 = &setup.protocols_h2;
    let ingredients = [
        Check {
            ingredient: "Apache 2.4.27 or later",
            present: setup.version.map(|v| v >= FIRST_AFFECTED).into(),
            found: setup
                .server_version
                .clone()
                .unwrap_or_else(|| "version not reported".into()),
        },
        Check {
            ingredient: "worker or event MPM",
            present: setup
                .mpm
                .as_deref()
                .map(|m| matches!(m, "worker" | "event"))
                .into(),
            found: setup
                .mpm
                .clone()
                .unwrap_or_else(|| "MPM not reported".into()),
        },
        Check {
            ingredient: "a php*_module loaded (mod_php)",
            present: known_modules.then_some(!php.is_empty()).into(),
            found: if php.is_empty() {
                "no php module".into()
            } else {
                php.join(", ")
            },
        },
        Check {
            ingredient: "http2_module loaded",
            present: known_modules
                .then_some(setup.has_module("http2_module"))
                .into(),
            found: String::new(),
        },
        Check {
            ingredient: "ssl_module loaded",
            present: known_modules
                .then_some(setup.has_module("ssl_module"))
                .into(),
            found: String::new(),
        },
        // A directive found is there even when another file could not be read.
        Check {
            ingredient: "`Protocols ... h2` in the configuration",
            present: (files_known || !h2.is_empty())
                .then_some(!h2.is_empty())
                .into(),
            found: h2.first().map(ToString::to_string).unwrap_or_default(),
        },
    ];
    let stopgap = stopgap_check(&setup.h2_max_workers, files_known);
    let verdict = verdict_of(&ingredients, &stopgap);
    let mut checks = ingredients.to_vec();
    checks.push(stopgap);
    Diagnosis {
        setup,
        checks,
        verdict,
    }
}

/// The verdict from the ingredients and the stopgap check: the recipe needs every ingredient;
/// then the stopgap found (its check `No`) mitigates it, and an unknown stopgap does not.
fn verdict_of(ingredients: &[Check], stopgap: &Check) -> Verdict {
    if !ingredients.iter().all(|c| c.present == Presence::Yes) {
        Verdict::NoRecipe
    } else if stopgap.present == Presence::No {
        Verdict::Mitigated
    } else {
        Verdict::Recipe
    }
}

/// The value of an `H2MaxWorkers` directive, `None` when it is not a number.
fn workers_value(l: &Location) -> Option<u32> {
    l.text.split_whitespace().nth(1)?.parse().ok()
}

/// The last ingredient: no `H2MaxWorkers` stopgap. The last directive read is the one in
/// force; it is the stopgap only with a value of at most [`STOPGAP_MAX_WORKERS`].
fn stopgap_check(h2_max_workers: &[Location], files_known: bool) -> Check {
    let ingredient = "no `H2MaxWorkers` stopgap (H2MaxWorkers 1)";
    let Some(last) = h2_max_workers.last() else {
        return Check {
            ingredient,
            present: files_known.then_some(true).into(),
            found: "H2MaxWorkers not set".into(),
        };
    };
    let (present, judged) = match workers_value(last) {
        Some(n) if n <= STOPGAP_MAX_WORKERS => (Presence::No, "the stopgap".to_string()),
        Some(n) => (
            Presence::Yes,
            format!(
                "{n} is no stopgap: PHP still runs in up to {n} HTTP/2 threads at once; \
                 the stopgap is H2MaxWorkers {STOPGAP_MAX_WORKERS}"
            ),
        ),
        None => (
            Presence::Yes,
            "not a number, so no stopgap (Apache refuses it at start)".to_string(),
        ),
    };
    Check {
        ingredient,
        present,
        found: format!("{last} ({judged})"),
    }
}

#[cfg(test)]
mod tests;
