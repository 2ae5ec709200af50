# -*- coding: utf-8 -*-
'''``taskotron_result``: add a result to a ResultYAML file, for tasks written
in shell. Each run appends one result to the file (creating it if needed).

Usage: ``python3 -m libtaskotron.taskotron_result -f results.yml -i ITEM
-t TYPE -o OUTCOME [-n NOTE] [-k KEY=VALUE]... [-c CHECKNAME] [-a ARTIFACT]``
'''

import argparse
import os
import sys

from .check import CheckDetail, export_YAML, import_YAML
from . import exceptions as exc


def get_argparser():
    parser = argparse.ArgumentParser(
        prog='taskotron_result',
        description='Generate results from within a shell script. Results are stored '
                    'in the output file in ResultYAML format; each run appends a new '
                    'result to the file.')
    parser.add_argument('-f', '--file', help='output file', required=True)
    parser.add_argument('-i', '--item', help='item to be checked', required=True)
    parser.add_argument('-t', '--report_type', help='type of --item', required=True)
    parser.add_argument('-o', '--outcome', help='final outcome of check', required=True)
    parser.add_argument('-n', '--note', default='',
                        help='a few words or one-sentence note about the result')
    parser.add_argument('-k', '--keyval', action='append', default=[], metavar='KEY=VALUE',
                        help="key-value pairs stored in ResultsDB as 'extra data'")
    parser.add_argument('-c', '--checkname', default=None,
                        help="name of the check (don't include namespace here)")
    parser.add_argument('-a', '--artifact', default=None,
                        help='file or directory placed in the artifacts dir')
    return parser


def main(argv=None):
    parser = get_argparser()
    args = vars(parser.parse_args(argv))
    output_file = args.pop('file')

    keyvals = {}
    for pair in args.pop('keyval'):
        if '=' not in pair:
            parser.error('--keyval must be KEY=VALUE, not %r' % pair)
        key, value = pair.split('=', 1)
        keyvals[key] = value
    args['keyvals'] = keyvals

    try:
        detail = CheckDetail(**args)
        details = []
        if os.path.isfile(output_file):
            with open(output_file, encoding='utf-8') as f:
                text = f.read()
            if text.strip():
                details = import_YAML(text)
        details.append(detail)
        text = export_YAML(details)
    except exc.TaskotronValueError as e:
        sys.stderr.write('taskotron_result: %s\n' % e)
        return 1
    with open(output_file, 'w', encoding='utf-8') as f:
        f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
