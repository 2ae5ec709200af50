# -*- coding: utf-8 -*-
'''A small YAML emitter and loader that need nothing but the standard library.

The guest image has no PyYAML, so :mod:`libtaskotron.check` writes ResultYAML
with :func:`dump` and, when PyYAML cannot be imported, reads it with
:func:`load`.

:func:`dump` writes block style, the way ``yaml.safe_dump(data, indent=2,
default_flow_style=False, allow_unicode=True)`` lays it out: keys sorted, a
list inside a mapping not indented, empty collections as ``[]``/``{}``. A
string is written plain only when it is certainly read back as the same
string (by PyYAML's YAML 1.1 rules and by YAML 1.2 readers), otherwise
single-quoted, or double-quoted with JSON-compatible escapes when it holds a
line break, a tab or anything non-printable. Nothing is ever wrapped over
several lines, so every scalar stays on its key's line.

:func:`load` reads the subset of YAML that ResultYAML files use, with the
results ``yaml.safe_load`` gives: block mappings and sequences (indented or
not), plain scalars with YAML 1.1 typing (null, booleans, ints, floats,
timestamps), single- and double-quoted scalars (also over several lines),
``|`` and ``>`` block scalars, flow collections (so JSON too), comments and
one document with optional ``---``/``...`` markers, explicit ``? key``
entries. Anchors, aliases, tags and merge keys are refused with a
:class:`YAMLError`.
'''

import collections.abc as abc
import datetime
import math
import re


class YAMLError(ValueError):
    '''The text is not YAML this module can read, or the data cannot be
    written as YAML.'''

    def __init__(self, message, line=None):
        if line is not None:
            message = '%s (line %d)' % (message, line + 1)
        super().__init__(message)


# ---------------------------------------------------------------- emitter

# Characters YAML accepts as they are in a scalar: printable, and neither a
# line break in YAML 1.1 (NEL, U+2028, U+2029) nor the byte order mark.
_PRINTABLE = re.compile('[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe'
                        '\uff00-\ufffd\U00010000-\U0010ffff]*\\Z')
# A string that is written without quotes: a conservative character set,
# starting with a letter, `_` or `/` (so never a number, a timestamp, `~`,
# `.inf` or an indicator), or with a digit when it has a space in it (no
# number or timestamp without a `:` has one). No `:` or `#` at all.
_PLAIN = re.compile(r'(?:[A-Za-z_/][A-Za-z0-9_./+()@%=~, -]*'
                    r'|[0-9][A-Za-z0-9_./+()@%=~,-]* [A-Za-z0-9_./+()@%=~, -]*)\Z')
# Plain words that YAML 1.1 or 1.2 readers take for booleans or null.
_RESERVED_WORDS = frozenset(['y', 'n', 'yes', 'no', 'true', 'false', 'on', 'off', 'null'])
_ESCAPES = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n',
            '\r': '\\r', '\t': '\\t'}
# Longer keys could not be read back as implicit keys by PyYAML.
_MAX_KEY = 1000


def _quote_double(text):
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _PRINTABLE.match(ch):
            out.append(ch)
        else:
            # only BMP characters can be non-printable, so \uXXXX is enough
            out.append('\\u%04X' % ord(ch))
    out.append('"')
    return ''.join(out)


def _string(text, tap_safe):
    if (_PLAIN.match(text) and not text.endswith(' ')
            and text.lower() not in _RESERVED_WORDS
            and not (tap_safe and text.endswith('...'))):
        return text
    if _PRINTABLE.match(text):
        return "'" + text.replace("'", "''") + "'"
    return _quote_double(text)


def _scalar(value, tap_safe):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return '.nan'
        if math.isinf(value):
            return '.inf' if value > 0 else '-.inf'
        text = repr(float(value)).lower()
        if '.' not in text and 'e' in text:
            text = text.replace('e', '.0e', 1)
        return text
    if isinstance(value, datetime.datetime):
        return value.isoformat(' ')
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return _string(value, tap_safe)
    raise YAMLError('cannot write a value of type %s as YAML: %r'
                    % (type(value).__name__, value))


