from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from vidsr.arch import Compact  # noqa: E402
from vidsr.checkpoint import save_checkpoint  # noqa: E402

PROCESS_ENV = ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "SVT_LOG", "TORCHINDUCTOR_CACHE_DIR", "RAY_CLIENT_MODE",
               "LD_LIBRARY_PATH")
"""Set for the whole process on purpose (vidsr.platform.short_waits before OpenMP starts,
vidsr.media.codecs.quiet_svt before SVT-AV1 loads, torch's inductor when it first names its cache,
Ray when it is first imported, OpenCV's loader when cv2 is first imported): restored after each test, but no leak. What ray.init sets is put
back by vidsr.scaleout.connect itself, so it is a leak here."""


@pytest.fixture(autouse=True)
def _no_state_leaks():
    """Fail a test that leaves torch's thread count, the environment, the file-size limit or the working
    directory changed (and put them back), so that no result depends on the order tests run in."""
    threads = torch.get_num_threads()
    env = dict(os.environ)
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)
    cwd = os.getcwd()
    yield
    leaks = []
    if torch.get_num_threads() != threads:
        leaks.append(f"torch threads {threads} -> {torch.get_num_threads()}")
        torch.set_num_threads(threads)
    changed = sorted(k for k in set(env) | set(os.environ)
                     if env.get(k) != os.environ.get(k) and k != "PYTEST_CURRENT_TEST")
    leaks += [f"environment variable {k}" for k in changed if k not in PROCESS_ENV]
    for k in changed:
        if k in env:
            os.environ[k] = env[k]
        else:
            del os.environ[k]
    if resource.getrlimit(resource.RLIMIT_FSIZE) != fsize:
        leaks.append(f"RLIMIT_FSIZE {fsize} -> {resource.getrlimit(resource.RLIMIT_FSIZE)}")
        resource.setrlimit(resource.RLIMIT_FSIZE, fsize)
    if os.getcwd() != cwd:
        leaks.append(f"working directory {os.getcwd()}")
        os.chdir(cwd)
    if leaks:
        pytest.fail("the test left process state changed: " + "; ".join(leaks), pytrace=False)


@pytest.fixture(autouse=True)
def _isolated_export_dir(_no_state_leaks, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VIDSR_EXPORT_DIR", str(tmp_path_factory.getbasetemp() / "export"))


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A small random x2 Compact checkpoint (fast; the shipped models are tested separately)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-x2.pt"
    save_checkpoint(Compact(scale=2, num_feat=8, num_conv=2), path)
    return path


@pytest.fixture(scope="session")
def ray_heads(tmp_path_factory):
    """Two real Ray heads on loopback, one with token authentication and one without, started once
    for the session (tests/ray_heads.py): ``{"token": Head, "off": Head}``."""
    from ray_heads import running_heads

    try:
        with running_heads(tmp_path_factory.mktemp("ray-heads")) as heads:
            yield heads
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def pytest_terminal_summary(terminalreporter, config):
    """Print the random order's seed last, where `pytest -q` shows it too."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"tests ran in random order: rerun it with -p randomly --randomly-seed={seed}")
