# -*- coding: utf-8 -*-
'''Tests of Ferrotron's libtaskotron (guest-agent/python/libtaskotron).

Run with: python3 tests/python/test_libtaskotron.py  (stdlib only; the tests
that compare with PyYAML are skipped when it cannot be imported).
'''

import contextlib
import copy
import datetime
import io
import math
import os
import random
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'guest-agent', 'python'))
sys.path.insert(0, HERE)

from libtaskotron import check  # noqa: E402
from libtaskotron import exceptions as exc  # noqa: E402
from libtaskotron import python_utils  # noqa: E402
from libtaskotron import taskotron_result  # noqa: E402
from libtaskotron import _yaml  # noqa: E402
import tap13  # noqa: E402

try:
    import yaml
except ImportError:
    yaml = None

needs_pyyaml = unittest.skipIf(yaml is None, 'PyYAML is not importable')

OUTCOMES = check.CheckDetail.outcome_priority


@contextlib.contextmanager
def without_pyyaml():
    '''Make libtaskotron.check read YAML with its own loader.'''
    with mock.patch.object(check, '_pyyaml', None):
        yield


def loaders():
    '''(name, context manager factory) for every YAML reader available.'''
    result = [('builtin', without_pyyaml)]
    if yaml is not None:
        result.append(('pyyaml', contextlib.nullcontext))
    return result


def quiet():
    '''Silence the reserved-key warnings.'''
    return mock.patch.object(check.log, 'warning')


# ------------------------------------------------------------ random data

TRICKY = [
    '', ' ', '  ', 'a: b', 'a:b', ':', 'a:', '#', 'a #b', 'a#b', '#a', '# SKIP', 'x # SKIP y',
    '# TODO later', "it's", '"', "'", '""', "''", '\\', 'a\\b', '\\n', 'C:\\path',
    '\n', 'a\nb', '\n\nx\n', 'x\n', '\nx', 'a\n\n\nb', ' lead', 'trail ', ' both ',
    '- ', '-', '- a', '-a', '--', '---', '...', 'x...', 'Loading...', '... ', '? x', '?',
    '1.0', '1', '-1', '+1', '0', '00', '007', '1_000', '0x1F', '0b101', '017', '0o17',
    '1:20', '1:20.5', '1e5', '1.5e+3', '.5', '1.', '.inf', '-.inf', '.NaN', 'inf', 'nan',
    'yes', 'Yes', 'No', 'ON', 'off', 'y', 'n', 'Y', 'true', 'False', 'TRUE',
    'null', 'Null', 'NULL', '~', 'None',
    '2001-12-14', '2001-12-14 21:59:43.10 -5', '2001-12-14T21:59:43Z', '2001-1-1 1:02:03',
    '=', '<<', '&a', '*a', '!tag', '!!str', '%x', '@x', '`x', '|', '|-', '>', '>+',
    '[a]', '[', ']', '{a: b}', '{', '}', ',', 'a, b', 'a,b', '[a, b]: c',
    'a\tb', '\t', '\ta', 'a\t', 'é', 'ünïcödé ☃', '日本語', '😀', 'a😀b', '\u2028', '\u2029',
    '\x85', '\xa0', 'a\xa0', '\ufeff', '\ufeffx', '\x00', '\x07', '\x1b[31mred\x1b[0m',
    '\x7f', '\x9f', '\r\n', '\r', 'a\rb', '\x0b', '\x0c', '\x1c', '\ud7ff', '\ue000', '\ufffd',
    'http://example.org/a?b=c#d', 'foo-1.2-3.fc20', 'FEDORA-2014-3309', '5 ERRORS, 10 WARNINGS',
    'rpms/foo#abc123', 'a  b', 'a - b', 'a #', 'key: value # comment', "'quoted'",
    '"dq"', 'a "b" c', "a 'b' c", '1 2', '1 a', '12 monkeys', '2 + 2', 'x' * 200,
    ('word ' * 40).strip(),
]
ALPHABET = 'abcXYZ019 _-.:#\'"\\\n\t,[]{}&*!|>%@`?~=<+/()é☃😀\u2028\x85\x00\x7f\r'


def random_string(rng):
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(TRICKY)
    if roll < 0.7:
        return ''.join(rng.choice(TRICKY) for _ in range(rng.randint(1, 4)))
    return ''.join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def random_scalar(rng):
    roll = rng.random()
    if roll < 0.55:
        return random_string(rng)
    if roll < 0.65:
        return rng.choice([0, 1, -1, 7, 2 ** 40, -(2 ** 70), 10 ** 30])
    if roll < 0.75:
        return rng.choice([0.0, -0.0, 1.5, -2.25, 1e-7, 1e20, 1.7976931348623157e308,
                           math.inf, -math.inf, rng.uniform(-1e6, 1e6)])
    if roll < 0.85:
        return rng.choice([True, False, None])
    if roll < 0.9:
        return rng.choice([datetime.date(2001, 12, 14),
                           datetime.datetime(2020, 1, 2, 3, 4, 5),
                           datetime.datetime(2020, 1, 2, 3, 4, 5, 123456),
                           datetime.datetime(2001, 12, 14, 21, 59, 43, 100000,
                                             tzinfo=datetime.timezone(
                                                 datetime.timedelta(hours=-5))),
                           datetime.datetime(2020, 1, 2, 3, 4, 5,
                                             tzinfo=datetime.timezone.utc)])
    return random_string(rng)


def random_value(rng, depth=0):
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 3 and roll < 0.3:
        return random_mapping(rng, depth + 1)
    return random_scalar(rng)


def random_key(rng):
    roll = rng.random()
    if roll < 0.1:
        return rng.choice([1, 0, -3, 2.5, True, None])
    key = random_string(rng)
    return key[:300]


def random_mapping(rng, depth, reserved=()):
    result = {}
    for _ in range(rng.randint(0, 4)):
        key = random_key(rng)
        if key in reserved:
            continue
        result[key] = random_value(rng, depth)
    return result


