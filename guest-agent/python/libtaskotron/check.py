# -*- coding: utf-8 -*-
'''Helper tools for managing check status, outcome, and output.

A task describes each result with a :class:`CheckDetail` and returns the
text of :func:`export_YAML` (ResultYAML) or :func:`export_TAP` (TAP13)::

    from libtaskotron import check

    def run(koji_build):
        detail = check.CheckDetail(koji_build, check.ReportType.KOJI_BUILD)
        detail.update_outcome('PASSED')
        detail.store('all good')
        return check.export_YAML(detail)

This is Ferrotron's own implementation of libtaskotron's ``check`` module,
written from its documented behaviour. YAML is written by a small built-in
emitter (so the output is the same with or without PyYAML) and read with
PyYAML's ``safe_load`` when PyYAML can be imported, else with a built-in
reader of the same subset.
'''

import collections.abc as abc
import logging
import pprint

from . import _yaml
from . import exceptions as exc
from . import python_utils

try:
    import yaml as _pyyaml
    _pyyaml.safe_load  # a real PyYAML, not some other module called yaml
except Exception:  # ImportError, or a broken installation
    _pyyaml = None

log = logging.getLogger('libtaskotron')

#: a list of reserved keywords for ResultYAML output, which can't be
#: overridden in keyvals
RESERVED_KEYS = ('item', 'type', 'outcome',
                 'note', 'results', 'checkname',
                 'artifact', '_internal')

# Keys of a TAP YAML block that keyvals cannot override either.
_TAP_RESERVED_KEYS = RESERVED_KEYS + ('summary', 'details')


