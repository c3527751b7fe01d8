"""Batches for `Model.fit`/`predict` on any Keras backend: rows of an array gathered by index.

`ArrayBatches` is a `keras.utils.PyDataset`, which every backend's trainer reads: images stay
uint8 on the way to the device (the model casts them to float32 there), and a memory-mapped
array is read only where a batch's indices point. Shuffling is a seeded permutation per epoch,
so two datasets with the same length and seed yield the same batches (the feature cache relies on
this to train a trial's tail on exactly the batches the full model would see).
"""
from __future__ import annotations

import math

import keras
import numpy as np


class ArrayBatches(keras.utils.PyDataset):
    """(x, label) batches from `array` [N, ...] and `labels` [N] (or [N, classes], multi-hot).

    Args:
        array: numpy array or memmap; rows are examples (uint8 images, or cached features).
        labels: sequence of int, one per row; or float rows [N, classes] (multi-hot, multi-label data).
        batch_size: int, rows per batch (the last batch may be smaller).
        shuffle: bool, a new seeded permutation every epoch. Defaults to False (file order).
        seed: int, seed of the permutations. Defaults to 0.
        dtype: numpy dtype or None, convert batches to it (e.g. float32 for float16 features).
            Defaults to None (the array's own dtype).
        **kwargs: `keras.utils.PyDataset` arguments (workers, use_multiprocessing, max_queue_size).
    """

    def __init__(self, array, labels, batch_size: int, *, shuffle: bool = False, seed: int = 0, dtype=None,
                 **kwargs):
        super().__init__(**kwargs)
        if len(array) != len(labels):
            raise ValueError(f"array has {len(array)} rows but labels has {len(labels)}")
        labels = np.asarray(labels)
        self.array, self.labels = array, labels.astype(np.int32 if labels.ndim == 1 else np.float32, copy=False)
        self.batch_size, self.shuffle, self.seed, self.dtype = int(batch_size), shuffle, seed, dtype
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(self.labels)) if shuffle else np.arange(len(self.labels))
        self._kwargs = kwargs

    def __len__(self) -> int:
        return max(1, math.ceil(len(self.labels) / self.batch_size))

    def __getitem__(self, index: int):
        indices = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        rows = np.sort(indices) if isinstance(self.array, np.memmap) else indices  # sequential disk reads
        x = np.asarray(self.array[rows])
        if rows is not indices:  # put the rows back in the shuffled order
            x = x[np.searchsorted(rows, indices)]
        if self.dtype is not None:
            x = x.astype(self.dtype, copy=False)
        return x, self.labels[indices]

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._rng.permutation(len(self.labels))

    @property
    def num_examples(self) -> int:
        return len(self.labels)

    def rebatched(self, batch_size: int) -> "ArrayBatches":
        """The same rows in batches of `batch_size` (a fresh permutation sequence with the same seed)."""
        return ArrayBatches(self.array, self.labels, batch_size, shuffle=self.shuffle, seed=self.seed,
                            dtype=self.dtype, **self._kwargs)

    def images(self):
        """Only the inputs, in order, batch by batch (for `predict` callers that iterate themselves)."""
        for index in range(len(self)):
            yield self[index][0]
