"""Bench outputs: the stdout table, the JSON file, the CED plot and benchmarks/RESULTS.md."""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import numpy as np

from ..metrics import ced

#: (key, heading, format) of the table columns, in order.
COLUMNS = [
    ("nme", "NME %", "{:.3f}"), ("mse256", "MSE@256", "{:.2f}"), ("fr10", "FR@10 %", "{:.2f}"),
    ("auc10", "AUC@10", "{:.4f}"), ("ms_per_face_1t", "ms/face 1t", "{:.3f}"), ("ms_per_face_2t", "ms/face 2t", "{:.3f}"),
    ("dlib_ratio_1t", "ms/face 1t / dlib's", "{:.2f}"), ("dlib_ratio_2t", "ms/face 2t / dlib's", "{:.2f}"),
    ("pipeline_fps", "pipeline FPS", "{:.1f}"), ("analysis_fps", "analysis-only FPS", "{:.1f}"),
    ("analysis_ratio", "analysis-only / pipeline", "{:.2f}"), ("codec_fps", "codec FPS", "{:.1f}"),
    ("latency_ms_p50", "latency p50 ms", "{:.1f}"), ("latency_ms_p95", "latency p95 ms", "{:.1f}"),
    ("latency_ms_p99", "latency p99 ms", "{:.1f}"),
    ("static_jitter_raw", "static jitter off", "{:.3f}"), ("static_jitter", "static jitter on", "{:.3f}"),
    ("motion_jitter_raw", "motion jitter off", "{:.3f}"), ("motion_jitter", "motion jitter on", "{:.3f}"),
    ("motion_nme_raw", "motion NME off", "{:.3f}"), ("motion_nme", "motion NME on", "{:.3f}"),
    ("fast_mouth_p95_raw", "fast mouth offset p95 off", "{:.2f}"),
    ("fast_mouth_p95", "fast mouth offset p95 on", "{:.2f}"),
    ("fast_mouth_max_raw", "fast mouth offset max off", "{:.2f}"),
    ("fast_mouth_max", "fast mouth offset max on", "{:.2f}"),
    ("lost_clips_raw", "stability clips lost off", "{:d}"), ("lost_clips", "stability clips lost on", "{:d}"),
    # end to end: each model's face found by the runtime's detector (dlib: its own HOG detector)
    ("e2e_nme", "NME % own detector", "{:.3f}"), ("e2e_fr10", "FR@10 % own detector", "{:.2f}"),
    ("e2e_miss_rate", "detector misses %", "{:.2f}"),
    # the acquisition path: faces rolled in a 720p frame and tracked; the generated two-face clip
    *((f"rolled_nme_{r}", f"NME % rolled {r}° (tracked)", "{:.3f}") for r in (0, 30, 45, 60)),
    ("rolled_missed", "rolled faces not tracked", "{:d}"),
    ("two_face_per_frame", "two-face clip: faces / frame", "{:.2f}"),
    ("two_face_ratio", "two-face clip: pipeline / codec", "{:.3f}"),
    ("two_face_ratio_low", "two-face clip: lowest pair", "{:.3f}"),
    ("two_face_ratio_high", "two-face clip: highest pair", "{:.3f}"),
]


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


def markdown_table(rows: list[dict]) -> str:
    """Models as columns, measures as rows (the table is wide otherwise)."""
    names = [r["name"] for r in rows]
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, head, fmt in COLUMNS:
        lines.append(f"| {head} | " + " | ".join(_cell(r, key, fmt) if "skipped" not in r else "skipped"
                                               for r in rows) + " |")
    return "\n".join(lines)


def machine() -> str:
    import onnxruntime
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"onnxruntime {onnxruntime.__version__}")


def write_json(path: Path, rows: list[dict]) -> None:
    clean = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows]
    Path(path).write_text(json.dumps(clean, indent=1))


def plot_ced(path: Path, curves: dict) -> bool:
    """All models' CED curves on one chart; False when matplotlib is missing.

    Matplotlib's object API with the Agg canvas: no pyplot, so the host's backend is never switched.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(6, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, nme in curves.items():
        x, y = ced(nme)
        ax.plot(x, y * 100, label=f"{name} (NME {np.mean(nme):.2f} %)")
    ax.set_xlabel("NME (% of inter-ocular distance)")
    ax.set_ylabel("faces (%)")
    ax.set_title("CED on 300-W test_common")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return True


def detector_section(figures: dict | None) -> str:
    """RESULTS.md lines for `rtalign.bench.detector.detector_figures` per detector (empty when not measured)."""
    if not figures:
        return ""
    sizes = list(next(iter(figures.values()))["recall_by_size"])
    lines = ["", "Face detectors (`python -m rtalign.bench.detector`; 1280×720 frames, one onnxruntime thread):", "",
             "| detector | recall IoU≥0.5 | " + " | ".join(f"recall {s} px" for s in sizes)
             + " | false faces / face-free frame | ms per call |",
             "|---|---|" + "---|" * len(sizes) + "---|---|"]
    for name, f in figures.items():
        lines.append(f"| {name} | {100 * f['recall']:.1f} % | " + " | ".join(f"{100 * v:.1f} %" for v in f["recall_by_size"].values())
                     + f" | {f['false_per_frame']:.3f} | {f['ms_per_call']:.1f} |")
    lines += ["", "Recall: each test face placed twice into a face-free 1280×720 frame, side log-uniform in 48–400 px, "
              "roll uniform in ±45°; a hit is a detection whose upright box overlaps the face's upright landmark box "
              "by IoU ≥ 0.5. Face-free frames: scikit-image's textures and scenes, blanks, noise, a gradient.", ""]
    return "\n".join(lines)


def write_results(path: Path, rows: list[dict], extras: dict, command: str, plot: str | None, quick: bool) -> None:
    skipped = [f"- {r['name']}: skipped ({r['skipped']})" for r in rows if "skipped" in r]
    text = f"""# Benchmark results

