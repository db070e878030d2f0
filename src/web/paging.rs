//! Paged lists (API.md "Additions (second round)"): reading `limit` and
//! `after` from a query, and the RFC 8288 `Link: <...>; rel="next"` header
//! that says where the next page is. Pure: no store, no I/O.

use std::collections::HashMap;

use super::http::ApiError;
use crate::archive::listing::{ListCursor, ListQuery};
use crate::archive::{ArchiveCursor, PAGE_LIMIT};

/// `limit` from the query: absent means [`PAGE_LIMIT`], above it is
/// lowered to it, anything but a positive number is refused.
pub fn limit(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(PAGE_LIMIT),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n.min(PAGE_LIMIT as u64) as usize),
            _ => Err(bad_query("limit must be a whole number from 1 to 1000.")),
        },
    }
}

/// `after` of the archive list: the cursor a previous page's link gave.
pub fn archive_cursor(query: &HashMap<String, String>) -> Result<Option<ArchiveCursor>, ApiError> {
    match query.get("after") {
        None => Ok(None),
        Some(text) => ArchiveCursor::decode(text).map(Some).ok_or_else(|| {
            bad_query("after is not a cursor this server gave: start again from the first page.")
        }),
    }
}

/// `q`, `sort` and `order` of the archive list.
pub fn list_query(query: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let get = |name: &str| query.get(name).map(String::as_str);
    ListQuery::parse(get("q"), get("sort"), get("order")).map_err(|message| bad_query(&message))
}

/// `after` of the archive list as `list` sorts it.
pub fn list_cursor(
    query: &HashMap<String, String>,
    list: &ListQuery,
) -> Result<Option<ListCursor>, ApiError> {
    match query.get("after") {
        None => Ok(None),
        Some(text) => ListCursor::decode(list, text).map(Some).ok_or_else(|| {
            bad_query("after is not a cursor this server gave for this order: start again from the first page.")
        }),
    }
}

/// `after` of a parts list: the index of the last part already seen.
pub fn part_index(query: &HashMap<String, String>) -> Result<Option<u32>, ApiError> {
    match query.get("after") {
        None => Ok(None),
        Some(text) => text
            .parse::<u32>()
            .map(Some)
            .map_err(|_| bad_query("after must be the index of a part (a whole number).")),
    }
}

fn bad_query(message: &str) -> ApiError {
    ApiError::new(400, "bad_request", message)
}

/// The `Link` header value for the next page of `path`. `after` is a
/// cursor or an index: digits, `-` and hex, nothing to escape.
pub fn next_link(path: &str, limit: usize, after: &str) -> String {
    format!("<{path}?limit={limit}&after={after}>; rel=\"next\"")
}

/// As [`next_link`], with more of the query (`&q=...&sort=...`, escaped).
pub fn next_link_with(path: &str, limit: usize, after: &str, more: &str) -> String {
    format!("<{path}?limit={limit}&after={after}{more}>; rel=\"next\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limits_default_clamp_and_refuse() {
        assert_eq!(limit(&query(&[])).unwrap(), 1000);
        assert_eq!(limit(&query(&[("limit", "5")])).unwrap(), 5);
        assert_eq!(limit(&query(&[("limit", "99999")])).unwrap(), 1000);
        for bad in ["0", "-1", "x", ""] {
            assert_eq!(limit(&query(&[("limit", bad)])).unwrap_err().status, 400);
        }
    }

    #[test]
    fn cursors_and_indexes_are_checked() {
        assert_eq!(part_index(&query(&[("after", "7")])).unwrap(), Some(7));
        assert!(part_index(&query(&[("after", "-7")])).is_err());
        assert!(archive_cursor(&query(&[("after", "nope")])).is_err());
        assert_eq!(
            next_link("/api/v1/archives", 2, "5-ab"),
            "</api/v1/archives?limit=2&after=5-ab>; rel=\"next\""
        );
    }
}
