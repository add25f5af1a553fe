"""``vidsr bench --threaded``: the real pipeline's per-thread time and critical path."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from media import make_video
from vidsr.bench.threaded import critical_path
from vidsr.cli import main


def test_threaded_bench_accounts_for_every_thread(tmp_path, tiny_ckpt):
    src = make_video(tmp_path / "in.mp4", frames=6, width=128, height=96)
    out = tmp_path / "t.json"
    r = CliRunner().invoke(main, ["bench", str(src), "--threaded", "--model", str(tiny_ckpt), "--backend", "torch",
                                  "--repeat", "2", "--tile", "16", "--frame-workers", "2", "--json", str(out), "-q"])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"partial/torch", "full/torch"}
    for name, res in report["results"].items():
        assert len(res["seconds_runs"]) == 2
        m = res["median"]
        assert m["frames"] == 6 and m["workers"] == 2
        assert {"decode", "mask", "sr-loop", "sr-workers", "encode"} <= set(m["roles"]), m["roles"]
        for role, t in m["roles"].items():
            # busy + waits fill each queue thread's span, which lies within the run
            assert 0 <= t["busy"] and 0 <= t["share"] <= 1.05, (name, role, t)
        for t in m["threads"].values():
            assert t["busy"] >= -1e-6 and t["busy"] + t["get_wait"] + t["put_wait"] <= m["seconds"] * 1.05 + 0.01
        assert m["critical_path"] in m["roles"] and m["critical_path"] != "sr-loop"
        assert m["cpu_ms_per_frame"] == pytest.approx(m["cores_used"] * m["seconds"] * 1000 / m["frames"])
        assert m["host_steal"] is None or 0 <= m["host_steal"] <= 1
    c = report["comparisons"]["torch"]
    assert c["partial_over_full_wall"] > 0 and len(c["per_run"]) == 2
    runs = [report["results"][f"{mode}/torch"]["median"] for mode in ("partial", "full")]
    assert len(c["cpu_per_run"]) == 2 and min(c["cpu_per_run"]) <= c["partial_over_full_cpu"] <= max(c["cpu_per_run"])
    assert "CPU time a frame" in r.output and f"{runs[0]['cpu_ms_per_frame']:.1f}" in r.output
    assert "critical path" in r.output and "host steal" in r.output
    r = CliRunner().invoke(main, ["bench", str(src), "--threaded", "--sweep-fg", "--model", str(tiny_ckpt)])
    assert r.exit_code != 0 and "--threaded" in r.output


def test_critical_path_is_the_busiest_role():
    roles = {"decode": {"share": 0.2}, "sr-loop": {"share": 0.99}, "sr-workers": {"share": 0.8},
             "encode": {"share": 0.5}}
    assert critical_path(roles) == "sr-workers"  # the loop feeding a pool mostly waits for it
    del roles["sr-workers"]
    assert critical_path(roles) == "sr-loop"


def test_steal_share_of_the_machine_between_two_readings():
    from vidsr.platform import cpu_ticks, steal_share

    assert steal_share((10, 1000), (30, 1200)) == pytest.approx(0.1)
    assert steal_share(None, (30, 1200)) is None and steal_share((10, 1000), (10, 1000)) is None
    now = cpu_ticks()  # Linux: /proc/stat's steal and total clock ticks
    assert now is None or 0 <= now[0] <= now[1]
