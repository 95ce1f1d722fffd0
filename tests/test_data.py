import pytest
import torch

from nadkit import data as D
from nadkit.errors import NadkitError


def test_fashion_mnist_is_padded_and_normalised(train_data, test_data):
    assert train_data.images.shape == (60000, 1, 32, 32) and test_data.images.shape == (10000, 1, 32, 32)
    assert train_data.images[:, :, :2].max() == 0 and train_data.images[:, :, :, -2:].max() == 0  # zero padding
    x = train_data.load(torch.arange(2000))
    assert x.dtype == torch.float32 and abs(x[:, :, 2:30, 2:30].mean().item()) < 0.1
    assert torch.bincount(test_data.labels).tolist() == [1000] * 10


def test_class_index_partitions_the_labels(test_data):
    index = D.class_index(test_data.labels, 10)
    assert sum(len(i) for i in index) == 10000
    assert all((test_data.labels[i] == c).all() for c, i in enumerate(index))


def test_class_batches_are_balanced_and_per_class_streams(train_data):
    x, y = D.ClassBatches(train_data, [3, 7], 5, seed=1).next()
    assert x.shape == (10, 1, 32, 32) and y.tolist() == [3] * 5 + [7] * 5
    alone = D.ClassBatches(train_data, [7], 5, seed=1).next()[0]
    assert torch.equal(alone, x[5:])  # class 7's draw does not depend on class 3 beside it
    other_seed = D.ClassBatches(train_data, [7], 5, seed=2).next()[0]
    assert not torch.equal(alone, other_seed)


def test_mosaics_put_four_distinct_classes_in_quadrants(test_data):
    images, classes = D.mosaics(test_data, 20, seed=3)
    assert images.shape == (20, 1, 64, 64)
    assert all(len(set(row.tolist())) == 4 for row in classes)
    again, _ = D.mosaics(test_data, 20, seed=3)
    assert torch.equal(images, again)
    limited = D.mosaics(test_data, 10, seed=0, classes=[1, 2, 3, 4])[1]
    assert set(limited.flatten().tolist()) <= {1, 2, 3, 4}
    with pytest.raises(NadkitError, match="at least 4 classes"):
        D.mosaics(test_data, 1, classes=[1, 2, 3])


def test_missing_data_set_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(D, "fashion_mnist_dirs", lambda: [tmp_path])
    with pytest.raises(NadkitError, match="dataset-fashion-mnist"):
        D.fashion_mnist("test")


def test_unknown_dataset():
    with pytest.raises(NadkitError, match="unknown dataset"):
        D.load_split("cifar", "train")


def test_first_per_class_keeps_every_class_in_order(test_data):
    few = D.first_per_class(test_data, 7)
    assert torch.equal(torch.bincount(few.labels), torch.full((10,), 7))
    index = D.class_index(test_data.labels, 10)
    want = torch.cat([i[:7] for i in index]).sort().values
    assert torch.equal(few.load(torch.arange(len(few.labels))), test_data.load(want))
    part = D.SubsetImages(test_data, torch.arange(200))  # any ImageData, not only tensors
    view = D.first_per_class(part, 3)
    assert torch.equal(torch.bincount(view.labels, minlength=10), torch.full((10,), 3))
    first = torch.cat([i[:3] for i in D.class_index(part.labels, 10)]).sort().values
    assert torch.equal(view.load(torch.arange(30)), test_data.load(first))
    assert D.first_per_class(test_data, None) is test_data
    with pytest.raises(NadkitError, match="per class must be >= 1"):
        D.first_per_class(test_data, 0)


def test_the_authors_augmentation_is_seeded_per_image(test_data):
    import torch

    from nadkit.data import AuthorsAugmented, load_batch

    aug = AuthorsAugmented(test_data)
    idx, seeds = torch.arange(8), torch.arange(8) + 100
    first = load_batch(aug, idx, seeds, train=True)
    assert torch.equal(first, load_batch(aug, idx, seeds, train=True))        # same seeds, same images
    assert not torch.equal(first, load_batch(aug, idx, seeds + 1, train=True))
    assert not torch.equal(first, test_data.load(idx, True))                   # it does augment
    assert torch.equal(load_batch(aug, idx, seeds, train=False), test_data.load(idx))  # evaluation: never
    assert "augment" in aug.preprocessing()
