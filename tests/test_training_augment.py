import numpy as np

from emovid.training.augment import make_augmenter, make_dataset


def test_augmented_batches_keep_shape_dtype_range_and_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (20, 48, 48), dtype=np.uint8)
    targets = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 20)]
    weights = np.linspace(0.5, 2, 20).astype(np.float32)
    ds = make_dataset(images, targets, weights, batch_size=8, augmenter=make_augmenter(), shuffle=False)
    seen = 0
    for x, y, w in ds:
        x = x.numpy()
        assert x.shape[1:] == (48, 48, 1) and x.dtype == np.float32
        assert x.min() >= 0 and x.max() <= 255
        np.testing.assert_array_equal(y.numpy(), targets[seen:seen + len(x)])  # labels travel with their images
        np.testing.assert_array_equal(w.numpy(), weights[seen:seen + len(x)])
        seen += len(x)
    assert seen == 20


def test_augmentation_changes_pixels_but_evaluation_does_not():
    images = np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (4, 48, 1))
    targets = np.eye(7, dtype=np.float32)[:4]
    plain = next(iter(make_dataset(images, targets, batch_size=4)))[0].numpy()
    np.testing.assert_array_equal(plain[..., 0], images)
    augmented = next(iter(make_dataset(images, targets, batch_size=4, augmenter=make_augmenter())))[0].numpy()
    assert np.abs(augmented - plain).mean() > 1


def test_each_pass_over_the_data_draws_new_noise():
    """Keras starts a new iterator each epoch; the pixel noise must not repeat with it."""
    images = np.full((4, 48, 48), 128, np.uint8)
    targets = np.eye(7, dtype=np.float32)[:4]
    ds = make_dataset(images, targets, batch_size=4, augmenter=lambda x, training: x)  # noise only
    first, second = (next(iter(ds))[0].numpy() for _ in range(2))
    assert np.abs(first - 128).mean() > 1 and np.abs(first - second).mean() > 1
