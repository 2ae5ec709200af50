# -*- coding: utf-8 -*-
'''Tests of libtaskotron.directives (guest-agent/python/libtaskotron).

Run with: python3 tests/python/test_directives.py  (stdlib only; the real
createrepo_c run is skipped when createrepo_c is not installed).
'''

import os
import shutil
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'guest-agent', 'python'))

from libtaskotron import check  # noqa: E402
from libtaskotron import directives  # noqa: E402
from libtaskotron import exceptions as exc  # noqa: E402

# pytest --junitxml, junit_family=xunit2 (pytest >= 5.1): a <testsuites> root
PYTEST_XUNIT2 = '''<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite \
name="pytest" errors="1" failures="1" skipped="1" tests="5" time="0.062" \
timestamp="2024-03-01T10:00:00.000000" hostname="builder"><testcase \
classname="test_sample" name="test_ok" time="0.001" /><testcase \
classname="test_sample" name="test_fail" time="0.002"><failure \
message="assert 1 == 2">def test_fail():
&gt;       assert 1 == 2
E       assert 1 == 2

test_sample.py:5: AssertionError</failure></testcase><testcase \
classname="test_sample" name="test_skip" time="0.000"><skipped \
type="pytest.skip" message="not on this arch">/tmp/test_sample.py:8: \
not on this arch</skipped></testcase><testcase classname="test_sample" \
name="test_broken_fixture" time="0.001"><error message="failed on setup \
with &quot;RuntimeError: no db&quot;">@pytest.fixture
    def db():
&gt;       raise RuntimeError('no db')
E       RuntimeError: no db</error></testcase><testcase classname="test_sample" \
name="test_param[x86_64]" time="0.001"><system-out>hello</system-out>\
</testcase></testsuite></testsuites>
'''

# older pytest (< 5.1): a single <testsuite> root, all passing or skipped
PYTEST_OLD = '''<?xml version="1.0" encoding="utf-8"?>
<testsuite errors="0" failures="0" name="pytest" skipped="1" tests="3" time="17.131">
<testcase classname="test.TestClass" file="test.py" line="30" name="test1" time="2.76">
<system-out></system-out></testcase>
<testcase classname="test.TestClass" file="test.py" line="34" name="test2" time="2.67">
<skipped message="unconditional skip" type="pytest.skip">test.py:34: skipped</skipped>
</testcase>
<testcase classname="test.TestClass" file="test.py" line="52" name="test3" time="11.6">
<system-out></system-out></testcase></testsuite>
'''

# two suites (e.g. Maven surefire merged), attribute-less root
TWO_SUITES = '''<?xml version="1.0"?>
<testsuites>
  <testsuite name="a" tests="2"><testcase classname="A" name="one"/>
    <testcase classname="A" name="two"><failure type="AssertionError">boom</failure></testcase>
  </testsuite>
  <testsuite name="b" tests="1"><testcase name="three"/></testsuite>
</testsuites>
'''

XUNIT_ARGS = dict(item='foo-1.0-1.fc30', type='koji_build', checkname='mytask')


class TempDirTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='test_directives_')
        self.addCleanup(shutil.rmtree, self.tmp)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        return path

    def assertOneLine(self, error):
        self.assertNotIn('\n', str(error))


