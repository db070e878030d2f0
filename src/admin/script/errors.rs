//! The translation of every way a run can end into a sentence ([`ScriptFailure`]).

use std::time::Duration;

use rhai::{EvalAltResult, ParseErrorType, Position};
use thiserror::Error;

use super::{Limits, MIB, STOP_CANCELLED, STOP_MEMORY};

/// Every way a run can fail, one sentence each; becomes
/// [`ScriptError::message`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScriptFailure {
    #[error("Syntax error: {0}.")]
    Syntax(String),
    #[error("The script nests expressions deeper than {0} levels; split it into functions or variables.")]
    ExpressionTooDeep(usize),
    #[error("The script ran longer than the {} limit and was stopped.", format_duration(*.0))]
    Timeout(Duration),
    #[error("The script was cancelled.")]
    Cancelled,
    #[error("The script used more than {0} operations and was stopped.")]
    TooManyOperations(u64),
    #[error("The script nested calls deeper than {0} levels.")]
    CallsTooDeep(usize),
    #[error("The script built a string longer than {} (strings inside one array or map count together).", format_bytes(*.0))]
    StringTooLong(usize),
    #[error("The script built an array with more than {0} items (nested arrays count together).")]
    ArrayTooLarge(usize),
    #[error("The script built a map with more than {0} entries (nested maps count together).")]
    MapTooLarge(usize),
    #[error("The script used more than {} of memory and was stopped.", format_bytes(*.0))]
    TooMuchMemory(usize),
    #[error("The script defined too many variables.")]
    TooManyVariables,
    #[error("Scripts cannot import modules.")]
    ImportRefused,
    /// A `throw` in the script, or a host function refusing (e.g. `uncache`
    /// of an archive that is not backed up).
    #[error("{0}")]
    Thrown(String),
    /// Any other run-time error reported by Rhai (type mismatch, unknown
    /// function, index out of bounds, ...).
    #[error("{0}")]
    Runtime(String),
    #[error("The script engine failed: {0}. This is a bug in piarchive.")]
    EngineFailed(String),
}

fn format_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

fn format_bytes(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

pub(super) fn describe_parse_error(
    error: &ParseErrorType,
    position: Position,
    limits: &Limits,
) -> (ScriptFailure, Position) {
    let failure = match error {
        ParseErrorType::ExprTooDeep => ScriptFailure::ExpressionTooDeep(limits.max_expr_depth),
        ParseErrorType::Reserved(word) if word == "import" || word == "export" => {
            ScriptFailure::ImportRefused
        }
        other => ScriptFailure::Syntax(other.to_string()),
    };
    (failure, position)
}

pub(super) fn describe_eval_error(
    error: EvalAltResult,
    limits: &Limits,
) -> (ScriptFailure, Position) {
    use EvalAltResult as E;
    let position = error.position();
    let failure = match error {
        // An error inside a script function: report the innermost cause and
        // where it happened, falling back to the call site.
        E::ErrorInFunctionCall(_, _, inner, call_site) => {
            let (failure, inner_position) = describe_eval_error(*inner, limits);
            let position = if inner_position.is_none() {
                call_site
            } else {
                inner_position
            };
            return (failure, position);
        }
        E::ErrorParsing(parse_error, position) => {
            return describe_parse_error(&parse_error, position, limits)
        }
        E::ErrorTerminated(token, _) => match token.into_immutable_string().ok().as_deref() {
            Some(STOP_CANCELLED) => ScriptFailure::Cancelled,
            Some(STOP_MEMORY) => ScriptFailure::TooMuchMemory(limits.max_memory_bytes),
            _ => ScriptFailure::Timeout(limits.timeout),
        },
        E::ErrorTooManyOperations(_) => ScriptFailure::TooManyOperations(limits.max_operations),
        E::ErrorStackOverflow(_) => ScriptFailure::CallsTooDeep(limits.max_call_depth),
        E::ErrorDataTooLarge(kind, _) => {
            if kind.contains("string") {
                ScriptFailure::StringTooLong(limits.max_string_size)
            } else if kind.contains("array") {
                ScriptFailure::ArrayTooLarge(limits.max_array_size)
            } else {
                ScriptFailure::MapTooLarge(limits.max_map_size)
            }
        }
        E::ErrorTooManyVariables(_) => ScriptFailure::TooManyVariables,
        E::ErrorTooManyModules(_) | E::ErrorModuleNotFound(..) => ScriptFailure::ImportRefused,
        E::ErrorRuntime(value, _) => ScriptFailure::Thrown(value.to_string()),
        mut other => {
            // Rhai's own sentence, without the " (line 1, position 2)" suffix:
            // the position is reported separately.
            other.set_position(Position::NONE);
            ScriptFailure::Runtime(other.to_string())
        }
    };
    (failure, position)
}
