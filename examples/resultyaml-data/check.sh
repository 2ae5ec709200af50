#!/bin/sh
# Prints ResultYAML whose results carry ResultsDB data beyond item and type,
# and writes the log the first result links to (collected by `artifact`).
nvr=$1
mkdir -p logs
printf 'installed %s on x86_64 and i686\n' "$nvr" > logs/install.log

cat <<YAML
results:
  - item: "$nvr"
    type: koji_build
    checkname: resultyaml-data.install
    outcome: PASSED
    note: "installs on both arches"
    artifact: logs/install.log
    scenario: fedora.universal.x86_64.64bit
    arch: [x86_64, i686]
    firmware: uefi
  - item: "$nvr"
    type: koji_build
    checkname: resultyaml-data.docs
    outcome: INFO
    note: "documentation lives elsewhere"
    ref_url: "https://docs.fedoraproject.org/"
    scenario: fedora.universal.x86_64.64bit
YAML