class TestXunit(TempDirTest):

    def test_allpass_pytest_xunit2(self):
        self.write('junit.xml', PYTEST_XUNIT2)
        out = directives.xunit(file='junit.xml', workdir=self.tmp, **XUNIT_ARGS)
        details = check.import_YAML(out)
        self.assertEqual(len(details), 1)
        detail = details[0]
        self.assertEqual(detail.outcome, 'FAILED')
        self.assertEqual(detail.note, '3 PASSED, 2 FAILED')
        self.assertEqual(detail.checkname, 'mytask')
        self.assertEqual(detail.item, 'foo-1.0-1.fc30')
        self.assertEqual(detail.report_type, 'koji_build')
        self.assertEqual(detail.artifact, 'junit.xml')  # as given

    def test_none_pytest_xunit2(self):
        path = self.write('junit.xml', PYTEST_XUNIT2)
        out = directives.xunit(file=path, aggregation='none', **XUNIT_ARGS)
        details = check.import_YAML(out)
        self.assertEqual(
            [(d.checkname, d.outcome) for d in details],
            [('mytask.test_ok', 'PASSED'),
             ('mytask.test_fail', 'FAILED'),
             ('mytask.test_skip', 'PASSED'),            # skipped counts as good
             ('mytask.test_broken_fixture', 'FAILED'),  # <error> is FAILED
             ('mytask.test_param[x86_64]', 'PASSED')])
        for detail in details:
            self.assertEqual(detail.artifact, path)
            self.assertEqual(detail.item, 'foo-1.0-1.fc30')
            self.assertEqual(detail.report_type, 'koji_build')

    def test_skipped_counts_as_passed(self):
        self.write('old.xml', PYTEST_OLD)
        out = directives.xunit(file='old.xml', workdir=self.tmp, **XUNIT_ARGS)
        detail, = check.import_YAML(out)
        self.assertEqual(detail.outcome, 'PASSED')
        self.assertEqual(detail.note, '3 PASSED')

    def test_error_is_failed(self):
        self.write('e.xml', '<testsuite><testcase classname="c" name="t">'
                            '<error message="x"/></testcase></testsuite>')
        out = directives.xunit(file='e.xml', workdir=self.tmp, aggregation='none',
                               **XUNIT_ARGS)
        detail, = check.import_YAML(out)
        self.assertEqual(detail.outcome, 'FAILED')
        self.assertEqual(detail.checkname, 'mytask.t')

    def test_last_result_child_wins(self):
        # as xunitparser: a later <skipped> overrides an earlier <failure>
        self.write('w.xml', '<testsuite><testcase name="t"><failure/><skipped/>'
                            '</testcase></testsuite>')
        out = directives.xunit(file='w.xml', workdir=self.tmp, **XUNIT_ARGS)
        self.assertEqual(check.import_YAML(out)[0].outcome, 'PASSED')

    def test_testsuites_root_several_suites(self):
        self.write('two.xml', TWO_SUITES)
        out = directives.xunit(file='two.xml', workdir=self.tmp, aggregation='none',
                               **XUNIT_ARGS)
        self.assertEqual([(d.checkname, d.outcome) for d in check.import_YAML(out)],
                         [('mytask.one', 'PASSED'), ('mytask.two', 'FAILED'),
                          ('mytask.three', 'PASSED')])
        out = directives.xunit(file='two.xml', workdir=self.tmp, **XUNIT_ARGS)
        self.assertEqual(check.import_YAML(out)[0].note, '2 PASSED, 1 FAILED')

    def test_no_testcases(self):
        self.write('empty.xml', '<testsuite name="x" tests="0"/>')
        out = directives.xunit(file='empty.xml', workdir=self.tmp, **XUNIT_ARGS)
        detail, = check.import_YAML(out)
        self.assertEqual(detail.outcome, 'PASSED')
        out = directives.xunit(file='empty.xml', workdir=self.tmp, aggregation='none',
                               **XUNIT_ARGS)
        self.assertEqual(check.import_YAML(out), [])

    def test_relative_to_cwd_without_workdir(self):
        self.write('junit.xml', PYTEST_OLD)
        cwd = os.getcwd()
        os.chdir(self.tmp)
        self.addCleanup(os.chdir, cwd)
        out = directives.xunit(file='junit.xml', **XUNIT_ARGS)
        self.assertEqual(check.import_YAML(out)[0].outcome, 'PASSED')

    def test_bad_aggregation(self):
        self.write('junit.xml', PYTEST_OLD)
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.xunit(file='junit.xml', workdir=self.tmp, aggregation='allfail',
                             **XUNIT_ARGS)
        msg = str(cm.exception)
        self.assertIn("'aggregation'", msg)
        self.assertIn('allpass', msg)
        self.assertIn('none', msg)
        self.assertIn('allfail', msg)

    def test_missing_file(self):
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.xunit(file='nope.xml', workdir=self.tmp, **XUNIT_ARGS)
        self.assertIn("'nope.xml'", str(cm.exception))
        self.assertIn('does not exist', str(cm.exception))
        self.assertOneLine(cm.exception)

    def test_malformed_xml_names_file_and_line(self):
        self.write('bad.xml', '<testsuite>\n<testcase name="a">\n</testsuite>\n')
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.xunit(file='bad.xml', workdir=self.tmp, **XUNIT_ARGS)
        msg = str(cm.exception)
        self.assertTrue(msg.startswith('xunit: '), msg)
        self.assertIn("'bad.xml'", msg)
        self.assertIn('line 3', msg)
        self.assertOneLine(cm.exception)

    def test_not_xunit(self):
        self.write('pom.xml', '<project/>')
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.xunit(file='pom.xml', workdir=self.tmp, **XUNIT_ARGS)
        self.assertIn('<project>', str(cm.exception))
        self.assertIn("'pom.xml'", str(cm.exception))

    def test_testcase_without_name(self):
        self.write('n.xml', '<testsuite><testcase classname="x"/></testsuite>')
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.xunit(file='n.xml', workdir=self.tmp, **XUNIT_ARGS)
        self.assertIn("'name'", str(cm.exception))

    def test_totals_mismatch(self):
        # xunitparser checks the root's totals
        self.write('t.xml', '<testsuite failures="2" tests="1"><testcase name="a">'
                            '<failure/></testcase></testsuite>')
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.xunit(file='t.xml', workdir=self.tmp, **XUNIT_ARGS)
        self.assertIn('failures', str(cm.exception))
        self.assertIn("'t.xml'", str(cm.exception))

    def test_mandatory_parameters(self):
        self.write('junit.xml', PYTEST_OLD)
        for name in ('item', 'type', 'checkname'):
            args = dict(XUNIT_ARGS)
            args[name] = None
            with self.assertRaises(exc.TaskotronDirectiveError) as cm:
                directives.xunit(file='junit.xml', workdir=self.tmp, **args)
            self.assertIn("'%s'" % name, str(cm.exception))
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.xunit(file=None, **XUNIT_ARGS)
        self.assertIn("'file'", str(cm.exception))


