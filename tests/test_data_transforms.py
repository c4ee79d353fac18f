"""Data pipeline: official normalisation, the seeded train augmentation (image and label move together),
padding, determinism, the val protocol, palettes, verify() and the registry (on a tiny CamVid fixture)."""
import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import H, W, decode_position, write_camvid
from kdlib.data import DATASETS, CamVid, build_dataset, transforms as T, verify

BGR_MEAN = np.array([104.00698793, 116.66876762, 122.67891434])


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    root = tmp_path_factory.mktemp("camvid")
    return root, write_camvid(root, counts={"train": 4, "val": 1, "test": 1})


def mapped_camvid(raw):
    out = raw.astype(np.int64)
    out[raw == 11] = -1
    return out


def sample_by_path(samples, path):
    return next(s for s in samples if path.endswith(f"/{s[0]}.png"))


# ------------------------------------------------------------------------------------ normalisation
def test_official_normalisation_is_bgr_minus_mean_without_std():
    rgb = np.array([[[10, 20, 30], [255, 0, 128]]], dtype=np.uint8)
    out = T.normalize(T.image_to_tensor(rgb), "official")
    expected = np.array([[30, 128], [20, 0], [10, 255]], dtype=np.float64)[:, None, :] - BGR_MEAN[:, None, None]
    assert out.dtype == torch.float32 and out.shape == (3, 1, 2)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)
    assert T.OFFICIAL_MEAN_BGR == (104.00698793, 116.66876762, 122.67891434)


def test_imagenet_normalisation_is_rgb_scaled_with_std():
    rgb = np.array([[[10, 20, 30]]], dtype=np.uint8)
    out = T.normalize(T.image_to_tensor(rgb), "imagenet").numpy()[:, 0, 0]
    expected = (np.array([10, 20, 30]) / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out, expected, atol=1e-5)
    with pytest.raises(ValueError, match="normalize"):
        T.normalize(T.image_to_tensor(rgb), "caffe")


@pytest.mark.parametrize("mode", ["official", "imagenet"])
def test_denormalize_inverts_normalize_exactly(mode):
    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    back = T.denormalize(T.normalize(T.image_to_tensor(rgb), mode), mode)
    assert back.dtype == np.uint8 and np.array_equal(back, rgb)


# ---------------------------------------------------------------------------------------- scaling
def test_official_scales_and_output_size_rounding():
    assert T.OFFICIAL_SCALES == tuple(round(0.5 + r / 10, 1) for r in range(16))
    assert len(T.OFFICIAL_SCALES) == 16 and T.OFFICIAL_SCALES[0] == 0.5 and T.OFFICIAL_SCALES[-1] == 2.0
    assert T.scaled_size(360, 480, 0.7) == (252, 336)
    assert T.scaled_size(24, 32, 0.5) == (12, 16)
    assert T.scaled_size(375, 500, 1.3) == (488, 650)  # 487.5 rounds to the even 488, as cv2 does
    drawn = {T.sample_augmentation(np.random.default_rng(i), 24, 32, (8, 8)).scale for i in range(400)}
    assert drawn == set(T.OFFICIAL_SCALES)


def test_scale_range_draws_continuous_factors_in_range():
    params = [T.sample_augmentation(np.random.default_rng(i), 24, 32, (8, 8), scale_range=(0.75, 1.25))
              for i in range(50)]
    scales = np.array([p.scale for p in params])
    assert scales.min() >= 0.75 and scales.max() <= 1.25 and len(set(scales)) == 50


# --------------------------------------------------------------------------- augmentation invariants
def test_crop_and_flip_move_image_and_label_together_exactly(camvid):
    root, samples = camvid
    ds = CamVid(root, "train", scales=(1.0,), crop_size=(16, 20))
    flips = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.shape == (3, 16, 20) and label.shape == (16, 20)
            _, _, raw = sample_by_path(samples["train"], ds.files[i][0])
            rows, cols = decode_position(ds.denormalize(image))
            assert np.array_equal(rows, np.round(rows)) and np.array_equal(cols, np.round(cols))
            expected = mapped_camvid(raw)[rows.astype(int), cols.astype(int)]
            assert np.array_equal(label.numpy(), expected)
            params = ds.augmentation_params(i, H, W)
            flips.add(params.flip)
            assert (cols[0, 0] > cols[0, -1]) == params.flip  # columns run backwards iff flipped
            assert rows[0, 0] == params.top
    assert flips == {True, False}


