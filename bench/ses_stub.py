"""Run the local SES v2 stub, or measure the SES transport against it.

    python bench/ses_stub.py serve --rate 14            # prints the endpoint; Ctrl-C stops
    python bench/ses_stub.py serve --rate 200 --limit 120 --throttle-fraction 0.05 --drop-fraction 0.02
    python bench/ses_stub.py measure --rate 1000000 --threads 8 --messages 2000

`serve` lets the sender be exercised end to end: point NEWSLETTER_SES_ENDPOINT_URL at
the printed URL and set fake AWS credentials (AWS_ACCESS_KEY_ID=testing ...).
It can misbehave as real accounts and networks do: `--limit` refuses sends over a real
rate below the quota GetAccount reports (another sender shares the account),
`--throttle-fraction` answers that share of sends 429 at random, `--drop-fraction`
records that share of accepted messages, then closes the connection without answering, and
`--latency` answers each send that many seconds late (a round trip to a distant SES).
On Ctrl-C it prints what it accepted, throttled and dropped (one JSON line on stderr).
`measure` sends through SesTransport from a thread pool, unpaced, to the stub in its own
process, and reports the achieved rate and the CPU each send costs the client (this
process) and the stub: on one machine the stub's CPU is an artefact a remote SES does not
charge, and the client's bounds what one sending process can do.
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

RAW_HEAD = (
    b"From: editor@example.org\r\nTo: reader@example.com\r\nSubject: bench\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
)


def serve(
    rate: float, limit: float | None, throttle_fraction: float, drop_fraction: float, latency: float = 0.0
) -> None:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID`: where a stuck stub's threads are
    # Ctrl-C stops it, even when started from a background job (whose shell ignores SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with SesStub(
        max_send_rate=rate,
        send_limit=limit,
        throttle_fraction=throttle_fraction,
        drop_fraction=drop_fraction,
        latency=latency,
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


def measure(rate: float, threads: int, messages: int, size: int) -> None:
    """SesTransport against the stub in its own process: rate, and CPU per send on each side.

    CPU is process time (this process: time.process_time; the stub: utime + stime from
    /proc/PID/stat), so other work on a shared machine does not count.
    """
    import subprocess

    os.environ.update(FAKE_AWS_ENV)
    raw = RAW_HEAD + b"x" * max(0, size - len(RAW_HEAD) - 2) + b"\r\n"
    stub = subprocess.Popen(
        [sys.executable, __file__, "serve", "--rate", str(rate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        endpoint = stub.stdout.readline().strip()  # type: ignore[union-attr]
        transport = SesTransport(endpoint_url=endpoint, concurrency=threads)
        with transport:
            with ThreadPoolExecutor(max_workers=threads) as pool:  # client, connections, first calls
                list(
                    pool.map(
                        lambda i: transport.send("editor@example.org", f"w{i}@example.com", raw),
                        range(threads * 2),
                    )
                )
            stub_before, cpu_before = process_cpu(stub.pid), time.process_time()
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=threads) as pool:
                results = list(
                    pool.map(
                        lambda i: transport.send("editor@example.org", f"r{i}@example.com", raw),
                        range(messages),
                    )
                )
            elapsed = time.perf_counter() - start
            client_cpu, stub_cpu = time.process_time() - cpu_before, process_cpu(stub.pid) - stub_before
    finally:
        stub.send_signal(signal.SIGINT)
        stub.wait(timeout=60)
    sent = sum(r.ok for r in results)
    print(
        f"threads={threads} messages={messages} bytes={len(raw)} elapsed={elapsed:.2f}s "
        f"sent={sent} ({sent / elapsed:.0f}/s); CPU per send: client {client_cpu / messages * 1000:.2f} ms, "
        f"stub {stub_cpu / messages * 1000:.2f} ms; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds each SendEmail takes before its answer (serve)"
    )
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size", type=int, default=115_000, help="bytes per message (measure)")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.rate, args.limit, args.throttle_fraction, args.drop_fraction, args.latency)
    else:
        measure(args.rate, args.threads, args.messages, args.size)


if __name__ == "__main__":
    main()
