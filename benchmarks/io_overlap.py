"""File-to-file `run` against the network alone: does decoding and encoding hide behind the compute?

    python benchmarks/io_overlap.py [--size 320x180] [--frames 60] [--repeat 2] [--backend ort-cpu]
        [--preset medium] [--threads N]

The input is the bundled real clip, cropped to 320x180 (the LR size) and played forward then backward to
reach --frames, written as H.264 (CRF 18) with PyAV. Three configurations are timed alternately in one process:
- compute only: decoded frames preloaded in memory, streamed through the shipped BasicVSR, outputs dropped;
- file to file, overlapped: `run_job` (decode thread -> network -> encode thread, bounded queues) into
  an .mp4 (libx264, CRF 18, the given preset), 1280x720 output;
- file to file, serial: the same with the threads off (decode, compute, encode one after another);
- decode + encode only: the same file I/O with the network replaced by a x4 pixel repeat (what overlap hides).
frames/s of a file-to-file run counts everything after the model is loaded (opening, decoding, encoding,
the encoder flush and the file's finalization).
"""
from __future__ import annotations

import argparse
import gc
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_description() -> str:
    from vsrdeploy.evaluate.machine import cpu_info
    cpu = cpu_info()
    return f"{cpu['model']}, {cpu['logical_cores']} logical CPUs, flags: {' '.join(cpu['flags'])}"


def make_input(path: Path, width: int, height: int, frames: int) -> np.ndarray:
    import av

    from vsrdeploy.evaluate.compare import read_clip
    from vsrdeploy.demo import bundled_clip

    clip, _ = read_clip(str(bundled_clip()), notice=lambda m: None)  # (T, 3, 240, 320)
    top = (clip.shape[2] - height) // 2
    clip = clip[:, :, top:top + height, :width]
    order = list(range(len(clip))) + list(range(len(clip) - 1, -1, -1))
    clip = np.stack([clip[order[i % len(order)]] for i in range(frames)])
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, f in enumerate(clip):
            image = np.ascontiguousarray((f.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p", dst_colorspace=1,
                                                                               dst_color_range=1)
            frame.pts = i
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    from vsrdeploy.io import open_source
    with open_source(str(path), notice=lambda m: None) as src:
        return np.stack(list(src))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="320x180", help="LR WxH")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--backend", default="ort-cpu")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--lookahead", type=int, default=8)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    from vsrdeploy.demo import shipped_model
    from vsrdeploy.runtimes.engine import Upscaler
    from vsrdeploy.export.cache import bundle_for
    from vsrdeploy.upscale_job import run_job

    model = str(shipped_model("basicvsr"))
    bundle = bundle_for(model, args.backend, "decomposed")
    options = {"threads": args.threads} if args.threads else {}
    tmp = Path(tempfile.mkdtemp(prefix="vsr-io-"))
    src = tmp / "in.mp4"
    frames = make_input(src, width, height, args.frames)

    def compute_only() -> float:
        # a fresh upscaler each time, as run_job makes one: one runtime's memory at a time, same warm state
        upscaler = Upscaler.create(bundle, args.backend, **options)
        t = time.perf_counter()
        n = sum(1 for _ in upscaler.stream(iter(frames), window=args.window, lookahead=args.lookahead))
        rate = n / (time.perf_counter() - t)
        del upscaler
        gc.collect()
        return rate

    def file_to_file(overlap: bool) -> float:
        out = tmp / f"out-{overlap}.mp4"
        t = time.perf_counter()
        summary = run_job(str(bundle.path), backend=args.backend, source=str(src), sink=str(out),
                          window=args.window, lookahead=args.lookahead, threads=args.threads, preset=args.preset,
                          echo=lambda m: None, progress=False, overlap=overlap)
        seconds = time.perf_counter() - t - summary["load_seconds"]
        out.unlink()
        gc.collect()
        return summary["frames"] / seconds

    def io_only() -> float:
        """Decode + encode with the network replaced by a x4 nearest-neighbour repeat: what overlap must hide."""
        from vsrdeploy.io import open_sink, open_source
        out = tmp / "io-only.mp4"
        t = time.perf_counter()
        n = 0
        with open_source(str(src), notice=lambda m: None) as source:
            stamps = source.follow_stamps()
            with open_sink(str(out), fps=source.info.fps, like=source.info, preset=args.preset,
                           notice=lambda m: None) as sink:
                for frame in source:
                    sink.write(frame.repeat(4, axis=1).repeat(4, axis=2), stamps.popleft().pts)
                    n += 1
        rate = n / (time.perf_counter() - t)
        out.unlink()
        return rate

    results = {"compute only": [], "file to file, overlapped": [], "file to file, serial": [],
               "decode + encode only (no network)": []}
    for _ in range(args.repeat):
        results["compute only"].append(compute_only())
        results["file to file, overlapped"].append(file_to_file(True))
        results["file to file, serial"].append(file_to_file(False))
        results["decode + encode only (no network)"].append(io_only())
        print({k: [round(v, 3) for v in vs] for k, vs in results.items()}, flush=True)
    base = statistics.median(results["compute only"])
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"\npeak RSS {peak} MB; {args.frames} frames {width}x{height} -> {4 * width}x{4 * height}, shipped basicvsr (c16n4), "
          f"{args.backend}, window {args.window}, lookahead {args.lookahead}, libx264 CRF 18 preset {args.preset}; "
          f"median of {args.repeat}; {cpu_description()}; Python {platform.python_version()}\n")
    print("| configuration | frames/s (median) | runs | x compute only |")
    print("|---|---:|---|---:|")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {', '.join(f'{v:.3f}' for v in values)} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
