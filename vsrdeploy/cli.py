"""The ``vsrdeploy`` command line. Thin: parse, call the library, print."""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import sys

import click

from .errors import ConfigError, VSRDeployError
from .models.heap import DEFAULT_HEAP_POLICY, HEAP_POLICIES


def friendly_errors(fn):
    """Turn vsrdeploy's own errors, and the operating system's (a full disk, a read-only folder), into
    one-line messages and a non-zero exit."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VSRDeployError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise click.ClickException(f"{where}{e.strerror or e} (check free space and permissions, or choose "
                                       "another location, then run again)") from None
    return wrapper


def parse_overrides(items: tuple[str, ...]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--config")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


#: environment variable that reads the size options the old way (HxW) for one more release (deprecated)
SIZE_ORDER_ENV = "VSRDEPLOY_SIZE_ORDER"
#: options whose sizes were HxW before sizes became WxH everywhere (a non-square value gets a notice)
FORMERLY_HXW = ("--size", "--static-shape", "--min-shape", "--opt-shape", "--max-shape", "--tile")
_noticed: set[str] = set()


def notice_once(key: str, message: str) -> None:
    """A deprecation or migration notice on stderr, once per process."""
    if key not in _noticed:
        _noticed.add(key)
        click.echo(f"vsrdeploy: {message}", err=True)


def parse_size(value: str | None, option: str = "--size"):
    """'320x180' (width x height, as ffmpeg writes sizes) -> (180, 320) = (height, width) for the library.

    Every size option is WxH. ``VSRDEPLOY_SIZE_ORDER=hxw`` reads the options that were HxW before
    (``FORMERLY_HXW``) the old way, with a deprecation notice, for one release."""
    if value is None:
        return None
    try:
        a, b = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WxH (width x height) like 320x180, got {value!r}",
                                 param_hint=option) from None
    if a <= 0 or b <= 0:
        raise click.BadParameter(f"sizes must be positive, got {value!r}", param_hint=option)
    order = os.environ.get(SIZE_ORDER_ENV, "wxh").strip().lower()
    if order not in ("wxh", "hxw"):
        raise ConfigError(f"{SIZE_ORDER_ENV}={order!r} is not an order; unset it (sizes are WxH) or set it to hxw")
    if order == "hxw" and option in FORMERLY_HXW:
        notice_once("hxw", f"{SIZE_ORDER_ENV}=hxw is deprecated and goes away in the next release: sizes are "
                           f"WxH (width x height, as ffmpeg); write {option} {b}x{a} and unset it")
        return a, b
    if a != b and option in FORMERLY_HXW:
        notice_once(option, f"{option} {value} is read as WxH ({a} wide, {b} high), as ffmpeg writes sizes; it "
                            f"was HxW before. Set {SIZE_ORDER_ENV}=hxw to read the old order (deprecated)")
    return b, a


def wxh(value: str | None, option: str):
    """A WxH option as (width, height), for the endpoints that take sizes that way (raw pipes)."""
    hw = parse_size(value, option)
    return None if hw is None else (hw[1], hw[0])


def join_lists(ctx, param, values) -> str:
    """A list option given comma-separated, repeated, or both (``-b torch,ort-cpu -b openvino-cpu``) ->
    one comma-separated string."""
    if isinstance(values, str):
        values = (values,)
    return ",".join(item for value in values or () for item in split_list(value))


def one_backend(ctx, param, values) -> str:
    """``-b/--backend/--backends`` of the commands that run one backend."""
    names = split_list(join_lists(ctx, param, values))
    if len(names) != 1:
        raise click.BadParameter(f"this command runs one backend, got {', '.join(names) or 'none'}; to measure "
                                 "several, use `vsrdeploy compare -b A,B` or `vsrdeploy bench -b A,B`",
                                 param_hint="-b/--backend")
    return names[0]


def backend_option(default: str | None, one: bool = False, help_text: str | None = None):
    """The same backend option everywhere: ``-b``, ``--backend`` and ``--backends``; lists comma-separated
    and/or repeated."""
    return click.option("-b", "--backend", "--backends", "backends", multiple=True,
                        default=(default,) if default is not None else (), show_default=default is not None,
                        metavar="NAME" if one else "B1,B2", callback=one_backend if one else join_lists,
                        help=help_text or ("See `vsrdeploy backends`." if one else
                                           "Backends, comma-separated or repeated (see `vsrdeploy backends`)."))


def model_path(spec: str) -> str:
    """A checkpoint / bundle path, or a shipped model's name resolved to its checkpoint."""
    from .shipped import resolve_model
    return str(resolve_model(spec))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vsrdeploy")
def main():
    """Recurrent video super-resolution: checkpoints -> ONNX / TensorRT, streamed through any runtime."""


@main.command()
def models():
    """List the registered architectures with their upstream configurations."""
    from .models import get_model_class, list_models

    for name in list_models():
        cls = get_model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        click.echo(f"{name}: {doc}")
        click.echo(f"    default: {json.dumps(cls.default_config)}")
        for release, cfg in cls.upstream_configs.items():
            click.echo(f"    {release}: {json.dumps(cfg)}")


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--arch", help="Architecture, when detection from the keys is not wanted.")
@click.option("--config", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config values that cannot be read from the weights (e.g. keyframe_stride=5).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@friendly_errors
def inspect(checkpoint, arch, overrides, as_json):
    """Show a checkpoint's format, architecture, configuration and parameter count."""
    from .checkpoint import load_checkpoint_with_info

    _, info = load_checkpoint_with_info(model_path(checkpoint), arch, **parse_overrides(overrides))
    record = {"path": info.path, "format": info.format, "weights": info.source, "key_naming": info.naming,
              "arch": info.arch, "config": info.config, "parameters": info.num_params,
              "ignored_keys": info.ignored_keys}
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"checkpoint : {info.path}")
    click.echo(f"format     : {info.format} (weights from {info.source}, {info.naming} key names)")
    click.echo(f"arch       : {info.arch}")
    click.echo(f"config     : {json.dumps(info.config)}")
    click.echo(f"parameters : {info.num_params:,}")
    if info.ignored_keys:
        shown = ", ".join(info.ignored_keys[:5]) + (" ..." if len(info.ignored_keys) > 5 else "")
        click.echo(f"ignored    : {len(info.ignored_keys)} keys ({shown})")


@main.command()
@click.argument("vectors", type=click.Path(file_okay=False, exists=True))
@click.option("--tolerance", default=1e-4, show_default=True, help="Max abs error allowed.")
@backend_option(None, help_text="Also export each case to a bundle and check it on these runtimes "
                                 "(e.g. ort-cpu,openvino-cpu; comma-separated or repeated).")
