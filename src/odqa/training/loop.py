"""The training loop shared by the reader and masked-LM trainers, on `accelerate`.

What it owns: an epoch's batches (from `odqa.training.batches`: length-grouped, shuffled, the
curriculum's order, each process's share), AdamW with linear warm-up/decay,
gradient accumulation and mixed precision (through accelerate; under bf16 on a CPU, the attention
kernel that trains faster there: `odqa.training.attention`), a progress bar, periodic
checkpoints written atomically (a run killed half-way keeps the last good one), resuming from
that checkpoint at the exact batch, and an evaluation hook after each epoch that keeps the best.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import Field

from odqa.errors import OdqaError
from odqa.io.atomic import atomic_dir, atomic_write_text
from odqa.models.loading import cpu_computes_bf16
from odqa.settings import Settings
from odqa.training.attention import TrainingAttention
from odqa.training.batches import BatchList, epoch_batches, item_difficulty, shard_batches
from odqa.training.curriculum import difficulty_digest
from odqa.training.freezing import freeze_lower_layers, freeze_word_embeddings

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint-last"
STATE_FILE = "trainer_state.json"


class LoopSettings(Settings):
    """Optimisation settings every trainer shares; the reader and masked-LM configs extend it."""

    what = "training config"

    epochs: float = 2.0
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_steps: int | None = None  # optimizer steps; overrides epochs
    max_minutes: float | None = None  # stop (after a checkpoint) when the wall clock runs out
    save_steps: int = 500  # optimizer steps between checkpoints (and one at every epoch end)
    seed: int = 42
    mixed_precision: str = "auto"  # auto: bf16 on GPUs that have it, else fp16 on GPU, none on CPU
    group_by_length: bool = True
    freeze_embeddings: bool = (
        False  # keep the word-embedding matrix fixed (most of a multilingual model; AdamW over it dominates a CPU step)
    )
    # keep all embeddings and the lowest N encoder layers fixed: no backward pass below layer N
    freeze_layers: int = Field(default=0, ge=0)
    # easy items first (odqa.training.curriculum): "length", or a difficulty file from `odqa difficulty`
    curriculum: str | None = None
    curriculum_epochs: float = 1.0  # epochs trained in curriculum order (a fraction: the last epoch's first part)
    curriculum_buckets: int = 10  # difficulty buckets, trained easiest first


def sample_examples(examples: list, limit: int | None, seed: int) -> list:
    """A seeded random sample of `limit` examples (all of them when `limit` is None or larger)."""
    if limit is None or limit >= len(examples):
        return examples
    import random

    return random.Random(seed).sample(examples, limit)


def save_into(folder: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` fills a temporary sibling, then each file moves into `folder` by an atomic
    rename; odqa's own settings files (odqa_*.json) move last, marking a complete save."""
    import os
    import shutil
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".best.", dir=folder))
    try:
        write(tmp)
        names = sorted(p.name for p in tmp.iterdir())
        names.sort(key=lambda name: name.startswith("odqa_") and name.endswith(".json"))
        for name in names:
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def seed_everything(seed: int) -> None:
    """Python, numpy and torch generators: call before a model's new layers are initialised, so
    the same seed gives the same run."""
    from accelerate.utils import set_seed

    set_seed(seed)


PRECISIONS = ("auto", "no", "fp16", "bf16")


def resolve_precision(choice: str) -> str:
    """The precision accelerate trains in. `auto`: bf16 on GPUs that have it, else fp16 on a GPU,
    fp32 on a CPU. fp16 needs a GPU (accelerate would silently train in fp32 on a CPU), so it is
    refused there; bf16 on a CPU without bf16 instructions is allowed, with a warning."""
    import torch

    if choice not in PRECISIONS:
        raise OdqaError(f"unknown mixed precision {choice!r}; choose from {', '.join(PRECISIONS)}")
    gpu = torch.cuda.is_available()
    if choice == "auto":
        if not gpu:
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if choice == "fp16" and not gpu:
        raise OdqaError("mixed precision fp16 needs a GPU; on a CPU use bf16 (fast with AVX512-BF16 or AMX) or no")
    if choice == "bf16" and not gpu and not cpu_computes_bf16():
        log.warning("this CPU has no bf16 instructions (AVX512-BF16 or AMX): bf16 autocast will be slower than fp32")
    return choice


# settings a resumed run may change: they stop a run, they do not shape it
_STOPPING = ("max_minutes", "max_steps", "epochs", "save_steps")


def check_replicas_agree(model, accelerator) -> None:
    """With several processes, every copy of the model must hold the same weights after training
    (their gradients were averaged at every step); a trainer that bypassed the synchronisation makes
    them drift apart. Compares per-tensor sums across processes and refuses a drift."""
    import torch

    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(accelerator.device)
    everyone = accelerator.gather(sums[None]).view(accelerator.num_processes, -1)
    drift = float((everyone - everyone[0]).abs().max())
    if drift > 1e-6 * (1.0 + float(everyone[0].abs().max())):
        raise OdqaError(
            f"the {accelerator.num_processes} processes' model copies differ after training (largest difference "
            f"{drift:.3g}): the trainer's gradients were not synchronised; this is a bug in odqa, please report it"
        )
    log.info("the %d processes' model copies agree", accelerator.num_processes)


