# Ferrotron: the two commands a new user runs are `make demo` and `make test`.
# Each installs what is missing (as root, on Debian 12), builds once, builds
# the base image if absent, then does its job. Second runs skip what is done.

SHELL := /bin/bash
CARGO ?= cargo
TARGET_TRIPLE := x86_64-unknown-linux-gnu
AGENT := target/$(TARGET_TRIPLE)/agent/ferrotron-agent
FERROTRON := target/release/ferrotron
DATA_DIR ?= /var/lib/ferrotron
IMAGES_DIR ?= $(DATA_DIR)/images
RECIPE ?= images/tiny.yaml
# The full distribution image (mmdebstrap): for tasks that need Debian's tools.
FULL_RECIPE ?= images/debian.yaml
# Bounded parallelism for the suites that boot VMs (2 cores here).
VM_TEST_THREADS ?= 2

export FERROTRON_IMAGES_DIR := $(abspath $(IMAGES_DIR))
export FERROTRON_AGENT := $(abspath $(AGENT))

.PHONY: setup build agent image image-full demo test unit e2e bench fmt clippy clean

# What setup installs: `demo` (libvirt, QEMU, build tools) or `test` (also
# PostgreSQL, RabbitMQ, Ansible, wrk). `make demo` asks for less.
SETUP_FOR ?= test
demo: SETUP_FOR = demo

## setup: install and start the host's virtualisation stack (idempotent).
setup:
	@./scripts/setup-host.sh --for $(SETUP_FOR)

## build: the orchestrator (release) and the static guest agent.
build: setup
	$(CARGO) build --release -p ferrotron --bin ferrotron
	$(MAKE) --no-print-directory agent

agent:
	RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' \
	  $(CARGO) build --profile agent -p ferrotron-agent --target $(TARGET_TRIPLE)

## image: build the base image unless one from the same recipe exists.
image: build
	$(FERROTRON) image build --if-changed --agent $(AGENT) $(RECIPE)

## image-full: build the full Debian image unless one from the same recipe
## exists (about 80 s the first time: mmdebstrap installs ~200 packages).
image-full: build
	$(FERROTRON) image build --if-changed --agent $(AGENT) $(FULL_RECIPE)

## demo: run the example task in a fresh VM, TAP on stdout.
demo: image
	$(FERROTRON) run --libvirt -i hello-1.0-1.fc40 -t koji_build examples/hello/runtask.yml

## test: every test: unit tests, then the end-to-end suites that boot VMs.
test: image image-full
	./scripts/test.sh

## bench: boot-to-SSH baseline vs. a trivial job; writes docs/performance.md.
bench: image image-full
	./scripts/bench.sh

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
