"""The compute device as the active Keras backend sees it: accelerators, precision, data parallelism.

Backend-neutral: TensorFlow is imported only when it *is* the Keras backend, JAX only when JAX is,
so the training core runs on a machine that has just one of them (the lent GPU machines have JAX
and no TensorFlow).

Precision: float32 on CPU (bfloat16 and XLA measured slower on this project's 2-core CPU);
mixed bfloat16 on GPUs that have it (compute capability 8.0 and up: Ampere, Hopper), mixed
float16 on older GPUs. On an H200 under JAX, float32, mixed_float16 and mixed_bfloat16 trained
ResNet-50 at the same ~3,650 img/s (XLA already runs float32 matmuls on tensor cores), so the
half-precision policy buys activation memory (larger batches), not speed there.
"""
from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass

import keras

from resnet_automl.config.options import PRECISIONS  # noqa: F401  (re-exported: the policies `configure` accepts)
from resnet_automl.runtime.backend import module_installed

logger = logging.getLogger(__name__)


def backend() -> str:
    """The Keras backend in use: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def accelerators() -> list:
    """Descriptions of the GPUs the Keras backend can use (empty on CPU).

    Each item is a dict: name (str) and compute_capability (tuple of ints, or None when unknown).
    """
    kind = backend()
    if kind == "tensorflow":
        import tensorflow as tf

        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            found.append({"name": details.get("device_name", gpu.name),
                          "compute_capability": details.get("compute_capability")})
        return found
    if kind == "jax":
        import jax

        found = []
        for device in jax.devices():
            if device.platform in ("gpu", "cuda", "rocm"):
                capability = getattr(device, "compute_capability", None)
                parsed = tuple(int(p) for p in str(capability).split(".")) if capability else None
                found.append({"name": device.device_kind, "compute_capability": parsed})
        return found
    if kind == "torch":
        import torch

        return [{"name": torch.cuda.get_device_name(i), "compute_capability": torch.cuda.get_device_capability(i)}
                for i in range(torch.cuda.device_count())]
    return []


def has_accelerator() -> bool:
    """True when the Keras backend sees at least one GPU."""
    return bool(accelerators())


def describe() -> str:
    """A short description of the device, e.g. "CPU x86_64 x2 (tensorflow)" or "1x GPU NVIDIA H200 (jax)".

    Used as the key of cached measurements (probe.json), so a run moved to another machine or
    backend measures again.
    """
    gpus = accelerators()
    if gpus:
        return f"{len(gpus)}x GPU {gpus[0]['name']} ({backend()})"
    return f"CPU {platform.machine()} x{os.cpu_count()} ({backend()})"


def default_precision(gpus: list) -> str:
    """The mixed-precision policy for these GPUs: float32 without one, bfloat16 from Ampere on."""
    if not gpus:
        return "float32"
    capability = gpus[0].get("compute_capability")
    if capability is None or tuple(capability) >= (8, 0):
        return "mixed_bfloat16"
    return "mixed_float16"


def jit_compile() -> bool | str:
    """The `jit_compile` argument of `Model.compile`: XLA where it helps.

    TensorFlow on CPU runs its own graphs faster than XLA here (measured); JAX always compiles
    with XLA (False would run op by op); on GPU Keras' "auto" picks XLA.
    """
    if backend() == "tensorflow" and not has_accelerator():
        return False
    return "auto"


def grouped_conv_mode() -> str:
    """"native" grouped convolutions on GPU, "split" on CPU (TensorFlow's grouped CPU kernel is ~50x slower)."""
    return "native" if has_accelerator() else "split"


@dataclass
class DeviceSetup:
    """What `configure` chose.

    Attributes:
        kind: "cpu", "gpu" or "multi-gpu".
        replicas: int, devices a batch is split across (the default batch size scales with it).
        precision: str, the Keras dtype policy set globally.
        strategy: a `tf.distribute.Strategy` (TensorFlow backend, several GPUs) or None.
        backend: str, the Keras backend.
        description: str, see `describe`.
    """

    kind: str
    replicas: int
    precision: str
    strategy: object = None
    backend: str = "tensorflow"
    description: str = ""


def _enable_tensorflow_memory_growth() -> None:
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:  # processes sharing a GPU must not each grab all of it (Keras Tuner issue #329)
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass


def configure(precision: str = "auto") -> DeviceSetup:
    """Set the dtype policy and data parallelism for the device in use, and say what was chosen.

    Args:
        precision: "auto" (default: `default_precision`), or a Keras policy name: "float32",
            "mixed_bfloat16", "mixed_float16".

    Several GPUs: `tf.distribute.MirroredStrategy` on TensorFlow, `keras.distribution.DataParallel`
    on JAX (set globally); one process per GPU is also possible with `CUDA_VISIBLE_DEVICES`.
    """
    kind = backend()
    if kind == "tensorflow":
        _enable_tensorflow_memory_growth()
    gpus = accelerators()
    policy = default_precision(gpus) if precision == "auto" else precision
    keras.mixed_precision.set_global_policy(policy)
    description = describe()
    if not gpus:
        return DeviceSetup("cpu", 1, policy, None, kind, description)
    if len(gpus) == 1:
        logger.info(f"[device] {description}: precision {policy}")
        return DeviceSetup("gpu", 1, policy, None, kind, description)
    strategy = None
    if kind == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        how = "MirroredStrategy"
    elif kind == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        how = "keras.distribution.DataParallel"
    else:
        logger.info(f"[device] {len(gpus)} GPUs seen by the torch backend: training uses one (set "
                    "CUDA_VISIBLE_DEVICES, or use the jax or tensorflow backend for data parallelism)")
        return DeviceSetup("gpu", 1, policy, None, kind, description)
    logger.info(f"[device] {description}: {how} over {len(gpus)} GPUs, precision {policy}")
    return DeviceSetup("multi-gpu", len(gpus), policy, strategy, kind, description)


def is_out_of_memory(error: BaseException) -> bool:
    """True for a device out-of-memory error of any backend.

    TensorFlow raises `ResourceExhaustedError`, JAX/XLA an `XlaRuntimeError` whose message starts
    with RESOURCE_EXHAUSTED, torch `torch.OutOfMemoryError`.
    """
    name = type(error).__name__
    if name in ("ResourceExhaustedError", "OutOfMemoryError"):
        return True
    return name in ("XlaRuntimeError", "JaxRuntimeError", "RuntimeError") and "RESOURCE_EXHAUSTED" in str(error)


def tensorflow_available() -> bool:
    """True when TensorFlow can be imported here (it writes the SavedModel), without importing it."""
    return module_installed("tensorflow")
