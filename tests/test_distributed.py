"""Two CPU processes under torchrun (gloo): DDP keeps the ranks in sync, each rank reads its own data,
rank 0's checkpoint loads single-process; FSDP2 trains and gathers a loadable checkpoint too."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import taesan

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import torch
    from safetensors.torch import save_file

    import taesan
    from taesan.train import distributed
    from taesan.data import CausalWindows, TokenSplit
    from taesan.objectives import CausalLM
    from taesan.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    info = distributed.init(torch.device("cpu"))
    split = TokenSplit(np.random.default_rng(0).integers(0, 40, size=3000).astype(np.uint16), np.array([0, 3000]))
    for mode in ("ddp", "fsdp"):  # one launch, two runs: torch is imported once per rank
        out, fsdp = Path(sys.argv[1]) / mode, mode == "fsdp"
        torch.manual_seed(0)
        model = taesan.create("gpt-tiny", vocab_size=40, n_layers=2, d_model=32, n_heads=2, n_positions=32)
        torch.manual_seed(100 + info.rank)  # different dropout per rank: only the gradient all-reduce keeps them equal
        data = CausalWindows(split, 16, 4, seed=3, rank=info.rank, world_size=info.world_size)
        first = CausalWindows(split, 16, 4, seed=3, rank=info.rank, world_size=info.world_size).next_batch()["input_ids"]
        config = TrainConfig(max_steps=3, warmup=1, eval_every=0, save_every=0, progress=False)
        trainer = Trainer(model, CausalLM(), data, config, out, device="cpu", dist=info, fsdp=fsdp)
        trainer.fit()
        if not fsdp:
            state = {k: v.contiguous() for k, v in trainer.raw_model.state_dict().items() if k != "lm_head.weight"}
            save_file(state | {"_first_batch": first}, str(out / f"rank{info.rank}.safetensors"))
    distributed.shutdown()
    """
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Both runs (DDP, then FSDP2) from one `torchrun --nproc_per_node=2` launch."""
    tmp_path = tmp_path_factory.mktemp("dist")
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path


def test_ddp_ranks_stay_in_sync_read_different_data_and_rank0_checkpoint_loads(runs):
    out = runs / "ddp"
    r0, r1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    assert not torch.equal(r0.pop("_first_batch"), r1.pop("_first_batch"))  # each rank reads its own share
    torch.manual_seed(0)
    init = taesan.create("gpt-tiny", vocab_size=40, n_layers=2, d_model=32, n_heads=2, n_positions=32).state_dict()
    assert any(not torch.equal(r0[k], init[k]) for k in r0)  # training moved the weights
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k  # ... identically on both ranks
    loaded = taesan.load(out).state_dict()  # single process, from rank 0's checkpoint
    assert all(torch.equal(loaded[k], r0[k]) for k in r0)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-0000003"]


def test_fsdp2_trains_and_gathers_a_full_checkpoint(runs):
    out = runs / "fsdp"
    model = taesan.load(out)
    torch.manual_seed(0)
    init = taesan.create("gpt-tiny", vocab_size=40, n_layers=2, d_model=32, n_heads=2, n_positions=32).state_dict()
    state = model.state_dict()
    assert any(not torch.equal(state[k], init[k]) for k in init)
    assert all(torch.isfinite(v).all() for v in state.values())
