//! Testcases, groups and results: ResultsDB's data model.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;

use super::query::{like_pattern, Binder};
use super::{bind_all, now_micros, row_get, Page, ResultFilter, Store, StoreError};
use crate::results::{record, CheckResult, DataError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Testcase {
    pub name: String,
    pub ref_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub uuid: String,
    pub description: Option<String>,
    pub ref_url: Option<String>,
}

/// A group to attach (created on demand; given fields update it).
pub type NewGroup = Group;

/// A validated result to store.
#[derive(Debug, Clone)]
pub struct NewResult {
    pub testcase: Testcase,
    pub outcome: String,
    pub note: Option<String>,
    pub ref_url: Option<String>,
    /// Microseconds since the epoch.
    pub submit_time: i64,
    pub groups: Vec<NewGroup>,
    /// Key/value pairs; a key appears once per value.
    pub data: Vec<(String, String)>,
}

/// How one of its results names a Ferrotron job: its UUID (the ResultsDB
/// group), what ran (task or formula) and on what.
#[derive(Debug, Clone, Copy)]
pub struct JobRef<'a> {
    pub uuid: &'a str,
    pub what: &'a str,
    pub item: &'a str,
    pub arch: &'a str,
}

impl NewResult {
    /// The results of a Ferrotron job as ResultsDB keeps them: the one way
    /// both the scheduler (which stores them) and `run --report` (which
    /// posts them, [`NewResult::to_resultsdb_json`]) record a job's results.
    ///
    /// Each is in the job's group, with the result's own note, every key it
    /// carries as data ([`CheckResult::resultsdb_data`]: `item`, `type`,
    /// then its other keys; `arch` is the job's unless the result gives
    /// its own), and as `ref_url` its own, else its artifact's URL (an
    /// artifact is a path inside the job's artifacts folder), else the
    /// job's artifacts. Links are under `base` (the server's URL, or "" for
    /// links relative to the server that stores them).
    pub fn of_job(
        base: &str,
        job: JobRef<'_>,
        results: &[CheckResult],
        submit_time: i64,
    ) -> Result<Vec<NewResult>, DataError> {
        let job_url = format!("{base}/api/v1/jobs/{}", job.uuid);
        let group = NewGroup {
            uuid: job.uuid.to_string(),
            description: Some(format!(
                "ferrotron job {}: {} on {}",
                job.uuid, job.what, job.item
            )),
            ref_url: Some(job_url.clone()),
        };
        results
            .iter()
            .map(|r| {
                let mut data = r.resultsdb_data()?;
                if !data.iter().any(|(k, _)| k == "arch") {
                    // After `item` and `type`.
                    data.insert(2, ("arch".into(), job.arch.to_string()));
                }
                // The job folder's `artifacts/` is the task's artifacts folder.
                let artifact = r
                    .artifact
                    .as_deref()
                    .and_then(record::encoded_path)
                    .map(|p| format!("{job_url}/artifacts/artifacts/{p}"));
                let ref_url = r
                    .ref_url
                    .clone()
                    .or(artifact)
                    .unwrap_or_else(|| format!("{job_url}/artifacts"));
                Ok(NewResult {
                    testcase: Testcase {
                        name: r.checkname.clone(),
                        ref_url: None,
                    },
                    outcome: r.outcome.as_str().to_string(),
                    note: r.note.clone(),
                    ref_url: Some(ref_url),
                    submit_time,
                    groups: vec![group.clone()],
                    data,
                })
            })
            .collect()
    }