@friendly_errors
def parity(vectors, tolerance, backends):
    """Check the networks against upstream reference vectors (a directory with index.json)."""
    from .evaluate.reference import iter_reference_results

    failed = 0
    names = [b.strip() for b in backends.split(",") if b.strip()]
    for r in iter_reference_results(vectors, backends=names):
        status = "ok" if r.max_error <= tolerance else "FAIL"
        failed += status != "ok"
        click.echo(f"{status:4} {r.case:22} {r.checkpoint:18} {r.runtime:22} max|err| {r.max_error:.2e}  "
                   f"{r.seconds:.1f}s")
    if failed:
        click.echo(f"{failed} case(s) above tolerance {tolerance:g}", err=True)
        sys.exit(1)


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--arch", help="Architecture, when detection from the keys is not wanted.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Bundle directory [default: NAME.vsr].")
@click.option("--dcn", type=click.Choice(["native", "decomposed", "plugin"]), default="native", show_default=True,
              help="Deformable conv as ONNX DeformConv, as GridSample + 1x1 Conv per 3 kernel taps (OpenVINO), or the "
                   "TensorRT plugin node.")
@click.option("--opset", type=int, help="ONNX opset [default: 19].")
@click.option("--static-shape", metavar="WxH", help="Fix the LR frame size, width x height (default: any size).")
@click.option("--simplify", is_flag=True, help="Simplify graphs with onnxslim.")
@click.option("--config", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config values that cannot be read from the weights (e.g. keyframe_stride=5).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is an existing vsrdeploy bundle (never anything else).")
@friendly_errors
def export(checkpoint, arch, output, dcn, opset, static_shape, simplify, overrides, force):
    """Export a checkpoint step-wise to an ONNX bundle (one graph per cell).

    CHECKPOINT: a checkpoint file or a shipped model (basicvsr, basicvsr_pp)."""
    from .export import export_onnx

    path = export_onnx(checkpoint, output, arch=arch, dcn=dcn, opset=opset,
                       static_shape=parse_size(static_shape, "--static-shape"), simplify=simplify, force=force,
                       progress=lambda name: click.echo(f"  exporting cell {name}", err=True),
                       **parse_overrides(overrides))
    from .bundle import Bundle
    bundle = Bundle(path)
    click.echo(f"wrote {path} ({bundle.arch}, {len(bundle.cells)} cells, dcn={bundle.dcn}, "
               f"opset {bundle.manifest['opset']})")


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False, exists=True))
@click.option("--precision", type=click.Choice(["fp16"]), default="fp16", show_default=True)
@click.option("--keep-fp32", "keep", multiple=True, metavar="RULE",
              help="Keep matching nodes in FP32: cell=NAME, node=REGEX, op=TYPE, sampling-grid, concat-input, cell-input, frame-input "
                   "(repeat; default: the measured list, see README). Pass --keep-fp32 none for none.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Output bundle (default: NAME-fp16.vsr).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is an existing vsrdeploy bundle (never anything else).")
@friendly_errors
def convert(bundle, precision, keep, output, force):
    """Convert an FP32 bundle to FP16 (float32 cell I/O, explicit keep-in-FP32 list)."""
    from .calib.fp16 import DEFAULT_KEEP_FP32, convert_bundle_fp16

    rules = [] if keep == ("none",) else (list(keep) or list(DEFAULT_KEEP_FP32))
    path = convert_bundle_fp16(bundle, output, keep=rules, force=force,
                               progress=lambda name: click.echo(f"  converting cell {name}", err=True))
    from .bundle import Bundle
    kept = Bundle(path).manifest["precision_details"]["kept_fp32_nodes"]
    click.echo(f"wrote {path} ({precision}; kept in FP32: {', '.join(rules) or 'nothing'}; "
               f"{sum(map(len, kept.values()))} nodes)")


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False, exists=True))
@click.option("-i", "--calib-frames", "frames_spec",
              help="Calibration frames: a video, an image directory or any `run` source (real input frames).")
@click.option("--frames", "frames_legacy", hidden=True,
              help="Deprecated: a path here means -i/--calib-frames; a number means --max-frames.")
@click.option("--max-frames", type=click.IntRange(min=2), default=16, show_default=True,
              help="Frames read from --calib-frames (at least 2).")
@click.option("--skip", type=click.IntRange(min=0), default=0, show_default=True,
              help="Frames skipped at the start of --calib-frames.")
@click.option("--degrade", type=click.Choice(["bi", "bd"]),
              help="--calib-frames are high-resolution: make the LR input with this degradation first.")
@click.option("--method", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax", show_default=True)
@click.option("--target", type=click.Choice(["tensorrt", "cpu", "openvino"]), default="cpu", show_default=True,
              help="tensorrt: symmetric S8/S8; cpu: U8 activations / S8 weights (fast on ONNX Runtime CPU); "
                   "openvino: NNCF's placement for OpenVINO CPU (needs the openvino extra).")
@click.option("--exclude", multiple=True, metavar="RULE",
              help="Leave matching nodes in float: cell=NAME, node=REGEX, op=TYPE, sampling-grid, sampling-coords, "
                   "concat-input, cell-input or frame-input (repeat; default: sampling-coords, concat-input, cell-input; "
                   "with --target openvino: sampling-coords, frame-input). "
                   "Pass --exclude none for none.")
@click.option("--samples", type=click.IntRange(min=1), default=64, show_default=True,
              help="Recorded inputs kept per cell.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Output bundle (default: NAME-int8.vsr).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is an existing vsrdeploy bundle (never anything else).")
@friendly_errors
def calibrate(bundle, frames_spec, frames_legacy, max_frames, skip, degrade, method, target, exclude, samples, output,
              force):
    """Quantize a bundle to INT8 (Q/DQ), calibrated on real frames streamed through it."""
    if frames_legacy is not None:
        if frames_legacy.isdigit() and not os.path.exists(frames_legacy):
            max_frames = int(frames_legacy)  # --frames N is a count everywhere
            if max_frames < 2:
                raise click.BadParameter(f"{max_frames} is not in the range x>=2", param_hint="--frames")
        elif frames_spec is not None:
            raise click.UsageError("give the calibration frames once: -i/--calib-frames PATH")
        else:
            notice_once("calibrate --frames", "calibrate --frames PATH is deprecated (--frames is a count "
                                              "everywhere else): write -i/--calib-frames PATH")
            frames_spec = frames_legacy
    if frames_spec is None:
        raise click.UsageError("Missing option '-i' / '--calib-frames' (a video or image directory of real frames)")
    from .calib.int8 import calibrate_bundle
    from .evaluate.compare import read_clip

    frames, description = read_clip(frames_spec, max_frames, notice=lambda m: click.echo(m, err=True), skip=skip)
    if degrade:
        from .evaluate.degrade import degrade as make_lr
        frames = make_lr(frames, degrade)
    rules = [] if exclude == ("none",) else (list(exclude) or None)  # None: the target's default
    path = calibrate_bundle(bundle, frames, output, target=target, method=method, exclude=rules,
                            max_samples=samples, source=description, echo=lambda m: click.echo(m, err=True),
                            force=force)
    click.echo(f"wrote {path} (int8 for {target}, {method} calibration on {len(frames)} frames of {description})")


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False, exists=True))
@click.option("--target", required=True, type=click.Choice(["tensorrt-10", "tensorrt-11", "openvino", "ort"]))
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def check(bundle, target, as_json):
    """List what in a bundle the target cannot take (operators, Q/DQ forms) before you reach the device."""
    from .export.check import check_bundle, format_findings

    findings = check_bundle(bundle, target)
    if as_json:
        click.echo(json.dumps([x.to_dict() for x in findings], indent=1))
    else:
        click.echo(format_findings(findings, target))
    if any(x.severity == "error" for x in findings):
        sys.exit(1)


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False, exists=True))
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]),
              help="Default: the bundle's precision (int8 needs a bundle from `calibrate --target tensorrt`).")
