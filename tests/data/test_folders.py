"""Labelled image folders on real files: labels.csv, WordNet-id trees (subsets of the classes),
plain ImageFolder trees, and the canonical WordNet-id order checked against the shared sample."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from whiteboxdl.data.folders import is_folder_spec, labelled_images, read_image_tree
from whiteboxdl.data.imagenet import imagenet_classes, imagenet_wnids


def _sample_dir() -> Path | None:
    env = os.environ.get("WHITEBOXDL_IMAGENET_SAMPLE")
    root = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data" \
        / "imagenet-sample"
    return root if (root / "labels.csv").is_file() else None


@pytest.fixture
def sample_dir() -> Path:
    root = _sample_dir()
    if root is None:
        pytest.skip("the shared ImageNet sample (../shared/data/imagenet-sample/labels.csv, or "
                    "$WHITEBOXDL_IMAGENET_SAMPLE) is not here")
    return root


def _image(path: Path, colour=(200, 30, 40), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_wnids_are_the_canonical_order_of_the_sample(sample_dir):
    wnids, names = imagenet_wnids(), imagenet_classes()
    assert len(set(wnids)) == 1000
    with open(sample_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 500
    for row in rows:
        i = int(row["class_index"])
        assert wnids[i] == row["wnid"], row
        # torchvision's class names agree with the sample's class names (first synonym)
        assert names[i].lower().split(",")[0] in row["class_name"].lower() or \
            row["class_name"].lower() in names[i].lower(), (names[i], row)


def test_labels_csv_of_the_shared_sample(sample_dir):
    images = labelled_images(f"csv:{sample_dir}")
    assert len(images) == 500 and images.labels[:3] == (0, 2, 4)
    assert images.paths[0] == sample_dir / "images" / "000_n01440764.jpg"
    same = labelled_images(f"csv:{sample_dir / 'labels.csv'}")           # the CSV itself
    assert same.paths == images.paths and same.labels == images.labels


def test_labels_csv_beside_the_images_and_in_images(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "images" / "b.jpg")
    (tmp_path / "labels.csv").write_text("file,class_index,class_name\na.png,3,x\nb.jpg,999,y\n")
    images = labelled_images(f"csv:{tmp_path}")
    assert images.paths == (tmp_path / "a.png", tmp_path / "images" / "b.jpg")
    assert images.labels == (3, 999)


@pytest.mark.parametrize("text, match", [
    ("name,label\na.png,1\n", "header must name"),
    ("file,class_index\na.png,one\n", "whole number"),
    ("file,class_index\na.png,-2\n", ">= 0"),
    ("file,class_index\nmissing.png,1\n", "neither next to"),
    ("file,class_index\n", "lists no images"),
])
def test_bad_labels_csv_is_refused_with_the_line(tmp_path, text, match):
    _image(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        labelled_images(f"csv:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="labels file not found"):
        labelled_images(f"csv:{tmp_path / 'nowhere'}")


def test_wordnet_tree_with_a_subset_of_classes_keeps_canonical_indices(tmp_path):
    # golden retriever (207), tench (0), goldfish (1): indices are not the folders' positions
    for wnid, files in (("n02099601", ["z.jpg", "a.png"]), ("n01440764", ["t.png"]),
                        ("n01443537", ["g.png"])):
        for f in files:
            _image(tmp_path / wnid / f)
    (tmp_path / "n01443537" / "notes.txt").write_text("not an image")
    images = labelled_images(f"imagefolder:{tmp_path}")
    assert images.labels == (0, 1, 207, 207)
    assert [p.name for p in images.paths] == ["t.png", "g.png", "a.png", "z.jpg"]
    assert imagenet_wnids()[207] == "n02099601"


def test_plain_tree_is_numbered_in_sorted_order_and_mixes_are_refused(tmp_path):
    for name in ("dog", "cat"):
        _image(tmp_path / "plain" / name / "1.png")
    assert read_image_tree(tmp_path / "plain").labels == (0, 1)        # cat, dog
    _image(tmp_path / "mixed" / "n01440764" / "1.png")
    _image(tmp_path / "mixed" / "cat" / "1.png")
    with pytest.raises(ValueError, match="mix WordNet ids"):
        read_image_tree(tmp_path / "mixed")
    _image(tmp_path / "fake" / "n99999999" / "1.png")
    with pytest.raises(ValueError, match="not one of the 1000"):
        read_image_tree(tmp_path / "fake")
    with pytest.raises(FileNotFoundError):
        read_image_tree(tmp_path / "absent")
    (tmp_path / "empty" / "n01440764").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        read_image_tree(tmp_path / "empty")


def test_specs():
    assert is_folder_spec("csv:/x") and is_folder_spec("imagefolder:/x")
    assert not is_folder_spec("mnist")
    with pytest.raises(ValueError, match="names no path"):
        labelled_images("csv:")


def test_runner_loads_a_wordnet_tree_with_the_contract(tmp_path):
    from whiteboxdl.models.registry import imagenet_contract
    from whiteboxdl.quality.runner import load_images

    _image(tmp_path / "n02099601" / "a.png", (255, 0, 0), size=(300, 200))
    _image(tmp_path / "n01440764" / "b.png", (0, 0, 255), size=(200, 300))
    _image(tmp_path / "n01440764" / "c.png", (0, 255, 0))
    x, y, px, py = load_images(f"imagefolder:{tmp_path}", 3, seed=0,
                               contract=imagenet_contract())
    assert x.shape == (3, 3, 224, 224) and sorted(y.tolist()) == [0, 0, 207]
    # the paper's preprocessing into [-1, 1]: pure blue stays (-1, -1, 1), red (1, -1, -1)
    colours = {tuple(x[i, :, 100, 100].round().tolist()): int(y[i]) for i in range(3)}
    assert colours == {(-1.0, -1.0, 1.0): 0, (-1.0, 1.0, -1.0): 0, (1.0, -1.0, -1.0): 207}
    assert torch.equal(px, x) and torch.equal(py, y)
    # a smaller n takes the first images of a larger one
    x2, y2, _, _ = load_images(f"imagefolder:{tmp_path}", 2, seed=0, contract=imagenet_contract())
    assert torch.equal(x2, x[:2]) and torch.equal(y2, y[:2])
    # the Focus pool: the first max(n, pool) images of the same order
    x1, _, px1, py1 = load_images(f"imagefolder:{tmp_path}", 1, seed=0, pool=3,
                                  contract=imagenet_contract())
    assert torch.equal(px1, x) and torch.equal(py1, y) and torch.equal(x1, x[:1])
    with pytest.raises(ValueError, match="exceeds the 3 images"):
        load_images(f"imagefolder:{tmp_path}", 4, contract=imagenet_contract())
