use super::test_host::*;
use super::*;
use serde_json::json;

fn run_with(source: &str, host: Arc<TestHost>, limits: &Limits) -> RunResult {
    run(source, host, limits, &CancelToken::new())
}

fn run_sample(source: &str) -> (RunResult, Arc<TestHost>) {
    let host = TestHost::new(sample_state());
    let result = run_with(source, host.clone(), &Limits::default());
    (result, host)
}

/// Small limits so that every sandbox test ends in well under a second.
fn tight_limits() -> Limits {
    Limits {
        max_operations: 200_000,
        max_call_depth: 16,
        max_expr_depth: 32,
        max_string_size: 64 * 1024,
        max_array_size: 1_000,
        max_map_size: 1_000,
        timeout: Duration::from_secs(2),
        max_output_bytes: 1024,
        max_memory_bytes: 8 * MIB,
    }
}

enum Expect {
    Value(serde_json::Value),
    /// Value and output.
    Printed(serde_json::Value, &'static str),
    /// Message (exact), line, column.
    Error(&'static str, usize, usize),
    /// Message starts with, line, column.
    ErrorStarting(&'static str, usize, usize),
}

fn check(cases: &[(&str, Expect)]) {
    for (source, expect) in cases {
        let (result, _host) = run_sample(source);
        let context = format!("source: {source}\nresult: {result:#?}");
        match expect {
            Expect::Value(value) => {
                assert!(result.ok, "{context}");
                assert_eq!(&result.value, value, "{context}");
                assert_eq!(result.error, None, "{context}");
            }
            Expect::Printed(value, output) => {
                assert!(result.ok, "{context}");
                assert_eq!(&result.value, value, "{context}");
                assert_eq!(result.output, *output, "{context}");
            }
            Expect::Error(message, line, column) => {
                assert!(!result.ok, "{context}");
                assert_eq!(result.value, serde_json::Value::Null, "{context}");
                let error = result.error.as_ref().expect(&context);
                assert_eq!(error.message, *message, "{context}");
                assert_eq!(
                    (error.line, error.column),
                    (Some(*line), Some(*column)),
                    "{context}"
                );
            }
            Expect::ErrorStarting(prefix, line, column) => {
                assert!(!result.ok, "{context}");
                let error = result.error.as_ref().expect(&context);
                assert!(error.message.starts_with(prefix), "{context}");
                assert_eq!(
                    (error.line, error.column),
                    (Some(*line), Some(*column)),
                    "{context}"
                );
            }
        }
    }
}

#[test]
fn values_and_output() {
    use Expect::*;
    check(&[
        ("1 + 2", Value(json!(3))),
        ("", Value(json!(null))),
        ("let x = 1;", Value(json!(null))),
        ("\"héllo <&> 🎉\"", Value(json!("héllo <&> 🎉"))),
        (
            "[1, \"two\", 3.5, true, ()]",
            Value(json!([1, "two", 3.5, true, null])),
        ),
        (
            "#{a: 1, b: #{c: [2]}}",
            Value(json!({"a": 1, "b": {"c": [2]}})),
        ),
        ("print(\"hi\"); print(42); 7", Printed(json!(7), "hi\n42\n")),
        (
            "debug(\"x\"); ()",
            Printed(json!(null), "[debug line 1] \"x\"\n"),
        ),
        ("fn double(x) { x * 2 } double(21)", Value(json!(42))),
        ("exit(5); 6", Value(json!(5))),
        (
            "let r = (); try { throw \"no\" } catch (e) { r = `caught ${e}` } r",
            Value(json!("caught no")),
        ),
    ]);
}

#[test]
fn script_api() {
    use Expect::*;
    check(&[
        ("archives().len()", Value(json!(4))),
        (
            "archives().map(|a| a.id)",
            Value(json!(["a1", "a2", "b1", "b2"])),
        ),
        (
            "archive(\"b1\")",
            Value(json!({
                "id": "b1", "owner": "bob", "name": "b1 photos", "filename": "b1.tar",
                "size": 300, "state": "uncached", "parts_total": 4, "parts_remote": 4,
                "created_at": NOW - 400 * DAY, "last_accessed_at": NOW - 200 * DAY,
            })),
        ),
        ("archive(\"nope\")", Value(json!(null))),
        (
            "stats()",
            Value(json!({
                "disk_total": 1000, "disk_free": 500, "queue_length": 3,
                "bytes_uploaded": 1000, "bytes_downloaded": 2000, "archives": 4,
                "stored_bytes": 400, "bytes_saved": 75,
                "archives_off_site": 0, "placement": "same_disk",
            })),
        ),
        ("now()", Value(json!(NOW))),
        ("uncache(\"a1\")", Value(json!(true))),
        ("cache(\"b1\")", Value(json!(true))),
        (
            "verify(\"a1\", 10)",
            Value(json!({"checked": 4, "ok": 4, "damaged": 0})),
        ),
        (
            "verify(\"a1\")",
            Value(json!({"checked": 4, "ok": 4, "damaged": 0})),
        ),
        ("retry_failed()", Value(json!(0))),
        ("log(\"info\", \"hello\")", Value(json!(null))),
        (
            "let r = \"\"; try { uncache(\"a2\") } catch (e) { r = e } r",
            Value(json!(
                "uncache(\"a2\") refused: archive a2 is not backed up (it is local)"
            )),
        ),
        (
            "\n  cache(\"a1\")",
            Error(
                "cache(\"a1\") refused: archive a1 is not uncached (it is backed_up)",
                2,
                3,
            ),
        ),
        (
            "verify(\"a1\", 101)",
            Error("verify(\"a1\", 101): the percentage must be 0 to 100", 1, 1),
        ),
        (
            "verify(\"a2\", 5)",
            Error("verify(\"a2\") failed: archive a2 has no remote copy", 1, 1),
        ),
        (
            "log(\"loud\", \"x\")",
            Error(
                "log: unknown level \"loud\"; use debug, info, warn or error",
                1,
                1,
            ),
        ),
    ]);
}

#[test]
fn syntax_and_runtime_errors_have_positions() {
    use Expect::*;
    check(&[
        ("let x = ;", ErrorStarting("Syntax error: ", 1, 9)),
        (
            "let a = 1;\nlet b = (a + ;\n",
            ErrorStarting("Syntax error: ", 2, 14),
        ),
        (
            "print(\"unterminated)",
            ErrorStarting("Syntax error: ", 1, 7),
        ),
        (
            "undefined_variable + 1",
            ErrorStarting("Syntax error: ", 1, 1),
        ),
        ("let x = 1;\n\n    throw \"boom\";", Error("boom", 3, 5)),
        (
            "let a = [1, 2];\na[5]",
            ErrorStarting("Array index 5 out of bounds", 2, 3),
        ),
        (
            "1 + \"x\" * 2",
            ErrorStarting("Function not found: *", 1, 9),
        ),
        (
            "no_such_fn(1)",
            ErrorStarting("Function not found: no_such_fn", 1, 1),
        ),
        (
            "fn inner() { throw \"deep\" }\nfn outer() { inner() }\nouter()",
            Error("deep", 1, 14),
        ),
        (
            "archive(42)",
            ErrorStarting("Function not found: archive (i64)", 1, 1),
        ),
    ]);
}

#[test]
fn import_and_eval_are_refused() {
    use Expect::*;
    check(&[
        (
            "import \"x\" as x; 1",
            Error("Scripts cannot import modules.", 1, 1),
        ),
        ("eval(\"1\")", ErrorStarting("Syntax error: ", 1, 1)),
        (
            "let f = Fn(\"eval\"); f.call(\"1\")",
            Error("Syntax error: 'eval' is a reserved keyword.", 1, 12),
        ),
        (
            "call(Fn(\"eval\"), \"1\")",
            Error("Syntax error: 'eval' is a reserved keyword.", 1, 9),
        ),
        (
            "let name = \"ev\" + \"al\";\nlet f = Fn(name); f.call(\"1\")",
            Error("Syntax error: 'eval' is a reserved keyword.", 2, 12),
        ),
        // No clock but the host's `now()`.
        (
            "timestamp()",
            Error("Function not found: timestamp ()", 1, 1),
        ),
    ]);
}

#[test]
fn uncache_of_an_archive_not_backed_up_throws_and_evicts_nothing() {
    let host = TestHost::new(sample_state());
    let result = run_with(
        "uncache(\"a2\");\nprint(\"after\");",
        host.clone(),
        &tight_limits(),
    );
    assert!(!result.ok);
    let error = result.error.unwrap();
    assert_eq!(
        error.message,
        "uncache(\"a2\") refused: archive a2 is not backed up (it is local)"
    );
    assert_eq!((error.line, error.column), (Some(1), Some(1)));
    assert_eq!(result.output, "");
    let state = host.state();
    assert!(state.uncached.is_empty());
    assert_eq!(state.archives[1].state, "local");
}

fn assert_stopped(source: &str, limits: &Limits, message: &str) -> RunResult {
    let host = TestHost::new(sample_state());
    let started = Instant::now();
    let result = run_with(source, host, limits);
    let elapsed = started.elapsed();
    assert!(!result.ok, "{source}: {result:#?}");
    assert_eq!(result.error.as_ref().unwrap().message, message, "{source}");
    assert!(
        elapsed < limits.timeout + Duration::from_secs(1),
        "{source} took {elapsed:?}"
    );
    result
}

#[test]
fn endless_loop_is_stopped_by_the_operation_limit() {
    assert_stopped(
        "loop {}",
        &tight_limits(),
        "The script used more than 200000 operations and was stopped.",
    );
}

#[test]
fn endless_loop_is_stopped_by_the_timeout() {
    let limits = Limits {
        max_operations: 0, // unlimited: only the clock stops it
        timeout: Duration::from_millis(300),
        ..tight_limits()
    };
    let started = Instant::now();
    let result = assert_stopped(
        "let i = 0;\nloop { i += 1; }",
        &limits,
        "The script ran longer than the 300 ms limit and was stopped.",
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(result.duration_ms >= 300, "{}", result.duration_ms);
    assert_eq!(result.error.unwrap().line, Some(2));
}

#[test]
fn timeout_message_in_seconds() {
    assert_eq!(
        ScriptFailure::Timeout(Duration::from_secs(5)).to_string(),
        "The script ran longer than the 5 s limit and was stopped."
    );
    assert_eq!(
        ScriptFailure::StringTooLong(MIB).to_string(),
        "The script built a string longer than 1 MiB (strings inside one array or map count together)."
    );
}

#[test]
fn deep_recursion_is_stopped() {
    let result = assert_stopped(
        "fn down(n) { down(n + 1) }\ndown(0)",
        &tight_limits(),
        "The script nested calls deeper than 16 levels.",
    );
    // Reported at the outermost call.
    assert_eq!(result.error.unwrap().line, Some(2));
}

#[test]
fn recursion_at_the_default_depth_limit_with_deep_expressions_does_not_crash() {
    // 32 levels, each holding a 25-deep expression: the limits stop it,
    // not the thread's stack.
    let mut expression = String::from("down(n + 1)");
    for _ in 0..25 {
        expression = format!("(1 + {expression})");
    }
    let source = format!("fn down(n) {{ {expression} }}\ndown(0)");
    let limits = Limits::default();
    assert_stopped(
        &source,
        &limits,
        "The script nested calls deeper than 32 levels.",
    );
}

#[test]
fn exploding_string_is_stopped() {
    assert_stopped(
        "let s = \"x\"; loop { s += s; }",
        &tight_limits(),
        "The script built a string longer than 64 KiB (strings inside one array or map count together).",
    );
}

#[test]
fn exploding_string_is_stopped_at_the_default_limit() {
    let limits = Limits {
        max_string_size: MIB,
        ..Limits::default()
    };
    assert_stopped(
        "let s = \"x\"; loop { s += s; }",
        &limits,
        "The script built a string longer than 1 MiB (strings inside one array or map count together).",
    );
}

#[test]
fn big_arrays_and_maps_are_stopped() {
    let limits = tight_limits();
    assert_stopped(
        "let a = []; loop { a.push(1); }",
        &limits,
        "The script built an array with more than 1000 items (nested arrays count together).",
    );
    assert_stopped(
        "let a = [1]; loop { a += a; }",
        &limits,
        "The script built an array with more than 1000 items (nested arrays count together).",
    );
    assert_stopped(
        "let m = #{}; loop { m += #{}; m[`k${m.len()}`] = 1; }",
        &limits,
        "The script built a map with more than 1000 entries (nested maps count together).",
    );
    assert_stopped(
        "let a = []; let s = \"x\"; s.pad(1024, \"y\"); loop { a.push(s); }",
        &limits,
        "The script built a string longer than 64 KiB (strings inside one array or map count together).",
    );
}

#[test]
fn deeply_nested_expression_is_refused_when_compiled() {
    let source = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    let result = assert_stopped(
        &source,
        &tight_limits(),
        "The script nests expressions deeper than 32 levels; split it into functions or variables.",
    );
    assert!(result.error.unwrap().line.is_some());
}

#[test]
fn output_is_capped() {
    let host = TestHost::new(sample_state());
    let result = run_with(
        "for i in 0..1000 { print(\"line of output\"); } 1",
        host,
        &tight_limits(),
    );
    assert!(result.ok, "{result:#?}");
    let kept = result
        .output
        .strip_suffix(TRUNCATED_MARK)
        .expect("the output ends with the truncation mark");
    assert!(kept.len() <= 1024 && kept.len() > 1000, "{}", kept.len());
    assert!(kept.starts_with("line of output\n"));
    assert!(kept.ends_with('\n'));
}

#[test]
fn output_truncation_keeps_whole_characters() {
    for max_bytes in 0..12 {
        let mut buffer = OutputBuffer::new(max_bytes);
        buffer.push_line("ab");
        buffer.push_line("🎉🎉🎉");
        buffer.push_line("never");
        let kept = buffer.text.strip_suffix(TRUNCATED_MARK).unwrap();
        assert!(kept.len() <= max_bytes, "{max_bytes}: {kept:?}");
        assert!(!kept.contains("never"));
    }
}

#[test]
fn memory_is_limited_where_rhai_does_not_check_sizes() {
    assert!(memory_limit_enforced());
    let limits = tight_limits();
    // A map grown by index assignment is not size-checked by Rhai.
    assert_stopped(
        "let s = \"x\"; s.pad(1024, \"y\");\n\
         let m = #{}; let i = 0; loop { m[`k${i}`] = s + i; i += 1; }",
        &limits,
        "The script used more than 8 MiB of memory and was stopped.",
    );
    // Nor an array whose items are replaced by big strings.
    assert_stopped(
        "let s = \"0123456789abcdef\"; while s.len() < 30000 { s += s; }\n\
         let a = []; a.pad(900, ());\n\
         let i = 0; loop { a[i % 900] = s + i; i += 1; }",
        &limits,
        "The script used more than 8 MiB of memory and was stopped.",
    );
}

#[test]
fn memory_freed_by_the_script_is_not_held_against_it() {
    let host = TestHost::new(sample_state());
    // 40 rounds of a 1 MiB map that is dropped each time: 40 MiB in all.
    let result = run_with(
        "let s = \"x\"; s.pad(102400, \"y\");\n\
         for round in 0..40 { let m = #{}; for i in 0..10 { m[`k${i}`] = s + i; } }\n\
         \"done\"",
        host,
        &Limits {
            max_string_size: MIB,
            ..tight_limits()
        },
    );
    assert!(result.ok, "{result:#?}");
}

#[test]
fn output_before_an_error_is_kept() {
    let (result, _host) = run_sample("print(\"first\");\nthrow \"second\";");
    assert!(!result.ok);
    assert_eq!(result.output, "first\n");
}

#[test]
fn external_cancel_stops_a_running_script_quickly() {
    let host = TestHost::new(sample_state());
    let started_events = host.log_events();
    let limits = Limits {
        max_operations: 0,
        timeout: Duration::from_secs(60),
        ..tight_limits()
    };
    let cancel = CancelToken::new();
    let runner = {
        let cancel = cancel.clone();
        let host = host.clone();
        std::thread::spawn(move || {
            run(
                "log(\"info\", \"started\");\nloop {}",
                host,
                &limits,
                &cancel,
            )
        })
    };
    let event = started_events
        .recv_timeout(Duration::from_secs(10))
        .expect("the script never started");
    assert_eq!(event, "started");
    let cancelled_at = Instant::now();
    cancel.cancel();
    let result = runner.join().unwrap();
    let stop_latency = cancelled_at.elapsed();
    assert!(!result.ok);
    let error = result.error.unwrap();
    assert_eq!(error.message, "The script was cancelled.");
    assert_eq!(error.line, Some(2));
    assert!(stop_latency < Duration::from_secs(1), "{stop_latency:?}");
}

#[test]
fn a_panicking_host_does_not_take_the_caller_down() {
    struct PanickingHost;
    impl ScriptHost for PanickingHost {
        fn archives(&self) -> Vec<ArchiveView> {
            panic!("store unavailable")
        }
        fn archive(&self, _: &str) -> Option<ArchiveView> {
            None
        }
        fn stats(&self) -> Stats {
            Stats {
                disk_total: 0,
                disk_free: 0,
                queue_length: 0,
                bytes_uploaded: 0,
                bytes_downloaded: 0,
                stored_bytes: 0,
                bytes_saved: 0,
                archives: 0,
                ..Stats::default()
            }
        }
        fn uncache(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn cache(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn verify(&self, _: &str, _: u8) -> Result<VerifyReport, String> {
            Ok(VerifyReport::default())
        }
        fn retry_failed(&self) -> Result<u64, String> {
            Ok(0)
        }
        fn log(&self, _: LogLevel, _: &str) {}
        fn now(&self) -> i64 {
            0
        }
    }
    let result = run(
        "archives()",
        Arc::new(PanickingHost),
        &tight_limits(),
        &CancelToken::new(),
    );
    assert!(!result.ok);
    assert_eq!(
        result.error.unwrap().message,
        "The script engine failed: store unavailable. This is a bug in piarchive."
    );
}

#[test]
fn sleep_is_refused_with_a_sentence_and_never_panics() {
    let refused = "Scripts cannot sleep; a deployment's interval decides when it runs again.";
    for source in [
        "sleep(9223372036)",
        "sleep(1e30)",
        "sleep(-1)",
        "sleep(0.5)",
        "let f = Fn(\"sleep\"); f.call(9223372036)",
        "call(Fn(\"sleep\"), 1e300)",
    ] {
        let started = Instant::now();
        let result = run_with(source, TestHost::new(sample_state()), &tight_limits());
        assert!(!result.ok, "{source}: {result:#?}");
        assert_eq!(result.error.unwrap().message, refused, "{source}");
        assert!(started.elapsed() < Duration::from_secs(1), "{source}");
    }
}

#[test]
fn a_host_call_that_never_returns_still_ends_the_run_after_its_limit() {
    struct StuckHost(Mutex<std::sync::mpsc::Receiver<()>>);
    impl ScriptHost for StuckHost {
        fn archives(&self) -> Vec<ArchiveView> {
            let _ = self.0.lock().unwrap().recv();
            Vec::new()
        }
        fn archive(&self, _: &str) -> Option<ArchiveView> {
            None
        }
        fn stats(&self) -> Stats {
            Stats {
                disk_total: 0,
                disk_free: 0,
                queue_length: 0,
                bytes_uploaded: 0,
                bytes_downloaded: 0,
                archives: 0,
                stored_bytes: 0,
                bytes_saved: 0,
                ..Stats::default()
            }
        }
        fn uncache(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn cache(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn verify(&self, _: &str, _: u8) -> Result<VerifyReport, String> {
            Ok(VerifyReport::default())
        }
        fn retry_failed(&self) -> Result<u64, String> {
            Ok(0)
        }
        fn log(&self, _: LogLevel, _: &str) {}
        fn now(&self) -> i64 {
            0
        }
    }
    let (release, stuck) = std::sync::mpsc::channel();
    let limits = Limits {
        timeout: Duration::from_millis(100),
        ..tight_limits()
    };
    let started = Instant::now();
    let result = run(
        "archives()",
        Arc::new(StuckHost(Mutex::new(stuck))),
        &limits,
        &CancelToken::new(),
    );
    let elapsed = started.elapsed();
    let _ = release.send(());
    assert!(!result.ok);
    assert_eq!(
        result.error.unwrap().message,
        "The script ran longer than the 100 ms limit and was stopped."
    );
    assert!(elapsed < limits.timeout + OVERRUN_GRACE + Duration::from_secs(1));
}

#[test]
fn run_result_has_the_api_json_shape() {
    let (ok, _) = run_sample("print(\"a\"); [1]");
    let json = serde_json::to_value(&ok).unwrap();
    assert_eq!(json["ok"], json!(true));
    assert_eq!(json["output"], json!("a\n"));
    assert_eq!(json["value"], json!([1]));
    assert_eq!(json["error"], json!(null));
    assert!(json["duration_ms"].is_u64());
    assert_eq!(json.as_object().unwrap().len(), 5);

    let (failed, _) = run_sample("\n  throw \"x\"");
    let json = serde_json::to_value(&failed).unwrap();
    assert_eq!(json["ok"], json!(false));
    assert_eq!(json["value"], json!(null));
    assert_eq!(
        json["error"],
        json!({"message": "x", "line": 2, "column": 3})
    );
}

#[test]
fn host_log_receives_level_and_message() {
    let (result, host) = run_sample("log(\"warn\", \"disk <&> 🎉\"); log(\"error\", 42);");
    assert!(result.ok, "{result:#?}");
    assert_eq!(
        host.state().logs,
        vec![
            (LogLevel::Warn, "disk <&> 🎉".to_string()),
            (LogLevel::Error, "42".to_string())
        ]
    );
}
