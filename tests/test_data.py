"""Tests for ddnn_tf.data: the four loaders, the Split/Dataset types and their errors."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ddnn_tf.data import (
    DATASETS,
    FMNIST_CLASSES,
    Dataset,
    Split,
    fmnist6_merge_views,
    fmnist6_views,
    load_dataset,
)
from ddnn_tf.data import fmnist6 as fm
from ddnn_tf.data.mvmc import load_mvmc_split_permutation
from ddnn_tf.data.splits import stratified_pick
from ddnn_tf.errors import FormatError

REAL_FMNIST = Path(fm.SYSTEM_DIR)
HAVE_REAL_FMNIST = all((REAL_FMNIST / f"{s}.gz").is_file() for s in fm.FILES.values())
needs_real_fmnist = pytest.mark.skipif(
    not HAVE_REAL_FMNIST,
    reason=f"Fashion-MNIST IDX files not in {fm.SYSTEM_DIR} "
    "(apt-get install -y dataset-fashion-mnist)",
)


# --------------------------------------------------------------------------- helpers


def _write_idx(path: Path, array: np.ndarray) -> None:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def _fake_fmnist_dir(directory: Path, *, gz: bool = True, n_train=40, n_test=20) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": np.arange(n_test) % 10,
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in fm.FILES.items():
        _write_idx(directory / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


def _fake_mvmc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (851, 6, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 4, (851, 6))
    y[:, 0] = rng.integers(0, 3, 851)  # every sample seen by camera 0 at least
    np.savez(path, X=x, y=y)
    return x, y


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _good_npz_arrays(n: int = 50) -> dict:
    rng = np.random.default_rng(2)
    return {
        "x0": rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
        "x1": rng.normal(size=(n, 5)).astype(np.float64),
        "x2": rng.random((n, 6, 6)).astype(np.float32),
        "y": np.arange(n) % 3,
    }


# --------------------------------------------------------------------------- types


def test_split_subset_and_equality():
    x = (np.arange(10, dtype=np.float32)[:, None], np.zeros((10, 2, 2, 1)))
    s = Split(x=x, y=np.arange(10) % 2, present=np.ones((10, 2), bool))
    assert s.x[1].dtype == np.float32 and s.y.dtype == np.int64
    assert len(s) == 10 and s.num_devices == 2
    assert s.subset(slice(2, 5)).x[0][:, 0].tolist() == [2, 3, 4]
    assert s.subset(np.array([7, 1])).y.tolist() == [1, 1]
    mask = np.arange(10) >= 8
    assert s.subset(mask).x[0][:, 0].tolist() == [8, 9]
    assert s.subset(np.array([], dtype=np.int64)).x[1].shape == (0, 2, 2, 1)
    assert s == s.subset(slice(None))
    assert s != s.subset(slice(0, 9))
    with pytest.raises(ValueError, match="boolean mask of shape"):
        s.subset(np.ones(3, bool))


def test_split_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match=r"x\[1\]"):
        Split(x=(np.zeros((4, 1)), np.zeros((3, 1))), y=np.zeros(4, int), present=np.ones((4, 2)))
    with pytest.raises(ValueError, match="present"):
        Split(x=(np.zeros((4, 1)),), y=np.zeros(4, int), present=np.ones((4, 2)))
    with pytest.raises(ValueError, match="integer labels"):
        Split(x=(np.zeros((4, 1)),), y=np.zeros(4), present=np.ones((4, 1)))


def test_stratified_pick_is_exact_and_stratified():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    picked = stratified_pick(y, 0.1, np.random.default_rng(0))
    assert len(picked) == 20 and len(np.unique(picked)) == 20
    assert np.bincount(y[picked], minlength=4).tolist() == [10, 5, 3, 2]
    again = stratified_pick(y, 0.1, np.random.default_rng(0))
    other = stratified_pick(y, 0.1, np.random.default_rng(1))
    assert np.array_equal(picked, again) and not np.array_equal(picked, other)
    assert len(stratified_pick(y, 0.0, np.random.default_rng(0))) == 0


# --------------------------------------------------------------------------- fmnist6


@pytest.fixture(scope="module")
def fmnist():
    if not HAVE_REAL_FMNIST:
        pytest.skip(f"Fashion-MNIST IDX files not in {fm.SYSTEM_DIR}")
    return load_dataset("fmnist6")


@needs_real_fmnist
def test_fmnist6_real_shapes_sizes_and_ranges(fmnist):
    ds = fmnist
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54000, 6000, 10000)
    assert ds.input_shapes == ((10, 14, 1),) * 6
    assert ds.classes == FMNIST_CLASSES and ds.num_classes == 10
    assert ds.device_names[:2] == ("top-left", "top-right") and len(ds.device_names) == 6
    assert ds.raw_bytes_per_device == (140,) * 6 and sum(ds.raw_bytes_per_device) == 840
    assert ds.input_scale == pytest.approx(1 / 255)
    for split in (ds.train, ds.val, ds.test):
        assert split.present.all() and split.present.shape == (len(split), 6)
        for view in split.x:
            assert view.dtype == np.float32 and 0.0 <= view.min() and view.max() <= 1.0
    assert np.bincount(ds.val.y).tolist() == [600] * 10  # stratified 10 %
    assert ds.test.y[:5].tolist() == [9, 2, 1, 1, 6]  # official t10k order


@needs_real_fmnist
def test_fmnist6_views_reassemble_to_the_original_images(fmnist):
    ds = fmnist
    raw = fm.read_idx(REAL_FMNIST / "t10k-images-idx3-ubyte.gz")
    merged = fmnist6_merge_views(ds.test.x)
    np.testing.assert_array_equal(np.rint(merged * 255).astype(np.uint8), raw)
    # Padding: first row of top patches and last row of bottom patches are zero.
    assert not ds.test.x[0][:, 0].any() and not ds.test.x[1][:, 0].any()
    assert not ds.test.x[4][:, -1].any() and not ds.test.x[5][:, -1].any()
    # Device index = row * 2 + col: the top-right patch holds image rows 0..8, cols 14..27.
    np.testing.assert_array_equal(
        np.rint(ds.test.x[1][:, 1:, :, 0] * 255).astype(np.uint8), raw[:, 0:9, 14:28]
    )


@needs_real_fmnist
def test_fmnist6_val_rows_come_from_train_not_test(fmnist):
    ds = fmnist
    arrays = fm.load_fmnist6_arrays()
    train_rows = {row.tobytes() for row in arrays.x_train[:, :, :]}
    val_images = np.rint(fmnist6_merge_views(ds.val.x[:]) * 255).astype(np.uint8)
    assert all(img.tobytes() in train_rows for img in val_images[:500])
    assert len(ds.train) + len(ds.val) == len(arrays.x_train)


def test_fmnist6_from_fake_dir_gz_and_plain(tmp_path):
    for gz in (True, False):
        directory = tmp_path / f"gz{gz}"
        arrays = _fake_fmnist_dir(directory, gz=gz)
        ds = load_dataset("fmnist6", str(directory), val_fraction=0.25, seed=3)
        assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 20)
        np.testing.assert_array_equal(
            np.rint(fmnist6_merge_views(ds.test.x) * 255).astype(np.uint8),
            arrays["test_images"],
        )
        assert ds.spec["path"] == str(directory.resolve())
        assert load_dataset(**ds.spec) == ds


def test_fmnist6_named_path_missing_file_raises(tmp_path):
    _fake_fmnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fmnist6", str(tmp_path))
    assert str(tmp_path) in str(info.value) and "t10k-labels-idx1-ubyte" in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("fmnist6", str(tmp_path / "nowhere"))


def test_fmnist6_corrupt_idx_raises_naming_the_file(tmp_path):
    _fake_fmnist_dir(tmp_path)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x99\x01garbage"))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):
        load_dataset("fmnist6", str(tmp_path))
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        fm.read_idx(bad)
    truncated = tmp_path / "short-idx1-ubyte"
    truncated.write_bytes(bytes([0, 0, 8, 1]) + np.asarray([10], ">u4").tobytes() + b"abc")
    with pytest.raises(ValueError, match="short-idx1-ubyte"):
        fm.read_idx(truncated)


def test_fmnist6_no_source_error_names_every_option(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(fm, "_keras_cache_dirs", lambda: [tmp_path / "keras"])

    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(fm, "_download", offline)
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fmnist6")
    message = str(info.value)
    for needle in (
        "`path`=DIR",
        "apt-get install -y dataset-fashion-mnist",
        "/usr/share/datasets/fashion-mnist",
        str(tmp_path / "keras"),
        "network unreachable",
    ):
        assert needle in message


def test_fmnist6_search_order_uses_keras_cache(tmp_path, monkeypatch):
    cache = tmp_path / "keras" / "datasets" / "fashion-mnist"
    arrays = _fake_fmnist_dir(cache)
    monkeypatch.setattr(fm, "SYSTEM_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(fm, "_keras_cache_dirs", lambda: [cache])
    ds = load_dataset("fmnist6", val_fraction=0.0)
    assert len(ds.train) == len(arrays["train_labels"]) and ds.spec["path"] is None


def test_fmnist6_views_function_roundtrip():
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    views = fmnist6_views(images)
    assert len(views) == 6 and all(v.shape == (3, 10, 14, 1) for v in views)
    np.testing.assert_array_equal(np.rint(fmnist6_merge_views(views) * 255), images)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        fmnist6_views(np.zeros((3, 28, 27)))


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_seed_dependent():
    a = load_dataset("synthetic", seed=5)
    b = load_dataset("synthetic", seed=5)
    c = load_dataset("synthetic", seed=6)
    assert a == b
    assert not np.array_equal(a.train.x[0], c.train.x[0])


def test_synthetic_defaults_shapes_and_presence():
    ds = load_dataset("synthetic")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (864, 96, 240)
    assert ds.input_shapes == ((10, 14, 1),) * 6
    assert ds.classes == ("bar", "column", "blob")
    assert ds.raw_bytes_per_device == (140,) * 6
    assert ds.input_scale == pytest.approx(1 / 255)
    for split in (ds.train, ds.val, ds.test):
        assert split.present.any(axis=1).all()  # every sample seen by some camera
        for view in split.x:
            assert view.dtype == np.float32 and view.min() >= 0 and view.max() <= 1
    absent_share = 1 - ds.train.present.mean()
    assert 0.05 < absent_share < 0.15
    assert set(np.unique(ds.train.y)) == {0, 1, 2}
    # Views the camera does not see are grey noise (mean near 0.5); seen views are dark
    # background with a bright object.
    x0, p0 = ds.train.x[0], ds.train.present[:, 0]
    assert abs(x0[~p0].mean() - 0.5) < 0.05 and x0[p0].mean() < 0.35


def test_synthetic_classes_are_separable_by_a_template_match():
    # Nearest class-mean on the cleanest camera beats chance by a wide margin.
    ds = load_dataset("synthetic", n_samples=2000, absent_prob=0.0)
    x_tr = ds.train.x[0].reshape(len(ds.train), -1)
    x_te = ds.test.x[0].reshape(len(ds.test), -1)
    means = np.stack([x_tr[ds.train.y == k].mean(0) for k in range(3)])
    pred = np.argmin(((x_te[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == ds.test.y).mean() > 0.6


def test_synthetic_options():
    ds = load_dataset(
        "synthetic",
        n_samples=3000,
        num_devices=4,
        num_classes=5,
        image_size=(12, 16),
        channels=3,
        absent_prob=0.3,
        noise=0.05,
    )
    assert ds.input_shapes == ((12, 16, 3),) * 4 and ds.num_classes == 5
    assert ds.raw_bytes_per_device == (12 * 16 * 3,) * 4
    assert ds.device_names == ("camera0", "camera1", "camera2", "camera3")
    assert ds.spec["image_size"] == [12, 16] and json.loads(json.dumps(ds.spec)) == ds.spec
    with pytest.raises(ValueError, match="'colour'"):
        load_dataset("synthetic", colour=True)
    with pytest.raises(ValueError, match="num_classes"):
        load_dataset("synthetic", num_classes=99)
    with pytest.raises(ValueError, match="absent_prob"):
        load_dataset("synthetic", absent_prob=1.0)
    with pytest.raises(ValueError, match="takes no path"):
        load_dataset("synthetic", "/tmp")


# --------------------------------------------------------------------------- mvmc


def test_mvmc_split_labels_and_presence(tmp_path):
    x, y = _fake_mvmc(tmp_path / "MVMC.npz")
    ds = load_dataset("mvmc", str(tmp_path / "MVMC.npz"), val_fraction=0.1)
    perm, n_train = load_mvmc_split_permutation()
    assert n_train == 680 and len(perm) == 851
    assert (len(ds.train) + len(ds.val), len(ds.test)) == (680, 171)
    assert (len(ds.train), len(ds.val)) == (612, 68)
    assert ds.input_shapes == ((32, 32, 3),) * 6 and ds.raw_bytes_per_device == (3072,) * 6
    assert ds.classes == ("car", "bus", "person")
    test_idx = perm[680:]
    expected_y = np.where(y == 3, -1, y).max(axis=1)
    np.testing.assert_array_equal(ds.test.y, expected_y[test_idx])
    np.testing.assert_array_equal(ds.test.present, y[test_idx] != 3)
    np.testing.assert_allclose(
        ds.test.x[2][5], x[test_idx[5], 2].transpose(1, 2, 0) / 255.0, atol=1e-6
    )
    # Val and train together are exactly the first 680 entries of the permutation.
    full = Split(
        x=tuple(np.moveaxis(x[:, d], 1, -1) / 255.0 for d in range(6)),
        y=expected_y,
        present=y != 3,
    ).subset(perm[:680])
    val_rows = {v.tobytes() for v in (ds.val.x[0] * 255).round().astype(np.uint8)}
    train_rows = {v.tobytes() for v in (ds.train.x[0] * 255).round().astype(np.uint8)}
    all_rows = {v.tobytes() for v in (full.x[0] * 255).round().astype(np.uint8)}
    assert val_rows | train_rows == all_rows and not val_rows & train_rows


def test_mvmc_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="user supplied"):
        load_dataset("mvmc")
    with pytest.raises(FileNotFoundError, match="user supplied"):
        load_dataset("mvmc", str(tmp_path / "MVMC.npz"))
    np.savez(tmp_path / "small.npz", X=np.zeros((10, 6, 3, 32, 32), np.uint8), y=np.zeros((10, 6)))
    with pytest.raises(ValueError, match=r"\(851, 6, 3, 32, 32\)"):
        load_dataset("mvmc", str(tmp_path / "small.npz"))
    np.savez(tmp_path / "noy.npz", X=np.zeros((851, 6, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="'y'"):
        load_dataset("mvmc", str(tmp_path / "noy.npz"))
    np.savez(
        tmp_path / "absent.npz",
        X=np.zeros((851, 6, 3, 32, 32), np.uint8),
        y=np.full((851, 6), 3),
    )
    with pytest.raises(ValueError, match="at least one camera"):
        load_dataset("mvmc", str(tmp_path / "absent.npz"))
    _fake_mvmc(tmp_path / "MVMC.npz")
    with pytest.raises(ValueError, match="'augment'"):
        load_dataset("mvmc", str(tmp_path / "MVMC.npz"), augment=True)


# --------------------------------------------------------------------------- npz


def test_npz_heterogeneous_devices(tmp_path):
    arrays = _good_npz_arrays()
    path = _npz(tmp_path / "mine.npz", **arrays)
    ds = load_dataset("npz", str(path))
    assert ds.input_shapes == ((8, 8, 3), (5,), (6, 6, 1))
    assert ds.raw_bytes_per_device == (8 * 8 * 3, 5 * 8, 6 * 6 * 4)
    assert ds.input_scale is None  # mixed dtypes: no single scale
    assert ds.classes == ("0", "1", "2") and ds.device_names == ("device0", "device1", "device2")
    assert len(ds.train) + len(ds.val) == 40 and len(ds.test) == 10
    assert sorted(np.bincount(ds.test.y).tolist()) == [3, 3, 4]  # stratified
    assert all(a.dtype == np.float32 for a in ds.train.x) and ds.train.present.all()
    assert ds.train.x[0].max() <= 1.0  # uint8 device scaled by 1/255


def test_npz_optional_keys(tmp_path):
    n = 20
    present = np.ones((n, 2), bool)
    present[::4, 1] = False
    split = (np.arange(n) >= 15).astype(np.int64)
    path = _npz(
        tmp_path / "opt.npz",
        x0=np.arange(n, dtype=np.uint8)[:, None],
        x1=np.zeros((n, 3, 3, 1), np.uint8),
        y=np.arange(n) % 2,
        present=present,
        split=split,
        classes=np.array(["off", "on", "spare"]),
        device_names=np.array(["lidar", "cam"]),
    )
    ds = load_dataset("npz", str(path), val_fraction=0.2)
    assert ds.classes == ("off", "on", "spare") and ds.device_names == ("lidar", "cam")
    assert ds.input_scale == pytest.approx(1 / 255)  # every device uint8
    ids_test = np.rint(ds.test.x[0][:, 0] * 255).astype(int)
    assert ids_test.tolist() == [15, 16, 17, 18, 19]
    ids_train = np.rint(ds.train.x[0][:, 0] * 255).astype(int)
    ids_val = np.rint(ds.val.x[0][:, 0] * 255).astype(int)
    assert len(ids_val) == 3 and sorted({*ids_train, *ids_val}) == list(range(15))
    np.testing.assert_array_equal(ds.train.present[:, 1], ids_train % 4 != 0)


def test_val_and_test_are_disjoint_by_construction(tmp_path):
    n = 300
    path = _npz(
        tmp_path / "ids.npz", x0=np.arange(n, dtype=np.float64)[:, None], y=np.arange(n) % 3
    )
    ds = load_dataset("npz", str(path), val_fraction=0.1, seed=7)
    ids = [set(np.asarray(s.x[0][:, 0], int).tolist()) for s in (ds.train, ds.val, ds.test)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert set.union(*ids) == set(range(n))
    assert (len(ids[0]), len(ids[1]), len(ids[2])) == (216, 24, 60)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda a: a.pop("x0"), "x0"),
        (lambda a: a.pop("y"), "y"),
        (lambda a: a.update(x1=a["x1"][:-1]), "x1"),
        (lambda a: a.update(y=a["y"] - 1), "y"),
        (lambda a: a.update(y=a["y"] + 0.5), "y"),
        (lambda a: a.update(present=np.ones((50, 2), bool)), "present"),
        (lambda a: a.update(present=np.ones((49, 3), bool)), "present"),
        (lambda a: a.update(x3=a.pop("x2")), "x2"),  # x0, x1, x3: gap at x2
        (lambda a: a.update(x1=np.where(np.arange(5) == 2, np.nan, a["x1"])), "x1"),
        (lambda a: a.update(split=np.full(50, 2)), "split"),
        (lambda a: a.update(labels=a["y"]), "labels"),
        (lambda a: a.update(device_names=np.array(["a", "b"])), "device_names"),
        (lambda a: a.update(classes=np.array(["a"])), "classes"),
    ],
    ids=[
        "no-x0",
        "no-y",
        "length",
        "negative-y",
        "float-y",
        "present-cols",
        "present-rows",
        "gap",
        "nan",
        "split-values",
        "unknown-key",
        "device-names",
        "classes",
    ],
)
def test_npz_rejections_name_the_key(tmp_path, change, key):
    arrays = _good_npz_arrays()
    change(arrays)
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError) as info:
        load_dataset("npz", str(path))
    assert f"'{key}'" in str(info.value) and str(path) in str(info.value)


def test_npz_missing_file_and_bad_archive(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("npz", str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match="path"):
        load_dataset("npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.npz"):
        load_dataset("npz", str(tmp_path / "junk.npz"))
    with pytest.raises(ValueError, match="'test_size'"):
        load_dataset("npz", str(_npz(tmp_path / "ok.npz", **_good_npz_arrays())), test_size=0.3)


def _broken_archive(path: Path, arrays: dict, how: str) -> Path:
    """``arrays`` as an .npz whose first member is broken ``how``."""
    key = next(iter(arrays))
    if how == "object-array":
        np.savez(path, **{**arrays, key: np.array([None, 1], dtype=object)})
        return path
    members = {}
    for k, a in arrays.items():
        buf = io.BytesIO()
        np.save(buf, a)
        members[k] = buf.getvalue()
    members[key] = {"not-npy": b"junk", "bad-header": b"\x93NUMPY\x01\x00junk"}.get(
        how, members[key]
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, data in members.items():
            z.writestr(f"{k}.npy", data)
    if how == "corrupt-deflate":  # garbage where the first member's compressed data starts
        data = bytearray(path.read_bytes())
        start = 30 + len(f"{key}.npy")
        data[start : start + 64] = b"\xff" * 64
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["object-array", "not-npy", "bad-header", "corrupt-deflate"])
@pytest.mark.parametrize("name", ["mvmc", "npz"])
def test_unreadable_archive_members_name_the_key_and_file(tmp_path, name, how):
    """Object arrays, corrupt and non-array members: one FormatError, not numpy's ValueError,
    zlib's error or an AttributeError further on."""
    if name == "mvmc":
        arrays = {"X": np.zeros((851, 6, 3, 32, 32), np.uint8), "y": np.zeros((851, 6), int)}
    else:
        arrays = _good_npz_arrays()
    path = _broken_archive(tmp_path / "broken.npz", arrays, how)
    key = next(iter(arrays))
    with pytest.raises(FormatError, match=f"Cannot read key '{key}' in {path}"):
        load_dataset(name, str(path))


