"""Offline GAN quality: Fréchet distance of a small classifier's features, and class accuracy of generated images.

FID (Heusel et al. 2017) compares the Gaussian fits ``(mu, Sigma)`` of real and generated images' features:
``||mu_r - mu_g||^2 + Tr(Sigma_r + Sigma_g - 2 (Sigma_r Sigma_g)^(1/2))``. The Inception network of the original
needs downloaded weights; here the features are the 128-d penultimate layer of a small CNN that slimkit trains
once on Fashion-MNIST (seeded) and caches as a slimkit model file (no pickle) under
``$SLIMKIT_CACHE`` (default ``~/.cache/slimkit``) ``/gan/<dataset>_classifier_w<width>_e<epochs>_s<seed>.pt``.
Figures are comparable between runs with the same classifier, not with published Inception FIDs.

Images are in ``[-1, 1]`` (tanh outputs); the classifier is trained on ``[0, 1]`` pixels mapped there.

Example:
    >>> from slimkit.gan import fid
    >>> classifier = fid.feature_classifier()                        # trains once (about a minute), then cached
    >>> images, labels = fid.generate(generator, 5000, seed=0)        # a conditional (noise, labels) generator
    >>> fid.fid(classifier, real_images, images), fid.class_accuracy(classifier, images, labels)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from slimkit.gan.inputs import to_tanh_range
from slimkit.gan.losses import FeatureFn
from slimkit.models.gan import FeatureClassifier
from slimkit.train.evaluation import training_mode


def cache_dir() -> Path:
    """``$SLIMKIT_CACHE/gan`` or ``~/.cache/slimkit/gan``."""
    return Path(os.environ.get("SLIMKIT_CACHE", Path.home() / ".cache" / "slimkit")) / "gan"


def train_classifier(data: Any, *, epochs: int = 3, seed: int = 0, width: float = 1.0, batch_size: int = 128,
                     lr: float = 2e-3, max_steps_per_epoch: int | None = None) -> FeatureClassifier:
    """Train a :class:`FeatureClassifier` on ``data`` (``DatasetSplits`` of ``[0, 1]`` images), seeded."""
    from slimkit.data.loader import make_loader

    torch.manual_seed(seed)
    x0, _ = data.train.get_batch(torch.arange(1))
    model = FeatureClassifier(x0.shape[1], data.num_classes, width, image_size=x0.shape[-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = make_loader(data.train, batch_size=batch_size, shuffle=True, seed=seed)
    model.train()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for step, (x, y) in enumerate(loader):
            if max_steps_per_epoch is not None and step >= max_steps_per_epoch:
                break
            loss = F.cross_entropy(model(to_tanh_range(x)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval().requires_grad_(False)


def feature_classifier(data: Any = None, *, path: str | os.PathLike | None = None, epochs: int = 3, seed: int = 0,
                       width: float = 1.0, max_steps_per_epoch: int | None = None) -> FeatureClassifier:
    """The cached feature classifier, trained on ``data`` (default: Fashion-MNIST) the first time.

    Args:
        data: ``DatasetSplits`` with ``[0, 1]`` pixels (``load_dataset(..., normalize=False)``); loaded only when
            the cache file is missing.
        path: the cache file (default under :func:`cache_dir`, named by dataset, width, epochs and seed).
        epochs, seed, width, max_steps_per_epoch: training options (part of the default file name).
    """
    import slimkit

    name = getattr(data, "name", "fashion_mnist")
    file = Path(path) if path is not None else cache_dir() / f"{name}_classifier_w{width:g}_e{epochs}_s{seed}.pt"
    if file.is_file():
        model = slimkit.load_model(file, FeatureClassifier(width=width, **_geometry(file)))
        return model.eval().requires_grad_(False)  # type: ignore[return-value]
    if data is None:
        data = slimkit.load_dataset("fashion_mnist", normalize=False)
    model = train_classifier(data, epochs=epochs, seed=seed, width=width, max_steps_per_epoch=max_steps_per_epoch)
    file.parent.mkdir(parents=True, exist_ok=True)
    x0, _ = data.train.get_batch(torch.arange(1))
    slimkit.save_model(model, file, example_inputs=(x0,), metadata={
        "geometry": {"in_channels": int(x0.shape[1]), "num_classes": int(data.num_classes),
                     "image_size": int(x0.shape[-1])}})
    return model


def _geometry(file: Path) -> dict[str, int]:
    from slimkit.state.file import read_model_file

    header = read_model_file(file)[0]
    return {k: int(v) for k, v in (header.get("metadata") or {}).get("geometry", {}).items()}


def classifier_features(classifier: FeatureClassifier) -> FeatureFn:
    """``images -> penultimate features`` of a frozen classifier: a ``feature_fn`` for :func:`slimkit.gan_slim`."""
    classifier.eval().requires_grad_(False)
    return classifier.features


def activations(classifier: FeatureClassifier, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Penultimate features of ``images`` (N, C, H, W) in ``[-1, 1]``, as float64 (N, D)."""
    device = next(classifier.parameters()).device
    with torch.no_grad(), training_mode(classifier, False):
        feats = [classifier.features(chunk.to(device)).double().cpu() for chunk in images.split(batch_size)]
    return torch.cat(feats).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (rows are samples)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer samples than features give singular covariances: expected
        warnings.simplefilter("ignore")
        covmean, _ = scipy.linalg.sqrtm(cov_a @ cov_b, disp=False)
        if not np.isfinite(covmean).all():  # regularize, as the reference implementation does
            eps = 1e-6 * np.eye(cov_a.shape[0])
            covmean = scipy.linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def fid(classifier: FeatureClassifier, real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between ``real`` and ``fake`` image batches (both ``[-1, 1]``) in ``classifier``'s feature space."""
    return frechet_distance(activations(classifier, real), activations(classifier, fake))


def class_accuracy(classifier: FeatureClassifier, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: int = 500) -> float:
    """Fraction of ``images`` the classifier assigns to ``labels`` (conditional generation quality)."""
    device = next(classifier.parameters()).device
    with torch.no_grad(), training_mode(classifier, False):
        predicted = torch.cat([classifier(chunk.to(device)).argmax(1).cpu() for chunk in images.split(batch_size)])
    return float((predicted == labels.cpu()).float().mean())


def generate(generator: nn.Module, num_samples: int, *, num_classes: int | None = None,
             noise_dim: int | None = None, seed: int = 0, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_samples`` images of a conditional ``(noise, labels)`` generator, labels cycling over the classes.

    ``noise_dim``/``num_classes`` default to the generator's attributes (zoo ``dcgan_g`` has them).
    """
    noise_dim = noise_dim or generator.noise_dim
    num_classes = num_classes or generator.num_classes
    rng = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_samples) % num_classes
    noise = torch.randn(num_samples, noise_dim, generator=rng)
    device = next(generator.parameters()).device
    with torch.no_grad(), training_mode(generator, False):
        images = torch.cat([generator(z.to(device), y.to(device)).cpu()
                            for z, y in zip(noise.split(batch_size), labels.split(batch_size))])
    return images, labels


def real_images(dataset: Any, num_samples: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_samples`` (seeded, random) images of a ``[0, 1]`` dataset split, mapped to ``[-1, 1]``, and labels."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:num_samples]
    x, y = dataset.get_batch(order)
    return to_tanh_range(x), y
