//! The archive list's search and sort (API.md "Family UI, step two"):
//! `q` (words found in the name, the original filename or the folder path,
//! case-insensitive), `sort=created|name|size`, `order=asc|desc`, paged by
//! a cursor made of the last archive's sort value and id, so a page never
//! skips or repeats an archive while others are added or removed.
//!
//! Cost: newest first without a search is the owner index's page, as
//! before (reads only the page). A search or another order reads every
//! archive record of that one owner (through the owner index: nobody
//! else's), filters and sorts them in memory, once per request: linear in
//! the owner's archive count, which the owner's disk bounds. Measured: 66 ms
//! for a search sorted by name over 10 000 archives of one owner (dev
//! build at opt-level 1 on a loaded x86 machine; the
//! `ten_thousand_archives` test prints the figure). Must not touch: HTTP.

use std::cmp::Ordering;

use super::{ArchiveCursor, ArchiveError, Archives, PAGE_LIMIT};
use crate::store::records::ArchiveRecord;

/// Longest search text accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Created,
    Name,
    Size,
}

impl SortKey {
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Created => "created",
            SortKey::Name => "name",
            SortKey::Size => "size",
        }
    }

    /// The order when none is asked for: newest, A to Z, biggest first.
    pub fn default_order(self) -> Order {
        match self {
            SortKey::Name => Order::Asc,
            SortKey::Created | SortKey::Size => Order::Desc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// What a list asks for: the search text (lower case, trimmed; `None` for
/// everything), the sort and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub q: Option<String>,
    pub sort: SortKey,
    pub order: Order,
}

impl Default for ListQuery {
    fn default() -> ListQuery {
        ListQuery {
            q: None,
            sort: SortKey::Created,
            order: Order::Desc,
        }
    }
}

impl ListQuery {
    /// Reads `q`, `sort` and `order` as a query string gives them; a
    /// sentence saying what is allowed when one is not.
    pub fn parse(
        q: Option<&str>,
        sort: Option<&str>,
        order: Option<&str>,
    ) -> Result<ListQuery, String> {
        let q = q.map(str::trim).filter(|q| !q.is_empty());
        if let Some(q) = q {
            if q.chars().count() > MAX_QUERY_CHARS {
                return Err(format!(
                    "The search text may have at most {MAX_QUERY_CHARS} characters."
                ));
            }
        }
        let sort = match sort.unwrap_or("created") {
            "created" => SortKey::Created,
            "name" => SortKey::Name,
            "size" => SortKey::Size,
            _ => return Err("sort must be created, name or size.".into()),
        };
        let order = match order {
            None | Some("") => sort.default_order(),
            Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(_) => return Err("order must be asc or desc.".into()),
        };
        Ok(ListQuery {
            q: q.map(str::to_lowercase),
            sort,
            order,
        })
    }

    /// Newest first, no search: the owner index's own order.
    pub fn is_default(&self) -> bool {
        self.q.is_none() && self.sort == SortKey::Created && self.order == Order::Desc
    }

    /// Whether the archive's name, original filename or folder path
    /// contains the search text (ignoring case).
    pub fn matches(&self, archive: &ArchiveRecord) -> bool {
        let Some(q) = &self.q else {
            return true;
        };
        archive.name.to_lowercase().contains(q)
            || archive.filename.to_lowercase().contains(q)
            || archive
                .path
                .as_deref()
                .is_some_and(|path| path.to_lowercase().contains(q))
    }

    fn value(&self, archive: &ArchiveRecord) -> SortValue {
        match self.sort {
            SortKey::Created => SortValue::Number(i128::from(archive.created_at)),
            SortKey::Size => SortValue::Number(i128::from(archive.size)),
            SortKey::Name => SortValue::Text(archive.name.to_lowercase()),
        }
    }

    /// The order of two positions in this list.
    fn compare(&self, a: (&SortValue, &str), b: (&SortValue, &str)) -> Ordering {
        match self.order {
            Order::Asc => a.cmp(&b),
            Order::Desc => b.cmp(&a),
        }
    }

    /// The query string that asks for this list again (`q`, `sort`,
    /// `order`, only those that differ from the defaults), starting with
    /// `&` when not empty: for next-page links.
    pub fn to_query_string(&self) -> String {
        let mut out = String::new();
        if let Some(q) = &self.q {
            out.push_str("&q=");
            out.extend(form_urlencoded::byte_serialize(q.as_bytes()));
        }
        if self.sort != SortKey::Created {
            out.push_str("&sort=");
            out.push_str(self.sort.as_str());
        }
        if self.order != self.sort.default_order() {
            out.push_str("&order=");
            out.push_str(self.order.as_str());
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    Number(i128),
    Text(String),
}

/// Where a page continues: after the archive with this sort value and id.
/// In a URL: `<value>-<id>`, the value a number, or the name in lower-case
/// hex for `sort=name` (so it needs no escaping). For the default list it
/// is exactly the [`ArchiveCursor`] of earlier versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    value: SortValue,
    id: String,
}

impl ListCursor {
    pub fn of(query: &ListQuery, archive: &ArchiveRecord) -> ListCursor {
        ListCursor {
            value: query.value(archive),
            id: archive.id.clone(),
        }
    }

    pub fn encode(&self) -> String {
        match &self.value {
            SortValue::Number(n) => format!("{n}-{}", self.id),
            SortValue::Text(text) => format!("{}-{}", hex::encode(text), self.id),
        }
    }

    /// Reads [`ListCursor::encode`]'s form for the list `query` asks for;
    /// `None` for anything else.
    pub fn decode(query: &ListQuery, text: &str) -> Option<ListCursor> {
        let (value, id) = text.rsplit_once('-')?;
        crate::ids::is_valid_id(id).then_some(())?;
        let value = match query.sort {
            SortKey::Created | SortKey::Size => SortValue::Number(value.parse().ok()?),
            SortKey::Name => SortValue::Text(String::from_utf8(hex::decode(value).ok()?).ok()?),
        };
        Some(ListCursor {
            value,
            id: id.to_string(),
        })
    }

    fn archive_cursor(&self) -> Option<ArchiveCursor> {
        match self.value {
            SortValue::Number(n) => Some(ArchiveCursor {
                created_at: i64::try_from(n).ok()?,
                id: self.id.clone(),
            }),
            SortValue::Text(_) => None,
        }
    }
}

impl Archives {
    /// A page of the caller's archives as `query` asks (search, sort,
    /// order): at most `limit` (clamped to 1..=[`PAGE_LIMIT`]) after
    /// `after`, and the cursor of the next page when more follow. See the
    /// module doc for what it reads.
    pub fn search(
        &self,
        owner_id: &str,
        query: &ListQuery,
        after: Option<&ListCursor>,
        limit: usize,
    ) -> Result<(Vec<ArchiveRecord>, Option<ListCursor>), ArchiveError> {
        let limit = limit.clamp(1, PAGE_LIMIT);
        if query.is_default() {
            let after = after.and_then(ListCursor::archive_cursor);
            let (page, next) = self.page(owner_id, after.as_ref(), limit)?;
            let next = next.map(|cursor| ListCursor {
                value: SortValue::Number(i128::from(cursor.created_at)),
                id: cursor.id,
            });
            return Ok((page, next));
        }
        let mut found: Vec<(SortValue, ArchiveRecord)> = self
            .all_of_owner(owner_id)?
            .into_iter()
            .filter(|archive| query.matches(archive))
            .map(|archive| (query.value(&archive), archive))
            .filter(|(value, archive)| match after {
                Some(cursor) => {
                    query.compare((value, &archive.id), (&cursor.value, &cursor.id))
                        == Ordering::Greater
                }
                None => true,
            })
            .collect();
        found.sort_by(|(a, x), (b, y)| query.compare((a, &x.id), (b, &y.id)));
        let more = found.len() > limit;
        found.truncate(limit);
        let page: Vec<ArchiveRecord> = found.into_iter().map(|(_, archive)| archive).collect();
        let next = match (more, page.last()) {
            (true, Some(last)) => Some(ListCursor::of(query, last)),
            _ => None,
        };
        Ok((page, next))
    }

    /// Every archive of `owner_id` outside the trash, newest first.
    fn all_of_owner(&self, owner_id: &str) -> Result<Vec<ArchiveRecord>, ArchiveError> {
        let txn = self.store.read()?;
        let archives = &self.store.tables.archives;
        Ok(match self.store.pending_migration() {
            Some(version) if version < 2 => {
                archives
                    .page_of_owner_unindexed(&txn, owner_id, None, usize::MAX)?
                    .0
            }
            _ => archives.all_of_owner(&txn, owner_id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::ArchiveState;

    fn record(n: u32, name: &str, size: u64, created_at: i64) -> ArchiveRecord {
        ArchiveRecord {
            created_at,
            path: n.is_multiple_of(3).then(|| format!("Photos/{n}")),
            ..super::super::new_archive_record(
                &format!("{n:032x}"),
                if n % 7 == 6 { "other" } else { "me" },
                name,
                &format!("file{n}.bin"),
                size,
                &[0; 32],
                1,
            )
        }
    }

    fn archives_with(records: &[ArchiveRecord]) -> (tempfile::TempDir, Archives) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db"), 256 << 20).unwrap();
        store
            .write(|txn, tables| -> crate::store::Result<()> {
                for record in records {
                    tables.archives.put(txn, record.id.as_bytes(), record)?;
                }
                Ok(())
            })
            .unwrap();
        let archives = Archives::open(store, dir.path()).unwrap();
        (dir, archives)
    }

    /// Every page of a list, walked with the cursors the pages give.
    fn walk(archives: &Archives, query: &ListQuery, limit: usize) -> Vec<ArchiveRecord> {
        let (mut all, mut after) = (Vec::new(), None::<ListCursor>);
        for _ in 0..1000 {
            let (page, next) = archives.search("me", query, after.as_ref(), limit).unwrap();
            all.extend(page);
            match next {
                // Through the URL form, as a client hands it back.
                Some(next) => after = Some(ListCursor::decode(query, &next.encode()).unwrap()),
                None => return all,
            }
        }
        panic!("more than 1000 pages");
    }

    #[test]
    fn queries_parse_with_defaults_and_refuse_with_sentences() {
        let query = ListQuery::parse(Some("  Holiday "), Some("name"), None).unwrap();
        assert_eq!(query.q.as_deref(), Some("holiday"));
        assert_eq!((query.sort, query.order), (SortKey::Name, Order::Asc));
        assert_eq!(query.to_query_string(), "&q=holiday&sort=name");
        assert!(ListQuery::parse(None, None, None).unwrap().is_default());
        assert!(ListQuery::parse(Some(" "), None, Some("desc"))
            .unwrap()
            .is_default());
        for (sort, order) in [(Some("age"), None), (None, Some("up"))] {
            let err = ListQuery::parse(None, sort, order).unwrap_err();
            assert!(err.ends_with('.'), "{err}");
        }
        assert!(ListQuery::parse(Some(&"x".repeat(201)), None, None).is_err());
    }

    #[test]
    fn every_order_pages_through_all_matches_once_in_order() {
        let names = ["beta", "Alpha", "gamma", "alpha", "Delta", "été", "b"];
        let records: Vec<ArchiveRecord> = (0..40u32)
            .map(|n| {
                let name = format!("{} {n}", names[n as usize % names.len()]);
                // Shared sizes and creation seconds: the id breaks ties.
                record(n, &name, u64::from(n % 5) * 1000, i64::from(n / 4))
            })
            .collect();
        let (_dir, archives) = archives_with(&records);
        let mine: Vec<&ArchiveRecord> = records.iter().filter(|r| r.owner_id == "me").collect();
        for sort in ["created", "name", "size"] {
            for order in ["asc", "desc"] {
                for q in [None, Some("ALPHA"), Some("photos/1"), Some("file3")] {
                    let query = ListQuery::parse(q, Some(sort), Some(order)).unwrap();
                    let mut expected: Vec<&ArchiveRecord> =
                        mine.iter().copied().filter(|r| query.matches(r)).collect();
                    expected.sort_by(|a, b| {
                        query.compare((&query.value(a), &a.id), (&query.value(b), &b.id))
                    });
                    let expected: Vec<&str> = expected.iter().map(|r| r.id.as_str()).collect();
                    for limit in [1, 3, 1000] {
                        let got = walk(&archives, &query, limit);
                        let got: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
                        assert_eq!(got, expected, "{sort} {order} {q:?} limit {limit}");
                    }
                }
            }
        }
        let query = ListQuery::parse(Some("alpha"), Some("name"), None).unwrap();
        let names: Vec<String> = walk(&archives, &query, 2)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert!(names.iter().all(|n| n.to_lowercase().starts_with("alpha")));
        assert!(!names.is_empty());
    }

    #[test]
    fn cursors_of_another_sort_are_refused() {
        let name = ListQuery::parse(None, Some("name"), None).unwrap();
        let size = ListQuery::parse(None, Some("size"), None).unwrap();
        let cursor = ListCursor::of(&name, &record(1, "holiday", 5, 9));
        assert_eq!(
            ListCursor::decode(&name, &cursor.encode()),
            Some(cursor.clone())
        );
        assert_eq!(ListCursor::decode(&size, &cursor.encode()), None);
        assert_eq!(ListCursor::decode(&size, "12-../etc"), None);
    }

    /// The figure in the module doc: one search and one sort by name over
    /// 10 000 archives of one owner.
    #[test]
    fn ten_thousand_archives() {
        let records: Vec<ArchiveRecord> = (0..10_000u32)
            .map(|n| ArchiveRecord {
                owner_id: "me".into(),
                state: ArchiveState::BackedUp,
                ..record(
                    n,
                    &format!("IMG_{n:05}.jpg"),
                    u64::from(n) * 4096,
                    i64::from(n),
                )
            })
            .collect();
        let (_dir, archives) = archives_with(&records);
        let query = ListQuery::parse(Some("img_09"), Some("name"), Some("desc")).unwrap();
        let started = std::time::Instant::now();
        let (page, next) = archives.search("me", &query, None, 100).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(page.len(), 100);
        assert_eq!(page[0].name, "IMG_09999.jpg");
        assert!(next.is_some());
        println!("search and sort of 10 000 archives: {elapsed:?}");
    }
}
