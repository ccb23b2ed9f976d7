"""A second Ctrl-C ends a send at once, but still says what the ledger holds and how to go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from newsletter.config import load_settings
from newsletter.store import Store
from tests.support.aws import FAKE_AWS_ENV, SesStub
from tests.support.project import make_newsletter
from tests.support.sending import ISSUE, SECRET, add_people

REPO = Path(__file__).parent.parent


def test_second_ctrl_c_prints_the_ledger_and_how_to_resume(tmp_path: Path) -> None:
    folder = make_newsletter(tmp_path)
    settings = load_settings(folder, env={})
    with Store.open(settings.database_url) as store:
        add_people(store, 50)
    # 2 s per message at the stub: once a message is claimed (in flight), the first Ctrl-C
    # waits for it, so the second one always arrives while the send is still stopping
    with SesStub(max_send_rate=1000.0, latency=2.0) as stub:
        env = {**os.environ, **FAKE_AWS_ENV, "NEWSLETTER_SES_ENDPOINT_URL": stub.endpoint_url,
               "NEWSLETTER_SECRET": SECRET, "PYTHONPATH": str(REPO)}  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-c", "from newsletter.cli import main; main()", "--root", str(folder),
             "send", ISSUE, "--transport", "ses", "--yes", "--no-spam-score", "--threads", "2"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not _in_flight(settings.database_url):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the send did not get going"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    with Store.open(settings.database_url) as store:
        counts = store.ledger_counts(ISSUE)
    assert process.returncode == 130, (out, err)
    assert "Aborted!" not in out + err and "Traceback" not in err
    assert (
        f"Quit at once: {counts['sent']} sent, {counts['queued']} still queued, {counts['sending']} uncertain"
        in err
    )
    assert f"Run `newsletter send {ISSUE}` again to send the rest" in err
    assert counts["queued"] > 0


def _in_flight(database_url: str) -> bool:
    """A message is claimed and at the stub (its row is `sending`)."""
    with Store.open(database_url) as store:
        return store.ledger_counts(ISSUE)["sending"] > 0
