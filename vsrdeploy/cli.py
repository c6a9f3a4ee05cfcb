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
@friendly_errors
def parity(vectors, tolerance):
    """Check the networks against upstream reference vectors (a directory with index.json)."""
    from .reference import iter_reference_results

    failed = 0
    for r in iter_reference_results(vectors):
        status = "ok" if r.max_error <= tolerance else "FAIL"
        failed += status != "ok"
        click.echo(f"{status:4} {r.case:24} {r.checkpoint:20} {r.arch:12} max|err| {r.max_error:.2e}  "
                   f"{r.seconds:.1f}s")
    if failed:
        click.echo(f"{failed} case(s) above tolerance {tolerance:g}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
