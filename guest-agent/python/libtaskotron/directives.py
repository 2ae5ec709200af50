# -*- coding: utf-8 -*-
'''The libtaskotron formula directives that run inside the test machine:
``xunit``, ``create_report``, ``dummy`` and ``createrepo``, and the guest's
half of ``koji``, ``bodhi`` and ``distgit`` (:func:`place_downloads`).

Each directive is a plain function that the guest agent calls with the
directive's parameters as keyword arguments (after variable substitution;
every value is data, nothing is ever given to a shell). The return value is
what ``export:`` stores. Bad input raises
:class:`~libtaskotron.exceptions.TaskotronDirectiveError` with a one-line
message that starts with the directive's name and names the parameter or
file at fault.

The behaviour follows libtaskotron / checkb (``checkb/directives/*.py``),
with the differences listed in each function's documentation.
'''

import html
import logging
import os
import pathlib
import shutil
import subprocess
import urllib.parse
from xml.etree import ElementTree

from . import check
from . import exceptions as exc

log = logging.getLogger('libtaskotron')

#: the valid values of the ``aggregation`` parameter of :func:`xunit`
XUNIT_AGGREGATIONS = ('allpass', 'none')

# the longest text taken from the input (a message, a line of stderr...)
# into an error message
_MAX_QUOTED = 500


def _one_line(text, limit=_MAX_QUOTED):
    '''``text`` (any value) on one line: runs of whitespace, line breaks
    included, become one space; cut to ``limit`` characters.'''
    text = ' '.join(str(text).split())
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


def _fail(directive, message):
    return exc.TaskotronDirectiveError('%s: %s' % (directive, _one_line(message, 2000)))


def _require_str(directive, name, value, allow_none=False):
    '''Check that parameter ``name`` is a non-empty string (or None when
    ``allow_none``).'''
    if value is None:
        if allow_none:
            return
        raise _fail(directive, "mandatory parameter '%s' is missing" % name)
    if not isinstance(value, str):
        raise _fail(directive, "parameter '%s' must be a string, not %s (%s)"
                    % (name, type(value).__name__, _one_line(repr(value), 80)))
    if not value:
        raise _fail(directive, "parameter '%s' must not be empty" % name)


def _resolve(path, workdir):
    '''``path`` made absolute: a relative one is taken relative to
    ``workdir`` if given, else to the current working directory.'''
    if not os.path.isabs(path) and workdir:
        path = os.path.join(workdir, path)
    return os.path.abspath(path)


def _os_error_text(e):
    return e.strerror or str(e)


# ---------------------------------------------------------------- xunit

class _Testcase(object):
    '''One ``<testcase>``: its name and its result (``success``,
    ``failure``, ``error`` or ``skipped``).'''

    def __init__(self, name, classname):
        self.name = name
        self.classname = classname
        self.result = 'success'

    @property
    def good(self):
        # as xunitparser: a skipped test case counts as good
        return self.result in ('success', 'skipped')


def _parse_testcase(element, suite_name, file):
    name = element.attrib.get('name')
    if name is None:
        raise _fail('xunit', "file '%s': a <testcase> has no 'name' attribute" % file)
    testcase = _Testcase(name, element.attrib.get('classname') or suite_name)
    for child in element:
        # the last <failure>/<error>/<skipped> child wins (as xunitparser)
        if child.tag in ('failure', 'error', 'skipped'):
            testcase.result = child.tag
    return testcase


def _parse_testsuite(element, file, testcases):
    if element.tag != 'testsuite':
        raise _fail('xunit', "file '%s': expected a <testsuite> element, found <%s>"
                    % (file, element.tag))
    suite_name = element.attrib.get('name')
    for child in element:
        if child.tag == 'testcase':
            testcases.append(_parse_testcase(child, suite_name, file))


