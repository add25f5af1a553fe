"""The package reads as layers: a module imports only from its own layer or the ones below.

Every ``import``/``from ... import`` in vidsr/ is read from the source (function-level ones too)
and checked against :data:`LAYERS`. Modules inside one subpackage may import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vidsr"

# module or package (dotted, without the leading "vidsr.") -> layer; the longest prefix wins
LAYERS: dict[str, int] = {
    "errors": 0, "checks": 0, "metrics": 0, "platform": 0, "fs": 0, "extras": 0,
    "media": 1, "arch": 1, "tiling": 1, "composite": 1,
    "weights": 2, "checkpoint": 2, "backends": 2, "masks": 2,
    "sr": 3, "frame": 3,
    "pipeline": 4,
    "scaleout": 5, "compare": 5, "bench": 5, "export": 5, "train": 5,
    "cli": 6,
}
MAX_LINES = 600


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def layer_of(name: str) -> int | None:
    """Layer of ``name`` (dotted, without "vidsr."); None for the package root itself."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    return None


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported vidsr module without "vidsr.") for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if name else []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "vidsr" or alias.name.startswith("vidsr."):
                    found.append((node.lineno, alias.name[len("vidsr."):]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "vidsr" or node.module.startswith("vidsr.")):
                mod = node.module[len("vidsr."):] if node.module != "vidsr" else ""
            else:
                continue
            if mod == "" or mod in LAYERS:
                # `from vidsr import x` / `from vidsr.pkg import sub`: each name may be a module
                for alias in node.names:
                    sub = f"{mod}.{alias.name}" if mod else alias.name
                    found.append((node.lineno, sub if _is_module(sub) else mod))
            else:
                found.append((node.lineno, mod))
    return sorted(set(found))


def _top(name: str) -> str:
    return name.split(".")[0]


def test_every_module_has_a_layer():
    missing = [name for name, _ in _modules() if name and layer_of(name) is None]
    assert not missing, f"modules with no layer in LAYERS: {missing}"


def test_lower_layers_never_import_higher_ones():
    bad = []
    for name, path in _modules():
        if not name:
            continue  # vidsr/__init__.py: the lazy public API may name anything
        mine = layer_of(name)
        for line, target in _imports(name, path):
            if not target or target == "__version__":
                continue
            theirs = layer_of(target)
            if theirs is None:
                continue
            if _top(target) == _top(name):
                continue  # within one package or module
            if theirs > mine:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} (L{mine}) imports vidsr.{target} (L{theirs})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_layer_walk_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from vidsr.cli import main\n    from vidsr import errors\n    import vidsr.pipeline.run\n"
                   "from . import tiling\nfrom .masks import focus\n")
    found = sorted(t for _, t in _imports("sr", src))
    assert found == ["cli", "errors", "masks.focus", "pipeline.run", "tiling"]
    assert layer_of("cli") > layer_of("sr")  # so the walk above would flag sr -> cli


def test_no_module_is_over_the_size_limit():
    long = []
    for name, path in _modules():
        n = len(path.read_text().splitlines())
        if n > MAX_LINES:
            long.append(f"{path.relative_to(PACKAGE.parent)}: {n} lines")
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_public_api_is_lazy_and_complete():
    import subprocess
    import sys

    code = ("import sys, vidsr\n"
            "assert 'torch' not in sys.modules and 'av' not in sys.modules, 'import vidsr is not lazy'\n"
            "for name in vidsr.__all__:\n"
            "    assert getattr(vidsr, name) is not None, name\n"
            "print(vidsr.upscale_video.__module__, vidsr.UpscaleConfig.__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert all(m.startswith("vidsr.pipeline") for m in out.stdout.split())
