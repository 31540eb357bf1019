"""Validation outliers without real OOD data: pixel-space generators and corruptions of ID images."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

from skdice.extract.data import (  # noqa: E402
    CORRUPTION_KINDS,
    MAX_GENERATED_ROWS,
    SYNTHETIC_KINDS,
    ArraySource,
    CorruptedSource,
    NoiseSource,
    SyntheticImageSource,
    open_source,
)
from skdice.extract.transforms import CenterCrop, Compose, ConvertRGB, Normalize, Resize, ToTensor  # noqa: E402

SIZE = (3, 16, 16)
SYNTHETIC = sorted(SYNTHETIC_KINDS)
SEEDED_CORRUPTIONS = ("jigsaw", "permute")


def _images(n=6, height=16, width=16, seed=0):
    """Random uint8 RGB images: detail at every scale, down to single pixels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)


def _npz(tmp_path, images, name="id.npz"):
    path = tmp_path / name
    np.savez(path, images=images, labels=np.arange(len(images)) % 3)
    return path


def _png_folder(root, images):
    for i, img in enumerate(images):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"c{i % 2}" / f"{i:03d}.png")
    return root


def _all_bytes(src, n=None):
    return b"".join(src.image(i).tobytes() for i in range(n or len(src)))


# ---------------------------------------------------------------- determinism, shape, labels


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_synthetic_rows_are_deterministic_given_the_seed(kind):
    a, b = open_source(f"{kind}:5:3", SIZE), open_source(f"{kind}:5:3", SIZE)
    other = open_source(f"{kind}:5:4", SIZE)
    assert _all_bytes(a) == _all_bytes(b)
    assert _all_bytes(a) != _all_bytes(other)
    torch.testing.assert_close(a[2][0], b[2][0], rtol=0, atol=0)
    # a row does not depend on which rows were drawn before it (resume, workers)
    assert a.image(4).tobytes() == open_source(f"{kind}:5:3", SIZE).image(4).tobytes()
    assert a.image(0).tobytes() != a.image(1).tobytes()


@pytest.mark.parametrize("kind", SEEDED_CORRUPTIONS)
def test_seeded_corruptions_are_deterministic_given_the_seed(tmp_path, kind):
    path = _npz(tmp_path, _images())
    a = open_source(f"{kind}[seed=1]:{path}", SIZE)
    b = open_source(f"{kind}[seed=1]:{path}", SIZE)
    other = open_source(f"{kind}[seed=2]:{path}", SIZE)
    assert _all_bytes(a) == _all_bytes(b) and _all_bytes(a) != _all_bytes(other)


def test_blur_is_deterministic(tmp_path):
    path = _npz(tmp_path, _images())
    assert _all_bytes(open_source(f"blur:{path}", SIZE)) == _all_bytes(open_source(f"blur:{path}", SIZE))


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_synthetic_rows_are_uint8_images_of_the_input_size_labelled_minus_one(kind):
    src = open_source(f"{kind}:4:1", (3, 12, 20))
    image = src.image(3)
    assert image.shape == (12, 20, 3) and image.dtype == np.uint8
    x, label, path = src[3]
    assert x.shape == (3, 12, 20) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0  # default preprocessing: ToTensor only
    assert label == -1 and path == f"{src.description}#3"
    np.testing.assert_array_equal(src.labels(), [-1, -1, -1, -1])
    assert src.description.startswith(kind) and src.description.endswith(":4:1")