def _check_total(root, attribute, count, what, file):
    if attribute not in root.attrib:
        return
    value = root.attrib[attribute]
    try:
        expected = int(value)
    except ValueError:
        raise _fail('xunit', "file '%s': the %s attribute of <%s> is not a number: %r"
                    % (file, attribute, root.tag, value))
    if expected != count:
        raise _fail('xunit', "file '%s': <%s %s=\"%s\"> but the file has %d %s"
                    % (file, root.tag, attribute, value, count, what))


def _parse_xunit(path, file):
    '''The test cases of the xUnit file at ``path`` (``file`` is the name
    used in messages), in document order.'''
    try:
        tree = ElementTree.parse(path)
    except ElementTree.ParseError as e:
        raise _fail('xunit', "file '%s' is not well-formed XML: %s" % (file, e))
    except FileNotFoundError:
        raise _fail('xunit', "file '%s' does not exist (looked for %s)" % (file, path))
    except IsADirectoryError:
        raise _fail('xunit', "file '%s' is a directory, not an xUnit XML file" % file)
    except OSError as e:
        raise _fail('xunit', "cannot read file '%s': %s" % (file, _os_error_text(e)))
    root = tree.getroot()

    testcases = []
    if root.tag == 'testsuites':
        for suite in root:
            _parse_testsuite(suite, file, testcases)
    elif root.tag == 'testsuite':
        _parse_testsuite(root, file, testcases)
    else:
        raise _fail('xunit', "file '%s': the root element is <%s>, not <testsuites> "
                    "or <testsuite>" % (file, root.tag))

    # xunitparser checks the totals given on the root element
    results = [tc.result for tc in testcases]
    _check_total(root, 'errors', results.count('error'), 'errors', file)
    _check_total(root, 'failures', results.count('failure'), 'failures', file)
    _check_total(root, 'skip', results.count('skipped'), 'skipped test cases', file)
    _check_total(root, 'tests', len(testcases), 'test cases', file)
    return testcases


def xunit(file, aggregation='allpass', item=None, type=None, checkname=None,
          workdir=None):
    '''Parse an xUnit (JUnit) XML file into ResultYAML.

    The root element is ``<testsuites>`` (each ``<testsuite>`` child is read)
    or a single ``<testsuite>``. Each ``<testcase>`` is ``FAILED`` when it has
    a ``<failure>`` or ``<error>`` child, and ``PASSED`` when it has a
    ``<skipped>`` child or none of them (the last such child counts). The
    ``errors``, ``failures``, ``skip`` and ``tests`` totals on the root
    element, when present, must match the test cases.

    :param str file: the xUnit file; a relative path is relative to
                     ``workdir`` (else to the current directory). It is the
                     results' ``artifact``, as given.
    :param str aggregation: ``allpass``: one result, ``PASSED`` if no test
                            case failed, with a note such as
                            ``3 PASSED, 1 FAILED``; ``none``: one result per
                            test case, named ``<checkname>.<testcase name>``
    :param str item: the results' item
    :param str type: the results' item type
    :param str checkname: the check's name
    :param str workdir: the base of a relative ``file``
    :return: the ResultYAML text
    :rtype: str
    :raise TaskotronDirectiveError: on a missing or invalid parameter, a
                                    missing file, malformed XML or a file
                                    that is not xUnit
    '''
    _require_str('xunit', 'file', file)
    _require_str('xunit', 'item', item)
    _require_str('xunit', 'type', type)
    _require_str('xunit', 'checkname', checkname)
    _require_str('xunit', 'workdir', workdir, allow_none=True)
    if aggregation is None:
        aggregation = 'allpass'
    if aggregation not in XUNIT_AGGREGATIONS:
        raise _fail('xunit', "parameter 'aggregation' must be 'allpass' or 'none', not %s"
                    % _one_line(repr(aggregation), 80))

    testcases = _parse_xunit(_resolve(file, workdir), file)
    log.debug('xunit: %d test cases in %s', len(testcases), file)

    if aggregation == 'none':
        details = []
        for testcase in testcases:
            details.append(check.CheckDetail(
                item=item,
                report_type=type,
                outcome='PASSED' if testcase.good else 'FAILED',
                checkname='%s.%s' % (checkname, testcase.name),
                artifact=file))
        return check.export_YAML(details)

    passed = sum(1 for testcase in testcases if testcase.good)
    failed = len(testcases) - passed
    detail = check.CheckDetail(
        item=item,
        report_type=type,
        outcome='PASSED' if failed == 0 else 'FAILED',
        checkname=checkname,
        note=check.CheckDetail.create_multi_item_summary(
            ['PASSED'] * passed + ['FAILED'] * failed),
        artifact=file)
    return check.export_YAML(detail)


