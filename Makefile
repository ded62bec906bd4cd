# The README's two commands: `make run` runs the system, `make test` runs every test.
.PHONY: run test simulate evaluation-report bench helm-check lint fmt build

run: ## Start PostgreSQL (if needed), the broker, both services; load fixtures; route samples; serve until Ctrl-C
	scripts/run.sh

test: ## Unit, service, end-to-end and broker-conformance tests, then the Helm chart checks
	scripts/test.sh

simulate: ## A synthetic national year through the whole system on simulated time; ARGS="--seed 7 --faults 3" etc.
	scripts/simulate.sh $(ARGS)

evaluation-report: ## Write the pilot evaluation's HTML report from a running system (make run); ARGS="--from 2027-01 --to 2027-12 --csv t.csv"
	cargo run --quiet -p ekb-devstack --bin ekb-evaluation-report -- $(ARGS)

bench: ## Open-loop OpenCase load vs a pgbench baseline; writes target/bench/open_case.json
	scripts/bench.sh

helm-check: ## helm lint/template, kubernetes-validate --strict, checkov, negative values tests
	scripts/helm-check.sh

lint: ## Formatting and clippy, as CI expects them
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace --bins --locked
