"""An installed wheel works: it carries the shipped models and the person model, and runs.

Builds the wheel from a copy of the sources (so parallel runs do not share build/), installs it
into a fresh venv that sees this interpreter's packages (torch etc. are not downloaded again), and
runs the venv's ``vidsr`` isolated (``-I``, a cwd outside the checkout, no PYTHONPATH), checking
that the vidsr it imports is the venv's, not the editable checkout. About 25-40 s on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_ships_models_and_runs_the_sample(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIDSR_MODELS_DIR", "VIDSR_PERSON_MODEL_DIR")}
    src = tmp_path / "src"
    shutil.copytree(ROOT / "vidsr", src / "vidsr", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
          str(src)], cwd=tmp_path, env=env)
    (wheel,) = dist.glob("vidsr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("manifest.json", "compact-x2-lite.pt", "compact-x2.pt", "compact-x4.pt",
              "person/selfie_segmentation.tflite", "person/selfie_segmentation_landscape.tflite",
              "person/LICENSE-Apache-2.0.txt"):
        assert f"vidsr/models/{f}" in names, f
    assert "vidsr/assets/sample.jpg" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    py = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--force-reinstall", "-q",
          str(wheel)], cwd=tmp_path, env=env)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    vidsr = [str(py), "-I", str(env_dir / "bin" / "vidsr")]
    listed = _run([*vidsr, "models"], cwd=run_dir, env=env)
    assert "compact-x2-lite" in listed and "compact-x4" in listed
    _run([*vidsr, "upscale", "--sample", "-o", "out.mp4", "-q"], cwd=run_dir, env=env)
    # one interpreter start for both checks: where vidsr and its models come from, and the output's size
    *where, width, height = _run([str(py), "-I", "-c", "import vidsr, vidsr.weights as w; print(vidsr.__file__); "
                                  "print(w.models_dir()); i = vidsr.probe('out.mp4'); print(i.width, i.height)"],
                                 cwd=run_dir, env=env).split()
    assert len(where) == 2 and all(Path(p).is_relative_to(env_dir) for p in where), where
    assert (width, height) == ("1920", "1080")