def close_processes(wait: bool = True) -> None:
    """End a multi-process run cleanly: wait for every process (unless this one failed: the others
    may never arrive), then destroy the process group.

    A process that exits with the group still open can abort in gloo's threads at interpreter
    shutdown ("terminate called without an active exception"), failing a run that trained well.
    Does nothing when torch was never imported or no group is open (a one-process run)."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    if wait:
        dist.barrier()
    dist.destroy_process_group()


def _resumable(settings: LoopSettings) -> dict:
    data = settings.to_dict()
    return json.loads(json.dumps({k: v for k, v in data.items() if k not in _STOPPING}, default=str))


def _changed_settings(saved: dict | None, run: dict, settings: LoopSettings) -> list[str]:
    """The settings a checkpoint's run differs in; a setting the checkpoint predates counts as
    its default (so adding an option to a trainer does not orphan older runs)."""
    if saved is None:
        return []
    defaults = {}
    for name, field in type(settings).model_fields.items():
        if not field.is_required():
            defaults[name] = field.get_default(call_default_factory=True)
    defaults = json.loads(json.dumps(defaults, default=str))
    old = saved["settings"] | {"items": saved["items"], "difficulty": saved.get("difficulty")}
    new = run["settings"] | {"items": run["items"], "difficulty": run.get("difficulty")}
    return sorted(k for k in old.keys() | new.keys() if old.get(k, defaults.get(k)) != new.get(k, defaults.get(k)))


def train(
    model,
    lengths: np.ndarray,
    collate: Callable[[np.ndarray], dict],
    settings: LoopSettings,
    out: Path,
    evaluate: Callable[[object], dict] | None = None,
    score_key: str | None = None,
    save_best: Callable[[object, dict], None] | None = None,
    resume: bool = True,
    quiet: bool = False,
    step: Callable[[object, dict, object], object] | None = None,
    unused_parameters: bool = False,
    difficulty: np.ndarray | None = None,
) -> dict:
    """Train `model` on items of the given `lengths`, `collate(indices) -> tensors dict` (with
    labels). After each epoch: `evaluate(model) -> metrics`; when `metrics[score_key]` improves
    (or there is no evaluation), `save_best(model, metrics)`. `step(model, batch, accelerator)`
    replaces forward + backward when a trainer needs its own (gradient caching); it returns the
    loss. `unused_parameters`: the model has weights the loss does not reach (e.g. a pooler the
    bi-encoder never uses), which several processes must be told about. `difficulty` (one per item,
    lower = easier) orders the first epochs when `settings.curriculum` is set (its `length` needs
    none: the lengths are the difficulty). Returns the trainer state."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs, send_to_device, set_seed
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    from odqa.progress import PlainProgress, progress

    if len(lengths) == 0:
        raise OdqaError("no training examples")
    set_seed(settings.seed)
    # accelerate keeps one precision per process: a second training in the same process (a notebook,
    # a benchmark) may choose another one (the process group, in PartialState, stays)
    AcceleratorState._reset_state()
    precision = resolve_precision(settings.mixed_precision)
    accelerator = Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=settings.grad_accum,
        # several processes without a GPU (torchrun on CPUs): accelerate runs them as one job over
        # gloo only when told to use the CPU; otherwise each process would train alone
        cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused_parameters)],
    )
    batches_per_epoch = math.ceil(len(lengths) / settings.batch_size)
    steps_per_epoch = max(1, batches_per_epoch // settings.grad_accum // accelerator.num_processes)
    total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * steps_per_epoch))
    epochs = math.ceil(total_steps / steps_per_epoch)

    if settings.freeze_embeddings:
        freeze_word_embeddings(model)
    if settings.freeze_layers:
        freeze_lower_layers(model, settings.freeze_layers)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [
        {"params": [p for n, p in trainable if not n.endswith(no_decay)], "weight_decay": settings.weight_decay},
        {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(params, lr=settings.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    attention = TrainingAttention(model, enabled=precision == "bf16" and accelerator.device.type == "cpu")

    out.mkdir(parents=True, exist_ok=True)
    difficulty = item_difficulty(settings, lengths, difficulty)
    run = {"settings": _resumable(settings), "items": len(lengths), "difficulty": difficulty_digest(difficulty)}
    state = {
        "epoch": 0,
        "batch_in_epoch": 0,
        "step": 0,
        "best": None,
        "history": [],
        "total_steps": total_steps,
        "run": run,
    }
    checkpoint = out / CHECKPOINT
    if resume and (checkpoint / STATE_FILE).exists():
        saved = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        changed = _changed_settings(saved.get("run"), run, settings)
        if changed:
            raise OdqaError(
                f"{checkpoint} belongs to a run with other settings or data (changed: {', '.join(changed)}); "
                f"continue it with the same settings, or start over (--fresh, or another --out)"
            )
        accelerator.load_state(str(checkpoint))
        state = saved | {"run": run}
        log.info("resuming from %s at epoch %d, step %d", checkpoint, state["epoch"], state["step"])

    def save_checkpoint(segment: dict | None = None) -> None:
        """Save the run; `segment` is the time and items trained since the last history record, so a
        run killed after this checkpoint still counts them when it resumes."""
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            with atomic_dir(checkpoint) as tmp:
                accelerator.save_state(str(tmp))
                saved = state | {"segment": segment} if segment else state
                (tmp / STATE_FILE).write_text(json.dumps(saved, indent=2), encoding="utf-8")

    started = time.monotonic()
    out_of_time = False
    bar = progress(
        total=total_steps, desc="training", unit="step", quiet=quiet or not accelerator.is_main_process, plain=False
    )
    bar.update(state["step"])
    # A log file or CI gets a plain line every minute instead of a bar it cannot show.
    plain = PlainProgress(
        total_steps, "training", enabled=bar.disable and not quiet and accelerator.is_main_process, start=state["step"]
    )
    trained = 0  # items this process has trained (its rate: not what a resumed epoch had before, nor per epoch)
    while state["epoch"] < epochs and state["step"] < total_steps and not out_of_time:
        epoch = state["epoch"]
        batches = epoch_batches(lengths, settings, epoch, difficulty)
        done = state["batch_in_epoch"] * accelerator.num_processes  # resuming mid-epoch: skip what was trained
        mine = shard_batches(batches[done:], accelerator.process_index, accelerator.num_processes)
        loader = DataLoader(BatchList(mine, collate), batch_size=None, shuffle=False)
        model.train()
        attention.train()
        # a resumed run that was killed after a checkpoint: the time and items it had trained since
        # its last history record go into this segment's record
        before = state.pop("segment", None) or {"seconds": 0.0, "items": 0}
        seen, tick, loss_sum, loss_n, completed = before["items"], time.monotonic() - before["seconds"], 0.0, 0, True
        for batch in loader:
            batch = send_to_device(batch, accelerator.device)
            with accelerator.accumulate(model):
                if step is None:
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                else:
                    loss = step(model, batch, accelerator)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["batch_in_epoch"] += 1
            items = len(next(iter(batch.values())))
            seen, trained = seen + items, trained + items
            loss_sum, loss_n = loss_sum + float(loss.detach()), loss_n + 1
            if accelerator.sync_gradients:
                state["step"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / loss_n:.3f}", epoch=epoch)
                plain.update(state["step"], loss=loss_sum / loss_n, epoch=epoch, items=trained)
                if state["step"] % settings.save_steps == 0:
                    save_checkpoint({"seconds": time.monotonic() - tick, "items": seen})
                if settings.max_minutes and (time.monotonic() - started) / 60 >= settings.max_minutes:
                    out_of_time = True
                if state["step"] >= total_steps or out_of_time:
                    completed = False
                    break
        elapsed = time.monotonic() - tick
        attention.restore()  # evaluation and saving on the encoders' own attention
        record = {
            "epoch": epoch,
            "step": state["step"],
            "loss": loss_sum / max(1, loss_n),
            "examples_per_s": seen / elapsed if elapsed > 0 else 0.0,
            "seconds": elapsed,
            "items": seen,
        }
        if completed:
            state["epoch"], state["batch_in_epoch"] = epoch + 1, 0
        if evaluate is not None:
            model.eval()
            record["eval"] = evaluate(accelerator.unwrap_model(model))
        state["history"].append(record)
        score = record.get("eval", {}).get(score_key) if score_key else None
        last = out_of_time or state["step"] >= total_steps
        if evaluate is None:
            improved = last  # nothing to compare: the model at the end is the one kept
        else:
            improved = score is None or state["best"] is None or score > state["best"]
        if improved:
            state["best"] = score
        if save_best is not None and improved and accelerator.is_main_process:
            save_best(accelerator.unwrap_model(model), {**record, "best": True})
        save_checkpoint()
    bar.close()
    if accelerator.num_processes > 1:
        check_replicas_agree(model, accelerator)
    state.pop("segment", None)  # a resumed run with nothing left to train
    state["finished"] = state["step"] >= total_steps
    atomic_write_text(out / STATE_FILE, json.dumps(state, indent=2))
    if accelerator.is_main_process:
        from odqa.runs import log_metrics

        last = state["history"][-1] if state["history"] else {}
        log_metrics({"training": {"steps": state["step"], "finished": state["finished"], "best": state["best"]} | last})
    return state
