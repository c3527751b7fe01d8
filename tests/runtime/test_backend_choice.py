"""The Keras backend a training command chooses before Keras is imported (`backend_choice`)."""
from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from resnet_automl.errors import ConfigError
from resnet_automl.runtime.backend import choose_backend, resolve_backend

CPU = {"jax_installed": True, "nvidia_gpu": False, "jax_cuda_installed": False}


@pytest.mark.parametrize("requested,environ,facts,expected", [
    ("tensorflow", {"KERAS_BACKEND": "jax"}, {}, ("tensorflow", "--backend tensorflow")),  # the flag wins
    ("jax", {}, {"jax_installed": True}, ("jax", "--backend jax")),
    ("auto", {"KERAS_BACKEND": "torch"}, {"jax_installed": True}, ("torch", "KERAS_BACKEND is set")),
    ("auto", {}, {"jax_installed": False}, ("tensorflow", "JAX is not installed")),
    ("auto", {}, CPU, ("jax", None)),
    ("auto", {}, {**CPU, "jax_faster_on_cpu": False},
     ("tensorflow", "on a CPU, TensorFlow trains ResNet-18/34 faster than JAX")),
    ("auto", {}, {"jax_installed": True, "nvidia_gpu": True, "jax_cuda_installed": True, "jax_faster_on_cpu": False},
     ("jax", "JAX can use this GPU")),
    ("auto", {}, {"jax_installed": True, "nvidia_gpu": True, "jax_cuda_installed": False},
     ("tensorflow", "an NVIDIA GPU is present and JAX has no CUDA plugin")),
])
def test_the_backend_follows_the_flag_then_the_environment_then_the_machine(requested, environ, facts, expected):
    backend, reason = resolve_backend(requested, environ=environ, **facts)
    assert backend == expected[0]
    if expected[1] is not None:
        assert reason == expected[1]


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ConfigError, match="--backend must be one of auto, tensorflow, jax. Received: 'mxnet'"):
        resolve_backend("mxnet", environ={})


def test_a_choice_that_cannot_take_effect_is_an_error(monkeypatch):
    fake_keras = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "tensorflow"))
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    with pytest.raises(ConfigError, match="already imported with the tensorflow backend"):
        choose_backend("jax")
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    assert choose_backend("auto") == ("tensorflow", "KERAS_BACKEND is set")


CLI_THEN_KERAS = r"""
import os, sys
from resnet_automl.cli.main import main
code = main(sys.argv[1:])
import keras
print(code, os.environ["KERAS_BACKEND"], keras.backend.backend())
"""


@pytest.mark.slow  # a fit of 15-40 s: the default suite stays under 10 minutes on 2 cores
@pytest.mark.parametrize("flag,expected", [(["--weights", "none"], "jax"), ([], "tensorflow"),
                                           (["--weights", "none", "--backend", "tensorflow"], "tensorflow")])
def test_fit_command_sets_the_backend_before_keras_is_imported(tmp_path, flag, expected):
    """From random initialisation the small nets train faster on JAX; pretrained (the default) stays on
    TensorFlow on a CPU; the flag wins."""
    pytest.importorskip("jax")
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, "-c", CLI_THEN_KERAS, "fit", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "run"), *flag], capture_output=True, text=True,
                          timeout=300, env={**env, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.stdout.split()[-3:] == ["2", expected, expected], proc.stderr[-2000:]
    assert "does not exist" in proc.stderr
