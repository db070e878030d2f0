//! The admin scripts shipped with the appliance, as examples that work on
//! real data. Their Rhai sources live in `builtin/*.rhai` and are compiled
//! into the binary.
//!
//! Owns: the list of built-in scripts. Must not touch: anything but the
//! script API; these scripts only call the functions of docs/API.md ("Script
//! API"), exactly like a script an admin writes.

/// One shipped script, in the shape of a saved script (`{name, description,
/// source}` in docs/API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinScript {
    pub name: &'static str,
    pub description: &'static str,
    pub source: &'static str,
}

/// The name of the built-in verification script, which the weekly
/// verification deployment runs (`deployments::seed_weekly_verification`).
pub const VERIFY_SCRIPT_NAME: &str = "verify remote copies";

const BUILTIN_SCRIPTS: &[BuiltinScript] = &[
    BuiltinScript {
        name: VERIFY_SCRIPT_NAME,
        description: "Checks every remote part of each backed-up or uncached archive, on \
                      every destination holding it whole, and downloads a sample (the \
                      verify_sample_percent setting) to check its hash. A bad part is \
                      stored again from the local copy if there is one, else from another \
                      destination's intact copy; otherwise the archive is marked damaged. \
                      Nothing is deleted.",
        source: include_str!("builtin/verify_remote_copies.rhai"),
    },
    BuiltinScript {
        name: "evict idle archives",
        description: "While free disk space is below a threshold, drops the local copy of \
                      backed-up archives nobody downloaded for a number of days, longest \
                      idle first. The remote copies stay.",
        source: include_str!("builtin/evict_idle_archives.rhai"),
    },
    BuiltinScript {
        name: "storage report",
        description: "Disk use, transfer totals, and archive counts and sizes by state and \
                      by owner. Changes nothing.",
        source: include_str!("builtin/storage_report.rhai"),
    },
    BuiltinScript {
        name: "retry failed transfers",
        description: "Re-queues failed uploads and downloads and lists the archives still \
                      waiting for a transfer or damaged.",
        source: include_str!("builtin/retry_failed_transfers.rhai"),
    },
];