@click.option("--min-shape", metavar="WxH", help="Smallest LR frame the engines accept (default: the network's "
                                                   "minimum).")
@click.option("--opt-shape", metavar="WxH", help="LR frame TensorRT tunes for (default 320x180).")
@click.option("--max-shape", metavar="WxH", help="Largest LR frame (default: --opt-shape).")
@click.option("--max-batch", default=8, show_default=True, help="Frames per call of the stateless cells.")
@click.option("--tile", metavar="N|WxH", help="Build for frames streamed in tiles of this many LR pixels (`run --tile`): "
                                              "the tile is the profile's one shape, all tiles of a frame one batch. Needs --frame.")
@click.option("--tile-overlap", type=int, default=16, show_default=True, help="The overlap `run --tile-overlap` will use.")
@click.option("--frame", "frame_size", metavar="WxH", help="LR size of the video's frames (with --tile).")
@click.option("--workspace", default=1024, show_default=True, help="Builder workspace in MB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="Timing cache file (read and updated).")
@click.option("--plugin", type=click.Path(dir_okay=False), help="DCN plugin library (plugin bundles).")
@click.option("--keep-fp32", "keep", multiple=True, metavar="RULE",
              help="FP16 from an FP32 bundle: nodes kept in FP32 (default: the measured list).")
@click.option("--rebuild", is_flag=True, help="Rebuild even when a cached engine matches.")
@click.option("--verbose", is_flag=True, help="Print TensorRT's builder log.")
@friendly_errors
def build(bundle, precision, min_shape, opt_shape, max_shape, max_batch, tile, tile_overlap, frame_size, workspace,
          timing_cache, plugin, keep, rebuild, verbose):
    """Build TensorRT engines (one per cell) into BUNDLE/engines/tensorrt, reusing cached ones."""
    from .bundle import Bundle
    from .export.tensorrt import build_engines, make_profile, tile_profile

    b = Bundle(bundle)
    if tile is not None or frame_size is not None:
        if tile is None or frame_size is None or min_shape or opt_shape or max_shape:
            raise ConfigError("a tile profile takes --tile and --frame together, without --min/--opt/--max-shape: "
                              "e.g. `vsrdeploy build B --tile 256 --frame 1920x1080`")
        profile = tile_profile(b, parse_size(frame_size, "--frame"), parse_tile(tile), tile_overlap, max_batch)
    else:
        profile = make_profile(b, parse_size(min_shape, "--min-shape"), parse_size(opt_shape, "--opt-shape"),
                               parse_size(max_shape, "--max-shape"), max_batch)
    records = build_engines(b, precision or b.precision, profile, workspace_mb=workspace, timing_cache=timing_cache,
                            plugin=plugin, keep_fp32=list(keep) or None, rebuild=rebuild, verbose=verbose,
                            progress=lambda name: click.echo(f"  engine for cell {name}", err=True))
    for r in records:
        click.echo(f"{'built ' if r.built else 'cached'} {r.cell:24} {r.file}" + (f"  {r.seconds:.1f}s" if r.built else ""))


@main.command()
@click.option("--options", "show_options", is_flag=True,
              help="Also list each backend's constructor options (what `run -O KEY=VALUE` takes).")
def backends(show_options):
    """List the runtimes and whether each can run on this machine."""
    from .runtimes import availability
    from .runtimes.base import get_backend_class

    for name, reason in availability().items():
        click.echo(f"{name:14} {'available' if reason is None else 'unavailable: ' + reason}")
        if show_options:
            click.echo(f"{'':14} options: {', '.join(get_backend_class(name).option_names())}")


def parse_time(value: str | None) -> float | None:
    """'90', '1:30', '00:01:30.5' -> seconds, as ffmpeg's -ss and -t take them."""
    if value is None:
        return None
    try:
        seconds = 0.0
        for part in value.split(":"):
            seconds = seconds * 60 + float(part)
        if len(value.split(":")) > 3 or not seconds >= 0 or seconds == float("inf"):
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"expected a time in seconds or HH:MM:SS.ms, like 12.5 or 0:01:30, got {value!r}"
                                 ) from None
    return seconds


@main.command()
@click.option("--gpu", is_flag=True, help="Also run the GPU paths (TensorRT builds, CUDA DCN kernel, CUDA graphs, "
                                            "GPU backends); without it they are listed as not run.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write report.md and report.json here (paste them into a bug report).")
@friendly_errors
def selftest(gpu, report_dir):
    """Check every path this machine supports on the shipped models; say why the others cannot run."""
    from .evaluate.selftest import format_report, run_selftest, write_report

    report = run_selftest(gpu=gpu, echo=lambda m: click.echo(m, err=True))
    click.echo(format_report(report))
    if report_dir:
        files = write_report(report, report_dir)
        click.echo(f"report: {', '.join(str(p) for p in files)}")
    if not report["passed"]:
        sys.exit(1)


@main.command()
@click.argument("model", type=click.Path())
@backend_option("ort-cpu", one=True, help_text="See `vsrdeploy backends`; auto: the tuned profile (`vsrdeploy tune`).")
@click.option("-i", "--input", "source", required=True,
              help="Video file, image directory, capture device (0, device:0), stream URL, or - (raw RGB on stdin).")
@click.option("-o", "--output", "sink", required=True,
              help="Video file (.mp4 .mkv .mov .webm .avi ...), PNG directory (no extension), or - (raw RGB on stdout).")
