#!/usr/bin/env bash
# Install and start what Ferrotron needs on a Debian 12 host, idempotently.
# Run as root. Safe to run again: every step checks before it acts.
#
#   scripts/setup-host.sh --for demo   virtualisation stack (libvirt, qemu, image
#                                      tools) and build tools: what `make demo` needs
#   scripts/setup-host.sh [--for test] the same, plus test tools (Ansible for the
#                                      playbook tests, wrk), PostgreSQL and RabbitMQ
#
# Prints one line per step; exits non-zero with the failing step named.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts libvirtd)"

FOR=test
case "${1:-}" in
    "") ;;
    --for) FOR="${2:-}" ;;
    *) die "usage: $0 [--for demo|test]" ;;
esac
case "$FOR" in
    demo|test) ;;
    *) die "--for takes demo or test, not '$FOR'" ;;
esac

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        apt-get update -qq || die "apt-get update failed"
        APT_UPDATED=1
    fi
}
missing_pkgs() {
    local p out=()
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || out+=("$p")
    done
    echo "${out[@]:-}"
}

# --- packages -----------------------------------------------------------------
# Package lists: scripts/packages-runtime.txt (what a host running jobs
# needs; the Ansible role installs the same) and packages-dev.txt (building
# and testing). One name per line, `#` comments.
read_pkgs() { grep -v '^[[:space:]]*\(#\|$\)' "$1"; }
lists=(packages-runtime.txt packages-dev.txt)
[ "$FOR" = test ] && lists+=(packages-test.txt)
mapfile -t PKGS < <(for l in "${lists[@]}"; do read_pkgs "$(dirname "$0")/$l"; done)
need=$(missing_pkgs "${PKGS[@]}")
if [ -n "$need" ]; then
    apt_update_once
    # qemu-utils may be a newer backport that conflicts with bookworm's
    # qemu-system-x86: pin it to the version bookworm itself lists.
    extra=()
    if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo; then
        v=$(apt-cache policy qemu-utils | awk '/Version table/ {t=1; next}
            t && NF == 2 && $1 ~ /[.:]/ && $1 !~ /bpo/ {print $1; exit}')
        [ -n "$v" ] || die "cannot find a bookworm version of qemu-utils to pin"
        extra=("qemu-utils=$v" "qemu-block-extra=$v" --allow-downgrades)
        dpkg-query -W qemu-block-extra >/dev/null 2>&1 || extra=("qemu-utils=$v" --allow-downgrades)
    fi
    say "installing: $need ${extra[*]:-}"
    apt-get install -y -qq --no-install-recommends $need "${extra[@]}" >/tmp/ferrotron-apt.log 2>&1 \
        || { tail -20 /tmp/ferrotron-apt.log >&2; die "apt-get install failed (log: /tmp/ferrotron-apt.log)"; }
else
    say "packages: all present"
fi

# Debian's prometheus package starts a server on every address (:9090)
# where systemd runs; the tests start their own on loopback only.
if [ "$FOR" = test ] && [ -d /run/systemd/system ] \
    && systemctl is-enabled prometheus.service >/dev/null 2>&1; then
    systemctl disable --now prometheus.service prometheus-node-exporter.service >/dev/null 2>&1 || true
    say "prometheus.service stopped and disabled (tests run their own on 127.0.0.1)"
fi

# The image builder downloads the guest's packages (kernel, dropbear, git)
# with apt: it needs package lists even when nothing is missing here.
kernel_policy=$(apt-cache policy linux-image-cloud-amd64 2>/dev/null || true)
if ! grep -q 'Candidate: [0-9]' <<<"$kernel_policy"; then
    apt_update_once
fi

# --- /dev/kvm permissions -------------------------------------------------------
# Without udev /dev/kvm stays root:root 0600, and libvirt then re-probes QEMU on
# every domain start (~48 s). Give it the mode udev gives on a normal host.
if [ -e /dev/kvm ]; then
    getent group kvm >/dev/null || groupadd -r kvm
    if [ "$(stat -c %G:%a /dev/kvm)" != "kvm:660" ]; then
        chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
        say "/dev/kvm set to root:kvm 0660"
    fi
fi

# --- daemons -------------------------------------------------------------------
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
mkdir -p /run/libvirt
if [ -d /run/systemd/system ]; then
    systemctl start virtlogd.socket libvirtd.service
else
    # No systemd: start them ourselves. QEMU daemonises, so its zombie goes
    # to the nearest subreaper; without one, PID 1 here reaps orphans only
    # about once a second, and libvirt's virDomainDestroy waits for that
    # (1.4 s per VM measured). tini -s, as libvirtd's parent, reaps at once.
    if ! running /run/virtlogd.pid; then
        say "starting virtlogd"
        virtlogd -d
    fi
    parent_of() { ps -o comm= -p "$(ps -o ppid= -p "$1" | tr -d ' ')" 2>/dev/null; }
    if running /run/libvirtd.pid && [ "$(parent_of "$(cat /run/libvirtd.pid)")" != tini ]; then
        if [ -z "$(virsh -c qemu:///system list --name 2>/dev/null | grep -v '^$')" ]; then
            say "restarting libvirtd under a subreaper (no domains running)"
            kill "$(cat /run/libvirtd.pid)"
            for _ in $(seq 1 50); do running /run/libvirtd.pid || break; sleep 0.1; done
        else
            say "warning: libvirtd runs without a subreaper; destroying a VM will take ~1 s longer"
        fi
    fi
    if ! running /run/libvirtd.pid; then
        say "starting libvirtd (under tini -s)"
        rm -f /run/libvirtd.pid
        setsid tini -s -- libvirtd --pid-file /run/libvirtd.pid </dev/null >>/var/log/ferrotron-libvirtd.log 2>&1 &
    fi
fi
for _ in $(seq 1 100); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.1
done
virsh -c qemu:///system version >/dev/null 2>&1 || die "libvirtd did not answer on qemu:///system"
say "libvirt ready ($(virsh -c qemu:///system version 2>/dev/null | awk -F': ' '/Running hypervisor/ {print $2}'))"

if [ "$FOR" = demo ]; then
    say "ready for the demo (make test adds PostgreSQL, RabbitMQ and the test tools)"
    exit 0
fi

# --- PostgreSQL (the results store's second backend; tests run against it) -----
# Debian's package, one cluster listening on loopback only, started with
# pg_ctlcluster (no systemd here), and a role the tests use to create and drop
# their own databases. FERROTRON_TEST_PG_URL in scripts/test.sh points at it.
PG_ROLE=ferrotron
PG_PASSWORD=ferrotron
need=$(missing_pkgs postgresql)
if [ -n "$need" ]; then
    apt_update_once
    say "installing: postgresql"
    apt-get install -y -qq --no-install-recommends postgresql >/tmp/ferrotron-apt.log 2>&1 \
        || { tail -20 /tmp/ferrotron-apt.log >&2; die "apt-get install postgresql failed (log: /tmp/ferrotron-apt.log)"; }
fi
pg_ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
[ -n "$pg_ver" ] || die "no PostgreSQL server under /usr/lib/postgresql"
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$pg_ver/main"; then
    say "creating PostgreSQL $pg_ver cluster main"
    pg_createcluster "$pg_ver" main >/dev/null || die "pg_createcluster failed"
fi
conf="/etc/postgresql/$pg_ver/main/postgresql.conf"
if ! grep -q "^listen_addresses = '127.0.0.1'" "$conf"; then
    echo "listen_addresses = '127.0.0.1'    # set by ferrotron setup: loopback only" >>"$conf"
    pg_lsclusters -h | awk -v v="$pg_ver" '$1 == v && $2 == "main" {print $4}' | grep -qx online \
        && pg_ctlcluster "$pg_ver" main restart
fi
if ! pg_lsclusters -h | awk -v v="$pg_ver" '$1 == v && $2 == "main" {print $4}' | grep -qx online; then
    say "starting PostgreSQL $pg_ver/main"
    mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
    pg_ctlcluster "$pg_ver" main start || die "pg_ctlcluster $pg_ver main start failed (log: /var/log/postgresql/postgresql-$pg_ver-main.log)"
fi
for _ in $(seq 1 100); do
    su postgres -c "psql -qAtc 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 0.1
done
su postgres -c "psql -qAtc 'SELECT 1'" >/dev/null 2>&1 || die "PostgreSQL does not answer"
if [ "$(su postgres -c "psql -qAtc \"SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'\"")" != 1 ]; then
    say "creating PostgreSQL role $PG_ROLE"
    su postgres -c "psql -qc \"CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD'\"" >/dev/null
fi
say "PostgreSQL ready (postgres://$PG_ROLE:***@127.0.0.1:5432/postgres)"

# --- RabbitMQ (the AMQP message intake; tests use a real broker) -------------
"$(dirname "$0")/setup-rabbitmq.sh"
