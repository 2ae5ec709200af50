//! The rules file (taskotron-trigger style) and what it makes of a message.
//!
//! ```yaml
//! - when:
//!     message_type: KojiBuildPackageCompleted
//!     name: {$nin: [kernel]}
//!   do:
//!     - tasks: [rpmlint, {name: nvr-policy, path: examples/nvr-policy}]
//!       repo: https://pagure.io/taskotron/tasks.git   # default for the tasks
//!       ref: main                                      # default HEAD
//!       arches: [x86_64, aarch64]                      # default: the message's arch, else x86_64
//!       priority: 10                                   # default 0, higher first
//!       image: tiny                                    # default: the formula's
//!       timeout: 1800                                  # seconds for the whole job; default: the service's
//!       hold_on_failure:                               # keep a failed job's VM for someone
//!         for: 2h                                      # how long once it failed
//!         ssh_key: ssh-ed25519 AAAA... me@example     # who gets root in it
//!         requester: alice                             # whose limit it counts against (default `rules`)
//!         count: 1                                     # at most this many held at once (default 1)
//! ```
//!
//! A task is a name (its formula is `NAME/runtask.yml` in `repo`: one repo
//! with a folder per task) or `{name, repo, ref, path}` (`path: .` for one
//! repo per task). `repo`, `ref` and `path` may hold `{field}` placeholders
//! filled from the message's fields, e.g. the dist-git repo of the package:
//! `repo: https://src.fedoraproject.org/rpms/{name}.git`, `ref: "{commit}"`.
//! A relative local `repo` is taken relative to the rules file's folder.
//!
//! Loading checks everything at once and fails with one error naming file,
//! line and key; [`Rules::load`] builds a new value and touches nothing
//! else, so a service reloads by loading and swapping only on success.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::yaml::FileError;

use super::extract::Mappings;
use super::jobs::{Evaluation, JobRequest, Skipped};
use super::message::Message;
use super::query::Query;
use super::template::Template;

/// The arch of jobs when neither the rule nor the message gives one.
pub const DEFAULT_ARCH: &str = "x86_64";
/// The git ref of tasks when the rule gives none: the repo's default branch.
pub const DEFAULT_REF: &str = "HEAD";

/// A loaded, valid rules file.
#[derive(Debug, Clone)]
pub struct Rules {
    pub source: PathBuf,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    when: Query,
    #[serde(rename = "do")]
    actions: NonEmpty<Action>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    tasks: NonEmpty<Task>,
    repo: Option<Template>,
    #[serde(rename = "ref")]
    git_ref: Option<Template>,
    arches: Option<NonEmpty<Word>>,
    #[serde(default)]
    priority: i32,
    image: Option<Word>,
    /// Seconds the whole job (boot + task + collect) may take.
    timeout: Option<std::num::NonZeroU64>,
    /// Keep the VM of a failed job for someone (Zuul's autohold).
    hold_on_failure: Option<HoldRule>,
}

/// A rule's `hold_on_failure`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRule {
    #[serde(rename = "for")]
    duration: HoldFor,
    ssh_key: PublicKeyLine,
    requester: Option<Word>,
    count: Option<std::num::NonZeroU32>,
}

/// A duration like `2h`.
#[derive(Debug, Clone)]
struct HoldFor(u64);

impl<'de> Deserialize<'de> for HoldFor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match crate::util::parse_duration(&s) {
            Ok(t) if t.as_secs() > 0 => Ok(HoldFor(t.as_secs())),
            Ok(_) => Err(serde::de::Error::custom("a hold lasts at least 1 s")),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}

/// One OpenSSH public key line.
#[derive(Debug, Clone)]
struct PublicKeyLine(String);

impl<'de> Deserialize<'de> for PublicKeyLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let line = s.trim();
        if line.contains('\n') {
            return Err(serde::de::Error::custom("one public key line, not several"));
        }
        ssh_key::PublicKey::from_openssh(line)
            .map(|_| PublicKeyLine(line.to_string()))
            .map_err(|e| serde::de::Error::custom(format!("not an OpenSSH public key: {e}")))
    }
}

