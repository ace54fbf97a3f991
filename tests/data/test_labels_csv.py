"""Labelled image folders (labels.csv: file,class_index,...) and the quality runner's csv: data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from whiteboxdl.data.imagenet import read_labels_csv
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


def test_rows_paths_and_labels(tmp_path):
    folder = _folder(tmp_path, [("a.png", 3), ("b.png", 7), ("c.png", 0)])
    rows = read_labels_csv(folder)
    assert [(p.name, c) for p, c in rows] == [("a.png", 3), ("b.png", 7), ("c.png", 0)]
    assert read_labels_csv(folder / "labels.csv") == rows
    flat = _folder(tmp_path / "flat", [("d.png", 1)], images_dir=False)
    assert read_labels_csv(flat)[0][0] == flat / "d.png"


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels file not found"):
        read_labels_csv(tmp_path)
    folder = _folder(tmp_path, [("a.png", 3)])
    (folder / "labels.csv").write_text("name,label\na.png,3\n")
    with pytest.raises(ValueError, match="file and class_index"):
        read_labels_csv(folder)
    (folder / "labels.csv").write_text("file,class_index\na.png,three\n")
    with pytest.raises(ValueError, match=r"labels.csv:2: class_index must be an integer"):
        read_labels_csv(folder)
    (folder / "labels.csv").write_text("file,class_index\nmissing.png,3\n")
    with pytest.raises(FileNotFoundError, match="'missing.png' not found"):
        read_labels_csv(folder)


def test_quality_runner_reads_csv_folders(tmp_path):
    folder = _folder(tmp_path, [(f"{i}.png", 10 + i) for i in range(5)])
    x, y, px, py = load_images(f"csv:{folder}", 3, seed=0)
    assert x.shape == (3, 3, 224, 224) and px is x and torch.equal(py, y)
    assert set(y.tolist()) <= set(range(10, 15)) and len(set(y.tolist())) == 3
    with pytest.raises(ValueError, match="exceeds the 5 images"):
        load_images(f"csv:{folder}", 6)


def test_the_shared_sample_has_its_documented_shape(imagenet_sample):
    assert len(imagenet_sample) == 500
    assert [c for _, c in imagenet_sample] == list(range(0, 1000, 2))
