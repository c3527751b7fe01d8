"""Input path: images decoded once into uint8 arrays (cached, memory-mapped), batches for any backend,
resizing that matches the serving graph, augmentation as layers."""
from __future__ import annotations

import numpy as np
import pytest

from resnet_automl.data import prepare_data
from resnet_automl.data.arrays import load_images, resize_bilinear
from resnet_automl.data.batches import ArrayBatches


def test_images_are_decoded_once_into_uint8_and_cached(image_folder, tmp_path):
    splits = prepare_data(image_folder)
    first = load_images(splits.train, 24, tmp_path / "cache")
    assert first.shape == (len(splits.train), 24, 24, 3) and first.dtype == np.uint8
    files = list((tmp_path / "cache").glob("images-24px-*.npy"))
    assert len(files) == 1
    mapped = load_images(splits.train, 24, tmp_path / "cache", memory_limit_bytes=1)  # reused, not decoded
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, first)
    red = [i for i, (_, label) in enumerate(splits.train) if splits.class_names[label] == "red"]
    assert float(np.mean(first[red][..., 0])) > 150


@pytest.mark.parametrize("shape,size", [((28, 28), 64), ((50, 37), 32), ((32, 32), 32), ((7, 90), 24)])
def test_resize_matches_the_serving_graph(shape, size):
    import tensorflow as tf

    pixels = np.random.default_rng(0).integers(0, 256, (*shape, 3)).astype(np.uint8)
    ours = resize_bilinear(pixels, size)
    theirs = tf.image.resize(tf.cast(pixels, tf.float32), [size, size]).numpy()
    assert np.max(np.abs(ours - theirs)) < 1e-3


def test_batches_shuffle_by_seed_and_keep_labels_aligned():
    array = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=3)
    labels = np.arange(10)
    one = ArrayBatches(array, labels, 4, shuffle=True, seed=3)
    two = ArrayBatches(array, labels, 4, shuffle=True, seed=3)
    assert len(one) == 3
    epoch = [one[i] for i in range(len(one))]
    assert all(np.array_equal(x[:, 0, 0, 0], y) for x, y in epoch)  # pixel value == label
    assert sorted(np.concatenate([y for _, y in epoch]).tolist()) == list(range(10))
    assert all(np.array_equal(a[1], two[i][1]) for i, a in enumerate(epoch))  # same seed, same batches
    one.on_epoch_end()
    assert not all(np.array_equal(a[1], one[i][1]) for i, a in enumerate(epoch))  # a new order each epoch
    plain = ArrayBatches(array, labels, 4)
    assert plain[2][1].tolist() == [8, 9] and plain[0][0].dtype == np.uint8
    assert plain.rebatched(5)[1][1].tolist() == [5, 6, 7, 8, 9]


def test_memory_mapped_rows_come_back_in_the_shuffled_order(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1))
    mapped = np.load(path, mmap_mode="r")
    batches = ArrayBatches(mapped, np.arange(20), 6, shuffle=True, seed=1, dtype=np.float32)
    x, y = batches[0]
    assert x.dtype == np.float32 and np.array_equal(x[:, 0, 0, 0], y)


def test_augmentation_keeps_shapes_and_only_acts_in_training():
    import keras

    from resnet_automl.modeling.augmentation import with_augmentation
    from resnet_automl.modeling.classifier import build_classifier

    model = build_classifier("tiny_resnet", 3, image_size=32, trainable_stages=5)
    trainer = with_augmentation(model, seed=0)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    assert np.allclose(trainer(x, training=False), model(x, training=False), atol=1e-6)
    augmenter = trainer.get_layer("augmentation")
    moved = keras.ops.convert_to_numpy(augmenter(x, training=True))
    assert moved.shape == x.shape and not np.allclose(moved, x)
    assert {w.path for w in model.trainable_weights} <= {w.path for w in trainer.trainable_weights}


def test_random_erasing_hits_about_half_the_images_with_at_most_a_third_of_the_area():
    import keras

    from resnet_automl.modeling.augmentation import ERASING_AREA, make_augmenter

    erasing = make_augmenter(seed=0).layers[-1]
    assert isinstance(erasing, keras.layers.RandomErasing)
    x = np.full((200, 32, 32, 3), 128.0, dtype="float32")
    erased = keras.ops.convert_to_numpy(erasing(x, training=True)) != 128.0
    hit = erased.any(axis=(1, 2, 3))
    assert 0.35 < hit.mean() < 0.65
    area = erased[hit].any(axis=3).mean(axis=(1, 2))
    assert area.max() <= ERASING_AREA[1] + 0.05
    assert np.array_equal(keras.ops.convert_to_numpy(erasing(x, training=False)), x)



def test_importing_the_data_layer_loads_no_scikit_learn():
    """`resnet_automl.data` and its modules import at once; scikit-learn loads when a split is made."""
    import subprocess
    import sys

    code = "import sys, resnet_automl.data.images, resnet_automl.data; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "False"
