"""One 3x3 convolution as BasicVSR's trunk has it (64 -> 64 channels), NCHW vs channels_last, side by side
in one process, interleaved rounds, best of each: how much PyTorch's default layout costs its convolutions.

    python benchmarks/conv_layout.py --size 180x320 --threads 2 --rounds 3
"""
import argparse
import time

import torch


def best_rate(fn, flop: float, repeat: int = 4) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return flop / best / 1e9


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="180x320", help="HxW of the feature map")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    c = args.channels
    torch.set_num_threads(args.threads)
    x = torch.rand(1, c, h, w)
    weight = torch.rand(c, c, 3, 3)
    x_cl, w_cl = x.to(memory_format=torch.channels_last), weight.to(memory_format=torch.channels_last)
    flop = 2 * c * c * 9 * h * w
    conv = torch.nn.functional.conv2d
    with torch.no_grad():
        for r in range(args.rounds):
            nchw = best_rate(lambda: conv(x, weight, padding=1), flop)
            cl = best_rate(lambda: conv(x_cl, w_cl, padding=1), flop)
            print(f"round {r}: 3x3 conv {c}->{c} at {h}x{w}, {args.threads} threads: NCHW {nchw:.1f} GFLOP/s, "
                  f"channels_last {cl:.1f} GFLOP/s ({cl / nchw:.2f}x)")


if __name__ == "__main__":
    main()