def test_scaling_moves_image_and_label_together(camvid):
    root, samples = camvid
    ds = CamVid(root, "train", crop_size=(20, 24))
    seen_scales = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            image, label = ds[i]
            image, label = image.numpy(), label.numpy()
            _, rgb, raw = sample_by_path(samples["train"], ds.files[i][0])
            mapped = mapped_camvid(raw)
            p = ds.augmentation_params(i, H, W)
            seen_scales.add(p.scale)
            sh, sw = p.size
            assert (sh, sw) == (int(np.rint(H * p.scale)), int(np.rint(W * p.scale)))
            ys, xs = np.meshgrid(np.arange(20), np.arange(24), indexing="ij")
            xs_unflipped = 23 - xs if p.flip else xs
            yy, xx = ys + p.top, xs_unflipped + p.left  # position in the scaled, padded image
            inside = (yy < sh) & (xx < sw)
            # padding: image exactly 0 (the mean colour), label ignore
            assert np.all(image[:, ~inside] == 0) and np.all(label[~inside] == -1)
            # inside: bilinear image sample sits where align_corners=False puts it ...
            rows, cols = decode_position(T.denormalize(torch.from_numpy(image), "official"))
            want_r = np.clip((yy + 0.5) * H / sh - 0.5, 0, H - 1)
            want_c = np.clip((xx + 0.5) * W / sw - 0.5, 0, W - 1)
            assert np.abs(rows - want_r)[inside].max() <= 0.07
            assert np.abs(cols - want_c)[inside].max() <= 0.08
            # ... and the label is the nearest source pixel's mapped label (floor(dst * in / out))
            ok = np.zeros_like(inside)
            for dr in (-1e-6, 1e-6):
                for dc in (-1e-6, 1e-6):
                    r = np.clip(np.floor(yy * H / sh + dr), 0, H - 1).astype(int)
                    c = np.clip(np.floor(xx * W / sw + dc), 0, W - 1).astype(int)
                    ok |= label == mapped[r, c]
            assert ok[inside].all()
            assert set(np.unique(label)) <= set(range(-1, 11))
            np.testing.assert_allclose(image[0][inside], rgb[0, 0, 2] - BGR_MEAN[0], atol=1e-4)  # blue plane
            unnormalised = image[:, inside] + BGR_MEAN[:, None]  # resized like cv2 on uint8: integer values
            assert np.abs(unnormalised - np.round(unnormalised)).max() < 1e-3
    assert len(seen_scales) >= 8


def test_padding_to_crop_is_bottom_right_with_zero_and_ignore(camvid):
    root, _ = camvid
    ds = CamVid(root, "train", scales=(0.5,), crop_size=(20, 24), flip=False)
    image, label = ds[0]
    assert image.shape == (3, 20, 24)
    assert torch.all(image[:, 12:, :] == 0) and torch.all(image[:, :, 16:] == 0)
    assert torch.all(label[12:, :] == -1) and torch.all(label[:, 16:] == -1)
    assert (label[:12, :16] >= 0).float().mean() > 0.8  # the 12x16 scaled image sits at the top left
    assert torch.all(image[:, :12, :16] != 0)


def test_default_train_crop_and_augment_flags(camvid):
    root, _ = camvid
    train = CamVid(root, "train")
    assert train.augment and train.crop_size == (360, 360)
    image, label = train[0]
    assert image.shape == (3, 360, 360) and label.shape == (360, 360)
    assert not CamVid(root, "val").augment and not CamVid(root, "test").augment
    assert not CamVid(root, "train", augment=False).augment


# -------------------------------------------------------------------------------------- determinism
def test_same_seed_epoch_index_gives_the_same_sample(camvid):
    root, _ = camvid
    a = CamVid(root, "train", crop_size=(16, 16), seed=3)
    b = CamVid(root, "train", crop_size=(16, 16), seed=3)
    for i in range(len(a)):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
        assert torch.equal(a[i][0], a[i][0])  # no hidden state consumed by __getitem__
    params = lambda ds, i: ds.augmentation_params(i, H, W)  # noqa: E731
    assert len({params(a, i) for i in range(len(a))}) > 1  # different index → different draw
    c = CamVid(root, "train", crop_size=(16, 16), seed=4)
    assert [params(a, i) for i in range(4)] != [params(c, i) for i in range(4)]
    before = [params(a, i) for i in range(4)]
    a.set_epoch(1)
    assert [params(a, i) for i in range(4)] != before
    a.set_epoch(0)
    assert [params(a, i) for i in range(4)] == before


def test_samples_do_not_depend_on_dataloader_workers(camvid):
    root, _ = camvid
    ds = CamVid(root, "train", crop_size=(16, 16), seed=5)
    ds.set_epoch(2)
    serial = [ds[i] for i in range(len(ds))]
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, shuffle=False)
    for (img, lab), (img_s, lab_s) in zip(loader, serial):
        assert torch.equal(img[0], img_s) and torch.equal(lab[0], lab_s)


# ----------------------------------------------------------------------------------- val protocol
def test_val_and_test_keep_full_resolution_and_only_normalise(camvid):
    root, samples = camvid
    for split in ("val", "test"):
        ds = CamVid(root, split)
        image, label = ds[0]
        _, rgb, raw = samples[split][0]
        assert image.shape == (3, H, W) and label.shape == (H, W)
        expected = rgb[..., ::-1].transpose(2, 0, 1).astype(np.float64) - BGR_MEAN[:, None, None]
        np.testing.assert_allclose(image.numpy(), expected, atol=1e-4)
        assert np.array_equal(label.numpy(), mapped_camvid(raw))


def test_imagenet_option_on_a_dataset(camvid):
    root, samples = camvid
    ds = CamVid(root, "val", normalize="imagenet")
    assert ds.channel_order == "RGB" and ds.std == (0.229, 0.224, 0.225)
    image, _ = ds[0]
    assert np.array_equal(ds.denormalize(image), samples["val"][0][1])


