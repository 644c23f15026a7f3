"""Loading and saving transformers models, once for every component (reader, reranker, dense
encoder, trainers): the device, the folder checks (safetensors only, never remote code), and
loading by an Auto class with a one-line error."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from odqa.errors import OdqaError
from odqa.models.tokenizer import check_hub_model, looks_local

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
POOLER = ("pooler.",)  # BERT's pooler: no odqa encoder or span head runs it, so its weights go unmentioned


def check_model_dir(path: str | Path) -> None:
    """A local model folder must hold a config and safetensors weights (hub ids pass through)."""
    local = Path(path)
    if not local.exists():
        if looks_local(path):
            raise OdqaError(f"model folder not found: {path}")
        return  # a hub id such as 'klue/roberta-base'
    if not local.is_dir():
        raise OdqaError(f"expected a model folder, got a file: {local}")
    if not (local / "config.json").exists():
        raise OdqaError(f"{local}: no config.json; is this a Hugging Face model folder?")
    if not any((local / name).exists() for name in WEIGHT_FILES):
        pickled = [p.name for p in local.glob("*.bin")]
        hint = (
            f" (found {', '.join(pickled)}: convert it to safetensors; odqa does not load pickled weights)"
            if pickled
            else ""
        )
        raise OdqaError(f"{local}: no model.safetensors weights{hint}")


def pick_device(device: str | None = None):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def _no_bars():
    """transformers' own tqdm bars off for the duration (restored after)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def save_pretrained(model, path: str | Path) -> None:
    """`model.save_pretrained(path)` as safetensors, without the "Writing model shards" bar that
    transformers prints at every save (once per checkpoint in a training log)."""
    with _no_bars():
        model.save_pretrained(str(path), safe_serialization=True)


def load_pretrained(auto_class, path: str | Path, what: str, unused_parts: tuple[str, ...] = (), **kwargs):
    """`auto_class.from_pretrained(path)` from safetensors, never running the repository's code;
    a folder that is not a `what` (or a hub id that cannot be fetched) is named in one line.
    transformers' multi-line LOAD REPORT (raw colour codes in a log) is replaced by one line saying
    which weights were new or unused, and that a new head is expected before fine-tuning; weights
    under `unused_parts` (e.g. a pooler the caller never runs) are not worth that line."""
    import logging

    check_model_dir(path)
    if not Path(path).exists():
        check_hub_model(str(path))
    wants_info = kwargs.pop("output_loading_info", False)
    # transformers 5.2x checks a tensor-parallel plan whenever the loading logger is quieter than
    # WARNING and lists every unsharded layer of a model that was never meant to be sharded: quiet both
    loggers = [logging.getLogger(f"transformers.{name}") for name in ("modeling_utils", "distributed.tensor_parallel")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with _no_bars():  # a "Loading weights" bar per model, in every log
            model, info = auto_class.from_pretrained(
                str(path), use_safetensors=True, trust_remote_code=False, output_loading_info=True, **kwargs
            )
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OdqaError(f"cannot load {path} as {what}: {first}") from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    note = loading_note(path, type(model).__name__, info, unused_parts)
    if note and os.environ.get("ODQA_QUIET") != "1":
        print(note, file=sys.stderr, flush=True)
    return (model, info) if wants_info else model


def load_encoder(path: str | Path):
    """The bare encoder of a folder, without the pooler a task head does not use (for the models
    that have one): what the span heads and the relation heads sit on."""
    from transformers import AutoModel

    try:
        return load_pretrained(AutoModel, path, "an encoder", POOLER, add_pooling_layer=False)
    except TypeError:  # an encoder class without a pooler option (ELECTRA, DistilBERT)
        return load_pretrained(AutoModel, path, "an encoder", POOLER)


def loading_note(path, model_class: str, info: dict, unused_parts: tuple[str, ...] = ()) -> str | None:
    """One line on weights a load initialised (missing from `path`) or left unused, or None."""

    def noted(keys) -> list[str]:
        return sorted(k for k in keys or () if not any(part in k for part in unused_parts))

    missing, unused = noted(info.get("missing_keys")), noted(info.get("unexpected_keys"))
    if not missing and not unused:
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} new weights initialised (e.g. {missing[0]}: expected for a head not yet trained)")
    if unused:
        parts.append(f"{len(unused)} weights of the checkpoint unused (e.g. {unused[0]})")
    return f"note: {model_class} from {path}: " + "; ".join(parts)


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast trains
    and predicts faster than fp32 (~1.6x on the AMD EPYC of benchmarks/korean_model.py); elsewhere it
    is slower."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and check() for check in checks)


PREDICTION_PRECISIONS = ("fp32", "bf16")  # what an encoder or reranker can predict in (to_bf16 for bf16)


def check_prediction_precision(precision: str, what: str) -> None:
    """Refuse a precision a model cannot predict in, naming the model kind (`what`)."""
    if precision not in PREDICTION_PRECISIONS:
        raise OdqaError(f"unknown {what} precision {precision!r}; choose {' or '.join(PREDICTION_PRECISIONS)}")


def to_bf16(model, device) -> object:
    """The model with its floating-point weights in bfloat16, in eval mode, for prediction: on a CPU
    with AVX512-BF16 or AMX (and on GPUs) faster than fp32 at nearly the same outputs; other CPUs
    compute bf16 slowly, so it warns there. Callers turn the outputs back to float32."""
    import torch

    if torch.device(device).type == "cpu" and not cpu_computes_bf16():
        log.warning("this CPU has no bf16 instructions (AVX512-BF16 or AMX): bf16 prediction will be slower")
    return model.to(dtype=torch.bfloat16).eval()


def quantize_int8(model, device) -> object:
    """The model with every `nn.Linear` replaced by a dynamically quantized int8 one (weights int8
    with one scale per output channel, activations quantized per batch): faster on a CPU, at a cost
    in accuracy; `benchmarks/relation.py` measures both. CPU inference only; the model is changed in
    place and returned in eval mode."""
    import warnings

    import torch

    if torch.device(device).type != "cpu":
        raise OdqaError(f"int8 inference runs on the CPU only, not on {device}; drop --int8 or use --device cpu")
    with warnings.catch_warnings():
        # torch.ao's eager quantization warns that it is deprecated in favour of the separate
        # torchao package; it works in the torch this project pins, without another dependency.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        quantized = quantize_dynamic(
            model.eval(), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
    return quantized
