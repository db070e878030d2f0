//! Where a fetch-back reads each part from: every destination that holds
//! it, best first, and how fast each destination answered lately.
//!
//! Owns the order (the main destination unless it is unreachable or a copy
//! was measured faster; an unreachable destination last, still tried), the
//! in-memory throughput figure per destination (an EWMA of the bytes per
//! second of recent part downloads) and the sentence that says which copy
//! of a part was damaged and where it was read from instead. Pure but for
//! the throughput's mutex: no LMDB, no remote I/O (the cache job builds the
//! [`Source`]s and does the reading).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::engine::destinations::MAIN;
use crate::engine::Failure;
use crate::remote::Remote;

/// Weight of the newest download in a destination's throughput figure.
const NEWEST_WEIGHT: f64 = 0.3;

/// Downloads shorter than this say more about latency than throughput and
/// are not counted.
const SHORTEST_COUNTED: u64 = 64 * 1024;

/// Bytes per second of recent part downloads, per destination id; in
/// memory only (a restart starts afresh, with the main destination first).
#[derive(Default)]
pub struct Throughput {
    by_destination: Mutex<HashMap<String, f64>>,
}

impl Throughput {
    /// Counts one download of `bytes` that took `elapsed`.
    pub fn record(&self, destination: &str, bytes: u64, elapsed: Duration) {
        if bytes < SHORTEST_COUNTED {
            return;
        }
        let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-3);
        let mut speeds = super::super::lock(&self.by_destination);
        speeds
            .entry(destination.to_string())
            .and_modify(|speed| *speed = NEWEST_WEIGHT * rate + (1.0 - NEWEST_WEIGHT) * *speed)
            .or_insert(rate);
    }

    /// The destination's figure in bytes per second, if it was measured.
    pub fn speed(&self, destination: &str) -> Option<f64> {
        super::super::lock(&self.by_destination)
            .get(destination)
            .copied()
    }
}

/// Opens a destination's remote when a part is first read from it.
pub type OpenRemote<'a> = Box<dyn Fn() -> Result<Arc<dyn Remote>, Failure> + Send + Sync + 'a>;

/// One destination as a place to read the archive's parts from.
pub struct Source<'a> {
    /// The destination's id (`destinations::MAIN` for the main one, also
    /// for the storage a move is leaving).
    pub id: String,
    /// Its name, for sentences.
    pub name: String,
    /// False while the destination has a lasting error: tried last.
    pub reachable: bool,
    /// `holds[index]`: part `index` of the archive is stored there.
    pub holds: Vec<bool>,
    /// Opened on first use (a copy that is never needed is never
    /// contacted, so one that is down slows no fetch-back from another).
    open: OpenRemote<'a>,
    remote: OnceLock<Result<Arc<dyn Remote>, Failure>>,
}

impl<'a> Source<'a> {
    /// A source whose remote is opened by `open` when first needed.
    pub fn new(
        id: &str,
        name: &str,
        reachable: bool,
        holds: Vec<bool>,
        open: OpenRemote<'a>,
    ) -> Self {
        Source {
            id: id.to_string(),
            name: name.to_string(),
            reachable,
            holds,
            open,
            remote: OnceLock::new(),
        }
    }

    /// A source over a remote already open.
    pub fn opened(
        id: &str,
        name: &str,
        reachable: bool,
        holds: Vec<bool>,
        remote: Arc<dyn Remote>,
    ) -> Self {
        let source = Source::new(id, name, reachable, holds, Box::new(unreachable_open));
        let _ = source.remote.set(Ok(remote));
        source
    }

    /// The destination's remote, opened once.
    pub fn remote(&self) -> Result<Arc<dyn Remote>, Failure> {
        self.remote.get_or_init(|| (self.open)()).clone()
    }
}

/// The opener of a source made open: never called.
fn unreachable_open() -> Result<Arc<dyn Remote>, Failure> {
    Err(Failure::Transient(
        "This storage could not be opened.".into(),
    ))
}

/// What the order of the sources depends on, for one destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub main: bool,
    pub reachable: bool,
    /// Measured bytes per second, if any.
    pub speed: Option<f64>,
}

/// Every this many parts, a reachable copy not measured yet is tried first
/// once, so that a copy faster than the main destination can be found.
pub const PROBE_EVERY: usize = 8;

/// The order to try candidates in (their indexes): reachable ones first;
/// among those the main destination first unless a copy was measured
/// faster than it, the copies by measured speed (unmeasured ones after);
/// unreachable ones last in the same order. Ties keep the given order.
/// With `probe`, the first reachable copy not measured yet goes first.
pub fn rank(candidates: &[Candidate], probe: bool) -> Vec<usize> {
    // Unmeasured, the main destination comes before any copy; a copy only
    // passes it by a measured figure above the main destination's.
    let effective = |candidate: &Candidate| match (candidate.main, candidate.speed) {
        (_, Some(speed)) => speed,
        (true, None) => f64::INFINITY,
        (false, None) => 0.0,
    };
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        b.reachable
            .cmp(&a.reachable)
            .then(effective(b).total_cmp(&effective(a)))
    });
    let unmeasured = |at: &usize| {
        let candidate = &candidates[*at];
        !candidate.main && candidate.reachable && candidate.speed.is_none()
    };
    if let Some(position) = order.iter().position(unmeasured).filter(|_| probe) {
        let first = order.remove(position);
        order.insert(0, first);
    }
    order
}

