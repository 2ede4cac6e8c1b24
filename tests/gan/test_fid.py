"""The offline FID: a seeded, cached feature classifier; the Fréchet distance; class accuracy of generations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import slimkit
from slimkit.gan import fid


@pytest.fixture(scope="module")
def data():
    return slimkit.load_dataset("synthetic", num_samples=200, num_test=100, in_channels=1, num_classes=4,
                                normalize=False, val_fraction=0.0)


@pytest.fixture(scope="module")
def classifier(data, tmp_path_factory):
    return fid.feature_classifier(data, path=tmp_path_factory.mktemp("cache") / "clf.pt", epochs=2, width=0.25)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(size=(4000, 3)) * 2.0 + 1.0
    # N(0, I) vs N(1, 4I): |mu|^2 = 3, trace term 3 * (1 + 4 - 2 * 2) = 3
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid.frechet_distance(a, b) == pytest.approx(6.0, rel=0.1)


def test_fid_is_small_for_real_images_and_grows_with_noise(classifier, data):
    real, _ = fid.real_images(data.train, 100, seed=0)
    other, _ = fid.real_images(data.test, 100, seed=1)
    noisy = (other + 0.5 * torch.randn_like(other)).clamp(-1, 1)
    near, far = fid.fid(classifier, real, other), fid.fid(classifier, real, noisy)
    assert fid.fid(classifier, real, real) == pytest.approx(0.0, abs=1e-4)
    assert near < far


def test_classifier_is_cached_seeded_and_loads_identical(classifier, data, tmp_path):
    path = tmp_path / "clf.pt"
    first = fid.feature_classifier(data, path=path, epochs=2, width=0.25)
    again = fid.feature_classifier(None, path=path, epochs=2, width=0.25)  # from the file, no data needed
    retrained = fid.train_classifier(data, epochs=2, width=0.25)
    x, _ = fid.real_images(data.test, 16)
    with torch.no_grad():
        assert torch.equal(first.features(x), again.features(x))
        assert torch.equal(classifier.features(x), retrained.features(x))  # seeded: same classifier


def test_class_accuracy_of_real_images_is_high(classifier, data):
    images, labels = fid.real_images(data.test, 100)
    assert fid.class_accuracy(classifier, images, labels) > 0.8  # chance is 0.25


def test_generate_cycles_labels_and_is_seeded():
    torch.manual_seed(0)
    g = slimkit.create_model("dcgan_g", width=0.125, noise_dim=8, num_classes=4)
    images, labels = fid.generate(g, 10, seed=3)
    assert images.shape == (10, 1, 28, 28) and labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert torch.equal(fid.generate(g, 10, seed=3)[0], images)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path))
    assert fid.cache_dir() == tmp_path / "gan"
