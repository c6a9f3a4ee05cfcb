"""A stream with and without transparent huge pages for malloc's mapped chunks: glibc's
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` makes malloc advise huge pages (``madvise(MADV_HUGEPAGE)``) on the maps it
takes from the OS, which the kernel honours where ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise``
(``always`` gives them to every process anyway; ``never``: none). With the streams' default heap (``models.heap``:
every freed map of 1 MB or more goes back to the OS) each allocation faults its pages in again; a huge page is one
fault for 2 MB instead of 512.

glibc reads the tunable when a process starts, so each run is a child process started with or without it (rounds
interleaved: ``stream_ab.py``'s runner); each child warms up, then times one stream and reports its seconds per
frame, minor page faults per frame (``getrusage``) and peak RSS.

    python benchmarks/huge_pages_ab.py BUNDLE --frames 4 --rounds 3
    python benchmarks/huge_pages_ab.py INT8_BUNDLE --precision bf16 --heap keep    # int8-bf16 on openvino-cpu
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_ab import add_stream_options, describe, print_table, run_rounds  # noqa: E402

TUNABLE = "glibc.malloc.hugetlb=1"


def thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown (no /sys/kernel/mm/transparent_hugepage)"
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text.strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--rounds", type=int, default=3)
    add_stream_options(ap)
    args = ap.parse_args(argv)
    from vsrdeploy.bundle import Bundle
    bundle = Bundle(args.bundle)
    env_without = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    results = run_rounds({"without": (args.bundle, env_without),
                          f"with {TUNABLE}": (args.bundle, {**env_without, "GLIBC_TUNABLES": TUNABLE})}, args)
    print(f"{bundle.path.name}: {describe(args, bundle.precision)}; transparent huge pages: {thp_mode()}\n")
    print_table(results, "malloc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
