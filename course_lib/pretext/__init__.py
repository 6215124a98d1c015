"""Pretext tasks: labels made from the images themselves (chapter 05).

Each task is a :class:`PretextTask` (``backbone`` + the task's head / decoder) whose
``forward(x)`` turns a batch of [0, 1] images into a loss; :func:`train_pretext` trains one and
:func:`score_task` measures its encoder downstream. Modules by task:

* :mod:`~course_lib.pretext.rotation` (Gidaris et al. 2018), :mod:`~course_lib.pretext.jigsaw`
  (Noroozi & Favaro 2016), :mod:`~course_lib.pretext.context` (Doersch et al. 2015);
* :mod:`~course_lib.pretext.colorization` (Zhang et al. 2016), :mod:`~course_lib.pretext.inpainting`
  (Pathak et al. 2016), :mod:`~course_lib.pretext.masked` (masked reconstruction, as MAE);
* :mod:`~course_lib.pretext.clustering`: the autoencoder baseline and deep clustering (Caron et al. 2018).
"""
from .common import Encoder, PretextTask, encoder, pretext_step
from .rotation import RotationConfig, RotationTask, rotate_batch
from .jigsaw import JigsawConfig, JigsawTask, jigsaw_permutations, make_jigsaw, min_hamming
from .context import NEIGHBOURS, ContextConfig, ContextTask, context_pairs
from .colorization import (ColorizationConfig, ColorizationTask, ab_bins, ab_histogram, annealed_mean, bin_counts,
                           colorize, in_gamut, quantize_ab, rebalancing_weights, soft_encode)
from .inpainting import InpaintingConfig, InpaintingTask, feature_map, inpaint, masked_mse, random_block_mask
from .masked import MaskedReconstructionConfig, MaskedReconstructionTask, patch_normalize, random_patch_mask, reconstruct
from .clustering import (AutoencoderConfig, AutoencoderTask, DeepClusterConfig, DeepClusterTask, kmeans, pca_whiten,
                         split_empty_clusters)
from ..color import lab_to_rgb, rgb_to_lab  # the public API names them here too (chapter 05 uses Lab)
from .runs import score_task, train_pretext

__all__ = [
    "PretextTask", "Encoder", "encoder", "pretext_step", "train_pretext", "score_task",
    "rotate_batch", "RotationTask", "RotationConfig",
    "jigsaw_permutations", "min_hamming", "make_jigsaw", "JigsawTask", "JigsawConfig",
    "context_pairs", "NEIGHBOURS", "ContextTask", "ContextConfig",
    "rgb_to_lab", "lab_to_rgb", "ab_bins", "ab_histogram", "in_gamut", "bin_counts", "quantize_ab", "soft_encode", "rebalancing_weights", "annealed_mean",
    "colorize", "ColorizationTask", "ColorizationConfig",
    "random_block_mask", "masked_mse", "feature_map", "inpaint", "InpaintingTask", "InpaintingConfig",
    "random_patch_mask", "patch_normalize", "reconstruct", "MaskedReconstructionTask", "MaskedReconstructionConfig",
    "kmeans", "split_empty_clusters", "pca_whiten", "AutoencoderTask", "AutoencoderConfig", "DeepClusterTask", "DeepClusterConfig",
]