# -------------------------------------------------------- create_report

_KOJI_SEARCH_URL = 'http://koji.fedoraproject.org/koji/search?match=glob&type=build&terms='
_BODHI_UPDATE_URL = 'https://bodhi.fedoraproject.org/updates/'

_REPORT_HEAD = '''<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Taskotron task results</title>
<style>
body { font-family: Arial, sans-serif; }
a { color: #3c6eb4; text-decoration: none; }
a:hover { color: #3662a1; }
h1 { border-bottom: solid 1px #e6e6e6; }
.failed { font-weight: bold; color: red; }
.passed { font-weight: bold; color: green; }
.other_result { font-weight: bold; color: #b8860b; }
table.results { width: 100%%; text-align: left; background: #f2f2f2;
                border: solid 1px #e6e6e6; margin: 0 0 22px 0; padding: 5px; }
.results th { padding: 0 5px 0 0; }
.results td { border-top: solid 1px #e6e6e6; padding: 3px 10px 3px 0; }
</style>
</head>
<body>
<h1>Taskotron task results</h1>
<p>
    <strong>Artifacts directory:</strong> <a href="%(dir_url)s">%(dir)s</a>
</p>
<table class="results">
    <thead>
        <tr>
            <th>Task</th>
            <th>Item</th>
            <th>Outcome</th>
            <th>Artifact</th>
            <th>Note</th>
        </tr>
    </thead>
    <tbody>
'''

_REPORT_TAIL = '''    </tbody>
</table>
</body>
</html>
'''


def _text(value):
    '''``value`` as escaped HTML text (``None`` is empty).'''
    return html.escape('' if value is None else str(value), quote=True)


def _report_row(detail, artifactsdir):
    item = '' if detail.item is None else str(detail.item)
    if detail.report_type == check.ReportType.KOJI_BUILD:
        url = _KOJI_SEARCH_URL + urllib.parse.quote(item, safe='')
        item_html = '<a href="%s">%s</a>' % (_text(url), _text(item))
    elif detail.report_type == check.ReportType.BODHI_UPDATE:
        url = _BODHI_UPDATE_URL + urllib.parse.quote(item, safe='')
        item_html = '<a href="%s">%s</a>' % (_text(url), _text(item))
    else:
        item_html = _text(item)
    if detail.report_type:
        item_html += ' (%s)' % _text(detail.report_type)

    if detail.outcome == 'FAILED':
        outcome_class = 'failed'
    elif detail.outcome == 'PASSED':
        outcome_class = 'passed'
    else:
        outcome_class = 'other_result'

    artifact_html = ''
    if detail.artifact:
        # as upstream: the artifact's file name, in the artifacts directory
        name = os.path.basename(str(detail.artifact))
        if name:
            url = pathlib.PurePosixPath(artifactsdir, name).as_uri()
            artifact_html = '<a href="%s">%s</a>' % (_text(url), _text(name))

    return ('        <tr>\n'
            '            <td>%s</td>\n'
            '            <td>%s</td>\n'
            '            <td class="%s">%s</td>\n'
            '            <td>%s</td>\n'
            '            <td>%s</td>\n'
            '        </tr>\n'
            % (_text(detail.checkname), item_html, outcome_class,
               _text(detail.outcome), artifact_html, _text(detail.note or '---')))


