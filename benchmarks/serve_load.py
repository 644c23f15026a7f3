"""Load test of `odqa serve` on loopback: N concurrent clients send /ask requests (competition
validation questions, cycled) for a fixed time; errors, latency percentiles and throughput.

    python serve_load.py [--clients 16] [--seconds 60] [--reader PATH] [--index PATH] [--k K]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import DATA, ROOT, markdown_table, write_results

MAX_REQUESTS = 100_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "kowiki-bm25")
    parser.add_argument("--reader", type=Path, default=ROOT / "benchmarks" / "work" / "reader" / "ko-reader")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--k", type=int, default=None, help="passages read per question (default: the server's)")
    args = parser.parse_args()

    import httpx

    from odqa.io import read_questions

    questions = [q.text for q in read_questions(DATA / "boostcamp_odqa/validation.squad.json")]
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "odqa",
        "serve",
        "--index",
        str(args.index),
        "--reader",
        str(args.reader),
        "--port",
        str(port),
    ]
    if args.k:
        command += ["-k", str(args.k)]
    server = subprocess.Popen(command, env={**os.environ, "ODQA_QUIET": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                sys.exit(f"the server exited with status {server.returncode}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the server did not start in 300 s")
            time.sleep(0.5)
        k = httpx.get(base + "/health").json()["k"]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        counter = iter(range(MAX_REQUESTS))
        stop_at = time.monotonic() + args.seconds

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

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)

    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")

    result = {
        "clients": args.clients,
        "seconds": wall,
        "k": k,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_examples": errors[:5],
        "throughput_qps": len(latencies) / wall,
        "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": latencies[-1] if latencies else None},
    }
    table = (
        f"`odqa serve` under load: {args.clients} concurrent clients for {wall:.0f} s on loopback, k = {k}, 2 CPU "
        "cores\n\n"
        + markdown_table(
            ["requests", "errors", "questions/s", "p50 ms", "p95 ms", "p99 ms"],
            [
                [
                    result["requests"],
                    result["errors"],
                    f"{result['throughput_qps']:.2f}",
                    f"{pct(50):.0f}",
                    f"{pct(95):.0f}",
                    f"{pct(99):.0f}",
                ]
            ],
        )
    )
    write_results("serve_load", result, table + "\n")


if __name__ == "__main__":
    main()
