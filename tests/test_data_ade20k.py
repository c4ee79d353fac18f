"""ADE20K loader on a tiny fixture in the ADEChallengeData2016 layout: the -1 shift pixel by pixel (0 → -1),
padding stays -1 after the shift (docs/reference.md §6.8), sorted listing, and bad input."""
import numpy as np
import pytest
from PIL import Image

from data_fixtures import H, W, check_contract, write_ade20k
from kdlib.data import ADE20K, DatasetNotFoundError, LabelValueError, MissingFilesError


@pytest.fixture(scope="module")
def ade(tmp_path_factory):
    root = tmp_path_factory.mktemp("ade")
    return root, write_ade20k(root)


def test_labels_are_shifted_by_one_pixel_by_pixel(ade):
    root, samples = ade
    for split, folder in (("val", "validation"), ("train", "training")):
        ds = ADE20K(root, split, augment=False)
        check_contract(ds, 150)
        for i, (img_path, lab_path) in enumerate(ds.files):
            sid, rgb, raw = next(s for s in samples[folder] if img_path.endswith(f"images/{folder}/{s[0]}.jpg"))
            assert lab_path.endswith(f"annotations/{folder}/{sid}.png")
            assert set(np.unique(raw)) == set(range(151))
            image, label = ds[i]
            expected = raw.astype(np.int64) - 1  # 0 ("other") -> -1, 1..150 -> 0..149
            assert np.array_equal(label.numpy(), expected)
            assert label.min() == -1 and label.max() == 149
            assert np.array_equal(ds.denormalize(image), rgb)


def test_sorted_listing_aliases_and_names(ade):
    root, samples = ade
    ds = ADE20K(root, "training")
    assert ds.split == "train" and ds.augment and ds.crop_size == (512, 512)
    assert [p.split("/")[-1] for p, _ in ds.files] == sorted(f"{s[0]}.jpg" for s in samples["training"])
    assert ADE20K(root, "validation").split == "val"
    assert len(ADE20K.class_names) == 150 and len(set(ADE20K.class_names)) == 150
    assert ADE20K.class_names[:3] == ["wall", "building", "sky"] and ADE20K.class_names[-1] == "flag"
    assert (ADE20K.palette.sum(axis=1) > 0).all()  # no class drawn black like ignore


def test_padding_is_ignore_after_the_shift(ade):
    root, _ = ade
    ds = ADE20K(root, "train", scales=(0.5,), crop_size=(20, 24), flip=False)
    image, label = ds[0]
    assert (label[12:, :] == -1).all() and (label[:, 16:] == -1).all()
    assert (image[:, 12:, :] == 0).all()
    inside = label[:12, :16]
    assert inside.min() >= -1 and inside.max() <= 149 and (inside >= 0).float().mean() > 0.9


def test_list_file_with_ids(ade):
    root, samples = ade
    lst = root / "mine.txt"
    lst.write_text(f"{samples['validation'][0][0]}\n")
    ds = ADE20K(root, "val", list_file=lst)
    sid = samples["validation"][0][0]
    assert ds.files == [(str(root / f"images/validation/{sid}.jpg"), str(root / f"annotations/validation/{sid}.png"))]


def test_missing_root_and_image_without_annotation(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="ADEChallengeData2016"):
        ADE20K(tmp_path / "ADEChallengeData2016", "train")
    samples = write_ade20k(tmp_path)
    (tmp_path / "annotations/training" / f"{samples['training'][0][0]}.png").unlink()
    with pytest.raises(MissingFilesError, match=samples["training"][0][0]) as err:
        ADE20K(tmp_path, "train")
    assert "skip" in str(err.value)  # explains that the official loader would have dropped it


def test_value_above_150_is_an_error(tmp_path):
    samples = write_ade20k(tmp_path, counts={"validation": 1})
    path = tmp_path / "annotations/validation" / f"{samples['validation'][0][0]}.png"
    raw = np.array(Image.open(path))
    raw[H - 1, W - 1] = 151
    Image.fromarray(raw).save(path)
    with pytest.raises(LabelValueError, match="has values 151 that"):
        ADE20K(tmp_path, "val")[0]
