"""Where a stream's memory is (issue #12): resident memory and the high-water mark around every cell call.

Streams a bundle on one backend and records, for each cell call, the process's RSS before and after and
how much the call raised the kernel's high-water mark (VmHWM); rises between calls (schedule code, spill
reads) are listed too. At the call of ``--dump-cell`` with the most memory resident before it, it counts
the torch tensors alive (by storage) and glibc's heap (``mallinfo2``: arena in use, large mmapped
allocations). After the stream it releases every OpenVINO cell's buffers and reports what stays, then unloads
the cells one at a time (their compiled models dropped) and reports what each returned, beside the
sum over cells of each cell's largest output (OpenVINO keeps a compiled model's output buffer at its largest
size through ``release_memory``: ``benchmarks/openvino_output_retention.py``). Linux only.

    python benchmarks/cell_call_trace.py ~/.cache/vsrdeploy/membench/basicvsr_pp-c64n2-decomposed-format2-0.3.5.vsr \\
        --frames 30 --dump-cell forward_2_backbone
    python benchmarks/cell_call_trace.py ~/.cache/vsrdeploy/membench/iconvsr-c64n2-decomposed-format2-0.3.5.vsr \\
        --frames 30 --dump-cell edvr_align
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _status(field: str) -> int:
    """A /proc/self/status memory field, MiB."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) >> 10
    return 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap() -> dict:
    """glibc's heap, MiB: arena size and in use, large allocations served by mmap."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    m = libc.mallinfo2()
    return {"arena": m.arena >> 20, "arena_in_use": m.uordblks >> 20, "mmapped": m.hblkhd >> 20}


def tensors_alive() -> dict:
    """Torch tensors alive, by storage: total MiB and a count per (MiB, shape)."""
    seen = {}
    for o in gc.get_objects():
        if isinstance(o, torch.Tensor):
            storage = o.untyped_storage()
            seen[storage.data_ptr()] = (storage.nbytes() >> 20, tuple(o.shape))
    return {"mib": sum(b for b, _ in seen.values()),
            "by_shape": collections.Counter(seen.values()).most_common(12)}


def main() -> None:
    import vsrdeploy
    from memory_real_size import frames

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bundle")
    p.add_argument("--backend", default="openvino-cpu")
    p.add_argument("--size", default="180x320", help="LR HxW")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dump-cell", help="count tensors and heap before this cell's fullest call")
    p.add_argument("--backend-option", action="append", metavar="KEY=VALUE", default=[],
                   help="a backend option, as `run --backend-option` takes it (e.g. unload_outputs_above=null)")
    args = p.parse_args()
    from vsrdeploy.runtimes.base import parse_backend_options
    h, w = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)
    up = vsrdeploy.open_bundle(args.bundle, backend=args.backend, threads=args.threads,
                               **parse_backend_options(args.backend, args.backend_option))
    backend = up._check_open()
    call = backend.run
    calls, gaps, dump = [], [], {}
    largest_output = collections.defaultdict(int)  # cell -> bytes of its largest call's outputs
    last = {}

    def traced(cell, inputs):
        rss0, hwm0 = _status("VmRSS"), _status("VmHWM")
        if last and hwm0 > last["hwm"]:
            gaps.append((last["cell"], cell, hwm0 - last["hwm"], hwm0))
        if cell == args.dump_cell and rss0 > dump.get("rss", -1):
            dump.update(rss=rss0, tensors=tensors_alive(), heap=heap(), kept=list(getattr(backend, "kept", [])))
        out = call(cell, inputs)
        largest_output[cell] = max(largest_output[cell], sum(t.numel() * t.element_size() for t in out.values()))
        rss1, hwm1 = _status("VmRSS"), _status("VmHWM")
        calls.append((cell, rss0, rss1, hwm1 - hwm0, hwm1))
        last.update(cell=cell, hwm=hwm1)
        return out

    backend.run = traced
    print(f"bundle loaded: RSS {_status('VmRSS')} MiB, heap {heap()}")
    n = sum(1 for _ in up.stream(frames(args.frames, h, w)))
    print(f"{n} frames; peak (VmHWM) {_status('VmHWM')} MiB")
    print("calls that raised the high-water mark (cell, RSS before, RSS after, rise, VmHWM), MiB:")
    for c in calls:
        if c[3] > 0:
            print("  ", c)
    print("rises between calls (previous cell, next cell, rise, VmHWM), MiB:")
    for g in gaps:
        print("  ", g)
    most = collections.defaultdict(int)
    for cell, rss0, *_ in calls:
        most[cell] = max(most[cell], rss0)
    print("most RSS before a call, per cell:", dict(most))
    if dump:
        print(f"before {args.dump_cell}'s fullest call: {dump}")
    print(f"after the stream: RSS {_status('VmRSS')} MiB, heap {heap()}")
    for compiled in getattr(backend, "compiled", {}).values():
        compiled.release_memory()
    print(f"every OpenVINO cell's buffers released: RSS {_status('VmRSS')} MiB, heap {heap()}")
    if hasattr(backend, "_unload"):  # what each compiled cell still kept: dropped one at a time
        dropped = {}
        for cell in list(backend.compiled):
            before = _status("VmRSS")
            backend._unload(cell)
            dropped[cell] = before - _status("VmRSS")
        print(f"each OpenVINO cell unloaded after that (compiled model dropped), RSS returned, MiB: {dropped}; "
              f"RSS {_status('VmRSS')} MiB")
    print(f"each cell's largest output, summed over cells: {sum(largest_output.values()) / 2**20:.0f} MiB "
          f"({', '.join(f'{c} {b / 2**20:.1f}' for c, b in largest_output.items())})")


if __name__ == "__main__":
    main()
