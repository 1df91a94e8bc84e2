# realty-stream. `make demo` runs the pipeline locally; `make test` runs every check CI runs.
SHELL := /bin/bash
CARGO ?= cargo
REALTY := $(CARGO) run --quiet -p realty-cli --
VENV := .venv

.DEFAULT_GOAL := help
.PHONY: help demo test bench lint fmt unit tools build build-tools sam-build up down clean-local

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: ## Run the whole pipeline locally (starts the local AWS, LocalStack by default; leaves it running until `make down`); SOURCE=zillow,realtor,reso picks each market's source in turn
	$(REALTY) demo $(if $(SOURCE),--source $(SOURCE))

test: ## Lint, then unit and integration tests (what CI runs)
	@# The tests' build first: its `realty` then installs the tools, so the CLI is not built
	@# a second time with its own features (`cargo run -p` resolves them apart, and rebuilds
	@# the SDK).
	$(CARGO) test --workspace --no-run --quiet
	$(MAKE) --no-print-directory lint unit REALTY=target/debug/realty

# What `make bench` builds (docs/performance.md, "Method"). The timed compute runs in a small
# binary of its own built with the functions' release profile (fat LTO links it in seconds).
# The CLI, which runs the rest (calls, write units, item sizes, the local pipeline, the
# peers), is built with `bench-host`: the release profile without fat LTO, which takes
# minutes over the SDK, and nothing it measures depends on. The release bootstraps (cold
# starts, memory) and the arm64 ones (sizes) of the event path's functions are built only
# when the Lambda part runs (every part runs unless BENCH_ARGS says `--parts`), each without
# the CLI, whose SDK features would otherwise unify into them.
BENCH_FUNCTIONS := poller metrics alerts
BENCH_LAMBDA := $(if $(findstring --parts,$(BENCH_ARGS)),$(findstring lambda,$(BENCH_ARGS)),lambda)

bench: ## Throughput, latency and footprint beside DuckDB and PySpark (`realty bench`; BENCH_ARGS="--json", "--parts compute,instructions,peers,writes,e2e,lambda")
	$(CARGO) build --release -p realty-bench-compute
	$(CARGO) build --profile bench-host -p realty-cli
	@# The tools through this CLI: `make tools` alone would build a debug one first.
	$(MAKE) --no-print-directory tools REALTY=target/bench-host/realty
	$(if $(BENCH_LAMBDA),$(MAKE) --no-print-directory build-tools && for f in $(BENCH_FUNCTIONS); do $(CARGO) build --release -p $$f-function && $(BUILD_PATH) cargo lambda build --release --arm64 -p $$f-function || exit 1; done)
	target/bench-host/realty bench $(BENCH_ARGS)

# infra/test_docs.py checks the docs' counts and names against template.yaml, and
# infra/check_links.py their links (the CLI's own test checks every documented command).
# checkov and cfn-lint read each template file before the SAM transform (monitoring.yaml and
# permissions.yaml are template.yaml's nested applications: the alarms, dashboard and
# operations topic; the functions' roles); infra/check_iam.py reads the stack after (what
# CloudFormation deploys, the nested templates in place) and fails on any unexplained
# wildcard or managed policy.
TEMPLATES := template.yaml monitoring.yaml permissions.yaml
TRANSFORMED := target/template.transformed.json

lint: tools ## cargo fmt --check, clippy (functions of at most 80 lines) and rustdoc -D warnings, files and import cycles, cfn-lint and checkov on the templates, IAM as deployed, the docs against the template and their links
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/python infra/check_code_shape.py
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet
	$(VENV)/bin/cfn-lint $(TEMPLATES)
	$(VENV)/bin/checkov $(addprefix -f ,$(TEMPLATES)) --framework cloudformation --quiet --compact --skip-download
	$(VENV)/bin/python -m unittest discover -b -q -s infra -p 'test_*.py'
	$(VENV)/bin/python infra/check_links.py
	@mkdir -p $(dir $(TRANSFORMED))
	$(VENV)/bin/python infra/check_iam.py template.yaml --transformed $(TRANSFORMED)
	$(VENV)/bin/cfn-lint $(TRANSFORMED)

# The integration tests run on LocalStack (the default: AWS's own DynamoDB Local behind the
# DynamoDB API), then the same binary, not rebuilt, on moto: there only the tests of AWS
# behaviours the emulators implement apart (tests/it/second_emulator.rs lists them with the
# behaviour; the others differ by emulator only in the calls these make). REALTY_EMULATOR
# picks one. (`--workspace` both times: with one package, its features alone would rebuild
# the SDK.)
unit: ## Unit and integration tests, the integration tests on LocalStack, the emulator-dependent ones on moto too
	$(CARGO) test --workspace
	REALTY_EMULATOR=moto REALTY_TESTS=emulator-dependent $(CARGO) test --workspace --test integration

fmt: ## Format the code
	$(CARGO) fmt --all

tools: ## Install the pinned local tools (moto server, cfn-lint, checkov, SAM translator) into .venv
	@$(REALTY) tools >/dev/null

BUILD_VENV := .venv-build
# SAM_CLI_TELEMETRY=0: the SAM CLI would otherwise report usage to AWS on every run.
BUILD_PATH := SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(BUILD_VENV)/bin:$$PATH"

build-tools: $(BUILD_VENV)/.installed ## Install cargo-lambda, Zig and the SAM CLI (pinned, from PyPI) into .venv-build

$(BUILD_VENV)/.installed: infra/build-requirements.txt
	python3 -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/build-requirements.txt
	cp infra/build-requirements.txt $@

# One package a run: cargo unifies features over the packages a run selects, and each
# function's own graph holds only the domain crates it runs (realty-aws's features: the alerts
# and API bootstraps link no HTML parser or poller HTTP client, docs/architecture.md) and
# leaves out what the CLI and the tests ask of the SDK (SSO, aws-lc-rs, SigV4a: 2.7 MB of
# each bootstrap). The dependencies they share are built once.
LAMBDA_FUNCTIONS := poller metrics alerts api importer curator
build: build-tools ## The arm64 Lambda bootstraps: target/lambda/{poller,metrics,alerts,api,api-authorizer,importer,curator}/bootstrap
	for f in $(LAMBDA_FUNCTIONS); do $(BUILD_PATH) cargo lambda build --release --arm64 -p $$f-function || exit 1; done
	@ls -l target/lambda/*/bootstrap

sam-build: build-tools ## sam build (BuildMethod rust-cargolambda), as `sam deploy` uses it
	$(BUILD_PATH) sam build

up: ## Start the local AWS (REALTY_EMULATOR=localstack|moto) and provision template.yaml into it
	$(REALTY) up

down: ## Stop the local AWS
	$(REALTY) down

clean-local: down ## Stop the local AWS and delete the tool environments
	rm -rf $(VENV) $(BUILD_VENV) .venv-localstack
