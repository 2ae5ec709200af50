//! Mongo-style queries (the `when` of a rule, and of a mapping): a map of
//! field paths to conditions, all of which must hold.
//!
//! ```yaml
//! message_type: KojiBuildPackageCompleted          # equality
//! distgit_branch: {$regex: '^f[0-9]+$'}            # operators
//! name: {$nin: [kernel, glibc]}
//! body.artifact.release: {$in: [f40, f41]}         # dotted path
//! body: {owner: {$ne: mockbuilder}}                # nested map = nested query
//! $or: [{item_type: koji_build}, {item_type: bodhi_update}]
//! ```
//!
//! Operators: `$eq`, `$ne`, `$in`, `$nin`, `$regex`, `$exists`, and `$and`
//! / `$or` over lists of queries. Everything is checked while the YAML is
//! read (an unknown operator, a `$in` that is not a list, a regex that does
//! not compile), so a query that loaded cannot fail when it runs; matching
//! never panics, whatever the message holds.
//!
//! Comparison is by JSON type: the string `"1"` does not equal the number
//! `1` (fields extracted by mappings are strings; `body.*` keeps the
//! message's types). Like MongoDB, a condition on a field that holds a list
//! holds when it holds for one element, a missing field equals `null`, and
//! `$ne`/`$nin` hold for a missing field.

use std::fmt;

use regex::Regex;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// A compiled query: every clause must hold (an empty query matches all).
#[derive(Debug, Clone, Default)]
pub struct Query {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone)]
enum Clause {
    And(Vec<Query>),
    Or(Vec<Query>),
    Field { path: String, cond: Cond },
}

#[derive(Debug, Clone)]
enum Cond {
    /// All operators must hold.
    Ops(Vec<Op>),
    /// A map without operators: a query on the field's value.
    Nested(Query),
}

#[derive(Debug, Clone)]
enum Op {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Regex(Regex),
    Exists(bool),
}

/// Operators accepted in a field's condition map.
pub const FIELD_OPERATORS: &[&str] = &["$eq", "$ne", "$in", "$nin", "$regex", "$exists"];

/// The value at a dotted path (`body.artifact.builds.0.nvr`): object keys,
/// and list indexes given as numbers.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

impl Query {
    /// Whether `doc` satisfies the query.
    pub fn matches(&self, doc: &Value) -> bool {
        self.clauses.iter().all(|c| c.matches(doc))
    }

    /// Whether the query has no conditions (matches everything).
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }
}

impl Clause {
    fn matches(&self, doc: &Value) -> bool {
        match self {
            Clause::And(qs) => qs.iter().all(|q| q.matches(doc)),
            Clause::Or(qs) => qs.iter().any(|q| q.matches(doc)),
            Clause::Field { path, cond } => {
                let field = lookup(doc, path);
                match cond {
                    Cond::Ops(ops) => ops.iter().all(|op| op.matches(field)),
                    Cond::Nested(q) => q.matches(field.unwrap_or(&Value::Null)),
                }
            }
        }
    }
}

impl Op {
    fn matches(&self, field: Option<&Value>) -> bool {
        match self {
            Op::Eq(v) => equals(field, v),
            Op::Ne(v) => !equals(field, v),
            Op::In(list) => list.iter().any(|v| equals(field, v)),
            Op::Nin(list) => !list.iter().any(|v| equals(field, v)),
            Op::Regex(re) => match field {
                Some(Value::String(s)) => re.is_match(s),
                Some(Value::Array(a)) => a
                    .iter()
                    .any(|e| matches!(e, Value::String(s) if re.is_match(s))),
                _ => false,
            },
            Op::Exists(want) => field.is_some() == *want,
        }
    }
}

/// Mongo equality: a missing field equals `null`; a list field equals a
/// value one of its elements equals (or the whole list).
fn equals(field: Option<&Value>, want: &Value) -> bool {
    match field {
        None => want.is_null(),
        Some(v) if same(v, want) => true,
        Some(Value::Array(a)) => a.iter().any(|e| same(e, want)),
        Some(_) => false,
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        _ => a == b,
    }
}

