"""Every trainer under two processes (torchrun, gloo on CPU): the processes' model copies must
agree after training — the shared loop checks it and fails otherwise — and the bi-encoder's
in-batch negatives span both processes' batches."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

SCRIPT = Path(__file__).with_name("ddp_train.py")


def torchrun_command(logs: Path, *args: str) -> list[str]:
    """Two processes under torchrun, its per-run logs in `logs` (by default it leaves a
    torchelastic_* folder in the system's temporary folder on every run)."""
    launch = ["--standalone", "--nproc_per_node", "2", "--log-dir", str(logs)]
    return [sys.executable, "-m", "torch.distributed.run", *launch, *args]


def torchrun(logs: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ODQA_PROGRESS_SECONDS": "100000"}
    return subprocess.run(torchrun_command(logs, *args), capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["reader", "dense", "dense-cached", "dense-two-encoders", "rerank", "mlm"])
def test_two_processes_keep_one_model(kind, tiny_encoder, korean_qa_file, korean_docs_index, corpus_file, tmp_path):
    from conftest import KLUE_TOKENIZER

    paths = {
        "model": str(tiny_encoder),
        "qa": str(korean_qa_file),
        "index": str(korean_docs_index),
        "corpus": str(corpus_file),
        "tokenizer": str(KLUE_TOKENIZER),
    }
    run = torchrun(tmp_path / "logs", str(SCRIPT), kind, str(tmp_path / kind), json.dumps(paths))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count(f"{kind}: done") == 2


@pytest.mark.slow
def test_in_batch_negatives_are_gathered_across_processes(tmp_path):
    """Two processes with two questions each: the loss over the gathered batch equals the loss one
    process computes over all four, and its gradient (DDP's average × 2 processes) matches too."""
    pytest.importorskip("torch.distributed")
    run = subprocess.run(
        torchrun_command(tmp_path / "logs", "-m", "ddp_gather"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parent,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("gathered loss and gradient match") == 2


def test_a_finished_run_closes_its_process_group(tmp_path):
    """The CLI ends a run under torchrun by closing its process group (left open, gloo can abort
    at exit); without a group there is nothing to close."""
    import torch.distributed as dist

    from odqa.training.loop import close_processes

    close_processes()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    close_processes()
    assert not dist.is_initialized()