    /// The ResultsDB v2.0 `POST /results` body of this result (the server
    /// sets the submit time).
    pub fn to_resultsdb_json(&self) -> serde_json::Value {
        let mut data = serde_json::Map::new();
        for (k, v) in &self.data {
            match data.get_mut(k) {
                Some(serde_json::Value::Array(list)) => list.push(v.clone().into()),
                Some(one) => *one = serde_json::Value::Array(vec![one.take(), v.clone().into()]),
                None => {
                    data.insert(k.clone(), v.clone().into());
                }
            }
        }
        let groups: Vec<_> = self
            .groups
            .iter()
            .map(|g| {
                serde_json::json!({"uuid": g.uuid, "description": g.description, "ref_url": g.ref_url})
            })
            .collect();
        serde_json::json!({
            "outcome": self.outcome,
            "testcase": {"name": self.testcase.name},
            "groups": groups,
            "note": self.note,
            "ref_url": self.ref_url,
            "data": data,
        })
    }
}

/// A stored result with its groups and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub id: i64,
    pub testcase: Testcase,
    pub outcome: String,
    pub note: Option<String>,
    pub ref_url: Option<String>,
    pub submit_time: i64,
    pub groups: Vec<String>,
    pub data: BTreeMap<String, Vec<String>>,
}

const RESULT_COLUMNS: &str = "r.id, t.name AS tc_name, t.ref_url AS tc_ref_url, r.outcome, \
                              r.note, r.ref_url, r.submit_time";

fn result_from_row(row: &AnyRow) -> Result<ResultRow, StoreError> {
    Ok(ResultRow {
        id: row_get(row, "id")?,
        testcase: Testcase {
            name: row_get(row, "tc_name")?,
            ref_url: row_get(row, "tc_ref_url")?,
        },
        outcome: row_get(row, "outcome")?,
        note: row_get(row, "note")?,
        ref_url: row_get(row, "ref_url")?,
        submit_time: row_get(row, "submit_time")?,
        groups: Vec::new(),
        data: BTreeMap::new(),
    })
}

async fn upsert_testcase(conn: &mut sqlx::AnyConnection, tc: &Testcase) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO testcases (name, ref_url) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET ref_url = COALESCE(excluded.ref_url, testcases.ref_url) \
         RETURNING id",
    )
    .bind(tc.name.clone())
    .bind(tc.ref_url.clone())
    .fetch_one(&mut *conn)
    .await?;
    row_get(&row, "id")
}

async fn upsert_group(conn: &mut sqlx::AnyConnection, g: &Group) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO groups (uuid, description, ref_url) VALUES ($1, $2, $3) \
         ON CONFLICT (uuid) DO UPDATE SET \
           description = COALESCE(excluded.description, groups.description), \
           ref_url = COALESCE(excluded.ref_url, groups.ref_url) \
         RETURNING id",
    )
    .bind(g.uuid.clone())
    .bind(g.description.clone())
    .bind(g.ref_url.clone())
    .fetch_one(&mut *conn)
    .await?;
    row_get(&row, "id")
}

