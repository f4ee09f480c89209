# difyops.fleet: the two commands a new user needs.
#   make lab    bring up the lab (fleet layout) and converge site.yml on it
#   make test   every test: unit, lint, sanity, build, molecule scenarios,
#               the whole fleet (converge, rerun, check, verify, upgrade under load)
# Both install what they need (run as root on Debian).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
TOP := $(CURDIR)
VENV := $(TOP)/.venv
export PATH := $(VENV)/bin:$(PATH)
export CONTAINERS_CONF := $(TOP)/lab/containers.conf
export ANSIBLE_NOCOLOR := 1
export PY_COLORS := 0
LAYOUT ?= fleet
LAB_OS ?= trixie
MOLECULE_JOBS ?= 3

.PHONY: help bootstrap prereqs images lab lab-up lab-converge lab-idempotence lab-down lab-status \
        test unit lint sanity build molecule fleet clean

help:
	@echo "make lab         lab hosts (LAYOUT=fleet|aio|fleet14, LAB_OS=trixie|bookworm, LAB_DIFY_VERSION=1.13.3) + site.yml"
	@echo "make lab-down    remove the lab hosts, network and generated inventory"
	@echo "make test        unit + preflight tests, ansible-lint, ansible-test sanity, build, molecule, fleet"

# --- setup --------------------------------------------------------------
prereqs:
	@need=""; \
	for p in podman runc debootstrap uidmap shellcheck git; do \
	  dpkg -s $$p >/dev/null 2>&1 || need="$$need $$p"; done; \
	command -v ssh >/dev/null || need="$$need openssh-client"; \
	if [ -n "$$need" ]; then echo "installing:$$need"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; fi

bootstrap: prereqs
	@bash scripts/bootstrap.sh

images: prereqs
	@bash lab/build-image.sh trixie
	@bash lab/build-image.sh bookworm

# --- the lab ------------------------------------------------------------
lab: bootstrap images lab-up lab-converge

lab-up:
	python lab/lab.py up --layout $(LAYOUT) --os $(LAB_OS) $(if $(LAB_DIFY_VERSION),--dify-version $(LAB_DIFY_VERSION))

lab-converge:
	ansible-playbook lab/fixtures.yml -i inventories/lab
	ansible-playbook playbooks/site.yml -i inventories/lab

lab-idempotence:
	@mkdir -p build
	ansible-playbook playbooks/site.yml -i inventories/lab | tee build/lab-idempotence.log
	@grep -qE 'changed=[1-9]' build/lab-idempotence.log && { echo "not idempotent"; exit 1; } || echo "idempotent: changed=0 on every host"

lab-down:
	python lab/lab.py down

lab-status:
	python lab/lab.py status

# --- tests --------------------------------------------------------------
# Stages (static checks beside molecule, then the fleet) with their timings
# printed at the end: scripts/test-all.sh.
test: bootstrap images
	bash scripts/test-all.sh

unit:
	python -m pytest -q -p no:cacheprovider -n 2 tests/unit $(wildcard tests/preflight)

lint:
	ansible-lint --profile production --offline -q

sanity:
	bash scripts/sanity.sh

build:
	bash tests/build/test_build.sh

molecule:
	MOLECULE_JOBS=$(MOLECULE_JOBS) bash scripts/test-molecule.sh

# The production-shaped fleet over SSH: converge, rerun changed=0, --check
# --diff, cross-host verify, upgrade under a request loop (no 5xx), verify.
fleet:
	bash scripts/test-fleet.sh fleet

clean:
	rm -rf build .pytest_cache
