"""One seed for every random generator a fit uses, without importing TensorFlow on other backends."""
from __future__ import annotations

import keras

from resnet_automl.runtime.device import backend


def seed_everything(seed: int) -> None:
    """`keras.utils.set_random_seed` without importing TensorFlow on other backends.

    Keras' own function seeds TensorFlow whenever it is installed, which loads all of TensorFlow
    into a JAX process (seconds and hundreds of MB, and on a GPU machine its CUDA runtime). Here
    TensorFlow is seeded only when it is the backend or already imported; Python, NumPy, torch
    and Keras' global seed generator are always seeded.
    """
    import random
    import sys

    if backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    try:  # the state set_random_seed writes (stable internals of Keras 3)
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils
    except ImportError:
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    if backend() == "torch":
        import torch

        torch.manual_seed(seed)