def _is_seq(value):
    return isinstance(value, (list, tuple))


def _inline(value, tap_safe):
    if isinstance(value, abc.Mapping) and not value:
        return '{}'
    if _is_seq(value) and not value:
        return '[]'
    if isinstance(value, abc.Mapping) or _is_seq(value):
        raise AssertionError('a collection is not written inline')
    return _scalar(value, tap_safe)


def _key(key, tap_safe):
    if isinstance(key, abc.Mapping) or _is_seq(key):
        raise YAMLError('cannot write a collection as a mapping key: %r' % (key,))
    text = _scalar(key, tap_safe)
    if len(text) > _MAX_KEY:
        raise YAMLError('mapping key too long for YAML (%d characters)' % len(text))
    return text


def _items(mapping):
    items = list(mapping.items())
    try:
        items.sort(key=lambda item: item[0])
    except TypeError:
        pass  # keys of mixed types: keep their order, as PyYAML does
    return items


def _nonempty_collection(value):
    return (isinstance(value, abc.Mapping) or _is_seq(value)) and len(value) > 0


def _block(value, indent, tap_safe, out):
    pad = ' ' * indent
    if isinstance(value, abc.Mapping):
        for key, item in _items(value):
            key = _key(key, tap_safe)
            if isinstance(item, abc.Mapping) and item:
                out.append(pad + key + ':')
                _block(item, indent + 2, tap_safe, out)
            elif _is_seq(item) and item:
                out.append(pad + key + ':')
                _block(item, indent, tap_safe, out)  # not indented, like PyYAML
            else:
                out.append(pad + key + ': ' + _inline(item, tap_safe))
    else:
        for item in value:
            if _nonempty_collection(item):
                sub = []
                _block(item, indent + 2, tap_safe, sub)
                sub[0] = pad + '- ' + sub[0][indent + 2:]
                out.extend(sub)
            else:
                out.append(pad + '- ' + _inline(item, tap_safe))


def dump(data, tap_safe=False):
    '''Return ``data`` as block-style YAML text ending with a newline.

    :param data: a mapping or a list (or tuple) of mappings, lists, strings,
                 ints, floats, bools, ``None``, dates and datetimes
    :param bool tap_safe: also quote every string ending with ``...``, so
                          that no line can be taken for the end of a TAP13
                          YAML block (pytap13 ends a block at any line that
                          ends with ``...``)
    :raise YAMLError: if a value cannot be written
    '''
    if _nonempty_collection(data):
        out = []
        _block(data, 0, tap_safe, out)
        return '\n'.join(out) + '\n'
    if isinstance(data, abc.Mapping) or _is_seq(data):
        return _inline(data, tap_safe) + '\n'
    return _scalar(data, tap_safe) + '\n'


# ----------------------------------------------------------------- loader

_LINE_BREAK = re.compile('\r\n|[\r\n\x85\u2028\u2029]')

_BOOL_VALUES = {}
for _word in ('yes', 'true', 'on'):
    for _form in (_word, _word.capitalize(), _word.upper()):
        _BOOL_VALUES[_form] = True
for _word in ('no', 'false', 'off'):
    for _form in (_word, _word.capitalize(), _word.upper()):
        _BOOL_VALUES[_form] = False
_NULL_VALUES = frozenset(['', '~', 'null', 'Null', 'NULL'])
# The implicit types of PyYAML's resolver (YAML 1.1).
_INT = re.compile(r'''(?:[-+]?0b[0-1_]+
                     |[-+]?0[0-7_]+
                     |[-+]?(?:0|[1-9][0-9_]*)
                     |[-+]?0x[0-9a-fA-F_]+
                     |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)\Z''', re.X)
_FLOAT = re.compile(r'''(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                       |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                       |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                       |[-+]?\.(?:inf|Inf|INF)
                       |\.(?:nan|NaN|NAN))\Z''', re.X)
