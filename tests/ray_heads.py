"""Real Ray head nodes on loopback for the scale-out tests, started once for the whole session.

Two heads are started together with ``ray start --head --block`` in their own process groups
(ended by group at the end of the session): one finds ``~/.ray/auth_token`` in its home (what
Ray's own local ``ray.init()`` leaves behind) and so turns token authentication on, the other
finds none and runs without it. tests/conftest.py hands them out as the ``ray_heads`` fixture
(tests/test_ray_cluster.py joins both; tests/test_distributed.py runs its jobs on the one
without authentication instead of starting a private Ray of its own).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_S = 120  # two heads starting together on 2 busy cores take 20-40 s


@dataclass(frozen=True)
class Head:
    """A running head node: its address, the home it was started in, its token (None: no auth)."""

    address: str
    home: Path
    token: str | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_env(**extra: str) -> dict[str, str]:
    """This process's environment without any RAY_* setting, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | extra


def _start(root: Path, *, token: str | None) -> tuple[subprocess.Popen, Head, Path, Path]:
    home = root / "home"
    (home / ".ray").mkdir(parents=True)
    if token is not None:
        (home / ".ray" / "auth_token").write_text(token)
    temp = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = free_port()
    log = root / "head.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
             "--port", str(port), "--temp-dir", str(temp), "--num-cpus", "2", "--object-store-memory", str(80 << 20),
             "--include-dashboard", "false", "--disable-usage-stats"],
            env=_ray_env(HOME=str(home), RAY_TMPDIR=str(temp)), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, Head(address=f"127.0.0.1:{port}", home=home, token=token), temp, log


def _stop(proc: subprocess.Popen) -> None:
    """End the head's whole process group (ray start, GCS, raylet, workers); never by name."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@contextmanager
def running_heads(root: Path) -> Iterator[dict[str, Head]]:
    """``{"token": Head, "off": Head}``, started together, ready within ``START_S`` seconds.

    Raises:
        RuntimeError: a head did not come up (with the end of its log).
    """
    started = {}
    try:
        for name in ("token", "off"):
            token = f"vidsr-test-{secrets.token_hex(16)}" if name == "token" else None
            started[name] = _start(root / f"head-{name}", token=token)
        deadline = time.monotonic() + START_S
        for proc, _, temp, log in started.values():
            # `ray start` writes the address file once the node is up
            while not (temp / "ray_current_cluster").is_file():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ray start --head did not come up:\n{log.read_text()[-3000:]}")
                time.sleep(0.25)
        yield {name: head for name, (_, head, _, _) in started.items()}
    finally:
        for proc, _, temp, _ in started.values():
            _stop(proc)
            shutil.rmtree(temp, ignore_errors=True)
