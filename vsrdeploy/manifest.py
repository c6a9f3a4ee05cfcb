"""The bundle manifest's schema: every key, its type and its bounds, checked before anything is built.

A manifest comes from a directory the user may have downloaded, so nothing in it is trusted until it
passes ``manifest_problems`` (structure, types, paths) and ``model_problems`` (the description agrees
with the network it names). Both return every problem they find, so one message lists them all.

``description_sha256`` covers the whole manifest (model description, cells, file hashes), the way
``files`` covers the files: an edited manifest is refused like an edited cell.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys

FORMAT_VERSION = 2
HASH_KEY = "description_sha256"
PRECISIONS = ("fp32", "fp16", "int8")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def description_sha256(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON, without its own hash."""
    body = {k: v for k, v in manifest.items() if k != HASH_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _kind(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


class _Checker:
    """Collects problems; each ``need`` checks one key's presence and type."""

    def __init__(self):
        self.problems: list[str] = []

    def add(self, text: str) -> None:
        self.problems.append(text)

    def need(self, obj: dict, key: str, types, where: str, optional: bool = False):
        if key not in obj:
            if not optional:
                self.add(f"{where}: missing key {key!r}")
            return None
        value = obj[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in _as_tuple(types))
        if not ok:
            want = " or ".join(_kind(t()) if t is not type(None) else "null" for t in _as_tuple(types))
            self.add(f"{where}.{key} must be {want}, got {_kind(value)}")
            return None
        return value


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _check_ports(c: _Checker, ports, where: str) -> None:
    if ports is None:
        return
    for i, port in enumerate(ports):
        w = f"{where}[{i}]"
        if not isinstance(port, dict):
            c.add(f"{w} must be an object, got {_kind(port)}")
            continue
        c.need(port, "name", str, w)
        c.need(port, "dtype", str, w)
        c.need(port, "scale", (int, float, type(None)), w, optional=True)
        shape = c.need(port, "shape", list, w)
        if shape is not None and not all(isinstance(d, str) or (_is_int(d) and d > 0) for d in shape):
            c.add(f"{w}.shape must hold symbolic names or positive integers, got {shape}")


def manifest_problems(manifest) -> list[str]:
    """Structural problems of a parsed manifest (types, required keys, bounds); [] when it is well formed."""
    c = _Checker()
    if not isinstance(manifest, dict):
        return [f"the manifest must be a JSON object, got {_kind(manifest)}"]
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        return [f"bundle format {version!r}; this vsrdeploy reads format {FORMAT_VERSION}: re-export the bundle "
                "with this version of vsrdeploy"]
    model = c.need(manifest, "model", dict, "manifest")
    if model is not None:
        c.need(model, "arch", str, "model")
        c.need(model, "config", dict, "model")
    for key in ("scale", "pad_multiple", "min_size", "opset", "min_input_size"):
        value = c.need(manifest, key, int, "manifest", optional=key == "min_input_size")
        if value is not None and not 1 <= value <= 1024:
            c.add(f"manifest.{key} must be between 1 and 1024, got {value}")
    c.need(manifest, "schedule", str, "manifest")
    precision = c.need(manifest, "precision", str, "manifest")
    if precision is not None and precision not in PRECISIONS:
        c.add(f"manifest.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    from .models.dcn_names import DCN_EXPORT_MODES
    dcn = c.need(manifest, "dcn", str, "manifest")
    if dcn is not None and dcn not in DCN_EXPORT_MODES:
        c.add(f"manifest.dcn must be one of {', '.join(DCN_EXPORT_MODES)}, got {dcn!r}")
    static = c.need(manifest, "static_shape", (list, type(None)), "manifest", optional=True)
    if static is not None and (len(static) != 2 or not all(_is_int(v) and v > 0 for v in static)):
        c.add(f"manifest.static_shape must be null or [height, width] positive integers, got {static}")
    c.need(manifest, "simplified", bool, "manifest", optional=True)
    for key in ("source", "versions", "precision_details", "derived_from"):
        c.need(manifest, key, dict, "manifest", optional=True)
    c.need(manifest, "created", str, "manifest", optional=True)
    files = c.need(manifest, "files", dict, "manifest")
    if files is not None:
        for rel, digest in files.items():
            if not isinstance(digest, str) or not _SHA256.match(digest):
                c.add(f"files[{rel!r}] must be a sha256 hex digest, got {digest!r}")
    weights = c.need(manifest, "weights", str, "manifest")
    if weights is not None and files is not None and weights not in files:
        c.add(f"manifest.weights {weights!r} has no hash in files: every file a bundle uses must be listed")
    cells = c.need(manifest, "cells", dict, "manifest")
    if cells is not None:
        if not cells:
            c.add("manifest.cells is empty")
        for name, info in cells.items():
            w = f"cells[{name!r}]"
            if not isinstance(info, dict):
                c.add(f"{w} must be an object, got {_kind(info)}")
                continue
            unknown = set(info) - {"file", "inputs", "outputs", "stateless", "ops", "halo", "largest_op"}
            if unknown:
                c.add(f"{w} has unknown key(s) {', '.join(sorted(unknown))}")
            file = c.need(info, "file", str, w)
            if file is not None and files is not None and file not in files:
                c.add(f"{w}.file {file!r} has no hash in files")
            _check_ports(c, c.need(info, "inputs", list, w), f"{w}.inputs")
            _check_ports(c, c.need(info, "outputs", list, w), f"{w}.outputs")
            c.need(info, "stateless", bool, w)
            halo = c.need(info, "halo", (int, type(None)), w, optional=True)
            if halo is not None and not 0 <= halo <= 1024:
                c.add(f"{w}.halo must be null or between 0 and 1024, got {halo}")
            largest = c.need(info, "largest_op", list, w, optional=True)
            if largest is not None and not (len(largest) == 2 and all(isinstance(v, (int, float)) and not
                                                                       isinstance(v, bool) for v in largest)):
                c.add(f"{w}.largest_op must be [bytes per LR pixel, bytes], got {largest}")
            ops = c.need(info, "ops", list, w)
            if ops is not None and not all(isinstance(o, str) for o in ops):
                c.add(f"{w}.ops must be a list of operator names")
    c.need(manifest, HASH_KEY, str, "manifest")
    return c.problems


def hash_problems(manifest: dict) -> list[str]:
    """[] when the manifest's ``description_sha256`` matches its content."""
    if manifest.get(HASH_KEY) != description_sha256(manifest):
        return ["manifest.json was edited after it was written (its description_sha256 does not match)"]
    return []


def model_problems(manifest: dict) -> list[str]:
    """Problems between a well-formed manifest and the network it names: config bounds, cells, ports.

    The check builds the network on PyTorch's meta device. A process without PyTorch (a bundle streaming on
    ort-cpu or openvino-cpu) has it done by a child process instead, so it stays without PyTorch; a manifest
    that passed once is remembered in the cache (keyed by its sha256 and this vsrdeploy's version), so that
    happens once per bundle and machine, and not at all for a bundle this machine exported or opened before."""
    passed = _passed_marker(manifest)
    if passed is not None and passed.exists():
        return []
    problems = _code_problems(manifest) if "torch" in sys.modules else _code_problems_in_child(manifest)
    if not problems and passed is not None:
        try:
            passed.parent.mkdir(parents=True, exist_ok=True)
            passed.touch()
        except OSError:  # a read-only cache: checked again next time
            pass
    return problems


def _passed_marker(manifest: dict):
    """The cache file that says this manifest passed :func:`model_problems` under this vsrdeploy (None when the
    manifest cannot be hashed)."""
    from . import __version__
    from .export.cache import cache_dir
    try:
        digest = description_sha256(manifest)
    except (TypeError, ValueError):
        return None
    return cache_dir() / "checked-manifests" / __version__ / digest


def _code_problems_in_child(manifest: dict) -> list[str]:
    """:func:`_code_problems` run by a child Python process (which imports PyTorch; this one does not)."""
    import subprocess
    code = ("import json, sys\nfrom vsrdeploy.manifest import _code_problems\n"
            "print(json.dumps(_code_problems(json.load(sys.stdin))))")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(manifest), capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"could not check the manifest against the network's code in a child process ({last}); "
                "is PyTorch installed? (pip install torch)"]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _code_problems(manifest: dict) -> list[str]:
    """:func:`model_problems`, done here: the network built on the meta device (needs PyTorch)."""
    from .errors import ConfigError
    from .models.registry import config_problems, get_model_class
    arch, config = manifest["model"]["arch"], manifest["model"]["config"]
    try:
        cls = get_model_class(arch)
    except ConfigError as e:
        return [str(e)]
    problems = config_problems(cls, config)
    if problems:
        return problems
    import torch
    try:
        with torch.device("meta"):
            net = cls(**{**cls.default_config, **config})
        cells = net.cells
    except ConfigError as e:
        return [str(e)]
    for key, expected in (("scale", net.scale), ("pad_multiple", net.pad_multiple), ("min_size", net.min_size),
                          ("schedule", type(net.schedule()).__name__), ("min_input_size", net.min_input_size)):
        if manifest.get(key, expected) != expected:
            problems.append(f"manifest.{key} is {manifest[key]!r} but {arch} has {expected!r}")
    listed = manifest["cells"]
    missing, extra = sorted(set(cells) - set(listed)), sorted(set(listed) - set(cells))
    if missing:
        problems.append(f"cell(s) {', '.join(missing)} of {arch} are missing from the manifest")
    if extra:
        problems.append(f"the manifest lists cell(s) {', '.join(extra)} that {arch} does not have")
    for name in set(cells) & set(listed):
        for side in ("inputs", "outputs"):
            want = [p.name for p in getattr(cells[name], side)]
            got = [p.get("name") for p in listed[name][side]]
            if got != want:
                problems.append(f"cells[{name!r}].{side} are {got}; {arch} expects {want}")
        if listed[name]["stateless"] != cells[name].stateless:
            problems.append(f"cells[{name!r}].stateless must be {str(cells[name].stateless).lower()}")
        if listed[name].get("halo", cells[name].halo) != cells[name].halo:
            problems.append(f"cells[{name!r}].halo must be {cells[name].halo}")
    from . import __version__
    versions = manifest.get("versions")
    made_by = versions.get("vsrdeploy") if isinstance(versions, dict) else None
    if problems and made_by != __version__:
        problems.append(f"the cells {arch} is cut into change between vsrdeploy versions (this bundle: "
                        f"{made_by or 'unknown'}, this vsrdeploy: {__version__}); export the checkpoint again "
                        "with this vsrdeploy")
    return problems
