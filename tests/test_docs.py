"""What README.md and docs/ show is what vidsr does.

- every ``vidsr ...`` command in their code blocks and inline code names a real command and real
  options (checked against the click commands, i.e. what ``--help`` lists); every ``pip install``
  extra exists; every ``python path.py`` script exists;
- the cheap commands (``mask``, ``models``, ``sample``, ``upscale`` on a file, no extras, GPU or
  Ray) run on a small sample clip in a temp folder, and so does README's Python snippet;
- docs/cli.md equals a fresh ``python docs/gen_cli.py``.

About 20 s on 2 cores (the runs use a 320x180, 0.5 s clip; ``--sample`` itself runs in .ci/run
and tests/test_wheel.py).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vidsr.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
GENERATED = {ROOT / "docs" / "cli.md"}
SHELL = {"bash", "sh", "shell", "console"}
INPUTS = {"in.mp4", "input.mp4", "clip.mp4"}  # placeholder inputs the runs replace by a small clip
CHEAP = {"mask", "models", "sample", "upscale"}
# options that need an extra, a GPU, weights, Ray or a file the docs only name: checked, not run
NOT_RUN = {"--device", "--backend", "--workers", "--ray-address", "--depth-model", "--photo", "--model",
           "--trt", "--sample", "--gt", "--input-fps", "--resume", "--format"}


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, text) of every fenced code block."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"(?ms)^ *```(\w*)\n(.*?)^ *```", text)]


def _shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell block: comments dropped, continuations joined, split at |, &&, ;,
    redirections removed."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split, lex.commenters = True, "#"
        try:
            tokens = list(lex)
        except ValueError:  # an unbalanced quote: not a command
            continue
        cmd: list[str] = []
        skip_next = False
        for t in tokens + ["|"]:
            if skip_next:
                skip_next = False
            elif t in ("<", ">", ">>", "2>"):
                skip_next = True  # the redirection's target
            elif t in ("|", "&&", ";", "||", "&"):
                if cmd:
                    out.append(cmd)
                cmd = []
            else:
                cmd.append(t)
    return out


def _inline_commands(path: Path) -> list[list[str]]:
    text = re.sub(r"(?ms)^ *```.*?^ *```", "", path.read_text())
    found = []
    for span in re.findall(r"`(vidsr [^`]+)`", text):
        try:
            found.append(shlex.split(span.replace("\\|", "|").split(" | ")[0], comments=True))
        except ValueError:
            continue
    return found


def _all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        if path in GENERATED:
            continue
        for lang, text in _blocks(path.read_text()):
            if lang in SHELL:
                found += [(path.name, c) for c in _shell_commands(text)]
        found += [(path.name, c) for c in _inline_commands(path)]
    return found


def _resolve(args: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """(command, its name path, the remaining args) for ``vidsr ARGS``."""
    ctx = click.Context(main, info_name="vidsr")
    cmd: click.Command = main
    names: list[str] = []
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"vidsr {' '.join([*names, args[0]])}: no such command"
        names.append(args[0])
        cmd, args = sub, args[1:]
        ctx = click.Context(cmd, parent=ctx, info_name=names[-1])
    return cmd, names, args


def _options(cmd: click.Command) -> set[str]:
    opts = {"--help", "-h"}
    for p in cmd.params:
        opts.update(p.opts)
        opts.update(p.secondary_opts)
    return opts


def _vidsr_lines() -> list[tuple[str, list[str]]]:
    return [(doc, c[1:]) for doc, c in _all_commands() if c and c[0] == "vidsr"]


def test_docs_show_vidsr_commands():
    assert len(_vidsr_lines()) > 50  # the parser finds them


def test_every_command_and_option_shown_exists():
    bad = []
    for doc, args in _vidsr_lines():
        try:
            cmd, names, rest = _resolve(args)
        except AssertionError as e:
            bad.append(f"{doc}: {e}")
            continue
        known = _options(cmd)
        for t in rest:
            flag = t.split("=", 1)[0]
            if flag.startswith("-") and flag != "-" and not re.fullmatch(r"-\d[\d.]*", flag) and flag not in known:
                bad.append(f"{doc}: vidsr {' '.join(names)}: no option {flag}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_pip_extras_and_scripts_shown_exist():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    bad = []
    for doc, c in _all_commands():
        for t in c:
            for name in re.findall(r"(?:\.|vidsr)\[([\w,]+)\]", t):
                bad += [f"{doc}: no extra [{e}]" for e in name.split(",") if e not in extras]
        if c[:1] in (["python"], ["python3"]) and len(c) > 1 and c[1].endswith(".py"):
            if not (ROOT / c[1]).is_file():
                bad.append(f"{doc}: no script {c[1]}")
    assert not bad, "\n".join(sorted(set(bad)))


def _runnable(args: list[str]) -> bool:
    cmd, names, rest = _resolve(args)
    if not names or names[0] not in CHEAP or any(t.split("=")[0] in NOT_RUN for t in rest):
        return False
    if names == ["upscale"] or names == ["mask"]:
        return bool(rest) and rest[0] in INPUTS and "-" not in rest
    return names == ["models"] or (names == ["sample"] and "--ground-truth" not in rest)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    from vidsr.media.sample import SampleSpec, write_sample

    path = tmp_path_factory.mktemp("docs") / "in.mp4"
    return write_sample(path, spec=SampleSpec(width=320, height=180, seconds=0.5))


def test_cheap_commands_run_on_a_small_clip(tmp_path, small_clip, monkeypatch):
    lines = {tuple(args) for _, args in _vidsr_lines() if _runnable(args)}
    assert len(lines) >= 5
    monkeypatch.chdir(tmp_path)
    for name in INPUTS:
        (tmp_path / name).write_bytes(small_clip.read_bytes())
    for args in sorted(lines):
        out = list(args)
        for i, a in enumerate(out):  # outputs into this folder
            if i and out[i - 1] in ("-o", "--output", "--save-mask"):
                out[i] = Path(a).name
        r = CliRunner().invoke(main, [*out, "-q"] if out[0] in ("upscale",) else out)
        assert r.exit_code == 0, f"vidsr {' '.join(args)}: {r.output}"


def test_readme_python_snippet_runs(tmp_path, small_clip, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using vidsr from Python"):]
    snippet = next(t for lang, t in _blocks(section) if lang == "python")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.mp4").write_bytes(small_clip.read_bytes())
    exec(compile(snippet, "README.md", "exec"), {})
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_cli_reference_is_current():
    # in a fresh interpreter: click commands loaded by other tests may carry changed settings
    import subprocess
    import sys

    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('gen_cli', {str(ROOT / 'docs' / 'gen_cli.py')!r})\n"
            "gen = importlib.util.module_from_spec(spec); spec.loader.exec_module(gen)\n"
            "sys.stdout.write(gen.generate())\n")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert (ROOT / "docs" / "cli.md").read_text() == fresh, "docs/cli.md is stale: python docs/gen_cli.py"
