"""The CLI starts light: help, --version and ``vidsr models`` load click and nothing heavy.

Each case runs in a fresh interpreter (this test process has torch loaded already).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vidsr.cli import COMMANDS, main

HEAVY = ("torch", "numpy", "cv2", "av", "onnx", "onnxruntime", "tqdm")

# runs main as the `vidsr` script does, then prints which heavy modules got imported
RUNNER = """
import json, os, sys
from vidsr.cli import main
try:
    main.main(sys.argv[1:], prog_name="vidsr", standalone_mode=False)
except SystemExit:
    pass
print(json.dumps({"heavy": [m for m in %r if m in sys.modules], "spin": os.environ.get("GOMP_SPINCOUNT")}),
      file=sys.stderr)
""" % (HEAVY,)

LIGHT = [["--help"], ["--version"], ["models"], ["dataset", "build", "--help"], ["dataset", "show", "--help"]]
LIGHT += [[name, "--help"] for name in sorted(COMMANDS)]


def _run(args: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    r = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", LIGHT, ids=" ".join)
def test_light_commands_import_nothing_heavy(args):
    assert _run(args)["heavy"] == []


def test_openmp_waits_are_set_before_a_command_runs():
    assert _run(["models"])["spin"] == "3000"


def test_group_help_lists_each_command_with_its_own_short_help():
    # the short help kept in COMMANDS (so `vidsr --help` imports no command) is the command's own
    for name in COMMANDS:
        command = main.get_command(None, name)
        assert command is not None and command.name == name
        assert COMMANDS[name][1] == command.get_short_help_str(limit=1000), name


def test_samplers_listed_by_train_are_the_library_ones():
    from vidsr.cli.train import SAMPLERS
    from vidsr.train.samplers import SAMPLERS as library

    assert SAMPLERS == library