# --------------------------------------------------------------------------- load_dataset


def test_spec_round_trip_through_json(tmp_path):
    path = _npz(tmp_path / "rt.npz", **_good_npz_arrays())
    _fake_mvmc(tmp_path / "MVMC.npz")
    for ds in (
        load_dataset("synthetic", seed=2, n_samples=300, noise=0.2, train_limit=50),
        load_dataset("npz", str(path), seed=4, val_fraction=0.2, test_fraction=0.3),
        load_dataset("mvmc", str(tmp_path / "MVMC.npz"), test_limit=20),
    ):
        spec = json.loads(json.dumps(ds.spec))
        assert spec["name"] == ds.name and Path(spec["path"] or "/").is_absolute()
        assert load_dataset(**spec) == ds
    assert isinstance(ds, Dataset)


def test_spec_round_trip_changes_with_seed():
    ds = load_dataset("synthetic", n_samples=200)
    other = load_dataset(**{**ds.spec, "seed": 1})
    assert other != ds and other.spec["seed"] == 1


def test_train_and_test_limits_keep_the_first_samples():
    full = load_dataset("synthetic", n_samples=400)
    small = load_dataset("synthetic", n_samples=400, train_limit=30, test_limit=7)
    assert (len(small.train), len(small.val), len(small.test)) == (30, len(full.val), 7)
    assert small.train == full.train.subset(slice(0, 30))
    assert small.test == full.test.subset(slice(0, 7))
    assert small.val == full.val
    big = load_dataset("synthetic", n_samples=400, train_limit=10_000)
    assert len(big.train) == len(full.train)
    with pytest.raises(ValueError, match="train_limit"):
        load_dataset("synthetic", train_limit=0)


def test_bad_names_and_arguments():
    with pytest.raises(ValueError) as info:
        load_dataset("cifar10")
    assert "'cifar10'" in str(info.value)
    assert all(name in str(info.value) for name in DATASETS)
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("synthetic", val_fraction=1.0)
    with pytest.raises(ValueError, match="seed"):
        load_dataset("synthetic", seed=-1)
    with pytest.raises(ValueError, match="'flip'"):
        load_dataset("fmnist6", flip=True)
