"""Semantic-feature networks: layers whose features match every pose of a learned template.

Public API::

    from whiteboxdl.semantic import semantic_mnist, processing_steps, get_semantic_model
    model = get_semantic_model((3, 5))          # default recipe, trained once and cached
    steps = processing_steps(model, x)          # every intermediate output and matching pose

Layers (``TwoStep``, ``ConvSemantic``, ``AffineSemantic``, ``Logical``) and pose sets
(``RotationPoses``, ``AffinePoses``) are importable from here too.
"""

from whiteboxdl.semantic.layers import AffineSemantic, ConvSemantic, Logical, TwoStep
from whiteboxdl.semantic.network import SemanticNetwork, processing_steps, semantic_mnist
from whiteboxdl.semantic.samplers import AffinePoses, RotationPoses
from whiteboxdl.semantic.train import (apgd_accuracy, default_model_path, get_semantic_model,
                                       noise_augment, train_semantic)

__all__ = [
    "AffinePoses", "AffineSemantic", "ConvSemantic", "Logical", "RotationPoses",
    "SemanticNetwork", "TwoStep", "apgd_accuracy", "default_model_path", "get_semantic_model",
    "noise_augment", "processing_steps", "semantic_mnist", "train_semantic",
]