Regenerated by `rtalign bench`; do not edit by hand.

- **Date:** {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}
- **Machine:** {machine()}
- **Command:** `{command}`{' (quick mode: a subset, not the full figures)' if quick else ''}

{markdown_table(rows)}

Lip + iris recolouring: **{extras['effects_ms_per_face_1t']:.2f} ms per face** at 1280×720, one thread
(ground-truth points of 20 test faces scaled to a 250 px face box; the median of 10 runs of each face, in the
quickest of 5 rounds: this machine's speed drifts by up to 1.7× between few-second stretches).

How each figure is measured:
- Accuracy: 300-W `test_common`, the ground-truth landmark box given to each rtalign model (standard
  protocol); dlib gets its own HOG detector's box, as it was trained (`detector_misses` in the JSON counts
  faces it did not detect, which then get the calibrated ground-truth box).
- ms/face: one `predict` call (crop + inference + mapping back) at batch 1, 1 and 2 onnxruntime threads
  (the cascade and dlib are single-threaded: one figure), every model and dlib timed in 20 alternating
  rounds of 20 calls after 20 warm-up calls: the median of the rounds' medians. "/ dlib's": the median of
  each round's ratio to dlib's time in that round.
- Pipeline FPS: `rtalign video` on a generated 1280×720 H.264 clip of a real test face with smooth head
  motion (One Euro smoothing on, points drawn, one inference thread as the video commands default to);
  analysis-only FPS: `rtalign video IN --landmarks F.csv` on the same clip (decode, landmarks, head pose and
  CSV rows; nothing drawn or encoded), runs of the two alternating, and the median of their ratios; codec FPS:
  the same clip decoded and re-encoded with the same encoder settings and no landmark work.
  Each is the median of 3 runs (1 in quick mode). dlib's pipeline is its usual one: HOG detection on every
  frame, then the ERT.
- Latency: the same clip played in real time as a camera (`LiveFileSource`), capture → render, ms, with the
  detector on its own thread as `rtalign webcam` runs it (p99: the frames on which a synchronous detector
  would have run took 45-65 ms here; on its thread 12-30 ms).
- Stability (jitter in % of the inter-ocular distance, "off"/"on" = One Euro smoothing): clips of test faces
  warped by a smooth random similarity (motion) or not at all (static), with Gaussian noise σ = 4 and JPEG
  quality 80 per frame, run through the real tracker (the bench's `--detector` acquisition, landmark-driven boxes). dlib has
  no smoothing of its own: its off and on figures are the same run.
- Rolled (tracked): each test face scaled to a 200 px box, rolled by 0, 30, 45 and 60° in a grey 1280×720
  frame and given to a fresh tracker (the `--detector` acquisition, then 2 tracked frames, no smoothing);
  mean NME of the faces tracked, and the count of faces not tracked over all four angles.
- Two-face clip: 150 generated 1280×720 frames with two test faces, one of them crossing the frame, growing
  and rolling to ±60°, through `rtalign video` (one inference thread, `--max-faces 4`); faces per frame
  (the truth is 2), and the pipeline's FPS over the codec-only FPS of the same clip, alternating pairs of
  runs (7; 1 in quick mode), the median of the pairs' ratios, and the lowest and highest pair.
- Fast mouth offset (lag where the lip colour is drawn; % of the inter-ocular distance): the motion clips'
  path at 3× the amplitude (a quick head turn, peaks of 2–7 inter-ocular distances per second); per frame,
  the mean distance of the 20 mouth points from the truth; p95 and max over all frames of all fast clips.
- Stability clips lost: of the static, motion and fast clips (3 per face), those on which the tracker had no
  face on some frame; they count in none of the figures above, so a tracker that keeps more of the hard fast
  clips can show a higher mouth offset.
{chr(10).join(skipped)}
{detector_section(extras.get("detectors"))}"""
    if plot:
        text += f"\n![CED]({plot})\n"
    if "effects_sheet" in extras:  # colour effects (issue 19)
        import cv2
        from .effects import effects_markdown
        cv2.imwrite(str(Path(path).parent / "effects.png"), extras["effects_sheet"])
        text += "\n" + effects_markdown(extras)
    Path(path).write_text(text)
