"""The benchmark: the jitter metric on hand-made tracks, and a real quick run of the command."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtalign.bench.stability import jitter
from rtalign.cli import main


def truth_track(n=10):
    g = np.zeros((n, 68, 2))
    g[:, :, 0] = np.linspace(0, 67, 68)
    g[:, 36] = [0.0, 0.0]
    g[:, 45] = [50.0, 0.0]                               # inter-ocular 50 px
    g += np.arange(n)[:, None, None] * np.array([2.0, 0.0])   # moving right 2 px per frame
    return g


def test_a_tracker_that_follows_exactly_has_zero_excess_jitter():
    g = truth_track()
    raw, excess = jitter(g + 3.0, g)                    # constant offset: wrong, but not jittery
    assert raw == pytest.approx(2.0 / 50 * 100)         # it moves 2 px per frame = 4 % IO
    assert excess == pytest.approx(0.0)


def test_alternating_error_counts_fully():
    g = truth_track()
    p = g.copy()
    p[::2, :, 1] += 1.0                                  # every other frame 1 px down: 1 px change each step
    _, excess = jitter(p, g)
    assert excess == pytest.approx(1.0 / 50 * 100)


def test_quick_bench_writes_table_json_and_results(tmp_path, test_folder):   # needs the 300-W faces
    out, js = tmp_path / "b", tmp_path / "b.json"
    result = CliRunner().invoke(main, ["bench", "--quick", "--models", "cnn", "--peers", "",
                                       "--out", str(out), "--json", str(js)])
    assert result.exit_code == 0, result.output
    rows = json.loads(js.read_text())
    keys = {"name", "nme", "mse256", "fr10", "auc10", "ms_per_face_1t", "ms_per_face_2t", "pipeline_fps",
            "analysis_fps", "codec_fps", "latency_ms_p50", "static_jitter", "motion_jitter", "motion_nme"}
    assert rows[0]["name"] == "cnn" and keys <= rows[0].keys()
    assert all(isinstance(rows[0][k], float) and rows[0][k] > 0 for k in keys - {"name", "fr10"}), rows[0]
    assert 0 <= rows[0]["fr10"] <= 100
    assert rows[0]["rolled_missed"] <= 1 and rows[0]["two_face_per_frame"] == pytest.approx(2, abs=0.1)  # of 4 × 42
    assert all(rows[0][f"rolled_nme_{r}"] < 2 * rows[0]["nme"] for r in (0, 30, 45, 60))     # rolled faces tracked
    text = (out / "RESULTS.md").read_text()
    assert "Machine:" in text and "rtalign bench --quick" in text and "| NME % |" in text
    assert "| NME % rolled 45° (tracked) |" in text and "| two-face clip: pipeline / codec |" in text
    assert (out / "ced.png").stat().st_size > 1000


def test_the_ced_plot_leaves_the_hosts_matplotlib_backend_alone(tmp_path):
    """Library code must not switch the backend of the program that imports it (no pyplot, no matplotlib.use)."""
    import subprocess
    import sys
    code = ("import sys, numpy as np, matplotlib; matplotlib.use('svg'); "
            "from rtalign.bench.report import plot_ced; "
            f"assert plot_ced({str(tmp_path / 'ced.png')!r}, {{'m': np.array([1.0, 4.0, 12.0])}}); "
            "assert matplotlib.rcParams['backend'] == 'svg', matplotlib.rcParams['backend']; "
            "assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
    assert (tmp_path / "ced.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
