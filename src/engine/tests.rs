use super::*;

impl Inner {
    /// Runs every due job of the queue, one at a time, until none is left
    /// (the engine's unit tests drive jobs without worker threads).
    pub(super) fn run_due(&self) {
        while let Some(job) = self.lease() {
            let id = job.id.clone();
            self.run(job);
            lock(&self.leased).remove(&id);
        }
    }
}

/// `len` bytes that do not compress (xorshift from `state`).
pub(super) fn noise(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn backoff_grows_and_is_capped() {
    assert_eq!(backoff_secs(1, 0.5), 1);
    assert_eq!(backoff_secs(2, 0.5), 2);
    assert_eq!(backoff_secs(5, 0.5), 16);
    assert_eq!(backoff_secs(40, 0.5), 300);
    assert!(backoff_secs(40, 0.0) >= 225 && backoff_secs(40, 1.0) <= 375);
}

#[test]
fn upload_windows() {
    for (start, end, minute, expected) in [
        (60, 120, 90, true),
        (60, 120, 120, false),
        (60, 120, 30, false),
        (22 * 60, 6 * 60, 23 * 60, true),
        (22 * 60, 6 * 60, 5 * 60, true),
        (22 * 60, 6 * 60, 12 * 60, false),
        (0, 0, 700, true),
    ] {
        assert_eq!(
            in_window(start, end, minute),
            expected,
            "{start}-{end} at {minute}"
        );
    }
}

#[test]
fn the_worker_count_follows_the_setting_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    let engine = Engine::start(store.clone(), dir.path());
    assert_eq!(engine.workers(), 2, "the default concurrency");

    let wait_for = |count: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.workers() != count {
            assert!(
                Instant::now() < deadline,
                "{} workers, wanted {count}",
                engine.workers()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let mut settings = Settings::load(&store).unwrap();
    settings.transfer_concurrency = 5;
    settings.save(&store).unwrap();
    engine.wake();
    wait_for(5);

    settings.transfer_concurrency = 1;
    settings.save(&store).unwrap();
    engine.wake();
    wait_for(1);
    engine.shutdown();
    assert!(engine.inner_workers().is_empty());
}
