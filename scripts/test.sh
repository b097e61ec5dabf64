#!/usr/bin/env bash
# The whole test suite: Rego (opa fmt, opa check --strict, opa test) and pytest on SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lint: ruff (correctness rules, import order)"
.venv/bin/ruff check foundation audit governance training evaluation app tests bench setup.py

echo "== layers: import-linter (no upward import, no cycle between sibling packages)"
.venv/bin/lint-imports --no-cache

OPA=$(.venv/bin/python -c 'from forgegov.governance.opa.binary import find_opa; print(find_opa())')
echo "== policies: $("$OPA" version | head -n 1)"
unformatted=$("$OPA" fmt --list policies/)
if [ -n "$unformatted" ]; then
  echo "opa fmt would change: $unformatted" >&2
  exit 1
fi
"$OPA" check --strict --bundle policies/
# Again with `input` typed by the gate input document's schema (a file, not a folder, so that it types every rule):
# a rule reading a field the document does not have is a type error. Reads inside functions, through an argument,
# are not typed and not caught. The administrative acts take another document: their package names its own schema
# (a METADATA annotation), which only the folder form of --schema applies.
"$OPA" check --strict --schema policies/schemas/input.json --ignore admin --bundle policies/
"$OPA" check --strict --schema policies/schemas --bundle policies/
"$OPA" test --bundle policies/

if [ -z "${FORGEGOV_TEST_POSTGRES_URL:-}" ]; then
  # Stop the cluster afterwards only if this run started it: another run on this machine may be using it.
  started_here=""
  scripts/postgres.sh status || started_here=1
  FORGEGOV_TEST_POSTGRES_URL=$(scripts/postgres.sh start)
  export FORGEGOV_TEST_POSTGRES_URL
  if [ -n "$started_here" ]; then
    trap 'scripts/postgres.sh stop' EXIT
  fi
fi

# As many workers as cores, each with one thread for torch and BLAS (and the processes it starts): two workers each
# spreading a tiny model's matrix products over both cores only wait on each other (measured 7 % faster).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# The tests start forgegov in hundreds of processes: compiled once here, rather than by each of them when the
# environment says not to write bytecode (PYTHONDONTWRITEBYTECODE).
.venv/bin/python -m compileall -q foundation audit governance training evaluation app >/dev/null

echo "== pytest (SQLite and PostgreSQL at ${FORGEGOV_TEST_POSTGRES_URL})"
set +e
# worksteal: a worker that runs out takes tests queued for the other, instead of idling while the other finishes a
# queue of long ones (measured: 709 s against about 800 s with the default distribution).
.venv/bin/python -m pytest -n 2 --dist worksteal "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
