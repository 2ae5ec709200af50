//! ResultsDB's result filters turned into one SQL `WHERE` clause, shared by
//! the listing and `latest`.

use super::Param;

/// A filter on one data key: any of the values (comma means OR), exact or
/// with `*` wildcards (`key:like=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFilter {
    pub key: String,
    pub values: Vec<String>,
    pub like: bool,
}

/// Every filter ResultsDB's `GET /results` accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultFilter {
    /// `since=start[,end]`, microseconds, inclusive.
    pub since: Option<(i64, Option<i64>)>,
    pub outcomes: Vec<String>,
    pub testcases: Vec<String>,
    pub testcases_like: Vec<String>,
    pub groups: Vec<String>,
    pub data: Vec<DataFilter>,
    /// `_sort=asc:submit_time`: oldest first (listings only; the default
    /// is newest first).
    pub oldest_first: bool,
}

/// Page number (from 0) and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub limit: i64,
}

impl Page {
    /// Cuts rows fetched with `LIMIT limit + 1` to the page; true when
    /// there are more (the extra row was there).
    pub(crate) fn cut<T>(&self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(usize::try_from(self.limit).unwrap_or(0));
        (rows, more)
    }
}

/// `*` is the user's wildcard; `%`, `_` and `\` are escaped.
pub(crate) fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Collects bound values and hands out their `$N` markers.
#[derive(Default)]
pub(crate) struct Binder {
    pub params: Vec<Param>,
}

impl Binder {
    pub fn text(&mut self, s: &str) -> String {
        self.params.push(Param::Text(s.to_string()));
        format!("${}", self.params.len())
    }
    pub fn opt_text(&mut self, s: Option<&str>) -> String {
        self.params.push(Param::OptText(s.map(str::to_string)));
        format!("${}", self.params.len())
    }
    pub fn int(&mut self, i: i64) -> String {
        self.params.push(Param::Int(i));
        format!("${}", self.params.len())
    }
    fn list(&mut self, values: &[String]) -> String {
        values
            .iter()
            .map(|v| self.text(v))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl ResultFilter {
    /// `WHERE ...` over `results r JOIN testcases t` (empty when no filter).
    /// Whether nothing is filtered on.
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.outcomes.is_empty()
            && self.testcases.is_empty()
            && self.testcases_like.is_empty()
            && self.groups.is_empty()
            && self.data.is_empty()
    }

    pub(crate) fn where_clause(&self, b: &mut Binder) -> String {
        let mut conds: Vec<String> = Vec::new();
        if let Some((start, end)) = self.since {
            conds.push(format!("r.submit_time >= {}", b.int(start)));
            if let Some(end) = end {
                conds.push(format!("r.submit_time <= {}", b.int(end)));
            }
        }
        if !self.outcomes.is_empty() {
            conds.push(format!("r.outcome IN ({})", b.list(&self.outcomes)));
        }
        let mut tc: Vec<String> = Vec::new();
        if !self.testcases.is_empty() {
            tc.push(format!("t.name IN ({})", b.list(&self.testcases)));
        }
        for p in &self.testcases_like {
            tc.push(format!(
                "t.name LIKE {} ESCAPE '\\'",
                b.text(&like_pattern(p))
            ));
        }
        if !tc.is_empty() {
            conds.push(format!("({})", tc.join(" OR ")));
        }
        if !self.groups.is_empty() {
            conds.push(format!(
                "r.id IN (SELECT rg.result_id FROM results_groups rg \
                 JOIN groups g ON g.id = rg.group_id WHERE g.uuid IN ({}))",
                b.list(&self.groups)
            ));
        }
        for f in &self.data {
            let key = b.text(&f.key);
            let values = if f.like {
                f.values
                    .iter()
                    .map(|v| format!("d.value LIKE {} ESCAPE '\\'", b.text(&like_pattern(v))))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            } else {
                format!("d.value IN ({})", b.list(&f.values))
            };
            // `item` is what consumers filter by and it is selective: its
            // matches drive the query. Other keys (`type`, `arch`) match
            // most rows and are checked per candidate through the covering
            // (key, value, result_id) index; materialising them cost 100x.
            if f.key == "item" && !f.like {
                conds.push(format!(
                    "r.id IN (SELECT d.result_id FROM result_data d \
                     WHERE d.key = {key} AND ({values}))"
                ));
            } else {
                conds.push(format!(
                    "EXISTS (SELECT 1 FROM result_data d WHERE d.result_id = r.id \
                     AND d.key = {key} AND ({values}))"
                ));
            }
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_escaped() {
        assert_eq!(like_pattern("dist.*"), "dist.%");
        assert_eq!(like_pattern("a_b%c*"), "a\\_b\\%c%");
    }

    #[test]
    fn clause_binds_every_value() {
        let f = ResultFilter {
            outcomes: vec!["PASSED".into(), "INFO".into()],
            testcases_like: vec!["dist.*".into()],
            data: vec![DataFilter {
                key: "item".into(),
                values: vec!["a".into(), "b".into()],
                like: false,
            }],
            ..ResultFilter::default()
        };
        let mut b = Binder::default();
        let w = f.where_clause(&mut b);
        assert_eq!(b.params.len(), 6);
        assert!(w.contains("r.outcome IN ($1, $2)"), "{w}");
        assert!(w.contains("d.key = $4 AND (d.value IN ($5, $6))"), "{w}");
        assert_eq!(
            ResultFilter::default().where_clause(&mut Binder::default()),
            ""
        );
    }
}
