# -*- coding: utf-8 -*-
'''The exception classes of libtaskotron, so that tasks can catch them.

The names are libtaskotron's. Its successor checkb renamed every
``Taskotron...`` class to ``Checkb...``; those names are aliases of the same
classes here.
'''


class TaskotronError(Exception):
    '''Common ancestor of all libtaskotron exceptions'''


class TaskotronValueError(ValueError, TaskotronError):
    '''A libtaskotron-specific :class:`ValueError`'''


class TaskotronConfigError(TaskotronError):
    '''An error related to libtaskotron configuration'''


class TaskotronYamlError(TaskotronError):
    '''An error in the YAML (formula) file of the executed task'''


class TaskotronPlaybookError(TaskotronError):
    '''An error in the Ansible playbook of the executed task'''


class TaskotronDirectiveError(TaskotronError):
    '''An error related to a directive'''


class TaskotronRemoteError(TaskotronError):
    '''A network or remote-server related error

    :ivar errno: an optional error number
    '''

    def __init__(self, e=None, errno=None):
        if e:
            super().__init__(str(e))
        else:
            super().__init__()
        self.errno = errno


class TaskotronRemoteTimeoutError(TaskotronRemoteError):
    '''A remote server did not send any output in time'''


class TaskotronRemoteProcessError(TaskotronRemoteError):
    '''A command run remotely failed (non-zero exit code, crash, ...)'''


class TaskotronNotImplementedError(TaskotronError, NotImplementedError):
    ''':class:`NotImplementedError` for libtaskotron code'''


class TaskotronImportError(TaskotronError):
    '''A problem importing an extension module'''

    def __init__(self, e):
        message = str(e)
        if 'libtaskotron' in message:
            message += '\nHint: Make sure that all required sub-packages are installed.'
        super().__init__(message)


class TaskotronImageError(TaskotronError):
    '''A generic disk image related error'''


class TaskotronImageNotFoundError(TaskotronImageError):
    '''The requested disk image was not found'''


class TaskotronPermissionError(TaskotronError):
    '''Insufficient permissions or privileges'''


class TaskotronInterruptError(TaskotronError):
    '''The execution was interrupted by a signal.

    :ivar int signum: the signal's number
    :ivar str signame: the signal's name (may be ``None`` or ``UNKNOWN``)
    '''

    def __init__(self, signum, signame):
        super().__init__(signum, signame)
        self.signum = signum
        self.signame = signame

    def __str__(self):
        return 'Received system signal %d (%s)' % (self.signum, self.signame)


class TaskotronMinionError(TaskotronError):
    '''An error handling a persistent or disposable minion'''


# checkb's names for the same classes
CheckbError = TaskotronError
CheckbValueError = TaskotronValueError
CheckbConfigError = TaskotronConfigError
CheckbPlaybookError = TaskotronPlaybookError
CheckbDirectiveError = TaskotronDirectiveError
CheckbRemoteError = TaskotronRemoteError
CheckbRemoteTimeoutError = TaskotronRemoteTimeoutError
CheckbRemoteProcessError = TaskotronRemoteProcessError
CheckbNotImplementedError = TaskotronNotImplementedError
CheckbImportError = TaskotronImportError
CheckbImageError = TaskotronImageError
CheckbImageNotFoundError = TaskotronImageNotFoundError
CheckbPermissionError = TaskotronPermissionError
CheckbInterruptError = TaskotronInterruptError
CheckbMinionError = TaskotronMinionError
