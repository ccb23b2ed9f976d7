"""Benchmark: sending the example issue (≈115 KB per message) through the ledger.

    .venv/bin/python bench/send.py            # full run: 20k paced at 200/s takes ~100 s
    .venv/bin/python bench/send.py --quick    # 5k paced, smaller unpaced and RSS runs

Prints, each with its goal:
  1. paced: N subscribers against the local SES stub limited to 200/s (GetAccount says 200)
     -> achieved rate as a share of 200 (goal >= 95 %, zero throttles);
  2. unpaced: one process's messages/s against an unlimited stub, next to bare boto3
     SendEmail calls/s from the same number of threads in the same run (goal >= 80 %);
  3. CPU per recipient excluding boto3 (personalise + ledger), measured with a transport
     that discards the bytes (goal <= 0.1 ms), and its parts;
  4. peak RSS of a send of 10k / 30k / 100k subscribers (quick: 5k / 20k), each in a fresh
     process (goal <= 150 MB, flat in N);
  5. --workers 2 against --workers 1, unpaced.

The SES stub runs in its own process (bench/ses_stub.py serve), so its CPU is not
charged to the sender; on a 2-core machine they still share the cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.config import SesSettings, Settings, load_settings  # noqa: E402
from newsletter.content.library import load_library  # noqa: E402
from newsletter.delivery.plan import build_template, plan_send  # noqa: E402
from newsletter.delivery.sending import send_issue  # noqa: E402
from newsletter.delivery.transports.base import SendResult, Transport  # noqa: E402
from newsletter.delivery.transports.ses import SesTransport  # noqa: E402
from newsletter.mail.message import Recipient  # noqa: E402
from newsletter.store import Store, SubscriberRow  # noqa: E402
from newsletter.tokens import unsubscribe_token  # noqa: E402
from tests.support.aws import FAKE_AWS_ENV  # noqa: E402

ISSUE = "2026-03-17-multilingual-llms"
SECRET = b"bench-secret"
THREADS = 8


class DiscardTransport(Transport):
    """Accepts every message and keeps only a count: the sender's own cost, nothing else's."""

    name = "discard"

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def send(self, sender: str, recipient: str, raw: bytes) -> SendResult:
        self.count += 1
        self.bytes += len(raw)
        return SendResult.sent(None)


class StubProcess:
    """bench/ses_stub.py serve in a subprocess; stop() returns (sent, throttled)."""

    def __init__(self, rate: float) -> None:
        env = {**os.environ, **FAKE_AWS_ENV}
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "ses_stub.py"), "serve", "--rate", str(rate)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.endpoint = self.process.stdout.readline().strip()  # type: ignore[union-attr]
        if not self.endpoint.startswith("http"):
            raise SystemExit(f"the SES stub did not start: {self.process.stderr.read()}")  # type: ignore[union-attr]

    def stop(self) -> tuple[int, int]:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=30)
        for line in err.splitlines():
            if line.startswith("sent "):
                sent, throttled = line.replace(",", "").split()[1::2]
                return int(sent), int(throttled)
        return -1, -1


def setup(folder: Path, n: int) -> tuple[Settings, object, object]:
    settings = load_settings(REPO, env={})
    settings = dataclasses.replace(
        settings,
        database_url=f"sqlite:///{folder / 'subscribers.db'}",
        outbox_dir=folder / "outbox",
        rate=None,
    )
    library = load_library(settings, only=ISSUE)
    issue = library.issue(ISSUE)
    with Store.open(settings.database_url) as store:
        store.upsert_many(
            SubscriberRow(email=f"reader{i:06d}@example.com", name=f"Reader {i}", status="active")
            for i in range(n)
        )
    return settings, library, issue


def ses_settings(settings: Settings, endpoint: str) -> Settings:
    return dataclasses.replace(settings, ses=SesSettings(endpoint_url=endpoint))


def run_send(settings, library, issue, transport, template, **options):
    with Store.open(settings.database_url) as store:
        plan = plan_send(
            settings, library, issue, transport=transport, secret=SECRET, template=template, **options
        )
        return send_issue(plan, store)


# --------------------------------------------------------------------------- 1. paced


def paced(n: int, threads: int) -> None:
    os.environ.update(FAKE_AWS_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        settings, library, issue = setup(Path(tmp), n)
        template = build_template(settings, library, issue)
        stub = StubProcess(200)
        try:
            ses = ses_settings(settings, stub.endpoint)
            transport = SesTransport.from_settings(ses, concurrency=threads)
            report = run_send(ses, library, issue, transport, template, threads=threads)
        finally:
            accepted, throttled = stub.stop()
    achieved = report.sent / report.elapsed
    print(
        f"1. paced, {n} subscribers, {threads} threads, stub at 200/s: rate {report.rate:g}/s (from GetAccount), "
        f"achieved {achieved:.1f}/s = {achieved / 200:.1%} of 200 (goal >= 95%; set-up included), "
        f"throttles {throttled} (sender counted {report.tally.throttled}; goal 0), "
        f"stub accepted {accepted}, {report.elapsed:.1f} s"
    )


# --------------------------------------------------------------------------- 2. unpaced


def bare_boto3(endpoint: str, raws: list[bytes], threads: int) -> float:
    """Plain sesv2 send_email calls from a thread pool, with the same client settings: calls/s."""
    transport = SesTransport(endpoint_url=endpoint, concurrency=threads)
    client = transport.client()
    client.send_email(
        FromEmailAddress="editor@example.org",
        Destination={"ToAddresses": ["warm@example.com"]},
        Content={"Raw": {"Data": raws[0]}},
    )

    def call(i: int) -> None:
        client.send_email(
            FromEmailAddress="editor@example.org",
            Destination={"ToAddresses": [f"bare{i}@example.com"]},
            Content={"Raw": {"Data": raws[i % len(raws)]}},
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(call, range(len(raws))))
    return len(raws) / (time.perf_counter() - start)


def unpaced(n: int, workers_compare: bool) -> None:
    os.environ.update(FAKE_AWS_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        settings, library, issue = setup(Path(tmp), n)
        template = build_template(settings, library, issue)
        raws = [template.personalise(Recipient(f"r{i}@example.com", f"R {i}", "t" * 22)) for i in range(n)]
        stub = StubProcess(1_000_000)
        try:
            bare = bare_boto3(stub.endpoint, raws, THREADS)
            del raws
            ses = ses_settings(settings, stub.endpoint)
            transport = SesTransport.from_settings(ses, concurrency=THREADS)
            report = run_send(ses, library, issue, transport, template, threads=THREADS)
            ours = report.sent / report.elapsed
            print(
                f"2. unpaced, {n} messages, {THREADS} threads: send_issue {ours:.0f}/s, "
                f"bare boto3 send_email {bare:.0f}/s -> {ours / bare:.0%} (goal >= 80%)"
            )
            if workers_compare:
                for workers in (1, 2):
                    with tempfile.TemporaryDirectory() as tmp2:
                        s2, lib2, issue2 = setup(Path(tmp2), n)
                        s2 = ses_settings(s2, stub.endpoint)
                        transport = SesTransport.from_settings(s2, concurrency=THREADS)
                        r = run_send(s2, lib2, issue2, transport, template, threads=THREADS, workers=workers)
                        print(
                            f"5. --workers {workers}: {r.sent} sent in {r.elapsed:.1f} s = {r.sent / r.elapsed:.0f}/s "
                            "(process start-up included)"
                        )
        finally:
            stub.stop()


# --------------------------------------------------------------------------- 3. CPU per recipient


def cpu(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings, library, issue = setup(Path(tmp), n)
        template = build_template(settings, library, issue)
        start = time.process_time()
        for i in range(n):
            template.personalise(Recipient(f"r{i}@example.com", f"R {i}", unsubscribe_token(SECRET, i)))
        personalise = (time.process_time() - start) / n

        with Store.open(settings.database_url) as store:
            store.create_ledger("ledger-only")
            start = time.process_time()
            # as the sender does: each claim also records the previous batch as sent
            done: list[tuple[int, str | None]] = []
            while rows := store.claim_batch("ledger-only", THREADS, record_sent=done):
                done = [(row.subscriber_id, "id") for row in rows]
            store.mark_sent_many("ledger-only", done)
            ledger = (time.process_time() - start) / n

        transport = DiscardTransport()
        start = time.process_time()
        report = run_send(settings, library, issue, transport, template, threads=THREADS)
        whole = (time.process_time() - start) / n
    print(
        f"3. CPU per recipient, {n} recipients, no boto3: whole send {whole * 1000:.3f} ms "
        f"(goal <= 0.1 ms); of which personalise {personalise * 1000:.3f} ms, "
        f"ledger (claim + record, batches of {THREADS}) {ledger * 1000:.3f} ms; {report.sent} sent"
    )


# --------------------------------------------------------------------------- 4. RSS


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings, library, issue = setup(Path(tmp), n)
        template = build_template(settings, library, issue)
        before = peak_mb()
        transport = DiscardTransport()
        report = run_send(settings, library, issue, transport, template, threads=THREADS)
        peak = peak_mb()
    print(
        json.dumps({"n": n, "sent": report.sent, "before_mb": before, "peak_mb": peak, "s": report.elapsed})
    )


def rss(sizes: list[int]) -> None:
    parts = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(n)], capture_output=True, text=True, check=True
        ).stdout
        data = json.loads(out.strip().splitlines()[-1])
        parts.append(
            f"{n // 1000}k: {data['peak_mb']:.0f} MB (after set-up and render {data['before_mb']:.0f} MB, "
            f"{data['sent'] / data['s']:.0f}/s)"
        )
    print("4. peak RSS per send (goal <= 150 MB, flat in N): " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (the paced one takes 25 s)")
    parser.add_argument("--only", choices=["paced", "unpaced", "cpu", "rss"], help="run one part")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    quick = args.quick
    parts = [args.only] if args.only else ["paced", "unpaced", "cpu", "rss"]
    print(
        f"send benchmark: issue {ISSUE}, {THREADS} threads, {os.cpu_count()} CPUs"
        + (" (quick)" if quick else "")
    )
    if "paced" in parts:
        for threads in (THREADS, 16):
            paced(5_000 if quick else 20_000, threads)
    if "unpaced" in parts:
        unpaced(2_000 if quick else 5_000, workers_compare=True)
    if "cpu" in parts:
        cpu(5_000 if quick else 20_000)
    if "rss" in parts:
        rss([5_000, 20_000] if quick else [10_000, 30_000, 100_000])


if __name__ == "__main__":
    main()
