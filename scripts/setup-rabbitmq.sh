#!/usr/bin/env bash
# RabbitMQ for Ferrotron's AMQP intake and its tests: Debian's package, one
# node listening on loopback only (AMQP 5672, epmd 4369, distribution port
# 25672), started without systemd, idempotently. Called by setup-host.sh.
set -euo pipefail
say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

ENV_CONF=/etc/rabbitmq/rabbitmq-env.conf
CONF=/etc/rabbitmq/rabbitmq.conf
write_conf() {
    mkdir -p /etc/rabbitmq
    cat >"$ENV_CONF" <<'CONF'
# Written by Ferrotron's setup: loopback only.
NODE_IP_ADDRESS=127.0.0.1
NODENAME=rabbit@localhost
export ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CONF
    cat >"$CONF" <<'CONF'
# Written by Ferrotron's setup: loopback only.
listeners.tcp.default = 127.0.0.1:5672
loopback_users.guest = true
CONF
}

if ! dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null | grep -q 'ok installed'; then
    say "installing: rabbitmq-server"
    # Our configuration first (kept by --force-confold), and no start by the
    # package scripts: the daemon is started below, on loopback.
    write_conf
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold rabbitmq-server >/tmp/ferrotron-apt.log 2>&1 \
        || { tail -20 /tmp/ferrotron-apt.log >&2; die "apt-get install rabbitmq-server failed (log: /tmp/ferrotron-apt.log)"; }
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
fi
grep -q '^NODE_IP_ADDRESS=127.0.0.1' "$ENV_CONF" 2>/dev/null && grep -q '127.0.0.1:5672' "$CONF" 2>/dev/null || write_conf

ping() { timeout 10 rabbitmqctl -q -n rabbit@localhost status >/dev/null 2>&1; }
if ! ping; then
    say "starting rabbitmq-server (loopback only)"
    mkdir -p /var/lib/rabbitmq /var/log/rabbitmq && chown rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
    # Detached from this shell, in its own session, as the rabbitmq user.
    setsid su rabbitmq -s /bin/sh -c 'exec /usr/sbin/rabbitmq-server' \
        >/var/log/rabbitmq/ferrotron-start.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        ping && break
        sleep 1
    done
    ping || die "rabbitmq-server did not start (log: /var/log/rabbitmq/ferrotron-start.log)"
fi
timeout 30 rabbitmqctl -q -n rabbit@localhost await_startup >/dev/null 2>&1 || true
say "RabbitMQ ready (amqp://guest:***@127.0.0.1:5672/%2f)"
