"""Run the local SES v2 stub, or measure the SES transport against it.

    python bench/ses_stub.py serve --rate 14            # prints the endpoint; Ctrl-C stops
    python bench/ses_stub.py serve --rate 200 --limit 120 --throttle-fraction 0.05 --drop-fraction 0.02
    python bench/ses_stub.py measure --rate 1000 --threads 4 --messages 400

`serve` lets the sender be exercised end to end: point NEWSLETTER_SES_ENDPOINT_URL at
the printed URL and set fake AWS credentials (AWS_ACCESS_KEY_ID=testing ...).
It can misbehave as real accounts and networks do: `--limit` refuses sends over a real
rate below the quota GetAccount reports (another sender shares the account),
`--throttle-fraction` answers that share of sends 429 at random, and `--drop-fraction`
records that share of accepted messages, then closes the connection without answering.
On Ctrl-C it prints what it accepted, throttled and dropped (one JSON line on stderr).
`measure` sends through SesTransport from a thread pool, unpaced, and reports the
achieved rate, the 429s the stub's token bucket gave, and the HTTP calls made.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from newsletter.delivery.transports.ses import SesTransport
from tests.support.aws import FAKE_AWS_ENV, SesStub

RAW = (
    b"From: editor@example.org\r\nTo: reader@example.com\r\nSubject: bench\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + b"x" * 40_000 + b"\r\n"
)


def serve(rate: float, limit: float | None, throttle_fraction: float, drop_fraction: float) -> None:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID`: where a stuck stub's threads are
    # Ctrl-C stops it, even when started from a background job (whose shell ignores SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with SesStub(
        max_send_rate=rate,
        send_limit=limit,
        throttle_fraction=throttle_fraction,
        drop_fraction=drop_fraction,
        seed=int(time.time()),
    ) as stub:
        print(stub.endpoint_url, flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            with stub.lock:
                report = {
                    "sent": len(stub.messages),
                    "throttled": stub.throttled,
                    "requests": stub.calls["SendEmail"],
                    "recipients": [to for m in stub.messages for to in m.to],
                    "dropped": list(stub.dropped),
                    "answers": [(round(t, 4), status) for t, status in stub.answers],
                }
            print(json.dumps(report), file=sys.stderr)


def measure(rate: float, threads: int, messages: int) -> None:
    os.environ.update(FAKE_AWS_ENV)
    with SesStub(max_send_rate=rate) as stub:
        transport = SesTransport(endpoint_url=stub.endpoint_url, concurrency=threads)
        with transport:
            transport.send("editor@example.org", "warm@example.com", RAW)  # client creation, first connection
            stub.reset()
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=threads) as pool:
                results = list(
                    pool.map(
                        lambda i: transport.send("editor@example.org", f"r{i}@example.com", RAW),
                        range(messages),
                    )
                )
            elapsed = time.perf_counter() - start
        sent = sum(r.ok for r in results)
        print(
            f"threads={threads} messages={messages} bytes={len(RAW)} elapsed={elapsed:.2f}s "
            f"sent={sent} ({sent / elapsed:.0f}/s) throttled={stub.throttled} http_calls={stub.calls['SendEmail']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["serve", "measure"])
    parser.add_argument("--rate", type=float, default=14.0, help="the stub's MaxSendRate (token bucket)")
    parser.add_argument("--limit", type=float, help="the rate really allowed, below --rate (serve)")
    parser.add_argument(
        "--throttle-fraction", type=float, default=0.0, help="429 this share at random (serve)"
    )
    parser.add_argument("--drop-fraction", type=float, default=0.0, help="drop this share of answers (serve)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.rate, args.limit, args.throttle_fraction, args.drop_fraction)
    else:
        measure(args.rate, args.threads, args.messages)


if __name__ == "__main__":
    main()
