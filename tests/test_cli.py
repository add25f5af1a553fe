from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from media import make_audio_only, make_video, make_zero_frames, read_video
from vidsr.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def _no_outputs(folder: Path, name: str) -> bool:
    return not (folder / name).exists() and not list(folder.glob(".*vidsr-*"))


def test_upscale_tiny_clip(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=5, audio=True)
    r = _run("upscale", src, "-o", tmp_path / "out.mp4", "--model", tiny_ckpt, "--tile", "16")
    assert r.exit_code == 0, r.output
    assert "5 frames 64x48 -> 128x96" in r.output and "fps" in r.output
    frames, _, facts = read_video(tmp_path / "out.mp4")
    assert len(frames) == 5 and facts["streams"] == ["video", "audio"]


@pytest.mark.parametrize("mode", [(), ("--full-frame",)], ids=["partial", "full-frame"])
def test_ort_backend_gives_torchs_pixels(tmp_path, tiny_ckpt, mode):
    """The same run on ONNX Runtime and on torch, written as lossless PNG frames: equal but for
    rounding (a float difference of ~1e-6 can tip a value across .5)."""
    src = make_video(tmp_path / "in.mp4", frames=3)
    frames = {}
    for backend in ("ort", "torch"):
        (tmp_path / backend).mkdir()
        r = _run("upscale", src, "-o", tmp_path / backend / "%03d.png", "--model", tiny_ckpt, "--tile", "16",
                 *mode, "--backend", backend, "-q")
        assert r.exit_code == 0, r.output
        assert r.output == ""
        frames[backend] = [cv2.imread(str(p)).astype(int) for p in sorted((tmp_path / backend).glob("*.png"))]
    assert len(frames["ort"]) == len(frames["torch"]) == 3
    for a, b in zip(frames["ort"], frames["torch"]):
        assert a.shape == (96, 128, 3) and np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01


def _bad_cases(tmp_path: Path, tiny_ckpt: Path):
    ok = make_video(tmp_path / "ok.mp4", frames=4)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    prose = tmp_path / "readme.txt"  # FFmpeg's tty demuxer would render it as a video
    prose.write_text("plain text, which FFmpeg can draw as terminal art\n" * 40)
    audio = make_audio_only(tmp_path / "audio.m4a")
    zero = make_zero_frames(tmp_path / "zero.mkv")
    full = make_video(tmp_path / "full.mp4", frames=30)
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    bad_w = tmp_path / "bad.pt"
    payload = torch.load(tiny_ckpt, weights_only=True)
    payload["config"]["num_conv"] = 5
    torch.save(payload, bad_w)
    m = ("--model", tiny_ckpt)
    return [
        ("missing input", (tmp_path / "nope.mp4", *m), "input not found"),
        ("not a video", (text, *m), "not a readable video file"),
        ("text file", (prose, *m), "not a video file: "),
        ("no video stream", (audio, *m), "no video stream"),
        ("zero frames", (zero, *m), "no video frames"),
        ("truncated", (trunc, *m), "not a readable video file"),
        ("unknown model", (ok, "--model", "nope-x2"), "unknown model 'nope-x2'"),
        ("weights mismatch", (ok, "--model", bad_w), "do not match architecture"),
        ("shipped scale mismatch", (ok, "--model", tiny_ckpt, "--scale", "4"), "upscales x2, but --scale 4"),
    ]


def test_bad_inputs_give_one_line_errors_and_no_output(tmp_path, tiny_ckpt):
    for label, args, message in _bad_cases(tmp_path, tiny_ckpt):
        out = tmp_path / "out" / f"{label.replace(' ', '_')}.mp4"
        out.parent.mkdir(exist_ok=True)
        r = _run("upscale", args[0], "-o", out, *args[1:])
        assert r.exit_code != 0, label
        assert message in r.output, (label, r.output)
        assert "Traceback" not in r.output and r.output.strip().count("\n") == 0, (label, r.output)
        assert _no_outputs(out.parent, out.name), label


@pytest.mark.parametrize("target,message", [
    ("missing_dir/out.mp4", "output folder does not exist"),
    ("SAME", "same file as the input"),
    ("noext", "needs a container extension"),
    ("out.notacontainer", "cannot write"),
    ("/proc/vidsr-out.mp4", "cannot"),
])
def test_unwritable_outputs(tmp_path, tiny_ckpt, target, message):
    src = make_video(tmp_path / "in.mp4", frames=3)
    out = src if target == "SAME" else (Path(target) if target.startswith("/") else tmp_path / target)
    before = src.read_bytes()
    r = _run("upscale", src, "-o", out, "--model", tiny_ckpt)
    assert r.exit_code != 0 and message in r.output, r.output
    assert "Traceback" not in r.output
    assert src.read_bytes() == before
    if target != "SAME":
        assert not out.exists()


def test_failure_mid_run_leaves_no_file(tmp_path, tiny_ckpt, monkeypatch):
    import vidsr.frame as frame

    src = make_video(tmp_path / "in.mp4", frames=8)
    calls = {"n": 0}
    real = frame.sr_tiles

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("boom")
        return real(*a, **k)

    monkeypatch.setattr(frame, "sr_tiles", flaky)
    r = _run("upscale", src, "-o", tmp_path / "out.mp4", "--model", tiny_ckpt, "--full-frame")
    assert r.exit_code != 0 and "boom" in r.output
    assert _no_outputs(tmp_path, "out.mp4")


def test_input_or_sample_required(tmp_path):
    r = _run("upscale", "-o", tmp_path / "o.mp4")
    assert r.exit_code != 0 and "give either INPUT or --sample" in r.output


