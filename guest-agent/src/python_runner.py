# Ferrotron's `python` directive, run by the agent as
#   python3 -I -B -c THIS_SCRIPT FILE LABEL CALLABLE KWARGS_JSON RETURN_FILE ERROR_FILE [LIBDIR]
# Imports FILE by path, calls CALLABLE (dotted names allowed) with the keyword
# arguments read from KWARGS_JSON (data, never code), and writes the return
# value to RETURN_FILE as JSON (None as "", bytes decoded; objects JSON cannot
# hold as their str()), so that a dict export stays a dict for the next
# action. LIBDIR (Ferrotron's libtaskotron package) goes on sys.path after
# the task's folder, so a task that ships its own libtaskotron keeps it. On failure the traceback goes to stderr
# and one line saying what went wrong to ERROR_FILE; the exit status is 1.
import importlib.util
import json
import os
import sys
import traceback


def fail(error_file, message):
    line = message.strip().splitlines()[0] if message.strip() else "failed"
    with open(error_file, "w", encoding="utf-8") as f:
        f.write(line)
    sys.stderr.write("ferrotron: " + line + "\n")
    sys.exit(1)


PY2_SIGNS = (
    "Missing parentheses in call to",
    "multiple exception types must be parenthesized",
    "leading zeros in decimal integer literals",
    "invalid hexadecimal literal",
)


def syntax_line(e, task_dir):
    """One line for a SyntaxError: the file, the line, the message, and a
    hint when it looks like Python 2 code (print statements, `except X, e`,
    octal literals), which these images cannot run."""
    where = e.filename or "?"
    if where.startswith(task_dir + os.sep):
        where = where[len(task_dir) + 1:]
    line = "%s line %s: SyntaxError: %s" % (where, e.lineno, e.msg)
    text = (e.text or "").strip()
    if any(sign in (e.msg or "") for sign in PY2_SIGNS) or text.startswith(
        ("print ", "exec ", "raise ")
    ) and "," in text and "(" not in text.split(",")[0]:
        line += " (this looks like Python 2 code; tasks run with Python 3 only)"
    return line


def main():
    path, label, name, kwargs_file, return_file, error_file = sys.argv[1:7]
    libdir = sys.argv[7] if len(sys.argv) > 7 else None
    if libdir:
        sys.path.append(libdir)
    with open(kwargs_file, encoding="utf-8") as f:
        kwargs = json.load(f)
    # The task's own folder first, so that the file can import its siblings.
    sys.path.insert(0, os.path.dirname(path))
    sys.argv = [path]
    modname = os.path.splitext(os.path.basename(path))[0]
    try:
        if libdir and path.startswith(libdir + os.sep):
            # A directive of Ferrotron's libtaskotron package: imported as
            # the package's module, so that its relative imports work.
            rel = os.path.splitext(os.path.relpath(path, libdir))[0]
            module = importlib.import_module(rel.replace(os.sep, "."))
        else:
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
    except SyntaxError as e:
        # One line, no traceback: the file and line say it all.
        line = syntax_line(e, os.path.dirname(path))
        fail(error_file, line if line.startswith(label + " ") else "cannot import %s: %s" % (label, line))
    except BaseException as e:
        traceback.print_exc()
        fail(error_file, "cannot import %s: %s: %s" % (label, type(e).__name__, e))
    target = module
    for part in name.split("."):
        if not hasattr(target, part):
            fail(error_file, "%s has no callable `%s`" % (label, name))
        target = getattr(target, part)
    if not callable(target):
        fail(error_file, "`%s` in %s is not callable" % (name, label))
    try:
        value = target(**kwargs)
    except BaseException as e:
        traceback.print_exc()
        fail(error_file, "%s() in %s raised %s: %s" % (name, label, type(e).__name__, e))
    if value is None:
        value = ""
    elif isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError) as e:
        fail(error_file, "%s() in %s returned a value that cannot be exported: %s" % (name, label, e))
    with open(return_file, "w", encoding="utf-8") as f:
        f.write(text)


main()