def _report_path(artifactsdir, path):
    '''The absolute path of the report, which must be a file inside
    ``artifactsdir``.'''
    base = os.path.realpath(artifactsdir)
    target = os.path.realpath(os.path.join(base, path))
    if os.path.commonpath([base, target]) != base or target == base:
        raise _fail('create_report', "parameter 'path' (%s) must name a file inside "
                    "the artifacts directory %s" % (_one_line(path, 200), artifactsdir))
    if path.endswith(('/', os.sep)) or os.path.isdir(target):
        raise _fail('create_report', "parameter 'path' (%s) is a directory, not a file name"
                    % _one_line(path, 200))
    return target


def create_report(results=None, file=None, path='report.html', artifactsdir=None,
                  template=None):
    '''Write an HTML report of ResultYAML results.

    The page is one table with a row per result: Task (checkname), Item
    (linked to Koji for ``koji_build`` and to Bodhi for ``bodhi_update``
    items, followed by the item type), Outcome, Artifact (the file name of
    the result's artifact, linked in ``artifactsdir``) and Note (``---`` if
    empty). Every value is HTML-escaped.

    :param str results: ResultYAML text; give exactly one of ``results`` and
                        ``file``
    :param str file: a file holding ResultYAML (relative to the current
                     directory)
    :param str path: where to write the report, relative to
                     ``artifactsdir``; it must stay inside it. Missing
                     folders are created.
    :param str artifactsdir: the artifacts directory
    :param template: not supported (upstream, a Jinja2 template file)
    :return: None
    :raise TaskotronDirectiveError: on missing, conflicting or invalid
                                    parameters, unreadable or invalid
                                    results, a ``path`` outside
                                    ``artifactsdir``, or a failed write
    '''
    if template is not None:
        raise _fail('create_report', "parameter 'template' (%s) is not supported: custom "
                    "Jinja2 templates are not supported here, leave 'template' out to use "
                    "the built-in report" % _one_line(template, 200))
    if results is not None and file is not None:
        raise _fail('create_report', "use either 'results' or 'file', not both")
    if results is None and file is None:
        raise _fail('create_report', "one of the parameters 'results' or 'file' is required")
    _require_str('create_report', 'artifactsdir', artifactsdir)
    if path is None:
        path = 'report.html'
    _require_str('create_report', 'path', path)

    if file is not None:
        _require_str('create_report', 'file', file)
        try:
            with open(file, encoding='utf-8') as f:
                results = f.read()
        except FileNotFoundError:
            raise _fail('create_report', "results file '%s' does not exist" % file)
        except (OSError, UnicodeDecodeError) as e:
            text = _os_error_text(e) if isinstance(e, OSError) else str(e)
            raise _fail('create_report', "cannot read results file '%s': %s" % (file, text))
        source = "file '%s'" % file
    else:
        if not isinstance(results, str):
            raise _fail('create_report', "parameter 'results' must be ResultYAML text, "
                        "not %s" % type(results).__name__)
        source = "parameter 'results'"

    try:
        details = check.import_YAML(results)
    except exc.TaskotronValueError as e:
        raise _fail('create_report', 'cannot load the results from %s: %s' % (source, e))

    report_fname = _report_path(artifactsdir, path)
    abs_artifactsdir = os.path.abspath(artifactsdir)
    parts = [_REPORT_HEAD % {
        'dir_url': _text(pathlib.PurePosixPath(abs_artifactsdir).as_uri()),
        'dir': _text(artifactsdir)}]
    for detail in details:
        parts.append(_report_row(detail, abs_artifactsdir))
    parts.append(_REPORT_TAIL)

    try:
        os.makedirs(os.path.dirname(report_fname), exist_ok=True)
        with open(report_fname, 'w', encoding='utf-8') as f:
            f.write(''.join(parts))
    except OSError as e:
        raise _fail('create_report', "cannot write the report '%s': %s"
                    % (report_fname, _os_error_text(e)))
    log.info('Report generated in: %s', report_fname)
    return None


# ---------------------------------------------------------------- dummy

