//! Query strings as ResultsDB reads them: `page`/`limit`, `since`,
//! `outcome`, `testcases`, `testcases:like`, `groups`, and any other key as
//! a filter on result data (comma means OR, `key:like` takes `*`).

use std::str::FromStr;

use ferrotron_agent::protocol::Outcome;

use super::error::ApiError;
use crate::job::JobState;
use crate::store::{parse_time, DataFilter, JobFilter, Page, ResultFilter};

/// ResultsDB's default page size.
pub const DEFAULT_LIMIT: i64 = 20;
/// Larger pages are refused, so one request cannot load the whole store.
pub const MAX_LIMIT: i64 = 1000;

/// Values one query may list in all (`item=a,b&testcases=c` is three):
/// each becomes one SQL variable.
pub const MAX_QUERY_VALUES: usize = 1000;
/// `:like` patterns one query may hold (each is one more `OR` term).
pub const MAX_LIKE_PATTERNS: usize = 50;
/// Different data keys one query may filter on (each is one more join).
pub const MAX_DATA_KEYS: usize = 50;

/// Parameters that never filter (JSONP callback, ResultsDB's internals).
const IGNORED: &[&str] = &["callback", "_distinct_on"];

pub type Pairs = Vec<(String, String)>;

/// Decodes a raw query string into its pairs, in order; at most
/// [`MAX_QUERY_VALUES`] values in all.
pub fn pairs(raw: Option<&str>) -> Result<Pairs, ApiError> {
    let pairs = serde_urlencoded::from_str::<Pairs>(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request("bad_query", format!("cannot decode the query: {e}")))?;
    let values: usize = pairs.iter().map(|(_, v)| v.split(',').count()).sum();
    if values > MAX_QUERY_VALUES {
        return Err(too_many(format!(
            "a query may list at most {MAX_QUERY_VALUES} values; this one has {values}"
        )));
    }
    Ok(pairs)
}

fn too_many(message: String) -> ApiError {
    ApiError::bad_request("query_too_large", message)
}

/// Refuses more than [`MAX_LIKE_PATTERNS`] `:like` patterns.
pub fn check_like_patterns(count: usize) -> Result<(), ApiError> {
    if count > MAX_LIKE_PATTERNS {
        return Err(too_many(format!(
            "a query may hold at most {MAX_LIKE_PATTERNS} `:like` patterns; this one has {count}"
        )));
    }
    Ok(())
}