def random_detail(rng):
    item = random_string(rng) or 'item'
    maybe = lambda: random_string(rng) if rng.random() < 0.6 else None  # noqa: E731
    detail = check.CheckDetail(
        item,
        report_type=rng.choice([None, maybe(), rng.choice(check.ReportType.list())]),
        outcome=rng.choice((None,) + OUTCOMES),
        note=random_string(rng) if rng.random() < 0.7 else '',
        output=[random_string(rng) for _ in range(rng.randint(0, 3))],
        keyvals=random_mapping(rng, 1, reserved=check.RESERVED_KEYS),
        checkname=maybe(),
        artifact=maybe())
    if rng.random() < 0.2:
        detail._internal = {'resultsdb_result_id': rng.randint(1, 10 ** 6),
                            'x': random_value(rng, 2)}
    return detail


def state(detail):
    '''What import_YAML should give back for an exported detail.'''
    return {
        'item': detail.item,
        'report_type': detail.report_type or None,
        'outcome': detail.outcome,
        'note': detail.note or '',
        'checkname': detail.checkname or None,
        'artifact': detail.artifact or None,
        'keyvals': {k: v for k, v in detail.keyvals.items() if k not in check.RESERVED_KEYS},
        '_internal': detail._internal or {},
    }


def imported_state(detail):
    return {
        'item': detail.item,
        'report_type': detail.report_type,
        'outcome': detail.outcome,
        'note': detail.note,
        'checkname': detail.checkname,
        'artifact': detail.artifact,
        'keyvals': detail.keyvals,
        '_internal': detail._internal,
    }


def tap_block(detail):
    '''The mapping export_TAP should put in a detail's YAML block.'''
    block = {'item': detail.item, 'outcome': detail.outcome}
    if detail.note:
        block['summary'] = detail.note
    if detail.report_type:
        block['type'] = detail.report_type
    if detail.checkname:
        block['checkname'] = detail.checkname
    if detail.artifact:
        block['artifact'] = detail.artifact
    if detail.output:
        block['details'] = {'output': '\n'.join(detail.output)}
    for key, value in detail.keyvals.items():
        if key not in check.RESERVED_KEYS + ('summary', 'details'):
            block[key] = value
    return block


# ------------------------------------------------------------------ tests