class CheckDetail(object):
    '''Everything related to the outcome of a check run, with convenience
    methods for tracking, evaluating and reporting it (also for checks that
    give results for many items).

    :cvar tuple outcome_priority: the :attr:`outcome` keywords, from the least
                                  to the most important
    :ivar str item: what was tested, e.g. a build NVR (``vpnc-0.5-1.fc20``),
                    an update ID (``FEDORA-2014-3309``) or a repository
                    (``f20-updates``)
    :ivar str report_type: the type of :attr:`item`, usually one of the
                           :class:`ReportType` values (any string is allowed)
    :ivar str outcome: the result keyword: ``PASSED``, ``INFO``, ``FAILED``,
                       ``NEEDS_INSPECTION``, ``ABORTED`` or ``CRASHED``.
                       ``NEEDS_INSPECTION`` until set; assigning an unknown
                       keyword raises :class:`TaskotronValueError`.
    :ivar str note: a few words about the result, e.g. ``5 WARNINGS, 1 ERROR``
    :ivar list output: output of the check run, a list of strings (see
                       :meth:`store`)
    :ivar dict keyvals: extra key-value data stored with the result
    :ivar str checkname: the check's name, to override the task's (for tasks
                         that report several checks)
    :ivar str artifact: a file or directory in the artifacts directory that
                        belongs to this result (absolute or relative)
    '''

    outcome_priority = ('PASSED', 'INFO', 'FAILED', 'NEEDS_INSPECTION',
                        'ABORTED', 'CRASHED')

    def __init__(self, item, report_type=None, outcome=None, note='',
                 output=None, keyvals=None, checkname=None, artifact=None):
        if output is not None and not python_utils.sequence(output, str, mutable=True):
            raise exc.TaskotronValueError(
                "'output' parameter must be a mutable sequence of strings. "
                "Yours was: %s" % type(output))
        if keyvals is not None and not isinstance(keyvals, abc.Mapping):
            raise exc.TaskotronValueError(
                "'keyvals' parameter must be a mapping. Yours was: %s" % type(keyvals))

        self.item = item
        self.report_type = report_type
        self._outcome = None
        if outcome:
            self.outcome = outcome
        self.checkname = checkname
        self.note = note
        self.output = output or []
        self.keyvals = keyvals or {}
        self.artifact = artifact
        # implementation-specific data passed between directives
        # (e.g. resultsdb_result_id); exported, but not for tasks to use
        self._internal = {}

    @property
    def outcome(self):
        return self._outcome or 'NEEDS_INSPECTION'

    @outcome.setter
    def outcome(self, value):
        if value not in self.outcome_priority:
            raise exc.TaskotronValueError(
                'Unknown outcome keyword: %s (valid: %s)'
                % (value, ', '.join(self.outcome_priority)))
        self._outcome = value

    @property
    def summary(self):
        '''The old (libtaskotron before 0.4) name of :attr:`note`.'''
        return self.note

    @summary.setter
    def summary(self, value):
        self.note = value

    def update_outcome(self, outcome):
        '''Set :attr:`outcome` to ``outcome`` only when it has a higher
        priority (see :attr:`outcome_priority`) than the current one, so that
        after many calls the most serious outcome is kept. ``None`` does
        nothing. An outcome that has not been set counts as lower than all.

        :raise TaskotronValueError: if ``outcome`` is not a known keyword
        '''
        if self.cmp_outcome(outcome, self._outcome) > 0:
            self.outcome = outcome

    def broken(self):
        '''Whether :attr:`outcome` is one of the broken states (``ABORTED``,
        ``CRASHED``).'''
        return self.outcome in ('ABORTED', 'CRASHED')

    def store(self, message, printout=True):
        '''Append ``message`` to :attr:`output` and, unless ``printout`` is
        false, print it to standard output.'''
        self.output.append(message)
        if printout:
            print(message)

    @classmethod
    def cmp_outcome(cls, outcome1, outcome2):
        '''Compare two outcomes by :attr:`outcome_priority`: -1, 0 or 1 as
        ``outcome1`` is less important than, as important as, or more
        important than ``outcome2``. ``None`` is below every keyword.

        :raise TaskotronValueError: if an outcome is not a known keyword
        '''
        for outcome in (outcome1, outcome2):
            if outcome is not None and outcome not in cls.outcome_priority:
                raise exc.TaskotronValueError('Unknown outcome keyword: %s' % outcome)
        index1 = -1 if outcome1 is None else cls.outcome_priority.index(outcome1)
        index2 = -1 if outcome2 is None else cls.outcome_priority.index(outcome2)
        return python_utils.cmp(index1, index2)

    @classmethod
    def create_multi_item_summary(cls, outcomes):
        '''A summary of outcomes such as ``3 PASSED, 1 INFO, 2 FAILED``, in
        :attr:`outcome_priority` order, leaving out those that do not occur.

        :param outcomes: a :class:`CheckDetail`, or a collection of
                         :class:`CheckDetail` instances, or a collection of
                         outcome strings
        :return: the summary; ``''`` for an empty collection
        :raise TaskotronValueError: if ``outcomes`` is of another type
        '''
        if isinstance(outcomes, CheckDetail):
            outcomes = (outcomes,)
        if not python_utils.iterable(outcomes):
            raise exc.TaskotronValueError("'outcomes' parameter type is incorrect: %s"
                                          % type(outcomes))
        outcomes = list(outcomes)
        if not outcomes:
            return ''
        if python_utils.iterable(outcomes, CheckDetail):
            all_outcomes = [detail.outcome for detail in outcomes]
        elif python_utils.iterable(outcomes, str):
            all_outcomes = outcomes
        else:
            raise exc.TaskotronValueError("'outcomes' parameter type is incorrect: %s"
                                          % type(outcomes))
        summary = []
        for outcome in cls.outcome_priority:
            count = all_outcomes.count(outcome)
            if count > 0:
                summary.append('%d %s' % (count, outcome))
        return ', '.join(summary)

    def __str__(self):
        # readable when printed; output is left out as it can be huge
        attrs = dict(vars(self))
        attrs['output'] = '<stripped out>'
        return '<%s: %s>' % (self.__class__.__name__, pprint.pformat(attrs))


