"""Pascal VOC aug loader on a tiny fixture in the VOCdevkit layout: 255 → -1 pixel by pixel, train labels
from SegmentationClassAug (greyscale), val labels from SegmentationClass (palette indices), the list rules
(train_aug.txt, or derived as SegmentationClassAug minus val), and bad input."""
import numpy as np
import pytest
from PIL import Image

from data_fixtures import H, W, check_contract, write_voc
from kdlib.data import VOC, DatasetNotFoundError, LabelValueError, MissingFilesError, build_dataset

TRAIN_IDS = ("2007_000032", "2008_000002", "2011_003276")
VAL_IDS = ("2007_000033", "2010_000002")


def expected_mapping(raw):
    out = raw.astype(np.int64)
    out[raw == 255] = -1
    return out


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    return root, write_voc(root, TRAIN_IDS, VAL_IDS)


def test_val_reads_palette_pngs_as_indices_and_maps_255(voc):
    root, samples = voc
    ds = VOC(root, "val")
    check_contract(ds, 21)
    assert ds.list_source.endswith("ImageSets/Segmentation/val.txt") and not ds.augment
    assert [lab.split("/")[-2] for _, lab in ds.files] == ["SegmentationClass"] * 2
    for i, (sid, rgb, raw) in enumerate(samples["val"]):
        assert Image.open(ds.files[i][1]).mode == "P" and set(np.unique(raw)) == set(range(21)) | {255}
        image, label = ds[i]
        assert image.shape == (3, H, W)
        assert np.array_equal(label.numpy(), expected_mapping(raw))
        assert np.array_equal(ds.denormalize(image), rgb)  # rgb = what PIL decodes from the JPEG


def test_train_derives_train_aug_as_aug_labels_minus_val(voc):
    root, samples = voc
    ds = VOC(root, "train", augment=False)
    assert ds.list_source.startswith("derived train_aug")
    ids = [p.split("/")[-1][:-4] for p, _ in ds.files]
    assert ids == sorted(TRAIN_IDS)  # every aug label except the val ids
    assert [lab.split("/")[-2] for _, lab in ds.files] == ["SegmentationClassAug"] * 3
    for i, sid in enumerate(ids):
        raw = next(s[2] for s in samples["train"] if s[0] == sid)
        assert np.array_equal(ds[i][1].numpy(), expected_mapping(raw))
    aug = VOC(root, "train_aug")
    assert aug.split == "train" and aug.augment and aug.crop_size == (512, 512)


def test_train_aug_list_is_preferred_and_kept_in_order(tmp_path):
    write_voc(tmp_path, TRAIN_IDS, VAL_IDS, train_aug_list=True)
    (tmp_path / "ImageSets/Segmentation/train_aug.txt").write_text("2011_003276\n2007_000032\n")
    ds = VOC(tmp_path, "train")
    assert ds.list_source.endswith("train_aug.txt")
    assert [p.split("/")[-1] for p, _ in ds.files] == ["2011_003276.jpg", "2007_000032.jpg"]


def test_deeplab_style_two_path_lines(voc):
    root, _ = voc
    lst = root / "pairs.txt"
    lst.write_text("/JPEGImages/2008_000002.jpg /SegmentationClassAug/2008_000002.png\n")
    ds = build_dataset("voc", root, "train", list_file=lst, augment=False)
    assert ds.files == [(str(root / "JPEGImages/2008_000002.jpg"), str(root / "SegmentationClassAug/2008_000002.png"))]
    assert ds[0][1].shape == (H, W)


def test_missing_val_list_is_an_error_for_val_and_for_derived_train(tmp_path):
    write_voc(tmp_path, TRAIN_IDS, VAL_IDS, val_list=False)
    with pytest.raises(DatasetNotFoundError, match="val.txt"):
        VOC(tmp_path, "val")
    with pytest.raises(DatasetNotFoundError, match="leak"):
        VOC(tmp_path, "train")


def test_missing_root_and_missing_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="SegmentationClassAug") as err:
        VOC(tmp_path / "VOC2012", "train")
    assert "host.robots.ox.ac.uk" in str(err.value)
    write_voc(tmp_path, TRAIN_IDS, VAL_IDS)
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n2099_000001\n")
    with pytest.raises(MissingFilesError, match="2099_000001.jpg"):
        VOC(tmp_path, "val")


def test_label_outside_classes_is_an_error(tmp_path):
    write_voc(tmp_path, TRAIN_IDS, VAL_IDS)
    path = tmp_path / "SegmentationClassAug" / "2008_000002.png"
    raw = np.array(Image.open(path))
    raw[0, 0] = 21
    Image.fromarray(raw).save(path)
    ds = VOC(tmp_path, "train", augment=False)
    with pytest.raises(LabelValueError, match="2008_000002.png") as err:
        ds[[p for p, _ in ds.files].index(str(tmp_path / "JPEGImages/2008_000002.jpg"))]
    assert "has values 21 that" in str(err.value)
