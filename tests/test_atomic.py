"""taesan.atomic: the target appears whole or not at all, with the permissions a plain write would give."""
from __future__ import annotations

import os
import stat

import pytest

from taesan.atomic import atomic_path, atomic_write_text


def test_written_files_have_the_umask_permissions_not_mkstemps_0600(tmp_path):
    """Checkpoints came out -rw------- (mkstemp's mode): unreadable to anyone else sharing the machine."""
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_text(tmp_path / "a.json", "{}")
    (tmp_path / "plain.json").write_text("{}", encoding="utf-8")
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~umask  # as open() makes it
    assert mode & stat.S_IRGRP or umask & 0o040
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == "{}"


def test_a_failure_leaves_neither_target_nor_temp_file(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_safetensors_checkpoints_too(tmp_path):
    """safetensors writes its own file in place of the temp one: model.safetensors stayed 0600."""
    import torch

    from taesan.checkpoint import save_state_dict

    umask = os.umask(0)
    os.umask(umask)
    save_state_dict({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o666 & ~umask
