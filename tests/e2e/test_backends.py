"""Keras backends: the training core on JAX with TensorFlow absent, export from a JAX-trained run,
and the helpers that replace TensorFlow-specific calls."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_class_folders

pytest.importorskip("jax")

#: Run as `python -c` before the package: makes `import tensorflow` fail, as on the lent GPU machines.
BLOCK_TENSORFLOW = r"""
import importlib.abc, sys
class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _NoTensorFlow())
from resnet_automl.cli.main import main
code = main(sys.argv[1:])
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
sys.exit(code)
"""


def _env(backend: str) -> dict:
    return {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow
def test_jax_fit_without_tensorflow_then_export_where_it_is(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=8)
    run = tmp_path / "run"
    fit = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, "fit", str(data), "--out", str(run),
                          "--backbone", "tiny_resnet", "--weights", "none", "--image-size", "32", "--epochs", "2",
                          "--max-trials", "2"], capture_output=True, text=True, timeout=600, env=_env("jax"))
    assert fit.returncode == 0, fit.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["versions"]["keras_backend"] == "jax" and record["stages_done"] == ["search", "final", "report"]
    assert any("resnet-automl export" in note for note in record["notes"])
    assert (run / "report" / "report.json").exists() and not (run / "model").exists()
    assert list((run / "logs").rglob("events.out.tfevents*"))  # TensorBoard scalars without TensorFlow

    export = subprocess.run([sys.executable, "-m", "resnet_automl", "export", str(run)], capture_output=True,
                            text=True, timeout=600, env=_env("tensorflow"))
    assert export.returncode == 0, export.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["export"]["passed"] is True and record["export"]["images"] > 0
    import tensorflow as tf

    loaded = tf.saved_model.load(record["version_dir"])
    image = sorted((data / "red").glob("*.png"))[0]
    served = loaded.signatures["serving_default"](image_bytes=tf.constant([image.read_bytes()]))
    assert served["probabilities"].shape == (1, 3)


@pytest.mark.slow
def test_jax_fit_exports_through_a_tensorflow_process(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=8)
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "resnet_automl", "fit", str(data), "--out", str(run), "--backbone",
                           "tiny_resnet", "--weights", "none", "--image-size", "32", "--epochs", "1",
                           "--max-trials", "1", "--final-data", "train", "--export-formats", "litert-int8,onnx"],
                          capture_output=True, text=True, timeout=600, env=_env("jax"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["stages_done"] == ["search", "final", "export", "report"]
    assert record["export"]["passed"] is True and record["export"]["max_abs_diff"] <= 1e-4
    assert (Path(record["version_dir"]) / "assets" / "labels.txt").read_text().split() == ["blue", "green", "red"]
    # the LiteRT and ONNX files come from the same TensorFlow child as the SavedModel, then pass their checks
    assert "the SavedModel and litert-int8, onnx are written by a TensorFlow process" in proc.stdout
    assert record["exports"]["onnx"]["passed"] and record["exports"]["onnx"]["max_abs_diff"] <= 1e-4
    assert record["exports"]["litert-int8"]["passed"]


def test_out_of_memory_errors_of_every_backend_are_recognised():
    from resnet_automl.runtime.device import is_out_of_memory

    class ResourceExhaustedError(Exception):
        pass

    class XlaRuntimeError(Exception):
        pass

    assert is_out_of_memory(ResourceExhaustedError("OOM when allocating tensor"))
    assert is_out_of_memory(XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not is_out_of_memory(XlaRuntimeError("INVALID_ARGUMENT: shapes"))
    assert not is_out_of_memory(ValueError("RESOURCE_EXHAUSTED"))


def test_precision_follows_the_device():
    from resnet_automl.runtime.device import default_precision

    assert default_precision([]) == "float32"
    assert default_precision([{"name": "NVIDIA H100", "compute_capability": (9, 0)}]) == "mixed_bfloat16"
    assert default_precision([{"name": "Tesla T4", "compute_capability": (7, 5)}]) == "mixed_float16"


def test_exported_weights_are_stored_once(trained_run):
    import tensorflow as tf

    stored = tf.train.list_variables(str(Path(trained_run.paths["version_dir"]) / "variables" / "variables"))
    values = sum(int(np.prod(shape)) for name, shape in stored if "OBJECT_GRAPH" not in name and shape)
    assert values == trained_run.model.count_params(), (values, trained_run.model.count_params())


ASYNC_DISPATCH_CHECK = r"""
import tempfile, threading
import keras, keras_tuner as kt, numpy as np
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.search.hypermodel import ResNetHyperModel
from resnet_automl.search.space import SearchSpace, TrialSettings
from resnet_automl.training.final import FinalSettings, train_final

