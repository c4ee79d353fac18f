"""COCO-Stuff-164K loader on a tiny fixture in the official layout: 182 ids kept and 255 → -1 pixel by pixel,
id lists and the sorted-listing fallback, the unused-id convention, and bad input."""
import numpy as np
import pytest
from PIL import Image

from data_fixtures import check_contract, write_coco_stuff
from kdlib.data import COCOStuff164k, DatasetNotFoundError, LabelValueError, MissingFilesError, build_dataset
from kdlib.data.coco_stuff import UNUSED_IDS


def expected_mapping(raw):
    return np.where(raw == 255, -1, raw.astype(np.int64))


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    return root, write_coco_stuff(root, lists=True)


def test_182_ids_kept_and_unlabeled_ignored_pixel_by_pixel(coco):
    root, samples = coco
    for split, folder in (("train", "train2017"), ("val", "val2017")):
        ds = build_dataset("coco_stuff_164k", root, split, augment=False)
        check_contract(ds, 182)
        assert ds.list_source.endswith(f"coco_stuff_164k_{split}.txt")
        assert [p.split("/")[-1][:-4] for p, _ in ds.files] == [s[0] for s in samples[folder]]  # list order
        for i, (sid, rgb, raw) in enumerate(samples[folder]):
            assert set(np.unique(raw)) == set(range(182)) | {255}
            image, label = ds[i]
            assert np.array_equal(label.numpy(), expected_mapping(raw))
            assert np.array_equal(ds.denormalize(image), rgb)


def test_sorted_listing_without_lists(tmp_path):
    samples = write_coco_stuff(tmp_path, counts={"train2017": 3})
    ds = COCOStuff164k(tmp_path, "train2017")
    assert ds.split == "train" and ds.augment and ds.crop_size == (512, 512)
    assert ds.list_source.startswith("sorted listing")
    assert [p.split("/")[-1] for p, _ in ds.files] == sorted(f"{s[0]}.jpg" for s in samples["train2017"])


def test_class_names_follow_coco_category_ids():
    names = COCOStuff164k.class_names
    assert len(names) == 182 and names[0] == "person" and names[91] == "banner" and names[181] == "wood"
    assert names[11] == "street sign" and names[90] == "hair brush" and names[156] == "sky-other"
    assert len(UNUSED_IDS) == 11 and [names[i] for i in UNUSED_IDS][:3] == ["street sign", "hat", "shoe"]


def test_missing_root_list_entries_and_labels(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="stuffthingmaps"):
        COCOStuff164k(tmp_path / "coco", "val")
    samples = write_coco_stuff(tmp_path, counts={"val2017": 1}, lists=True)
    with open(tmp_path / "coco_stuff_164k_val.txt", "a") as fh:
        fh.write("000000999999\n")
    with pytest.raises(MissingFilesError, match="000000999999.jpg"):
        COCOStuff164k(tmp_path, "val")
    (tmp_path / "coco_stuff_164k_val.txt").unlink()
    (tmp_path / "annotations/val2017" / f"{samples['val2017'][0][0]}.png").unlink()
    with pytest.raises(MissingFilesError, match=samples["val2017"][0][0]):
        COCOStuff164k(tmp_path, "val")


def test_ids_between_182_and_254_are_an_error(tmp_path):
    samples = write_coco_stuff(tmp_path, counts={"val2017": 1})
    path = tmp_path / "annotations/val2017" / f"{samples['val2017'][0][0]}.png"
    raw = np.array(Image.open(path))
    raw[0, :2] = [182, 254]
    Image.fromarray(raw).save(path)
    with pytest.raises(LabelValueError, match="182, 254") as err:
        COCOStuff164k(tmp_path, "val")[0]
    assert "labelTrainIds" in str(err.value)
