"""Load test of `odqa serve` on loopback: N concurrent clients send /ask requests (competition
validation questions, cycled) for a fixed time; errors, latency percentiles and throughput.
With `--ray`, the same load on `odqa serve --ray` (Ray Serve: `--replicas` pipeline replicas of
`--cpus-per-replica` cores behind one HTTP ingress, on a local Ray cluster) in the same run, so the
two servers are compared on the same machine at the same moment.

With `--config FILE` (a pipeline config, e.g. the settings `odqa tune-pipeline` or e2e.py chose), the
same load on `odqa serve --config FILE` too, in the same run, against the default server.

    python serve_load.py [--clients 16] [--seconds 60] [--reader PATH] [--index PATH] [--k K]
    python serve_load.py --ray --replicas 2 --cpus-per-replica 1
    python serve_load.py --config tuned.json --name serve_load_tuned
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import DATA, ROOT, WORK, markdown_table, write_results

MAX_REQUESTS = 100_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load(command: list[str], questions: list[str], clients: int, seconds: float, start_limit: float = 300) -> dict:
    """Start the server `command` (it takes --port), wait until /health answers, run the load, stop
    it (SIGINT: Ray Serve shuts its deployments down on it) and return the measurements."""
    import httpx

    port = free_port()
    server = subprocess.Popen([*command, "--port", str(port)], env={**os.environ, "ODQA_QUIET": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            if server.poll() is not None:
                sys.exit(f"the server exited with status {server.returncode}: {' '.join(command)}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > start_limit:
                sys.exit(f"the server did not start in {start_limit:.0f} s: {' '.join(command)}")
            time.sleep(0.5)
        startup = time.monotonic() - started
        k = httpx.get(base + "/health").json()["k"]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        counter = iter(range(MAX_REQUESTS))
        stop_at = time.monotonic() + seconds

        def client() -> None:
            with httpx.Client(base_url=base, timeout=120) as http:
                while time.monotonic() < stop_at:
                    with lock:
                        n = next(counter, None)
                    if n is None:
                        return
                    start = time.perf_counter()
                    try:
                        response = http.post(
                            "/ask", json={"question": questions[n % len(questions)], "passages": False}
                        )
                        ok = response.status_code == 200 and "answer" in response.json()
                        problem = None if ok else f"HTTP {response.status_code}"
                    except httpx.HTTPError as e:
                        problem = f"{type(e).__name__}: {e}"
                    elapsed = 1000 * (time.perf_counter() - start)
                    with lock:
                        if problem:
                            errors.append(problem)
                        else:
                            latencies.append(elapsed)

        began = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")

    return {
        "clients": clients,
        "seconds": wall,
        "startup_s": startup,
        "k": k,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_examples": errors[:5],
        "throughput_qps": len(latencies) / wall,
        "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": latencies[-1] if latencies else None},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "kowiki-bm25")
    parser.add_argument("--reader", type=Path, default=WORK / "korean_model" / "ko-reader")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--k", type=int, default=None, help="passages read per question (default: the server's)")
    parser.add_argument("--ray", action="store_true", help="also measure `odqa serve --ray` in the same run")
    parser.add_argument("--replicas", type=int, default=2, help="Ray Serve pipeline replicas")
    parser.add_argument("--cpus-per-replica", type=float, default=1.0)
    parser.add_argument("--config", type=Path, default=None, help="also load `odqa serve --config FILE`")
    parser.add_argument("--name", default="serve_load", help="results file name")
    args = parser.parse_args()
    if args.config and not args.config.is_file():
        parser.error(f"config not found: {args.config}")

    from odqa.io import read_questions

    questions = [q.text for q in read_questions(DATA / "boostcamp_odqa/validation.squad.json")]
    command = [sys.executable, "-m", "odqa", "serve", "--index", str(args.index), "--reader", str(args.reader)]
    if args.k:
        command += ["-k", str(args.k)]
    print(f"loading `odqa serve` with {args.clients} clients for {args.seconds:.0f} s ...", flush=True)
    result = load(command, questions, args.clients, args.seconds) | {"reader": str(args.reader)}
    rows = [["odqa serve", result]]
    if args.ray:
        ray_command = [*command, "--ray", "--replicas", str(args.replicas)]
        ray_command += ["--cpus-per-replica", f"{args.cpus_per_replica:g}"]
        print(f"loading `odqa serve --ray` ({args.replicas} replicas) ...", flush=True)
        result["ray"] = load(ray_command, questions, args.clients, args.seconds, start_limit=600)
        result["ray"] |= {"replicas": args.replicas, "cpus_per_replica": args.cpus_per_replica}
        result["ray"]["qps_vs_plain"] = result["ray"]["throughput_qps"] / result["throughput_qps"]
        name = f"odqa serve --ray ({args.replicas} replicas × {args.cpus_per_replica:g} core)"
        rows.append([name, result["ray"]])
    if args.config:
        print(f"loading `odqa serve --config {args.config}` ...", flush=True)
        configured = json.loads(args.config.read_text(encoding="utf-8"))
        result["configured"] = load([*command[:4], "--config", str(args.config)], questions, args.clients, args.seconds)
        result["configured"] |= {"config": configured}
        result["configured"]["qps_vs_plain"] = result["configured"]["throughput_qps"] / result["throughput_qps"]
        rows.append([f"odqa serve --config {args.config.name} (k = {result['configured']['k']})", result["configured"]])
        result["configured_settings"] = {
            key: configured[key]
            for key in (
                "k",
                "retriever_weight",
                "rescore",
                "rescore_precision",
                "rerank",
                "rerank_weight",
                "reader_options",
            )
            if configured.get(key) is not None
        }
    table = (
        f"`odqa serve` under load: {args.clients} concurrent clients for {args.seconds:.0f} s on loopback, "
        f"k = {result['k']}, {os.cpu_count()} CPU cores; the Korean reader ({args.reader.name})"
        + (f"; {args.config.name}: {result['configured_settings']}" if args.config else "")
        + "\n\n"
        + markdown_table(
            ["server", "requests", "errors", "questions/s", "× plain", "p50 ms", "p95 ms", "p99 ms", "startup s"],
            [
                [
                    name,
                    r["requests"],
                    r["errors"],
                    f"{r['throughput_qps']:.2f}",
                    f"{r['throughput_qps'] / result['throughput_qps']:.2f}",
                    *(f"{r['latency_ms'][p]:.0f}" for p in ("p50", "p95", "p99")),
                    f"{r['startup_s']:.0f}",
                ]
                for name, r in rows
            ],
        )
    )
    write_results(args.name, result, table + "\n")


if __name__ == "__main__":
    main()
