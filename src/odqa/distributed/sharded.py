"""Sharded indexes on Ray: what the sparse and dense builds share (the Ray connection, shard
boundaries between documents) and the search — one Ray actor per shard (`ShardServer`), each
query batch fanned out to every shard and their top k merged exactly by (score, passage id)
(`ShardedIndex`, the retriever contract). A sharded sparse index is built by
`odqa.distributed.sparse_shards`, a dense one by `odqa.distributed.dense_shards`.

A sharded index needs its folder where every node can read it (one machine, or a shared file
system). Actors restart when their node dies (on any node with room) and calls to them are
retried; a call that gets no answer within `timeout` seconds fails with a clear error."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.retrieval.base import arrays_to_hits, check_k, check_queries
from odqa.types import Hit, Passage

FORMAT = "odqa.sharded"
FORMAT_VERSION = 1
DEFAULT_TIMEOUT_S = 300.0


def _ray():
    try:
        import ray
    except ImportError:
        raise OdqaError("sharded indexes run on Ray: pip install 'odqa[ray]'") from None
    return ray


def connect(address: str | None = None):
    """Ray, connected: to the cluster at `address` (or $RAY_ADDRESS), to the one this process has
    already joined, or else to a local cluster started here on this machine's cores."""
    ray = _ray()
    if not ray.is_initialized():
        # a local cluster's token is made and kept by Ray itself: its notice is nothing a user acts on
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        try:
            ray.init(
                address=address or os.environ.get("RAY_ADDRESS"),
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise OdqaError(
                f"cannot reach the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {e}"
            ) from None
    return ray


# --- shards between documents ---------------------------------------------------------------


def document_numbers(passages: Sequence[Passage], numbers: dict[str, int] | None = None) -> np.ndarray:
    """Each passage's document, numbered by first appearance (as the embedded index numbers them);
    `numbers` carries the numbering on from earlier passages."""
    numbers = {} if numbers is None else numbers
    return np.fromiter(
        (numbers.setdefault(p.sources[0].doc_id, len(numbers)) for p in passages), dtype=np.int64, count=len(passages)
    )


def shard_bounds(passage_docs: np.ndarray, shards: int) -> np.ndarray:
    """Passage offsets [0, ..., n] of `shards` contiguous runs, cut only where a document starts,
    each cut at the document start nearest an even split."""
    n = len(passage_docs)
    if shards < 1:
        raise OdqaError(f"--shards must be at least 1, got {shards}")
    if len(passage_docs) and np.any(np.diff(passage_docs) < 0):
        raise OdqaError("the passages are not in document order, so they cannot be cut into shards by document")
    documents = int(passage_docs.max()) + 1 if n else 0
    if shards > documents:
        raise OdqaError(f"{shards} shards need at least {shards} documents; the corpus has {documents}")
    starts = np.nonzero(np.diff(passage_docs))[0] + 1  # where each document after the first begins
    cuts = [0]
    for i in range(1, shards):
        ideal = i * n / shards
        at = np.clip(np.searchsorted(starts, ideal), 1, len(starts) - 1) if len(starts) > 1 else 0
        near = starts[max(at - 1, 0) : at + 1]
        near = near[near > cuts[-1]]
        if not len(near):
            raise OdqaError(f"cannot cut {documents} documents into {shards} non-empty shards")
        cuts.append(int(near[np.argmin(np.abs(near - ideal))]))
    cuts.append(n)
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise OdqaError(f"cannot cut {documents} documents into {shards} non-empty shards")
    return np.asarray(cuts, dtype=np.int64)


# --- searching --------------------------------------------------------------------------------


def worker_nodes(ray) -> list[str]:
    """The ids of the live nodes that offer CPUs (a head started with none only schedules), or of
    every live node when none does."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    working = [n for n in alive if n.get("Resources", {}).get("CPU", 0) > 0] or alive
    return [n["NodeID"] for n in working]


class ShardServer:
    """One shard in a Ray actor: its index memory-mapped, searched with local passage ids — a
    sparse shard by query texts, a dense one by query vectors (it loads no encoder)."""

    def __init__(self, folder: str, kind: str = "sparse"):
        if kind == "dense":
            from odqa.retrieval.dense import DenseIndex

            self.index = DenseIndex.load(folder, with_encoder=False)
        else:
            from odqa.retrieval.sparse import SparseIndex

            self.index = SparseIndex.load(folder).warm_up()

    def search_arrays(self, queries: list[str], k: int):
        return self.index.search_arrays(queries, k)

    def search_vectors(self, vectors: np.ndarray, k: int):
        return self.index.search_vectors(vectors, k)

    def passages(self, ids: list[int]) -> list[Passage]:
        return [self.index.passages[i] for i in ids]

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def stats(self) -> dict:
        """Where this shard runs and the memory its process holds (resident and peak, MB)."""
        import resource

        try:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError):
            rss = None
        return {
            "node": self.node(),
            "pid": os.getpid(),
            "passages": self.index.n_passages,
            "postings": self.index.manifest["counts"].get("postings"),
            "rss_mb": rss,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def _check_shard(path: Path, manifest: dict, i: int, entry: dict, own: dict) -> None:
    """Refuse a shard that is not the one this collection's manifest lists in slot `i`: another
    slot or build of the collection, another corpus, other analysis or scoring settings."""
    slot = {"index": i, "shards": len(manifest["shards"]), "first_passage": entry["first_passage"]}
    slot["passages"] = entry["passages"]
    differs = []
    if own.get("shard") != slot:
        differs.append(f"it is {_slot_name(own.get('shard'))}, not shard {i} of {slot['shards']}")
    fingerprint = (manifest.get("corpus") or {}).get("fingerprint")
    if fingerprint and (own.get("corpus") or {}).get("fingerprint") != fingerprint:
        differs.append("it was built from another corpus")
    for key in ("analyzer", "scoring"):
        if key in manifest and own.get(key) != manifest[key]:
            differs.append(f"its {key} settings differ")
    if differs:
        raise OdqaError(
            f"sharded index {path}: {entry['path']} does not belong to it ({'; '.join(differs)}); "
            "rebuild the sharded index"
        )


def _slot_name(slot) -> str:
    if not isinstance(slot, dict):
        return "no shard of a sharded index"
    return f"shard {slot.get('index')} of {slot.get('shards')} (passages from {slot.get('first_passage')})"


class ShardedPassages(Sequence):
    """The collection's passages by global id, fetched from the shard that holds each."""

    def __init__(self, index: ShardedIndex):
        self.index = index

    def __len__(self) -> int:
        return self.index.n_passages

    def __getitem__(self, passage_id):
        if isinstance(passage_id, slice):
            return [self[i] for i in range(*passage_id.indices(len(self)))]
        return self.index.fetch([int(passage_id)])[int(passage_id)]


class ShardedIndex:
    """The retriever over a sharded index (the contract of `odqa.retrieval.base.Retriever`): each
    query batch goes to every shard's actor, and their top k are merged exactly."""

    def __init__(self, path: str | Path, manifest: dict, address: str | None = None, timeout: float | None = None):
        self.path = Path(path)
        self.manifest = manifest
        self.address = address
        self.timeout = timeout or float(os.environ.get("ODQA_SHARD_TIMEOUT", DEFAULT_TIMEOUT_S))
        self.offsets = np.asarray([s["first_passage"] for s in manifest["shards"]] + [self.n_passages], dtype=np.int64)
        self.passages = ShardedPassages(self)
        self.kind = manifest.get("kind", "sparse")
        self.encoder = None  # a dense index's query encoder, loaded here: queries are encoded once
        self._actors: list | None = None

    @classmethod
    def load(cls, path: str | Path, address: str | None = None, timeout: float | None = None) -> ShardedIndex:
        from odqa.retrieval.manifest import read_manifest

        path = Path(path)
        manifest = read_manifest(path, FORMAT)
        shards = manifest.get("shards")
        if not isinstance(shards, list) or not shards:
            raise OdqaError(f"{path}/manifest.json lists no shards; rebuild it with `odqa index --shards N`")
        for i, shard in enumerate(shards):
            if not (path / shard["path"] / "manifest.json").is_file():
                raise OdqaError(f"sharded index {path} is incomplete: {shard['path']} is missing; rebuild it")
            _check_shard(path, manifest, i, shard, read_manifest(path / shard["path"]))
        return cls(path, manifest, address, timeout)

    @property
    def n_passages(self) -> int:
        return int(self.manifest["counts"]["passages"])

    def warm_up(self) -> ShardedIndex:
        """Start one actor per shard (spread over the cluster's nodes) and wait until each has loaded."""
        if self.kind == "dense" and self.encoder is None:
            from odqa.distributed.dense_shards import query_encoder

            self.encoder = query_encoder(self.manifest, self.path)
        if self._actors is None:
            ray = connect(self.address)
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            server = ray.remote(ShardServer)
            nodes = worker_nodes(ray)
            self._actors = [
                server.options(
                    num_cpus=0.01,  # a token share: Ray ignores node affinity for actors that ask for nothing
                    max_restarts=-1,
                    max_task_retries=-1,
                    # shard i on node i mod n; soft: a shard whose node is gone restarts on another
                    scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True),
                ).remote(str(self.path / shard["path"]), self.kind)
                for i, shard in enumerate(self.manifest["shards"])
            ]
            self._gather("node")
        return self

    def _gather(self, method: str, *args, shards: Sequence[int] | None = None) -> list:
        """`method(*args)` on each shard's actor (or those in `shards`), waiting at most `timeout`."""
        if self._actors is None:
            self.warm_up()
        ray = _ray()
        from ray.exceptions import GetTimeoutError, RayError

        chosen = range(len(self._actors)) if shards is None else shards
        refs = [getattr(self._actors[i], method).remote(*args) for i in chosen]
        try:
            return ray.get(refs, timeout=self.timeout)
        except GetTimeoutError:
            raise OdqaError(
                f"sharded index {self.path}: a shard did not answer within {self.timeout:.0f} s "
                "(its node may be down with no other node free to take it); try again"
            ) from None
        except RayError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise OdqaError(f"sharded index {self.path}: a shard failed: {first}") from None

    def nodes(self) -> list[str]:
        """The Ray node id each shard's actor runs on, by shard."""
        return self._gather("node")

    def stats(self) -> list[dict]:
        """Per shard: its node, process, passages, postings and memory (`ShardServer.stats`)."""
        return self._gather("stats")

    def search_arrays(self, queries: Sequence[str], k: int, threads: int | None = None):
        check_k(k)
        queries = check_queries(queries)
        if not queries:
            return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
        if self.kind == "dense":
            self.warm_up()
            parts = self._gather("search_vectors", self.encoder.encode(queries, "query"), k)
        else:
            parts = self._gather("search_arrays", queries, k)
        scores = np.concatenate([s for s, _ in parts], axis=1)
        ids = np.concatenate(
            [np.where(i >= 0, i + offset, -1) for (_, i), offset in zip(parts, self.offsets[:-1])], axis=1
        )
        pad = -np.inf if self.kind == "dense" else 0.0  # as the embedded index of the kind pads
        out_scores = np.full((len(queries), k), pad, dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            found = ids[row] >= 0
            row_scores, row_ids = scores[row][found], ids[row][found]
            order = np.lexsort((row_ids, -row_scores))[:k]  # best score first, ties by the smaller id
            out_scores[row, : len(order)] = row_scores[order]
            out_ids[row, : len(order)] = row_ids[order]
        return out_scores, out_ids

    def fetch(self, ids: Sequence[int]) -> dict[int, Passage]:
        """Passages by global id, each from its shard (with its global id)."""
        ids = sorted(set(int(i) for i in ids))
        for i in ids:
            if not 0 <= i < self.n_passages:
                raise IndexError(f"passage id {i} out of range 0..{self.n_passages - 1}")
        by_shard: dict[int, list[int]] = {}
        for i in ids:
            by_shard.setdefault(int(np.searchsorted(self.offsets, i, side="right")) - 1, []).append(i)
        found: dict[int, Passage] = {}
        for shard, wanted in by_shard.items():
            offset = int(self.offsets[shard])
            fetched = self._gather("passages", [i - offset for i in wanted], shards=[shard])[0]
            found.update({i: replace(p, id=i) for i, p in zip(wanted, fetched)})
        return found

    def search(self, queries: Sequence[str], k: int = 10, fetch: bool = False) -> list[list[Hit]]:
        scores, ids = self.search_arrays(queries, k)
        passages = self.fetch(ids[ids >= 0].tolist()) if fetch and ids.size else None
        return arrays_to_hits(scores, ids, passages.__getitem__ if passages is not None else None)

    def save(self, path: str | Path) -> None:
        """A copy of the sharded index at `path` (written atomically)."""
        from odqa.io.atomic import atomic_dir

        if Path(path).resolve() == self.path.resolve():
            return
        with atomic_dir(path) as tmp:
            for item in self.path.iterdir():
                (shutil.copytree if item.is_dir() else shutil.copyfile)(item, tmp / item.name)

    def to_dict(self) -> dict:
        return {"kind": "sharded", "path": str(self.path)}

    def close(self) -> None:
        """Stop the shard actors."""
        if self._actors is not None:
            ray = _ray()
            for actor in self._actors:
                ray.kill(actor, no_restart=True)
            self._actors = None
