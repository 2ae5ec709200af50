# -*- coding: utf-8 -*-
'''Ferrotron's compatible implementation of the parts of libtaskotron that
tasks use from inside the test machine.

Taskotron tasks write ``from libtaskotron import check`` and describe their
results with :class:`libtaskotron.check.CheckDetail`, then turn them into
ResultYAML (:func:`libtaskotron.check.export_YAML`) or TAP13
(:func:`libtaskotron.check.export_TAP`). This package provides that API with
the documented behaviour of libtaskotron (and of its successor, checkb), in
pure Python 3 with no dependencies: PyYAML is used for reading YAML only when
it can be imported. Nothing here talks to network services (Koji, Bodhi,
ResultsDB); that is the orchestrator's business.

Modules: :mod:`~libtaskotron.check`, :mod:`~libtaskotron.exceptions`,
:mod:`~libtaskotron.python_utils` and the ``taskotron_result`` command
(``python3 -m libtaskotron.taskotron_result``).
'''

__version__ = '0.4.99+ferrotron'
