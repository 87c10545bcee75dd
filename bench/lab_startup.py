"""Benchmark: how long the lab takes to come up and go away.

    python bench/lab_startup.py [--sizes 3 10] [--mirror]

Prints the image build time (only when the image had to be built), then for each size the wall
seconds from nothing to "every host answers SSH with host-key checking" and the teardown time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.lab import image
from tests.lab.lab import HostSpec, Lab
from tests.lab.mirror import build_mirror


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--mirror", action="store_true", help="also start the mirror container")
    args = parser.parse_args()

    started = time.monotonic()
    tag = image.ensure_image("amd64")
    if "amd64" in image.build_seconds:
        print(f"image build: {image.build_seconds['amd64']:.1f}s ({tag})")
    else:
        print(f"image: reused {tag} ({time.monotonic() - started:.2f}s to check)")

    with tempfile.TemporaryDirectory(prefix="provision-lab-bench-") as tmp:
        mirror = build_mirror(Path(tmp) / "mirror") if args.mirror else None
        for size in args.sizes:
            lab_id = f"bench{size}"
            specs = [HostSpec(f"host{i}") for i in range(1, size + 1)]
            began = time.monotonic()
            lab = Lab.create(lab_id, specs, Path(tmp) / lab_id, mirror_dir=mirror)
            up = time.monotonic() - began
            began = time.monotonic()
            lab.destroy()
            down = time.monotonic() - began
            print(f"{size:3d} hosts: start-up {up:5.1f}s  teardown {down:5.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
