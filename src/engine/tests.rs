use super::*;

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
