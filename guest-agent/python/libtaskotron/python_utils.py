# -*- coding: utf-8 -*-
'''Small helpers around Python's built-in types (libtaskotron's
``python_utils``).'''

import collections.abc as abc

from . import exceptions as exc

#: the string type (``basestring`` in Python 2)
basestring = str


def _collection_of(obj, kind, item_type=None):
    if isinstance(obj, (str, bytes)) or not isinstance(obj, kind):
        return False
    if item_type is None:
        return True
    try:
        return all(isinstance(item, item_type) for item in obj)
    except TypeError as e:
        raise exc.TaskotronValueError(
            "'item_type' must be a type definition, not '%r': %s" % (item_type, e))


def iterable(obj, item_type=None):
    '''Whether ``obj`` is an iterable collection (a ``list``, ``tuple``,
    ``set``, ``dict``...) but not a string, and, when ``item_type`` is given,
    whether all its items are instances of ``item_type``.

    :raise TaskotronValueError: if ``item_type`` is not a type
    '''
    return _collection_of(obj, abc.Iterable, item_type)


def sequence(obj, item_type=None, mutable=False):
    '''Like :func:`iterable`, but ``obj`` must be a sequence (``list``,
    ``tuple``; not ``set`` or ``dict``), and a mutable one (``list``) when
    ``mutable`` is true.'''
    return _collection_of(obj, abc.MutableSequence if mutable else abc.Sequence, item_type)


def cmp(x, y):
    '''Python 2's ``cmp``: -1, 0 or 1 as ``x`` is less than, equal to or
    greater than ``y``.'''
    return (x > y) - (x < y)


def reverse_argparse(args, ignore=()):
    '''Turn options parsed by :mod:`argparse` (as a ``dict``, e.g.
    ``vars(parser.parse_args())``) back into a command line.

    Options are sorted by name; ``_`` in a name becomes ``-``; a one-letter
    name gets ``-``, a longer one ``--``. ``None`` means "not given"; ``True``
    gives the bare option (``store_true``), ``False`` nothing; a list or tuple
    repeats the option for each value; anything else is ``str()``-ed.
    Positional arguments must be put in ``ignore``. The strings returned are
    not shell-escaped.

    Example: ``{'item': 'foo', 'debug': True, 'arch': ['x86_64', 'i386'],
    'job_id': 1234, 't': 'koji'}`` gives ``['--arch', 'x86_64', '--arch',
    'i386', '--debug', '--item', 'foo', '--job-id', '1234', '-t', 'koji']``.
    '''
    cmdline = []
    for name, value in sorted(args.items()):
        if name in ignore or value is None:
            continue
        name = name.replace('_', '-')
        option = ('-' if len(name) == 1 else '--') + name
        if isinstance(value, bool):
            if value:
                cmdline.append(option)
        elif sequence(value):
            for item in value:
                cmdline.extend((option, str(item)))
        else:
            cmdline.extend((option, str(value)))
    return cmdline