/// Comma-separated values, blanks dropped.
fn split(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `page` (from 0) and `limit` (1..=1000, default 20).
pub fn page(pairs: &Pairs) -> Result<Page, ApiError> {
    let mut p = Page {
        page: 0,
        limit: DEFAULT_LIMIT,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "page" => {
                p.page = match i64::from_str(v.trim()) {
                    Ok(n) if n >= 0 => n,
                    _ => {
                        return Err(ApiError::bad_request(
                            "bad_pagination",
                            format!("page must be a whole number from 0, not `{v}`"),
                        ))
                    }
                }
            }
            "limit" => {
                p.limit = match i64::from_str(v.trim()) {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                    _ => {
                        return Err(ApiError::bad_request(
                            "bad_pagination",
                            format!(
                                "limit must be a whole number from 1 to {MAX_LIMIT}, not `{v}`"
                            ),
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

/// An outcome as ResultsDB accepts it (any case), or a 400 naming the
/// allowed ones.
pub fn outcome(v: &str) -> Result<String, ApiError> {
    let up = v.trim().to_ascii_uppercase();
    Outcome::from_str(&up)
        .map(|o| o.as_str().to_string())
        .map_err(|_| {
            ApiError::bad_request(
                "unknown_outcome",
                format!(
                    "outcome `{v}` is not one of {}",
                    Outcome::ALL.map(|o| o.as_str()).join(", ")
                ),
            )
        })
}

fn since(v: &str) -> Result<(i64, Option<i64>), ApiError> {
    let bad = |part: &str| {
        ApiError::bad_request(
            "bad_since",
            format!("since: `{part}` is not a date/time like 2024-01-31 or 2024-01-31T12:00:00"),
        )
    };
    let mut it = v.splitn(2, ',');
    let start = it.next().unwrap_or("");
    let start_t = parse_time(start).ok_or_else(|| bad(start))?;
    let end_t = match it.next() {
        Some(e) => Some(parse_time(e).ok_or_else(|| bad(e))?),
        None => None,
    };
    Ok((start_t, end_t))
}

/// Every filter of `GET /results` (and `/results/latest`).
/// `_distinct_on=key1,key2` (repeatable): the data keys by which
/// `/results/latest` keeps one result per testcase and combination.
pub fn distinct_on(pairs: &Pairs) -> Result<Vec<String>, ApiError> {
    let mut keys: Vec<String> = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "_distinct_on") {
        for k in split(v) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    if keys.len() > MAX_DATA_KEYS {
        return Err(too_many(format!(
            "`_distinct_on` may name at most {MAX_DATA_KEYS} data keys; this one has {}",
            keys.len()
        )));
    }
    Ok(keys)
}

pub fn result_filter(pairs: &Pairs) -> Result<ResultFilter, ApiError> {
    let mut f = ResultFilter::default();
    for (k, v) in pairs {
        match k.as_str() {
            "page" | "limit" => {}
            k if IGNORED.contains(&k) => {}
            "since" => f.since = Some(since(v)?),
            // ResultsDB's sort: by submit_time only; `disable_sorting`
            // (upstream's "any order") is newest first here.
            "_sort" => match v.trim() {
                "asc:submit_time" => f.oldest_first = true,
                "desc:submit_time" | "disable_sorting" | "" => f.oldest_first = false,
                other => {
                    return Err(ApiError::bad_request(
                        "bad_filter",
                        format!(
                            "`_sort={other}`: give asc:submit_time or desc:submit_time \
                             (results sort by submit_time only)"
                        ),
                    ))
                }
            },
            "outcome" => {
                for o in split(v) {
                    f.outcomes.push(outcome(&o)?);
                }
            }
            "testcases" => f.testcases.extend(split(v)),
            "testcases:like" => f.testcases_like.extend(split(v)),
            "groups" => f.groups.extend(split(v)),
            key => {
                let (key, like) = match key.split_once(':') {
                    None => (key, false),
                    Some((key, "like")) => (key, true),
                    Some((_, op)) => {
                        return Err(ApiError::bad_request(
                            "bad_filter",
                            format!("`{k}`: unknown operator `{op}` (only `:like` exists)"),
                        ))
                    }
                };
                if key.is_empty() {
                    return Err(ApiError::bad_request(
                        "bad_filter",
                        format!("`{k}`: a filter needs a key"),
                    ));
                }
                // As upstream: every comma-separated value counts, an
                // empty one too (`item=` matches an empty item only; it is
                // no "any item" that would hand a gating query every result).
                let values: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
                match f.data.iter_mut().find(|d| d.key == key && d.like == like) {
                    Some(d) => d.values.extend(values),
                    None => f.data.push(DataFilter {
                        key: key.to_string(),
                        values,
                        like,
                    }),
                }
            }
        }
    }
    let likes = f.testcases_like.len()
        + f.data
            .iter()
            .filter(|d| d.like)
            .map(|d| d.values.len())
            .sum::<usize>();
    check_like_patterns(likes)?;
    let keys: std::collections::BTreeSet<&str> = f.data.iter().map(|d| d.key.as_str()).collect();
    if keys.len() > MAX_DATA_KEYS {
        return Err(too_many(format!(
            "a query may filter on at most {MAX_DATA_KEYS} data keys; this one has {}",
            keys.len()
        )));
    }
    Ok(f)
}

/// `base + path` with the same query but `page` set to `page`.
pub fn page_url(base: &str, path: &str, pairs: &Pairs, page: i64) -> String {
    let mut out: Pairs = pairs.iter().filter(|(k, _)| k != "page").cloned().collect();
    out.push(("page".into(), page.to_string()));
    let q = serde_urlencoded::to_string(&out).unwrap_or_default();
    format!("{base}{path}?{q}")
}

/// A job state by name, or a 400 listing the states.
pub fn job_state(s: &str) -> Result<JobState, ApiError> {
    JobState::from_name(s).ok_or_else(|| {
        let all: Vec<&str> = crate::job::ALL_STATES.iter().map(|s| s.as_str()).collect();
        ApiError::bad_request(
            "unknown_state",
            format!("state `{s}` is not one of {}", all.join(", ")),
        )
    })
}

/// The job list's filters (`state`, `item`, `task`, `type`, `host`,
/// `since`, `until`), as `GET /api/v1/jobs` and the dashboard's list read
/// them; any key but those and `also` is refused, naming it.
pub fn job_filter(pairs: &Pairs, also: &[&str]) -> Result<JobFilter, ApiError> {
    let mut filter = JobFilter::default();
    for (k, v) in pairs {
        let time = |v: &str| {
            parse_time(v).ok_or_else(|| {
                ApiError::bad_request("bad_filter", format!("{k}: `{v}` is not an ISO 8601 time"))
            })
        };
        match k.as_str() {
            "state" => filter.state = Some(job_state(v)?),
            "item" => filter.item = Some(v.clone()),
            "task" => filter.task = Some(v.clone()),
            "type" => filter.item_type = Some(v.clone()),
            "host" => filter.host = Some(v.clone()),
            "since" => filter.since = Some(time(v)?),
            "until" => filter.until = Some(time(v)?),
            k if also.contains(&k) => {}
            _ => {
                return Err(ApiError::bad_request(
                    "bad_filter",
                    format!("unknown filter `{k}`"),
                ))
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Pairs {
        pairs(Some(q)).expect("decodes")
    }

    #[test]
    fn resultsdb_client_queries() {
        let f = result_filter(&p(
            "item=foo-1.0-1.fc40&type=koji_build&testcases=dist.rpmdeplint,dist.abicheck",
        ))
        .expect("valid");
        assert_eq!(f.testcases, ["dist.rpmdeplint", "dist.abicheck"]);
        assert_eq!(f.data.len(), 2);
        assert_eq!(f.data[0].values, ["foo-1.0-1.fc40"]);
        let f = result_filter(&p("testcases:like=dist.*&outcome=passed,failed")).expect("valid");
        assert_eq!(f.testcases_like, ["dist.*"]);
        assert_eq!(f.outcomes, ["PASSED", "FAILED"]);
        let f = result_filter(&p("since=2024-01-01T00:00:00,2024-02-01")).expect("valid");
        assert!(f.since.is_some_and(|(s, e)| e.is_some_and(|e| e > s)));
        let f = result_filter(&p("item:like=foo-*&item:like=bar-*")).expect("valid");
        assert_eq!(f.data[0].values, ["foo-*", "bar-*"]);
        assert!(f.data[0].like);
        // An empty value is a value (upstream: `item=` matches an empty
        // item), never "no filter".
        let f = result_filter(&p("item=&type=koji_build,")).expect("valid");
        assert_eq!(f.data[0].values, [""]);
        assert_eq!(f.data[1].values, ["koji_build", ""]);
    }

    #[test]
    fn bad_values_are_named() {
        let msg = |q: &str| match result_filter(&p(q)).and_then(|_| page(&p(q))) {
            Err(ApiError::Client { code, message, .. }) => format!("{code}: {message}"),
            other => format!("{other:?}"),
        };
        assert_eq!(msg("outcome=GREAT"), "unknown_outcome: outcome `GREAT` is not one of PASSED, INFO, FAILED, NEEDS_INSPECTION, ERROR, WAIVED, ABORTED, CRASHED");
        assert_eq!(
            msg("limit=0"),
            "bad_pagination: limit must be a whole number from 1 to 1000, not `0`"
        );
        assert_eq!(
            msg("page=-1"),
            "bad_pagination: page must be a whole number from 0, not `-1`"
        );
        assert_eq!(msg("since=yesterday"), "bad_since: since: `yesterday` is not a date/time like 2024-01-31 or 2024-01-31T12:00:00");
        assert_eq!(
            msg("item:regex=x"),
            "bad_filter: `item:regex`: unknown operator `regex` (only `:like` exists)"
        );
    }

    #[test]
    fn queries_are_bounded_and_say_so() {
        let msg = |q: &str| match pairs(Some(q)).and_then(|p| result_filter(&p)) {
            Err(ApiError::Client { code, message, .. }) => format!("{code}: {message}"),
            other => format!("{other:?}"),
        };
        let values = |n: usize| {
            (0..n)
                .map(|i| format!("v{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(result_filter(&p(&format!("item={}", values(MAX_QUERY_VALUES)))).is_ok());
        assert_eq!(
            msg(&format!("item={}", values(MAX_QUERY_VALUES + 1))),
            "query_too_large: a query may list at most 1000 values; this one has 1001"
        );
        assert_eq!(
            msg(&format!("item:like={}", values(MAX_LIKE_PATTERNS + 1))),
            "query_too_large: a query may hold at most 50 `:like` patterns; this one has 51"
        );
        let keys: Vec<String> = (0..=MAX_DATA_KEYS).map(|i| format!("k{i}=x")).collect();
        assert_eq!(
            msg(&keys.join("&")),
            "query_too_large: a query may filter on at most 50 data keys; this one has 51"
        );
    }

    #[test]
    fn next_page_keeps_the_filters() {
        let url = page_url(
            "http://h",
            "/api/v2.0/results",
            &p("item=a&page=0&limit=5"),
            1,
        );
        assert_eq!(url, "http://h/api/v2.0/results?item=a&limit=5&page=1");
    }
}
