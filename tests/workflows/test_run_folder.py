"""Rank detection and the run folder's rendezvous, without launching processes (the real
launches: tests/training/test_torchrun.py)."""

import json
import os

import pytest

from drgrader.config import ExperimentConfig
from drgrader.runtime import Ranks, process_ranks
from drgrader.workflows.run_folder import RUN_DIR_ENV, WAIT_ENV, forget_rendezvous, new_run_dir, rendezvous_file


def test_ranks_from_each_launcher():
    assert process_ranks({}) == Ranks()
    torchrun = {"TORCHELASTIC_RUN_ID": "abc", "RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "MASTER_PORT": "29400",
                "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_ID": "77"}  # srun torchrun: torchrun's ranks
    assert process_ranks(torchrun) == Ranks(3, 1, 4, "torchrun", "torchrun-abc-r0-29400-77")
    slurm = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "77", "SLURM_STEP_ID": "2"}
    assert process_ranks(slurm) == Ranks(5, 1, 8, "slurm", "slurm-77-2")
    assert process_ranks({**slurm, "SLURM_JOB_NAME": "interactive"}) == Ranks()  # an salloc shell is one process
    lightning_worker = {"LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_PORT": "5000"}  # what Lightning's launcher sets
    assert process_ranks(lightning_worker) == Ranks(1, 1, 2, "env", "env-5000")


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    return ExperimentConfig.model_validate({"name": "tiny", "out_dir": str(tmp_path / "runs")})


def test_rank0_chooses_and_the_other_ranks_of_its_launch_follow(cfg, tmp_path):
    launch = [Ranks(rank, rank, 2, "slurm", "slurm-1-0") for rank in (0, 1)]
    run = new_run_dir(cfg, None, launch[0])
    (run / "config.yaml").write_text("rank 0 was here\n")
    assert new_run_dir(cfg, None, launch[1]) == run.resolve()  # not a stray tiny-2
    # The next launch (another job) gets a fresh folder, its ranks alike.
    second = [Ranks(rank, rank, 2, "slurm", "slurm-2-0") for rank in (0, 1)]
    other = new_run_dir(cfg, None, second[0])
    assert other.name == "tiny-2" and new_run_dir(cfg, None, second[1]) == other.resolve()
    # Once training runs on every rank, rank 0 removes the rendezvous files.
    forget_rendezvous(run, cfg, None, launch[0])
    forget_rendezvous(other, cfg, None, second[0])
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny", "tiny-2"]


def test_a_stale_rendezvous_is_not_taken(cfg, tmp_path, monkeypatch):
    """A crashed launch that reused the id (torchrun --rdzv-id 1 twice) left its file long ago:
    rank 1 waits for the new one, and says what it waits for."""
    rank1 = Ranks(1, 1, 2, "torchrun", "torchrun-1-r0-29500")
    file = rendezvous_file(tmp_path / "runs" / "tiny", rank1)
    file.parent.mkdir(parents=True)
    (tmp_path / "runs" / "tiny").mkdir()
    file.write_text(json.dumps({"run_dir": str(tmp_path / "runs" / "tiny"), "launch": rank1.launch_id, "written": 1.0}))
    monkeypatch.setenv(WAIT_ENV, "0.5")
    with pytest.raises(TimeoutError, match="for rank 0 to choose the run folder"):
        new_run_dir(cfg, None, rank1)


def test_lightning_workers_take_the_folder_from_the_environment(cfg, tmp_path, monkeypatch):
    run = new_run_dir(cfg, None, Ranks())  # the launching process: rank 0 before the launch
    assert os.environ[RUN_DIR_ENV] == str(run.resolve())
    (run / "config.yaml").write_text("x\n")
    assert new_run_dir(cfg, None, Ranks(1, 1, 2, "env", "env-5000")) == run.resolve()
    assert not (tmp_path / "runs" / ".drgrader-launch").exists()


def test_an_out_folder_that_holds_a_run_is_said_to_be_left_for_a_numbered_one(cfg, tmp_path, caplog):
    """Probe 43 CG6: `train --out runA` over an earlier run wrote runA-2 with an INFO line only; a
    script's next step (predict --bundle runA/bundle) graded with the old model."""
    import logging

    out = tmp_path / "runA"
    (out / "bundle").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        run = new_run_dir(cfg, out, Ranks())
    assert run.name == "runA-2"
    assert f"--out {out} holds files already (an earlier run?): this run is written to {run} instead" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert new_run_dir(cfg, None, Ranks()).name == "tiny"  # the default folder: numbered without a word, as documented
    assert not caplog.records