@click.option("--window", default=16, show_default=True, help="Frames per window; 0 = whole clip at once.")
@click.option("--lookahead", default=8, show_default=True, help="Extra frames the backward branches see.")
@click.option("--dcn", type=click.Choice(["native", "decomposed", "plugin"]),
              help="DCN mode when MODEL is a checkpoint [default: what the backend supports].")
@click.option("--codec", help="Video encoder: libx264, libx265, libsvtav1, libvpx-vp9, ffv1, prores_ks, ... "
                              "[default: per container; .mp4/.mkv/.mov/.avi: libx264, .webm: libvpx-vp9].")
@click.option("--crf", type=click.IntRange(0, 63), help="Constant quality of the encoder (lower is better) "
                                                       "[default: 18 for x264/x265, 24 for AV1/VP9].")
@click.option("--preset", help="Encoder preset (x264/x265: ultrafast..veryslow; svtav1: 0-13; vp9: cpu-used 0-8; "
                               "prores_ks: profile proxy|lt|standard|hq|4444|4444xq).")
@click.option("--pix-fmt", help="Output pixel format, e.g. yuv420p or yuv420p10le [default: yuv420p, or 10-bit "
                                "for 10-bit and deeper input].")
@click.option("--no-audio", is_flag=True, help="Drop the input's audio (other streams are copied unchanged).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Frame rate of inputs that have none (image directories, raw stdin).")
@click.option("--start", help="Start at this time of the input (seconds or HH:MM:SS.ms), like ffmpeg -ss.")
@click.option("--frames", "max_frames", type=click.IntRange(min=1), help="Upscale this many frames.")
@click.option("--duration", help="Upscale this much time (seconds or HH:MM:SS.ms), like ffmpeg -t.")
@click.option("--warmup", type=click.IntRange(min=0), default=16, show_default=True,
              help="With --start: frames before the start streamed to warm the recurrent state (not written).")
@click.option("--bit-depth", type=click.Choice(["8", "16"]), default="8", show_default=True,
              help="Bit depth of PNG and raw outputs (videos: see --pix-fmt).")
@click.option("--raw-size", metavar="WxH", help="Frame size of raw stdin input.")
@click.option("--raw-bit-depth", type=click.Choice(["8", "16"]), default="8", show_default=True,
              help="Raw stdin input: 8 = rgb24, 16 = rgb48le.")