class WhereBatchEndsRun(keras.callbacks.Callback):
    async_safe = True
    def __init__(self):
        super().__init__()
        self.on_main_thread = set()
    def on_train_batch_end(self, batch, logs=None):
        self.on_main_thread.add(threading.current_thread() is threading.main_thread())
    def __deepcopy__(self, memo):
        return self

rng = np.random.default_rng(0)
x, y = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), rng.integers(0, 2, 32).astype(np.int32)
final = WhereBatchEndsRun()
with tempfile.TemporaryDirectory() as tmp:
    train_final({"backbone": "tiny_resnet", "trainable_stages": 5, "learning_rate": 1e-3},
                arrays={"train": x, "val": x[:8]}, labels={"train": y, "val": y[:8]},
                settings=FinalSettings(num_classes=2, image_size=32, epochs=2, batch_size=8, bn_momentum=0.9),
                weights=None, out_dir=tmp, extra_callbacks=[final])
hypermodel = ResNetHyperModel(SearchSpace(["tiny_resnet"], [5]),
                              TrialSettings(num_classes=2, image_size=32, epochs=1, steps_per_epoch=4, batch_size=8))
hp = kt.HyperParameters()
trial = WhereBatchEndsRun()
hypermodel.fit(hp, hypermodel.build(hp), ArrayBatches(x, y, 8, shuffle=True),
               validation_data=ArrayBatches(x[:8], y[:8], 8), epochs=1, verbose=0, callbacks=[trial])
print("final", sorted(final.on_main_thread), "trial", sorted(trial.on_main_thread))
"""


@pytest.mark.slow
def test_trials_and_final_training_keep_keras_asynchronous_dispatch_on_jax():
    """A batch-end hook not marked `async_safe` makes Keras wait for every step before it gathers the
    next batch (half the throughput on one H200): our callbacks must leave the dispatch asynchronous,
    which runs batch-end hooks off the main thread."""
    done = subprocess.run([sys.executable, "-c", ASYNC_DISPATCH_CHECK], capture_output=True, text=True,
                          env=_env("jax"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final [False] trial [False]" in done.stdout, done.stdout


JAX_AUGMENTATION_CHECK = """
import jax, keras, numpy as np
from resnet_automl.modeling.augmentation import with_augmentation, CompiledTranslation
from resnet_automl.modeling.classifier import build_classifier, compile_classifier
trainer = with_augmentation(build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=5), seed=0)
compile_classifier(trainer, 1e-3, 10)
print("jit", trainer.jit_compile)
shift = CompiledTranslation(0.2, 0.2, fill_mode="constant", seed=1)
x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
moves = shift.get_random_transformation(x, training=True)
eager = np.asarray(shift.transform_images(x, moves, training=True))
compiled = np.asarray(jax.jit(lambda a, m: shift.transform_images(a, m, training=True))(x, moves))
print("same", bool(np.allclose(eager, compiled, atol=1e-4)), "moved", not np.allclose(eager, x))
"""


@pytest.mark.slow
def test_augmented_training_step_compiles_with_xla_on_jax():
    """One layer without XLA support runs the whole JAX training step op by op (9x slower)."""
    done = subprocess.run([sys.executable, "-c", JAX_AUGMENTATION_CHECK], capture_output=True, text=True,
                          env=_env("jax"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "jit True" in done.stdout and "same True moved True" in done.stdout, done.stdout


COMPILE_CACHE_CHECK = """
import sys
from pathlib import Path
import keras_tuner as kt, numpy as np
from resnet_automl.runtime import compile_cache
from resnet_automl.data.batches import ArrayBatches
from resnet_automl.search.hypermodel import ResNetHyperModel
from resnet_automl.search.space import SearchSpace, TrialSettings
cache = Path(sys.argv[1])
print("enabled", compile_cache.enable_compilation_cache(cache))
import jax
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # every program, however quick to compile
rng = np.random.default_rng(0)
x, y = rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8), rng.integers(0, 3, 40)
hypermodel = ResNetHyperModel(SearchSpace(["tiny_resnet"], [5]),
                              TrialSettings(num_classes=3, image_size=32, epochs=3, steps_per_epoch=3, optimizer="sgd",
                                            augment=True))
