"""Cityscapes loader on a tiny fixture in the official layout: 34 labelIds → 19 trainIds pixel by pixel,
lists, the test split, and the bad-input errors."""
import numpy as np
import pytest
from PIL import Image

from data_fixtures import H, W, check_contract, save_png, write_cityscapes
from kdlib.data import (
    Cityscapes, DatasetNotFoundError, LabelValueError, ListFileError, MissingFilesError, SizeMismatchError,
    build_dataset,
)
from kdlib.data.cityscapes import LABEL_LUT

# Written out independently from the official table (docs/reference.md §4): labelId -> trainId, everything else ignored.
EXPECTED_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                     25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def expected_mapping(raw):
    out = np.full(raw.shape, -1, dtype=np.int64)
    for label_id, train_id in EXPECTED_TRAIN_ID.items():
        out[raw == label_id] = train_id
    return out


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    return root, write_cityscapes(root)


def test_label_table_agrees_with_cityscapesscripts():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    for lab in labels.labels:
        if lab.id < 0:
            continue  # license plate: never drawn into labelIds images
        want = lab.trainId if 0 <= lab.trainId < 19 else -1
        assert LABEL_LUT[lab.id] == want, lab.name
    by_train_id = {lab.trainId: lab for lab in labels.labels if 0 <= lab.trainId < 19}
    assert Cityscapes.class_names == [by_train_id[t].name for t in range(19)]
    assert Cityscapes.palette.tolist() == [list(by_train_id[t].color) for t in range(19)]


def test_every_label_id_is_mapped_pixel_by_pixel(city):
    root, samples = city
    ds = Cityscapes(root, "val")
    check_contract(ds, 19)
    assert ds.list_source.startswith("sorted listing")
    for i, (img_path, lab_path) in enumerate(ds.files):
        sid, rgb, raw = next(s for s in samples["val"] if img_path.endswith(f"/{s[0]}_leftImg8bit.png"))
        assert set(np.unique(raw)) == set(range(34))  # the fixture really holds every id
        image, label = ds[i]
        assert label.shape == (H, W) and image.shape == (3, H, W)
        assert np.array_equal(label.numpy(), expected_mapping(raw))
        assert lab_path.endswith(f"gtFine/val/{sid.split('_')[0]}/{sid}_gtFine_labelIds.png")


def test_directory_listing_is_sorted_and_complete(city):
    root, samples = city
    ds = Cityscapes(root, "train")
    assert len(ds) == len(samples["train"]) == 3
    assert [p for p, _ in ds.files] == sorted(p for p, _ in ds.files)
    assert ds.augment and ds.crop_size == (512, 1024)
    image, label = ds[0]
    assert image.shape == (3, 512, 1024) and label.shape == (512, 1024)
    assert (label == -1).float().mean() > 0.9  # a 24x32 image padded to the crop
    tv = Cityscapes(root, "trainval")
    assert len(tv) == 5 and tv.augment


def test_official_lst_files_are_used_in_list_order(tmp_path):
    samples = write_cityscapes(tmp_path, lists=True)
    # the official lists separate with a tab, but a few lines use spaces; both must parse
    lines = (tmp_path / "train.lst").read_text().splitlines()
    lines[1] = lines[1].replace("\t", "   ")
    (tmp_path / "train.lst").write_text("\n".join(lines) + "\n")
    ds = Cityscapes(tmp_path, "train")
    assert ds.list_source == f"list file {tmp_path / 'train.lst'}"
    assert [p.split("/")[-1] for p, _ in ds.files] == [f"{s[0]}_leftImg8bit.png" for s in samples["train"]]
    test = Cityscapes(tmp_path, "test")
    assert test.files[0][1] is None
    image, label = test[0]
    assert image.shape == (3, H, W) and (label == -1).all()


def test_test_split_without_list_has_no_labels(city):
    root, _ = city
    ds = Cityscapes(root, "test")
    assert not ds.augment and all(lab is None for _, lab in ds.files)


def test_max_samples_and_build_dataset(city):
    root, _ = city
    ds = build_dataset("cityscapes", root, "train", max_samples=2, augment=False)
    assert isinstance(ds, Cityscapes) and len(ds) == 2 and ds[1][0].shape == (3, H, W)


# ------------------------------------------------------------------------------------- bad input
def test_missing_root_names_the_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="leftImg8bit") as err:
        Cityscapes(tmp_path / "nope", "train")
    assert "cityscapes-dataset.com" in str(err.value) and str(tmp_path / "nope") in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="leftImg8bit/train"):
        Cityscapes(tmp_path / "empty", "train")


def test_list_naming_missing_files_names_them(tmp_path):
    write_cityscapes(tmp_path, lists=True)
    with open(tmp_path / "train.lst", "a") as fh:
        fh.write("leftImg8bit/train/x/x_1_1_leftImg8bit.png\tgtFine/train/x/x_1_1_gtFine_labelIds.png\n")
    with pytest.raises(MissingFilesError, match="x_1_1_leftImg8bit.png") as err:
        Cityscapes(tmp_path, "train")
    assert "2 file(s)" in str(err.value) and "x_1_1_gtFine_labelIds.png" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="no_such.lst"):
        Cityscapes(tmp_path, "train", list_file=tmp_path / "no_such.lst")
    (tmp_path / "bad.lst").write_text("a b c\n")
    with pytest.raises(ListFileError, match="bad.lst:1"):
        Cityscapes(tmp_path, "train", list_file=tmp_path / "bad.lst")


def test_image_without_label_is_an_error_not_skipped(tmp_path):
    write_cityscapes(tmp_path)
    orphan = tmp_path / "leftImg8bit/val/aachen/aachen_999999_000019_leftImg8bit.png"
    save_png(orphan, np.zeros((H, W, 3), np.uint8))
    with pytest.raises(MissingFilesError, match="aachen_999999_000019_gtFine_labelIds.png"):
        Cityscapes(tmp_path, "val")


def test_train_ids_file_by_mistake_is_rejected_with_the_file_name(tmp_path):
    samples = write_cityscapes(tmp_path, counts={"val": 1})
    sid = samples["val"][0][0]
    path = tmp_path / f"gtFine/val/bochum/{sid}_gtFine_labelIds.png"
    raw = np.array(Image.open(path))
    raw[0, 0], raw[0, 1] = 255, 40  # a trainIds image has 255, not a label id
    Image.fromarray(raw).save(path)
    ds = Cityscapes(tmp_path, "val")
    with pytest.raises(LabelValueError, match=sid) as err:
        ds[0]
    assert "255" in str(err.value) and "40" in str(err.value) and "labelIds" in str(err.value)


def test_image_label_size_mismatch(tmp_path):
    samples = write_cityscapes(tmp_path, counts={"val": 1})
    sid = samples["val"][0][0]
    save_png(tmp_path / f"gtFine/val/bochum/{sid}_gtFine_labelIds.png", np.zeros((H, W + 1), np.uint8))
    with pytest.raises(SizeMismatchError, match=sid):
        Cityscapes(tmp_path, "val")[0]
