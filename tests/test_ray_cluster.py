"""Scale-out onto real Ray head nodes on loopback, as a user runs it (issue 29).

Two heads are started once for the module with ``ray start --head --block`` in their own
process groups (ended by group at teardown): one finds ``~/.ray/auth_token`` in its home
(what Ray's own local ``ray.init()`` leaves behind) and so turns token authentication on,
the other finds none and runs without it. The driver runs in this process with a home and
a Ray temp folder of its own, so neither the machine's ``~/.ray`` nor ``/tmp/ray`` is read.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from media import read_video
from test_segments import make_gop_video

from vidsr.cli import main
from vidsr.media.codecs import EncodeOptions
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import upscale_video
from vidsr.scaleout.ray import ScaleOut, upscale_distributed

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="ray is not installed (pip install -e '.[ray]')")

START_S = 120  # two heads starting together on 2 busy cores take 20-40 s


@dataclass(frozen=True)
class Head:
    """A running head node: its address, the home it was started in, its token (None: no auth)."""

    address: str
    home: Path
    token: str | None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_env(**extra: str) -> dict[str, str]:
    """This process's environment without any RAY_* setting, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | extra


def _start_head(root: Path, *, token: str | None) -> tuple[subprocess.Popen, Head, Path, Path]:
    home = root / "home"
    (home / ".ray").mkdir(parents=True)
    if token is not None:
        (home / ".ray" / "auth_token").write_text(token)
    temp = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = _free_port()
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


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> dict[str, Head]:
    """``{"token": Head, "off": Head}``, started together, ready within ``START_S`` seconds."""
    started = {name: _start_head(tmp_path_factory.mktemp(f"head-{name}"),
                                 token=f"vidsr-test-{secrets.token_hex(16)}" if name == "token" else None)
               for name in ("token", "off")}
    try:
        deadline = time.monotonic() + START_S
        for proc, _, temp, log in started.values():
            # `ray start` writes the address file once the node is up
            while not (temp / "ray_current_cluster").is_file():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray start --head did not come up:\n{log.read_text()[-3000:]}")
                time.sleep(0.25)
        yield {name: head for name, (_, head, _, _) in started.items()}
    finally:
        for proc, _, temp, _ in started.values():
            _stop(proc)
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def driver(tmp_path, monkeypatch) -> Path:
    """A home and a Ray temp folder of this test's own for the driver (this process); returns the home."""
    home = tmp_path / "driver-home"
    home.mkdir()
    for k in [k for k in os.environ if k.startswith("RAY_")]:
        monkeypatch.delenv(k)
    temp = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RAY_TMPDIR", str(temp))
    yield home
    shutil.rmtree(temp, ignore_errors=True)


def _config(tiny_ckpt: Path) -> UpscaleConfig:
    return UpscaleConfig(model=str(tiny_ckpt), tile=16, encode=EncodeOptions(preset="ultrafast"))


@pytest.mark.parametrize("auth", ["token", "off"])
def test_a_cluster_run_equals_a_one_process_run(tmp_path, tiny_ckpt, heads, driver, monkeypatch, auth):
    # same machine, same home as the head: the token is the one `ray start` found there
    head = heads[auth]
    monkeypatch.setenv("HOME", str(head.home))
    src = make_gop_video(tmp_path / "in.mp4", frames=24, fps=12, gop=12)  # two 1 s segments
    upscale_video(src, tmp_path / "single.mp4", config=_config(tiny_ckpt))
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "multi.mp4"), "--model", str(tiny_ckpt),
                                  "--tile", "16", "--preset", "ultrafast", "--workers", "2", "--segment-s", "1",
                                  "--ray-address", head.address, "-q"])
    assert r.exit_code == 0, r.output
    a, pa, _ = read_video(tmp_path / "single.mp4")
    b, pb, _ = read_video(tmp_path / "multi.mp4")
    assert len(b) == len(a) == 24 and pb == pa and b[0].shape == a[0].shape == (96, 128, 3)


def test_a_local_run_before_a_cluster_run(tmp_path, tiny_ckpt, heads, driver, capfd, monkeypatch):
    # the local run starts a private Ray on 127.0.0.1 with a token of its own: it leaves no
    # ~/.ray/auth_token (with which a later `ray start --head` turns authentication on) and
    # prints no token notice; the cluster run after it, in the same process, uses the user's token
    src = make_gop_video(tmp_path / "in.mp4", frames=24, gop=12)
    monkeypatch.setenv("RAY_AUTH_TOKEN", heads["token"].token)
    gcs: list[str] = []

    def on_progress(done: int, total: int) -> None:
        import ray

        gcs.append(ray.get_runtime_context().gcs_address)

    local = upscale_distributed(src, tmp_path / "local.mp4", config=_config(tiny_ckpt), on_progress=on_progress,
                                scale_out=ScaleOut(workers=1, segment_s=0.5, cpus_per_worker=1))
    assert local.frames == 24 and gcs and all(a.startswith("127.0.0.1:") for a in gcs), gcs
    assert not (driver / ".ray").exists()
    assert os.environ["RAY_AUTH_TOKEN"] == heads["token"].token and "RAY_AUTH_MODE" not in os.environ
    joined = upscale_distributed(src, tmp_path / "cluster.mp4", config=_config(tiny_ckpt),
                                 scale_out=ScaleOut(workers=2, segment_s=0.5, address=heads["token"].address))
    assert joined.frames == 24 and read_video(tmp_path / "cluster.mp4")[1] == read_video(tmp_path / "local.mp4")[1]
    err = capfd.readouterr().err
    assert "oken authentication" not in err and "gcs_client" not in err, err


def test_a_stale_current_cluster_file_does_not_stop_a_local_run(tmp_path, tiny_ckpt, driver, capfd):
    # a head that died without `ray stop` is still named in Ray's current-cluster file (in
    # $RAY_TMPDIR/ray, Ray's default temp folder); ray.init(num_cpus=...) would try to join it
    stale = Path(os.environ["RAY_TMPDIR"], "ray", "ray_current_cluster")
    stale.parent.mkdir()
    stale.write_text(f"127.0.0.1:{_free_port()}")
    src = make_gop_video(tmp_path / "in.mp4", frames=12, gop=12)
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_ckpt),
                                  "--workers", "1", "-q"])
    assert r.exit_code == 0, r.output
    assert len(read_video(tmp_path / "out.mp4")[0]) == 12
    assert r.output == "" and capfd.readouterr().err == ""  # -q: not a line from Ray either


@pytest.mark.parametrize("token,error", [
    ("wrong", "refused the token from RAY_AUTH_TOKEN: print the cluster's token with `ray get-auth-token`"),
    (None, "uses token authentication and no token was found: print the cluster's token with `ray get-auth-token`"),
])
def test_a_missing_or_wrong_token_is_one_line(tmp_path, tiny_ckpt, heads, driver, capfd, monkeypatch, token, error):
    if token is not None:
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    src = make_gop_video(tmp_path / "in.mp4", frames=12, gop=12)
    t0 = time.monotonic()
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_ckpt),
                                  "--workers", "2", "--ray-address", heads["token"].address])
    assert r.exit_code != 0 and error in r.output and r.output.strip().count("\n") == 0, r.output
    assert time.monotonic() - t0 < 10  # asked once, not Ray's 20 s of retries
    assert capfd.readouterr().err == ""  # no gRPC warnings
    assert not (tmp_path / "out.mp4").exists()
