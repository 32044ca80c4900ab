# The README's commands. `make test` is what .ci/run runs.
PYTHON ?= python3
ARGS ?=
CLI = PYTHONPATH=$(CURDIR) $(PYTHON) -m cardiostream.cli

.PHONY: test demo infra-up infra-down infra-status lint

## Run the whole test suite against a real local Kafka, Redis and Prometheus (stopped afterwards).
test:
	bash scripts/test.sh $(ARGS)

## Run the pipeline end to end on the local infrastructure.
demo:
	bash scripts/demo.sh $(ARGS)

infra-up:
	$(CLI) infra up --with-prometheus

infra-down:
	$(CLI) infra down

infra-status:
	$(CLI) infra status

lint:
	ruff check .