_TIMESTAMP = re.compile(r'''(?P<year>[0-9]{4})-(?P<month>[0-9][0-9]?)-(?P<day>[0-9][0-9]?)
                           (?:(?:[Tt]|[ \t]+)(?P<hour>[0-9][0-9]?)
                              :(?P<minute>[0-9][0-9]):(?P<second>[0-9][0-9])
                              (?:\.(?P<fraction>[0-9]*))?
                              (?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)
                                 (?::(?P<tz_minute>[0-9][0-9]))?))?)?\Z''', re.X)
_DATE_ONLY = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}\Z')

_DQ_ESCAPES = {'0': '\0', 'a': '\x07', 'b': '\x08', 't': '\t', '\t': '\t',
               'n': '\n', 'v': '\x0b', 'f': '\x0c', 'r': '\r', 'e': '\x1b',
               ' ': ' ', '"': '"', '\\': '\\', '/': '/', 'N': '\x85',
               '_': '\xa0', 'L': '\u2028', 'P': '\u2029'}
_DQ_CODES = {'x': 2, 'u': 4, 'U': 8}
_FLOW_INDICATORS = ',[]{}'


def _sexagesimal(text, kind):
    value = 0
    for part in text.split(':'):
        value = value * 60 + kind(part)
    return value


def _resolve_int(text):
    value = text.replace('_', '')
    sign = -1 if value[0] == '-' else 1
    if value[0] in '+-':
        value = value[1:]
    if value == '0':
        return 0
    if value.startswith('0b'):
        return sign * int(value[2:], 2)
    if value.startswith('0x'):
        return sign * int(value[2:], 16)
    if value[0] == '0':
        return sign * int(value, 8)
    if ':' in value:
        return sign * _sexagesimal(value, int)
    return sign * int(value)


def _resolve_float(text):
    value = text.replace('_', '').lower()
    sign = -1 if value[0] == '-' else 1
    if value[0] in '+-':
        value = value[1:]
    if value == '.inf':
        return sign * math.inf
    if value == '.nan':
        return math.nan
    if ':' in value:
        return sign * _sexagesimal(value, float)
    return sign * float(value)


def _resolve_timestamp(match):
    parts = match.groupdict()
    year, month, day = int(parts['year']), int(parts['month']), int(parts['day'])
    if not parts['hour']:
        return datetime.date(year, month, day)
    fraction = 0
    if parts['fraction']:
        fraction = int(parts['fraction'][:6].ljust(6, '0'))
    tzinfo = None
    if parts['tz_sign']:
        delta = datetime.timedelta(hours=int(parts['tz_hour']),
                                   minutes=int(parts['tz_minute'] or 0))
        if parts['tz_sign'] == '-':
            delta = -delta
        tzinfo = datetime.timezone(delta)
    elif parts['tz']:
        tzinfo = datetime.timezone.utc
    return datetime.datetime(year, month, day, int(parts['hour']),
                             int(parts['minute']), int(parts['second']),
                             fraction, tzinfo=tzinfo)


def resolve_plain(text):
    '''The value of a plain (unquoted) scalar, typed as PyYAML's
    ``safe_load`` types it.'''
    if text in _NULL_VALUES:
        return None
    if text in _BOOL_VALUES:
        return _BOOL_VALUES[text]
    try:
        if _INT.match(text):
            return _resolve_int(text)
        if _FLOAT.match(text):
            return _resolve_float(text)
        match = _TIMESTAMP.match(text)
        if match and (match.group('hour') or _DATE_ONLY.match(text)):
            return _resolve_timestamp(match)
    except ValueError as e:
        raise YAMLError('cannot read the scalar %r: %s' % (text, e))
    if text == '<<':
        raise YAMLError('merge keys (<<) are not supported')
    if text == '=':
        raise YAMLError("the scalar '=' has no safe meaning in YAML 1.1")
    return text


def _indent_of(line, number):
    count = len(line) - len(line.lstrip(' '))
    if line[count:count + 1] == '\t' and line.strip(' \t'):
        raise YAMLError('a tab cannot be used for indentation', number)
    return count


def _blank(line):
    stripped = line.strip(' \t')
    return not stripped or stripped.startswith('#')


def _doc_marker(line):
    return (line[:3] in ('---', '...')) and line[3:4] in ('', ' ', '\t')