def test_descriptions_spell_out_every_parameter():
    assert open_source("gaussian:10", SIZE).description == "gaussian[sigma=0.25]:10:0"
    assert open_source("gaussian[sigma=1]:10:2", SIZE).description == "gaussian[sigma=1]:10:2"
    assert open_source("blobs:3", SIZE).description == "blobs[sigma=1.5]:3:0"
    assert open_source("uniform:3:9", SIZE).description == "uniform:3:9"
    assert open_source("rademacher:3", SIZE).description == "rademacher:3:0"
    assert open_source("jigsaw[seed=5]:uniform:3", SIZE).description == "jigsaw[grid=4,seed=5]:uniform:3:0"
    assert open_source("blur[sigma=2.5]:uniform:3", SIZE).description == "blur[sigma=2.5]:uniform:3:0"


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_synthetic_images_go_through_the_models_preprocessing_like_real_images(kind):
    from skdice.extract.models.densenet import CIFAR_MEAN, CIFAR_STD

    preprocess = Compose([ConvertRGB(), Resize(32), CenterCrop(32), ToTensor(), Normalize(CIFAR_MEAN, CIFAR_STD)])
    src = open_source(f"{kind}:3:0", (3, 32, 32), preprocess)
    images = np.stack([src.image(i) for i in range(3)])
    real = ArraySource(images, preprocess=preprocess)  # the same pixels as an image array
    for i in range(3):
        torch.testing.assert_close(src[i][0], real[i][0], rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(CORRUPTION_KINDS))
def test_corruptions_keep_the_sources_size_and_label_rows_minus_one(tmp_path, kind):
    folder = _png_folder(tmp_path / "imgs", _images(4, height=20, width=28))
    preprocess = Compose([ConvertRGB(), Resize(16), CenterCrop(16), ToTensor()])
    src = open_source(f"{kind}:{folder}", SIZE, preprocess)
    assert isinstance(src, CorruptedSource) and len(src) == 4
    image = src.image(1)
    assert image.shape == (20, 28, 3) and image.dtype == np.uint8
    x, label, path = src[1]
    assert x.shape == (3, 16, 16)
    torch.testing.assert_close(x, preprocess(Image.fromarray(image)), rtol=0, atol=0)
    prefix = src.description.split(":folder:")[0]
    assert label == -1 and path == f"{prefix}:c0/002.png"  # c0 holds 000 and 002
    np.testing.assert_array_equal(src.labels(), [-1] * 4)
    assert not hasattr(src, "classes")


def test_corruptions_compose_and_survive_limit(tmp_path):
    path = _npz(tmp_path, _images())
    nested = open_source(f"blur[sigma=2]:jigsaw[grid=2,seed=1]:{path}", SIZE)
    inner = open_source(f"jigsaw[grid=2,seed=1]:{path}", SIZE)
    expected = CorruptedSource(ArraySource(inner.image(3)[None]), "blur", sigma=2).image(0)
    np.testing.assert_array_equal(nested.image(3), expected)
    limited = nested.limit(2)
    assert len(limited) == 2 and limited.provides_images
    np.testing.assert_array_equal(limited.image(1), nested.image(1))


