# -*- coding: utf-8 -*-
'''A small TAP version 13 parser that reads TAP the way pytap13 (the parser
Taskotron used, by Josef Skladanka) does, so that tests can check what
Taskotron's tooling would have made of Ferrotron's TAP. Python 3, stdlib
only.

The grammar, as in pytap13:

* everything before the ``TAP version 13`` line is ignored;
* a plan ``1..N`` may come first or last; a plan after test points ends
  the parsing;
* a test point is ``ok``/``not ok`` (any case), an optional number, a
  description that runs up to the first ``#``, and after that ``#`` an
  optional ``TODO``/``SKIP`` directive and a comment. So a ``#`` anywhere in
  a description starts a directive: ``ok - a # SKIP b`` is a skipped point;
* a missing number is the running count; a number lower than the count is
  an error (a higher one skips numbers, as pytap13 does);
* after a test point, ``#`` lines are its diagnostics and a line starting
  with ``---`` opens its YAML block, which ends at the first line that ends
  with ``...`` (any line, even one inside a string).

Differences from pytap13: the description is stripped of surrounding
spaces; the YAML block is given as text (and parsed only if a loader is
passed), not loaded with yamlish.
'''

import re
import textwrap

RE_VERSION = re.compile(r'^\s*TAP version 13\s*$')
RE_PLAN = re.compile(r'^\s*(?P<start>\d+)\.\.(?P<end>\d+)\s*(#\s*(?P<explanation>.*))?\s*$')
RE_TEST_LINE = re.compile(
    r'^\s*(?P<result>(not\s+)?ok)\s*(?P<id>\d+)?\s*(?P<description>[^#]+)?'
    r'\s*(#\s*(?P<directive>TODO|SKIP)?\s*(?P<comment>.+)?)?\s*$', re.IGNORECASE)
RE_EXPLANATION = re.compile(r'^\s*#\s*(?P<explanation>.+)?\s*$')
RE_YAMLISH_START = re.compile(r'^\s*---.*$')
RE_YAMLISH_END = re.compile(r'^.*\.\.\.\s*$')


class TAPError(ValueError):
    '''The TAP stream breaks the grammar.'''


class TestPoint(object):
    '''One test point.

    :ivar str result: ``ok`` or ``not ok`` (lower case, one space)
    :ivar bool ok: whether the result is ``ok``
    :ivar int number: the test number (given or counted)
    :ivar str description: the description (``None`` if there is none)
    :ivar str directive: ``SKIP``, ``TODO`` (upper case) or ``None``
    :ivar str comment: the text after the directive (or after a ``#``)
    :ivar list diagnostics: the ``#`` lines after the test point
    :ivar list yaml_lines: the YAML block's lines as they were, markers
                           included; ``None`` without a block
    :ivar str yaml_text: the block's content without its markers, dedented
    :ivar yaml: the loaded block, if a loader was given
    '''

    def __init__(self, result, number, description=None, directive=None, comment=None):
        self.result = 'not ok' if result.lower().startswith('not') else 'ok'
        self.ok = self.result == 'ok'
        self.number = number
        self.description = description.strip() if description is not None else None
        self.directive = directive.upper() if directive else None
        self.comment = comment
        self.diagnostics = []
        self.yaml_lines = None
        self.yaml_text = None
        self.yaml = None

    def __repr__(self):
        return '<TestPoint %s %d %r # %s %r>' % (self.result, self.number, self.description,
                                                 self.directive, self.comment)


class TAP13(object):
    '''The parsed stream: :attr:`tests` (a list of :class:`TestPoint`) and
    :attr:`tests_planned` (``N`` of the plan, or ``None``).'''

    def __init__(self):
        self.tests = []
        self.tests_planned = None
        self.version_found = False


def parse(source, yaml_loader=None):
    '''Parse TAP13 text (a string, or an iterable of lines).

    :param yaml_loader: a function to load each YAML block's text with
                        (e.g. ``yaml.safe_load``); blocks are left as text
                        when ``None``
    :rtype: TAP13
    :raise TAPError: for a descending test number or an unterminated
                     YAML block
    '''
    if isinstance(source, str):
        # lines end at '\n' only, as when reading a file
        source = source.split('\n')
    tap = TAP13()
    seek_version = True
    seek_plan = False
    seek_test = False
    in_test = False
    in_yaml = False
    counter = 0

    def close_yaml(test):
        body = test.yaml_lines[1:-1]
        test.yaml_text = textwrap.dedent('\n'.join(line.rstrip('\r\n') for line in body))
        if yaml_loader is not None:
            test.yaml = yaml_loader(test.yaml_text)

    for raw in source:
        if in_yaml:
            test = tap.tests[-1]
            if RE_YAMLISH_END.match(raw):
                test.yaml_lines.append(raw.strip())
                in_yaml = False
                close_yaml(test)
            else:
                test.yaml_lines.append(raw)
            continue

        line = raw.strip()

        if in_test:
            if RE_EXPLANATION.match(line):
                tap.tests[-1].diagnostics.append(line)
                continue
            if RE_YAMLISH_START.match(line):
                tap.tests[-1].yaml_lines = [line]
                in_yaml = True
                continue

        if seek_version:
            if RE_VERSION.match(line):
                tap.version_found = True
                seek_version = False
                seek_plan = True
                seek_test = True
            continue

        if seek_plan:
            match = RE_PLAN.match(line)
            if match:
                tap.tests_planned = int(match.group('end'))
                seek_plan = False
                if counter > 0:
                    break  # a plan after the test points is the last line
                continue

        if seek_test:
            match = RE_TEST_LINE.match(line)
            if match:
                counter += 1
                attrs = match.groupdict()
                number = counter if attrs['id'] is None else int(attrs['id'])
                if number < counter:
                    raise TAPError('Descending test id on line: %r' % line)
                counter = number
                tap.tests.append(TestPoint(attrs['result'], number, attrs['description'],
                                           attrs['directive'], attrs['comment']))
                in_test = True
                continue

    if in_yaml:
        raise TAPError('unterminated YAML block after test %d' % tap.tests[-1].number)
    return tap
