"""Disk a fit writes and keeps: the demo (300 bundled images) and a search of N trials.

Bytes written are the `wchar` count of /proc/self/io (every write() of this process: checkpoints,
caches, logs, the SavedModel) between the start and the end of the fit; bytes kept are the files
left in the run folder, per top-level entry. Linux only (/proc).

    python benchmarks/disk_usage.py                 # the demo, then a 10-trial search on the same images
    python benchmarks/disk_usage.py --smoke         # tiny model and images, 2 trials (the test suite runs this)
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def bytes_written() -> int:
    """Bytes this process has passed to write() so far (/proc/self/io `wchar`)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar line")


def folder_bytes(path: Path) -> dict:
    """{top-level entry: bytes of its files} for `path`, plus "total"."""
    sizes = {}
    for entry in sorted(path.iterdir()):
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        sizes[entry.name] = sum(p.stat().st_size for p in files)
    sizes["total"] = sum(sizes.values())
    return sizes


def measure(label: str, data: Path, out: Path, **fit_options) -> dict:
    import resnet_automl

    before, start = bytes_written(), time.time()
    result = resnet_automl.fit(data, out=out, overwrite=True, verbose=0, **fit_options)
    written = bytes_written() - before
    kept = folder_bytes(out)
    row = {"label": label, "seconds": round(time.time() - start, 1), "trials": len(result.trials),
           "written_mb": round(written / 2**20, 1), "kept_mb": round(kept["total"] / 2**20, 1),
           "kept_by_entry_mb": {k: round(v / 2**20, 2) for k, v in kept.items() if k != "total" and v > 2**16}}
    print(f"{label}: {row['trials']} trials in {row['seconds']:.0f} s; written {row['written_mb']:.1f} MB, "
          f"kept {row['kept_mb']:.1f} MB ({row['kept_by_entry_mb']})", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="trials of the search run (default 10)")
    parser.add_argument("--skip-demo", action="store_true", help="only the search run")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 32 px, 2 trials: seconds, not minutes")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    from resnet_automl.config.budget import Budget
    from resnet_automl.pipeline.demo import write_demo_dataset

    work = Path(args.workdir or tempfile.mkdtemp(prefix="disk-usage-"))
    data = write_demo_dataset(work / "demo-data")
    if args.smoke:
        small = {"backbone": "tiny_resnet", "weights": None, "image_size": 32, "epochs": 1, "final_epochs": 1}
        measure("smoke", data, work / "smoke", budget=Budget(max_trials=2), **small)
        shutil.rmtree(work, ignore_errors=True) if args.workdir is None else None
        return 0
    if not args.skip_demo:  # exactly what `resnet-automl demo` runs offline
        measure("demo", data, work / "demo", budget=Budget(minutes=6), weights=None, backbone="auto")
    measure(f"search of {args.trials} trials", data, work / "search", weights=None, backbone="auto",
            budget=Budget(max_trials=args.trials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