def test_corruptions_work_on_cifar_batches(tmp_path):
    import pickle

    images = _images(3, 32, 32)
    raw = images.transpose(0, 3, 1, 2).reshape(3, -1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": raw, b"labels": [0, 1, 2]}, f, protocol=2)
    (folder / "batches.meta").write_bytes(b"")
    src = open_source(f"permute:{folder}", (3, 32, 32))
    assert len(src) == 3 and src.description.startswith("permute[seed=0]:cifar:")
    assert sorted(map(tuple, src.image(2).reshape(-1, 3))) == sorted(map(tuple, images[2].reshape(-1, 3)))


# ---------------------------------------------------------------- lazy generation and counts


@pytest.mark.parametrize("kind", [*SYNTHETIC, "noise"])
def test_the_largest_count_is_lazy(kind):
    src = open_source(f"{kind}:{MAX_GENERATED_ROWS}:1", SIZE)
    assert len(src) == MAX_GENERATED_ROWS
    assert src[MAX_GENERATED_ROWS - 1][2].endswith(f"#{MAX_GENERATED_ROWS - 1}")
    assert src[-1][2] == src[MAX_GENERATED_ROWS - 1][2]


@pytest.mark.parametrize("kind", [*SYNTHETIC, "noise"])
def test_an_absurd_count_is_refused_before_anything_is_drawn(kind):
    spec = f"{kind}:{MAX_GENERATED_ROWS + 1}"
    message = rf"'{kind}:10000001' asks for 10000001 rows; a generated source holds at most 10000000"
    with pytest.raises(ValueError, match=message):
        open_source(spec, SIZE)


def test_constructors_refuse_absurd_counts_and_negative_seeds():
    with pytest.raises(ValueError, match="gaussian needs a row count from 0 to 10000000, got 10000001"):
        SyntheticImageSource("gaussian", MAX_GENERATED_ROWS + 1, (8, 8))
    with pytest.raises(ValueError, match="noise needs a row count from 0 to 10000000, got -1"):
        NoiseSource(-1, SIZE)
    with pytest.raises(ValueError, match="uniform needs a seed >= 0, got -2"):
        SyntheticImageSource("uniform", 3, (8, 8), seed=-2)


# ---------------------------------------------------------------- the documented statistics


def _pixels(spec, n=40, size=(3, 32, 32)):
    src = open_source(spec, size)
    return np.stack([src.image(i) for i in range(n)]).astype(np.float64) / 255.0


def test_gaussian_is_clipped_normal_around_one_half_with_the_given_sigma():
    narrow = _pixels("gaussian[sigma=0.1]:40:0")
    assert abs(narrow.mean() - 0.5) < 0.005 and abs(narrow.std() - 0.1) < 0.005
    default = _pixels("gaussian:40:0")
    assert abs(default.mean() - 0.5) < 0.01
    assert abs(np.mean((default == 0) | (default == 1)) - 0.0455) < 0.01  # P(|Z| > 2) at sigma 0.25
    wide = _pixels("gaussian[sigma=1]:40:0")
    assert abs(np.mean((wide == 0) | (wide == 1)) - 0.617) < 0.02  # P(|Z| > 0.5) at sigma 1


def test_gaussian_rows_follow_the_documented_formula():
    src = open_source("gaussian[sigma=0.3]:5:7", SIZE)
    rng = np.random.default_rng([7, 4])
    expected = np.round(np.clip(rng.normal(0.5, 0.3, size=(16, 16, 3)), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(src.image(4), expected)


def test_uniform_covers_every_level_with_mean_one_half():
    pixels = _pixels("uniform:40:0")
    assert abs(pixels.mean() - 0.5) < 0.01
    assert abs(pixels.std() - np.sqrt((256**2 - 1) / 12) / 255) < 0.005
    assert len(np.unique(pixels)) == 256


def test_rademacher_pixels_are_only_zero_or_one_before_preprocessing():
    pixels = _pixels("rademacher:40:0")
    assert set(np.unique(pixels).tolist()) == {0.0, 1.0}
    assert abs(pixels.mean() - 0.5) < 0.01


def test_blobs_follow_outlier_exposures_recipe():
    src = open_source("blobs:4:2", (3, 32, 32))
    rng = np.random.default_rng([2, 3])
    ref = ndimage.gaussian_filter(rng.binomial(1, 0.7, size=(32, 32, 3)).astype(float), 1.5, mode="nearest")
    ref[ref < 0.75] = 0
    np.testing.assert_array_equal(src.image(3), np.round(ref * 255).astype(np.uint8))
    pixels = _pixels("blobs:40:0")
    assert pixels[pixels > 0].min() >= 191 / 255  # 0, or at least 0.75 (191.25 rounds to 191)
    assert 0.05 < np.mean(pixels > 0) < 0.95  # shapes, not a flat image
    # amorphous shapes: a pixel's neighbour is far more often on when it is on
    on = pixels[..., 0] > 0
    assert np.mean(on[:, :, 1:][on[:, :, :-1]]) > np.mean(on) + 0.2


def _high_frequency_energy(image):
    gray = image.astype(np.float64).mean(axis=2)
    return float(np.sum(ndimage.laplace(gray) ** 2))


def test_blur_removes_most_of_the_high_frequency_energy(tmp_path):
    images = _images(4, 32, 32)
    src = open_source(f"blur:{_npz(tmp_path, images)}", SIZE)
    for i in range(4):
        blurred = src.image(i)
        assert _high_frequency_energy(blurred) < 0.01 * _high_frequency_energy(images[i])
        assert abs(blurred.astype(float).mean() - images[i].astype(float).mean()) < 2  # brightness kept


def _patches(image, grid):
    h, w = image.shape[0] // grid, image.shape[1] // grid
    return [image[r * h:(r + 1) * h, c * w:(c + 1) * w].tobytes() for r in range(grid) for c in range(grid)]


@pytest.mark.parametrize("grid", [2, 4])
def test_jigsaw_is_a_shuffle_of_the_original_patches(tmp_path, grid):
    images = _images(5, 34, 35)  # not divisible by the grid: a remainder strip
    src = open_source(f"jigsaw[grid={grid},seed=3]:{_npz(tmp_path, images)}", SIZE)
    for i in range(5):
        out, original = src.image(i), images[i]
        region = (34 // grid * grid, 35 // grid * grid)
        assert sorted(_patches(out[: region[0], : region[1]], grid)) == sorted(
            _patches(original[: region[0], : region[1]], grid))
        assert _patches(out, grid) != _patches(original, grid)  # never the original order
        np.testing.assert_array_equal(out[region[0]:], original[region[0]:])
        np.testing.assert_array_equal(out[:, region[1]:], original[:, region[1]:])


def test_permute_keeps_the_pixel_multiset_and_destroys_the_layout(tmp_path):
    images = _images(3, 16, 16)
    src = open_source(f"permute[seed=1]:{_npz(tmp_path, images)}", SIZE)
    for i in range(3):
        out = src.image(i)
        assert sorted(map(tuple, out.reshape(-1, 3))) == sorted(map(tuple, images[i].reshape(-1, 3)))
        assert np.mean(np.all(out == images[i], axis=2)) < 0.1


# ---------------------------------------------------------------- spellings and errors


def test_a_known_kind_wins_over_a_path_and_dot_slash_reaches_the_path(tmp_path, monkeypatch):
    _png_folder(tmp_path / "gaussian:5", _images(2))
    _png_folder(tmp_path / "data:set", _images(2))
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_source("gaussian:5", SIZE), SyntheticImageSource)
    assert open_source("./gaussian:5", SIZE).description.startswith("folder:")
    assert open_source("data:set", SIZE).description.startswith("folder:")  # an unknown kind, a real path


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gausian:10", "unknown data source kind 'gausian' in 'gausian:10', and no such file or folder exists "
                       "(kinds: noise, gaussian, uniform, rademacher, blobs, jigsaw, permute, blur; "
                       "write ./gausian:10 for a path)."),
        ("gaussian:abc", "gaussian source 'gaussian:abc' must look like gaussian:N or gaussian:N:SEED "
                         "(integers, SEED >= 0; in full: gaussian[sigma=...]:N[:SEED])."),
        ("uniform:5:-1", "uniform source 'uniform:5:-1' must look like uniform:N or uniform:N:SEED"),
        ("blobs:1:2:3", "blobs source 'blobs:1:2:3' must look like blobs:N or blobs:N:SEED"),
        ("rademacher:", "rademacher source 'rademacher:' must look like rademacher:N or rademacher:N:SEED"),
        ("gaussian[sigma=-1]:5", "'gaussian[sigma=-1]:5': sigma must be a number > 0, got '-1'."),
        ("gaussian[sigma=nan]:5", "'gaussian[sigma=nan]:5': sigma must be a number > 0, got 'nan'."),
        ("gaussian[sgma=1]:5", "'gaussian[sgma=1]:5': gaussian has no parameter 'sgma' (it takes: sigma)."),
        ("uniform[sigma=1]:5", "'uniform[sigma=1]:5': uniform takes no parameters (write uniform:N[:SEED])."),
        ("noise[seed=1]:5", "'noise[seed=1]:5': noise takes no parameters (write noise:N[:SEED])."),
        ("jigsaw[grid=1]:x", "'jigsaw[grid=1]:x': grid must be an integer >= 2, got '1'."),
        ("jigsaw[grid=2.5]:x", "'jigsaw[grid=2.5]:x': grid must be an integer >= 2, got '2.5'."),
        ("permute[seed=-3]:x", "'permute[seed=-3]:x': seed must be an integer >= 0, got '-3'."),
        ("blur[sigma=0]:x", "'blur[sigma=0]:x': sigma must be a number > 0, got '0'."),
        ("jigsaw[grid]:x", "'jigsaw[grid]:x': parameters are written [key=value,...], got 'grid'."),
        ("jigsaw[seed=1,seed=2]:x", "'jigsaw[seed=1,seed=2]:x': parameter 'seed' is given twice."),
        ("jigsaw[size=2]:x", "'jigsaw[size=2]:x': jigsaw has no parameter 'size' (it takes: grid, seed)."),
        ("jigsaw[grid=4:x", "'jigsaw[grid=4:x' is not a valid jigsaw source: write jigsaw[grid=...,seed=...]:SOURCE."),
        ("blur:", "'blur:': blur needs a source after the colon, e.g. blur:/data/cifar-10-batches-py."),
        ("permute:noise:5", "'permute:noise:5': permute corrupts images, but 'noise:5' gives network inputs; "
                            "corrupt a folder, an .npz, CIFAR batches or a synthetic image source."),
        ("blur:{tmp}/absent", "data source {tmp}/absent does not exist"),
    ],
)
def test_bad_specs_give_one_line_naming_the_spec(tmp_path, spec, message):
    with pytest.raises(ValueError) as info:
        open_source(spec.format(tmp=tmp_path), SIZE)
    text = str(info.value)
    assert message.format(tmp=tmp_path) in text and "\n" not in text, text