async fn insert_result(
    conn: &mut sqlx::AnyConnection,
    r: &NewResult,
    testcase_id: i64,
    group_ids: &[i64],
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO results (testcase_id, outcome, note, ref_url, submit_time) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(testcase_id)
    .bind(r.outcome.clone())
    .bind(r.note.clone())
    .bind(r.ref_url.clone())
    .bind(r.submit_time)
    .fetch_one(&mut *conn)
    .await?;
    let id: i64 = row_get(&row, "id")?;
    for gid in group_ids {
        sqlx::query(
            "INSERT INTO results_groups (result_id, group_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(*gid)
        .execute(&mut *conn)
        .await?;
    }
    if !r.data.is_empty() {
        let mut b = Binder::default();
        let rid = b.int(id);
        let values = r
            .data
            .iter()
            .map(|(k, v)| format!("({rid}, {}, {})", b.text(k), b.text(v)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO result_data (result_id, key, value) VALUES {values}");
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .execute(&mut *conn)
            .await?;
    }
    Ok(id)
}

impl Store {
    /// Stores one result, creating its testcase and groups on demand.
    pub async fn create_result(&self, r: &NewResult) -> Result<ResultRow, StoreError> {
        let mut tx = self.begin().await?;
        let tc = upsert_testcase(&mut tx.tx, &r.testcase).await?;
        let mut gids = Vec::with_capacity(r.groups.len());
        for g in &r.groups {
            gids.push(upsert_group(&mut tx.tx, g).await?);
        }
        let id = insert_result(&mut tx.tx, r, tc, &gids).await?;
        super::search::index_notes(&mut tx, self.backend, &[(id, r)]).await?;
        super::outbox::result_stored(&mut tx, id, tc, &r.outcome, &r.data, now_micros()).await?;
        tx.commit().await?;
        self.get_result(id).await?.ok_or(StoreError::NotFound {
            what: "result",
            name: id.to_string(),
        })
    }

    /// Stores many results quickly (seeding, imports): ids are allocated
    /// up front (the sequence on PostgreSQL; after the current maximum on
    /// SQLite, under the writer lock), so each chunk is three multi-row
    /// statements in one transaction instead of one round trip per row.
    pub async fn create_results_bulk(&self, results: &[NewResult]) -> Result<(), StoreError> {
        // 400 rows keep every statement under SQLite's 32766 parameters even
        // with a dozen data values per result.
        for chunk in results.chunks(400) {
            let mut tx = self.begin().await?;
            self.insert_chunk(&mut tx, chunk).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Stores results copied from another server (`results import`) and
    /// the import's cursor (a host flag) in one transaction: a page is
    /// either stored with its cursor or not at all, so an interrupted
    /// import resumes without duplicates.
    pub async fn import_results_page(
        &self,
        results: &[NewResult],
        cursor: (&str, &str),
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for chunk in results.chunks(400) {
            self.insert_chunk(&mut tx, chunk).await?;
        }
        super::queue::set_flag_in(&mut tx, cursor.0, Some(cursor.1)).await?;
        tx.commit().await
    }

    /// One chunk (at most 400 results) of [`Store::create_results_bulk`],
    /// in the caller's transaction.
    async fn insert_chunk(
        &self,
        tx: &mut super::WriteTx,
        chunk: &[NewResult],
    ) -> Result<(), StoreError> {
        let mut testcases: BTreeMap<String, i64> = BTreeMap::new();
        let mut groups: BTreeMap<String, i64> = BTreeMap::new();
        for r in chunk {
            if !testcases.contains_key(&r.testcase.name) {
                let id = upsert_testcase(&mut tx.tx, &r.testcase).await?;
                testcases.insert(r.testcase.name.clone(), id);
            }
            for g in &r.groups {
                if !groups.contains_key(&g.uuid) {
                    let id = upsert_group(&mut tx.tx, g).await?;
                    groups.insert(g.uuid.clone(), id);
                }
            }
        }
        let ids = self.allocate_result_ids(&mut tx.tx, chunk.len()).await?;
        let mut b = Binder::default();
        let mut rows = Vec::with_capacity(chunk.len());
        let mut links = Vec::new();
        let mut data = Vec::new();
        for (r, id) in chunk.iter().zip(&ids) {
            let tc = testcases.get(&r.testcase.name).copied().unwrap_or_default();
            rows.push(format!(
                "({}, {}, {}, {}, {}, {})",
                b.int(*id),
                b.int(tc),
                b.text(&r.outcome),
                b.opt_text(r.note.as_deref()),
                b.opt_text(r.ref_url.as_deref()),
                b.int(r.submit_time)
            ));
            for g in &r.groups {
                if let Some(gid) = groups.get(&g.uuid) {
                    links.push((*id, *gid));
                }
            }
            for (k, v) in &r.data {
                data.push((*id, k.as_str(), v.as_str()));
            }
        }
        let sql = format!(
            "INSERT INTO results (id, testcase_id, outcome, note, ref_url, submit_time) VALUES {}",
            rows.join(", ")
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .execute(&mut *tx.tx)
            .await?;
        if !links.is_empty() {
            let mut b = Binder::default();
            let values = links
                .iter()
                .map(|(r, g)| format!("({}, {})", b.int(*r), b.int(*g)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO results_groups (result_id, group_id) VALUES {values} \
             ON CONFLICT DO NOTHING"
            );
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
                .execute(&mut *tx.tx)
                .await?;
        }
        for part in data.chunks(3000) {
            let mut b = Binder::default();
            let values = part
                .iter()
                .map(|(r, k, v)| format!("({}, {}, {})", b.int(*r), b.text(k), b.text(v)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("INSERT INTO result_data (result_id, key, value) VALUES {values}");
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
                .execute(&mut *tx.tx)
                .await?;
        }
        let notes: Vec<(i64, &NewResult)> = ids.iter().copied().zip(chunk).collect();
        super::search::index_notes(tx, self.backend, &notes).await?;
        let at = now_micros();
        for (r, id) in chunk.iter().zip(&ids) {
            let tc = testcases.get(&r.testcase.name).copied().unwrap_or_default();
            super::outbox::result_stored(tx, *id, tc, &r.outcome, &r.data, at).await?;
        }
        Ok(())
    }

    /// `n` fresh result ids, inside the caller's write transaction.
    async fn allocate_result_ids(
        &self,
        conn: &mut sqlx::AnyConnection,
        n: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        match self.backend {
            super::Backend::Postgres => {
                let rows = sqlx::query(
                    "SELECT nextval(pg_get_serial_sequence('results', 'id')) AS id \
                     FROM generate_series(1, $1)",
                )
                .bind(n)
                .fetch_all(&mut *conn)
                .await?;
                rows.iter().map(|r| row_get(r, "id")).collect()
            }
            super::Backend::Sqlite => {
                // The in-process writer lock is held; another process writing
                // meanwhile makes this transaction fail (SQLITE_BUSY), not collide.
                let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM results")
                    .fetch_one(&mut *conn)
                    .await?;
                let max: i64 = row_get(&row, "id")?;
                Ok((1..=n).map(|i| max + i).collect())
            }
        }
    }

    pub async fn get_result(&self, id: i64) -> Result<Option<ResultRow>, StoreError> {
        let sql = format!(
            "SELECT {RESULT_COLUMNS} FROM results r JOIN testcases t ON t.id = r.testcase_id \
             WHERE r.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut rows = vec![result_from_row(&row)?];
        self.hydrate(&mut rows).await?;
        Ok(rows.pop())
    }

    /// One page of matching results, newest first, and whether more follow.
    pub async fn list_results(
        &self,
        filter: &ResultFilter,
        page: Page,
    ) -> Result<(Vec<ResultRow>, bool), StoreError> {
        let mut b = Binder::default();
        let w = filter.where_clause(&mut b);
        let limit = b.int(page.limit + 1);
        let offset = b.int(page.page.saturating_mul(page.limit));
        let order = if filter.oldest_first { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {RESULT_COLUMNS} FROM results r JOIN testcases t ON t.id = r.testcase_id {w} \
             ORDER BY r.submit_time {order}, r.id {order} LIMIT {limit} OFFSET {offset}"
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .fetch_all(&self.pool)
            .await?;
        let out = rows
            .iter()
            .map(result_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let (mut out, more) = page.cut(out);
        self.hydrate(&mut out).await?;
        Ok((out, more))
    }

    /// The newest matching result of each testcase.
    pub async fn latest_results(
        &self,
        filter: &ResultFilter,
        distinct_on: &[String],
    ) -> Result<Vec<ResultRow>, StoreError> {
        let mut b = Binder::default();
        // `_distinct_on`: one group per testcase and combination of those
        // data values; a result lacking a key has NULL there (its own
        // group), one with several values is in a group for each.
        let mut joins = String::new();
        let mut partition = vec!["r.testcase_id".to_string()];
        for (i, key) in distinct_on.iter().enumerate() {
            joins.push_str(&format!(
                " LEFT JOIN result_data dd{i} ON dd{i}.result_id = r.id AND dd{i}.key = {}",
                b.text(key)
            ));
            partition.push(format!("dd{i}.value"));
        }
        let w = filter.where_clause(&mut b);
        let sql = format!(
            "SELECT * FROM (SELECT {RESULT_COLUMNS}, ROW_NUMBER() OVER \
               (PARTITION BY {} ORDER BY r.submit_time DESC, r.id DESC) AS rn \
             FROM results r JOIN testcases t ON t.id = r.testcase_id{joins} {w}) x \
             WHERE x.rn = 1 ORDER BY x.submit_time DESC, x.id DESC",
            partition.join(", ")
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .fetch_all(&self.pool)
            .await?;
        let mut out = rows
            .iter()
            .map(result_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // The latest of two groups is shown once.
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|r| seen.insert(r.id));
        self.hydrate(&mut out).await?;
        Ok(out)
    }

    /// Fills in groups and data of `rows` (two queries for the whole page).
    async fn hydrate(&self, rows: &mut [ResultRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Integers from the database: safe to inline.
        let ids = rows
            .iter()
            .map(|r| r.id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let index: BTreeMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let sql = format!(
            "SELECT rg.result_id, g.uuid FROM results_groups rg JOIN groups g ON g.id = rg.group_id \
             WHERE rg.result_id IN ({ids}) ORDER BY g.uuid"
        );
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
        {
            let rid: i64 = row_get(&row, "result_id")?;
            if let Some(i) = index.get(&rid) {
                rows[*i].groups.push(row_get(&row, "uuid")?);
            }
        }
        let sql = format!(
            "SELECT result_id, key, value FROM result_data WHERE result_id IN ({ids}) ORDER BY id"
        );
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
        {
            let rid: i64 = row_get(&row, "result_id")?;
            if let Some(i) = index.get(&rid) {
                rows[*i]
                    .data
                    .entry(row_get(&row, "key")?)
                    .or_default()
                    .push(row_get(&row, "value")?);
            }
        }
        Ok(())
    }

    /// Creates a testcase or updates its `ref_url`.
    pub async fn put_testcase(&self, tc: &Testcase) -> Result<Testcase, StoreError> {
        let mut tx = self.begin().await?;
        upsert_testcase(&mut tx.tx, tc).await?;
        tx.commit().await?;
        self.get_testcase(&tc.name)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "testcase",
                name: tc.name.clone(),
            })
    }

    pub async fn get_testcase(&self, name: &str) -> Result<Option<Testcase>, StoreError> {
        let row = sqlx::query("SELECT name, ref_url FROM testcases WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Testcase {
                name: row_get(&r, "name")?,
                ref_url: row_get(&r, "ref_url")?,
            })
        })
        .transpose()
    }

    /// Testcases by name (exact names, or `*` patterns), sorted by name.
    pub async fn list_testcases(
        &self,
        names: &[String],
        like: &[String],
        page: Page,
    ) -> Result<(Vec<Testcase>, bool), StoreError> {
        let mut b = Binder::default();
        let mut conds = Vec::new();
        if !names.is_empty() {
            let l = names
                .iter()
                .map(|n| b.text(n))
                .collect::<Vec<_>>()
                .join(", ");
            conds.push(format!("name IN ({l})"));
        }
        for p in like {
            conds.push(format!(
                "name LIKE {} ESCAPE '\\'",
                b.text(&like_pattern(p))
            ));
        }
        let w = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" OR "))
        };
        let limit = b.int(page.limit + 1);
        let offset = b.int(page.page.saturating_mul(page.limit));
        let sql = format!(
            "SELECT name, ref_url FROM testcases {w} ORDER BY name LIMIT {limit} OFFSET {offset}"
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .fetch_all(&self.pool)
            .await?;
        let out = rows
            .iter()
            .map(|r| {
                Ok(Testcase {
                    name: row_get(r, "name")?,
                    ref_url: row_get(r, "ref_url")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page.cut(out))
    }

    /// Creates a group or updates its description and `ref_url`.
    pub async fn put_group(&self, g: &Group) -> Result<Group, StoreError> {
        let mut tx = self.begin().await?;
        upsert_group(&mut tx.tx, g).await?;
        tx.commit().await?;
        self.get_group(&g.uuid)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "group",
                name: g.uuid.clone(),
            })
    }

    pub async fn get_group(&self, uuid: &str) -> Result<Option<Group>, StoreError> {
        let row = sqlx::query("SELECT uuid, description, ref_url FROM groups WHERE uuid = $1")
            .bind(uuid.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    /// Groups, newest first, optionally by uuid or description pattern.
    /// How many results each of `uuids` holds (groups without results
    /// are 0; unknown ones absent).
    pub async fn group_result_counts(
        &self,
        uuids: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        if uuids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut b = Binder::default();
        let l = uuids
            .iter()
            .map(|u| b.text(u))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT g.uuid AS uuid, COUNT(rg.result_id) AS n FROM groups g \
             LEFT JOIN results_groups rg ON rg.group_id = g.id \
             WHERE g.uuid IN ({l}) GROUP BY g.uuid"
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((row_get(r, "uuid")?, row_get(r, "n")?)))
            .collect()
    }

    pub async fn list_groups(
        &self,
        uuids: &[String],
        descriptions: &[String],
        description_like: &[String],
        page: Page,
    ) -> Result<(Vec<Group>, bool), StoreError> {
        let mut b = Binder::default();
        let mut conds = Vec::new();
        if !uuids.is_empty() {
            let l = uuids
                .iter()
                .map(|n| b.text(n))
                .collect::<Vec<_>>()
                .join(", ");
            conds.push(format!("uuid IN ({l})"));
        }
        let mut desc: Vec<String> = descriptions
            .iter()
            .map(|d| format!("description = {}", b.text(d)))
            .collect();
        desc.extend(
            description_like
                .iter()
                .map(|p| format!("description LIKE {} ESCAPE '\\'", b.text(&like_pattern(p)))),
        );
        if !desc.is_empty() {
            conds.push(format!("({})", desc.join(" OR ")));
        }
        let w = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let limit = b.int(page.limit + 1);
        let offset = b.int(page.page.saturating_mul(page.limit));
        let sql = format!(
            "SELECT uuid, description, ref_url FROM groups {w} ORDER BY id DESC \
             LIMIT {limit} OFFSET {offset}"
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
            .fetch_all(&self.pool)
            .await?;
        let out = rows
            .iter()
            .map(group_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.cut(out))
    }
}

fn group_from_row(r: &AnyRow) -> Result<Group, StoreError> {
    Ok(Group {
        uuid: row_get(r, "uuid")?,
        description: row_get(r, "description")?,
        ref_url: row_get(r, "ref_url")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::results::{resultyaml, Defaults, Outcome};

    const JOB: JobRef<'static> = JobRef {
        uuid: "0b6f8c1e-job",
        what: "rpmlint",
        item: "foo-1.0-1.fc40",
        arch: "x86_64",
    };

    fn parsed(text: &str) -> Vec<CheckResult> {
        let p = resultyaml::parse(text, &Defaults::new("foo-1.0-1.fc40", "koji_build", "t"));
        assert!(p.is_clean(), "{:?}", p.problems);
        p.results
    }

    fn data(r: &NewResult) -> BTreeMap<&str, Vec<&str>> {
        let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &r.data {
            out.entry(k.as_str()).or_default().push(v.as_str());
        }
        out
    }

    #[test]
    fn every_key_is_kept_and_lists_are_several_values() {
        let results = parsed(
            "results:
  - checkname: openqa
    outcome: passed
    note: all good
    scenario: fedora.universal.x86_64.64bit
    arch: [x86_64, i686]
    firmware: uefi
    retries: 2
    details: {output: fine}
",
        );
        let got = NewResult::of_job("https://ft.example", JOB, &results, 7).expect("valid");
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.testcase.name, "openqa");
        assert_eq!(r.outcome, "PASSED");
        assert_eq!(r.note.as_deref(), Some("all good"));
        assert_eq!(r.submit_time, 7);
        assert_eq!(
            data(r),
            BTreeMap::from([
                ("item", vec!["foo-1.0-1.fc40"]),
                ("type", vec!["koji_build"]),
                ("arch", vec!["x86_64", "i686"]),
                ("details.output", vec!["fine"]),
                ("firmware", vec!["uefi"]),
                ("retries", vec!["2"]),
                ("scenario", vec!["fedora.universal.x86_64.64bit"]),
            ])
        );
        assert_eq!(
            r.ref_url.as_deref(),
            Some("https://ft.example/api/v1/jobs/0b6f8c1e-job/artifacts")
        );
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].uuid, JOB.uuid);
        // The POST body carries the same: lists stay lists.
        let body = r.to_resultsdb_json();
        assert_eq!(body["data"]["arch"], json!(["x86_64", "i686"]));
        assert_eq!(
            body["data"]["scenario"],
            json!("fedora.universal.x86_64.64bit")
        );
        assert_eq!(body["note"], json!("all good"));
    }

    #[test]
    fn the_jobs_arch_when_the_result_has_none() {
        let results = parsed("results:\n  - outcome: INFO\n");
        let got = NewResult::of_job("", JOB, &results, 0).expect("valid");
        assert_eq!(
            got[0].data,
            [
                ("item".to_string(), "foo-1.0-1.fc40".to_string()),
                ("type".to_string(), "koji_build".to_string()),
                ("arch".to_string(), "x86_64".to_string()),
            ]
        );
        assert_eq!(got[0].note, None);
    }

    #[test]
    fn artifact_becomes_the_ref_url_and_an_explicit_ref_url_wins() {
        let results = parsed(
            "results:
  - {checkname: a, outcome: PASSED, artifact: logs/a b.log}
  - {checkname: b, outcome: PASSED, artifact: logs/b.log, ref_url: 'https://ci.example/b'}
  - {checkname: c, outcome: PASSED, ref_url: 'https://ci.example/c'}
  - {checkname: d, outcome: PASSED, artifact: ../outside.log}
",
        );
        let got = NewResult::of_job("http://127.0.0.1:8080", JOB, &results, 0).expect("valid");
        let urls: Vec<_> = got.iter().map(|r| r.ref_url.as_deref()).collect();
        assert_eq!(
            urls,
            [
                Some("http://127.0.0.1:8080/api/v1/jobs/0b6f8c1e-job/artifacts/artifacts/logs/a%20b.log"),
                Some("https://ci.example/b"),
                Some("https://ci.example/c"),
                Some("http://127.0.0.1:8080/api/v1/jobs/0b6f8c1e-job/artifacts"),
            ]
        );
        // Neither becomes data.
        for r in &got {
            assert!(
                r.data
                    .iter()
                    .all(|(k, _)| k != "ref_url" && k != "artifact"),
                "{:?}",
                r.data
            );
        }
    }

    #[test]
    fn a_result_built_with_a_bad_key_is_refused() {
        let r = CheckResult {
            item: "i".into(),
            item_type: "t".into(),
            checkname: "c".into(),
            outcome: Outcome::Passed,
            note: None,
            artifact: None,
            ref_url: None,
            extra: BTreeMap::from([("a:b".to_string(), json!(1))]),
        };
        let e = NewResult::of_job("", JOB, &[r], 0).expect_err("bad key");
        assert_eq!(e.top_key(), "a:b");
    }
}