RESULTS = '''results:
- item: foo-1.0-1.fc30
  type: koji_build
  outcome: PASSED
  checkname: rpmlint
  artifact: /var/artifacts/foo.log
- item: FEDORA-2019-abc&def
  type: bodhi_update
  outcome: FAILED
  note: 2 ERRORS
- item: "<script>alert('item')</script>"
  type: "<b>t</b>"
  outcome: INFO
  note: "<script>alert('note')</script>"
  checkname: "x<y>"
  artifact: "a<b>.log"
'''


class TestCreateReport(TempDirTest):

    def report(self, **kwargs):
        kwargs.setdefault('artifactsdir', os.path.join(self.tmp, 'artifacts'))
        self.assertIsNone(directives.create_report(**kwargs))
        path = os.path.join(kwargs['artifactsdir'], kwargs.get('path', 'report.html'))
        with open(path, encoding='utf-8') as f:
            return f.read()

    def test_from_results(self):
        page = self.report(results=RESULTS)
        self.assertIn('<th>Task</th>', page)
        self.assertIn('<td>rpmlint</td>', page)
        self.assertIn('href="http://koji.fedoraproject.org/koji/search?match=glob&amp;'
                      'type=build&amp;terms=foo-1.0-1.fc30">foo-1.0-1.fc30</a> (koji_build)',
                      page)
        self.assertIn('href="https://bodhi.fedoraproject.org/updates/FEDORA-2019-abc%26def"'
                      '>FEDORA-2019-abc&amp;def</a>', page)
        self.assertIn('<td class="passed">PASSED</td>', page)
        self.assertIn('<td class="failed">FAILED</td>', page)
        self.assertIn('<td class="other_result">INFO</td>', page)
        self.assertIn('<td>2 ERRORS</td>', page)
        self.assertIn('<td>---</td>', page)  # no note
        artifacts = os.path.join(self.tmp, 'artifacts')
        self.assertIn('href="file://%s/foo.log">foo.log</a>' % artifacts, page)

    def test_escapes_everything(self):
        page = self.report(results=RESULTS)
        self.assertNotIn('<script>', page)
        self.assertNotIn('<b>', page)
        self.assertIn('&lt;script&gt;alert(&#x27;note&#x27;)&lt;/script&gt;', page)
        self.assertIn('&lt;script&gt;alert(&#x27;item&#x27;)&lt;/script&gt;', page)
        self.assertIn('<td>x&lt;y&gt;</td>', page)
        self.assertIn('a%3Cb%3E.log">a&lt;b&gt;.log</a>', page)

    def test_from_file_into_subfolder(self):
        results_file = self.write('work/out.yml', RESULTS)
        page = self.report(file=results_file, path='reports/overview.html')
        self.assertIn('<td>rpmlint</td>', page)

    def test_refuses_path_outside(self):
        artifactsdir = os.path.join(self.tmp, 'artifacts')
        for path in ('../escape.html', '/etc/report.html', 'a/../../x.html', '.', ''):
            with self.assertRaises(exc.TaskotronDirectiveError, msg=path) as cm:
                directives.create_report(results=RESULTS, artifactsdir=artifactsdir,
                                         path=path)
            self.assertIn("'path'", str(cm.exception))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, 'escape.html')))

    def test_absolute_path_inside_is_allowed(self):
        artifactsdir = os.path.join(self.tmp, 'artifacts')
        target = os.path.join(artifactsdir, 'r.html')
        directives.create_report(results=RESULTS, artifactsdir=artifactsdir, path=target)
        self.assertTrue(os.path.isfile(target))

    def test_refuses_symlink_out(self):
        artifactsdir = os.path.join(self.tmp, 'artifacts')
        os.makedirs(artifactsdir)
        os.symlink(self.tmp, os.path.join(artifactsdir, 'link'))
        with self.assertRaises(exc.TaskotronDirectiveError):
            directives.create_report(results=RESULTS, artifactsdir=artifactsdir,
                                     path='link/out.html')

    def test_template_not_supported(self):
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.create_report(results=RESULTS, artifactsdir=self.tmp,
                                     template='/tmp/report.j2')
        self.assertIn("'template'", str(cm.exception))
        self.assertIn('Jinja2', str(cm.exception))

    def test_results_and_file(self):
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.create_report(results=RESULTS, file='x.yml', artifactsdir=self.tmp)
        self.assertIn('not both', str(cm.exception))
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.create_report(artifactsdir=self.tmp)
        self.assertIn("'results'", str(cm.exception))

    def test_missing_artifactsdir(self):
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.create_report(results=RESULTS)
        self.assertIn("'artifactsdir'", str(cm.exception))

    def test_bad_yaml_and_missing_file(self):
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.create_report(results='foo: [1,\n  2\n', artifactsdir=self.tmp)
        self.assertIn("'results'", str(cm.exception))
        self.assertOneLine(cm.exception)
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.create_report(results='nothing: here', artifactsdir=self.tmp)
        self.assertIn('results', str(cm.exception))
        missing = os.path.join(self.tmp, 'missing.yml')
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.create_report(file=missing, artifactsdir=self.tmp)
        self.assertIn(missing, str(cm.exception))