entries = []
for rate in (0.05, 0.2):
    hp = kt.HyperParameters()
    hypermodel.declare(hp)
    hp.values["learning_rate"] = rate
    history = hypermodel.fit(hp, hypermodel.build(hp), ArrayBatches(x, y, 16, shuffle=True),
                             validation_data=ArrayBatches(x, y, 16), epochs=3, verbose=0)
    rates = history.history["learning_rate"]
    assert rates == sorted(rates, reverse=True) and rates[0] <= rate and rates[-1] < rate / 2, rates  # cosine
    entries.append(len(list(cache.iterdir())))
print("entries", entries)
"""


@pytest.mark.slow
def test_search_trials_share_one_compiled_step_on_jax(tmp_path):
    """Trials that differ only in learning rate compile one program: the second trial adds nothing to
    JAX's compilation cache (the rate is set per epoch, not compiled in as a schedule)."""
    done = subprocess.run([sys.executable, "-c", COMPILE_CACHE_CHECK, str(tmp_path / "xla")], capture_output=True,
                          text=True, env=_env("jax"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "enabled True" in done.stdout, done.stdout
    first, second = eval(done.stdout.split("entries")[1].strip())
    assert first > 0 and second == first, done.stdout


CACHE_RESTORE_CHECK = """
import os, shutil, sys, warnings
import jax, jax.numpy as jnp
from resnet_automl.runtime import compile_cache
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 7)  # the caller's own setting
folder = sys.argv[1]
compile_cache.enable_compilation_cache(folder)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.jit(lambda a: a * 2 + 1)(jnp.ones(3)).block_until_ready()
print("written", len(os.listdir(folder)) > 0)
shutil.rmtree(folder)  # as the fit does when its report is written
print("undone", compile_cache.disable_compilation_cache(), compile_cache.disable_compilation_cache())
print("settings", jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_entry_size_bytes)
with warnings.catch_warnings():
    warnings.simplefilter("error")  # JAX warns when it cannot write an entry to a deleted folder
    jax.jit(lambda a: a * 3 - 1)(jnp.ones(4)).block_until_ready()
print("compiled after the fit")
"""


@pytest.mark.slow
def test_a_finished_fit_gives_jax_back_its_own_compilation_cache_settings(tmp_path):
    """After a fit, a compile (a `predict` on the returned model) neither writes to the deleted
    DIR/cache/xla nor warns about it, and the caller's JAX cache settings are back."""
    done = subprocess.run([sys.executable, "-c", CACHE_RESTORE_CHECK, str(tmp_path / "xla")], capture_output=True,
                          text=True, env=_env("jax"), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "written True" in done.stdout and "undone True False" in done.stdout, done.stdout
    assert "settings None 7" in done.stdout and "compiled after the fit" in done.stdout, done.stdout
