#!/bin/sh
# Usage: lint.sh TREE ITEM. Prints TAP version 13, one test point per file,
# with a YAML block carrying item, type, checkname, outcome and the problems.
tree=$1
item=$2
files=$(cd "$tree" && find . -type f | sed 's|^\./||' | sort)
count=$(printf '%s\n' "$files" | grep -c .)
echo "TAP version 13"
echo "1..$count"
n=0
for f in $files; do
    n=$((n + 1))
    problems=""
    lines=$(grep -n '[[:space:]]$' "$tree/$f" | cut -d: -f1 | tr '\n' ' ')
    [ -n "$lines" ] && problems="${problems}trailing whitespace on lines ${lines% }; "
    case "$f" in
        *.py)
            tabs=$(grep -n "$(printf '\t')" "$tree/$f" | cut -d: -f1 | tr '\n' ' ')
            [ -n "$tabs" ] && problems="${problems}tabs on lines ${tabs% }; "
            ;;
    esac
    [ -s "$tree/$f" ] && [ "$(tail -c 1 "$tree/$f" | od -An -c | tr -d ' ')" != '\n' ] &&
        problems="${problems}no newline at end of file; "
    check="whitespace-lint.$(echo "$f" | tr '/' '.')"
    if [ -z "$problems" ]; then
        echo "ok $n - $check"
        outcome=PASSED
        note=clean
    else
        echo "not ok $n - $check"
        outcome=FAILED
        note=${problems%; }
    fi
    echo "  ---"
    echo "  item: \"$item\""
    echo "  type: git_commit"
    echo "  checkname: $check"
    echo "  outcome: $outcome"
    echo "  note: \"$note\""
    echo "  file: \"$f\""
    echo "  ..."
done
