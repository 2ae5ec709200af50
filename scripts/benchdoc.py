"""Shared by the bench scripts: replace one marked section of
docs/performance.md (`<!-- bench:NAME:begin -->` ... `end -->`), or append
it when the markers are missing."""
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs/performance.md"


def markers(name):
    return f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"


def write_section(name, section):
    """`section` includes both markers (see `markers`)."""
    begin, end = markers(name)
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
    print(f"bench: wrote {DOC}", file=sys.stderr)