// ---- loading -------------------------------------------------------------

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(QueryVisitor)
    }
}

struct QueryVisitor;

impl<'de> Visitor<'de> for QueryVisitor {
    type Value = Query;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a query: a map of field paths to values or {$operator: value}")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Query, E> {
        Ok(Query::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Query, A::Error> {
        let mut clauses = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let clause = match key.as_str() {
                "$and" => Clause::And(map.next_value::<QueryList>()?.0),
                "$or" => Clause::Or(map.next_value::<QueryList>()?.0),
                k if k.starts_with('$') => {
                    return map.next_value_seed(reject(format!(
                    "unknown operator `{k}` here (a query's keys are field paths, `$and` or `$or`)"
                )))
                }
                "" => return map.next_value_seed(reject("empty field path".into())),
                _ => Clause::Field {
                    path: key.clone(),
                    cond: map.next_value::<Cond>()?,
                },
            };
            clauses.push(clause);
        }
        Ok(Query { clauses })
    }
}

/// The list of `$and`/`$or`; must not be empty.
struct QueryList(Vec<Query>);

impl<'de> Deserialize<'de> for QueryList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Query>::deserialize(d)?;
        if list.is_empty() {
            return Err(de::Error::custom("needs at least one query"));
        }
        Ok(QueryList(list))
    }
}

/// Fails with its message wherever a value was expected, so the error
/// carries that value's line and key path.
struct Reject<T>(String, std::marker::PhantomData<T>);

fn reject<T>(msg: String) -> Reject<T> {
    Reject(msg, std::marker::PhantomData)
}

impl<'de, T> DeserializeSeed<'de> for Reject<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, _d: D) -> Result<T, D::Error> {
        Err(de::Error::custom(self.0))
    }
}

impl<'de> Deserialize<'de> for Cond {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CondVisitor)
    }
}

struct CondVisitor;

macro_rules! eq_scalar {
    ($name:ident, $t:ty) => {
        fn $name<E: de::Error>(self, v: $t) -> Result<Cond, E> {
            Ok(Cond::Ops(vec![Op::Eq(Value::from(v))]))
        }
    };
}

impl<'de> Visitor<'de> for CondVisitor {
    type Value = Cond;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value, a map of operators, or a nested query")
    }

    eq_scalar!(visit_bool, bool);
    eq_scalar!(visit_i64, i64);
    eq_scalar!(visit_u64, u64);
    eq_scalar!(visit_f64, f64);
    eq_scalar!(visit_str, &str);

    fn visit_unit<E: de::Error>(self) -> Result<Cond, E> {
        Ok(Cond::Ops(vec![Op::Eq(Value::Null)]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cond, A::Error> {
        let mut list = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            list.push(v);
        }
        Ok(Cond::Ops(vec![Op::Eq(Value::Array(list))]))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cond, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            // `field: {}`: the field holds an empty object.
            return Ok(Cond::Ops(vec![Op::Eq(Value::Object(Default::default()))]));
        };
        if !first.starts_with('$') {
            // A nested query on the field's value: rebuild it from here.
            let mut clauses = vec![Clause::Field {
                path: first,
                cond: map.next_value::<Cond>()?,
            }];
            let rest = QueryVisitor.visit_map(map)?;
            clauses.extend(rest.clauses);
            return Ok(Cond::Nested(Query { clauses }));
        }
        let mut ops = Vec::new();
        let mut key = Some(first);
        while let Some(k) = key {
            let op = match k.as_str() {
                "$eq" => Op::Eq(map.next_value()?),
                "$ne" => Op::Ne(map.next_value()?),
                "$in" => Op::In(map.next_value()?),
                "$nin" => Op::Nin(map.next_value()?),
                "$exists" => Op::Exists(map.next_value()?),
                "$regex" => Op::Regex(map.next_value_seed(RegexSeed)?),
                "$and" | "$or" => {
                    return map.next_value_seed(reject(format!(
                        "`{k}` goes at the level of field paths, not inside a field's condition"
                    )))
                }
                _ if k.starts_with('$') => {
                    return map.next_value_seed(reject(format!(
                        "unknown operator `{k}` (known: {})",
                        FIELD_OPERATORS.join(", ")
                    )))
                }
                _ => {
                    return map.next_value_seed(reject(format!(
                        "`{k}` mixed with operators: a condition map holds either operators or field names"
                    )))
                }
            };
            ops.push(op);
            key = map.next_key::<String>()?;
        }
        Ok(Cond::Ops(ops))
    }
}