class ReportType(object):
    '''The known values of :attr:`CheckDetail.report_type` (its values are
    identifiers in ResultYAML).'''
    BODHI_UPDATE = 'bodhi_update'        #:
    COMPOSE = 'compose'                  #:
    DIST_GIT_COMMIT = 'dist_git_commit'  #:
    DOCKER_IMAGE = 'docker_image'        #:
    GIT_COMMIT = 'git_commit'            #:
    KOJI_BUILD = 'koji_build'            #:
    KOJI_TAG = 'koji_tag'                #:
    MODULE_BUILD = 'module_build'        #:
    PULL_REQUEST = 'pull_request'        #:

    @classmethod
    def list(cls):
        '''All the known report types.'''
        return [cls.BODHI_UPDATE, cls.COMPOSE, cls.DIST_GIT_COMMIT,
                cls.DOCKER_IMAGE, cls.GIT_COMMIT, cls.KOJI_BUILD,
                cls.KOJI_TAG, cls.MODULE_BUILD, cls.PULL_REQUEST]


def _details(check_details):
    '''``check_details`` as a list of :class:`CheckDetail`, validated.'''
    if isinstance(check_details, CheckDetail):
        check_details = [check_details]
    if not python_utils.iterable(check_details):
        raise exc.TaskotronValueError(
            'expected a CheckDetail or a collection of them, not %s' % type(check_details))
    check_details = list(check_details)
    for detail in check_details:
        if not isinstance(detail, CheckDetail):
            raise exc.TaskotronValueError('expected a CheckDetail, not %s' % type(detail))
        if not detail.item:
            raise exc.TaskotronValueError('CheckDetail.item is empty for: %s' % detail)
    return check_details


def _add_keyvals(data, detail, reserved):
    for key, value in detail.keyvals.items():
        if key in reserved:
            log.warning("Reserved key '%s' found in keyvals. Ignoring for "
                        "export purposes.", key)
            continue
        data[key] = value


def _dump(data, tap_safe=False):
    try:
        return _yaml.dump(data, tap_safe=tap_safe)
    except _yaml.YAMLError as e:
        raise exc.TaskotronValueError('Cannot export the results as YAML: %s' % e)


def export_YAML(check_details):
    '''Generate the ResultYAML text used for reporting to ResultsDB.

    Give all your :class:`CheckDetail` instances in a single call: outputs
    of several calls cannot be joined as strings.

    :param check_details: a :class:`CheckDetail` or an iterable of them
    :return: the YAML text, a ``results`` list with one mapping per detail:
             ``item`` and ``outcome`` always; ``type``, ``note``,
             ``checkname``, ``artifact`` when set; then the
             :attr:`~CheckDetail.keyvals` (except :data:`RESERVED_KEYS`,
             which are skipped with a warning). Keys are sorted.
    :rtype: str
    :raise TaskotronValueError: if :attr:`CheckDetail.item` is empty, or a
                                keyval cannot be written as YAML

    Example output::

        results:
        - artifact: xchat-0.5-1.fc20.x86_64.log
          item: xchat-0.5-1.fc20
          note: 5 ERRORS, 10 WARNINGS
          outcome: PASSED
          type: koji_build
    '''
    results = []
    for detail in _details(check_details):
        data = {'item': detail.item, 'outcome': detail.outcome}
        if detail.artifact:
            data['artifact'] = detail.artifact
        if detail.report_type:
            data['type'] = detail.report_type
        if detail.note:
            data['note'] = detail.note
        if detail.checkname:
            data['checkname'] = detail.checkname
        if detail._internal:
            data['_internal'] = detail._internal
        _add_keyvals(data, detail, RESERVED_KEYS)
        results.append(data)
    return _dump({'results': results})


def _load_yaml(source):
    if _pyyaml is not None:
        try:
            return _pyyaml.safe_load(source)
        except _pyyaml.YAMLError as e:
            raise exc.TaskotronValueError('Failed to parse YAML contents: %s' % e)
    try:
        return _yaml.load(source)
    except _yaml.YAMLError as e:
        raise exc.TaskotronValueError('Failed to parse YAML contents: %s' % e)


