"""Datasets (MNIST, Fashion-MNIST), image loading and ImageNet helpers."""

from whiteboxdl.data.mnist import (
    digit_subset,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    locate,
    select_classes,
)

__all__ = ["digit_subset", "load_dataset", "load_fashion_mnist", "load_mnist", "locate",
           "select_classes"]