/// The shipped scripts, in the order they are listed.
pub fn builtin_scripts() -> &'static [BuiltinScript] {
    BUILTIN_SCRIPTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::script::test_host::*;
    use crate::admin::script::{run, CancelToken, Limits, LogLevel, RunResult};
    use serde_json::json;
    use std::sync::Arc;

    fn source_of(name: &str) -> &'static str {
        builtin_scripts()
            .iter()
            .find(|script| script.name == name)
            .unwrap_or_else(|| panic!("no built-in script {name:?}"))
            .source
    }

    fn run_builtin(name: &str, host: &Arc<TestHost>) -> RunResult {
        let result = run(
            source_of(name),
            host.clone(),
            &Limits::default(),
            &CancelToken::new(),
        );
        assert!(result.ok, "{name}: {result:#?}");
        result
    }

    #[test]
    fn every_builtin_script_has_a_name_description_and_source() {
        let scripts = builtin_scripts();
        assert_eq!(scripts.len(), 4);
        for script in scripts {
            assert!(!script.name.is_empty());
            assert!(script.description.ends_with('.'), "{}", script.name);
            assert!(script.source.starts_with("// "), "{}", script.name);
        }
    }

    #[test]
    fn every_builtin_script_runs_on_an_empty_appliance() {
        for script in builtin_scripts() {
            let host = TestHost::new(TestHostState {
                disk_total: 1000,
                disk_free: 10,
                ..TestHostState::default()
            });
            let result = run(
                script.source,
                host.clone(),
                &Limits::default(),
                &CancelToken::new(),
            );
            assert!(result.ok, "{}: {result:#?}", script.name);
            let state = host.state();
            assert!(state.uncached.is_empty() && state.verified.is_empty());
        }
    }

    #[test]
    fn verify_checks_backed_up_and_uncached_archives_and_marks_damage() {
        let mut state = sample_state();
        state.damaged_parts.insert("b1".into(), 1);
        let host = TestHost::new(state);
        let result = run_builtin("verify remote copies", &host);
        assert_eq!(
            result.value,
            json!({
                "archives_checked": 3, "parts_checked": 12, "parts_ok": 11, "parts_damaged": 1,
                "damaged": ["b1"], "failed": [],
            })
        );
        assert_eq!(
            result.output,
            "ok      a1 photos (a1, alice): 4 parts\n\
             DAMAGED b1 photos (b1, bob): 1 of 4 parts failed\n\
             ok      b2 photos (b2, bob): 4 parts\n\
             3 archives checked, 1 damaged, 0 could not be checked.\n"
        );
        let state = host.state();
        assert_eq!(
            state.verified,
            vec![("a1".into(), 5), ("b1".into(), 5), ("b2".into(), 5)]
        );
        // Marked damaged by the host, never deleted or evicted.
        assert_eq!(state.archives.len(), 4);
        assert_eq!(state.archives[2].state, "damaged");
        assert!(state.uncached.is_empty());
        assert_eq!(
            state.logs,
            vec![
                (
                    LogLevel::Warn,
                    "verify: archive b1 (b1 photos) has 1 damaged parts".to_string()
                ),
                (
                    LogLevel::Info,
                    "verify: 3 archives checked, 1 damaged, 0 could not be checked. \
                     Parts: 12 checked, 11 ok, 1 damaged."
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn verify_goes_on_after_an_archive_that_cannot_be_checked() {
        let mut state = sample_state();
        // Claims to be backed up but has no remote parts: the host refuses.
        state.archives[0].parts_remote = 0;
        let host = TestHost::new(state);
        let result = run_builtin("verify remote copies", &host);
        assert_eq!(result.value["archives_checked"], json!(2));
        assert_eq!(result.value["failed"], json!(["a1"]));
        assert!(result.output.contains(
            "FAILED  a1 photos (a1, alice): verify(\"a1\") failed: archive a1 has no remote copy"
        ));
        assert_eq!(host.state().logs[0].0, LogLevel::Error);
    }

    /// Disk of 1000 bytes; idle: i1 (90 days, 100 bytes), i2 (60 days, 50
    /// bytes); recent: r1 (5 days); not backed up: l1 (local, 120 days), u1
    /// (uncached, 300 days).
    fn eviction_state(disk_free: u64) -> TestHostState {
        TestHostState {
            archives: vec![
                archive("r1", "alice", "backed_up", 400, 5),
                archive("i2", "bob", "backed_up", 50, 60),
                archive("l1", "alice", "local", 200, 120),
                archive("i1", "alice", "backed_up", 100, 90),
                archive("u1", "bob", "uncached", 300, 300),
            ],
            disk_total: 1000,
            disk_free,
            ..TestHostState::default()
        }
    }

    #[test]
    fn evict_uncaches_exactly_the_idle_backed_up_archives_when_disk_is_low() {
        // 5% free, threshold 20%: even both idle archives leave it below.
        let host = TestHost::new(eviction_state(50));
        let result = run_builtin("evict idle archives", &host);
        assert_eq!(
            result.value,
            json!({"free_percent": 5, "evicted": ["i1", "i2"], "bytes_freed": 150, "failed": []})
        );
        let state = host.state();
        assert_eq!(state.uncached, vec!["i1".to_string(), "i2".to_string()]);
        let states: Vec<&str> = state.archives.iter().map(|a| a.state.as_str()).collect();
        assert_eq!(
            states,
            vec!["backed_up", "uncached", "local", "uncached", "uncached"]
        );
        assert_eq!(state.logs.len(), 1);
    }

    #[test]
    fn evict_stops_once_enough_space_is_being_freed() {
        // 15% free: evicting i1 (longest idle, 100 bytes) reaches 25%.
        let host = TestHost::new(eviction_state(150));
        let result = run_builtin("evict idle archives", &host);
        assert_eq!(result.value["evicted"], json!(["i1"]));
        assert_eq!(host.state().uncached, vec!["i1".to_string()]);
    }

    #[test]
    fn evict_does_nothing_when_disk_is_not_low() {
        for disk_free in [200, 900] {
            let host = TestHost::new(eviction_state(disk_free));
            let result = run_builtin("evict idle archives", &host);
            assert_eq!(result.value["evicted"], json!([]));
            assert!(
                result.output.contains("nothing to evict"),
                "{}",
                result.output
            );
            let state = host.state();
            assert!(state.uncached.is_empty());
            assert!(state.logs.is_empty());
        }
    }

    #[test]
    fn storage_report_totals_by_state_and_owner() {
        let host = TestHost::new(sample_state());
        let result = run_builtin("storage report", &host);
        assert_eq!(
            result.value,
            json!({
                "disk_total": 1000, "disk_free": 500, "free_percent": 50,
                "queue_length": 3, "bytes_uploaded": 1000, "bytes_downloaded": 2000,
                "archives": 4, "archive_bytes": 475,
                "by_state": {
                    "backed_up": {"count": 2, "bytes": 125},
                    "local": {"count": 1, "bytes": 50},
                    "uncached": {"count": 1, "bytes": 300},
                },
                "by_owner": {
                    "alice": {"count": 2, "bytes": 150},
                    "bob": {"count": 2, "bytes": 325},
                },
            })
        );
        assert_eq!(
            result.output,
            "Disk: 500 B free of 1000 B (50%)\n\
             Archives: 4, 475 B\n\
             Transfers: 3 queued, 1000 B uploaded, 1.9 KiB downloaded\n\
             By state:\n  backed_up: 2 archives, 125 B\n  local: 1 archives, 50 B\n  \
             uncached: 1 archives, 300 B\n\
             By owner:\n  alice: 2 archives, 150 B\n  bob: 2 archives, 325 B\n"
        );
        let state = host.state();
        assert!(state.uncached.is_empty() && state.cached.is_empty() && state.logs.is_empty());
    }

    #[test]
    fn storage_report_uses_readable_units_and_odd_owner_names() {
        let mut state = sample_state();
        state.disk_total = 64 * 1024 * 1024 * 1024;
        state.archives[0].owner = "o'brien <&> 🎉".into();
        let host = TestHost::new(state);
        let result = run_builtin("storage report", &host);
        assert!(result.output.contains("of 64 GiB"), "{}", result.output);
        assert_eq!(
            result.value["by_owner"]["o'brien <&> 🎉"],
            json!({"count": 1, "bytes": 100})
        );
    }

    #[test]
    fn retry_requeues_and_lists_pending_archives() {
        let mut state = sample_state();
        state.failed_transfers = 3;
        state.archives[1].state = "uploading".into();
        let host = TestHost::new(state);
        let result = run_builtin("retry failed transfers", &host);
        assert_eq!(result.value, json!({"requeued": 3, "pending": ["a2"]}));
        assert_eq!(
            result.output,
            "Re-queued 3 failed transfers.\nuploading: a2 photos (a2, alice), 0 of 4 parts remote\n"
        );
        assert_eq!(host.state().failed_transfers, 0);

        let again = run_builtin("retry failed transfers", &host);
        assert_eq!(again.value["requeued"], json!(0));
        assert!(again.output.starts_with("No failed transfers.\n"));
    }
}
