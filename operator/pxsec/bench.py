"""`make bench`: medians and ratios for the work the operator does, measured — never asserted.

What it answers:
- how long each kind of key takes to generate (RSA 4096 is the slow one), as medians and as a ratio
  to ECDSA P-256;
- whether key generation blocks the event loop: the worst tick delay of a 5 ms asyncio ticker while
  RSA keys are generated inline on the loop, versus through `asyncio.to_thread` as the operator does;
- the cost of the pure core per reconcile (plan + fingerprint, and checking a minted token), first
  sight versus steady state (key parsing is memoized by content).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from collections.abc import Callable

from pxsec import keymaterial, keyplan, tokens
from pxsec.spec import parse_spec


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _fmt(seconds: float) -> str:
    if seconds >= 0.1:
        return f"{seconds * 1000:8.0f} ms"
    if seconds >= 1e-4:
        return f"{seconds * 1000:8.2f} ms"
    return f"{seconds * 1e6:8.1f} µs"


async def _max_lag(work: Callable[[], None] | None, threaded: bool, keys: int) -> float:
    """Worst delay of a 5 ms ticker while `keys` RSA-2048 keys are generated."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    for _ in range(keys):
        if threaded:
            await asyncio.to_thread(keymaterial.generate_rsa, 2048)
        else:
            keymaterial.generate_rsa(2048)
            await asyncio.sleep(0)
    stop.set()
    await task
    return max(lags) if lags else 0.0


def main() -> int:
    rows: list[tuple[str, float]] = []
    rows.append(("shared secret (64 chars)", median_seconds(keymaterial.generate_shared_secret, 2001)))
    for curve in ("P-256", "P-384", "P-521"):
        rows.append((f"ECDSA {curve}", median_seconds(lambda c=curve: keymaterial.generate_ecdsa(c), 51)))  # type: ignore[misc]
    for bits, runs in ((2048, 15), (3072, 9), (4096, 9)):
        rows.append((f"RSA {bits}", median_seconds(lambda b=bits: keymaterial.generate_rsa(b), runs)))  # type: ignore[misc]

    spec = parse_spec({"selfSigned": {"sharedSecret": {}, "rsa": {"secretName": "r"},
                                      "ecdsa": {"secretName": "e"}}})
    observed = {
        r.name: keyplan.Observed(r.name, keymaterial.materialize(keyplan.plan_secret(r, None, None, spec).recipes, {}))
        for r in keyplan.requirements(spec)
    }

    def plan_and_fingerprint() -> None:
        for r in keyplan.requirements(spec):
            keyplan.plan_secret(r, observed[r.name], None, spec)
            keyplan.secret_fingerprint(r, observed[r.name].data)

    def first_sight() -> None:
        keymaterial._check_key_pair.cache_clear()
        keymaterial.load_private_key.cache_clear()
        plan_and_fingerprint()

    rows.append(("plan + fingerprints, first sight", median_seconds(first_sight, 5)))
    rows.append(("plan + fingerprints, steady state", median_seconds(plan_and_fingerprint, 51)))

    # The per-reconcile check of a minted token (is it still current?), with an RSA 4096 signing key.
    token_spec = parse_spec({"selfSigned": {"rsa": {"secretName": "r"}},
                             "tokens": [{"secretName": "t", "roles": ["system.admin"]}]})
    ring = tokens.KeyRing(rsa_private_pem=keymaterial.generate_rsa(4096)[0])
    now = dt.datetime.now(dt.UTC)
    minted = tokens.mint(token_spec.tokens[0], token_spec, ring, now)

    def token_check() -> None:
        tokens.remint_reason(minted.token, token_spec.tokens[0], token_spec, ring, minted.key_fingerprint, now)

    def token_check_cold() -> None:
        keymaterial.load_private_key.cache_clear()
        token_check()

    rows.append(("token check RS256/4096, cold key", median_seconds(token_check_cold, 3)))
    rows.append(("token check RS256/4096, steady", median_seconds(token_check, 51)))

    print("median time per operation")
    for name, seconds in rows:
        print(f"  {name:34s} {_fmt(seconds)}")
    by_name = dict(rows)
    print("ratios")
    print(f"  RSA 4096 / ECDSA P-256            {by_name['RSA 4096'] / by_name['ECDSA P-256']:8.0f}x")
    print(f"  RSA 4096 / RSA 2048               {by_name['RSA 4096'] / by_name['RSA 2048']:8.1f}x")
    cold, steady = by_name["token check RS256/4096, cold key"], by_name["token check RS256/4096, steady"]
    print(f"  token check cold / steady         {cold / steady:8.0f}x")

    inline = statistics.median(asyncio.run(_max_lag(None, False, 5)) for _ in range(3))
    threaded = statistics.median(asyncio.run(_max_lag(None, True, 5)) for _ in range(3))
    print("event-loop lag while generating 5 RSA-2048 keys (worst tick of a 5 ms ticker, median of 3)")
    print(f"  inline on the loop                {_fmt(inline)}")
    print(f"  asyncio.to_thread (operator)      {_fmt(threaded)}")
    print(f"  ratio inline / threaded           {inline / max(threaded, 1e-6):8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
