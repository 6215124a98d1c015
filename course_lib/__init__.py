"""course_lib: the reference implementations of the representation-learning course.

Notebooks import from here and never redefine what lives here. One module (or package of topic
modules) per subject; every public name is importable from the top of its package
(``from course_lib.data import PKSampler``), whichever file defines it:

=============  ==========================================================================================
``config``     profile (gpu / cpu / smoke), device, seeds, data and checkpoint folders
``data``       ``sources`` (CIFAR-10 files, ImageFolder / tar, download, digits), ``subsets``
               (``balanced_subset``, ``load_data``), ``loaders`` (``DeviceLoader``, ``to_model_input``),
               ``samplers`` (pairs, triplets, ``PKSampler``, ``class_examples``)
``augment``    SimCLR augmentation, batched on any device: ``config``, ``geometry`` (crop, flip),
               ``colour`` (jitter), ``blur``, ``chain`` (``SimCLRAugment``), ``reference`` (torchvision)
``color``      RGB ↔ HSV ↔ L*a*b*
``distances``  L1 / L2 / cosine, row-wise and pairwise; metric names ``"l2"`` (alias ``"euclidean"``),
               ``"squared_l2"``, ``"l1"``, ``"cosine"`` everywhere in the library
``losses``     ``pairs`` (contrastive), ``triplets`` (triplet, batch-all / -hard, hard-cluster, lifted),
               ``softmax`` (N-pair, InfoNCE, CLIP), ``classification`` (center loss, CosFace / ArcFace,
               AdaCos, prototypical), ``margins`` (SphereFace, adaptive margins); ``metric`` gathers the
               metric-learning ones; later ``ssl``
``mining``     triplet mining from boolean masks
``models``     small conv net, ResNet-18 (CIFAR stem), embedding / projection heads
``train``      ``fit``: one resumable training loop, and the training steps of each chapter
``evaluate``   ``features``, ``probes`` (kNN, linear probe), ``monitors``, ``retrieval`` (Recall@k, MAP@R,
               ROC), ``quality`` (invariance, clustering), ``fewshot``
``viz``        ``images`` (grids, retrievals), ``embeddings`` (2-D maps, snapshots), ``curves`` (history,
               bars, ROC), ``metric`` (margins, angular regions), ``widgets``, ``source`` (``show_source``),
               ``style``
``report``     the slides' claims judged on this run; tables beside the reference run
``zoo``        every chapter's saved encoder (``save_encoder`` / ``load_encoder``), small stand-ins, one score table
``_checks``    (private) the input checks every public function uses: one wording for every error
=============  ==========================================================================================
"""
from .config import (
    PROFILE, PROFILES, check_environment, checkpoint_dir, checkpoint_path, data_dir, describe,
    get_device, pick, set_seed,
)
from . import config, data, augment, color, distances, losses, mining, models, train, evaluate, viz, report, zoo

__version__ = "0.2.0"  # the Colab cells install the tag v<this>; a test keeps them in step