/// A task of a `do` item: a name, or `{name, repo, ref, path}`.
#[derive(Debug, Clone)]
struct Task {
    name: String,
    repo: Option<Template>,
    git_ref: Option<Template>,
    path: Option<Template>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskMap {
    name: Word,
    repo: Option<Template>,
    #[serde(rename = "ref")]
    git_ref: Option<Template>,
    path: Option<Template>,
}

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Task;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a task name or {name, repo, ref, path}")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Task, E> {
                let name = Word::new(s).map_err(E::custom)?;
                Ok(Task {
                    name: name.0,
                    repo: None,
                    git_ref: None,
                    path: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Task, A::Error> {
                let m = TaskMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Task {
                    name: m.name.0,
                    repo: m.repo,
                    git_ref: m.git_ref,
                    path: m.path,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A list that must have at least one element.
#[derive(Debug, Clone)]
struct NonEmpty<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        if v.is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(v))
    }
}

/// A task name, arch or image: no spaces, slashes or control characters,
/// since it ends up in paths and job names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word(String);

impl Word {
    fn new(s: &str) -> Result<Word, String> {
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:+".contains(c))
            && !s.starts_with('.');
        if ok {
            Ok(Word(s.to_string()))
        } else {
            Err(format!(
                "`{s}`: use letters, digits and `-_.:+` (not starting with `.`)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Word::new(&s).map_err(serde::de::Error::custom)
    }
}

impl Rules {
    /// Reads and validates a rules file. Builds a new value only: a service
    /// keeps its current rules when this fails.
    pub fn load(path: &Path) -> Result<Rules, FileError> {
        let text = crate::yaml::read("rules", path)?;
        Self::parse(path, &text)
    }

    /// Validates rules text; `path` names the file in messages and anchors
    /// relative local repositories.
    pub fn parse(path: &Path, text: &str) -> Result<Rules, FileError> {
        let mut rules: Vec<Rule> = crate::yaml::parse_file(path, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for (i, rule) in rules.iter_mut().enumerate() {
            for (j, action) in rule.actions.0.iter_mut().enumerate() {
                if let Some(r) = &mut action.repo {
                    *r = anchor(base, r);
                }
                for (k, task) in action.tasks.0.iter_mut().enumerate() {
                    if let Some(r) = &mut task.repo {
                        *r = anchor(base, r);
                    }
                    if task.repo.is_none() && action.repo.is_none() {
                        return Err(FileError::Invalid {
                            path: path.to_path_buf(),
                            line: tasks_line(text, i, j),
                            key: format!("[{i}].do[{j}].tasks[{k}]"),
                            message: format!(
                                "task `{}` has no repo: give `repo` in the task or beside `tasks`",
                                task.name
                            ),
                        });
                    }
                }
            }
        }
        Ok(Rules {
            source: path.to_path_buf(),
            rules,
        })
    }

    /// How many rules the file has.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many tasks the rules name in all.
    pub fn task_count(&self) -> usize {
        self.rules
            .iter()
            .flat_map(|r| &r.actions.0)
            .map(|a| a.tasks.0.len())
            .sum()
    }

    /// The jobs `msg` asks for, with the fields `mappings` extracted.
    pub fn evaluate(&self, mappings: &Mappings, msg: &Message) -> Evaluation {
        let extracted = mappings.extract(msg);
        let mut doc = Map::new();
        for (k, v) in &extracted.fields {
            doc.insert(k.clone(), Value::String(v.clone()));
        }
        doc.insert("topic".into(), Value::String(msg.topic.clone()));
        doc.insert("headers".into(), Value::Object(msg.headers.clone()));
        doc.insert("body".into(), msg.body.clone());
        let doc = Value::Object(doc);
        let fields = Value::Object(
            extracted
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );

        let mut ev = Evaluation {
            message_id: msg.id.clone(),
            topic: msg.topic.clone(),
            extracted: extracted.clone(),
            matched_rules: Vec::new(),
            jobs: Vec::new(),
            skipped: Vec::new(),
        };
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.when.matches(&doc) {
                continue;
            }
            ev.matched_rules.push(i);
            for action in &rule.actions.0 {
                for task in &action.tasks.0 {
                    match job(i, action, task, &extracted.fields, &fields, msg) {
                        Ok(jobs) => {
                            for j in jobs {
                                if !ev.jobs.iter().any(|e| same_job(e, &j)) {
                                    ev.jobs.push(j);
                                }
                            }
                        }
                        Err(reason) => ev.skipped.push(Skipped {
                            rule: i,
                            task: task.name.clone(),
                            reason,
                        }),
                    }
                }
            }
        }
        ev
    }
}

/// A task repository as rendered from a message: a URL or an absolute
/// path, whose path has no `..` (a message field must not steer it to
/// another repository on this host), no query or fragment, no control
/// characters.
fn check_repo(repo: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("repo `{repo}` {why}"));
    if repo.chars().any(char::is_control) {
        return bad("holds control characters");
    }
    let path = match repo.split_once("://") {
        Some((_, rest)) => {
            if rest.contains(['?', '#']) {
                return bad("has a query or fragment: name a repository by its path only");
            }
            rest.find('/').map_or("", |i| &rest[i..])
        }
        None if repo.starts_with('/') => repo,
        None => {
            return bad("is neither a URL nor an absolute path (a relative one would depend on the service's working folder)")
        }
    };
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return bad("has `.` or `..` in its path");
    }
    Ok(())
}

/// The jobs of one task of one `do` item (one per arch).
fn job(
    rule: usize,
    action: &Action,
    task: &Task,
    fields: &BTreeMap<String, String>,
    doc: &Value,
    msg: &Message,
) -> Result<Vec<JobRequest>, String> {
    let need = |name: &str| {
        fields
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the message has no `{name}` field"))
    };
    let item = need("item")?;
    let item_type = need("item_type")?;
    let render = |what: &str, t: &Template| t.render(doc).map_err(|e| format!("{what} `{t}`: {e}"));
    let repo = match task.repo.as_ref().or(action.repo.as_ref()) {
        Some(t) => render("repo", t)?,
        None => return Err("no repo".into()),
    };
    let git_ref = match task.git_ref.as_ref().or(action.git_ref.as_ref()) {
        Some(t) => render("ref", t)?,
        None => DEFAULT_REF.to_string(),
    };
    let path = match &task.path {
        Some(t) => render("path", t)?,
        None => task.name.clone(),
    };
    if !is_contained(&path) {
        return Err(format!("path `{path}` leaves the repository"));
    }
    if git_ref.is_empty() || git_ref.starts_with('-') || git_ref.chars().any(char::is_control) {
        return Err(format!("ref `{git_ref}` is not a git ref"));
    }
    for (what, value) in [("item", &item), ("item_type", &item_type)] {
        if value.chars().any(char::is_control) {
            return Err(format!(
                "{what} {value:?} holds control characters (CR, LF, NUL, ...)"
            ));
        }
    }
    check_repo(&repo)?;
    let arches: Vec<String> = match &action.arches {
        Some(a) => a.0.iter().map(|w| w.0.clone()).collect(),
        // From the message: the same rule as the rules' own arches.
        None => vec![match fields.get("arch") {
            Some(arch) => Word::new(arch).map_err(|e| format!("arch {e}"))?.0,
            None => DEFAULT_ARCH.to_string(),
        }],
    };
    Ok(arches
        .into_iter()
        .map(|arch| JobRequest {
            message_id: msg.id.clone(),
            topic: msg.topic.clone(),
            item: item.clone(),
            item_type: item_type.clone(),
            arch,
            task: task.name.clone(),
            repo: repo.clone(),
            git_ref: git_ref.clone(),
            path: path.clone(),
            priority: action.priority,
            image: action.image.as_ref().map(|w| w.0.clone()),
            timeout: action.timeout.map(std::num::NonZeroU64::get),
            hold: action
                .hold_on_failure
                .as_ref()
                .map(|h| super::jobs::HoldRequest {
                    secs: h.duration.0,
                    ssh_key: h.ssh_key.0.clone(),
                    requester: h
                        .requester
                        .as_ref()
                        .map_or_else(|| "rules".to_string(), |w| w.0.clone()),
                    count: h.count.map_or(1, std::num::NonZeroU32::get),
                }),
            rule,
        })
        .collect())
}

/// Two rules asking for the same task on the same item and arch make one job.
fn same_job(a: &JobRequest, b: &JobRequest) -> bool {
    (
        &a.item,
        &a.item_type,
        &a.arch,
        &a.task,
        &a.repo,
        &a.git_ref,
        &a.path,
    ) == (
        &b.item,
        &b.item_type,
        &b.arch,
        &b.task,
        &b.repo,
        &b.git_ref,
        &b.path,
    )
}

/// A relative path that stays inside its root.
fn is_contained(p: &str) -> bool {
    let p = Path::new(p);
    !p.as_os_str().is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// A relative local repo (no URL scheme, no `host:path`, no placeholder) is
/// made absolute against the rules file's folder.
fn anchor(base: &Path, repo: &Template) -> Template {
    let s = repo.as_str();
    let remote = s.contains("://") || s.split('/').next().is_some_and(|h| h.contains(':'));
    if remote || repo.has_fields() || Path::new(s).is_absolute() {
        return repo.clone();
    }
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let mut out = PathBuf::new();
    for c in base.join(s).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    // The path came from a valid template without braces; re-escaping is
    // only needed for braces, which it cannot hold.
    Template::new(&out.to_string_lossy()).unwrap_or_else(|_| repo.clone())
}

/// 1-based line of the `tasks:` key of the `j`-th `do` item of rule `i`,
/// found from the text (rules are the lines starting with `- ` at column
/// 0), for an error found after deserializing; 1 if not found.
fn tasks_line(text: &str, i: usize, j: usize) -> usize {
    let mut rule: Option<usize> = None;
    let mut seen = 0;
    for (n, l) in text.lines().enumerate() {
        if l.starts_with("- ") {
            rule = Some(rule.map_or(0, |r| r + 1));
            seen = 0;
        }
        if l.trim_start()
            .trim_start_matches("- ")
            .starts_with("tasks:")
        {
            if rule == Some(i) && seen == j {
                return n + 1;
            }
            seen += 1;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Rules, FileError> {
        Rules::parse(Path::new("/etc/ferrotron/rules.yml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("invalid").to_string()
    }

    fn generic(body: Value) -> Evaluation {
        let rules = parse(RULES).expect("valid");
        let mappings = Mappings::builtin().expect("valid");
        rules.evaluate(
            &mappings,
            &Message::new(Some("m1".into()), "ferrotron.test", body),
        )
    }

    const RULES: &str = "\
- when: {item_type: koji_build, name: {$nin: [kernel]}}
  do:
    - tasks: [rpmlint, {name: own, repo: 'https://src.fedoraproject.org/rpms/{name}.git', ref: '{distgit_branch}', path: tests/own}]
      repo: ../tasks
      priority: 5
- when: {item_type: koji_build}
  do:
    - tasks: [rpmlint]
      repo: ../tasks
      arches: [x86_64, aarch64]
      image: tiny
";

    /// Message fields cannot steer a job to another repository on this
    /// host, nor bring control characters or an unchecked arch into it.
    #[test]
    fn hostile_message_fields_make_no_job() {
        let rules = parse(
            "- when: {item_type: koji_build}\n  do:\n    - tasks: [t]\n      repo: 'file:///srv/tasks/{name}'\n",
        )
        .expect("valid");
        let mappings = Mappings::builtin().expect("valid");
        for (body, says) in [
            (
                json!({"item": "a-1-1", "item_type": "koji_build", "name": "../hostsecret"}),
                "has `.` or `..` in its path",
            ),
            (
                json!({"item": "a-1-1", "item_type": "koji_build", "name": "bash.git#/x"}),
                "has a query or fragment",
            ),
            (
                json!({"item": "a-1-1\r\nX", "item_type": "koji_build", "name": "bash"}),
                "holds control characters",
            ),
            (
                json!({"item": "a-1-1", "item_type": "koji_build", "name": "bash", "arch": "x86_64 --evil"}),
                "arch `x86_64 --evil`",
            ),
        ] {
            let ev = rules.evaluate(&mappings, &Message::new(None, "t", body.clone()));
            assert!(ev.jobs.is_empty(), "{body}: {:?}", ev.jobs);
            assert!(
                ev.skipped.iter().any(|s| s.reason.contains(says)),
                "{body}: {:?}",
                ev.skipped
            );
        }
        let ok = rules.evaluate(
            &mappings,
            &Message::new(None, "t", json!({"item": "a-1-1", "item_type": "koji_build", "name": "bash", "arch": "aarch64"})),
        );
        assert_eq!(ok.jobs.len(), 1, "{:?}", ok.skipped);
        assert_eq!(
            (ok.jobs[0].repo.as_str(), ok.jobs[0].arch.as_str()),
            ("file:///srv/tasks/bash", "aarch64")
        );
    }

    #[test]
    fn jobs_from_a_message() {
        let ev = generic(
            json!({"item": "bash-1-1.fc40", "item_type": "koji_build", "name": "bash", "branch": "f40"}),
        );
        assert_eq!(ev.matched_rules, vec![0, 1]);
        let jobs: Vec<_> = ev
            .jobs
            .iter()
            .map(|j| {
                (
                    j.task.as_str(),
                    j.arch.as_str(),
                    j.repo.as_str(),
                    j.git_ref.as_str(),
                    j.path.as_str(),
                    j.priority,
                    j.rule,
                )
            })
            .collect();
        assert_eq!(
            jobs,
            vec![
                ("rpmlint", "x86_64", "/etc/tasks", "HEAD", "rpmlint", 5, 0),
                (
                    "own",
                    "x86_64",
                    "https://src.fedoraproject.org/rpms/bash.git",
                    "f40",
                    "tests/own",
                    5,
                    0
                ),
                // rule 1's x86_64 rpmlint duplicates rule 0's: only aarch64 is new.
                ("rpmlint", "aarch64", "/etc/tasks", "HEAD", "rpmlint", 0, 1),
            ]
        );
        assert_eq!(ev.jobs[0].item, "bash-1-1.fc40");
        assert_eq!(ev.jobs[0].message_id.as_deref(), Some("m1"));
        assert_eq!(ev.jobs[2].image.as_deref(), Some("tiny"));
        assert!(ev.skipped.is_empty());
    }

    #[test]
    fn arch_comes_from_the_message_then_the_default() {
        let ev = generic(
            json!({"item": "x", "item_type": "koji_build", "name": "x", "arch": "ppc64le", "branch": "f40"}),
        );
        assert_eq!(ev.jobs[0].arch, "ppc64le");
    }

    #[test]
    fn missing_fields_skip_the_task_with_a_reason() {
        let ev = generic(json!({"item": "bash-1-1", "item_type": "koji_build"}));
        assert_eq!(ev.skipped.len(), 1);
        assert_eq!(ev.skipped[0].task, "own");
        assert_eq!(
            ev.skipped[0].reason,
            "repo `https://src.fedoraproject.org/rpms/{name}.git`: no `name` in the message"
        );
        let ev = generic(json!({"item_type": "koji_build"}));
        assert!(ev.jobs.is_empty());
        assert!(ev
            .skipped
            .iter()
            .all(|s| s.reason == "the message has no `item` field"));
    }

    #[test]
    fn message_values_stay_data() {
        let ev = generic(
            json!({"item": "$(touch /tmp/x)", "item_type": "koji_build", "name": "a;b", "branch": "f40"}),
        );
        assert_eq!(ev.jobs[0].item, "$(touch /tmp/x)");
        assert_eq!(
            ev.jobs[1].repo,
            "https://src.fedoraproject.org/rpms/a;b.git"
        );
        let ev = generic(
            json!({"item": "i", "item_type": "koji_build", "name": "n", "branch": "--upload-pack=x"}),
        );
        assert_eq!(
            ev.skipped[0].reason,
            "ref `--upload-pack=x` is not a git ref"
        );
    }

    #[test]
    fn paths_stay_inside_the_repo() {
        let rules =
            parse("- when: {}\n  do:\n    - tasks: [{name: t, path: '{name}'}]\n      repo: /r\n")
                .expect("valid");
        let m = Mappings::builtin().expect("valid");
        let ev = rules.evaluate(
            &m,
            &Message::new(
                None,
                "x",
                json!({"item": "i", "item_type": "t", "name": "../../etc"}),
            ),
        );
        assert_eq!(
            ev.skipped[0].reason,
            "path `../../etc` leaves the repository"
        );
    }

    #[test]
    fn load_errors_name_file_line_and_key() {
        assert_eq!(
            err("- when: {name: bash}\n  do:\n    - tasks: [a]\n      repo: /r\n      arch: [x86_64]\n"),
            "/etc/ferrotron/rules.yml:5: [0].do[0].arch: unknown field `arch`, expected one of `tasks`, `repo`, `ref`, `arches`, `priority`, `image`, `timeout`, `hold_on_failure`"
        );
        assert_eq!(
            err("- when: {name: bash}\n  do:\n    - tasks: [a]\n      repo: /r\n      priority: high\n"),
            "/etc/ferrotron/rules.yml:5: [0].do[0].priority: invalid type: string \"high\", expected i32"
        );
        assert_eq!(
            err("- when:\n    name: {$regex: '['}\n  do:\n    - tasks: [a]\n      repo: /r\n"),
            "/etc/ferrotron/rules.yml:2: [0].when.name.$regex: bad regex `[`: error: unclosed character class"
        );
        assert_eq!(
            err("- when: {name: bash}\n  do:\n    - tasks: []\n      repo: /r\n"),
            "/etc/ferrotron/rules.yml:3: [0].do[0].tasks: must not be empty"
        );
        assert_eq!(
            err("- when: {}\n  do:\n    - tasks: [ok]\n      repo: /r\n- when: {}\n  do:\n    - tasks: [a, b]\n"),
            "/etc/ferrotron/rules.yml:7: [1].do[0].tasks[0]: task `a` has no repo: give `repo` in the task or beside `tasks`"
        );
        assert_eq!(
            err("- when: {}\n  do:\n    - tasks: [{name: a, branch: x}]\n"),
            "/etc/ferrotron/rules.yml:3: [0].do[0].tasks[0].branch: unknown field `branch`, expected one of `name`, `repo`, `ref`, `path`"
        );
        assert!(
            err("- when: {}\n  do:\n    - tasks: ['a b']\n      repo: /r\n")
                .contains("[0].do[0].tasks[0]: `a b`: use letters")
        );
        assert!(err("- do:\n    - tasks: [a]\n").contains("missing field `when`"));
        assert!(err("when: {}\n").contains("(top level): invalid type: map, expected a sequence"));
    }

    #[test]
    fn holds_on_failure_are_checked_and_reach_the_jobs() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@example";
        let text = format!(
            "- when: {{}}\n  do:\n    - tasks: [a]\n      repo: /r\n      hold_on_failure: {{for: 2h, ssh_key: '{key}', requester: alice, count: 2}}\n"
        );
        let rules = parse(&text).expect("valid");
        let mappings = Mappings::builtin().expect("valid");
        let ev = rules.evaluate(
            &mappings,
            &Message::new(
                None,
                "org.example",
                json!({"item": "x-1-1", "item_type": "koji_build"}),
            ),
        );
        let hold = ev.jobs[0].hold.clone().expect("a hold");
        assert_eq!(
            (
                hold.secs,
                hold.ssh_key.as_str(),
                hold.requester.as_str(),
                hold.count
            ),
            (7200, key, "alice", 2)
        );
        let bad = err("- when: {}\n  do:\n    - tasks: [a]\n      repo: /r\n      hold_on_failure: {for: 2h, ssh_key: '$(reboot)'}\n");
        assert!(
            bad.starts_with("/etc/ferrotron/rules.yml:5: [0].do[0].hold_on_failure.ssh_key: not an OpenSSH public key"),
            "{bad}"
        );
        let bad = err(&format!("- when: {{}}\n  do:\n    - tasks: [a]\n      repo: /r\n      hold_on_failure: {{for: soon, ssh_key: '{key}'}}\n"));
        assert!(
            bad.contains("hold_on_failure.for: `soon` is not a duration"),
            "{bad}"
        );
    }

    #[test]
    fn relative_repos_are_anchored_at_the_rules_file() {
        let t = |s: &str| {
            anchor(Path::new("/srv/rules"), &Template::new(s).expect("valid"))
                .as_str()
                .to_string()
        };
        assert_eq!(t(".."), "/srv");
        assert_eq!(t("tasks/./x"), "/srv/rules/tasks/x");
        assert_eq!(t("/abs"), "/abs");
        assert_eq!(t("https://h/r.git"), "https://h/r.git");
        assert_eq!(t("git@host:r.git"), "git@host:r.git");
        assert_eq!(t("{repo}"), "{repo}");
    }

    /// The reload contract: a failed load returns an error and leaves the
    /// rules a service holds as they were, so it keeps its last good rules.
    #[test]
    fn a_failed_reload_leaves_the_current_rules_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rules.yml");
        std::fs::write(
            &path,
            "- when: {}\n  do:\n    - tasks: [a]\n      repo: /r\n",
        )
        .expect("write");
        let current = std::sync::RwLock::new(Rules::load(&path).expect("good rules"));
        std::fs::write(
            &path,
            "- when: {name: {$regex: '('}}\n  do:\n    - tasks: [a]\n",
        )
        .expect("write");
        match Rules::load(&path) {
            Ok(new) => *current.write().expect("lock") = new,
            Err(e) => assert!(
                e.to_string()
                    .contains(":1: [0].when.name.$regex: bad regex"),
                "{e}"
            ),
        }
        let m = Mappings::builtin().expect("valid");
        let ev = current.read().expect("lock").evaluate(
            &m,
            &Message::new(None, "t", json!({"item": "i", "item_type": "koji_build"})),
        );
        assert_eq!(ev.jobs.len(), 1, "the old rules still answer");
    }
}
