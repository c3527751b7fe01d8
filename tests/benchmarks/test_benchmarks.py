"""Every script in benchmarks/ runs here in its smoke mode (tiny sizes), so a refactor cannot break one
unseen. The numbers they print at full size are in docs/benchmarks.md; these runs only check they still work."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
#: script -> extra smoke arguments; helpers (imported by the scripts) are not run.
SMOKE = {
    "search_speed.py": [],
    "disk_usage.py": [],
    "demo_holdout.py": [],
    "small_data_quality.py": [],
    "transfer.py": [],
    "multilabel.py": [],
}
HELPERS = {"fmnist.py", "harness.py"}
#: Scripts whose smoke run is fast enough for the default suite and lives beside its unit tests.
SMOKE_ELSEWHERE = {"decode_memory.py": "tests/data/test_decode_memory.py"}
#: Scripts that run in a child process with KERAS_BACKEND=jax (what the GPU machine runs).
JAX_SCRIPTS = {"gpu_check.py"}


def test_every_benchmark_has_a_smoke_run():
    scripts = {p.name for p in BENCHMARKS.glob("*.py")}
    assert scripts == set(SMOKE) | HELPERS | JAX_SCRIPTS | set(SMOKE_ELSEWHERE), \
        "add the new benchmark's --smoke run to this file"
    for script, test_file in SMOKE_ELSEWHERE.items():
        assert "--smoke" in (BENCHMARKS.parent / test_file).read_text(), f"{test_file} runs {script} --smoke"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name[:-3]}", BENCHMARKS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_smoke_run(name, tmp_path, capsys):
    if not (BENCHMARKS / name).exists():
        pytest.fail(f"benchmarks/{name} is missing")
    argv = ["--smoke", *SMOKE[name]]
    if name != "demo_holdout.py":
        argv += ["--workdir", str(tmp_path / "work")]
    assert _load(name).main(argv) == 0
    assert capsys.readouterr().out.strip(), "a benchmark prints its numbers"


@pytest.mark.slow
def test_gpu_check_smoke_run_on_jax_without_tensorflow_in_the_process():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = "\n".join([
        "import runpy, sys",
        "sys.argv = ['gpu_check.py', '--smoke']",
        "try:",
        f"    runpy.run_path({str(BENCHMARKS / 'gpu_check.py')!r}, run_name='__main__')",
        "except SystemExit as done:",
        "    assert done.code in (0, None), done.code",
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'",
    ])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in ("raw Keras model.fit", "trial loop", "final training", "end-to-end tiny_resnet", "  trial 0:",
                 "device busy", "host peak RSS", "stages: ", "ratios:"):
        assert line in proc.stdout, (line, proc.stdout)


def test_search_speed_bound_is_plain_total_over_ours_full_depth_trials():
    """The per-depth sums follow the replayed order, and the bound divides by ours' depth-5 seconds alone."""
    search_speed = _load("search_speed.py")
    rows = [{"effective": {"trainable_stages": depth}, "seconds": seconds}
            for depth, seconds in ((0, 18.0), (2, 100.0), (5, 170.0), (2, 110.0), (5, 180.0))]
    plain = [30.0, 190.0, 190.0, 130.0, 195.0]
    per_depth = search_speed.by_depth(rows, plain)
    assert per_depth == [(0, 1, 30.0, 18.0), (2, 2, 320.0, 210.0), (5, 2, 385.0, 350.0)]
    assert search_speed.speedup_bound(sum(plain), per_depth) == pytest.approx(735.0 / 350.0)
    assert search_speed.speedup_bound(sum(plain[:2]), per_depth[:2]) == float("inf")
    assert search_speed.ratio(float("inf")) == "none" and search_speed.ratio(2.1) == "2.10x"
    with pytest.raises(ValueError):  # plain replays every trial of ours: a missing one is an error
        search_speed.by_depth(rows, plain[:-1])


def test_search_speed_cache_ceiling_by_stage_flops():
    """Per-stage GFLOPs add up to the backbone's count; the ceiling is 1 + frozen / (3 x trained)."""
    from resnet_automl.backbones import build_backbone, count_gflops

    search_speed = _load("search_speed.py")
    gflops = search_speed.stage_gflops("resnet18", 32)
    assert len(gflops) == 5 and all(g > 0 for g in gflops)
    assert sum(gflops) == pytest.approx(count_gflops(build_backbone("resnet18", (32, 32, 3))))
    assert search_speed.cache_ceiling([1.0, 1.0, 1.0, 1.0, 1.0], 2) == pytest.approx(1.5)
    assert search_speed.cache_ceiling(gflops, 5) == 1.0
    assert search_speed.cache_ceiling(gflops, 1) > search_speed.cache_ceiling(gflops, 3) > 1.0
