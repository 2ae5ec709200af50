# Ferrotron's `python` directive, run by the agent as
#   python3 -I -B -c THIS_SCRIPT FILE LABEL CALLABLE KWARGS_JSON RETURN_FILE ERROR_FILE
# Imports FILE by path, calls CALLABLE (dotted names allowed) with the keyword
# arguments read from KWARGS_JSON (data, never code), and writes the return
# value to RETURN_FILE: a string as it is, None as nothing, anything else as
# JSON (which YAML readers accept). On failure the traceback goes to stderr
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


def main():
    path, label, name, kwargs_file, return_file, error_file = sys.argv[1:7]
    with open(kwargs_file, encoding="utf-8") as f:
        kwargs = json.load(f)
    # The task's own folder first, so that the file can import its siblings.
    sys.path.insert(0, os.path.dirname(path))
    sys.argv = [path]
    modname = os.path.splitext(os.path.basename(path))[0]
    try:
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        spec.loader.exec_module(module)
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
        text = ""
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = json.dumps(value, default=str)
    with open(return_file, "w", encoding="utf-8") as f:
        f.write(text)


main()