def _seq_entry(content):
    return content == '-' or content.startswith('- ') or content.startswith('-\t')


def _explicit_key(content):
    return content == '?' or content.startswith('? ') or content.startswith('?\t')


def _explicit_value(content):
    return content == ':' or content.startswith(': ') or content.startswith(':\t')


def _cut_plain(text, number):
    '''Cut a plain scalar's line at a comment; refuse ``: ``, which would
    make it a mapping. Returns (text, ended_by_comment).'''
    for pos, ch in enumerate(text):
        if ch == '#' and pos > 0 and text[pos - 1] in ' \t':
            return text[:pos].rstrip(' \t'), True
        if ch == ':' and (pos + 1 == len(text) or text[pos + 1] in ' \t'):
            raise YAMLError('mapping values are not allowed here', number)
    return text.rstrip(' \t'), False


class _Loader(object):

    def __init__(self, text):
        if text.startswith('\ufeff'):
            text = text[1:]
        self.lines = _LINE_BREAK.split(text)
        # whether the last line ends with a line break (a block scalar ending
        # the text keeps its last line break only then)
        self.final_break = len(self.lines) > 1 and self.lines[-1] == ''
        if self.final_break:
            self.lines.pop()  # the text's final line break ends no line
        self.i = 0

    # -- helpers

    def eof(self):
        return self.i >= len(self.lines)

    def skip_blank(self):
        while not self.eof() and _blank(self.lines[self.i]):
            self.i += 1

    def error(self, message, number=None):
        return YAMLError(message, self.i if number is None else number)

    def check_trailing(self, rest, number):
        '''Only spaces and a comment may follow a complete node on its line.'''
        stripped = rest.lstrip(' \t')
        if not stripped or (stripped.startswith('#') and len(stripped) < len(rest)):
            return
        if stripped.startswith(':'):
            raise self.error('mapping values are not allowed here', number)
        raise self.error('unexpected text after a value: %r' % stripped, number)

    # -- documents

    def load(self):
        self.skip_blank()
        while not self.eof() and self.lines[self.i].startswith('%'):
            self.i += 1  # directives (%YAML, %TAG): ignored
            self.skip_blank()
        if self.eof():
            return None
        line = self.lines[self.i]
        if line.startswith('...') and _doc_marker(line):
            raise self.error('document end marker without a document')
        if line.startswith('---') and _doc_marker(line):
            self.lines[self.i] = '   ' + line[3:]
        value = self.block_node(-1)
        self.skip_blank()
        if not self.eof():
            line = self.lines[self.i]
            if line.startswith('...') and _doc_marker(line):
                self.i += 1
                self.skip_blank()
                if self.eof():
                    return value
                line = self.lines[self.i]
            if line.startswith('---') and _doc_marker(line):
                raise self.error('expected a single document in the stream')
            raise self.error('unexpected text: %r' % line.strip())
        return value

    # -- block structure

    def block_node(self, parent, seq_at_parent=False):
        '''The node on the next non-blank line, when it is indented more than
        ``parent`` (or is a sequence at ``parent``, for a mapping value);
        ``None`` when there is no such line.'''
        self.skip_blank()
        if self.eof():
            return None
        line = self.lines[self.i]
        if _doc_marker(line):
            return None
        indent = _indent_of(line, self.i)
        content = line[indent:]
        if indent <= parent:
            if seq_at_parent and indent == parent and _seq_entry(content):
                return self.block_sequence(indent)
            return None
        if _seq_entry(content):
            return self.block_sequence(indent)
        if _explicit_key(content) or self.mapping_key(content) is not None:
            return self.block_mapping(indent)
        return self.inline_node(content, indent, parent)

    def mapping_key(self, content):
        '''``(key, rest, rest_column)`` when ``content`` starts a mapping
        entry, else ``None``.'''
        number = self.i
        if content[:1] in ('"', "'"):
            saved = self.i
            try:
                key, end_line, end = self.quoted(content, 0)
            except YAMLError:
                self.i = saved
                return None
            self.i = saved
            if end_line != number:
                return None  # a quoted scalar over several lines is no key
            rest = content[end:]
            stripped = rest.lstrip(' \t')
            if stripped.startswith(':') and stripped[1:2] in ('', ' ', '\t'):
                colon = end + len(rest) - len(stripped)
                return key, content[colon + 1:], colon + 1
            return None
        if content[:1] in ('[', '{') or _explicit_key(content):
            return None
        for pos, ch in enumerate(content):
            if ch == '#' and (pos == 0 or content[pos - 1] in ' \t'):
                return None
            if ch == ':' and (pos + 1 == len(content) or content[pos + 1] in ' \t'):
                text = content[:pos].rstrip(' \t')
                if not text:
                    raise self.error('empty mapping keys are not supported')
                if text[0] in '&*!':
                    raise self.error('anchors, aliases and tags are not supported')
                if text[0] in '|>%@`' or text[0] in _FLOW_INDICATORS:
                    raise self.error('a plain key cannot start with %r' % text[0])
                return resolve_plain(text), content[pos + 1:], pos + 1
        return None

    def block_mapping(self, indent):
        result = {}
        while True:
            self.skip_blank()
            if self.eof():
                break
            line = self.lines[self.i]
            if _doc_marker(line):
                break
            here = _indent_of(line, self.i)
            if here < indent:
                break
            if here > indent:
                raise self.error('bad indentation of a mapping entry')
            content = line[indent:]
            if _explicit_key(content):
                key, value = self.explicit_entry(content, indent)
                try:
                    result[key] = value
                except TypeError:
                    raise self.error('unhashable mapping key: %r' % (key,))
                continue
            entry = self.mapping_key(content)
            if entry is None:
                if _seq_entry(content):
                    raise self.error('a sequence entry is not allowed inside a mapping here')
                raise self.error('expected a "key: value" mapping entry')
            key, rest, column = entry
            value = self.mapping_value(rest, indent + column, indent)
            try:
                result[key] = value
            except TypeError:
                raise self.error('unhashable mapping key: %r' % (key,))
        return result

    def indicated_node(self, content, indent, seq_at_parent=False):
        '''The node after a ``?`` or ``:`` indicator that starts ``content``
        (the current line at ``indent``).'''
        rest = content[1:]
        stripped = rest.lstrip(' \t')
        if not stripped or stripped.startswith('#'):
            self.i += 1
            return self.block_node(indent, seq_at_parent=seq_at_parent)
        self.lines[self.i] = ' ' * (indent + 1 + len(rest) - len(stripped)) + stripped
        return self.block_node(indent)

    def explicit_entry(self, content, indent):
        '''A ``? key`` / ``: value`` mapping entry.'''
        key = self.indicated_node(content, indent)
        self.skip_blank()
        if self.eof() or _doc_marker(self.lines[self.i]):
            return key, None
        line = self.lines[self.i]
        if _indent_of(line, self.i) != indent or not _explicit_value(line[indent:]):
            return key, None
        return key, self.indicated_node(line[indent:], indent, seq_at_parent=True)

    def mapping_value(self, rest, column, indent):
        stripped = rest.lstrip(' \t')
        if not stripped or stripped.startswith('#'):
            self.i += 1
            return self.block_node(indent, seq_at_parent=True)
        column += len(rest) - len(stripped)
        return self.inline_node(stripped, column, indent)

    def block_sequence(self, indent):
        result = []
        while True:
            self.skip_blank()
            if self.eof():
                break
            line = self.lines[self.i]
            if _doc_marker(line):
                break
            here = _indent_of(line, self.i)
            if here < indent:
                break
            if here > indent:
                raise self.error('bad indentation of a sequence entry')
            content = line[indent:]
            if not _seq_entry(content):
                break
            rest = content[1:]
            stripped = rest.lstrip(' \t')
            if not stripped or stripped.startswith('#'):
                self.i += 1
            else:
                # put the entry's content in place of the dash, so that a
                # mapping or sequence starting on this line is read as a
                # block node at its column
                column = indent + 1 + len(rest) - len(stripped)
                self.lines[self.i] = ' ' * column + stripped
            result.append(self.block_node(indent))
        return result

    # -- nodes starting inside a line

    def inline_node(self, text, column, parent):
        '''A node whose text starts at ``column`` of the current line.'''
        number = self.i
        first = text[0]
        if first in ('"', "'"):
            value, end_line, end = self.quoted(self.lines[number], column)
            self.check_trailing(self.lines[end_line][end:], end_line)
            self.i = end_line + 1
            return value
        if first in '[{':
            flow = _Flow(self, number, column)
            value = flow.node()
            end_line, end = flow.finish()
            self.check_trailing(self.lines[end_line][end:], end_line)
            self.i = end_line + 1
            return value
        if first in '|>':
            return self.block_scalar(text, parent)
        if first in '&*!':
            raise self.error('anchors, aliases and tags are not supported')
        if first in '%@`' or first in ',]}':
            raise self.error('a plain scalar cannot start with %r' % first)
        if _seq_entry(text):
            raise self.error('sequence entries are not allowed here')
        if _explicit_key(text):
            raise self.error('a "? key" is not allowed here')
        return self.plain(text, parent)

    def plain(self, text, parent):
        piece, commented = _cut_plain(text, self.i)
        parts = [piece]
        self.i += 1
        blanks = 0
        while not commented and not self.eof():
            line = self.lines[self.i]
            if _doc_marker(line):
                break
            stripped = line.strip(' \t')
            if not stripped:
                blanks += 1
                self.i += 1
                continue
            if len(line) - len(line.lstrip(' ')) <= parent or stripped.startswith('#'):
                break
            piece, commented = _cut_plain(stripped, self.i)
            parts.append('\n' * blanks if blanks else ' ')
            parts.append(piece)
            blanks = 0
            self.i += 1
        return resolve_plain(''.join(parts))

    def quoted(self, line, column):
        '''Scan a quoted scalar starting at ``column`` of the current line.
        Returns ``(value, end_line, end_column)``; does not move ``self.i``.'''
        number = self.i
        quote = line[column]
        pos = column + 1
        chunks = []
        trailing = 0  # how many of the last chunks are literal spaces/tabs
        while True:
            joined = False
            while pos < len(line):
                ch = line[pos]
                if quote == "'":
                    if ch == "'":
                        if line[pos + 1:pos + 2] == "'":
                            chunks.append("'")
                            trailing = 0
                            pos += 2
                            continue
                        return ''.join(chunks), number, pos + 1
                    chunks.append(ch)
                    trailing = trailing + 1 if ch in ' \t' else 0
                    pos += 1
                    continue
                if ch == '"':
                    return ''.join(chunks), number, pos + 1
                if ch != '\\':
                    chunks.append(ch)
                    trailing = trailing + 1 if ch in ' \t' else 0
                    pos += 1
                    continue
                if pos + 1 == len(line):
                    joined = True  # an escaped line break
                    pos += 1
                    break
                code = line[pos + 1]
                trailing = 0
                if code in _DQ_ESCAPES:
                    chunks.append(_DQ_ESCAPES[code])
                    pos += 2
                elif code in _DQ_CODES:
                    width = _DQ_CODES[code]
                    digits = line[pos + 2:pos + 2 + width]
                    if len(digits) != width or not all(c in '0123456789abcdefABCDEF'
                                                       for c in digits):
                        raise YAMLError('bad escape \\%s%s in a double-quoted scalar'
                                        % (code, digits), number)
                    chunks.append(chr(int(digits, 16)))
                    pos += 2 + width
                else:
                    raise YAMLError('unknown escape \\%s in a double-quoted scalar' % code,
                                    number)
            # the line ended inside the scalar: fold it with the next ones
            if not joined and trailing:
                del chunks[-trailing:]
            trailing = 0
            blanks = 0
            while True:
                number += 1
                if number >= len(self.lines):
                    raise YAMLError('unterminated quoted scalar', self.i)
                line = self.lines[number]
                if _doc_marker(line):
                    raise YAMLError('document marker inside a quoted scalar', number)
                if line.strip(' \t'):
                    break
                blanks += 1
            if blanks:
                chunks.append('\n' * blanks)
            elif not joined:
                chunks.append(' ')
            pos = len(line) - len(line.lstrip(' \t'))

    def block_scalar(self, text, parent):
        number = self.i
        style = text[0]
        header = text[1:]
        chomp = None
        increment = None
        pos = 0
        while pos < len(header) and header[pos] in '+-123456789':
            ch = header[pos]
            if ch in '+-':
                if chomp is not None:
                    raise self.error('repeated chomping indicator')
                chomp = ch
            else:
                if increment is not None:
                    raise self.error('repeated indentation indicator')
                increment = int(ch)
            pos += 1
        self.check_trailing(header[pos:], number)
        self.i += 1
        minimum = max(parent + 1, 1)
        if increment is not None:
            indent = minimum + increment - 1
        else:
            indent = None
            widest = 0
            look = self.i
            while look < len(self.lines) and not self.lines[look].strip(' '):
                widest = max(widest, len(self.lines[look]))
                look += 1
            if look < len(self.lines):
                indent = max(minimum, widest,
                             len(self.lines[look]) - len(self.lines[look].lstrip(' ')))
            else:
                indent = max(minimum, widest)
        lines = []
        while not self.eof():
            line = self.lines[self.i]
            if not line.strip(' '):
                lines.append(line[indent:])
                self.i += 1
                continue
            if len(line) - len(line.lstrip(' ')) < indent:
                break
            lines.append(line[indent:])
            self.i += 1
        # trailing empty lines belong to the chomping, not the content
        end = len(lines)
        while end and not lines[end - 1]:
            end -= 1
        body, tail = lines[:end], len(lines) - end
        breaks = len(body) > 0  # the break after the last content line
        if self.eof() and not self.final_break:
            if tail:
                tail -= 1
            else:
                breaks = False
        if style == '|':
            value = '\n'.join(body)
        else:
            value = ''
            previous = None  # kind of the previous content line
            blanks = 0
            for line in body:
                if not line:
                    blanks += 1
                    continue
                kind = 'more' if line[0] in ' \t' else 'text'
                if previous is None:
                    value += '\n' * blanks
                elif previous == 'text' and kind == 'text':
                    value += '\n' * blanks if blanks else ' '
                else:
                    value += '\n' * (blanks + 1)
                value += line
                previous = kind
                blanks = 0
        if chomp == '-':
            return value
        if chomp == '+':
            return value + '\n' * (tail + (1 if breaks else 0))
        return value + '\n' if breaks else value


