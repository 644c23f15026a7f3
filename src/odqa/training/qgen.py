"""Question generation: synthetic (question, answer, context) training examples from passages, with
a sequence-to-sequence generator the user gives (a folder or hub id; odqa ships none and never
needs one).

Answers are chosen first, then asked about (answer-aware generation, as the competition's teams
used it): candidate answers are Kiwi noun phrases holding a proper noun or a number (조선, 1443년,
피타고라스 정리), a seeded sample per context; the generator reads `input_format` filled with the
answer and the context and writes the question. The result is a SQuAD-format file that
`train-reader --train` takes, or that `odqa pseudo-label` can filter (a reader that finds the same
answer is the usual round-trip check)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from odqa.errors import OdqaError

log = logging.getLogger(__name__)

NOUNS = ("NNP", "NNG", "NNB", "SN", "SL", "SH", "MM")  # parts of an answer phrase
ANCHORS = ("NNP", "SN", "SL")  # what makes a phrase worth asking about: a name or a number
MAX_ANSWER_CHARS = 30


@dataclass(frozen=True)
class GenerationConfig:
    per_context: int = 2  # answers asked about per context
    input_format: str = "answer: {answer} context: {context}"
    max_input_tokens: int = 512
    max_question_tokens: int = 64
    num_beams: int = 4
    batch_size: int = 16
    seed: int = 42

    def check(self) -> GenerationConfig:
        if "{answer}" not in self.input_format or "{context}" not in self.input_format:
            raise OdqaError(f"input_format must hold {{answer}} and {{context}}, got {self.input_format!r}")
        if self.per_context < 1:
            raise OdqaError(f"per_context must be ≥ 1, got {self.per_context}")
        return self


def answer_candidates(context: str, kiwi=None) -> list[tuple[int, int]]:
    """Character spans of noun phrases (runs of adjacent noun-like morphemes, or a name and the noun
    one space after it) that hold a proper noun, a number or a foreign word; at most
    `MAX_ANSWER_CHARS` long."""
    if kiwi is None:
        from kiwipiepy import Kiwi

        kiwi = Kiwi()
    spans, run, anchored, previous = [], None, False, ""
    for token in kiwi.tokenize(context):
        start, end = token.start, token.start + token.len
        # one space joins only after a name (피타고라스 정리), not after a counter (제4대 왕)
        joins = run is not None and (start == run[1] or (previous == "NNP" and context[run[1] : start] == " "))
        previous = token.tag
        if token.tag in NOUNS and (joins or run is None):
            run = (run[0], end) if joins else (start, end)
            anchored = anchored or token.tag in ANCHORS
            continue
        if run is not None and anchored and run[1] - run[0] <= MAX_ANSWER_CHARS:
            spans.append(run)
        run, anchored = ((start, end), token.tag in ANCHORS) if token.tag in NOUNS else (None, False)
    if run is not None and anchored and run[1] - run[0] <= MAX_ANSWER_CHARS:
        spans.append(run)
    return list(dict.fromkeys(spans))


def load_generator(path: str, device: str | None = None):
    """A sequence-to-sequence model and its tokenizer (safetensors, no remote code)."""
    from transformers import AutoModelForSeq2SeqLM

    from odqa.models.loading import check_model_dir, load_pretrained, pick_device
    from odqa.models.tokenizer import load_tokenizer

    check_model_dir(path)
    model = load_pretrained(AutoModelForSeq2SeqLM, path, "a question generator (sequence-to-sequence model)")
    return model.to(pick_device(device)).eval(), load_tokenizer(path)


def generate_questions(model, tokenizer, inputs: Sequence[str], config: GenerationConfig) -> list[str]:
    """One question per input text, batched, beam search."""
    import torch

    out = []
    with torch.inference_mode():
        for lo in range(0, len(inputs), config.batch_size):
            batch = tokenizer(
                list(inputs[lo : lo + config.batch_size]),
                truncation=True,
                max_length=config.max_input_tokens,
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            batch.pop("token_type_ids", None)
            ids = model.generate(
                **batch, max_new_tokens=config.max_question_tokens, num_beams=config.num_beams, do_sample=False
            )
            out += [" ".join(text.split()) for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


def synthetic_examples(model, tokenizer, contexts: Sequence[tuple[str, str]], config: GenerationConfig) -> dict:
    """A SQuAD-format file of generated questions over `contexts` ((title, text) pairs); contexts
    without an answer candidate and empty questions are skipped."""
    from kiwipiepy import Kiwi

    config.check()
    kiwi, rng = Kiwi(), random.Random(config.seed)
    asked = []  # (context index, start, end)
    for ci, (_, text) in enumerate(contexts):
        candidates = answer_candidates(text, kiwi)
        for start, end in sorted(rng.sample(candidates, min(config.per_context, len(candidates)))):
            asked.append((ci, start, end))
    if not asked:
        raise OdqaError("no answer candidate (a name or a number) in any context; nothing to ask about")
    inputs = [
        config.input_format.format(answer=contexts[ci][1][start:end], context=contexts[ci][1])
        for ci, start, end in asked
    ]
    questions = generate_questions(model, tokenizer, inputs, config)
    by_context: dict[int, list[dict]] = {}
    for n, ((ci, start, end), question) in enumerate(zip(asked, questions)):
        if question.strip():
            answer = {"text": contexts[ci][1][start:end], "answer_start": start}
            by_context.setdefault(ci, []).append({"id": f"gen-{ci}-{n}", "question": question, "answers": [answer]})
    if not by_context:
        raise OdqaError("the generator wrote only empty questions; nothing written")
    articles = [
        {"title": contexts[ci][0], "paragraphs": [{"context": contexts[ci][1], "qas": qas}]}
        for ci, qas in by_context.items()
    ]
    log.info("%d questions over %d contexts", sum(len(q) for q in by_context.values()), len(by_context))
    return {"version": "odqa-generated-questions", "data": articles}
