#!/bin/sh
# Prints ResultYAML: one sub-result per rule about the NVR in $1.
nvr=$1
name=${nvr%-*-*}
rest=${nvr#"$name"-}
version=${rest%-*}
release=${rest#*-}

outcome() { if [ "$1" = 0 ]; then echo PASSED; else echo FAILED; fi; }

printf '%s' "$name" | grep -Eq '^[A-Za-z0-9._+-]+$'; n=$?
printf '%s' "$version" | grep -Eq '^[0-9][A-Za-z0-9.+~^]*$'; v=$?
case "$release" in *.fc[0-9]*|*.el[0-9]*) r=0 ;; *) r=1 ;; esac

cat <<YAML
results:
  - item: "$nvr"
    type: koji_build
    checkname: rpm-sanity.name
    outcome: $(outcome $n)
    note: "name is '$name'"
  - item: "$nvr"
    type: koji_build
    checkname: rpm-sanity.version
    outcome: $(outcome $v)
    note: "version is '$version'"
  - item: "$nvr"
    type: koji_build
    checkname: rpm-sanity.dist-tag
    outcome: $(outcome $r)
    note: "release is '$release'"
    rule: release carries a dist tag (.fcNN or .elN)
YAML
