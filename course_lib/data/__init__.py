"""Datasets as tensors: CIFAR-10 from wherever it is, an offline fallback, and a loader that
keeps the whole dataset on the device and serves augmented batches.

Images are ``uint8`` tensors of shape ``(N, 32, 32, 3)`` (height, width, RGB), labels ``int64``
of shape ``(N,)``. Models see ``float32`` batches ``(B, 3, H, W)`` scaled to [0, 1] and
normalised with the CIFAR-10 channel statistics (:func:`to_model_input`).

Modules by topic: :mod:`~course_lib.data.sources` (CIFAR-10 files, ImageFolder trees and their
``.tar.gz``, the download, scikit-learn's digits), :mod:`~course_lib.data.subsets` (class-balanced
subsets, :func:`load_data` per profile), :mod:`~course_lib.data.loaders` (:class:`DeviceLoader`,
:func:`to_model_input`, :func:`normalize_batch`), :mod:`~course_lib.data.samplers` (random pairs and
triplets, :class:`PKSampler`, :func:`class_examples`). Everything is importable from here.

Where CIFAR-10 comes from, first hit wins (nothing is ever downloaded at import time):

1. torchvision's files already in ``root`` (``root/cifar-10-batches-py``);
2. an ImageFolder tree ``train/<class>/*.jpg`` + ``test/<class>/*.jpg``, or a ``.tar.gz`` of one,
   named by ``$COURSE_CIFAR10`` or found in ``root`` as ``cifar10/`` or ``cifar10-jpeg.tar.gz``;
   decoded once into a cached ``.npz`` array in ``root``;
3. ``torchvision.datasets.CIFAR10(root, download=True)`` when ``download=True``.
"""
from __future__ import annotations

from typing import Sequence

from . import loaders, samplers, sources, subsets
from .loaders import (
    CIFAR10_MEAN, CIFAR10_STD, DeviceLoader, check_images, check_labels, normalize_batch, to_model_input,
)
from .samplers import (
    PairDataset, PKSampler, TripletDataset, _ClassIndex, class_examples, random_pairs, random_triplets_by_class,
)
from .sources import CIFAR10_CLASSES, CIFAR10_URL, DIGITS_CLASSES, find_cifar10, load_cifar10, load_digits
from .subsets import PROFILE_SIZES, ImageData, balanced_subset, load_data

__all__: Sequence[str] = [
    "CIFAR10_CLASSES", "DIGITS_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "PROFILE_SIZES",
    "load_cifar10", "find_cifar10", "load_digits", "load_data", "ImageData", "balanced_subset",
    "class_examples", "to_model_input", "normalize_batch", "DeviceLoader", "check_images",
    "check_labels", "random_pairs", "random_triplets_by_class", "PairDataset", "TripletDataset",
    "PKSampler",
]
