"""Which Keras backend a training command runs on, chosen before Keras is imported.

Keras reads `KERAS_BACKEND` once, when it is first imported. The `resnet-automl fit` and `demo`
commands own their process, so they choose (`--backend`, default "auto"):

1. `--backend tensorflow` or `--backend jax`: that one;
2. else `KERAS_BACKEND` from the environment, whatever it names (torch included): the user's choice;
3. else, when JAX is installed: JAX on a GPU that JAX can use (its CUDA plugin installed); on a CPU,
   JAX for the networks measured faster there, TensorFlow for the rest;
4. else TensorFlow.

Measured on a 2-core AVX2 CPU, seconds per epoch with Keras' `fit`, JAX against TensorFlow in
the same half hour (docs/backends.md):
- from random initialisation, `resnet20_lean` at 28 px (850 images): means of 2.14 and 2.17 s
  against 3.65 and 4.21 s (JAX compiles the whole step with XLA): `fit --weights none` trains on JAX;
- ResNet-50 at 64 px, two stages trainable (256 images): 24.7 s against 38.6 s;
- ResNet-18 at 64 px, two stages trainable: 29.2 s against 16.7 s, TensorFlow 1.7x faster.
So a fit from pretrained weights, whose backbone the budget picks among ResNet-18 to ResNeXt-101,
stays on TensorFlow on a CPU (`--backend jax` for ResNet-50 and up); the demo, which trains either
the small nets from random initialisation (offline) or ResNet-50, trains on JAX.

TensorFlow stays the backend of export and serving: a JAX-trained run is exported by a TensorFlow
child process, and `export`, `predict` and `evaluate` do not choose. A machine with an NVIDIA GPU
where JAX has no CUDA plugin (TensorFlow's CUDA wheels instead) gets TensorFlow.

The Python API (`resnet_automl.fit`) leaves the choice to Keras, since a library should not change
the backend of its caller's own Keras code: set `KERAS_BACKEND=jax` before importing Keras.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from resnet_automl.errors import ConfigError

#: The values of `--backend`.
BACKEND_CHOICES = ("auto", "tensorflow", "jax")

#: Module names of JAX's CUDA plugins (one per CUDA major version).
JAX_CUDA_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin")


def module_installed(module: str) -> bool:
    """Whether `module` (str) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def nvidia_gpu_present() -> bool:
    """Whether the NVIDIA driver exposes a device here (`/dev/nvidiactl`) that `CUDA_VISIBLE_DEVICES`
    does not hide, without importing any framework."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists()


def resolve_backend(requested: str = "auto", *, jax_faster_on_cpu: bool = True, environ=None,
                    jax_installed: bool | None = None, jax_cuda_installed: bool | None = None,
                    nvidia_gpu: bool | None = None) -> tuple:
    """The backend a training command should use, and why.

    Args:
        requested: str, "auto" (default), "tensorflow" or "jax" (`--backend`).
        jax_faster_on_cpu: bool, the networks the command will train were measured faster on JAX
            on a CPU (see the module docstring). Defaults to True.
        environ: mapping, the environment read for `KERAS_BACKEND`. Defaults to `os.environ`.
        jax_installed, jax_cuda_installed, nvidia_gpu: bool or None, facts about this machine
            (None: look them up; tests pass them).

    Returns:
        (backend, reason): str, str.
    """
    if requested not in BACKEND_CHOICES:
        raise ConfigError(f"--backend must be one of {', '.join(BACKEND_CHOICES)}. Received: {requested!r}")
    if requested != "auto":
        return requested, f"--backend {requested}"
    environ = os.environ if environ is None else environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"], "KERAS_BACKEND is set"
    if not (module_installed("jax") if jax_installed is None else jax_installed):
        return "tensorflow", "JAX is not installed"
    gpu = nvidia_gpu_present() if nvidia_gpu is None else nvidia_gpu
    cuda = jax_cuda_installed
    if cuda is None:
        cuda = any(module_installed(name) for name in JAX_CUDA_PLUGINS)
    if gpu and not cuda:
        return "tensorflow", "an NVIDIA GPU is present and JAX has no CUDA plugin"
    if gpu:
        return "jax", "JAX can use this GPU"
    if not jax_faster_on_cpu:
        return "tensorflow", "on a CPU, TensorFlow trains ResNet-18/34 faster than JAX"
    return "jax", "on a CPU, JAX trains these networks faster (XLA-compiled steps)"


def choose_backend(requested: str = "auto", jax_faster_on_cpu: bool = True) -> tuple:
    """Set `KERAS_BACKEND` for this process from `resolve_backend` and return (backend, reason).

    Raises:
        ConfigError: Keras is already imported with another backend (the choice would not take).
    """
    backend, reason = resolve_backend(requested, jax_faster_on_cpu=jax_faster_on_cpu)
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        current = keras.backend.backend()
        if current != backend:
            raise ConfigError(f"Keras is already imported with the {current} backend, so --backend {backend} "
                              "cannot take effect. Choose the backend before importing Keras "
                              "(KERAS_BACKEND) or run the command in a fresh process.")
    os.environ["KERAS_BACKEND"] = backend
    return backend, reason


def load_backend() -> None:
    """Import Keras (and, on its TensorFlow backend, TensorFlow) with the start-up noise filtered."""
    from resnet_automl.runtime.quiet import filtered_native_stderr

    with filtered_native_stderr():
        import keras  # noqa: F401
