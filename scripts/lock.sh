#!/usr/bin/env bash
# `make lock`: regenerate requirements.lock, the book's exact environment with hashes, from
# pyproject.toml (the package's ranges and its book, test and timm extras) and scripts/pins.in
# (torch, the kernel). uv resolves it for CPython 3.11 on x86_64 Linux, the machines the book is
# built and tested on; it is installed into a throwaway environment, not into the book's.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q --disable-pip-version-check uv==0.13.9
# the current lock as uv's preferences: a new dependency adds its packages, the others keep their pins
grep -v '^#' requirements.lock > requirements.lock.new
"$tools/bin/uv" pip compile pyproject.toml scripts/pins.in --extra book --extra test --extra timm \
    --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --no-header --annotation-style line --output-file requirements.lock.new
{ echo "# The book's environment, exact versions with hashes: \`make lock\` writes it (scripts/lock.sh),"
  echo "# scripts/setup.sh installs it with pip --require-hashes. Do not edit by hand."
  cat requirements.lock.new; } > requirements.lock
rm requirements.lock.new
echo "lock: requirements.lock has $(grep -c '==' requirements.lock) packages"