@click.option("--resume", is_flag=True, help="Continue an interrupted PNG-directory output (same settings only).")
@click.option("--threads", type=int, help="CPU threads for the runtime.")
@click.option("--config", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config values for a checkpoint that the weights cannot tell.")
@click.option("--tile", metavar="N|WxH", help="Cut frames into tiles of N (or WxH) LR pixels, each with its own "
              "recurrent state, run apart and stitched (for frames too large for memory).")
@click.option("--tile-overlap", type=int, default=16, show_default=True, help="LR pixels shared by neighbouring tiles.")
@click.option("--memory-budget", metavar="SIZE", help="e.g. 2GB: pick the tile (if one is needed) so that the "
              "process stays within SIZE, and bound every cell call by it.")
@click.option("--spill", default="auto", show_default=True, metavar="auto|off|DIR",
              help="Where features the network holds for later frames go beyond 16 MB: an anonymous temp file "
                   "(auto: in the system temp directory when it is on disk and the held state is larger), or "
                   "off. Same frames either way; less memory at large frames.")
@click.option("--spill-resident", default="16MB", show_default=True, metavar="SIZE",
              help="Held features kept in memory before --spill writes the rest out (more: less disk traffic, "
                   "more memory). Same frames whatever the size.")
@click.option("--heap", type=click.Choice(list(HEAP_POLICIES)), default=None,
              help="What malloc does with freed feature maps: return them to the OS at once (least memory; the "
                   "default) or keep them for reuse (faster: no page faults on every allocation; 0.1-1.1 GB more "
                   "at 720p output). Same frames either way.  [default: return, or the profile's]")
@click.option("--profile", metavar="auto|PATH",
              help="Backend, precision, threads, window, lookahead and heap from a `vsrdeploy tune` profile (auto: "
                   "the one beside the bundle; same as -b auto). Options given on the command line win.")
@click.option("-O", "--backend-option", "backend_option_items", multiple=True, metavar="KEY=VALUE",
              help="A constructor option of the backend (repeat), e.g. -O keep_working_sets=2 on openvino-cpu; "
                   "`vsrdeploy backends` lists each backend's options.")
@friendly_errors
def run(model, backends, source, sink, window, lookahead, dcn, codec, crf, preset, pix_fmt, no_audio, fps, start,
        max_frames, duration, warmup, bit_depth, raw_size, raw_bit_depth, resume, threads, overrides, tile, tile_overlap,
        memory_budget, spill, spill_resident, heap, profile, backend_option_items):
    """Upscale a video with a bundle or checkpoint on a backend (checkpoints are exported once, cached).

    MODEL: a .vsr bundle, a checkpoint, or a shipped model (basicvsr, basicvsr_pp). Sizes are WxH.

    \b
    Examples (ffmpeg's vocabulary):
      vsrdeploy run m.vsr -i in.mkv -o out.mkv --codec libx265 --crf 18
      vsrdeploy run m.vsr -i in.mp4 -o out.mp4 --start 0:01:00 --duration 10
      vsrdeploy run m.vsr -i in.mov -o out.mov --codec prores_ks --preset hq
      vsrdeploy run m.vsr -i frames/ --fps 24 -o out.mp4 --pix-fmt yuv420p10le
      ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | vsrdeploy run m.vsr -i - --raw-size 320x180 -o -
    """
    from .models.budget import parse_bytes
    from .models.spill import check_spill
    from .upscale_job import Terminated, run_job

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    check_spill(spill)  # a missing or unwritable --spill DIR fails before anything is opened
    resident = parse_bytes(spill_resident, "--spill-resident")
    options = None
    if backends == "auto" or profile:
        from .evaluate.tune import load_profile
        given = lambda name: click.get_current_context().get_parameter_source(name).name != "DEFAULT"  # noqa: E731
        settings = load_profile(model, profile or "auto", dcn)
        if settings.note:
            echo(settings.note)
        echo(f"profile {settings.profile}: {settings.backend} {settings.options or ''}, threads {settings.threads}, "
             f"window {settings.window}, lookahead {settings.lookahead}, heap {settings.heap}")
        if given("backends") and backends not in ("auto", settings.backend):
            raise ConfigError(f"the profile runs {settings.backend}, not -b {backends}: drop --profile, or -b")
        model, options, backends = settings.bundle, settings.options, settings.backend
        threads = threads or settings.threads
        window = window if given("window") else (settings.window or 0)
        lookahead = lookahead if given("lookahead") else settings.lookahead
        heap = heap or settings.heap
    if backend_option_items:
        from .runtimes.base import parse_backend_options
        options = {**(options or {}), **parse_backend_options(backends, backend_option_items)}
    try:
        run_job(model, backend=backends, source=source, sink=sink, window=window or None, lookahead=lookahead,
                dcn=dcn, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, audio=not no_audio, fps=fps,
                start=parse_time(start), max_frames=max_frames, duration=parse_time(duration), warmup=warmup,
                bit_depth=int(bit_depth), raw_size=wxh(raw_size, "--raw-size"), raw_bit_depth=int(raw_bit_depth),
                resume=resume, threads=threads, overrides=parse_overrides(overrides),
                echo=echo, backend_options=options, spill=spill, spill_resident=resident,
                heap=heap or DEFAULT_HEAP_POLICY,
                tiling={"tile": parse_tile(tile), "tile_overlap": tile_overlap, "memory_budget": memory_budget})
    except Terminated:
        click.echo("vsrdeploy: stopped by SIGTERM; the unfinished output was removed", err=True)
        sys.exit(143)


def parse_tile(value: str | None):
    """``--tile 256`` -> 256, ``--tile 256x192`` -> (192, 256) (width x height given, (h, w) returned)."""
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise ConfigError(f"--tile {value!r} is not a size; write --tile 256 or --tile 256x192 (WxH, LR pixels)")
    if len(parts) == 1:
        return int(parts[0])
    if min(int(p) for p in parts) <= 0:
        raise ConfigError(f"--tile {value!r}: tiles must be positive; write --tile 256 or --tile 256x192 (WxH)")
    return parse_size(value, "--tile")


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_int_list(value: str | None, param=None, minimum: int = 0) -> list[int] | None:
    """'0,2,4' -> [0, 2, 4]; anything else is a one-line usage error saying what to pass."""
    if value is None:
        return None
    try:
        numbers = [int(v) for v in split_list(value)]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < minimum:
        raise click.BadParameter(f"expected comma-separated whole numbers >= {minimum} like 0,2,4,8, got {value!r}",
                                 param=param)
    return numbers


@main.command()
@click.argument("models", nargs=-1, required=True, type=click.Path())
@click.option("-i", "--input", "source", required=True, help="LR clip (or the HR clip with --degrade).")
@click.option("--gt", "gt", help="Ground-truth HR clip matching --input.")
@click.option("--degrade", type=click.Choice(["bi", "bd"]),
              help="Make the LR clip from --input (HR): bi = MATLAB bicubic x4, bd = Gaussian 1.6 + x4 subsampling.")
@backend_option("torch,ort-cpu,openvino-cpu")
@click.option("--precisions", "--precision", "precisions", multiple=True, default=("fp32",), show_default=True,
              metavar="P1,P2", callback=join_lists, help="fp32, fp16, bf16, int8, int8-bf16, int8-fp16 (comma-separated or repeated; "
                                                       "int8-*: an INT8 bundle's unquantized ops at *, openvino-cpu).")
@click.option("--reference", "reference_spec", default="whole", show_default=True, metavar="whole|stream|BUNDLE:BACKEND",
              help="What targets are measured against: the whole-clip PyTorch FP32 forward (memory grows with the "
                   "clip), PyTorch FP32 streamed with --window/--lookahead, or a bundle streamed on a backend.")
@click.option("--reference-tile", metavar="N|HxW",
              help="Cut the streamed reference's frames into tiles of this many LR pixels (memory bounded by the tile).")
@click.option("--window", type=click.IntRange(min=0), default=16, show_default=True,
              help="Streaming window; 0 = whole clip.")
@click.option("--lookahead", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--frames", "max_frames", type=click.IntRange(min=1), help="Use N frames (after --skip).")
@click.option("--skip", type=click.IntRange(min=0), default=0, show_default=True, help="Leading frames to skip.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write report.md/json, frames.csv, plots here.")
@click.option("--sweep-lookahead", metavar="L1,L2", callback=lambda ctx, param, value: parse_int_list(value, param),
              help="Also measure PSNR vs lookahead (e.g. 0,2,4,8).")
@click.option("--warmup", type=click.IntRange(min=0), default=4, show_default=True,
              help="Frames of an untimed warm-up pass per target.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed runs of the clip per target (median and spread reported).")
@click.option("--max-error", type=float, help="Fail when a target's max abs error vs the reference exceeds this.")
@click.option("--min-psnr", type=float, help="Fail when a frame's PSNR vs the reference is below this (dB).")
@click.option("--per-cell", is_flag=True,
              help="Diagnose instead: record every cell's inputs streamed through the first target, replay them "
                   "through the others, report each cell's error per frame and the first cell/frame over --tolerance.")
@click.option("--tolerance", type=click.FloatRange(min=0), metavar="ERR",
              help="--per-cell: scaled max error a cell may reach [default: by precision, 1e-4 for FP32].")
@click.option("--dcn", type=click.Choice(["native", "decomposed", "plugin"]),
              help="DCN mode when MODEL is a checkpoint [default: decomposed, which every runtime takes].")
@friendly_errors
def compare(models, source, gt, degrade, backends, precisions, reference_spec, reference_tile, window, lookahead,
            max_frames, skip, report_dir, sweep_lookahead, warmup, repeat, max_error, min_psnr, per_cell, tolerance,
            dcn):
    """Accuracy and latency of bundles x runtimes x precisions against one reference.

    MODELS: one or more bundles of one network (e.g. its FP32, FP16 and INT8 bundles), a checkpoint, or a
    shipped model (basicvsr, basicvsr_pp)."""
    from .evaluate.compare import parse_reference, parse_targets, prepare_clips, run_compare
    from .progress import FrameProgress
    from .evaluate.report import format_table, write_report
    from .export.cache import bundle_for

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    parse_targets(split_list(backends), split_list(precisions))  # names checked before anything is read
    reference = parse_reference(reference_spec, parse_tile(reference_tile))
    bundles = [bundle_for(m, "ort-cpu", dcn or "decomposed", progress=lambda c: echo(f"exporting cell {c}"))
               for m in models]
    targets = parse_targets(split_list(backends), split_list(precisions), bundles)
    lr, gt_clip, gt_desc, clip_desc = prepare_clips(source, gt, degrade, max_frames, notice=echo, skip=skip)
    if per_cell:
        _compare_per_cell(bundles[0], lr, targets, window or None, lookahead, tolerance, report_dir)
        return
    with FrameProgress() as bars:
        result = run_compare(bundles[0], lr, targets, gt=gt_clip, ground_truth=gt_desc, window=window or None,
                             lookahead=lookahead, max_error=max_error, min_psnr=min_psnr,
                             sweep_lookahead=sweep_lookahead or None, clip_name=clip_desc, warmup=warmup,
                             repeat=repeat, reference=reference, progress=bars.message, tick=bars.tick)
    click.echo(format_table(result))
    for w in result.warnings:
        echo(f"warning: {w}")
    if report_dir:
        files = write_report(result, report_dir, machine=machine_description())
        click.echo(f"report: {', '.join(str(p) for p in files.values())}")
    failed = [t for t in result.targets if t.status == "failed"]
    for t in failed:
        click.echo(f"FAIL {t.label}: {t.reason}", err=True)
    if not result.compared:
        click.echo("FAIL no target was compared (every one was skipped; see the reasons above): "
                   "pick backends that run here (`vsrdeploy backends`)", err=True)
    if not result.passed:
        sys.exit(1)


def _compare_per_cell(bundle, lr, targets, window, lookahead, tolerance, report_dir) -> None:
    from .evaluate.cell_diff import diagnose_cells, format_diagnosis, write_diagnosis
    from .progress import FrameProgress

    if len(targets) < 2:
        raise ConfigError("--per-cell replays one target's recorded cell inputs through others: give two bundles "
                          "or two backends (e.g. --backends ort-cpu,openvino-cpu)")
    with FrameProgress() as bars:
        diagnosis = diagnose_cells(bundle, lr, targets, window=window, lookahead=lookahead, tolerance=tolerance,
                                   progress=bars.message, tick=bars.tick)
    click.echo(format_diagnosis(diagnosis))
    if report_dir:
        files = write_diagnosis(diagnosis, report_dir)
        click.echo(f"report: {', '.join(str(p) for p in files.values())}")
    if diagnosis.first_divergence is not None:
        d = diagnosis.first_divergence
        click.echo(f"FAIL {d['target']}: first divergence in cell {d['cell']} at frame {d['frame']} "
                   f"(call {d['call']}, output {d['output']}, error {d['error']:.3g} > {d['tolerance']:g})", err=True)
        sys.exit(1)


def machine_description() -> str:
    from .evaluate.machine import describe
    return describe()


@main.command()
@click.argument("model", type=click.Path())
@backend_option("torch,ort-cpu,openvino-cpu")
@click.option("--size", default="320x180", show_default=True, metavar="WxH",
              help="LR frame size, width x height (default: the papers' 180x320 LR).")
@click.option("--frames", type=click.IntRange(min=1), default=20, show_default=True, help="Clip length.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed runs per configuration (median reported).")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True,
              help="Frames of a warm-up run before timing.")
@click.option("--window", type=click.IntRange(min=0), default=16, show_default=True, help="0 = whole clip.")
@click.option("--lookahead", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for every configuration.")
@click.option("--precisions", default="fp32", show_default=True, metavar="P1,P2",
              help="Precisions each backend runs from the FP32 bundle (openvino-cpu: fp32, bf16, fp16); "
                   "int8-bf16 / int8-fp16 run the --extra-bundle INT8 bundles with their unquantized ops at that precision.")
@click.option("--extra-bundle", "extra", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A derived bundle (INT8 from `calibrate`, FP16 from `convert`) also run on each backend (repeat).")
@click.option("--profile", is_flag=True,
              help="Also profile each backend row per cell (time share, GFLOP/s, fraction of the FP32 GEMM peak "
                   "measured on the same threads); adds two clock reads per cell call to the timed runs.")
@click.option("--peak-size", type=click.IntRange(min=16), default=2048, show_default=True,
              help="With --profile: side of the square FP32 GEMM whose rate is the peak.")
@click.option("--heap", type=click.Choice([*HEAP_POLICIES, "both"]), default=DEFAULT_HEAP_POLICY, show_default=True,
              help="The streams' malloc policy (see `run --heap`); both: every row with each. The baseline always "
                   "runs with the C library's default, as upstream's code does.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def bench(model, backends, size, frames, repeat, warmup, window, lookahead, threads, precisions, extra, profile,
          peak_size, heap, as_json):
    """Throughput and peak memory per backend x precision, as ratios to the whole-clip PyTorch forward.

    MODEL: a .vsr bundle, a checkpoint, or a shipped model (basicvsr, basicvsr_pp)."""
    from .evaluate.bench import format_bench
    from .export.cache import bundle_for

    from .runtimes.base import check_backend_names

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    names = split_list(backends)
    check_backend_names(names)  # before exporting anything
    from click.core import ParameterSource
    if click.get_current_context().get_parameter_source("size") is ParameterSource.DEFAULT:
        hw = (180, 320)  # the default is WxH whatever VSRDEPLOY_SIZE_ORDER says, and needs no notice
    else:
        hw = parse_size(size, "--size")
    from .bundle import Bundle
    from .evaluate.bench import BASELINE, BenchConfig, run_configs
    from .evaluate.compare import bundle_precisions, parse_targets
    from .progress import FrameProgress
    wanted = split_list(precisions)
    targets = parse_targets(names, wanted)  # checks the precision names, before exporting anything
    own = bundle_precisions("fp32", wanted)  # int8-* rows are the --extra-bundle INT8 bundles'
    extra = [Bundle(e) for e in extra]
    mixed = [p for p in wanted if p not in own]
    if mixed and not any(e.precision == "int8" for e in extra):
        raise ConfigError(f"{', '.join(mixed)} runs an INT8 bundle: add --extra-bundle INT8.vsr (made by `vsrdeploy "
                          "calibrate`)")
    bundle = bundle_for(model, "ort-cpu", "decomposed", progress=lambda c: echo(f"exporting cell {c}"))
    rows = [BenchConfig(t.backend, t.precision) for t in targets if t.precision in own]
    same_name = collections.Counter([bundle.path.name] + [e.path.name for e in extra])
    for derived in extra:  # named by their folder too where two share a name (a/int8.vsr, b/int8.vsr; MODEL's too)
        shown = derived.path.name
        if same_name[shown] > 1:
            shown = f"{derived.path.parent.name}/{shown}"
        for p in bundle_precisions(derived.precision, wanted):
            rows += [BenchConfig(b, p, bundle=str(derived.path), label=f"{b}/{p} ({shown})") for b in names]
    heaps = list(HEAP_POLICIES) if heap == "both" else [heap]
    configs = [BenchConfig(BASELINE)] + [
        dataclasses.replace(c, heap=h, label=c.label + (f" heap={h}" if h != DEFAULT_HEAP_POLICY else ""))
        for c in rows for h in heaps]
    with FrameProgress() as bars:
        results = run_configs(str(bundle.path), configs, frames=frames, size=hw,
                              warmup=warmup, repeat=repeat, window=window or None, lookahead=lookahead, threads=threads,
                              progress=bars.message, profile=profile, peak_size=peak_size)
    if as_json:
        from .evaluate.machine import machine_info
        settings = {"bundle": str(bundle.path), "arch": bundle.arch, "frames": frames, "size": [hw[1], hw[0]],
                    "warmup_frames": warmup, "repeat": repeat, "window": window or None, "lookahead": lookahead,
                    "threads": threads, "profile": profile, "heap": heap}
        click.echo(json.dumps({"machine": machine_info(), "settings": settings,
                               "results": [r.to_dict() for r in results]}, indent=1))
    else:
        click.echo(f"{bundle.arch} bundle {bundle.path}, {frames} frames {hw[1]}x{hw[0]}, window {window}, "
                   f"lookahead {lookahead}; {machine_description()}")
        click.echo(format_bench(results))
        if profile:
            from .evaluate.cell_profile import format_profile
            for r in results:
                if r.profile:
                    click.echo("")
                    click.echo(format_profile(r.name, r.profile))
    for r in results:
        if r.status == "failed":
            click.echo(f"FAIL {r.name}: {r.reason}", err=True)
    if not any(r.status == "ok" for r in results[1:]):
        click.echo("FAIL no backend ran (see the reasons above): pick backends that run here (`vsrdeploy backends`)",
                   err=True)
    if any(r.status == "failed" for r in results) or not any(r.status == "ok" for r in results[1:]):
        sys.exit(1)


@main.command()
@click.argument("model", type=click.Path())
@click.option("--frames", "frames_spec", required=True,
              help="A real clip (video, image directory, any `run` source). Taken as high-resolution and degraded "
                   "(--degrade, default bi) to measure PSNR-Y against it, unless --gt gives the ground truth.")
@click.option("--gt", help="Ground-truth HR clip: --frames is then the LR input itself.")
@click.option("--degrade", type=click.Choice(["bi", "bd"]), default="bi", show_default=True,
              help="How the LR input is made from --frames when there is no --gt.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Largest PSNR-Y drop vs FP32 (dB) a configuration may have to be chosen.")
@backend_option("torch,ort-cpu,openvino-cpu")
@click.option("--precisions", "--precision", "precisions", multiple=True,
              default=("fp32,bf16,fp16,int8,int8-bf16,int8-fp16",), show_default=True, metavar="P1,P2",
              callback=join_lists, help="Precisions to try (comma-separated or repeated); int8-bf16 / int8-fp16: "
                                        "INT8 with the unquantized ops in BF16 / FP16 (openvino-cpu).")
@click.option("--size", metavar="WxH", help="LR frame size to time [default: the size of the --frames frames].")
@click.option("--max-frames", type=click.IntRange(min=2), default=8, show_default=True,
              help="Frames of --frames whose PSNR-Y is measured.")
@click.option("--calib-frames", type=click.IntRange(min=2), default=8, show_default=True,
              help="Frames after those calibrate INT8 (the measured frames when the clip is too short).")
@click.option("--skip", type=click.IntRange(min=0), default=0, show_default=True, help="Leading frames to skip.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads [default: all cores].")
@click.option("--window", type=click.IntRange(min=0), default=16, show_default=True, help="0 = whole clip.")
@click.option("--lookahead", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--timing-frames", type=click.IntRange(min=1), default=4, show_default=True,
              help="Frames per timed run (synthetic, at --size); memory grows with it (batched upsampling).")
@click.option("--repeat", type=click.IntRange(min=1), default=2, show_default=True, help="Timed runs (median).")
@click.option("--dcn", type=click.Choice(["native", "decomposed", "both"]), default="decomposed", show_default=True,
              help="DCN mode when MODEL is a checkpoint (decomposed runs on every runtime, OpenVINO included; both: "
                   "also time the native form where a runtime imports it, e.g. ONNX Runtime's DeformConv).")
@click.option("--max-memory", metavar="SIZE", help="e.g. 2GB: a configuration whose timed run peaked above SIZE "
              "(resident memory of the whole process) is not chosen.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of the table.")
@friendly_errors
def tune(model, frames_spec, gt, degrade, max_drop, backends, precisions, size, max_frames, calib_frames, skip,
         threads, window, lookahead, timing_frames, repeat, dcn, max_memory, as_json):
    """Time every backend x precision here, measure each one's PSNR-Y drop, write the fastest within
    --max-drop as NAME.profile.json beside the bundle (used by `run --profile auto` / `run -b auto`).

    INT8 is calibrated on the clip's frames after --max-frames, one row per form a backend runs: `cpu` (ONNX
    Runtime's Q/DQ) and `cpu-concat` (the same with the convs on concatenations quantized too) on ort-cpu and
    openvino-cpu, `openvino` (NNCF) on openvino-cpu where NNCF is installed; each is kept beside the bundle as
    NAME-int8-FORM.vsr (reused while the bundle and the recipe are unchanged)."""
    from dataclasses import asdict

    from .evaluate.compare import prepare_clips
    from .runtimes.base import check_backend_names
    from .export.cache import bundle_for
    from .evaluate.tune import format_tune, json_safe, tune as run_tune, write_profile
    from .models.budget import parse_bytes

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    names = split_list(backends)
    check_backend_names(names)
    if dcn == "both" and os.path.isdir(model):
        raise ConfigError(f"--dcn both needs a checkpoint (it exports both forms); {model} is a bundle with one "
                          "form: tune it as it is, or pass its checkpoint")
    hw = parse_size(size, "--size")
    max_memory_mb = parse_bytes(max_memory, "--max-memory") / 2**20 if max_memory else None
    lr, gt_clip, _, clip_desc = prepare_clips(frames_spec, gt, None if gt else degrade, max_frames + calib_frames,
                                              notice=echo, skip=skip)
    timed = hw if hw else (tuple(gt_clip.shape[2:]) if not gt else tuple(lr.shape[2:]))
    calib = lr[max_frames:] if len(lr) >= max_frames + 2 else lr[:max_frames]
    exporting = lambda c: echo(f"exporting cell {c}")  # noqa: E731
    bundle = bundle_for(model, "ort-cpu", "decomposed" if dcn == "both" else dcn, progress=exporting)
    alternates = []
    if dcn == "both":
        native = bundle_for(model, "ort-cpu", "native", progress=exporting)
        if "DeformConv" in native.cell_ops():
            alternates.append(native)
        else:
            echo(f"--dcn both: {bundle.arch} has no deformable conv, so both forms are one graph; tuning it once")
    result = run_tune(bundle, lr[:max_frames], gt_clip[:max_frames], backends=names,
                      precisions=split_list(precisions), max_drop=max_drop, size=timed, threads=threads,
                      window=window or None, lookahead=lookahead, timing_frames=timing_frames, repeat=repeat,
                      calib_lr=calib, clip=clip_desc, max_memory_mb=max_memory_mb, alternates=alternates,
                      progress=echo)
    path = write_profile(result) if result.chosen else None
    if as_json:
        click.echo(json.dumps(json_safe({**asdict(result), "profile": str(path) if path else None}), indent=1,
                              default=str))
    else:
        click.echo(f"{bundle.arch} bundle {bundle.path}; {machine_description()}")
        click.echo(format_tune(result))
        if path:
            click.echo(f"profile: {path} (use it: vsrdeploy run {model} -b auto -i IN -o OUT)")
    if path is None:
        sys.exit(1)


@main.command()
@click.option("--arch", required=True, help="Architecture to train (see `vsrdeploy models`).")
@click.option("--config", "overrides", multiple=True, metavar="KEY=VALUE", help="Network config, e.g. mid_channels=16.")
@click.option("--data", "data", required=True, multiple=True, help="Training clip (repeat for several).")
@click.option("--val-fraction", default=0.1, show_default=True, help="Last fraction of every clip held out for validation.")
@click.option("--steps", default=1000, show_default=True)
@click.option("--crop", default=64, show_default=True, help="LR crop size (HR = 4x).")
@click.option("--frames", default=15, show_default=True, help="Frames per training sequence.")
@click.option("--batch", default=2, show_default=True)
@click.option("--lr", default=2e-4, show_default=True)
@click.option("--flow-lr-mult", default=0.125, show_default=True, help="SPyNet learning-rate multiplier.")
@click.option("--fix-flow-steps", default=0, show_default=True, help="Steps with SPyNet frozen at the start.")
@click.option("--val-every", default=200, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=int, help="CPU threads.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option("--init", "init_from", type=click.Path(exists=True, dir_okay=False),
              help="Start from the weights of this checkpoint that fit (same name and shape), e.g. a trained SPyNet.")
@friendly_errors
def train(arch, overrides, data, val_fraction, steps, crop, frames, batch, lr, flow_lr_mult, fix_flow_steps,
          val_every, seed, threads, out_dir, resume, init_from):
    """Train a network on video clips (BI degradation made on the fly); writes mmagic checkpoints."""
    from .train import TrainConfig, train as run_training

    cfg = TrainConfig(arch=arch, model_config=parse_overrides(overrides), data=list(data), val_fraction=val_fraction,
                      steps=steps, crop=crop, frames=frames, batch=batch, lr=lr, flow_lr_mult=flow_lr_mult,
                      fix_flow_steps=fix_flow_steps, val_every=val_every, seed=seed, threads=threads,
                      init_from=init_from)
    record = run_training(cfg, out_dir, resume=resume, echo=lambda m: click.echo(m, err=True))
    best = record["best_psnr_y"]
    click.echo(f"trained {record['step']} steps in {record['seconds'] / 60:.1f} min; final loss {record['loss']:.4f}"
               + (f"; best val PSNR-Y {best:.2f} dB" if best > -1e9 else "") + f"; checkpoints in {out_dir}")


@main.command()
@backend_option(None, help_text="Runtime(s) to use, comma-separated or repeated [default: every one available].")
@click.option("-i", "--input", "input_clip", help="Your own LR clip [default: the bundled clip, degraded x4].")
@click.option("-m", "--model", help="Checkpoint, bundle, or a shipped model: basicvsr (default), basicvsr_pp.")
@click.option("--out", "out_dir", default="vsrdeploy-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--frames", default=30, show_default=True, help="Frames of the clip to use.")
@click.option("--window", default=10, show_default=True)
@click.option("--lookahead", default=5, show_default=True)
@friendly_errors
def demo(backends, input_clip, model, out_dir, frames, window, lookahead):
    """Upscale a real clip with the shipped model on every runtime here: video, side-by-side PNG, report."""
    import time
    from .demo import run_demo

    t0 = time.perf_counter()
    s = run_demo(out_dir, model=model, input_clip=input_clip, backends=split_list(backends) or None, frames=frames,
                 window=window, lookahead=lookahead, echo=lambda m: click.echo(m, err=True))
    click.echo(f"upscaled video : {s['video']} (streamed on {s['backend_for_video']})")
    click.echo(f"side by side   : {s['side_by_side']}")
    click.echo(f"report         : {s['report']}")
    if "psnr_y" in s:
        click.echo(f"quality        : PSNR-Y {s['psnr_y']:.2f} dB vs bicubic {s['bicubic_psnr_y']:.2f} dB "
                   f"({s['psnr_y'] - s['bicubic_psnr_y']:+.2f} dB)")
    click.echo(f"done in {time.perf_counter() - t0:.0f} s")


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-m", "--model", required=True,
              help="Checkpoint, bundle, or a shipped model: basicvsr, basicvsr_pp.")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False),
              help="Output directory: one output per input, named after it (video -> video, image dir -> PNG dir).")
