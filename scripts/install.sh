#!/usr/bin/env bash
# Installs everything forgegov and its test suite need on a fresh Debian/Ubuntu machine with Python 3.11+ and Go:
#   - a virtual environment in .venv with forgegov (editable) and its test extras,
#   - the pinned OPA, built from its Go module into ~/.cache/forgegov (reused when already built),
#   - Debian's postgresql (for the team store and the PostgreSQL half of the tests), when apt-get is usable,
#   - Debian's bubblewrap (the sandbox reward code runs in).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

.venv/bin/forgegov opa install

# The S3-compatible object store the artifact store's tests run against: the Versity S3 Gateway (Apache-2.0), built
# from its Go module into the cache like OPA (about a minute the first time), reused when already there.
VERSITYGW_VERSION=v1.8.0
VERSITYGW_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/forgegov/versitygw-$VERSITYGW_VERSION"
if [ ! -x "$VERSITYGW_DIR/versitygw" ]; then
  echo "building the Versity S3 gateway $VERSITYGW_VERSION (for the artifact store's tests)" >&2
  GOBIN="$VERSITYGW_DIR" CGO_ENABLED=0 go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

# A witness run by someone else, for the tests of handing tree heads over C2SP tlog-witness: litewitness and its
# witnessctl (filippo.io/torchwood, BSD-3-Clause), built from their Go module the same way (about 40 s).
LITEWITNESS_VERSION=v0.6.1
LITEWITNESS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/forgegov/litewitness-$LITEWITNESS_VERSION"
if [ ! -x "$LITEWITNESS_DIR/litewitness" ] || [ ! -x "$LITEWITNESS_DIR/witnessctl" ]; then
  echo "building litewitness $LITEWITNESS_VERSION (for the witness protocol's tests)" >&2
  GOBIN="$LITEWITNESS_DIR" CGO_ENABLED=0 go install "filippo.io/torchwood/cmd/litewitness@$LITEWITNESS_VERSION" \
    "filippo.io/torchwood/cmd/witnessctl@$LITEWITNESS_VERSION"
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "note: PostgreSQL is not installed; the PostgreSQL half of the tests needs Debian's postgresql" >&2
  fi
fi
# Reward and environment code runs only inside bubblewrap's sandbox (governance/sandbox), with util-linux's prlimit
# and setpriv for its limits and privileges; nothing runs that code when they are missing.
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    echo "note: bubblewrap is not installed; rewards cannot run (or be approved) without Debian's bubblewrap" >&2
  fi
fi
# litewitness takes its key from an ssh-agent, as its README prescribes: the tests start one.
if ! command -v ssh-agent >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null
  else
    echo "note: ssh-agent is not installed; the witness protocol's tests need Debian's openssh-client" >&2
  fi
fi
echo "installed: $(.venv/bin/forgegov opa version)"
