//! Saved scripts (table `scripts`): create, edit, delete, run, and the
//! built-in examples seeded on first start.
//!
//! Owns: the `scripts` table and the `builtin_scripts_seeded` meta key. Must
//! not touch: HTTP. A run happens on the script engine's own thread with no
//! lock or transaction held; its summary is stored afterwards.

use std::time::Duration;

use serde::Deserialize;

use super::log::Subject;
use super::script::{self, CancelToken, Limits, RunResult};
use super::Admin;
use crate::ids;
use crate::store::records::{RunSummary, ScriptRecord};
use crate::store::{Store, StoreError};

/// The longest a saved script may run, by "Run now" or as a deployment.
/// `verify` of a big archive takes minutes over a home uplink and a weekly
/// check of a full disk hours, so the 5 s of [`Limits::default`] (kept for
/// the develop page's test runs of unsaved source) would stop it after the
/// first archive. The operations and memory limits stay as they are.
pub const SAVED_RUN_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The limits of a "Run now" of a saved script.
pub fn saved_run_limits() -> Limits {
    Limits {
        timeout: SAVED_RUN_TIMEOUT,
        ..Limits::default()
    }
}

const SEEDED_KEY: &[u8] = b"builtin_scripts_seeded";
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_SOURCE_BYTES: usize = 48 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ScriptsError {
    #[error("No such script.")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("The script is used by {0} deployment(s); terminate them first.")]
    InUse(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The body of `POST /api/v1/admin/scripts` and `PUT .../{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptDraft {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub source: String,
}

impl ScriptDraft {
    fn validate(&self) -> Result<(), ScriptsError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(ScriptsError::Invalid("Give the script a title.".into()));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(ScriptsError::Invalid(format!(
                "The title is longer than {MAX_NAME_CHARS} characters."
            )));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ScriptsError::Invalid(format!(
                "The description is longer than {MAX_DESCRIPTION_CHARS} characters."
            )));
        }
        if self.source.len() > MAX_SOURCE_BYTES {
            return Err(ScriptsError::Invalid(format!(
                "The script is longer than {} KiB.",
                MAX_SOURCE_BYTES / 1024
            )));
        }
        Ok(())
    }
}

/// A one-line summary of a run for `last_run.message`.
pub fn summarize(result: &RunResult) -> String {
    let text = match &result.error {
        Some(error) => match (error.line, error.column) {
            (Some(line), Some(column)) => {
                format!("{} (line {line}, column {column})", error.message)
            }
            _ => error.message.clone(),
        },
        None => match &result.value {
            serde_json::Value::Null => result.output.lines().last().unwrap_or("").to_string(),
            value => value.to_string(),
        },
    };
    let text: String = text.chars().take(300).collect();
    if text.is_empty() {
        "done".into()
    } else {
        text
    }
}

pub fn list(store: &Store) -> Result<Vec<ScriptRecord>, ScriptsError> {
    let txn = store.read()?;
    let mut scripts: Vec<ScriptRecord> = store
        .tables
        .scripts
        .all(&txn)?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    scripts.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(scripts)
}

pub fn get(store: &Store, script_id: &str) -> Result<ScriptRecord, ScriptsError> {
    if !ids::is_valid_id(script_id) {
        return Err(ScriptsError::NotFound);
    }
    let txn = store.read()?;
    store
        .tables
        .scripts
        .get(&txn, script_id.as_bytes())?
        .ok_or(ScriptsError::NotFound)
}

pub fn create(store: &Store, draft: &ScriptDraft) -> Result<ScriptRecord, ScriptsError> {
    draft.validate()?;
    let now = ids::now_secs();
    let record = ScriptRecord {
        id: ids::random_id(),
        name: draft.name.trim().to_string(),
        description: draft.description.trim().to_string(),
        source: draft.source.clone(),
        created_at: now,
        updated_at: now,
        last_run: None,
    };
    store.write(|txn, tables| -> Result<(), ScriptsError> {
        tables.scripts.put(txn, record.id.as_bytes(), &record)?;
        Ok(())
    })?;
    Ok(record)
}

pub fn update(
    store: &Store,
    script_id: &str,
    draft: &ScriptDraft,
) -> Result<ScriptRecord, ScriptsError> {
    draft.validate()?;
    get(store, script_id)?;
    store.write(|txn, tables| {
        let mut record = tables
            .scripts
            .get(txn, script_id.as_bytes())?
            .ok_or(ScriptsError::NotFound)?;
        record.name = draft.name.trim().to_string();
        record.description = draft.description.trim().to_string();
        record.source = draft.source.clone();
        record.updated_at = ids::now_secs();
        tables.scripts.put(txn, script_id.as_bytes(), &record)?;
        Ok(record)
    })
}

pub fn delete(store: &Store, script_id: &str) -> Result<ScriptRecord, ScriptsError> {
    let record = get(store, script_id)?;
    store.write(|txn, tables| {
        let users = tables
            .deployments
            .all(txn)?
            .into_iter()
            .filter(|(_, d)| d.script_id == script_id)
            .count();
        if users > 0 {
            return Err(ScriptsError::InUse(users));
        }
        tables.scripts.delete(txn, script_id.as_bytes())?;
        Ok(())
    })?;
    Ok(record)
}

/// Stores the summary of a run as the script's `last_run` (if it still
/// exists).
pub fn record_run(
    store: &Store,
    script_id: &str,
    summary: &RunSummary,
) -> Result<(), ScriptsError> {
    store.write(|txn, tables| -> Result<(), ScriptsError> {
        if let Some(mut record) = tables.scripts.get(txn, script_id.as_bytes())? {
            record.last_run = Some(summary.clone());
            tables.scripts.put(txn, script_id.as_bytes(), &record)?;
        }
        Ok(())
    })
}

/// Adds the built-in scripts once, on the first start; an admin who deletes
/// them does not get them back.
pub fn seed_builtins(store: &Store) -> Result<(), ScriptsError> {
    let seeded = {
        let txn = store.read()?;
        store.tables.meta.get(&txn, SEEDED_KEY)?.is_some()
    };
    if seeded {
        return Ok(());
    }
    let now = ids::now_secs();
    store.write(|txn, tables| -> Result<(), ScriptsError> {
        for (order, builtin) in super::builtin::builtin_scripts().iter().enumerate() {
            let record = ScriptRecord {
                id: ids::random_id(),
                name: builtin.name.to_string(),
                description: builtin.description.to_string(),
                source: builtin.source.to_string(),
                // Keeps the shipped order in the list (sorted by creation).
                created_at: now - (4 - order as i64),
                updated_at: now,
                last_run: None,
            };
            tables.scripts.put(txn, record.id.as_bytes(), &record)?;
        }
        tables.meta.put(txn, SEEDED_KEY, &serde_json::json!(true))?;
        Ok(())
    })
}

impl Admin {
    /// Runs source that is not saved (the develop page's "Test run").
    pub fn run_source(&self, source: &str, user_id: &str) -> RunResult {
        let result = script::run(
            source,
            self.host("test run", Some(user_id)),
            &Limits::default(),
            &CancelToken::new(),
        );
        self.log_run("test run", "Test run", &result, Subject::user(user_id));
        result
    }

    /// Runs a saved script now and stores its `last_run`.
    pub fn run_saved(&self, script_id: &str, user_id: &str) -> Result<RunResult, ScriptsError> {
        let record = get(&self.store, script_id)?;
        let started_at = ids::now_secs();
        let result = script::run(
            &record.source,
            self.host(&record.name, Some(user_id)),
            &saved_run_limits(),
            &CancelToken::new(),
        );
        record_run(&self.store, script_id, &summary_of(started_at, &result))?;
        self.log_run(&record.name, "Run", &result, Subject::user(user_id));
        Ok(result)
    }

    pub(crate) fn log_run(
        &self,
        script_name: &str,
        what: &str,
        result: &RunResult,
        subject: Subject,
    ) {
        let source = format!("script:{script_name}");
        if result.ok {
            self.log.info(
                &source,
                &format!("{what} finished in {} ms.", result.duration_ms),
                subject,
            );
        } else {
            self.log.error(
                &source,
                &format!(
                    "{what} failed after {} ms: {}",
                    result.duration_ms,
                    summarize(result)
                ),
                subject,
            );
        }
    }
}

pub fn summary_of(started_at: i64, result: &RunResult) -> RunSummary {
    RunSummary {
        at: started_at,
        ok: result.ok,
        duration_ms: result.duration_ms,
        message: summarize(result),
    }
}