class TestDummy(unittest.TestCase):

    def test_pass(self):
        self.assertEqual(directives.dummy(result='PASS', msg='foo-1.0-1.fc30'),
                         'foo-1.0-1.fc30')
        self.assertEqual(directives.dummy(result='pass', msg={'a': 1}), {'a': 1})
        self.assertIsNone(directives.dummy(result='Pass'))

    def test_fail(self):
        for result in ('FAIL', 'fail', 'Fail'):
            with self.assertRaises(exc.TaskotronDirectiveError) as cm:
                directives.dummy(result=result, msg='why\nnot')
            self.assertIn('why not', str(cm.exception))
        with self.assertRaises(exc.TaskotronDirectiveError):
            directives.dummy(result='FAIL')

    def test_other(self):
        for result in ('maybe', '', None, 1, True):
            with self.assertRaises(exc.TaskotronDirectiveError) as cm:
                directives.dummy(result=result, msg='x')
            self.assertIn("'result'", str(cm.exception))


class TestCreaterepo(TempDirTest):

    def test_missing_tool(self):
        os.makedirs(os.path.join(self.tmp, 'repo'))
        empty_bin = os.path.join(self.tmp, 'bin')
        os.makedirs(empty_bin)
        with mock.patch.dict(os.environ, {'PATH': empty_bin}):
            with self.assertRaises(exc.TaskotronDirectiveError) as cm:
                directives.createrepo(repodir='repo', workdir=self.tmp)
        self.assertTrue(str(cm.exception).startswith(
            'createrepo: createrepo_c is not installed in this image ('), cm.exception)
        self.assertOneLine(cm.exception)

    def test_missing_repodir(self):
        with self.assertRaises(exc.TaskotronDirectiveError) as cm:
            directives.createrepo(repodir='nope', workdir=self.tmp)
        self.assertIn("'nope'", str(cm.exception))

    def fake_tool(self, script):
        bindir = os.path.join(self.tmp, 'fakebin')
        os.makedirs(bindir, exist_ok=True)
        tool = os.path.join(bindir, 'createrepo_c')
        with open(tool, 'w') as f:
            f.write('#!/bin/sh\n' + script)
        os.chmod(tool, 0o755)
        return mock.patch.dict(os.environ, {'PATH': bindir + os.pathsep + '/usr/bin:/bin'})

    def test_argv_and_stdout(self):
        os.makedirs(os.path.join(self.tmp, 'a repo; $(x)'))
        with self.fake_tool('printf "%s|" "$#" "$1"\n'):
            out = directives.createrepo(repodir='a repo; $(x)', workdir=self.tmp)
        self.assertEqual(out, '1|%s|' % os.path.join(self.tmp, 'a repo; $(x)'))

    def test_failure_gives_last_stderr_line(self):
        os.makedirs(os.path.join(self.tmp, 'repo'))
        with self.fake_tool('echo first >&2; echo "Critical: it broke" >&2; echo >&2; exit 2\n'):
            with self.assertRaises(exc.TaskotronDirectiveError) as cm:
                directives.createrepo(repodir='repo', workdir=self.tmp)
        msg = str(cm.exception)
        self.assertIn('Critical: it broke', msg)
        self.assertNotIn('first', msg)
        self.assertIn('code 2', msg)

    @unittest.skipIf(shutil.which('createrepo_c') is None, 'createrepo_c is not installed')
    def test_real_run_without_rpms(self):
        repo = os.path.join(self.tmp, 'repo')
        os.makedirs(repo)
        out = directives.createrepo(repodir=repo)
        self.assertIsInstance(out, str)
        self.assertTrue(os.path.isfile(os.path.join(repo, 'repodata', 'repomd.xml')))


if __name__ == '__main__':
    unittest.main()
