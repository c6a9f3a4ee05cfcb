"""The ``vsrdeploy`` command line. Thin: parse, call the library, print."""
from __future__ import annotations

import functools
import json
import sys

import click

from .errors import VSRDeployError


def friendly_errors(fn):
    """Turn vsrdeploy's own errors into one-line messages and a non-zero exit."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VSRDeployError as e:
            raise click.ClickException(str(e)) from None
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

    _, info = load_checkpoint_with_info(checkpoint, arch, **parse_overrides(overrides))
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
@click.option("--backends", default="", metavar="B1,B2",
              help="Also export each case to a bundle and check it on these runtimes (e.g. ort-cpu,openvino-cpu).")
@friendly_errors
def parity(vectors, tolerance, backends):
    """Check the networks against upstream reference vectors (a directory with index.json)."""
    from .reference import iter_reference_results

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


def parse_size(value: str | None, order: str = "HxW"):
    """'64x72' -> (64, 72) in the order the option documents."""
    if value is None:
        return None
    try:
        a, b = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected {order} like 64x72, got {value!r}") from None
    if a <= 0 or b <= 0:
        raise click.BadParameter(f"sizes must be positive, got {value!r}")
    return a, b


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--arch", help="Architecture, when detection from the keys is not wanted.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Bundle directory [default: NAME.vsr].")
@click.option("--dcn", type=click.Choice(["native", "decomposed", "plugin"]), default="native", show_default=True,
              help="Deformable conv as ONNX DeformConv, as GridSample+MatMul (OpenVINO), or the TensorRT plugin node.")
@click.option("--opset", type=int, help="ONNX opset [default: 19].")
@click.option("--static-shape", metavar="HxW", help="Fix the LR frame size (default: any size).")
@click.option("--simplify", is_flag=True, help="Simplify graphs with onnxslim.")
@click.option("--config", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config values that cannot be read from the weights (e.g. keyframe_stride=5).")
@friendly_errors
def export(checkpoint, arch, output, dcn, opset, static_shape, simplify, overrides):
    """Export a checkpoint step-wise to an ONNX bundle (one graph per cell)."""
    from .export import export_onnx

    path = export_onnx(checkpoint, output, arch=arch, dcn=dcn, opset=opset,
                       static_shape=parse_size(static_shape), simplify=simplify,
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
              help="Keep matching nodes in FP32: cell=NAME, node=REGEX, op=TYPE, sampling-grid, concat-input, cell-input "
                   "(repeat; default: the measured list, see README). Pass --keep-fp32 none for none.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Output bundle (default: NAME-fp16.vsr).")
@friendly_errors
def convert(bundle, precision, keep, output):
    """Convert an FP32 bundle to FP16 (float32 cell I/O, explicit keep-in-FP32 list)."""
    from .calib.fp16 import DEFAULT_KEEP_FP32, convert_bundle_fp16

    rules = [] if keep == ("none",) else (list(keep) or list(DEFAULT_KEEP_FP32))
    path = convert_bundle_fp16(bundle, output, keep=rules,
                               progress=lambda name: click.echo(f"  converting cell {name}", err=True))
    from .bundle import Bundle
    kept = Bundle(path).manifest["precision_details"]["kept_fp32_nodes"]
    click.echo(f"wrote {path} ({precision}; kept in FP32: {', '.join(rules) or 'nothing'}; "
               f"{sum(map(len, kept.values()))} nodes)")


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False, exists=True))
@click.option("--frames", "frames_spec", required=True,
              help="Calibration frames: a video, an image directory or any `run` source (real input frames).")
@click.option("--max-frames", type=click.IntRange(min=2), default=16, show_default=True,
              help="Frames read from --frames (at least 2).")
@click.option("--skip", type=click.IntRange(min=0), default=0, show_default=True,
              help="Frames skipped at the start of --frames.")
@click.option("--degrade", type=click.Choice(["bi", "bd"]),
              help="--frames are high-resolution: make the LR input with this degradation first.")
@click.option("--method", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax", show_default=True)
@click.option("--target", type=click.Choice(["tensorrt", "cpu"]), default="cpu", show_default=True,
              help="tensorrt: symmetric S8/S8; cpu: U8 activations / S8 weights (fast on ONNX Runtime CPU).")
@click.option("--exclude", multiple=True, metavar="RULE",
              help="Leave matching nodes in float: cell=NAME, node=REGEX, op=TYPE, sampling-grid, concat-input or "
                   "cell-input (repeat; default: those three). Pass --exclude none for none.")
@click.option("--samples", type=click.IntRange(min=1), default=64, show_default=True,
              help="Recorded inputs kept per cell.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Output bundle (default: NAME-int8.vsr).")
@friendly_errors
def calibrate(bundle, frames_spec, max_frames, skip, degrade, method, target, exclude, samples, output):
    """Quantize a bundle to INT8 (Q/DQ), calibrated on real frames streamed through it."""
    from .calib.int8 import DEFAULT_EXCLUDE, calibrate_bundle
    from .compare import read_clip

    frames, description = read_clip(frames_spec, max_frames, notice=lambda m: click.echo(m, err=True), skip=skip)
    if degrade:
        from .degrade import degrade as make_lr
        frames = make_lr(frames, degrade)
    rules = [] if exclude == ("none",) else (list(exclude) or list(DEFAULT_EXCLUDE))
    path = calibrate_bundle(bundle, frames, output, target=target, method=method, exclude=rules,
                            max_samples=samples, source=description, echo=lambda m: click.echo(m, err=True))
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
@click.option("--min-shape", help="Smallest LR frame HxW the engines accept (default: the network's minimum).")
@click.option("--opt-shape", help="LR frame HxW TensorRT tunes for (default 180x320).")
@click.option("--max-shape", help="Largest LR frame HxW (default: --opt-shape).")
@click.option("--max-batch", default=8, show_default=True, help="Frames per call of the stateless cells.")
@click.option("--workspace", default=1024, show_default=True, help="Builder workspace in MB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="Timing cache file (read and updated).")
@click.option("--plugin", type=click.Path(dir_okay=False), help="DCN plugin library (plugin bundles).")
@click.option("--keep-fp32", "keep", multiple=True, metavar="RULE",
              help="FP16 from an FP32 bundle: nodes kept in FP32 (default: the measured list).")
@click.option("--rebuild", is_flag=True, help="Rebuild even when a cached engine matches.")
@click.option("--verbose", is_flag=True, help="Print TensorRT's builder log.")
@friendly_errors
def build(bundle, precision, min_shape, opt_shape, max_shape, max_batch, workspace, timing_cache, plugin, keep,
          rebuild, verbose):
    """Build TensorRT engines (one per cell) into BUNDLE/engines/tensorrt, reusing cached ones."""
    from .bundle import Bundle
    from .export.tensorrt import build_engines, make_profile

    b = Bundle(bundle)
    profile = make_profile(b, parse_size(min_shape), parse_size(opt_shape), parse_size(max_shape), max_batch)
    records = build_engines(b, precision or b.precision, profile, workspace_mb=workspace, timing_cache=timing_cache,
                            plugin=plugin, keep_fp32=list(keep) or None, rebuild=rebuild, verbose=verbose,
                            progress=lambda name: click.echo(f"  engine for cell {name}", err=True))
    for r in records:
        click.echo(f"{'built ' if r.built else 'cached'} {r.cell:24} {r.file}" + (f"  {r.seconds:.1f}s" if r.built else ""))


@main.command()
def backends():
    """List the runtimes and whether each can run on this machine."""
    from .runtimes import availability

    for name, reason in availability().items():
        click.echo(f"{name:14} {'available' if reason is None else 'unavailable: ' + reason}")


@main.command()
@click.argument("model", type=click.Path())
@click.option("-b", "--backend", default="ort-cpu", show_default=True,
              help="See `vsrdeploy backends`; auto: the tuned profile (`vsrdeploy tune`).")
@click.option("-i", "--input", "source", required=True,
              help="Video file, image directory, capture device (0, device:0), stream URL, or - (raw RGB on stdin).")
@click.option("-o", "--output", "sink", required=True,
              help="Video file (.mp4/.avi/.mkv/.mov), PNG directory, or - (raw RGB on stdout).")
@click.option("--window", default=16, show_default=True, help="Frames per window; 0 = whole clip at once.")
@click.option("--lookahead", default=8, show_default=True, help="Extra frames the backward branches see.")
@click.option("--dcn", type=click.Choice(["native", "decomposed", "plugin"]),
              help="DCN mode when MODEL is a checkpoint [default: what the backend supports].")
@click.option("--codec", default="mp4v", show_default=True, help="FourCC of the output video.")
@click.option("--bit-depth", type=click.Choice(["8", "16"]), default="8", show_default=True,
              help="Output bit depth (16: PNG directory or raw output).")
@click.option("--raw-size", metavar="WxH", help="Frame size of raw stdin input.")
@click.option("--raw-bit-depth", type=click.Choice(["8", "16"]), default="8", show_default=True,
              help="Raw stdin input: 8 = rgb24, 16 = rgb48le.")
@click.option("--resume", is_flag=True, help="Continue an interrupted PNG-directory output.")
@click.option("--threads", type=int, help="CPU threads for the runtime.")
@click.option("--config", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config values for a checkpoint that the weights cannot tell.")
@click.option("--profile", metavar="auto|PATH",
              help="Backend, precision, threads, window and lookahead from a `vsrdeploy tune` profile (auto: the "
                   "one beside the bundle; same as -b auto). Options given on the command line win.")
@friendly_errors
def run(model, backend, source, sink, window, lookahead, dcn, codec, bit_depth, raw_size, raw_bit_depth, resume,
        threads, overrides, profile):
    """Upscale a video with a bundle or checkpoint on a backend (checkpoints are exported once, cached)."""
    from .runtimes.stream_job import run_job

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    options = None
    if backend == "auto" or profile:
        from .tune import load_profile
        given = lambda name: click.get_current_context().get_parameter_source(name).name != "DEFAULT"  # noqa: E731
        settings = load_profile(model, profile or "auto", dcn)
        if settings.note:
            echo(settings.note)
        echo(f"profile {settings.profile}: {settings.backend} {settings.options or ''}, threads {settings.threads}, "
             f"window {settings.window}, lookahead {settings.lookahead}")
        if given("backend") and backend not in ("auto", settings.backend):
            from .errors import ConfigError
            raise ConfigError(f"the profile runs {settings.backend}, not -b {backend}: drop --profile, or -b")
        model, options, backend = settings.bundle, settings.options, settings.backend
        threads = threads or settings.threads
        window = window if given("window") else (settings.window or 0)
        lookahead = lookahead if given("lookahead") else settings.lookahead
    run_job(model, backend=backend, source=source, sink=sink, window=window or None, lookahead=lookahead,
            dcn=dcn, codec=codec, bit_depth=int(bit_depth), raw_size=parse_size(raw_size, "WxH"),
            raw_bit_depth=int(raw_bit_depth), resume=resume, threads=threads, overrides=parse_overrides(overrides),
            echo=echo, **({"backend_options": options} if options else {}))


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
@click.argument("model", type=click.Path())
@click.option("-i", "--input", "source", required=True, help="LR clip (or the HR clip with --degrade).")
@click.option("--gt", "gt", help="Ground-truth HR clip matching --input.")
@click.option("--degrade", type=click.Choice(["bi", "bd"]),
              help="Make the LR clip from --input (HR): bi = MATLAB bicubic x4, bd = Gaussian 1.6 + x4 subsampling.")
@click.option("--backends", default="torch,ort-cpu,openvino-cpu", show_default=True, metavar="B1,B2")
@click.option("--precisions", default="fp32", show_default=True, metavar="P1,P2", help="fp32, fp16, bf16, int8.")
@click.option("--window", type=click.IntRange(min=0), default=16, show_default=True,
              help="Streaming window; 0 = whole clip.")
@click.option("--lookahead", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--frames", "max_frames", type=click.IntRange(min=1), help="Use N frames (after --skip).")
@click.option("--skip", type=click.IntRange(min=0), default=0, show_default=True, help="Leading frames to skip.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write report.md/json, frames.csv, plots here.")
@click.option("--sweep-lookahead", metavar="L1,L2", callback=lambda ctx, param, value: parse_int_list(value, param),
              help="Also measure PSNR vs lookahead (e.g. 0,2,4,8).")
@click.option("--max-error", type=float, help="Fail when a target's max abs error vs the reference exceeds this.")
@click.option("--min-psnr", type=float, help="Fail when a frame's PSNR vs the reference is below this (dB).")
@click.option("--dcn", type=click.Choice(["native", "decomposed", "plugin"]),
              help="DCN mode when MODEL is a checkpoint [default: decomposed, which every runtime takes].")
@friendly_errors
def compare(model, source, gt, degrade, backends, precisions, window, lookahead, max_frames, skip, report_dir,
            sweep_lookahead, max_error, min_psnr, dcn):
    """Accuracy and latency of runtimes x precisions vs the whole-clip PyTorch FP32 forward."""
    from .compare import parse_targets, prepare_clips, run_compare
    from .report import format_table, write_report
    from .runtimes.engine import bundle_for

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    targets = parse_targets(split_list(backends), split_list(precisions))
    sweep = sweep_lookahead or None
    lr, gt_clip, gt_desc, clip_desc = prepare_clips(source, gt, degrade, max_frames, notice=echo, skip=skip)
    bundle = bundle_for(model, "ort-cpu", dcn or "decomposed", progress=lambda c: echo(f"exporting cell {c}"))
    result = run_compare(bundle, lr, targets, gt=gt_clip, ground_truth=gt_desc, window=window or None,
                         lookahead=lookahead, max_error=max_error, min_psnr=min_psnr, sweep_lookahead=sweep,
                         clip_name=clip_desc, progress=echo)
    click.echo(format_table(result))
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


def machine_description() -> str:
    import os
    import platform
    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


@main.command()
@click.argument("model", type=click.Path())
@click.option("--backends", default="torch,ort-cpu,openvino-cpu", show_default=True, metavar="B1,B2")
@click.option("--size", default="64x64", show_default=True, metavar="HxW", help="LR frame size.")
@click.option("--frames", type=click.IntRange(min=1), default=20, show_default=True, help="Clip length.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed runs per configuration (median reported).")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True,
              help="Frames of a warm-up run before timing.")
@click.option("--window", type=click.IntRange(min=0), default=16, show_default=True, help="0 = whole clip.")
@click.option("--lookahead", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for every configuration.")
@click.option("--precisions", default="fp32", show_default=True, metavar="P1,P2",
              help="Precisions each backend runs from the FP32 bundle (openvino-cpu: fp32, bf16, fp16).")
@click.option("--extra-bundle", "extra", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A derived bundle (INT8 from `calibrate`, FP16 from `convert`) also run on each backend (repeat).")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def bench(model, backends, size, frames, repeat, warmup, window, lookahead, threads, precisions, extra, as_json):
    """Throughput and peak memory per backend, as ratios to the whole-clip PyTorch forward."""
    from .bench import format_bench
    from .runtimes.engine import bundle_for

    from .runtimes.base import check_backend_names

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    names = split_list(backends)
    check_backend_names(names)  # before exporting anything
    bundle = bundle_for(model, "ort-cpu", "decomposed", progress=lambda c: echo(f"exporting cell {c}"))
    from .bench import BASELINE, BenchConfig, run_configs
    from .bundle import Bundle
    from .compare import parse_targets
    targets = parse_targets(names, split_list(precisions))  # checks the precision names
    configs = [BenchConfig(BASELINE)] + [BenchConfig(t.backend, t.precision) for t in targets]
    for derived in map(Bundle, extra):
        configs += [BenchConfig(b, derived.precision, bundle=str(derived.path),
                                label=f"{b}/{derived.precision} ({derived.path.name})") for b in names]
    results = run_configs(str(bundle.path), configs, frames=frames, size=parse_size(size),
                          warmup=warmup, repeat=repeat, window=window or None, lookahead=lookahead, threads=threads,
                          progress=echo)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        click.echo(f"{bundle.arch} bundle {bundle.path}, {frames} frames {size}, window {window}, "
                   f"lookahead {lookahead}; {machine_description()}")
        click.echo(format_bench(results))
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
@click.option("--backends", default="torch,ort-cpu,openvino-cpu", show_default=True, metavar="B1,B2")
@click.option("--precisions", default=",".join(("fp32", "bf16", "fp16", "int8")), show_default=True, metavar="P1,P2")
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
@click.option("--dcn", type=click.Choice(["native", "decomposed"]), default="decomposed", show_default=True,
              help="DCN mode when MODEL is a checkpoint (decomposed runs on every runtime, OpenVINO included).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of the table.")
@friendly_errors
def tune(model, frames_spec, gt, degrade, max_drop, backends, precisions, size, max_frames, calib_frames, skip,
         threads, window, lookahead, timing_frames, repeat, dcn, as_json):
    """Time every backend x precision here, measure each one's PSNR-Y drop, write the fastest within
    --max-drop as NAME.profile.json beside the bundle (used by `run --profile auto` / `run -b auto`).

    INT8 is the `calibrate --target cpu` form, calibrated on the clip's frames after --max-frames and kept
    beside the bundle as NAME-int8-cpu.vsr (reused while the bundle is unchanged)."""
    from dataclasses import asdict

    from .compare import prepare_clips
    from .runtimes.base import check_backend_names
    from .runtimes.engine import bundle_for
    from .tune import format_tune, json_safe, tune as run_tune, write_profile

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    names = split_list(backends)
    check_backend_names(names)
    wh = parse_size(size, "WxH")
    lr, gt_clip, _, clip_desc = prepare_clips(frames_spec, gt, None if gt else degrade, max_frames + calib_frames,
                                              notice=echo, skip=skip)
    timed = (wh[1], wh[0]) if wh else (tuple(gt_clip.shape[2:]) if not gt else tuple(lr.shape[2:]))
    calib = lr[max_frames:] if len(lr) >= max_frames + 2 else lr[:max_frames]
    bundle = bundle_for(model, "ort-cpu", dcn, progress=lambda c: echo(f"exporting cell {c}"))
    result = run_tune(bundle, lr[:max_frames], gt_clip[:max_frames], backends=names,
                      precisions=split_list(precisions), max_drop=max_drop, size=timed, threads=threads,
                      window=window or None, lookahead=lookahead, timing_frames=timing_frames, repeat=repeat,
                      calib_lr=calib, clip=clip_desc, progress=echo)
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
@click.option("-b", "--backend", "backends", multiple=True, help="Runtime(s) to use [default: every one available].")
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
    s = run_demo(out_dir, model=model, input_clip=input_clip, backends=backends or None, frames=frames,
                 window=window, lookahead=lookahead, echo=lambda m: click.echo(m, err=True))
    click.echo(f"upscaled video : {s['video']} (streamed on {s['backend_for_video']})")
    click.echo(f"side by side   : {s['side_by_side']}")
    click.echo(f"report         : {s['report']}")
    if "psnr_y" in s:
        click.echo(f"quality        : PSNR-Y {s['psnr_y']:.2f} dB vs bicubic {s['bicubic_psnr_y']:.2f} dB "
                   f"({s['psnr_y'] - s['bicubic_psnr_y']:+.2f} dB)")
    click.echo(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
