"""``vsrdeploy demo``: the whole product on real video in one command.

Default: the shipped BasicVSR (trained here on OpenCV sample clips) and a short clip bundled with the
package (held-out frames of OpenCV's vtest.avi). The clip is degraded with MATLAB bicubic x4 so the
result can be scored against the original; the model is exported to an ONNX bundle, streamed through
every runtime available here, and the upscaled video, a side-by-side PNG and a compare report are written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .evaluate.compare import Target, prepare_clips, run_compare
from .evaluate.degrade import bicubic_resize
from .evaluate.report import format_table, write_report

from .shipped import BUNDLED_CLIP, SHIPPED_MODELS, bundled_clip, package_file, shipped_model  # noqa: F401

SHIPPED_MODEL = SHIPPED_MODELS["basicvsr"]
DEMO_BACKENDS = ("torch", "ort-cpu", "openvino-cpu", "ort-cuda", "openvino-gpu", "torch-cuda")


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def side_by_side(lr: np.ndarray, sr: np.ndarray, third: np.ndarray, third_name: str, path: Path,
                 scores: dict | None = None) -> None:
    """bicubic | network | ground truth (or the input, nearest-neighbour enlarged), one PNG."""
    import cv2
    h, w = sr.shape[1:]
    bic = np.clip(bicubic_resize(lr, 4.0), 0, 1)[:, :h, :w]
    panels = []
    for name, img in (("bicubic x4", bic), ("network", np.clip(sr, 0, 1)), (third_name, np.clip(third, 0, 1))):
        bgr = (img.transpose(1, 2, 0)[:, :, ::-1] * 255 + 0.5).astype(np.uint8)
        if scores and name in scores:
            name = f"{name}  {scores[name]:.2f} dB"
        panels.append(_label(np.ascontiguousarray(bgr), name))
    cv2.imwrite(str(path), np.concatenate(panels, axis=1))


def run_demo(out_dir, *, model: str | None = None, input_clip: str | None = None, backends=None,
             frames: int | None = 30, window: int = 10, lookahead: int = 5,
             echo: Callable[[str], None] = print) -> dict:
    from .evaluate.metrics import psnr
    from .runtimes import availability
    from .runtimes.engine import Upscaler
    from .export.cache import bundle_for
    from .io import open_sink

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model is None or model in SHIPPED_MODELS:
        model = str(shipped_model(model or "basicvsr"))
    degrade = input_clip is None
    clip = input_clip or str(bundled_clip())
    lr, gt, gt_desc, clip_desc = prepare_clips(clip, None, "bi" if degrade else None, frames, notice=echo)
    echo(f"clip: {clip_desc}" + (" -> LR by MATLAB bicubic x1/4, scored against the original" if degrade else ""))
    bundle = bundle_for(model, "ort-cpu", "decomposed", progress=lambda c: echo(f"exporting cell {c}"))
    usable = availability()
    names = list(backends) if backends else [b for b in DEMO_BACKENDS if usable.get(b) is None]
    result = run_compare(bundle, lr, [Target(b) for b in names], gt=gt, ground_truth=gt_desc, window=window,
                         lookahead=lookahead, clip_name=clip_desc, progress=echo)
    files = write_report(result, out / "report")
    ran = [t for t in result.targets if t.status == "ok"] or [result.reference]
    best = max(ran, key=lambda t: t.fps if t.fps == t.fps else 0.0)
    video = out / "upscaled.mp4"
    outputs = Upscaler.create(bundle, best.backend).stream(iter(lr), window=window, lookahead=lookahead)
    mid = len(lr) // 2
    mid_frame = None
    with open_sink(str(video), fps=10.0, notice=echo) as sink:
        for i, frame in enumerate(outputs):
            sink.write(frame)
            if i == mid:
                mid_frame = frame
    scores = None
    if gt is not None:
        bic = np.clip(bicubic_resize(lr[mid], 4.0), 0, 1)[:, :gt.shape[2], :gt.shape[3]]
        scores = {"bicubic x4": psnr(bic, gt[mid], y_channel=True),
                  "network": psnr(np.clip(mid_frame, 0, 1), gt[mid], y_channel=True)}
    third = gt[mid] if gt is not None else np.repeat(np.repeat(lr[mid], 4, 1), 4, 2)
    side_by_side(lr[mid], mid_frame, third, "original" if gt is not None else "input (nearest x4)",
                 out / "side_by_side.png", scores)
    table = format_table(result)
    (out / "compare.txt").write_text(table + "\n")
    echo(table)
    summary = {"video": str(video), "side_by_side": str(out / "side_by_side.png"),
               "report": str(files["report.md"]), "bundle": str(bundle.path), "backend_for_video": best.label}
    if gt is not None:
        summary["psnr_y"] = result.reference.summary.get("psnr_y_mean")
        summary["bicubic_psnr_y"] = result.bicubic["psnr_y_mean"]
    return summary
