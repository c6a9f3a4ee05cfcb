"""Multiply-accumulates per frame of a network at a given LR size (convolutions only), by forward hooks.

    python benchmarks/count_macs.py --arch basicvsr --size 64
"""
import argparse
import time

import torch

import vsrdeploy


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="basicvsr")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=10)
    args = p.parse_args()
    net = vsrdeploy.build_model(args.arch).eval()
    total = [0]

    def hook(module, inputs, output):
        k = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
        total[0] += output.numel() * k

    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    lrs = torch.rand(1, args.frames, 3, args.size, args.size)
    torch.set_num_threads(2)
    with torch.no_grad():
        t0 = time.perf_counter()
        net(lrs)
        seconds = time.perf_counter() - t0
    per_frame = total[0] / args.frames
    print(f"{args.arch} default config, {args.size}x{args.size}: {per_frame / 1e9:.1f} GMAC per frame (conv layers); "
          f"whole-clip forward {args.frames / seconds:.2f} frames/s = {2 * per_frame * args.frames / seconds / 1e9:.0f} "
          "GFLOP/s sustained")


if __name__ == "__main__":
    main()