/// Every destination an archive's parts can be read from, main first.
pub struct Sources<'a> {
    pub sources: Vec<Source<'a>>,
}

impl<'a> Sources<'a> {
    /// The sources holding part `index`, best first (see [`rank`]; every
    /// [`PROBE_EVERY`]th part probes a copy not measured yet).
    pub fn for_part(&self, index: usize, throughput: &Throughput) -> Vec<&Source<'a>> {
        let holding: Vec<&Source<'a>> = self
            .sources
            .iter()
            .filter(|source| source.holds.get(index).copied().unwrap_or(false))
            .collect();
        let candidates: Vec<Candidate> = holding
            .iter()
            .map(|source| Candidate {
                main: source.id == MAIN,
                reachable: source.reachable,
                speed: throughput.speed(&source.id),
            })
            .collect();
        let probe = index % PROBE_EVERY == PROBE_EVERY - 1;
        rank(&candidates, probe)
            .into_iter()
            .map(|at| holding[at])
            .collect()
    }
}

/// A part one destination could not give, read from another instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub index: usize,
    /// The id and name of the destination whose copy failed.
    pub failed_id: String,
    pub failed_name: String,
    /// Missing there (rather than damaged).
    pub missing: bool,
    /// The name of the destination it was read from.
    pub read_from: String,
}

impl Fallback {
    /// "Part 3 on Backblaze was damaged; it was read from grandpa's NAS."
    pub fn sentence(&self) -> String {
        let Fallback {
            index,
            failed_name,
            read_from,
            ..
        } = self;
        if self.missing {
            format!("Part {index} was missing on {failed_name}; it was read from {read_from}.")
        } else {
            format!("Part {index} on {failed_name} was damaged; it was read from {read_from}.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(main: bool, reachable: bool, speed: Option<f64>) -> Candidate {
        Candidate {
            main,
            reachable,
            speed,
        }
    }

    #[test]
    fn the_main_destination_goes_first_unless_unreachable_or_measured_slower() {
        let mb = 1e6;
        for (candidates, expected, why) in [
            (
                vec![candidate(true, true, None), candidate(false, true, None)],
                vec![0, 1],
                "nothing measured",
            ),
            (
                vec![
                    candidate(true, true, None),
                    candidate(false, true, Some(50.0 * mb)),
                ],
                vec![0, 1],
                "only the copy measured",
            ),
            (
                vec![
                    candidate(true, true, Some(5.0 * mb)),
                    candidate(false, true, Some(20.0 * mb)),
                ],
                vec![1, 0],
                "the copy measured faster",
            ),
            (
                vec![
                    candidate(true, true, Some(20.0 * mb)),
                    candidate(false, true, Some(5.0 * mb)),
                ],
                vec![0, 1],
                "the main destination measured faster",
            ),
            (
                vec![
                    candidate(true, false, Some(90.0 * mb)),
                    candidate(false, true, None),
                ],
                vec![1, 0],
                "the main destination unreachable",
            ),
            (
                vec![
                    candidate(true, true, Some(10.0 * mb)),
                    candidate(false, false, Some(90.0 * mb)),
                    candidate(false, true, None),
                    candidate(false, true, Some(1.0 * mb)),
                ],
                vec![0, 3, 2, 1],
                "three copies, the fastest one unreachable",
            ),
            (vec![], vec![], "no destination"),
        ] {
            assert_eq!(rank(&candidates, false), expected, "{why}");
        }
        // A probe tries the first reachable copy not measured yet first,
        // and changes nothing once every copy was measured.
        let copies = [
            candidate(true, true, Some(10.0 * mb)),
            candidate(false, false, None),
            candidate(false, true, Some(1.0 * mb)),
            candidate(false, true, None),
        ];
        assert_eq!(rank(&copies, true), [3, 0, 2, 1]);
        let measured = [
            candidate(true, true, Some(10.0 * mb)),
            candidate(false, true, Some(mb)),
        ];
        assert_eq!(rank(&measured, true), [0, 1]);
    }

    #[test]
    fn throughput_is_a_moving_average_that_ignores_tiny_downloads() {
        let throughput = Throughput::default();
        assert_eq!(throughput.speed("main"), None);
        throughput.record("main", 1000, Duration::from_millis(1));
        assert_eq!(throughput.speed("main"), None, "too short to count");
        throughput.record("main", 10 << 20, Duration::from_secs(1));
        assert_eq!(throughput.speed("main"), Some((10 << 20) as f64));
        throughput.record("main", 20 << 20, Duration::from_secs(1));
        let expected = 0.3 * (20 << 20) as f64 + 0.7 * (10 << 20) as f64;
        assert!((throughput.speed("main").unwrap() - expected).abs() < 1.0);
        assert_eq!(throughput.speed("d_other"), None);
    }

    #[test]
    fn the_fallback_sentence_names_both_copies() {
        let mut fallback = Fallback {
            index: 3,
            failed_id: "main".into(),
            failed_name: "Backblaze".into(),
            missing: false,
            read_from: "grandpa's NAS".into(),
        };
        assert_eq!(
            fallback.sentence(),
            "Part 3 on Backblaze was damaged; it was read from grandpa's NAS."
        );
        fallback.missing = true;
        assert_eq!(
            fallback.sentence(),
            "Part 3 was missing on Backblaze; it was read from grandpa's NAS."
        );
    }
}
