#!/usr/bin/env bash
# Install (if needed), then lint, type-check and run the whole test suite.
# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (trust auth, database
# `test`); with CI=true a missing service fails the run instead of skipping tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest --durations=30 "$@"  # the slowest, to keep the run short