@backend_option("ort-cpu", one=True)
@click.option("--ray-address", help="Join this Ray cluster (e.g. 10.0.0.1:6379 or auto) [default: start a local one].")
@click.option("--workers", type=int, help="Worker actors [default: cluster CPUs / --threads, or its GPUs].")
@click.option("--threads", default=1, show_default=True, help="CPU threads per worker (its Ray num_cpus).")
@click.option("--segment", default=64, show_default=True, help="Frames per segment (a multiple of --window).")
@click.option("--warmup", default=None, type=int,
              help="Frames streamed before each segment to warm the forward state [default: measured, see README].")
@click.option("--window", default=16, show_default=True, help="Frames per window.")
@click.option("--lookahead", default=8, show_default=True, help="Extra frames the backward branches see.")
@click.option("--dcn", type=click.Choice(["native", "decomposed", "plugin"]),
              help="DCN mode when MODEL is a checkpoint [default: what the backend supports].")
@click.option("--codec", default="mp4v", show_default=True, help="FourCC of video outputs.")
@click.option("--force", is_flag=True, help="Redo outputs that exist and job directories made with other settings.")
@friendly_errors
def batch(inputs, model, outdir, backends, ray_address, workers, threads, segment, warmup, window, lookahead, dcn,
          codec, force):
    """Upscale many videos / image directories on a Ray cluster, long ones cut into segments; rerun to resume."""
    from .scale import DEFAULT_WARMUP, run_batch

    result = run_batch(list(inputs), model_path(model), outdir, backend=backends, ray_address=ray_address,
                       workers=workers, threads=threads, segment=segment,
                       warmup=DEFAULT_WARMUP if warmup is None else warmup, window=window, lookahead=lookahead,
                       dcn=dcn, codec=codec, force=force, echo=lambda m: click.echo(m, err=True))
    for path in result.outputs:
        click.echo(str(path))


if __name__ == "__main__":
    main()