class TestCheckDetail(unittest.TestCase):

    def setUp(self):
        self.cd = check.CheckDetail(None)

    def test_init_empty(self):
        self.assertEqual(self.cd.outcome, 'NEEDS_INSPECTION')
        self.assertIsNone(self.cd._outcome)
        self.assertFalse(self.cd.item)
        self.assertEqual(self.cd.note, '')
        self.assertEqual(self.cd.output, [])
        self.assertEqual(self.cd.keyvals, {})
        self.assertIsNone(self.cd.checkname)
        self.assertIsNone(self.cd.artifact)
        self.assertIsNone(self.cd.report_type)
        self.assertEqual(self.cd._internal, {})

    def test_init_params(self):
        cd = check.CheckDetail(item='foo-1.2-3.fc20', outcome='FAILED', note='untested',
                               output=['line1', 'line2'], checkname='testcheck',
                               artifact='logfile.log', report_type='koji_build',
                               keyvals={'a': 1})
        self.assertEqual(cd.item, 'foo-1.2-3.fc20')
        self.assertEqual(cd.outcome, 'FAILED')
        self.assertEqual(cd.note, 'untested')
        self.assertEqual(cd.output, ['line1', 'line2'])
        self.assertEqual(cd.checkname, 'testcheck')
        self.assertEqual(cd.artifact, 'logfile.log')
        self.assertEqual(cd.report_type, 'koji_build')
        self.assertEqual(cd.keyvals, {'a': 1})

    def test_positional_arguments_as_old_tasks_use_them(self):
        cd = check.CheckDetail('nvr', check.ReportType.KOJI_BUILD, 'PASSED', 'summary text')
        self.assertEqual((cd.item, cd.report_type, cd.outcome, cd.note),
                         ('nvr', 'koji_build', 'PASSED', 'summary text'))
        self.assertEqual(cd.summary, 'summary text')
        cd.summary = 'other'
        self.assertEqual(cd.note, 'other')

    def test_init_raise(self):
        with self.assertRaises(exc.TaskotronValueError):
            check.CheckDetail(None, outcome='INVALID TYPE')
        with self.assertRaises(exc.TaskotronValueError):
            check.CheckDetail(None, output='foobar')
        with self.assertRaises(exc.TaskotronValueError):
            check.CheckDetail(None, output=('a', 'b'))  # not mutable
        with self.assertRaises(exc.TaskotronValueError):
            check.CheckDetail(None, output=['a', 1])
        with self.assertRaises(exc.TaskotronValueError):
            check.CheckDetail(None, keyvals='foobar')

    def test_bad_outcome_raises_clearly(self):
        with self.assertRaises(ValueError) as ctx:
            self.cd.outcome = 'PASS'
        self.assertIsInstance(ctx.exception, exc.TaskotronValueError)
        self.assertIsInstance(ctx.exception, exc.TaskotronError)
        self.assertIn('PASS', str(ctx.exception))
        self.assertIn('NEEDS_INSPECTION', str(ctx.exception))  # lists the valid ones
        for bad in ('passed', 'ERROR', '', None, 1):
            with self.assertRaises(exc.TaskotronValueError):
                self.cd.outcome = bad
        self.assertEqual(self.cd.outcome, 'NEEDS_INSPECTION')
        # the checkb name is the same class
        self.assertIs(exc.CheckbValueError, exc.TaskotronValueError)

    def test_outcome(self):
        for outcome in OUTCOMES:
            self.cd.outcome = outcome
            self.assertEqual(self.cd.outcome, outcome)

    def test_update_outcome_precedence(self):
        self.assertEqual(OUTCOMES, ('PASSED', 'INFO', 'FAILED', 'NEEDS_INSPECTION',
                                    'ABORTED', 'CRASHED'))
        for first in OUTCOMES:
            for second in OUTCOMES:
                cd = check.CheckDetail('x', outcome=first)
                cd.update_outcome(second)
                worse = max(first, second, key=OUTCOMES.index)
                self.assertEqual(cd.outcome, worse, (first, second))
        # unset counts as lower than everything, even PASSED
        cd = check.CheckDetail('x')
        cd.update_outcome('PASSED')
        self.assertEqual(cd.outcome, 'PASSED')
        # a sequence of updates keeps the worst
        cd = check.CheckDetail('x')
        for outcome in ['INFO', 'PASSED', 'FAILED', 'INFO', 'PASSED']:
            cd.update_outcome(outcome)
        self.assertEqual(cd.outcome, 'FAILED')
        cd.update_outcome(None)
        self.assertEqual(cd.outcome, 'FAILED')

    def test_update_outcome_raise(self):
        with self.assertRaises(exc.TaskotronValueError):
            self.cd.update_outcome('INVALID OUTCOME TYPE')

    def test_broken(self):
        self.assertFalse(self.cd.broken())
        self.cd.outcome = 'ABORTED'
        self.assertTrue(self.cd.broken())
        self.cd.outcome = 'CRASHED'
        self.assertTrue(self.cd.broken())
        self.cd.outcome = 'FAILED'
        self.assertFalse(self.cd.broken())

    def test_store(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.cd.store('foobar')
        self.assertEqual(self.cd.output, ['foobar'])
        self.assertEqual(out.getvalue(), 'foobar\n')
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.cd.store('barbaz', printout=False)
        self.assertEqual(self.cd.output, ['foobar', 'barbaz'])
        self.assertEqual(out.getvalue(), '')

    def test_store_appends_to_given_list(self):
        lines = ['first']
        cd = check.CheckDetail('x', output=lines)
        cd.store('second', printout=False)
        self.assertIs(cd.output, lines)
        self.assertEqual(lines, ['first', 'second'])

    def test_cmp_outcome(self):
        cmp = check.CheckDetail.cmp_outcome
        self.assertEqual(cmp('FAILED', 'PASSED'), 1)
        self.assertEqual(cmp('NEEDS_INSPECTION', 'INFO'), 1)
        self.assertEqual(cmp('CRASHED', 'ABORTED'), 1)
        self.assertEqual(cmp('PASSED', None), 1)
        self.assertEqual(cmp('PASSED', 'PASSED'), 0)
        self.assertEqual(cmp(None, None), 0)
        self.assertEqual(cmp('PASSED', 'FAILED'), -1)
        self.assertEqual(cmp(None, 'PASSED'), -1)
        for bad in (('PASSED', 'INVALID'), ('INVALID', 'FAILED'), ('FOOBAR', 'FOOBAR')):
            with self.assertRaises(exc.TaskotronValueError):
                cmp(*bad)

    def test_create_multi_item_summary(self):
        summary = check.CheckDetail.create_multi_item_summary
        self.assertEqual(summary(['PASSED', 'PASSED', 'FAILED', 'ABORTED', 'INFO', 'INFO']),
                         '2 PASSED, 2 INFO, 1 FAILED, 1 ABORTED')
        self.assertEqual(summary([]), '')
        self.assertEqual(summary(self.cd), '1 NEEDS_INSPECTION')
        details = [self.cd, check.CheckDetail(None, outcome='PASSED'),
                   check.CheckDetail(None, outcome='PASSED'),
                   check.CheckDetail(None, outcome='INFO')]
        self.assertEqual(summary(details), '2 PASSED, 1 INFO, 1 NEEDS_INSPECTION')
        self.assertEqual(summary(iter(['CRASHED'])), '1 CRASHED')
        with self.assertRaises(exc.TaskotronValueError):
            summary('PASSED')
        with self.assertRaises(exc.TaskotronValueError):
            summary([self.cd, 'PASSED'])

    def test_str_does_not_change_the_detail(self):
        cd = check.CheckDetail('x', output=['a'])
        text = str(cd)
        self.assertIn("'item': 'x'", text)
        self.assertIn('<stripped out>', text)
        self.assertEqual(cd.output, ['a'])

    def test_report_types(self):
        self.assertEqual(check.ReportType.KOJI_BUILD, 'koji_build')
        self.assertEqual(check.ReportType.BODHI_UPDATE, 'bodhi_update')
        self.assertEqual(check.ReportType.KOJI_TAG, 'koji_tag')
        self.assertEqual(check.ReportType.COMPOSE, 'compose')
        self.assertEqual(check.ReportType.DIST_GIT_COMMIT, 'dist_git_commit')
        self.assertEqual(check.ReportType.DOCKER_IMAGE, 'docker_image')
        self.assertEqual(check.ReportType.MODULE_BUILD, 'module_build')
        self.assertEqual(check.ReportType.GIT_COMMIT, 'git_commit')
        self.assertEqual(check.ReportType.PULL_REQUEST, 'pull_request')
        self.assertEqual(len(set(check.ReportType.list())), 9)


class TestExportYAML(unittest.TestCase):
    item = 'xchat-0.5-1.fc20'
    outcome = 'PASSED'
    note = '5 ERRORS, 10 WARNINGS'
    report_type = check.ReportType.KOJI_BUILD
    keyvals = {'foo': 'bar', 'moo': 11}
    checkname = 'testcheck'
    artifact = 'logfile.log'
    _internal = {'resultsdb_result_id': 1234}

    def setUp(self):
        self.cd = check.CheckDetail(item=self.item, outcome=self.outcome, note=self.note,
                                    report_type=self.report_type,
                                    keyvals=dict(self.keyvals), checkname=self.checkname,
                                    artifact=self.artifact)
        self.cd._internal = dict(self._internal)

    def expected(self):
        return {'item': self.item, 'outcome': self.outcome, 'note': self.note,
                'type': self.report_type, 'foo': 'bar', 'moo': 11,
                'checkname': self.checkname, 'artifact': self.artifact,
                '_internal': self._internal}

    def test_single_exact_text(self):
        self.assertEqual(check.export_YAML(self.cd), '''\
results:
- _internal:
    resultsdb_result_id: 1234
  artifact: logfile.log
  checkname: testcheck
  foo: bar
  item: xchat-0.5-1.fc20
  moo: 11
  note: 5 ERRORS, 10 WARNINGS
  outcome: PASSED
  type: koji_build
''')

    def test_single_builtin_loader(self):
        self.assertEqual(_yaml.load(check.export_YAML(self.cd)),
                         {'results': [self.expected()]})

    @needs_pyyaml
    def test_single_pyyaml(self):
        self.assertEqual(yaml.safe_load(check.export_YAML(self.cd)),
                         {'results': [self.expected()]})

    @needs_pyyaml
    def test_same_text_as_pyyaml_safe_dump(self):
        '''For the usual values, the text is what upstream (yaml.safe_dump
        with indent=2, allow_unicode, block style) writes.'''
        self.assertEqual(check.export_YAML(self.cd),
                         yaml.safe_dump({'results': [self.expected()]}, indent=2,
                                        allow_unicode=True, default_flow_style=False))
        rng = random.Random(7)
        words = ['foo', 'bar_baz', 'x-1', 'A.b', 'yes', 'No', 'null', '~', '', '1.0', '12',
                 '0x1F', '2001-12-14', 'true', 'OFF', 'koji_build', 'f20-updates', '.inf']

        def value(depth):
            roll = rng.random()
            if depth < 3 and roll < 0.15:
                return [value(depth + 1) for _ in range(rng.randint(0, 3))]
            if depth < 3 and roll < 0.3:
                # (PyYAML writes an empty key as a complex key, "? ''")
                return {rng.choice(words) or 'k': value(depth + 1)
                        for _ in range(rng.randint(0, 3))}
            return rng.choice(words + [0, 7, -3, 1.5, 1e20, True, False, None])

        for _ in range(300):
            details = []
            for _ in range(rng.randint(0, 3)):
                keyvals = {rng.choice(words) or 'k': value(1) for _ in range(rng.randint(0, 4))}
                details.append(check.CheckDetail(
                    rng.choice(words) or 'item', rng.choice([None, 'koji_build']),
                    rng.choice(OUTCOMES), rng.choice(words), keyvals=keyvals))
            with quiet():
                text = check.export_YAML(details)
                data = {'results': [_plain_result(d) for d in details]}
            self.assertEqual(text, yaml.safe_dump(data, indent=2, allow_unicode=True,
                                                  default_flow_style=False))

    def test_invalid_keyvals(self):
        cd = copy.deepcopy(self.cd)
        for key in check.RESERVED_KEYS:
            cd.keyvals[key] = 'foo'
        with self.assertLogs('libtaskotron', level='WARNING') as logs:
            text = check.export_YAML(cd)
        self.assertEqual(len(logs.records), len(check.RESERVED_KEYS))
        self.assertEqual(_yaml.load(text)['results'][0], self.expected())

    def test_multi(self):
        cd2 = check.CheckDetail(item='foobar-1.2-3.fc20', outcome='FAILED',
                                note='dependency error',
                                report_type=check.ReportType.BODHI_UPDATE)
        cd3 = check.CheckDetail(item='f20-updates', outcome='INFO', note='2 stale updates',
                                report_type=check.ReportType.KOJI_TAG)
        data = _yaml.load(check.export_YAML([self.cd, cd2, cd3]))
        self.assertEqual([r['item'] for r in data['results']],
                         [self.item, 'foobar-1.2-3.fc20', 'f20-updates'])
        # any iterable will do
        data = _yaml.load(check.export_YAML(iter([cd2, cd3])))
        self.assertEqual(len(data['results']), 2)

    def test_empty(self):
        self.assertEqual(check.export_YAML([]), 'results: []\n')

    def test_invalid_missing_item(self):
        for item in (None, ''):
            self.cd.item = item
            with self.assertRaises(exc.TaskotronValueError):
                check.export_YAML(self.cd)
        with self.assertRaises(exc.TaskotronValueError):
            check.export_YAML(['not a detail'])
        with self.assertRaises(exc.TaskotronValueError):
            check.export_YAML(42)

    def test_unwritable_keyval(self):
        self.cd.keyvals['blob'] = b'bytes'
        with self.assertRaises(exc.TaskotronValueError):
            check.export_YAML(self.cd)
        self.cd.keyvals['blob'] = {1, 2}
        with self.assertRaises(exc.TaskotronValueError):
            check.export_YAML(self.cd)

    def test_minimal(self):
        self.assertEqual(check.export_YAML(check.CheckDetail('foo')),
                         'results:\n- item: foo\n  outcome: NEEDS_INSPECTION\n')

    def test_custom_report_type(self):
        self.cd.report_type = 'My Custom Type'
        self.assertEqual(_yaml.load(check.export_YAML(self.cd))['results'][0]['type'],
                         'My Custom Type')

    def test_every_line_is_block_style_and_single_line_scalars(self):
        cd = check.CheckDetail('a\nb', note='x\n\n', keyvals={'k\n': ['\n', {'z': '\r'}]})
        text = check.export_YAML(cd)
        self.assertEqual(text, '''\
results:
- item: "a\\nb"
  "k\\n":
  - "\\n"
  - z: "\\r"
  note: "x\\n\\n"
  outcome: NEEDS_INSPECTION
''')

    def test_quoting_rules(self):
        cases = {
            'plain': 'plain', 'with space': 'with space', '5 ERRORS, 10 WARNINGS':
            '5 ERRORS, 10 WARNINGS', '': "''", 'yes': "'yes'", 'y': "'y'", 'Null': "'Null'",
            '1.0': "'1.0'", '12': "'12'", '2001-12-14': "'2001-12-14'", "it's": "'it''s'",
            'a: b': "'a: b'", '# x': "'# x'", ' lead': "' lead'", 'trail ': "'trail '",
            '- a': "'- a'", 'é': "'é'", 'a\tb': '"a\\tb"', 'a\nb': '"a\\nb"',
            '\x1b': '"\\u001B"', '\u2028': '"\\u2028"', '\x85': '"\\u0085"',
            '\ufeff': '"\\uFEFF"', 'a"b\\': '\'a"b\\\'', 'x...': 'x...',
        }
        for value, written in cases.items():
            self.assertEqual(_yaml.dump({'k': value}), 'k: %s\n' % written, repr(value))
        self.assertEqual(_yaml.dump({'k': 'x...'}, tap_safe=True), "k: 'x...'\n")
        self.assertEqual(_yaml.dump({'k': [1, 2.5, 1e20, -math.inf, True, None, [], {}]}),
                         'k:\n- 1\n- 2.5\n- 1.0e+20\n- -.inf\n- true\n- null\n- []\n- {}\n')


def _plain_result(detail):
    data = {'item': detail.item, 'outcome': detail.outcome}
    for attr, key in (('artifact', 'artifact'), ('report_type', 'type'), ('note', 'note'),
                      ('checkname', 'checkname'), ('_internal', '_internal')):
        if getattr(detail, attr):
            data[key] = getattr(detail, attr)
    for key, value in detail.keyvals.items():
        if key not in check.RESERVED_KEYS:
            data[key] = value
    return data


class ImportYAMLTests(object):
    '''The import tests, run with each YAML reader.'''
    reader = None

    item = 'xchat-0.5-1.fc20'
    keyvals = {'foo': 'bar', 'moo': 11}
    yaml_output = """
results:
  - item: xchat-0.5-1.fc20
    outcome: PASSED
    artifact: logfile.log
    note: 5 ERRORS, 10 WARNINGS
    type: koji_build
    foo: bar
    moo: 11
    checkname: testcheck
    _internal:
        resultsdb_result_id: 1234
"""

    def setUp(self):
        self.context = self.reader()
        self.context.__enter__()

    def tearDown(self):
        self.context.__exit__(None, None, None)

    def check_detail(self, cd):
        self.assertIsInstance(cd, check.CheckDetail)
        self.assertEqual(cd.item, self.item)
        self.assertEqual(cd.outcome, 'PASSED')
        self.assertEqual(cd.note, '5 ERRORS, 10 WARNINGS')
        self.assertEqual(cd.report_type, 'koji_build')
        self.assertEqual(cd.keyvals, self.keyvals)
        self.assertEqual(cd.checkname, 'testcheck')
        self.assertEqual(cd.artifact, 'logfile.log')
        self.assertEqual(cd._internal, {'resultsdb_result_id': 1234})

    def test_import(self):
        cds = check.import_YAML(self.yaml_output)
        self.assertEqual(len(cds), 1)
        self.check_detail(cds[0])

    def test_import_exported(self):
        cd = check.CheckDetail(self.item, 'koji_build', 'PASSED', '5 ERRORS, 10 WARNINGS',
                               keyvals=dict(self.keyvals), checkname='testcheck',
                               artifact='logfile.log')
        cd._internal = {'resultsdb_result_id': 1234}
        cds = check.import_YAML(check.export_YAML(cd))
        self.assertEqual(len(cds), 1)
        self.check_detail(cds[0])

    def test_import_json(self):
        text = ('{"results": [{"item": "xchat-0.5-1.fc20", "outcome": "PASSED",'
                ' "artifact": "logfile.log", "note": "5 ERRORS, 10 WARNINGS",'
                ' "type": "koji_build", "foo": "bar", "moo": 11, "checkname": "testcheck",'
                ' "_internal": {"resultsdb_result_id": 1234}}]}')
        self.check_detail(check.import_YAML(text)[0])
        self.check_detail(check.import_YAML(text.encode('utf-8'))[0])

    def test_import_minimal_and_defaults(self):
        cds = check.import_YAML('results:\n- item: x\n  outcome: FAILED\n- item: y\n')
        self.assertEqual([(c.item, c.outcome, c.note, c.report_type, c.keyvals, c._internal)
                          for c in cds],
                         [('x', 'FAILED', '', None, {}, {}),
                          ('y', 'NEEDS_INSPECTION', '', None, {}, {})])

    def test_no_yaml(self):
        for source in (None, ''):
            with self.assertRaises(exc.TaskotronValueError):
                check.import_YAML(source)

    def test_invalid_yaml(self):
        for source in ('key:value\nkey: value', 'results: [1, 2', 'results:\n\t- a',
                       "results: 'open"):
            with self.assertRaises(exc.TaskotronValueError) as ctx:
                check.import_YAML(source)
            self.assertIn('Failed to parse YAML contents', str(ctx.exception))

    def test_invalid_yaml_root_element_type(self):
        for source in ('[]', 'just text', '42', '# only a comment'):
            with self.assertRaises(exc.TaskotronValueError):
                check.import_YAML(source)

    def test_invalid_yaml_missing_results_key(self):
        with self.assertRaises(exc.TaskotronValueError):
            check.import_YAML('{}')

    def test_invalid_yaml_wrong_results_type(self):
        with self.assertRaises(exc.TaskotronValueError):
            check.import_YAML("{'results': {}}")

    def test_invalid_result_entry(self):
        with self.assertRaises(exc.TaskotronValueError):
            check.import_YAML('results:\n- just a string\n')
        with self.assertRaises(exc.TaskotronValueError) as ctx:
            check.import_YAML('results:\n- item: x\n  outcome: PASS\n')
        self.assertIn('results[0]', str(ctx.exception))
        self.assertIn('PASS', str(ctx.exception))

    def test_no_results(self):
        self.assertEqual(check.import_YAML("{'results': []}"), [])
        self.assertEqual(check.import_YAML("{'results': null}"), [])
        self.assertEqual(check.import_YAML('results:\n'), [])


class TestImportYAMLBuiltin(ImportYAMLTests, unittest.TestCase):
    reader = staticmethod(without_pyyaml)


@needs_pyyaml
class TestImportYAMLPyYAML(ImportYAMLTests, unittest.TestCase):
    reader = staticmethod(contextlib.nullcontext)


class TestRoundTrip(unittest.TestCase):
    '''export_YAML then import_YAML gives back the same details.'''

    def test_random_details(self):
        rng = random.Random(20240611)
        total = 0
        for _ in range(150):
            details = [random_detail(rng) for _ in range(rng.randint(1, 5))]
            total += len(details)
            text = check.export_YAML(details)
            expected = [state(d) for d in details]
            for name, reader in loaders():
                with reader():
                    got = [imported_state(d) for d in check.import_YAML(text)]
                self.assertEqual(got, expected, '%s reader, text:\n%s' % (name, text))
            if yaml is not None:
                self.assertEqual(_yaml.load(text), yaml.safe_load(text))
            # the import of an export exports the same text
            with without_pyyaml():
                self.assertEqual(check.export_YAML(check.import_YAML(text)), text)
        self.assertGreater(total, 300)

    def test_every_tricky_string_everywhere(self):
        for value in TRICKY:
            item = value or 'x'
            cd = check.CheckDetail(item, report_type=value, note=value, checkname=value,
                                   artifact=value, keyvals={value: value, 'list': [value],
                                                            'map': {value: [value]}})
            text = check.export_YAML(cd)
            for name, reader in loaders():
                with reader():
                    got = imported_state(check.import_YAML(text)[0])
                self.assertEqual(got, state(cd), '%s reader, %r:\n%s' % (name, value, text))

    def test_output_is_not_exported(self):
        cd = check.CheckDetail('x', output=['a', 'b'])
        self.assertNotIn('output', check.export_YAML(cd))


class TestBuiltinLoader(unittest.TestCase):
    '''The stdlib reader agrees with yaml.safe_load on hand-written YAML.'''

    DOCS = [
        ('results:\n  - item: a\n    outcome: PASSED\n', {'results': [{'item': 'a',
                                                                       'outcome': 'PASSED'}]}),
        ('a:\n- 1\n- 2\nb: 3', {'a': [1, 2], 'b': 3}),
        ('- a\n- - b\n  - c\n- d: 1\n  e: 2\n', ['a', ['b', 'c'], {'d': 1, 'e': 2}]),
        ('a: |\n  x\n  y\n', {'a': 'x\ny\n'}),
        ('a: |-\n  x\n\n', {'a': 'x'}),
        ('a: |+\n  x\n\n', {'a': 'x\n\n'}),
        ('a: >\n  x\n  y\n\n  z\n', {'a': 'x y\nz\n'}),
        ('a: |2\n   lead\n  x\n', {'a': ' lead\nx\n'}),
        ("a: 'x\n\n  y'", {'a': 'x\ny'}),
        ('a: "x\\\n  y"', {'a': 'xy'}),
        ('a: "x  \n  y"', {'a': 'x y'}),
        ('a: x\n  y\n\n  z\nb: 1', {'a': 'x y\nz', 'b': 1}),
        ('a: 0x1F\nb: 017\nc: 1:20\nd: 1.5e+3\ne: .inf\nf: -.Inf\ni: 1e5\nj: 0o17\nk: ~\n'
         'l: Yes\nm: OFF\nn: +12\no: 1_000\np: 0b11\nq: 1:30.5\nr: y',
         {'a': 31, 'b': 15, 'c': 80, 'd': 1500.0, 'e': math.inf, 'f': -math.inf, 'i': '1e5',
          'j': '0o17', 'k': None, 'l': True, 'm': False, 'n': 12, 'o': 1000, 'p': 3,
          'q': 90.5, 'r': 'y'}),
        ('g: 2001-12-14\nh: 2001-12-14 21:59:43.10 -5\nz: 2001-12-14T21:59:43Z\n'
         'w: 2001-12-1',
         {'g': datetime.date(2001, 12, 14),
          'h': datetime.datetime(2001, 12, 14, 21, 59, 43, 100000,
                                 tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
          'z': datetime.datetime(2001, 12, 14, 21, 59, 43, tzinfo=datetime.timezone.utc),
          'w': '2001-12-1'}),
        ('# comment\n---\na: 1 # c\n...\n', {'a': 1}),
        ('%YAML 1.1\n---\na: 1\n', {'a': 1}),
        ('--- |\n  text\n', 'text\n'),
        ('a: [1,\n  2, {b: c}]\n', {'a': [1, 2, {'b': 'c'}]}),
        ("a: {x: 1, 'y': [a, b], z: }", {'a': {'x': 1, 'y': ['a', 'b'], 'z': None}}),
        ('[a: 1, b]', [{'a': 1}, 'b']),
        ('{a:1}', {'a:1': None}),
        ('{"a":1, "b":[true,false,null], "c":"\\u00e9\\/"}',
         {'a': 1, 'b': [True, False, None], 'c': 'é/'}),
        ('key: "\\u00e9\\x41\\N\\t\\_\\L\\P\\e\\0\\U0001F600"',
         {'key': 'éA\x85\t\xa0\u2028\u2029\x1b\x00😀'}),
        ('  a: 1\n  b: 2\n', {'a': 1, 'b': 2}),
        ('a:\n  b:\n    c: d\n  e: f\n', {'a': {'b': {'c': 'd'}, 'e': 'f'}}),
        ('- \n  a: 1\n-\n- x\n', [{'a': 1}, None, 'x']),
        ('a:\n', {'a': None}),
        ('a: # c\n  b: 1\n', {'a': {'b': 1}}),
        ('\'quoted key\': 1\n"dq": 2\n"": 3\n', {'quoted key': 1, 'dq': 2, '': 3}),
        ("x: 'it''s'\n", {'x': "it's"}),
        ('1: a\n2.5: b\nnull: c\ntrue: d\n', {1: 'a', 2.5: 'b', None: 'c', True: 'd'}),
        ('url: http://x.org/a#b\nc: a#b # comment\n', {'url': 'http://x.org/a#b', 'c': 'a#b'}),
        ('a: 1\r\nb: 2\r\n', {'a': 1, 'b': 2}),
        ('a: 1\na: 2\n', {'a': 2}),
        ('\ufeffa: 1\n', {'a': 1}),
        ('? a\n: b\n? x y\n? |\n  long\n  key\n: - 1\n  - 2\n',
         {'a': 'b', 'x y': None, 'long\nkey\n': [1, 2]}),
        ('{? a : 1, ? b, c: 2}', {'a': 1, 'b': None, 'c': 2}),
        ('a: |\n  no final break', {'a': 'no final break'}),
        ('a: |+\n  x\n\n  ', {'a': 'x\n\n'}),
        ('', None),
        ('# nothing\n\n', None),
    ]
    BAD = ['a: b: c\n', 'key:value\nkey: value', '--- 1\n--- 2\n', 'a:\n\tb: 1\n', '- a\n-b',
           "a: 'unterminated\n", 'a: [1, 2\n', 'a: 1\n  b: 2\n', 'a: 1\n- b\n', 'a: - b\n',
           '&x a: 1', 'a: *x', 'a: !!str 1', 'a: ? b\n', '? [x, y]\n: 1\n', '{[a]: 1}',
           'a: "\\q"\n', 'a: 1\n b: 2\n',
           '- a\n  - b: c\n', 'a: "x" y\n', '}\n', 'a: <<\n']

    def test_documents(self):
        for text, expected in self.DOCS:
            self.assertEqual(_yaml.load(text), expected, repr(text))
            if yaml is not None:
                self.assertEqual(yaml.safe_load(text), expected, 'PyYAML: %r' % text)

    def test_errors(self):
        for text in self.BAD:
            with self.assertRaises(_yaml.YAMLError, msg=repr(text)):
                _yaml.load(text)

    @needs_pyyaml
    def test_errors_that_pyyaml_also_refuses(self):
        for text in self.BAD:
            if text.startswith(('&', 'a: *', 'a: !!', 'a: ?', 'a: <<', '- a\n  - b')):
                continue  # features the builtin reader does not support
            with self.assertRaises(yaml.YAMLError, msg=repr(text)):
                yaml.safe_load(text)

    def test_errors_name_the_line(self):
        with self.assertRaises(_yaml.YAMLError) as ctx:
            _yaml.load('a: 1\nb: 2\nc: d: e\n')
        self.assertIn('line 3', str(ctx.exception))


class TestExportTAP(unittest.TestCase):

    def parse(self, text, loader=None):
        tap = tap13.parse(text, yaml_loader=loader or _yaml.load)
        self.assertTrue(tap.version_found)
        return tap

    def test_exact_text(self):
        cd = check.CheckDetail('xchat-0.5-1.fc20', check.ReportType.KOJI_BUILD, 'PASSED',
                               '0 errors, 7 warnings', output=['line 1', 'line 2'])
        self.assertEqual(check.export_TAP(cd, checkname='rpmlint'), '''\
TAP version 13
1..1
ok - rpmlint for xchat-0.5-1.fc20
  ---
  details:
    output: "line 1\\nline 2"
  item: xchat-0.5-1.fc20
  outcome: PASSED
  summary: 0 errors, 7 warnings
  type: koji_build
  ...
''')

    def test_ok_and_not_ok(self):
        details = [check.CheckDetail('item-%s' % o, outcome=o) for o in OUTCOMES]
        details.append(check.CheckDetail('unset'))
        tap = self.parse(check.export_TAP(details))
        self.assertEqual(tap.tests_planned, len(details))
        self.assertEqual([(t.number, t.ok, t.directive) for t in tap.tests],
                         [(1, True, None), (2, True, None), (3, False, None), (4, False, None),
                          (5, False, None), (6, False, None), (7, False, None)])
        self.assertEqual(tap.tests[0].description, '- $CHECKNAME for item-PASSED')
        self.assertEqual([t.yaml['outcome'] for t in tap.tests],
                         list(OUTCOMES) + ['NEEDS_INSPECTION'])

    def test_skip_in_item_stays_a_failing_point(self):
        for item in ('foo # SKIP', '# SKIP', 'foo #SKIP because', 'x # TODO later',
                     'rpms/foo#abc', 'a\n# SKIP', '#'):
            cd = check.CheckDetail(item, outcome='FAILED', note='# SKIP me')
            text = check.export_TAP(cd, checkname='# SKIP check')
            tap = self.parse(text)
            self.assertEqual(len(tap.tests), 1, text)
            point = tap.tests[0]
            self.assertFalse(point.ok, text)
            self.assertIsNone(point.directive, text)
            self.assertIsNone(point.comment, text)
            self.assertNotIn('#', point.description)
            self.assertEqual(point.yaml['item'], item)
            self.assertEqual(point.yaml['summary'], '# SKIP me')

    def test_no_hash_or_line_break_in_descriptions(self):
        cd = check.CheckDetail('a#b\nc\rd\u2028e\x85f\tg', outcome='PASSED',
                               checkname='name#1')
        text = check.export_TAP(cd)
        line = text.split('\n')[2]
        self.assertEqual(line, 'ok - name%231 for a%23b c d e f g')
        self.assertEqual(len(text.splitlines()), len(text.split('\n')) - 1)

    def test_detail_checkname_wins(self):
        cds = [check.CheckDetail('a', outcome='PASSED', checkname='own'),
               check.CheckDetail('b', outcome='PASSED')]
        tap = self.parse(check.export_TAP(cds, checkname='task'))
        self.assertEqual([t.description for t in tap.tests], ['- own for a', '- task for b'])

    def test_block_end_cannot_be_faked(self):
        cd = check.CheckDetail('wait...', outcome='FAILED', note='Checking...',
                               output=['Loading...', '...', 'done'],
                               keyvals={'k...': 'v...', 'list': ['x...', {'y...': 'z... '}]})
        text = check.export_TAP(cd)
        body = text.split('\n')[4:-2]
        for line in body:
            self.assertIsNone(tap13.RE_YAMLISH_END.match(line), line)
        tap = self.parse(text)
        self.assertEqual(len(tap.tests), 1)
        self.assertEqual(tap.tests[0].yaml, tap_block(cd))

    def test_reserved_keyvals(self):
        cd = check.CheckDetail('x', outcome='PASSED',
                               keyvals={'summary': 's', 'details': 'd', 'item': 'i', 'k': 1})
        with quiet():
            tap = self.parse(check.export_TAP(cd))
        self.assertEqual(tap.tests[0].yaml, {'item': 'x', 'outcome': 'PASSED', 'k': 1})

    def test_empty_and_invalid(self):
        self.assertEqual(check.export_TAP([]), 'TAP version 13\n1..0\n')
        with self.assertRaises(exc.TaskotronValueError):
            check.export_TAP(check.CheckDetail(''))

    def test_random_details(self):
        rng = random.Random(1311)
        readers = [_yaml.load] + ([yaml.safe_load] if yaml is not None else [])
        for _ in range(100):
            details = [random_detail(rng) for _ in range(rng.randint(1, 4))]
            text = check.export_TAP(details, checkname=random_string(rng))
            for reader in readers:
                tap = self.parse(text, reader)
                self.assertEqual(tap.tests_planned, len(details))
                self.assertEqual(len(tap.tests), len(details), text)
                for point, detail in zip(tap.tests, details):
                    self.assertEqual(point.ok, detail.outcome in ('PASSED', 'INFO'))
                    self.assertIsNone(point.directive)
                    self.assertEqual(point.diagnostics, [])
                    self.assertEqual(point.yaml, tap_block(detail), text)


class TestTap13Parser(unittest.TestCase):

    SAMPLE = '''
    garbage before the version
    TAP version 13
    ok 1 - Input file opened
    not ok 2 - First line of the input valid
        ---
        message: 'First line invalid'
        severity: fail
        data:
          got: 'Flirble'
          expect: 'Fnible'
        ...
    ok - Read the rest of the file
    not ok 5 - Summarized correctly # TODO Not written yet
        ---
        message: "Can't make summary yet"
        severity: todo
        ...
    ok  Description
    # Diagnostic
    OK 7 skipped # skip no network
    1..7
    ok 8 - after the plan: ignored
'''

    def test_sample(self):
        tap = tap13.parse(self.SAMPLE, yaml_loader=_yaml.load)
        self.assertEqual(tap.tests_planned, 7)
        got = [(t.result, t.number, t.description, t.directive, t.comment) for t in tap.tests]
        self.assertEqual(got, [
            ('ok', 1, '- Input file opened', None, None),
            ('not ok', 2, '- First line of the input valid', None, None),
            ('ok', 3, '- Read the rest of the file', None, None),
            ('not ok', 5, '- Summarized correctly', 'TODO', 'Not written yet'),
            ('ok', 6, 'Description', None, None),
            ('ok', 7, 'skipped', 'SKIP', 'no network'),
        ])
        self.assertEqual(tap.tests[1].yaml, {'message': 'First line invalid', 'severity': 'fail',
                                             'data': {'got': 'Flirble', 'expect': 'Fnible'}})
        self.assertEqual(tap.tests[3].yaml['severity'], 'todo')
        self.assertEqual(tap.tests[4].diagnostics, ['# Diagnostic'])
        self.assertIsNone(tap.tests[0].yaml_text)

    def test_hash_in_description_is_a_directive(self):
        tap = tap13.parse('TAP version 13\n1..2\nnot ok - foo # SKIP bar\nok - a # b\n')
        self.assertEqual([(t.ok, t.description, t.directive, t.comment) for t in tap.tests],
                         [(False, '- foo', 'SKIP', 'bar'), (True, '- a', None, 'b')])

    def test_any_line_ending_with_dots_ends_the_block(self):
        text = 'TAP version 13\nok\n  ---\n  a: Loading...\n  b: 1\n  ...\n'
        tap = tap13.parse(text)
        self.assertEqual(tap.tests[0].yaml_text, '')

    def test_errors(self):
        with self.assertRaises(tap13.TAPError):
            tap13.parse('TAP version 13\nok 2\nok 1\n')
        with self.assertRaises(tap13.TAPError):
            tap13.parse('TAP version 13\nok 1\n  ---\n  a: 1\n')

    def test_no_version_no_tests(self):
        self.assertEqual(tap13.parse('ok 1\nok 2\n').tests, [])


class TestPythonUtils(unittest.TestCase):

    def test_iterable_and_sequence(self):
        self.assertTrue(python_utils.iterable([1, 2]))
        self.assertTrue(python_utils.iterable({'a': 1}))
        self.assertFalse(python_utils.iterable('abc'))
        self.assertFalse(python_utils.iterable(b'abc'))
        self.assertFalse(python_utils.iterable(5))
        self.assertTrue(python_utils.iterable(['a'], str))
        self.assertFalse(python_utils.iterable(['a', 1], str))
        self.assertTrue(python_utils.sequence((1,)))
        self.assertFalse(python_utils.sequence((1,), mutable=True))
        self.assertTrue(python_utils.sequence([1], int, mutable=True))
        self.assertFalse(python_utils.sequence({1}))
        with self.assertRaises(exc.TaskotronValueError):
            python_utils.iterable([1], 'not a type')
        self.assertEqual([python_utils.cmp(1, 2), python_utils.cmp(2, 2), python_utils.cmp(3, 2)],
                         [-1, 0, 1])

    def test_reverse_argparse(self):
        args = {'item': 'foo', 'debug': True, 'quiet': False, 'arch': ['x86_64', 'i386'],
                'job_id': 1234, 't': 'koji', 'unset': None, 'task': 'x.yml'}
        self.assertEqual(python_utils.reverse_argparse(args, ignore=['task']),
                         ['--arch', 'x86_64', '--arch', 'i386', '--debug', '--item', 'foo',
                          '--job-id', '1234', '-t', 'koji'])


class TestTaskotronResult(unittest.TestCase):

    def test_appends_results(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'results.yml')
            self.assertEqual(taskotron_result.main(
                ['-f', path, '-i', 'foo-1.0-1.fc20', '-t', 'koji_build', '-o', 'PASSED',
                 '-k', 'a=b=c', '-n', 'fine']), 0)
            self.assertEqual(taskotron_result.main(
                ['-f', path, '-i', 'bar#1', '-t', 'dist_git_commit', '-o', 'FAILED',
                 '-c', 'sub.check', '-a', 'log.txt']), 0)
            with open(path, encoding='utf-8') as f:
                text = f.read()
            for name, reader in loaders():
                with reader():
                    cds = check.import_YAML(text)
                self.assertEqual([imported_state(cd) for cd in cds], [
                    {'item': 'foo-1.0-1.fc20', 'report_type': 'koji_build', 'outcome': 'PASSED',
                     'note': 'fine', 'checkname': None, 'artifact': None,
                     'keyvals': {'a': 'b=c'}, '_internal': {}},
                    {'item': 'bar#1', 'report_type': 'dist_git_commit', 'outcome': 'FAILED',
                     'note': '', 'checkname': 'sub.check', 'artifact': 'log.txt',
                     'keyvals': {}, '_internal': {}},
                ], name)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                self.assertEqual(taskotron_result.main(
                    ['-f', path, '-i', 'x', '-t', 'koji_build', '-o', 'BAD']), 1)
            self.assertIn('Unknown outcome keyword: BAD', err.getvalue())


if __name__ == '__main__':
    unittest.main()