def test_synthetic_images_need_the_input_size():
    message = (r"^'blobs:4': blobs images need the network's input size: pass --input-size, for example "
               r"--input-size 32 for \(3, 32, 32\) \(input_size=\(3, 32, 32\) in Python\), or extract them "
               r"into a store whose first split recorded its image size\.$")
    with pytest.raises(ValueError, match=message):
        open_source("blobs:4")


def test_a_grid_larger_than_the_image_is_named_when_the_row_is_read(tmp_path):
    src = open_source(f"jigsaw[grid=20]:{_npz(tmp_path, _images(1, 16, 16))}", SIZE)
    message = r"jigsaw\[grid=20,seed=0\]:npz:.*id.npz: a 16x16 image cannot be cut into 20x20 patches"
    with pytest.raises(ValueError, match=message):
        src[0]


def test_classes_refuse_unknown_kinds_parameters_and_network_inputs():
    kinds = r"\(known: gaussian, uniform, rademacher, blobs\)"
    with pytest.raises(ValueError, match=r"unknown synthetic image kind 'pink' " + kinds):
        SyntheticImageSource("pink", 3, (8, 8))
    with pytest.raises(ValueError, match=r"unknown corruption 'swirl' \(known: jigsaw, permute, blur\)"):
        CorruptedSource(ArraySource(_images(1)), "swirl")
    with pytest.raises(ValueError, match=r"rademacher has no parameter 'sigma' \(it takes none\)"):
        SyntheticImageSource("rademacher", 3, (8, 8), sigma=1.0)
    with pytest.raises(ValueError, match=r"^blur: sigma must be a number > 0, got -1\.$"):
        CorruptedSource(ArraySource(_images(1)), "blur", sigma=-1)
    with pytest.raises(ValueError, match=r"jigsaw corrupts images, but array:x holds network inputs"):
        CorruptedSource(ArraySource(torch.zeros(2, 3, 4, 4), name="x"), "jigsaw")
    with pytest.raises(ValueError, match=r"noise:2:0 holds network inputs, not images"):
        NoiseSource(2, SIZE).image(0)


