"""Multi-process training as a cluster starts it: `torchrun --standalone --nproc-per-node 2` for
real, and two processes with the variables `srun` gives its tasks (gloo, CPU). Every process
runs the whole `drgrader train` command on its own, so they must agree on one run folder, build
the cache once, draw disjoint shards in a new order each epoch, and leave the bundle, metrics
and report to rank 0."""

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import tiny_config

from drgrader.config import save_config

pytestmark = pytest.mark.slow

TIMEOUT_S = 400
LAUNCH_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
               "TORCHELASTIC_RUN_ID", "DRGRADER_RUN_DIR")


def clean_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS and not k.startswith("SLURM_")}
    env.update(PYTHONUNBUFFERED="1", DRGRADER_THREADS="1", OMP_NUM_THREADS="1",
               DRGRADER_SAMPLE_LOG=str(tmp_path / "samples"), DRGRADER_RENDEZVOUS_TIMEOUT="120")
    return env


def config_file(synth_dir: Path, tmp_path: Path) -> Path:
    """2 epochs of the tiny config on 2 CPU processes; its own cache folder, so that it is built here."""
    cfg = tiny_config(synth_dir, **{
        "name": "tiny", "out_dir": str(tmp_path / "runs"), "data.cache_dir": str(tmp_path / "cache"),
        "train.epochs": 2, "train.accelerator": "cpu", "train.devices": 2, "train.strategy": "ddp",
        "eval.bootstrap": 0,
    })
    save_config(cfg, tmp_path / "tiny.yaml")
    return tmp_path / "tiny.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_run(tmp_path: Path, outputs: dict[int, str]) -> None:
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["tiny"], "one run folder, no stray tiny-2, no rendezvous left"
    run = runs / "tiny"
    for name in ("config.yaml", "split.csv", "train.log", "metrics.json", "report.html", "bundle/bundle.json",
                 "bundle/model.safetensors", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    training = json.loads((run / "metrics.json").read_text())["training"]
    assert training["world_size"] == 2 and training["strategy"] == "DDPStrategy"

    # The cache: built by one process; the other waited for it and found every image done.
    builds = [line for out in outputs.values() for line in out.splitlines() if "caching " in line]
    assert len(builds) == 1, builds
    # Rank 0 alone evaluates and writes bundle, metrics and report; rank 1 only trains.
    assert "report: " in outputs[0]
    assert "report: " not in outputs[1]
    assert "rank 1: run folder" in outputs[1]  # it learnt the folder from rank 0

    # Each epoch: two disjoint halves of the training set (DistributedSampler pads an odd set
    # with one repeated draw), each rank's half in a new order the next epoch.
    draws = {}
    for file in (tmp_path / "samples").glob("rank*-epoch*.json"):
        record = json.loads(file.read_text())
        draws[record["rank"], record["epoch"]] = record
    assert sorted(draws) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for epoch in (0, 1):
        first, second = draws[0, epoch]["indices"], draws[1, epoch]["indices"]
        size = draws[0, epoch]["of"]
        assert len(first) == len(second) == (size + 1) // 2
        assert set(first) | set(second) == set(range(size))
        assert len(set(first) & set(second)) == size % 2
    for rank in (0, 1):
        assert draws[rank, 0]["indices"] != draws[rank, 1]["indices"]
        assert set(draws[rank, 0]["indices"]) != set(draws[rank, 1]["indices"])  # a new shard, not just a new order


def test_torchrun_two_processes(synth_dir, tmp_path):
    cfg = config_file(synth_dir, tmp_path)
    logs = tmp_path / "torchrun-logs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--log-dir", str(logs), "--redirects", "3",  # each rank's stdout and stderr in its own file
           "-m", "drgrader", "--progress", "log", "train", str(cfg)]
    res = subprocess.run(cmd, cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=TIMEOUT_S)
    outputs = {}
    for rank in (0, 1):
        files = [f for name in ("stdout.log", "stderr.log") for f in logs.rglob(name) if f.parent.name == str(rank)]
        outputs[rank] = "".join(f.read_text(errors="replace") for f in files)
    assert res.returncode == 0, (res.stderr[-2000:], outputs.get(0, "")[-3000:], outputs.get(1, "")[-3000:])
    check_run(tmp_path, outputs)


def test_slurm_two_tasks(synth_dir, tmp_path):
    """What `srun --ntasks-per-node 2 drgrader train ...` gives each task, set by hand."""
    cfg = config_file(synth_dir, tmp_path)
    job = str(700000 + uuid.uuid4().int % 100000)
    procs = []
    for rank in (0, 1):
        env = clean_env(tmp_path)
        env.update(SLURM_JOB_ID=job, SLURM_STEP_ID="0", SLURM_JOB_NAME="drgrader-test", SLURM_NTASKS="2",
                   SLURM_NTASKS_PER_NODE="2", SLURM_NNODES="1", SLURM_NODEID="0", SLURM_NODELIST="localhost",
                   SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), MASTER_ADDR="127.0.0.1")
        if rank == 0:
            port = str(free_port())
        env["MASTER_PORT"] = port
        log = open(tmp_path / f"rank{rank}.log", "w")
        procs.append((subprocess.Popen([sys.executable, "-m", "drgrader", "--progress", "log", "train", str(cfg)],
                                       cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        codes = [proc.wait(timeout=TIMEOUT_S) for proc, _ in procs]
    finally:
        for proc, log in procs:
            proc.kill()
            log.close()
    outputs = {rank: (tmp_path / f"rank{rank}.log").read_text(errors="replace") for rank in (0, 1)}
    assert codes == [0, 0], (outputs[0][-3000:], outputs[1][-3000:])
    check_run(tmp_path, outputs)