def dummy(result, msg=None):
    '''A directive that does nothing, for testing formulas.

    :param str result: ``PASS`` or ``FAIL`` (case ignored)
    :param msg: any value
    :return: ``msg`` (None when not given) if ``result`` is ``PASS``
    :raise TaskotronDirectiveError: if ``result`` is ``FAIL`` (the message
                                    includes ``msg``), or anything else
    '''
    if isinstance(result, str) and result.lower() == 'pass':
        return msg
    if isinstance(result, str) and result.lower() == 'fail':
        if msg is None:
            raise _fail('dummy', 'this is a dummy directive and configured to fail')
        raise _fail('dummy', 'this is a dummy directive and configured to fail: %s'
                    % _one_line(msg))
    raise _fail('dummy', "parameter 'result' must be PASS or FAIL, not %s"
                % _one_line(repr(result), 80))


# ----------------------------------------------------------- createrepo

def createrepo(repodir, workdir=None):
    '''Create YUM repository metadata in ``repodir`` with ``createrepo_c``.

    :param str repodir: the folder holding the RPM files; a relative path is
                        relative to ``workdir`` (else to the current
                        directory)
    :param str workdir: the base of a relative ``repodir``
    :return: the standard output of ``createrepo_c``
    :rtype: str
    :raise TaskotronDirectiveError: if ``repodir`` is not a folder,
                                    ``createrepo_c`` is not installed, or it
                                    fails (the message gives the last line
                                    of its standard error)
    '''
    _require_str('createrepo', 'repodir', repodir)
    _require_str('createrepo', 'workdir', workdir, allow_none=True)
    # absolute, so that createrepo_c can never read it as an option
    path = _resolve(repodir, workdir)
    if not os.path.isdir(path):
        raise _fail('createrepo', "repodir '%s' is not a directory (looked for %s)"
                    % (repodir, path))
    executable = shutil.which('createrepo_c')
    if executable is None:
        raise _fail('createrepo', 'createrepo_c is not installed in this image '
                    '(no createrepo_c on PATH; install the createrepo_c package)')

    log.info('running createrepo_c on %s', path)
    try:
        proc = subprocess.run([executable, path], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise _fail('createrepo', 'cannot run %s: %s' % (executable, _os_error_text(e)))
    stdout = proc.stdout.decode('utf-8', errors='replace')
    if proc.returncode:
        stderr = proc.stderr.decode('utf-8', errors='replace')
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        if proc.returncode < 0:
            status = 'was killed by signal %d' % -proc.returncode
        else:
            status = 'exited with code %d' % proc.returncode
        raise _fail('createrepo', "createrepo_c on repodir '%s' %s%s"
                    % (repodir, status, ': ' + lines[-1] if lines else ' (no error output)'))
    log.debug(stdout)
    return stdout


# ------------------------------------------------ koji, bodhi, distgit

def place_downloads(staged, target_dir, names, export):
    '''The guest's half of the ``koji``, ``bodhi`` and ``distgit``
    directives. The host fetched the files before the job started (into its
    download cache; the guest reaches no Fedora service) and uploaded them
    to ``staged``; when the action's turn comes they are moved to
    ``target_dir``, keeping their relative names.

    :param str staged: the folder the host uploaded this action's files to
    :param str target_dir: where the task expects them (created if missing)
    :param list names: the files' paths relative to both folders
    :param dict export: the directive's export (``downloaded_rpms``,
        ``downloaded_logs``, ``log_errors``, ``downloaded_files``), with
        absolute paths under ``target_dir``, returned as is
    :return: ``export``
    :raise TaskotronDirectiveError: if a file is missing or cannot be moved
    '''
    _require_str('download', 'staged', staged)
    _require_str('download', 'target_dir', target_dir)
    try:
        os.makedirs(target_dir, exist_ok=True)
        for name in names:
            dest = os.path.join(target_dir, name)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(os.path.join(staged, name), dest)
    except OSError as e:
        raise _fail('download', 'cannot place %s in %s: %s'
                    % (getattr(e, 'filename', None) or '?', target_dir, _os_error_text(e)))
    return export