def test_sample_command_writes_a_clip_with_audio(tmp_path):
    r = _run("sample", tmp_path / "s.mp4", "--seconds", "0.5", "--size", "320x180")
    assert r.exit_code == 0, r.output
    frames, pts, facts = read_video(tmp_path / "s.mp4")
    assert len(frames) == 15 and frames[0].shape == (180, 320, 3)
    assert facts["streams"] == ["video", "audio"]


def test_sample_from_a_photo_of_your_own(tmp_path):
    import cv2
    import numpy as np

    # a 200x120 photo: smooth colour ramps, so H.264 at crf 16 keeps them within a few levels
    yy, xx = np.mgrid[0:120, 0:200].astype(np.float32)
    photo = np.stack([xx * 1.2, yy * 2.0, 255 - xx], axis=-1).clip(0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "p.png"), photo[:, :, ::-1])
    r = _run("sample", tmp_path / "gt.mp4", "--photo", tmp_path / "p.png", "--size", "64x36",
             "--seconds", "0.2", "--ground-truth")
    assert r.exit_code == 0, r.output
    frames, _, _ = read_video(tmp_path / "gt.mp4")
    assert len(frames) == 6 and frames[0].shape == (72, 128, 3)
    # the pan starts at the photo's top-left corner and ends at its right edge, half-way down
    assert np.abs(frames[0].astype(int) - photo[:72, :128]).mean() < 2
    assert np.abs(frames[-1].astype(int) - photo[:72, :128]).mean() > 10  # moved
    assert np.abs(frames[-1].astype(int) - photo[24:96, -128:]).mean() < 2
    assert "warning" not in r.output
    r = _run("sample", tmp_path / "big.mp4", "--photo", tmp_path / "p.png", "--size", "160x90", "--seconds", "0.2")
    assert r.exit_code == 0, r.output
    assert "warning: p.png is 200x120, smaller than the 320x180 crops" in r.output
    assert read_video(tmp_path / "big.mp4")[0][0].shape == (90, 160, 3)


@pytest.mark.parametrize("what", ["missing", "text"])
def test_sample_refuses_a_bad_photo(tmp_path, what):
    photo = tmp_path / "p.jpg"
    if what == "text":
        photo.write_text("not an image")
    r = _run("sample", tmp_path / "s.mp4", "--photo", photo, "--seconds", "0.2")
    assert r.exit_code == 1, r.output
    assert len(r.output.strip().splitlines()) == 1 and str(photo) in r.output
    assert _no_outputs(tmp_path, "s.mp4")


def test_merged_and_fixed_tiles_give_the_same_video(tmp_path, tiny_ckpt):
    # --no-merge runs the fixed 16-px tiles (as GPUs do); merged rectangles must not change the output
    import numpy as np

    src = make_video(tmp_path / "in.mp4", frames=6, width=96, height=64)
    outs = []
    for flag in ("--merge", "--no-merge"):
        out = tmp_path / f"out{flag}.mkv"
        r = _run("upscale", src, "-o", out, "--model", tiny_ckpt, "--tile", "16", "--crf", "0",
                 "--preset", "ultrafast", flag, "-q")
        assert r.exit_code == 0, r.output
        outs.append(read_video(out)[0])
    assert len(outs[0]) == len(outs[1]) == 6
    for a, b in zip(*outs):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_openmp_threads_spin_briefly_unless_the_environment_says(monkeypatch):
    import os

    from vidsr.platform import SPIN_COUNT, short_waits

    for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        monkeypatch.delenv(k, raising=False)
    short_waits()
    assert os.environ["GOMP_SPINCOUNT"] == SPIN_COUNT and os.environ["KMP_BLOCKTIME"] == "0"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.delenv("KMP_BLOCKTIME")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    short_waits()
    assert "GOMP_SPINCOUNT" not in os.environ and "KMP_BLOCKTIME" not in os.environ


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_it_warns(tmp_path, tiny_ckpt, monkeypatch, native):
    monkeypatch.setattr("vidsr.platform.native_bf16", lambda: native)
    src = make_video(tmp_path / "in.mp4", frames=2)
    r = _run("upscale", src, "-o", tmp_path / "out.mp4", "--model", tiny_ckpt, "--tile", "16",
             "--precision", "bf16", "-q")
    assert r.exit_code == 0, r.output
    assert ("warning: --precision bf16: this CPU has no native bf16" in r.output) != native
    assert len(read_video(tmp_path / "out.mp4")[0]) == 2


def test_scale_follows_the_model(tmp_path):
    # --model compact-x4 without --scale upscales x4 (the model's scale), not the x2 default
    src = make_video(tmp_path / "in.mp4", frames=2)
    r = _run("upscale", src, "-o", tmp_path / "out.mp4", "--model", "compact-x4", "--tile", "16")
    assert r.exit_code == 0, r.output
    frames, _, _ = read_video(tmp_path / "out.mp4")
    assert len(frames) == 2 and frames[0].shape[:2] == (48 * 4, 64 * 4)


def test_models_lists_the_manifest_and_marks_the_defaults():
    from vidsr.weights import DEFAULT_MODELS, read_manifest

    r = _run("models")
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.output.splitlines()}
    assert set(lines) == set(read_manifest())
    for name, line in lines.items():
        marked = "(default for --scale" in line
        assert marked == (name in DEFAULT_MODELS.values()), line


def test_model_help_names_the_default_models():
    from vidsr.cli.options import DEFAULT_MODELS_HELP
    from vidsr.weights import DEFAULT_MODELS

    assert DEFAULT_MODELS_HELP == ", ".join(f"{name} for x{s}" for s, name in sorted(DEFAULT_MODELS.items()))
    for command in ("upscale", "compare", "bench", "export"):
        r = _run(command, "--help")
        assert r.exit_code == 0 and DEFAULT_MODELS_HELP in " ".join(r.output.split()), command
