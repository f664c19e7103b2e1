"""Issue 17, item 7: a write that fails (a full disk, a folder where the file should be) leaves
no temporary file and names the file; files are written with the user's umask; the resume hint
printed at Ctrl-C is quoted for the shell and for Hydra."""
from __future__ import annotations

import errno
import os
import shlex
import stat
from pathlib import Path

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from dlrun import nn
from dlrun.engine import files
from dlrun.runner.checkpoint import write_atomic


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "tmp" in p.name)


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def small_net():
    net = nn.Dense(3, in_units=4)
    net.initialize()
    return net


def test_model_npz_on_a_full_disk_names_the_file_and_leaves_no_temporary_file(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setattr(np, "savez", full_disk)
    target = tmp_path / "model.npz"
    with pytest.raises(OSError, match="No space left") as e:
        small_net().save_parameters(str(target))
    assert str(target) in str(e.value) and e.value.errno == errno.ENOSPC
    assert leftovers(tmp_path) == [] and not target.exists()


def test_model_npz_where_a_folder_stands_names_the_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "model.npz"
    target.mkdir()
    with pytest.raises(OSError) as e:
        small_net().save_parameters(str(target))
    assert str(e.value).endswith(f"cannot write {target}: Is a directory"), e.value
    assert leftovers(tmp_path) == []


def test_an_export_on_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    net = nn.HybridSequential()
    net.add(nn.Dense(3, in_units=4))
    net.initialize()
    net.hybridize()
    from dlrun import nd

    net(nd.array(np.ones((2, 4), dtype=np.float32)))
    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError) as e:
        net.export(str(tmp_path / "model"))
    assert "model-0000.params" in str(e.value)
    assert leftovers(tmp_path) == []


class WithConstant(nn.HybridBlock):
    """A model whose exported graph holds a constant (``const:0`` in its parameter file)."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(3, in_units=4)

    def forward(self, x):
        from dlrun import nd

        return self.dense(x) + nd.array(np.arange(3, dtype=np.float32))


def test_a_runs_weights_are_one_file_under_two_names_or_else_a_copy(tmp_path, monkeypatch):
    """Issue 19, item 5: model.npz is a second name (a hard link) of the export's parameter
    file, which holds the graph's constants too and loads as model.npz; where the filesystem
    refuses a link it is a copy; a folder in its place is named, with nothing left behind."""
    from dlrun import nd
    from dlrun.runner.export import save_weights

    net = WithConstant()
    net.initialize()
    net.hybridize()
    x = nd.array(np.ones((2, 4), dtype=np.float32))
    want = net(x).asnumpy()
    exported = Path(net.export(str(tmp_path / "model"))[0])
    weights, params = tmp_path / "model.npz", tmp_path / "model-0000.params"
    assert "const:0" in np.load(params).files
    assert save_weights(net, tmp_path, exported) and weights.samefile(params)
    again = WithConstant()
    again.load_parameters(str(weights))  # the graph's constants are no parameters
    np.testing.assert_array_equal(again(x).asnumpy(), want)

    def refused(*args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refused)  # FAT, say
    assert save_weights(net, tmp_path, exported) and not weights.samefile(params)
    assert weights.read_bytes() == params.read_bytes() and leftovers(tmp_path) == []
    monkeypatch.undo()
    weights.unlink()
    weights.mkdir()
    with pytest.raises(OSError, match=f"cannot write {weights}"):
        save_weights(net, tmp_path, exported)
    assert leftovers(tmp_path) == []
    imperative = tmp_path / "imperative"  # no export: the weights are a file of their own
    imperative.mkdir()
    assert not save_weights(net, imperative, None) and (imperative / "model.npz").is_file()


def test_a_checkpoint_write_that_fails_names_the_file(tmp_path):
    with pytest.raises(OSError, match="No space left") as e:
        write_atomic(tmp_path / "ckpt-00000001.npz", full_disk)
    assert "ckpt-00000001.npz" in str(e.value)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_are_written_with_the_users_umask(tmp_path, mask, mode):
    """config.yaml and checkpoints went through mkstemp and were always 0600."""
    old = os.umask(mask)
    try:
        assert files.umask() == mask
        write_atomic(tmp_path / "config.yaml", lambda f: f.write(b"a: 1\n"))
        small_net().save_parameters(str(tmp_path / "model.npz"))
    finally:
        os.umask(old)
    for name in ("config.yaml", "model.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


@pytest.mark.parametrize("run_dir", ["/tmp/outputs/runs/2026-01-02/03-04-05",
                                     "/tmp/my runs/2026-01-02/03-04-05",
                                     "/tmp/résultats/ü,1", "/tmp/it's \"here\""])
def test_the_resume_hint_pastes_into_a_shell_and_parses_in_hydra(run_dir):
    from dlrun.runner.main import _interrupted, resume_command
    from dlrun.runner.interrupt import StopRequested

    stop = StopRequested("SIGINT", 7, Path(run_dir) / "checkpoints" / "ckpt-00000007.json")
    _, hint = _interrupted(stop)
    command = hint.split(": ", 1)[1]
    assert command == resume_command(run_dir)
    words = shlex.split(command)
    assert words[0] == "dlrun" and len(words) == 2
    override = OverridesParser.create().parse_override(words[1])
    assert override.key_or_group == "resume" and override.value() == run_dir
    if " " not in run_dir and "'" not in run_dir and "," not in run_dir and run_dir.isascii():
        assert command == f"dlrun resume={run_dir}"  # a plain path stays plain


@pytest.mark.slow
def test_a_run_that_cannot_write_model_npz_names_it_and_leaves_no_temporary_file(run_dlrun,
                                                                                  tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "model.npz").mkdir(parents=True)  # what a full disk does, without filling one
    res = run_dlrun("model=mlp", "trainer.epochs=1", "logger=none", f"hydra.run.dir={run_dir}")
    assert res.returncode == 1, res
    assert f"cannot write {run_dir / 'model.npz'}" in res.stderr, res
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]
    assert stat.S_IMODE((run_dir / "config.yaml").stat().st_mode) == 0o666 & ~files.umask()
