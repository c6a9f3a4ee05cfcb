"""Train a registered network on video clips with BI degradation (MATLAB bicubic x4) made on the fly.

BasicVSR-paper recipe, scaled down: random crops, flips, transposes and temporal reversal;
Charbonnier loss; Adam (betas 0.9/0.99) with cosine annealing; the flow network (SPyNet) frozen for
the first ``fix_flow_steps`` steps, then trained at ``flow_lr_mult`` times the learning rate.
Checkpoints are mmagic-format (``{'meta', 'state_dict': {'generator.<key>': ...}}``), loadable by
``vsrdeploy.load_checkpoint`` and by mmagic; ``train_state.pth`` beside them makes runs resumable.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from .evaluate.degrade import bicubic_resize
from .errors import ConfigError, InputError
from .evaluate.metrics import psnr
from .models import build_model


@dataclass
class TrainConfig:
    arch: str
    model_config: dict = field(default_factory=dict)
    data: list[str] = field(default_factory=list)
    val_fraction: float = 0.1  # the last frames of every clip are held out for validation
    steps: int = 1000
    crop: int = 64  # LR crop; HR crop = 4x
    frames: int = 15
    batch: int = 2
    lr: float = 2e-4
    min_lr: float = 1e-7
    flow_lr_mult: float = 0.125
    fix_flow_steps: int = 0
    val_every: int = 200
    val_frames: int = 10
    val_crop: int = 96  # LR crop of the validation clips (centre), to keep validation cheap
    seed: int = 0
    threads: int | None = None
    init_from: str | None = None  # checkpoint whose same-named, same-shaped weights start the run



class ClipData:
    """HR frames of each clip (uint8 (T, 3, H, W), in memory), split into a training head and a validation tail."""

    def __init__(self, paths: list[str], val_fraction: float, min_frames: int, notice=None):
        from .io import open_source
        if not paths:
            raise ConfigError("give at least one training clip with --data")
        self.train, self.val = [], []
        for path in paths:
            with open_source(path, notice=notice or (lambda m: None)) as src:
                frames = np.stack([np.round(f * 255).astype(np.uint8) for f in src])
            n_val = max(1, int(round(len(frames) * val_fraction))) if val_fraction > 0 else 0
            head = frames[: len(frames) - n_val]
            if len(head) < min_frames:
                raise InputError(f"{path} has {len(frames)} frames; training needs at least {min_frames} "
                                 f"(+{n_val} held out for validation); lower --frames")
            self.train.append(head)
            if n_val:
                self.val.append(frames[len(frames) - n_val:])

    def sample(self, rng: np.random.Generator, frames: int, crop: int, scale: int = 4):
        """A training pair (lr (T,3,crop,crop), hr (T,3,4crop,4crop)) float32 with random augmentation."""
        clip = self.train[rng.integers(len(self.train))]
        hc = crop * scale
        t0 = rng.integers(len(clip) - frames + 1)
        h, w = clip.shape[2:]
        if h < hc or w < hc:
            raise InputError(f"training frames {w}x{h} are smaller than the HR crop {hc}x{hc}; lower --crop")
        y, x = rng.integers(h - hc + 1), rng.integers(w - hc + 1)
        hr = clip[t0:t0 + frames, :, y:y + hc, x:x + hc].astype(np.float32) / 255.0
        if rng.random() < 0.5:
            hr = hr[..., ::-1]
        if rng.random() < 0.5:
            hr = hr[..., ::-1, :]
        if rng.random() < 0.5:
            hr = hr.transpose(0, 1, 3, 2)
        if rng.random() < 0.5:
            hr = hr[::-1]
        hr = np.ascontiguousarray(hr)
        lr = bicubic_resize(hr, 1.0 / scale).astype(np.float32)
        return lr, hr


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps).mean()


def _validation_clips(data: ClipData, cfg: TrainConfig, scale: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for clip in data.val:
        hr = clip[: cfg.val_frames].astype(np.float32) / 255.0
        hc = min(cfg.val_crop * scale, hr.shape[2] // scale * scale, hr.shape[3] // scale * scale)
        y0 = (hr.shape[2] - hc) // 2 // scale * scale
        x0 = (hr.shape[3] - hc) // 2 // scale * scale
        hr = np.ascontiguousarray(hr[:, :, y0:y0 + hc, x0:x0 + hc])
        out.append((bicubic_resize(hr, 1.0 / scale).astype(np.float32), hr))
    return out


def evaluate(model, clips) -> dict:
    """Mean Y-PSNR of the network and of bicubic x4 upscaling on the validation clips."""
    net_scores, bic_scores = [], []
    model.eval()
    with torch.no_grad():
        for lr, hr in clips:
            out = model(torch.from_numpy(lr)[None])[0].clamp(0, 1).numpy()
            up = np.clip(bicubic_resize(lr, 4.0), 0, 1)
            net_scores += [psnr(o, h, y_channel=True) for o, h in zip(out, hr)]
            bic_scores += [psnr(b, h, y_channel=True) for b, h in zip(up, hr)]
    model.train()
    return {"psnr_y": float(np.mean(net_scores)), "bicubic_psnr_y": float(np.mean(bic_scores))}


def save_mmagic_checkpoint(model, path: Path, meta: dict) -> None:
    """mmagic layout: ``{'meta': ..., 'state_dict': {'generator.<key>': tensor}}`` (atomic write)."""
    state = {f"generator.{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save({"meta": meta, "state_dict": state}, tmp)
    tmp.replace(path)


def _param_groups(model, cfg: TrainConfig):
    flow = [p for n, p in model.named_parameters() if ".spynet." in f".{n}"]
    flow_ids = {id(p) for p in flow}
    rest = [p for p in model.parameters() if id(p) not in flow_ids]
    groups = [{"params": rest, "lr": cfg.lr, "name": "main"}]
    if flow:
        groups.append({"params": flow, "lr": cfg.lr * cfg.flow_lr_mult, "name": "flow"})
    return groups, flow


def init_weights(model, path: str) -> list[str]:
    """Copy every weight of checkpoint ``path`` whose name and shape match one of ``model``'s.

    Lets one network start from another's parts (e.g. BasicVSR++ from a trained BasicVSR's SPyNet).
    Returns the names copied; raises ConfigError when nothing matches.
    """
    from .checkpoint import read_checkpoint

    sd, _ = read_checkpoint(path)
    own = model.state_dict()
    copied = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if not copied:
        raise ConfigError(f"--init {path}: no weight there has the name and shape of one of this network's")
    model.load_state_dict({k: v.float() for k, v in copied.items()}, strict=False)
    return sorted(copied)


def train(cfg: TrainConfig, out_dir, resume: bool = False, echo: Callable[[str], None] = print,
          progress: bool = True) -> dict:
    """Run (or resume) training; returns the final record (step, loss, validation scores)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "train_state.pth"
    if resume and not state_path.exists():
        raise ConfigError(f"nothing to resume in {out}: no train_state.pth (drop --resume to start a new run)")
    if not resume and state_path.exists():
        raise ConfigError(f"{out} already holds a training run; pass --resume to continue it or pick a new --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, **cfg.model_config)
    model.train()
    groups, flow_params = _param_groups(model, cfg)
    optim = torch.optim.Adam(groups, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=max(cfg.steps, 1), eta_min=cfg.min_lr)
    rng = np.random.default_rng(cfg.seed)
    step, history, best = 0, [], -math.inf
    if cfg.init_from and not resume:
        names = init_weights(model, cfg.init_from)
        parts = sorted({n.split(".")[0] for n in names})
        echo(f"initialised {len(names)} tensors ({', '.join(parts)}) from {cfg.init_from}")
    if resume:
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        saved = TrainConfig(**json.loads(st["config"]))
        if saved.arch != cfg.arch or saved.model_config != cfg.model_config:
            raise ConfigError(f"{out} was trained as {saved.arch} {saved.model_config}; resume with the same "
                              "--arch and --config")
        model.load_state_dict(st["model"])
        optim.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        rng.bit_generator.state = json.loads(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        step, history, best = int(st["step"]), json.loads(st["history"]), float(st["best"])
        sched.T_max = max(cfg.steps, 1)  # the cosine schedule ends at this run's --steps
        echo(f"resuming {out} at step {step}")
    data = ClipData(cfg.data, cfg.val_fraction, cfg.frames)
    val_clips = _validation_clips(data, cfg) if data.val else []
    meta = {"vsrdeploy_arch": cfg.arch, "config": model.config(), "trained_by": "vsrdeploy train",
            "data": [Path(p).name for p in cfg.data]}
    bar = tqdm(total=cfg.steps, initial=step, unit="step", disable=not progress, dynamic_ncols=True)
    t_start = time.perf_counter()
    loss_value = math.nan
    while step < cfg.steps:
        frozen = step < cfg.fix_flow_steps
        for p in flow_params:
            p.requires_grad_(not frozen)
        pairs = [data.sample(rng, cfg.frames, cfg.crop) for _ in range(cfg.batch)]
        lr = torch.from_numpy(np.stack([p[0] for p in pairs]))
        hr = torch.from_numpy(np.stack([p[1] for p in pairs]))
        with torch.enable_grad():  # whatever the caller's grad mode
            loss = charbonnier(model(lr), hr)
            optim.zero_grad(set_to_none=True)
            loss.backward()
        optim.step()
        sched.step()
        step += 1
        loss_value = loss.detach().item()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}", flow="frozen" if frozen else "on")
        if val_clips and (step % cfg.val_every == 0 or step == cfg.steps):
            scores = evaluate(model, val_clips)
            history.append({"step": step, "loss": loss_value, **scores})
            echo(f"step {step}: val PSNR-Y {scores['psnr_y']:.2f} dB (bicubic {scores['bicubic_psnr_y']:.2f} dB)")
            save_mmagic_checkpoint(model, out / "latest.pth", {**meta, "step": step, **scores})
            if scores["psnr_y"] > best:
                best = scores["psnr_y"]
                save_mmagic_checkpoint(model, out / "best.pth", {**meta, "step": step, **scores})
        if step % max(cfg.val_every, 1) == 0 or step == cfg.steps:
            _save_state(state_path, model, optim, sched, rng, cfg, step, history, best)
    bar.close()
    if not val_clips:
        save_mmagic_checkpoint(model, out / "latest.pth", {**meta, "step": step})
    _save_state(state_path, model, optim, sched, rng, cfg, step, history, best)
    record = {"step": step, "loss": loss_value, "seconds": time.perf_counter() - t_start,
              "history": history, "best_psnr_y": best}
    (out / "history.json").write_text(json.dumps(record, indent=1))
    return record


def _save_state(path: Path, model, optim, sched, rng, cfg, step, history, best) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optim.state_dict(), "scheduler": sched.state_dict(),
                "rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
                "config": json.dumps(asdict(cfg)), "step": step, "history": json.dumps(history),
                "best": best}, tmp)
    tmp.replace(path)
