//! The `python` action, as in libtaskotron: a callable of a task file is
//! called with keyword arguments, and its return value (usually a
//! ResultYAML string) is what `export` stores.
//!
//! The agent does not link Python: it runs the machine's `python3` with a
//! small runner script (`python_runner.py`, embedded here and passed with
//! `-c`, so nothing is written for it). The keyword arguments are rendered
//! with the variables so far and written as JSON to a file beside the
//! action's log: values are data that the runner reads with `json.load`,
//! never text pasted into code.

use std::fs;
use std::path::PathBuf;

use crate::process::Argv;
use crate::protocol::PythonCall;
use crate::runner::ActionContext;
use crate::template::render_json;

/// The runner script (see its header for its command line).
pub const RUNNER: &str = include_str!("python_runner.py");

/// The interpreter, found on the action's `PATH`.
pub const PYTHON: &str = "python3";

/// A call ready to run, and the files it answers through.
pub(crate) struct Prepared {
    pub argv: Argv,
    return_file: PathBuf,
    error_file: PathBuf,
}

/// Checks the file and writes the rendered keyword arguments. An error is
/// the action's one-line summary.
pub(crate) fn prepare(ctx: &ActionContext<'_>, call: &PythonCall) -> Result<Prepared, String> {
    let file = if call.builtin {
        ctx.pylib.join(&call.file)
    } else {
        ctx.job.taskdir.join(&call.file)
    };
    if !file.is_file() {
        return Err(format!(
            "python file {} does not exist in {}",
            call.file,
            if call.builtin {
                "the agent's libtaskotron package"
            } else {
                "the task folder"
            }
        ));
    }
    let kwargs = render_json(&serde_json::Value::Object(call.kwargs.clone()), ctx.vars)
        .map_err(|e| format!("keyword arguments: {e}"))?;
    let kwargs_file = ctx.sibling(".kwargs.json");
    let text = serde_json::to_vec_pretty(&kwargs)
        .map_err(|e| format!("cannot encode keyword arguments: {e}"))?;
    fs::write(&kwargs_file, text)
        .map_err(|e| format!("cannot write {}: {e}", kwargs_file.display()))?;
    let return_file = ctx.sibling(".return");
    let error_file = ctx.sibling(".error");
    for f in [&return_file, &error_file] {
        let _ = fs::remove_file(f);
    }
    let argv = Argv {
        program: PYTHON.into(),
        args: vec![
            "-I".into(),
            "-B".into(),
            "-c".into(),
            RUNNER.into(),
            file.into_os_string(),
            call.file.clone().into(),
            call.callable.clone().into(),
            kwargs_file.into_os_string(),
            return_file.clone().into_os_string(),
            error_file.clone().into_os_string(),
            ctx.pylib.as_os_str().to_os_string(),
        ],
    };
    Ok(Prepared {
        argv,
        return_file,
        error_file,
    })
}

impl Prepared {
    /// The return value when the call succeeded (as the runner encoded it:
    /// JSON, so a dict stays a dict and a string a string); the runner's
    /// one-line error when it failed and said why (else `Ok(None)`: the
    /// exit status already tells). Removes the answer files either way.
    pub fn finish(self, failed: bool) -> Result<Option<serde_json::Value>, String> {
        let returned = fs::read(&self.return_file);
        let error = fs::read_to_string(&self.error_file).unwrap_or_default();
        for f in [&self.return_file, &self.error_file] {
            let _ = fs::remove_file(f);
        }
        if failed {
            return if error.trim().is_empty() {
                Ok(None)
            } else {
                Err(error.trim().to_string())
            };
        }
        match returned {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("the python runner's return value is not JSON: {e}")),
            Err(e) => Err(format!("the python runner wrote no return value: {e}")),
        }
    }
}