/// Compiles a `$regex` while loading, so a bad one is a load error at its line.
struct RegexSeed;

impl<'de> DeserializeSeed<'de> for RegexSeed {
    type Value = Regex;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Regex, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s).map_err(|e| {
            // The regex crate's message spans several lines; keep the last.
            let why = e.to_string();
            let why = why.lines().last().unwrap_or("invalid").trim().to_string();
            de::Error::custom(format!("bad regex `{s}`: {why}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(yaml: &str) -> Query {
        crate::yaml::from_str(yaml).expect("valid query")
    }

    fn err(yaml: &str) -> String {
        crate::yaml::from_str::<Query>(yaml)
            .expect_err("invalid query")
            .to_string()
    }

    fn doc() -> Value {
        json!({
            "name": "bash", "release": "1.fc40", "arches": ["x86_64", "aarch64"],
            "body": {"new": 1, "owner": "alice", "artifact": {"builds": [{"nvr": "bash-5.2-1.fc40"}]}},
            "nothing": null,
        })
    }

    #[test]
    fn equality() {
        assert!(q("name: bash").matches(&doc()));
        assert!(!q("name: zsh").matches(&doc()));
        assert!(q("{name: bash, release: 1.fc40}").matches(&doc()));
        assert!(!q("{name: bash, release: 2.fc40}").matches(&doc()));
        assert!(q("name: {$eq: bash}").matches(&doc()));
        assert!(
            q("arches: aarch64").matches(&doc()),
            "a list field equals one of its elements"
        );
        assert!(
            q("arches: [x86_64, aarch64]").matches(&doc()),
            "or the whole list"
        );
        assert!(q("missing: null").matches(&doc()));
        assert!(q("nothing: null").matches(&doc()));
        assert!(q("{}").matches(&doc()) && q("").matches(&doc()));
    }

    #[test]
    fn nested_paths() {
        assert!(q("body.new: 1").matches(&doc()));
        assert!(
            q("body.new: 1.0").matches(&doc()),
            "numbers compare by value"
        );
        assert!(q("body.artifact.builds.0.nvr: bash-5.2-1.fc40").matches(&doc()));
        assert!(!q("body.artifact.builds.1.nvr: {$exists: true}").matches(&doc()));
        assert!(q("body: {owner: alice, new: {$in: [1, 2]}}").matches(&doc()));
        assert!(!q("body: {owner: bob}").matches(&doc()));
        assert!(
            !q("name.first: b").matches(&doc()),
            "a path through a string is missing"
        );
        assert!(!q("missing: {deeper: 1}").matches(&doc()));
    }

    #[test]
    fn ne_in_nin() {
        assert!(q("name: {$ne: zsh}").matches(&doc()));
        assert!(!q("name: {$ne: bash}").matches(&doc()));
        assert!(
            q("missing: {$ne: x}").matches(&doc()),
            "$ne holds for a missing field"
        );
        assert!(q("name: {$in: [zsh, bash]}").matches(&doc()));
        assert!(!q("name: {$in: []}").matches(&doc()));
        assert!(!q("missing: {$in: [a]}").matches(&doc()));
        assert!(q("name: {$nin: [kernel, glibc]}").matches(&doc()));
        assert!(!q("name: {$nin: [bash]}").matches(&doc()));
        assert!(q("missing: {$nin: [a]}").matches(&doc()));
        assert!(q("arches: {$in: [ppc64le, aarch64]}").matches(&doc()));
    }

    #[test]
    fn type_mismatches_do_not_match() {
        assert!(
            !q("body.new: {$in: ['1']}").matches(&doc()),
            "string vs number"
        );
        assert!(!q("release: {$in: [1]}").matches(&doc()));
        assert!(
            !q("body.new: {$regex: '1'}").matches(&doc()),
            "regex on a number"
        );
        assert!(
            !q("body: {$regex: '.'}").matches(&doc()),
            "regex on an object"
        );
        assert!(!q("name: true").matches(&doc()));
    }

    #[test]
    fn regex_and_exists() {
        assert!(q("release: {$regex: 'fc[0-9]+$'}").matches(&doc()));
        assert!(!q("release: {$regex: '^fc'}").matches(&doc()));
        assert!(q("arches: {$regex: '^aarch'}").matches(&doc()));
        assert!(!q("missing: {$regex: '.*'}").matches(&doc()));
        assert!(q("name: {$exists: true}").matches(&doc()));
        assert!(
            q("nothing: {$exists: true}").matches(&doc()),
            "null is present"
        );
        assert!(q("missing: {$exists: false}").matches(&doc()));
        assert!(!q("missing: {$exists: true}").matches(&doc()));
        assert!(q("name: {$exists: true, $nin: [zsh]}").matches(&doc()));
    }

    #[test]
    fn and_or() {
        assert!(q("$or: [{name: zsh}, {name: bash}]").matches(&doc()));
        assert!(!q("$or: [{name: zsh}, {name: fish}]").matches(&doc()));
        assert!(
            q("$and: [{name: bash}, {$or: [{body.new: 2}, {body.owner: alice}]}]").matches(&doc())
        );
        assert!(!q("$and: [{name: bash}, {body.new: 2}]").matches(&doc()));
    }

    #[test]
    fn load_errors_name_line_and_key() {
        assert_eq!(
            err("name: bash\nrelease: {$regx: a}\n"),
            "line 2: release.$regx: unknown operator `$regx` (known: $eq, $ne, $in, $nin, $regex, $exists)"
        );
        assert_eq!(
            err("a: 1\nname:\n  $regex: '(unclosed'\n"),
            "line 3: name.$regex: bad regex `(unclosed`: error: unclosed group"
        );
        assert_eq!(
            err("name: {$in: bash}"),
            "line 1: name.$in: invalid type: string \"bash\", expected a sequence"
        );
        assert_eq!(
            err("name: {$exists: yes please}"),
            "line 1: name.$exists: invalid type: string \"yes please\", expected a boolean"
        );
        assert_eq!(err("$nor: []"), "line 1: $nor: unknown operator `$nor` here (a query's keys are field paths, `$and` or `$or`)");
        assert_eq!(err("$or: []"), "line 1: $or: needs at least one query");
        assert_eq!(
            err("$or: {a: 1}"),
            "line 1: $or: invalid type: map, expected a sequence"
        );
        assert!(err("name: {$in: [a], other: 1}").contains("mixed with operators"));
        assert!(err("name: {$or: [{a: 1}]}").contains("goes at the level of field paths"));
        assert!(err("- a").contains("invalid type: sequence"));
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z$.0-9]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        "[a-z]{1,3}(\\.[a-z0-9]{1,2})?".prop_map(String::from),
                        proptest::sample::select(vec![
                            "$in", "$nin", "$eq", "$ne", "$regex", "$exists", "$and", "$or", "$x"
                        ])
                        .prop_map(String::from),
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever a query file and a message hold, loading either fails
        /// cleanly or gives a query that answers without panicking.
        #[test]
        fn never_panics(query in json_value(), doc in json_value()) {
            let text = serde_json::to_string(&query).expect("json");
            if let Ok(q) = crate::yaml::from_str::<Query>(&text) {
                let _ = q.matches(&doc);
            }
        }

        #[test]
        fn fixed_queries_never_panic(doc in json_value()) {
            for text in ["a: 1", "a.b: {$in: [1, x]}", "a: {$regex: 'x'}", "a.0: {$exists: true}",
                         "$or: [{a: {$nin: [null]}}, {b: {c: {$ne: 1}}}]", "a: [1, 2]"] {
                let _ = q(text).matches(&doc);
            }
        }
    }
}