# --------------------------------------------------------------------------------- io and palettes
def test_read_label_reads_palette_indices_and_rejects_colour_labels(tmp_path):
    idx = np.array([[0, 1, 2], [255, 20, 3]], dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([200, 10, 10] * 256)  # every index has the same colour: luminance would be constant
    im.save(tmp_path / "p.png")
    assert np.array_equal(T.read_label(tmp_path / "p.png"), idx)
    Image.fromarray(np.dstack([idx, idx, idx])).save(tmp_path / "grey_rgb.png")
    assert np.array_equal(T.read_label(tmp_path / "grey_rgb.png"), idx)
    Image.fromarray(np.dstack([idx, idx * 0, idx])).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match="colour.png"):
        T.read_label(tmp_path / "colour.png")


def test_bit_color_map_is_the_voc_palette_and_colorize_blackens_ignore():
    pal = T.bit_color_map(21)
    assert pal[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert pal[15].tolist() == [192, 128, 128]  # person
    assert pal[20].tolist() == [0, 64, 128]  # tvmonitor
    label = np.array([[0, 1, -1], [20, 21, 5]])
    rgb = T.colorize(label, pal)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[0, 1].tolist() == [128, 0, 0] and rgb[0, 2].tolist() == [0, 0, 0] and rgb[1, 1].tolist() == [0, 0, 0]
    assert np.array_equal(T.colorize(torch.from_numpy(label), pal), rgb)


def test_apply_lut_passes_values_outside_the_table_through():
    lut = T.make_lut({3: -1, 4: 0}, size=8)
    raw = np.array([[0, 3, 4], [7, 9, 300]])
    assert T.apply_lut(raw, lut).tolist() == [[0, -1, 0], [7, 9, 300]]


# -------------------------------------------------------------------------------- verify / registry
def test_verify_counts_and_collects_problems_without_raising(tmp_path):
    write_camvid(tmp_path, counts={"train": 3})
    bad = tmp_path / "trainannot" / sorted(p.name for p in (tmp_path / "trainannot").iterdir())[1]
    arr = np.array(Image.open(bad))
    arr[0, :3] = [12, 40, 12]
    Image.fromarray(arr).save(bad)
    ds = CamVid(tmp_path, "train")
    report = verify(ds)
    assert report["num_samples"] == report["num_checked"] == 3 and report["num_labelled"] == 2
    assert not report["ok"] and len(report["problems"]) == 1
    assert bad.name in report["problems"][0] and "12" in report["problems"][0] and "40" in report["problems"][0]
    raws = [np.array(Image.open(p)).astype(np.int64) for p, _ in [(f[1], 0) for f in ds.files]]
    good = [mapped_camvid(r) for r in raws if r.max() <= 11]
    expected = np.bincount(np.concatenate([g[g >= 0] for g in good]), minlength=11)
    assert report["class_pixels"] == expected.tolist()
    assert report["ignore_pixels"] == sum(int((g == -1).sum()) for g in good)
    assert report["label_histogram"]["Sky"] == expected[0]
    assert report["image_sizes"] == {f"{H}x{W}": 3}
    assert sum(report["raw_value_histogram"].values()) == 3 * H * W


def test_registry_and_build_dataset(camvid):
    root, _ = camvid
    assert {"cityscapes", "voc", "camvid", "ade20k", "coco_stuff_164k"} <= set(DATASETS.names())
    ds = build_dataset("camvid", root, "val", max_samples=1)
    assert isinstance(ds, CamVid) and len(ds) == 1 and ds.split == "val"
    with pytest.raises(KeyError, match="camvid"):
        build_dataset("camvidd", root, "val")
    with pytest.raises(ValueError, match="unknown split"):
        CamVid(root, "training")


def test_torchvision_crop_pad_flip_equal_plain_indexing():
    """crop / pad / flip go through torchvision; they must equal the index operations they stand for, bit for bit
    (the proxy study's numbers depend on it)."""
    import torch

    from kdlib.data import transforms as T

    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 7, 9), generator=gen).float()
    label = torch.randint(-1, 11, (7, 9), generator=gen)
    img, lab = T.crop_pair(image, label, 2, 3, 4, 5)
    assert torch.equal(img, image[:, 2:6, 3:8]) and torch.equal(lab, label[2:6, 3:8])
    img, lab = T.hflip_pair(image, label)
    assert torch.equal(img, image[:, :, torch.arange(8, -1, -1)]) and torch.equal(lab, label[:, torch.arange(8, -1, -1)])
    img, lab = T.pad_pair(image, label, 10, 12, ignore_index=-1)
    assert img.shape == (3, 10, 12) and torch.equal(img[:, :7, :9], image) and (img[:, 7:] == 0).all()
    assert (img[:, :, 9:] == 0).all() and torch.equal(lab[:7, :9], label) and (lab[7:] == -1).all()
    assert (lab[:, 9:] == -1).all() and lab.dtype == label.dtype and img.dtype == image.dtype
