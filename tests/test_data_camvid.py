"""CamVid loader on a tiny fixture in the SegNet layout: void 11 → -1 pixel by pixel, the official list
syntax, the folder fallback, class order / palette, overrides for derived datasets, and bad input."""
import numpy as np
import pytest
from PIL import Image

from data_fixtures import H, W, check_contract, save_png, write_camvid
from kdlib.data import CamVid, DatasetNotFoundError, LabelValueError, MissingFilesError, SizeMismatchError

SEGNET_ORDER = ["Sky", "Building", "Pole", "Road", "Sidewalk", "Tree", "SignSymbol", "Fence", "Car",
                "Pedestrian", "Bicyclist"]


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    root = tmp_path_factory.mktemp("camvid")
    return root, write_camvid(root)


def test_void_is_ignored_and_classes_kept_pixel_by_pixel(camvid):
    root, samples = camvid
    for split in ("train", "val", "test"):
        ds = CamVid(root, split, augment=False)
        check_contract(ds, 11)
        for i, (_, lab_path) in enumerate(ds.files):
            sid, rgb, raw = next(s for s in samples[split] if lab_path.endswith(f"{split}annot/{s[0]}.png"))
            assert set(np.unique(raw)) == set(range(12))
            expected = np.where(raw == 11, -1, raw.astype(np.int64))
            image, label = ds[i]
            assert np.array_equal(label.numpy(), expected)
            assert np.array_equal(ds.denormalize(image), rgb)


def test_class_order_and_segnet_palette():
    assert CamVid.class_names == SEGNET_ORDER
    assert CamVid.palette[0].tolist() == [128, 128, 128]  # Sky
    assert CamVid.palette[3].tolist() == [128, 64, 128]  # Road
    assert CamVid.palette[10].tolist() == [0, 128, 192]  # Bicyclist
    assert len({tuple(c) for c in CamVid.palette.tolist()}) == 11


def test_official_list_syntax_and_order(camvid):
    root, samples = camvid
    ds = CamVid(root, "train")
    assert ds.list_source == f"list file {root / 'camvid_train_list.txt'}"
    # list order is kept (the fixture writes ids in reverse-sorted order)
    assert [p.split("/")[-1] for p, _ in ds.files] == [f"{s[0]}.png" for s in samples["train"]]
    assert all(lab.split("/")[-2] == "trainannot" for _, lab in ds.files)


def test_folder_fallback_and_trainval(tmp_path):
    samples = write_camvid(tmp_path, counts={"train": 3, "val": 2}, lists=False)
    ds = CamVid(tmp_path, "train")
    assert ds.list_source.startswith("sorted listing")
    assert [p.split("/")[-1] for p, _ in ds.files] == sorted(f"{s[0]}.png" for s in samples["train"])
    tv = CamVid(tmp_path, "trainval")
    assert len(tv) == 5 and tv.augment
    explicit = tmp_path / "mine.txt"
    explicit.write_text(f"val/{samples['val'][0][0]}.png valannot/{samples['val'][0][0]}.png\n")
    assert len(CamVid(tmp_path, "train", list_file=explicit)) == 1


def test_overrides_for_a_derived_dataset(camvid):
    root, _ = camvid
    names = [f"class{i}" for i in range(11)]
    pal = np.arange(33).reshape(11, 3)
    ds = CamVid(root, "val", class_names=names, palette=pal)
    assert ds.class_names == names and ds.palette.tolist() == pal.tolist() and ds.palette.dtype == np.uint8
    assert CamVid.class_names == SEGNET_ORDER  # the class default is untouched
    with pytest.raises(ValueError, match="palette"):
        CamVid(root, "val", palette=np.zeros((10, 3)))
    # fewer classes: values >= K become errors, void stays ignore
    small = CamVid(root, "val", class_names=names[:5], void_value=11)
    assert small.num_classes == 5 and small.palette.shape == (5, 3)
    with pytest.raises(LabelValueError, match="5, 6, 7"):
        small[0]
    with pytest.raises(ValueError, match="void_value"):
        CamVid(root, "val", void_value=3)


def test_missing_root_and_folders(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="trainannot") as err:
        CamVid(tmp_path / "absent", "train")
    assert "SegNet" in str(err.value)
    (tmp_path / "r").mkdir()
    with pytest.raises(DatasetNotFoundError, match="r/val"):
        CamVid(tmp_path / "r", "val")


def test_list_naming_missing_files(tmp_path):
    write_camvid(tmp_path, counts={"train": 2})
    with open(tmp_path / "camvid_train_list.txt", "a") as fh:
        fh.write("train/ghost1.png trainannot/ghost1.png\ntrain/ghost2.png trainannot/ghost2.png\n")
    with pytest.raises(MissingFilesError) as err:
        CamVid(tmp_path, "train")
    msg = str(err.value)
    assert "4 file(s)" in msg and "ghost1.png" in msg and "camvid_train_list.txt" in msg


def test_bad_label_values_and_size_mismatch(tmp_path):
    samples = write_camvid(tmp_path, counts={"train": 2})
    sid = samples["train"][0][0]
    lab = tmp_path / "trainannot" / f"{sid}.png"
    raw = np.array(Image.open(lab))
    raw[3, 3] = 12
    Image.fromarray(raw).save(lab)
    ds = CamVid(tmp_path, "train")
    idx = [p for p, _ in ds.files].index(str(tmp_path / "train" / f"{sid}.png"))
    with pytest.raises(LabelValueError, match=f"{sid}.png") as err:
        ds[idx]
    assert "has values 12 that" in str(err.value) and "1 pixel(s)" in str(err.value)
    assert len(CamVid(tmp_path, "train", check_labels=False)[idx]) == 2  # explicit opt-out passes it
    save_png(lab, np.zeros((H + 2, W), np.uint8))
    with pytest.raises(SizeMismatchError, match=f"{sid}.png"):
        ds[idx]
