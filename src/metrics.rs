//! Process-lifetime counters for `GET /metrics` and the script `stats()`:
//! bytes ingested (written to archive files by uploads), uploaded to and
//! downloaded from the remote, job failures by kind, and a histogram of
//! part-upload latency. Atomics only: counting never blocks a transfer.
//!
//! Owns the counters and their Prometheus text rendering (pure: the queue
//! length is handed in). Must not touch: HTTP, LMDB, the clock (callers
//! measure durations and hand them in). The counters start at zero with
//! each process, which Prometheus handles as a counter reset.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the part-upload latency buckets; `+Inf` is
/// implied. Parts are 1 to 16 MiB, so a LAN upload takes well under a
/// second and a slow uplink tens of seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A cumulative latency histogram: one counter per bucket (observations at
/// or below its bound but above the previous one), their sum and count.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    /// Observations above the last bound.
    overflow: AtomicU64,
    /// Sum of all observations, in microseconds.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        match LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            Some(index) => self.buckets[index].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        // The count is the +Inf bucket, so the two always agree even while
        // another thread observes.
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Every counter of this process.
#[derive(Default)]
pub struct Metrics {
    bytes_ingested: AtomicU64,
    bytes_uploaded: AtomicU64,
    bytes_downloaded: AtomicU64,
    bytes_packed_in: AtomicU64,
    bytes_packed_out: AtomicU64,
    failures_transient: AtomicU64,
    failures_permanent: AtomicU64,
    failures_damaged: AtomicU64,
    part_upload_seconds: Histogram,
}

/// The counters of this process (one appliance per process).
pub fn global() -> &'static Metrics {
    static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// Which way a job failed, for the failure counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Transient,
    Permanent,
    Damaged,
}

impl Metrics {
    /// Bytes of an upload written to an archive file.
    pub fn add_ingested(&self, bytes: u64) {
        self.bytes_ingested.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes sent to the remote (sealed parts and manifests).
    pub fn add_uploaded(&self, bytes: u64) {
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes fetched from the remote (sealed parts).
    pub fn add_downloaded(&self, bytes: u64) {
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One part sealed for upload: `plain` bytes before compression,
    /// `sealed` after (and after encryption: what is sent).
    pub fn add_packed(&self, plain: u64, sealed: u64) {
        self.bytes_packed_in.fetch_add(plain, Ordering::Relaxed);
        self.bytes_packed_out.fetch_add(sealed, Ordering::Relaxed);
    }

    /// Bytes of parts before compression, since start.
    pub fn bytes_packed_in(&self) -> u64 {
        self.bytes_packed_in.load(Ordering::Relaxed)
    }

    /// Bytes of the same parts as sealed (compressed where that paid).
    pub fn bytes_packed_out(&self) -> u64 {
        self.bytes_packed_out.load(Ordering::Relaxed)
    }

    pub fn add_failure(&self, kind: FailureKind) {
        let counter = match kind {
            FailureKind::Transient => &self.failures_transient,
            FailureKind::Permanent => &self.failures_permanent,
            FailureKind::Damaged => &self.failures_damaged,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// How long one part PUT took (only successful ones).
    pub fn observe_part_upload(&self, duration: Duration) {
        self.part_upload_seconds.observe(duration);
    }

    pub fn bytes_ingested(&self) -> u64 {
        self.bytes_ingested.load(Ordering::Relaxed)
    }

    pub fn bytes_uploaded(&self) -> u64 {
        self.bytes_uploaded.load(Ordering::Relaxed)
    }

    pub fn bytes_downloaded(&self) -> u64 {
        self.bytes_downloaded.load(Ordering::Relaxed)
    }

    pub fn failures(&self, kind: FailureKind) -> u64 {
        match kind {
            FailureKind::Transient => &self.failures_transient,
            FailureKind::Permanent => &self.failures_permanent,
            FailureKind::Damaged => &self.failures_damaged,
        }
        .load(Ordering::Relaxed)
    }

    pub fn part_uploads(&self) -> u64 {
        self.part_upload_seconds.count()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, queue_length: u64) -> String {
        let mut out = String::new();
        let counters = [
            (
                "piarchive_bytes_ingested_total",
                "Bytes of uploads written to archive files since start.",
                self.bytes_ingested(),
            ),
            (
                "piarchive_bytes_uploaded_total",
                "Bytes sent to the remote (encrypted parts and manifests) since start.",
                self.bytes_uploaded(),
            ),
            (
                "piarchive_bytes_downloaded_total",
                "Bytes fetched from the remote (encrypted parts) since start.",
                self.bytes_downloaded(),
            ),
            (
                "piarchive_part_bytes_before_compression_total",
                "Bytes of the parts sealed for upload, before compression, since start.",
                self.bytes_packed_in(),
            ),
            (
                "piarchive_part_bytes_after_compression_total",
                "Bytes of the same parts as sealed (compressed where that saved, then encrypted), since start.",
                self.bytes_packed_out(),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        let name = "piarchive_job_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Failed job attempts since start, by kind (transient: retried later; permanent: parked until the settings change; damaged: verification failed)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (label, kind) in [
            ("transient", FailureKind::Transient),
            ("permanent", FailureKind::Permanent),
            ("damaged", FailureKind::Damaged),
        ] {
            let _ = writeln!(out, "{name}{{kind=\"{label}\"}} {}", self.failures(kind));
        }
        let name = "piarchive_queue_length";
        let _ = writeln!(
            out,
            "# HELP {name} Jobs in the transfer queue (running, waiting or parked)."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {queue_length}");
        self.part_upload_seconds.render(
            &mut out,
            "piarchive_part_upload_seconds",
            "Time to upload one encrypted part to the remote.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.add_ingested(10);
        metrics.add_uploaded(20);
        metrics.add_downloaded(30);
        metrics.add_packed(1000, 300);
        metrics.add_failure(FailureKind::Transient);
        metrics.add_failure(FailureKind::Transient);
        metrics.add_failure(FailureKind::Permanent);
        for millis in [10, 80, 80, 700, 120_000] {
            metrics.observe_part_upload(Duration::from_millis(millis));
        }
        let text = metrics.render(4);
        for line in [
            "piarchive_bytes_ingested_total 10",
            "piarchive_bytes_uploaded_total 20",
            "piarchive_bytes_downloaded_total 30",
            "piarchive_part_bytes_before_compression_total 1000",
            "piarchive_part_bytes_after_compression_total 300",
            "piarchive_job_failures_total{kind=\"transient\"} 2",
            "piarchive_job_failures_total{kind=\"permanent\"} 1",
            "piarchive_job_failures_total{kind=\"damaged\"} 0",
            "piarchive_queue_length 4",
            "piarchive_part_upload_seconds_bucket{le=\"0.05\"} 1",
            "piarchive_part_upload_seconds_bucket{le=\"0.1\"} 3",
            "piarchive_part_upload_seconds_bucket{le=\"0.5\"} 3",
            "piarchive_part_upload_seconds_bucket{le=\"1\"} 4",
            "piarchive_part_upload_seconds_bucket{le=\"60\"} 4",
            "piarchive_part_upload_seconds_bucket{le=\"+Inf\"} 5",
            "piarchive_part_upload_seconds_sum 120.87",
            "piarchive_part_upload_seconds_count 5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every line is a comment or `name{labels} value`.
        for line in text.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap_or_default();
            assert!(
                name.starts_with("piarchive_")
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
        }
    }
}
