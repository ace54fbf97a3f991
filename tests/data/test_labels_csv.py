"""The quality runner's csv: data and the shared ImageNet sample (the reader: test_folders.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from whiteboxdl.quality.runner import load_images


def _folder(tmp_path, rows, images_dir=True):
    folder = tmp_path / "sample"
    (folder / "images").mkdir(parents=True)
    for i, (name, _) in enumerate(rows):
        target = folder / ("images" if images_dir else "") / name
        Image.fromarray(np.full((8, 8, 3), 30 * i, dtype=np.uint8)).save(target)
    lines = ["file,class_index,wnid,class_name"] + [f"{n},{c},n0,x" for n, c in rows]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_quality_runner_reads_csv_folders(tmp_path):
    folder = _folder(tmp_path, [(f"{i}.png", 10 + i) for i in range(5)])
    x, y, px, py = load_images(f"csv:{folder}", 3, seed=0)
    assert x.shape == (3, 3, 224, 224) and torch.equal(px[:3], x) and torch.equal(py[:3], y)
    assert set(y.tolist()) <= set(range(10, 15)) and len(set(y.tolist())) == 3
    with pytest.raises(ValueError, match="exceeds the 5 images"):
        load_images(f"csv:{folder}", 6)


def test_the_shared_sample_has_its_documented_shape(imagenet_sample):
    assert len(imagenet_sample) == 500
    assert [c for _, c in imagenet_sample] == list(range(0, 1000, 2))
