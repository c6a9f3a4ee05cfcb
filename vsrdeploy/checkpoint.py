"""Load mmagic, BasicSR and bare-state-dict checkpoints into vsrdeploy networks.

Always ``torch.load(weights_only=True)``. Key names are normalised to mmagic's; the architecture is
detected from the keys and the configuration inferred from tensor shapes.
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field

import torch

from .errors import CheckpointError
from .models.registry import get_model_class, model_classes, validate_config

#: BasicSR -> mmagic key renames (verified bijective upstream; no-ops on mmagic names)
_BASICSR_RULES: list[tuple[re.Pattern, object]] = [
    (re.compile(r"^((?:.*\.)?basic_module\.\d+\.basic_module\.)(\d+)\.(weight|bias)$"),
     lambda m: f"{m.group(1)}{int(m.group(2)) // 2}.conv.{m.group(3)}"),
    (re.compile(r"^backward_trunk\."), "backward_resblocks."),
    (re.compile(r"^forward_trunk\."), "forward_resblocks."),
    (re.compile(r"^upconv1\."), "upsample1.upsample_conv."),
    (re.compile(r"^upconv2\."), "upsample2.upsample_conv."),
    (re.compile(r"^edvr\.conv_l([23])_([12])\."), lambda m: f"edvr.feat_l{m.group(1)}_conv{m.group(2)}.conv."),
    (re.compile(r"^edvr\.pcd_align\."), "edvr.pcd_alignment."),
    (re.compile(r"^(edvr\.pcd_alignment\.(?:offset_conv[123]|feat_conv)\.l[123])\.(weight|bias)$"),
     lambda m: f"{m.group(1)}.conv.{m.group(2)}"),
    (re.compile(r"^(edvr\.pcd_alignment\.cas_offset_conv[12])\.(weight|bias)$"),
     lambda m: f"{m.group(1)}.conv.{m.group(2)}"),
    (re.compile(r"^(edvr\.fusion\.(?:feat_fusion|spatial_attn[1-4]|spatial_attn_l[1-3]|spatial_attn_add1))"
                r"\.(weight|bias)$"), lambda m: f"{m.group(1)}.conv.{m.group(2)}"),
]

_IGNORED = re.compile(r"^(step_counter|discriminator\..*)$")
_OPTIONAL = re.compile(r"(^|\.)(mean|std)$")  # SPyNet's fixed normalisation buffers
MAX_LISTED = 5


@dataclass
class CheckpointInfo:
    path: str
    format: str  # mmagic | basicsr | state_dict
    source: str  # where the weights came from inside the file
    naming: str  # mmagic | basicsr
    arch: str = ""
    config: dict = field(default_factory=dict)
    num_params: int = 0
    ignored_keys: list[str] = field(default_factory=list)


def _read(path) -> object:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint path is a directory, expected a .pth file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _names_python_objects(str(e)):
            raise CheckpointError(
                f"{path} holds Python objects that torch.load(weights_only=True) refuses to unpickle "
                "(it may run arbitrary code). Re-save only the tensors: "
                "torch.save({'state_dict': model.state_dict()}, path)") from None
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint ({e})") from None
    except Exception as e:  # torch.load fails in many ways on damaged files (RuntimeError, EOFError, KeyError...)
        raise CheckpointError(f"cannot read checkpoint {path}: the file is truncated or not a PyTorch "
                              f"checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def _names_python_objects(message: str) -> bool:
    """Whether torch's weights-only refusal is about Python classes / functions in the pickle (as opposed to
    bytes that are no pickle at all, which it reports as an unsupported operand)."""
    return any(s in message for s in ("Unsupported global", "Unsupported class", "GLOBAL", "REDUCE"))


def _tensor_dict(d) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def _unwrap(obj, path: str) -> tuple[dict, CheckpointInfo]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict or checkpoint dict")
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        sd = obj["state_dict"]
        fmt = "mmagic"
        for prefix in ("generator_ema.", "generator."):
            if any(k.startswith(prefix) for k in sd):
                picked = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
                ignored = [k for k in sd if not k.startswith(prefix)]
                return picked, CheckpointInfo(path, fmt, f"state_dict/{prefix[:-1]}", "mmagic",
                                              ignored_keys=ignored)
        return dict(sd), CheckpointInfo(path, fmt, "state_dict", "mmagic")
    for key in ("params_ema", "params"):
        if key in obj and isinstance(obj[key], dict):
            return dict(obj[key]), CheckpointInfo(path, "basicsr", key, "basicsr")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if tensors:
        return tensors, CheckpointInfo(path, "state_dict", "(top level)", "mmagic")
    raise CheckpointError(f"{path} has no weights: expected 'state_dict' (mmagic), 'params'/'params_ema' (BasicSR) "
                          f"or a bare state dict; top-level keys: {', '.join(map(str, list(obj)[:10]))}")


def _normalise(sd: dict, info: CheckpointInfo) -> dict:
    out = {}
    renamed = False
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            continue
        if key.startswith("module."):
            key = key[len("module."):]
        if _IGNORED.match(key):
            info.ignored_keys.append(key)
            continue
        new = key
        for pattern, repl in _BASICSR_RULES:
            new = pattern.sub(repl, new)
        renamed |= new != key
        out[new] = value
    if renamed:
        info.naming = "basicsr"
    return out


def detect_arch(keys) -> str:
    """The registered architecture whose ``detect(keys)`` accepts these (mmagic-named) keys."""
    for name, cls in model_classes().items():
        if cls.detect(keys):
            return name
    sample = ", ".join(sorted(keys)[:6])
    raise CheckpointError(f"cannot tell which network these weights belong to (keys: {sample}, ...); "
                          f"pass arch= one of {', '.join(sorted(model_classes()))}")


def read_checkpoint(path, arch: str | None = None) -> tuple[dict, CheckpointInfo]:
    """Read weights as an mmagic-named state dict; fill ``info.format/naming/arch``."""
    sd, info = _unwrap(_read(path), os.fspath(path))
    sd = _normalise(sd, info)
    if not sd:
        raise CheckpointError(f"{path} contains no tensors")
    info.arch = arch or detect_arch(sd.keys())
    get_model_class(info.arch)
    return sd, info


def _mismatch_report(model, sd: dict) -> str | None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not _OPTIONAL.search(k)]
    unexpected = [k for k in sd if k not in expected]
    misshaped = [f"{k} (checkpoint {tuple(sd[k].shape)}, network {tuple(expected[k].shape)})"
                 for k in sd if k in expected and sd[k].shape != expected[k].shape]
    if not (missing or unexpected or misshaped):
        return None
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:MAX_LISTED])}{more}")
    return "; ".join(parts)


def load_checkpoint(path, arch: str | None = None, **overrides):
    """Load ``path`` into a vsrdeploy network (eval mode, CPU, float32).

    ``arch``: one of ``list_models()``; detected from the keys when omitted. ``overrides``: config
    values that cannot be read from weights (IconVSR ``keyframe_stride``, default 5; RealBasicVSR
    ``dynamic_refine_thres``, default 5) or that you want to force.
    """
    model, _ = load_checkpoint_with_info(path, arch, **overrides)
    return model


def load_checkpoint_with_info(path, arch: str | None = None, **overrides):
    sd, info = read_checkpoint(path, arch)
    cls = get_model_class(info.arch)
    validate_config(info.arch, overrides)
    try:
        inferred = cls.infer_config(sd)
    except (KeyError, IndexError, ValueError):
        inferred = {}  # wrong architecture: the key report below says what does not fit
    config = validate_config(info.arch, {**inferred, **overrides})
    unused = getattr(cls, "unused_checkpoint_keys", None)
    if unused is not None:  # weights upstream builds but never uses: tolerated, reported, not loaded
        dead = [k for k in sd if unused.search(k)]
        info.ignored_keys.extend(dead)
        sd = {k: v for k, v in sd.items() if k not in set(dead)}
    model = cls(**config)
    report = _mismatch_report(model, sd)
    if report:
        raise CheckpointError(f"{path} does not fit {info.arch} {inferred or config}: {report}")
    model.load_state_dict(sd, strict=False)
    model.eval()
    info.config = model.config()
    info.num_params = sum(p.numel() for p in model.parameters())
    return model, info
