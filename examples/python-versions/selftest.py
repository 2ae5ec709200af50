"""The check's own self-tests, written as xUnit XML (JUnit format) for the
`xunit` directive. Exits 1 when a test failed, as test runners do: the
formula runs it under `ignorereturn`."""
import sys
import xml.etree.ElementTree as ET


def main():
    out, name = sys.argv[2], sys.argv[3]
    cases = [
        ("name_is_not_empty", bool(name), None),
        ("name_has_no_spaces", " " not in name, None),
        ("data_file_is_readable", open("data/python2-only.txt").read() != "", None),
        ("python2_interpreter_found", None, "no Python 2 on this image"),
    ]
    failed = sum(1 for _, ok, skip in cases if skip is None and not ok)
    suite = ET.Element("testsuite", name="selftest", tests=str(len(cases)),
                       failures=str(failed), errors="0", skipped="1")
    for case, ok, skip in cases:
        tc = ET.SubElement(suite, "testcase", classname="selftest", name=case)
        if skip:
            ET.SubElement(tc, "skipped", message=skip)
        elif not ok:
            ET.SubElement(tc, "failure", message="%s failed" % case)
    ET.ElementTree(suite).write(out, encoding="utf-8", xml_declaration=True)
    return 1 if failed else 0


sys.exit(main())