def import_YAML(source):
    '''Parse ResultYAML text (as written by :func:`export_YAML`, or by hand;
    JSON is YAML too) into a list of :class:`CheckDetail` instances.

    :param str source: YAML-formatted text
    :return: one :class:`CheckDetail` per entry of ``results`` (none when
             ``results`` is empty or null); keys other than
             :data:`RESERVED_KEYS` become :attr:`~CheckDetail.keyvals`
    :raise TaskotronValueError: if the input is empty, is not valid YAML, is
                                not a mapping with a ``results`` list, or an
                                entry is not a mapping or has an unknown
                                outcome
    '''
    if not source:
        raise exc.TaskotronValueError('Failed to parse YAML contents: empty input')

    data = _load_yaml(source)

    if type(data) is not dict:
        raise exc.TaskotronValueError(
            'Invalid type of the YAML root element, %s instead of dict' % type(data))
    if 'results' not in data:
        raise exc.TaskotronValueError('Invalid format of the YAML data - missing `results` key')
    if type(data['results']) not in (list, type(None)):
        raise exc.TaskotronValueError(
            "Invalid type of 'results', %s instead of list" % type(data['results']))
    if data['results'] is None:
        return []

    check_details = []
    for index, result in enumerate(data['results']):
        if type(result) is not dict:
            raise exc.TaskotronValueError(
                "Invalid type of results[%d], %s instead of dict" % (index, type(result)))
        try:
            detail = CheckDetail(result.get('item', None),
                                 result.get('type', None),
                                 result.get('outcome', None),
                                 result.get('note', ''),
                                 checkname=result.get('checkname', None),
                                 artifact=result.get('artifact', None))
        except exc.TaskotronValueError as e:
            raise exc.TaskotronValueError('results[%d]: %s' % (index, e))
        detail.keyvals = dict((key, value) for key, value in result.items()
                              if key not in RESERVED_KEYS)
        detail._internal = result.get('_internal', {})
        check_details.append(detail)
    return check_details


def _tap_description(text):
    '''One line with no ``#`` (which TAP parsers such as pytap13 read as the
    start of a ``# SKIP``/``# TODO`` directive): ``#`` becomes ``%23`` and
    every non-printable character (line breaks, tabs...) a space.'''
    out = []
    for ch in text:
        if ch == '#':
            out.append('%23')
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(' ')
    return ''.join(out).strip()


def export_TAP(check_details, checkname='$CHECKNAME'):
    '''Generate TAP version 13 output, one test point per detail.

    A detail with outcome ``PASSED`` or ``INFO`` is ``ok``, any other
    ``not ok``. The test point's description is ``<checkname> for <item>``
    (:attr:`CheckDetail.checkname` if set, else ``checkname``) made safe for
    a TAP line (no ``#``, no line breaks); the YAML block that follows holds
    the exact values: ``item``, ``outcome``, and when set ``summary`` (the
    :attr:`~CheckDetail.note`), ``type``, ``checkname``, ``artifact``,
    ``details: {output: ...}`` (the :attr:`~CheckDetail.output` lines joined
    with newlines), then the keyvals. No line inside a YAML block ends with
    ``...``, which TAP parsers take for the block's end.

    :param check_details: a :class:`CheckDetail` or an iterable of them
    :param str checkname: the check's name (the default is a placeholder for
                          the runner to replace)
    :rtype: str
    :raise TaskotronValueError: if :attr:`CheckDetail.item` is empty for any
                                detail

    Example output::

        TAP version 13
        1..1
        ok - rpmlint for xchat-0.5-1.fc20
          ---
          details:
            output: "xchat.x86_64: W: file-not-utf8 ...\\n6 packages checked"
          item: xchat-0.5-1.fc20
          outcome: PASSED
          summary: 0 errors, 7 warnings
          type: koji_build
          ...
    '''
    details = _details(check_details)
    out = ['TAP version 13', '1..%d' % len(details)]
    for detail in details:
        status = 'ok' if detail.outcome in ('PASSED', 'INFO') else 'not ok'
        name = detail.checkname or checkname
        out.append('%s - %s' % (status, _tap_description('%s for %s' % (name, detail.item))))
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
            block['details'] = {'output': '\n'.join(str(line) for line in detail.output)}
        _add_keyvals(block, detail, _TAP_RESERVED_KEYS)
        out.append('  ---')
        out.extend('  ' + line for line in _dump(block, tap_safe=True).rstrip('\n').split('\n'))
        out.append('  ...')
    return '\n'.join(out) + '\n'
