"""The verifiable log's answers: a signed checkpoint, inclusion and consistency proofs.

``scripts/bench --proofs [--sizes 100000,1000000] [--backends sqlite,postgresql] [--samples 200]
[--json FILE]``. For each backend and log length: W3's synthetic log is written (its append
keeps the Merkle tree, as every append does), then, in process, the p50 and p99 of
``sign_checkpoint`` (the root from the stored tree, signed with an Ed25519 log key), of
``inclusion`` at random positions (the event read, its proof from the stored nodes and at most
15 events), and of ``consistency`` from random older sizes to the whole log; every proof is
checked by the standalone verifier once, outside the timings. Targets: a proof ≤ 2 ms and a
checkpoint ≤ 5 ms at 1,000,000 events.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main"]

Figures = dict[str, Any]


def _timings(call: Callable[[int], object], samples: int) -> tuple[float, float]:
    """p50 and p99 of ``samples`` calls, in milliseconds."""
    seconds = []
    for i in range(samples):
        started = time.perf_counter()
        call(i)
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return statistics.median(seconds) * 1e3, seconds[int(0.99 * (len(seconds) - 1))] * 1e3


def _root(store: Any, size: int) -> bytes:
    from tokenledger.store.logtree import StoredTree

    with store.engine.connect() as connection:
        return StoredTree(connection).root(size)


def measure(url: str, size: int, samples: int) -> Figures:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bench.logs import write_log
    from tokenledger import logproof
    from tokenledger.service.log_proofs import (
        LogSigner,
        consistency,
        inclusion,
        sign_checkpoint,
    )
    from tokenledger.store import open_event_store

    store = open_event_store(url, auto_upgrade=True)
    started = time.perf_counter()
    events = write_log(store, size)
    written = time.perf_counter() - started
    signer = LogSigner("bench.example/log", Ed25519PrivateKey.generate())
    rng = random.Random(7)
    positions = [rng.randint(1, events) for _ in range(samples)]
    olds = [rng.randint(1, events - 1) for _ in range(samples)]
    checkpoint = sign_checkpoint(store, signer)
    # Each kind of answer checked once by the verifier an auditor runs, outside the timings.
    vkey = logproof.verifier_key(signer.origin, signer.private_key.public_key())
    opened = logproof.open_checkpoint(checkpoint.note, vkey, signer.origin)
    proof = inclusion(store, positions[0])
    logproof.verify_inclusion(
        logproof.leaf_hash(base64.b64decode(proof["entry"])),
        proof["index"],
        opened.size,
        [base64.b64decode(h) for h in proof["hashes"]],
        opened.root_hash,
    )
    old = consistency(store, olds[0])
    logproof.verify_consistency(
        olds[0],
        opened.size,
        _root(store, olds[0]),
        opened.root_hash,
        [base64.b64decode(h) for h in old["hashes"]],
    )
    figures: Figures = {"events": events, "write_seconds": written}
    figures["checkpoint_p50_ms"], figures["checkpoint_p99_ms"] = _timings(
        lambda i: sign_checkpoint(store, signer), samples
    )
    figures["inclusion_p50_ms"], figures["inclusion_p99_ms"] = _timings(
        lambda i: inclusion(store, positions[i]), samples
    )
    figures["consistency_p50_ms"], figures["consistency_p99_ms"] = _timings(
        lambda i: consistency(store, olds[i]), samples
    )
    store.engine.dispose()
    return figures


def main() -> None:
    from bench.main import database

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    results: dict[str, Figures] = {}
    for backend in args.backends.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            with database(backend) as target:
                found = measure(target.url, size, args.samples)
            results[f"{backend} {size}"] = found
            print(
                f"{backend:<10} {found['events']:>9,} events: checkpoint p50"
                f" {found['checkpoint_p50_ms']:.2f} ms (p99 {found['checkpoint_p99_ms']:.2f};"
                f" target ≤ 5 ms), inclusion p50 {found['inclusion_p50_ms']:.2f} ms"
                f" (p99 {found['inclusion_p99_ms']:.2f}), consistency p50"
                f" {found['consistency_p50_ms']:.2f} ms (p99 {found['consistency_p99_ms']:.2f};"
                " proofs target ≤ 2 ms)",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