class _Flow(object):
    '''A flow collection (``[...]``/``{...}``), read across lines.'''

    def __init__(self, loader, number, column):
        self.loader = loader
        self.number = number  # the line being read
        self.line = loader.lines[number]
        self.pos = column

    def peek(self):
        return self.line[self.pos] if self.pos < len(self.line) else '\n'

    def error(self, message):
        return YAMLError(message, self.number)

    def skip_space(self):
        while True:
            if self.pos >= len(self.line):
                self.number += 1
                if self.number >= len(self.loader.lines):
                    raise YAMLError('unterminated flow collection', self.loader.i)
                self.line = self.loader.lines[self.number]
                if _doc_marker(self.line):
                    raise self.error('document marker inside a flow collection')
                self.pos = 0
                continue
            ch = self.line[self.pos]
            if ch in ' \t':
                self.pos += 1
            elif ch == '#' and (self.pos == 0 or self.line[self.pos - 1] in ' \t'):
                self.pos = len(self.line)
            else:
                return

    def finish(self):
        return self.number, self.pos

    def node(self):
        self.skip_space()
        ch = self.peek()
        if ch == '[':
            self.pos += 1
            return self.sequence()
        if ch == '{':
            self.pos += 1
            return self.mapping()
        if ch in ('"', "'"):
            return self.quoted()
        if ch in '&*!':
            raise self.error('anchors, aliases and tags are not supported')
        if ch in _FLOW_INDICATORS or ch in '#|>%@`':
            raise self.error('unexpected %r in a flow collection' % ch)
        return resolve_plain(self.plain())

    def quoted(self):
        loader = self.loader
        saved = loader.i
        loader.i = self.number
        try:
            value, end_line, end = loader.quoted(self.line, self.pos)
        finally:
            loader.i = saved
        self.number, self.pos = end_line, end
        self.line = loader.lines[end_line]
        return value

    def plain(self):
        parts = []
        while True:
            start = self.pos
            line = self.line
            pos = start
            while pos < len(line):
                ch = line[pos]
                if ch in _FLOW_INDICATORS:
                    break
                if ch == ':' and (pos + 1 == len(line) or line[pos + 1] in ' \t'
                                  or line[pos + 1] in _FLOW_INDICATORS):
                    break
                if ch == '#' and pos > 0 and line[pos - 1] in ' \t':
                    break
                pos += 1
            parts.append(line[start:pos].strip(' \t'))
            self.pos = pos
            if pos < len(line):
                break
            # the scalar may go on on the next line (folded with a space)
            self.skip_space()
            ch = self.peek()
            if ch in _FLOW_INDICATORS or ch == ':':
                break
        return ' '.join(part for part in parts if part)

    def value_indicator(self, after_json_like):
        '''Whether a ``:`` value indicator comes next (and consume it).'''
        self.skip_space()
        if self.peek() != ':':
            return False
        following = self.line[self.pos + 1:self.pos + 2]
        if after_json_like or following in ('', ' ', '\t') or following in _FLOW_INDICATORS:
            self.pos += 1
            return True
        return False

    def explicit_key(self):
        '''Consume a ``?`` explicit key indicator, if one comes next.'''
        self.skip_space()
        if self.peek() == '?' and self.line[self.pos + 1:self.pos + 2] in ('', ' ', '\t'):
            self.pos += 1
            self.skip_space()
            return True
        return False

    def pair_value(self):
        self.skip_space()
        if self.peek() in ',]}':
            return None
        return self.node()

    def entry(self):
        '''A flow node, or a single ``key: value`` pair as a mapping.'''
        explicit = self.explicit_key()
        json_like = self.peek() in '"\'[{'
        key = self.node()
        if self.value_indicator(json_like):
            return {self.hashable(key): self.pair_value()}
        if explicit:
            return {self.hashable(key): None}
        return key

    def hashable(self, key):
        try:
            hash(key)
        except TypeError:
            raise self.error('unhashable mapping key: %r' % (key,))
        return key

    def sequence(self):
        result = []
        while True:
            self.skip_space()
            if self.peek() == ']':
                self.pos += 1
                return result
            result.append(self.entry())
            self.skip_space()
            ch = self.peek()
            if ch == ',':
                self.pos += 1
            elif ch != ']':
                raise self.error("expected ',' or ']' in a flow sequence, found %r" % ch)

    def mapping(self):
        result = {}
        while True:
            self.skip_space()
            if self.peek() == '}':
                self.pos += 1
                return result
            self.explicit_key()
            json_like = self.peek() in '"\'[{'
            key = self.hashable(self.node())
            if self.value_indicator(json_like):
                result[key] = self.pair_value()
            else:
                result[key] = None
            self.skip_space()
            ch = self.peek()
            if ch == ',':
                self.pos += 1
            elif ch != '}':
                raise self.error("expected ',' or '}' in a flow mapping, found %r" % ch)


def load(text):
    '''Parse one YAML document the way ``yaml.safe_load`` would (for the
    subset described in this module's documentation).

    :param text: YAML text (``str``, or UTF-8 ``bytes``)
    :return: the document's value; ``None`` for an empty document
    :raise YAMLError: on a syntax error or an unsupported feature
    '''
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode('utf-8')
        except UnicodeDecodeError as e:
            raise YAMLError('the YAML text is not UTF-8: %s' % e)
    if not isinstance(text, str):
        raise YAMLError('YAML text must be a string, not %s' % type(text).__name__)
    if '\0' in text:
        raise YAMLError('the YAML text contains a NUL character')
    return _Loader(text).load()