# ---------------------------------------------------------------- extraction end to end


def _toy_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(5, 3),
    ).eval()


@pytest.mark.parametrize("spec", ["blobs:7:1", "jigsaw[grid=2,seed=4]:{npz}"])
def test_extraction_stores_what_a_direct_forward_pass_of_the_outliers_gives(tmp_path, spec):
    pytest.importorskip("zarr")
    from skdice.extract.run import extract_features
    from skdice.store import open_store

    spec = spec.format(npz=_npz(tmp_path, _images(7, 8, 8)))
    model = _toy_model()
    out = extract_features(model, spec, tmp_path / "s.zarr", "val-outliers", input_size=(3, 8, 8),
                           batch_size=3, progress=False)
    source = open_source(spec, (3, 8, 8))
    x = torch.from_numpy(np.stack([source.image(i) for i in range(7)]).astype(np.float32) / 255).permute(0, 3, 1, 2)
    with torch.no_grad():
        features, logits = model[:4](x).numpy(), model(x).numpy()
    store = open_store(out)
    np.testing.assert_allclose(store.features("val-outliers"), features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(store.logits("val-outliers"), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(store.labels("val-outliers"), np.full(7, -1))
    assert store.paths("val-outliers") == [source[i][2] for i in range(7)]
    assert store.split_info("val-outliers")["source"] == source.description


@pytest.mark.shared_data
@pytest.mark.parametrize("spec", ["rademacher:5:2", "blur:{folder}"])
def test_skdice_extract_densenet_on_outliers_matches_a_forward_pass(shared_data, tmp_path, spec):
    pytest.importorskip("zarr")
    from typer.testing import CliRunner

    from skdice.cli.app import app
    from skdice.extract.models import load_preset
    from skdice.store import open_store

    checkpoint = shared_data / "models" / "densenet-bc-100-cifar10.pth.tar"
    images = shared_data / "images" / "cifar10-test"
    if not checkpoint.is_file() or not images.is_dir():
        pytest.skip(f"needs {checkpoint} and {images}")
    folder = tmp_path / "few"
    folder.mkdir()
    for f in sorted((images / "cat").iterdir())[500:505]:
        (folder / f.name).symlink_to(f)
    spec = spec.format(folder=folder)
    store_path = tmp_path / "c10.zarr"
    result = CliRunner().invoke(app, [
        "extract", "--model", "densenet-bc-100", "--weights", str(checkpoint), "--data", spec,
        "--out", str(store_path), "--split", "val-outliers", "--batch-size", "5", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output

    model = load_preset("densenet-bc-100", checkpoint)
    source = open_source(spec, model.input_size, model.preprocess)
    x = torch.stack([source[i][0] for i in range(5)])
    seen = []
    hook = model.head.register_forward_hook(lambda mod, inputs, output: seen.append(inputs[0].detach()))
    with torch.no_grad():
        logits = model.module(x).numpy()
    hook.remove()
    store = open_store(store_path)
    np.testing.assert_allclose(store.features("val-outliers"), seen[0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(store.logits("val-outliers"), logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(store.labels("val-outliers"), np.full(5, -1))
    assert store.split_info("val-outliers")["source"] == source.description


@pytest.mark.shared_data
def test_skdice_extract_prints_an_unknown_kind_as_one_line(shared_data, tmp_path, capsys):
    from skdice.cli.app import main

    checkpoint = shared_data / "models" / "densenet-bc-100-cifar10.pth.tar"
    if not checkpoint.is_file():
        pytest.skip(f"needs {checkpoint}")
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "--model", "densenet-bc-100", "--weights", str(checkpoint), "--device", "cpu",
              "--data", "gausian:10", "--out", str(tmp_path / "s.zarr"), "--split", "v"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(err) == 1, err
    assert err[0].startswith("skdice: error: unknown data source kind 'gausian' in 'gausian:10'"), err
