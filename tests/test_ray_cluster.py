"""Scale-out onto real Ray head nodes on loopback, as a user runs it (issue 29).

The heads (one with token authentication, one without) are started once for the session
(tests/ray_heads.py, the ``ray_heads`` fixture, shared with tests/test_distributed.py). The
driver runs in this process with a home and a Ray temp folder of its own, so neither the
machine's ``~/.ray`` nor ``/tmp/ray`` is read. Each run that starts actors costs seconds, so
each proves several things: 54 s for the file with the heads' start-up (18 s), on 2 cores at load 4
(the file took 69 s on a quiet machine before the heads were shared and the runs merged).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from media import read_video
from ray_heads import free_port
from test_segments import make_gop_video

from vidsr.cli import main
from vidsr.media.codecs import EncodeOptions
from vidsr.pipeline.config import UpscaleConfig
from vidsr.pipeline.run import upscale_video
from vidsr.scaleout.ray import ScaleOut, upscale_distributed

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="ray is not installed (pip install -e '.[ray]')")


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
    # crf 0 is lossless: pixel differences are the pipeline's, not the encoder's
    return UpscaleConfig(model=str(tiny_ckpt), tile=16, encode=EncodeOptions(crf=0, preset="ultrafast"))


def _same_as_one_process(path: Path, single: Path, *, segment: int) -> None:
    """``path`` holds the frames and pts of the one-process run ``single``: identical pixels, except
    just after a segment start (the mask there was warmed up on fewer frames)."""
    a, pa, _ = read_video(single)
    b, pb, _ = read_video(path)
    assert len(b) == len(a) and pb == pa and b[0].shape == a[0].shape == (96, 128, 3)
    for i, (x, y) in enumerate(zip(a, b)):
        diff = np.abs(x.astype(int) - y.astype(int))
        if i % segment >= 4 or i < segment:
            assert diff.max() == 0, i
        else:
            assert diff.mean() < 0.5 and diff.max() <= 32, (i, diff.mean(), diff.max())


def test_a_local_run_despite_a_stale_cluster_file_then_a_cluster_run_with_a_token(
        tmp_path, tiny_ckpt, ray_heads, driver, capfd, monkeypatch):
    # A head that died without `ray stop` is still named in Ray's current-cluster file (in
    # $RAY_TMPDIR/ray, Ray's default temp folder): ray.init(num_cpus=...) would try to join it.
    # The local run starts a private Ray on 127.0.0.1 with a token of its own: it leaves no
    # ~/.ray/auth_token (with which a later `ray start --head` turns authentication on), prints no
    # line, and puts the environment back as it was (the user's RAY_AUTH_TOKEN, no RAY_AUTH_MODE,
    # nothing ray.init set). The cluster run after it, in the same process, uses the user's token.
    # One worker each: spreading segments over workers is tested in tests/test_distributed.py.
    stale = Path(os.environ["RAY_TMPDIR"], "ray", "ray_current_cluster")
    stale.parent.mkdir()
    stale.write_text(f"127.0.0.1:{free_port()}")
    head = ray_heads["token"]
    monkeypatch.setenv("RAY_AUTH_TOKEN", head.token)
    src = make_gop_video(tmp_path / "in.mp4", frames=24, gop=12)
    upscale_video(src, tmp_path / "single.mp4", config=_config(tiny_ckpt))
    importlib.import_module("ray")  # sets RAY_CLIENT_MODE once for the process, when imported

    env = dict(os.environ)
    gcs: list[str] = []

    def on_progress(done: int, total: int) -> None:
        import ray

        gcs.append(ray.get_runtime_context().gcs_address)

    local = upscale_distributed(src, tmp_path / "local.mp4", config=_config(tiny_ckpt), on_progress=on_progress,
                                scale_out=ScaleOut(workers=1, segment_s=0.5, cpus_per_worker=1))
    assert local.frames == 24 and gcs and all(a.startswith("127.0.0.1:") for a in gcs), gcs
    assert gcs[0] != stale.read_text()
    assert not (driver / ".ray").exists()
    assert dict(os.environ) == env
    assert capfd.readouterr().err == ""  # not a line from Ray
    joined = upscale_distributed(src, tmp_path / "cluster.mp4", config=_config(tiny_ckpt),
                                 scale_out=ScaleOut(workers=1, segment_s=0.5, address=head.address))
    assert joined.frames == 24 and joined.segments == 2 and dict(os.environ) == env
    _same_as_one_process(tmp_path / "local.mp4", tmp_path / "single.mp4", segment=12)
    _same_as_one_process(tmp_path / "cluster.mp4", tmp_path / "single.mp4", segment=12)
    err = capfd.readouterr().err
    assert "oken authentication" not in err and "gcs_client" not in err, err


def test_a_cluster_without_authentication_is_joined_from_the_cli(tmp_path, tiny_ckpt, ray_heads, driver, capfd):
    # one worker: what is checked is the join and the output, not the spreading
    src = make_gop_video(tmp_path / "in.mp4", frames=24, fps=12, gop=12)  # two 1 s segments
    upscale_video(src, tmp_path / "single.mp4", config=_config(tiny_ckpt))
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "multi.mp4"), "--model", str(tiny_ckpt),
                                  "--tile", "16", "--crf", "0", "--preset", "ultrafast", "--workers", "1",
                                  "--segment-s", "1", "--ray-address", ray_heads["off"].address, "-q"])
    assert r.exit_code == 0 and r.output == "", r.output
    _same_as_one_process(tmp_path / "multi.mp4", tmp_path / "single.mp4", segment=12)
    assert capfd.readouterr().err == ""


def test_the_join_asks_for_the_mode_and_token_the_cluster_wants(ray_heads, driver, monkeypatch):
    # what each head wants, asked as a join asks it (no actors): none from the head without
    # authentication; from the token head, the token Ray itself would send, from each place it looks
    from vidsr.scaleout.connect import _cluster_auth_mode

    token = ray_heads["token"]
    assert _cluster_auth_mode(ray_heads["off"].address) == "disabled"
    monkeypatch.setenv("HOME", str(token.home))  # ~/.ray/auth_token, as `ray start` found it
    assert _cluster_auth_mode(token.address) == "token"
    monkeypatch.setenv("HOME", str(driver))
    path = driver / "token.txt"
    path.write_text(token.token + "\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    assert _cluster_auth_mode(token.address) == "token"


@pytest.mark.parametrize("token,error", [
    ("wrong", "refused the token from RAY_AUTH_TOKEN: print the cluster's token with `ray get-auth-token`"),
    (None, "uses token authentication and no token was found: print the cluster's token with `ray get-auth-token`"),
])
def test_a_missing_or_wrong_token_is_one_line(tmp_path, tiny_ckpt, ray_heads, driver, capfd, monkeypatch, token,
                                              error):
    if token is not None:
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    src = make_gop_video(tmp_path / "in.mp4", frames=12, gop=12)
    t0 = time.monotonic()
    r = CliRunner().invoke(main, ["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_ckpt),
                                  "--workers", "2", "--ray-address", ray_heads["token"].address])
    assert r.exit_code != 0 and error in r.output and r.output.strip().count("\n") == 0, r.output
    assert time.monotonic() - t0 < 10  # asked once, not Ray's 20 s of retries
    assert capfd.readouterr().err == ""  # no gRPC warnings
    assert not (tmp_path / "out.mp4").exists()
