# Two commands do everything on a fresh machine: `make demo` and `make test` (each creates .venv and installs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins boto3 and an old `packaging`, which would downgrade the test environment: it lives in its own.
CHECKOV_VERSION := 3.3.30
CHECKOV := $(VENV)/checkov/bin/checkov
# --skip-download and BC_SKIP_MAPPING: offline; every skip is justified where it applies, in template.yaml.
CHECKOV_RUN := BC_SKIP_MAPPING=TRUE $(CHECKOV) -f template.yaml --framework cloudformation --quiet --compact \
	--skip-download
export AWS_DEFAULT_REGION ?= us-east-1
SOURCES := shared cli local functions bench tests

.PHONY: venv demo test lint bench reliability audit lock clean

$(STAMP): pyproject.toml shared/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(CHECKOV): $(STAMP)
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"
	touch $(CHECKOV)

demo: $(STAMP)
	$(BIN)/connector demo

# pyflakes first: an undefined name left by a merge fails in seconds, not after the whole suite.
test: $(STAMP) $(CHECKOV)
	$(BIN)/python -m pyflakes $(SOURCES)
	$(BIN)/python -m pytest
	$(BIN)/cfn-lint template.yaml
	$(CHECKOV_RUN)

lint: $(STAMP) $(CHECKOV)
	$(BIN)/python -m pyflakes $(SOURCES)
	$(BIN)/cfn-lint template.yaml
	$(CHECKOV_RUN)

# Writes BENCHMARKS.md (machine, date, commit, every figure beside its goal); commit it with the code it measured.
bench: $(STAMP)
	$(BIN)/python -m bench --markdown BENCHMARKS.md

# The fault matrix (tests/reliability): faults x {lost, duplicate issues, double posts, ...}; fails on a non-zero cell.
reliability: $(STAMP)
	$(BIN)/python -m tests.reliability

# pip-audit over the layer's locked versions; says NOT DONE (never a silent pass) when it cannot reach its database.
audit: $(STAMP)
	$(BIN)/python .ci/audit.py

# The layer's lock: every package of shared/requirements.txt and its dependencies, pinned with the hashes of their
# files, resolved for the Lambda runtime (python 3.13, manylinux2014 x86_64), not for this machine. Run it after
# changing shared/requirements.txt (a test holds the two together), and commit both.
lock: $(STAMP)
	$(BIN)/uv pip compile shared/requirements.txt --generate-hashes --python-version $(LAMBDA_PYTHON_VERSION) \
		--python-platform x86_64-manylinux2014 --custom-compile-command "make lock" --quiet \
		--output-file shared/requirements.lock

clean:
	rm -rf $(VENV) .aws-sam build *.egg-info

# `sam build` targets (template.yaml: `BuildMethod: makefile`, `ContextPath: .`). SAM runs `make build-<LogicalId>`
# in a scratch copy of the resource's CodeUri/ContentUri with ARTIFACTS_DIR set. The layer's wheels are fetched for
# the Lambda runtime and platform, so neither Docker nor a matching local interpreter is needed.
SAM_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
LAMBDA_PYTHON_VERSION := 3.13
LAMBDA_PLATFORM := manylinux2014_x86_64
# An interpreter of the runtime's version compiles the artifacts: /opt and /var/task are read-only on Lambda, so bytecode
# the build does not ship is recompiled at every cold start. PATH first, then pyenv; empty when neither has one.
LAMBDA_PYTHON ?= $(shell for p in python$(LAMBDA_PYTHON_VERSION) $(HOME)/.pyenv/versions/$(LAMBDA_PYTHON_VERSION)*/bin/python$(LAMBDA_PYTHON_VERSION); do \
	"$$p" -c 'import sys; sys.exit(f"{sys.version_info[0]}.{sys.version_info[1]}" != "$(LAMBDA_PYTHON_VERSION)")' 2>/dev/null \
	&& { command -v "$$p"; break; }; done)
# unchecked-hash: the artifacts never change after the build, so the runtime uses each .pyc without stat-ing or
# hashing its source (zip extraction does not keep the source timestamps a default .pyc is checked against).
COMPILE = $(if $(LAMBDA_PYTHON),"$(LAMBDA_PYTHON)" -m compileall -q -j 0 --invalidation-mode unchecked-hash,\
	echo "warning: no python$(LAMBDA_PYTHON_VERSION) found: shipping no bytecode, so every cold start compiles" \
	"the layer (see docs/deploy.md, Building)" >&2; :)

.PHONY: build-PollerFunction build-WorkerFunction build-WebhookFunction build-MaintenanceFunction build-ConnectorLayer

build-PollerFunction build-WorkerFunction build-WebhookFunction build-MaintenanceFunction:
	cp -R . "$(ARTIFACTS_DIR)"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -type d -prune -exec rm -rf {} +
	$(COMPILE) "$(ARTIFACTS_DIR)"

# The runtime ships boto3 and botocore: the copies pip pulls in (via aws-xray-sdk) would shadow them and mismatch
# the runtime's boto3, so they are removed. Exactly the locked files are installed: --require-hashes refuses any
# wheel whose hash the lock does not list, and --no-deps anything the lock does not name.
build-ConnectorLayer:
	mkdir -p "$(ARTIFACTS_DIR)/python"
	cp -R connector "$(ARTIFACTS_DIR)/python/"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --target "$(ARTIFACTS_DIR)/python" \
		--only-binary=:all: --implementation cp --python-version $(LAMBDA_PYTHON_VERSION) \
		--platform $(LAMBDA_PLATFORM) --require-hashes --no-deps -r "$(SAM_ROOT)/shared/requirements.lock"
	cd "$(ARTIFACTS_DIR)/python" && rm -rf bin botocore botocore-*.dist-info jmespath jmespath-*.dist-info \
		dateutil python_dateutil-*.dist-info six.py six-*.dist-info
	find "$(ARTIFACTS_DIR)" -name __pycache__ -type d -prune -exec rm -rf {} +
	$(COMPILE) "$(ARTIFACTS_DIR)/python"
