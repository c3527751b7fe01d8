"""tf.data pipelines: shapes, dtypes, label order, augmentation keeps shapes."""
from __future__ import annotations

import numpy as np

from resnet_automl.data import prepare_data
from resnet_automl.data.pipeline import make_dataset


def test_pipeline_batches_resized_images(image_folder):
    splits = prepare_data(image_folder)
    ds = make_dataset(splits.train, 24, 4, shuffle=True, augment=True, cache=True)
    images, labels = next(iter(ds))
    assert images.shape == (4, 24, 24, 3) and images.dtype.name == "float32"
    assert 0.0 <= float(np.min(images)) and float(np.max(images)) <= 255.0
    plain = make_dataset(splits.test, 24, 100)
    x, y = next(iter(plain))
    assert list(y.numpy()) == [label for _, label in splits.test]
    red = [i for i, (_, label) in enumerate(splits.test) if splits.class_names[label] == "red"]
    assert float(np.mean(x.numpy()[red][..., 0])) > 150
