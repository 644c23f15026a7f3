"""The Hugging Face reference for extractive QA, run in its own virtual environment with
transformers 4.57 (the last line that ships the question-answering pipeline; transformers 5
removed it). Not odqa code: it reproduces what users of the HF examples run.

    python hf_qa.py pipeline  --model DIR --examples E.json --out P.json [--max-length 256 --stride 64]
    python hf_qa.py reference --model DIR --examples E.json --out P.json   # run_qa features + utils_qa post-processing
    python hf_qa.py trainer   --model DIR --train T.json --out R.json --steps N   # run_qa's Trainer recipe, throughput

`reference` follows examples/pytorch/question-answering: features padded to max_length,
`Trainer.predict`-style batched forward, then `postprocess_qa_predictions` (the n-best start
indexes × n-best end indexes shortlist, score = start logit + end logit)."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def load(model_dir):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    return AutoModelForQuestionAnswering.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)


def run_pipeline(args, examples):
    from transformers import pipeline

    model, tokenizer = load(args.model)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device=-1)
    start = time.perf_counter()
    outputs = qa(
        question=[e["question"] for e in examples],
        context=[e["context"] for e in examples],
        max_seq_len=args.max_length,
        doc_stride=args.stride,
        max_answer_len=args.max_answer_tokens,
        batch_size=args.batch_size,
    )
    seconds = time.perf_counter() - start
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return {"predictions": {e["id"]: o["answer"] for e, o in zip(examples, outputs)}, "seconds": seconds}


def prepare_validation_features(tokenizer, examples, max_length, stride):
    encoded = tokenizer(
        [e["question"].lstrip() for e in examples],
        [e["context"] for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    features = []
    for i, sample in enumerate(encoded["overflow_to_sample_mapping"]):
        sequence_ids = encoded.sequence_ids(i)
        offsets = [o if sequence_ids[k] == 1 else None for k, o in enumerate(encoded["offset_mapping"][i])]
        features.append({"example": sample, "offsets": offsets})
    return encoded, features


def postprocess_qa_predictions(examples, features, all_start, all_end, n_best_size=20, max_answer_length=30):
    by_example = {}
    for f, feature in enumerate(features):
        by_example.setdefault(feature["example"], []).append(f)
    predictions = {}
    for e, example in enumerate(examples):
        candidates = []
        for f in by_example.get(e, []):
            start_logits, end_logits, offsets = all_start[f], all_end[f], features[f]["offsets"]
            start_indexes = np.argsort(start_logits)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(end_logits)[-1 : -n_best_size - 1 : -1].tolist()
            for s in start_indexes:
                for t in end_indexes:
                    if s >= len(offsets) or t >= len(offsets) or offsets[s] is None or offsets[t] is None:
                        continue
                    if t < s or t - s + 1 > max_answer_length:
                        continue
                    candidates.append((start_logits[s] + end_logits[t], offsets[s][0], offsets[t][1]))
        if candidates:
            _, a, b = max(candidates, key=lambda c: c[0])
            predictions[example["id"]] = example["context"][a:b]
        else:
            predictions[example["id"]] = ""
    return predictions


def run_reference(args, examples):
    model, tokenizer = load(args.model)
    start = time.perf_counter()
    encoded, features = prepare_validation_features(tokenizer, examples, args.max_length, args.stride)
    names = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded]
    tensors = {k: torch.tensor(encoded[k]) for k in names}
    starts, ends = [], []
    with torch.inference_mode():
        for lo in range(0, len(features), args.batch_size):
            out = model(**{k: v[lo : lo + args.batch_size] for k, v in tensors.items()})
            starts.append(out.start_logits.numpy())
            ends.append(out.end_logits.numpy())
    predictions = postprocess_qa_predictions(
        examples, features, np.concatenate(starts), np.concatenate(ends), max_answer_length=args.max_answer_tokens
    )
    return {"predictions": predictions, "seconds": time.perf_counter() - start, "windows": len(features)}


def run_trainer(args, examples):
    """run_qa's training recipe (prepare_train_features padded to max_length + Trainer), timed."""
    import tempfile

    from transformers import Trainer, TrainingArguments, default_data_collator

    model, tokenizer = load(args.model)
    encoded = tokenizer(
        [e["question"].lstrip() for e in examples],
        [e["context"] for e in examples],
        truncation="only_second",
        max_length=args.max_length,
        stride=args.stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    rows = []
    for i, sample in enumerate(encoded["overflow_to_sample_mapping"]):
        example, offsets, sequence_ids = examples[sample], encoded["offset_mapping"][i], encoded.sequence_ids(i)
        a, b = example["answer_start"], example["answer_start"] + len(example["answer_text"])
        s = sequence_ids.index(1)
        t = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
        if not (offsets[s][0] <= a and offsets[t][1] >= b):
            start_position = end_position = 0
        else:
            while s < len(offsets) and offsets[s][0] <= a:
                s += 1
            while offsets[t][1] >= b:
                t -= 1
            start_position, end_position = s - 1, t + 1
        row = {k: encoded[k][i] for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded}
        row.update(start_positions=start_position, end_positions=end_position)
        rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            max_steps=args.steps,
            warmup_ratio=0.1,
            weight_decay=0.01,
            logging_steps=10**9,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            seed=42,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=rows, data_collator=default_data_collator)
        result = trainer.train()
    return {
        "seconds": result.metrics["train_runtime"],
        "examples_per_s": result.metrics["train_samples_per_second"],
        "steps": args.steps,
        "windows": len(rows),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["pipeline", "reference", "trainer"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--examples", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--max-answer-tokens", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    with open(args.examples, encoding="utf-8") as f:
        examples = json.load(f)
    run = {"pipeline": run_pipeline, "reference": run_reference, "trainer": run_trainer}[args.command]
    result = run(args, examples)
    import transformers

    result["transformers"] = transformers.__version__
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
