"""The GPU check: one script for whoever is lent a CUDA machine, under five minutes.

    python benchmarks/gpu_check.py            # on a CUDA machine: the figures for docs/performance.md
    python benchmarks/gpu_check.py --smoke    # anywhere: tiny sizes on the CPU, checks the script runs

It prints, with random weights (speed and agreement do not depend on them):

1. BiT-S-R101 at 480x480: images/s of a bare forward in float32 eager
   (default memory format) and in bf16 autocast + channels_last;
2. CUDA vs CPU feature agreement on 8 images for both presets (densenet-bc-100
   at 32x32, bit-s-r101 at 480x480): the largest relative error of the
   penultimate features (float32 on both sides, then bf16 + channels_last on
   CUDA), measured against the CPU float32 features;
3. the extraction pipeline's throughput (``extract_features`` into a Zarr
   store: channels_last, inference_mode, background writes) against a bare
   forward of the same network on the same tensors;
4. (run first, on a clean GPU memory) DICE ``score_samples`` on CUDA tensors
   under ``sklearn.set_config(array_api_dispatch=True)`` against the same
   detector on CPU NumPy arrays, n = 50,000 rows, m = 2048 features, C = 1000
   classes, float32: rows/s of each, the largest relative difference of the
   scores, the CUDA memory the scoring allocated at its peak beside one
   chunk's logits block, and a bare CUDA GEMM ``X @ W`` for scale.

Without a CUDA device the script says so in one line and exits 0; ``--smoke``
runs every section at tiny sizes on the CPU (section 4 then compares torch CPU
tensors with NumPy). Nothing is downloaded; the weights are random. Every
figure is measured in this run; copy the printed block into
docs/performance.md with the machine line.
"""

from __future__ import annotations

import os

# scikit-learn's Array API dispatch needs SciPy's own support on, read when SciPy is imported
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import argparse  # noqa: E402
import platform
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def _rate(step, n_images, device, rounds=3):
    """Median images/s of ``step()`` over ``rounds`` timings, after one warm-up."""
    import torch

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(n_images / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def _features(spec, x, device, *, bf16=False, channels_last=False):
    """Penultimate features of ``x`` (float32 on return) through the head's input hook."""
    import torch

    from skdice.extract.hooked import HookedExtractor

    module = spec.module.to(device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    extractor = HookedExtractor(module, spec.head)
    batch = x.to(device)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        features, _ = extractor(batch)
    module.to("cpu", memory_format=torch.contiguous_format)
    return features.float().cpu()


def _median_seconds(step, device_type, rounds):
    """Median wall seconds of ``step()`` over ``rounds`` timings, after one warm-up."""
    import torch

    def timed():
        start = time.perf_counter()
        step()
        if device_type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    timed()
    return sorted(timed() for _ in range(rounds))[rounds // 2]


def dice_on_device(device_type, n=50_000, m=2048, C=1000, rounds=5):
    """Section 4: DICE on ``device_type`` tensors (Array API dispatch) vs CPU NumPy; prints its lines."""
    import numpy as np
    import sklearn
    import torch

    from skdice import DICEDetector
    from skdice._numeric import chunk_rows

    rng = np.random.default_rng(0)
    # ReLU-like features and a random head: speed and agreement do not depend on the values
    X = np.maximum(rng.standard_normal((n, m), dtype=np.float32), 0)
    W = (rng.standard_normal((m, C), dtype=np.float32) / np.sqrt(m)).astype(np.float32)
    b = rng.standard_normal(C, dtype=np.float32) * 0.1
    fit_rows = min(n, 10_000)
    ref = DICEDetector(p=0.9).fit(X[:fit_rows], W, b)
    cpu_s = _median_seconds(lambda: ref.score_samples(X), "cpu", 3)
    expected = ref.score_samples(X)
    device = torch.device(device_type)
    Xt = torch.asarray(X, device=device)
    with sklearn.config_context(array_api_dispatch=True):
        det = DICEDetector(p=0.9).fit(Xt[:fit_rows], torch.asarray(W, device=device),
                                      torch.asarray(b, device=device))
        if device_type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        scores = det.score_samples(Xt)
        if device_type == "cuda":
            peak = torch.cuda.max_memory_allocated() - before
        dev_s = _median_seconds(lambda: det.score_samples(Xt), device_type, rounds)
    assert isinstance(scores, torch.Tensor) and scores.device.type == device_type
    got = scores.cpu().numpy()
    rel = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1e-12)))
    print(f"dice p=0.9, n={n} m={m} C={C} float32: CPU NumPy {n / cpu_s:,.0f} rows/s; "
          f"{device_type} tensors {n / dev_s:,.0f} rows/s ({cpu_s / dev_s:.1f}x); "
          f"max relative score difference {rel:.1e}; offset_ {ref.offset_:.6g} vs {det.offset_:.6g}")
    if device_type == "cuda":
        Wt = torch.asarray(W, device=device)
        gemm_s = _median_seconds(lambda: Xt @ Wt, "cuda", rounds)
        rows = chunk_rows(n, 4 * (m + 2 * max(m, C)))
        print(f"dice on cuda: score_samples / bare GEMM X @ W {dev_s / gemm_s:.2f} "
              f"(GEMM {n / gemm_s:,.0f} rows/s, TF32 matmul "
              f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}); peak allocated while "
              f"scoring {peak / 2**20:.1f} MiB: the scores {n * 8 / 2**20:.1f} MiB + one chunk "
              f"({rows} rows) of logits {rows * C * 4 / 2**20:.1f} MiB and its gathered rows "
              f"{rows * m * 4 / 2**20:.1f} MiB")
    del Xt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the script)")
    parser.add_argument("--batch-size", type=int, default=32, help="BiT batch for the speed rows")
    args = parser.parse_args(argv)

    import torch

    from skdice.extract.data import ArraySource
    from skdice.extract.models import load_preset
    from skdice.extract.run import extract_features

    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda and not args.smoke:
        print("# no CUDA device: every section of the GPU check needs one and is skipped "
              "(run with --smoke to check the script on the CPU at tiny sizes).")
        return
    size = 32 if args.smoke else 480
    batch = 1 if args.smoke else args.batch_size
    torch.manual_seed(0)
    print(f"# skdice GPU check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    name = torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine()
    print(f"# device: {device} ({name}); torch {torch.__version__}"
          + (f", CUDA {torch.version.cuda}" if cuda else "") + ("; SMOKE RUN: tiny sizes" if args.smoke else ""))

    # 4. first, on a clean GPU memory: DICE on CUDA tensors vs CPU NumPy
    if cuda:
        dice_on_device("cuda")
    else:
        print("dice on cuda: skipped, no CUDA device (smoke: torch CPU tensors vs NumPy, tiny sizes)")
        dice_on_device("cpu", n=600, m=64, C=20, rounds=1)

    # 1. BiT-S-R101 speed, fp32 eager vs bf16 + channels_last
    bit = load_preset("bit-s-r101", random_init=True)
    bit.module.eval().to(device)
    x = torch.randn(batch, 3, size, size, device=device)

    def fp32_eager():
        with torch.no_grad():
            bit.module(x)

    fp32 = _rate(fp32_eager, batch, device)
    bit.module.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def bf16_cl():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            bit.module(x_cl)

    bf16 = _rate(bf16_cl, batch, device)
    bit.module.to("cpu", memory_format=torch.contiguous_format)
    del x, x_cl
    print(f"bit-s-r101 {size}x{size}, batch {batch}: fp32 eager {fp32:.1f} images/s; "
          f"bf16 + channels_last {bf16:.1f} images/s ({bf16 / fp32:.2f}x)")

    # 2. CUDA vs CPU agreement on 8 images, both presets
    for preset, px in (("densenet-bc-100", 32), ("bit-s-r101", size)):
        spec = bit if preset == "bit-s-r101" else load_preset(preset, random_init=True)
        spec.module.eval()
        images = torch.randn(8 if not args.smoke else 2, 3, px, px)
        cpu = _features(spec, images, torch.device("cpu"))
        scale = cpu.abs().max().clamp_min(1e-12)
        rows = [("fp32", False, False), ("bf16 + channels_last", True, True)] if cuda else [("fp32", False, False)]
        for label, bf, cl in rows:
            other = _features(spec, images, device, bf16=bf, channels_last=cl)
            err = float(((other - cpu).abs().max() / scale))
            print(f"{preset}: {device} {label} vs cpu fp32, {len(images)} images: "
                  f"max |diff| / max |cpu| = {err:.2e}")

    # 3. extraction pipeline vs a bare forward (densenet-bc-100 on the GPU: many images, small ones)
    spec = load_preset("densenet-bc-100", random_init=True)
    n = 16 if args.smoke else 4096
    tensors = torch.randn(n, 3, 32, 32)
    work = Path(tempfile.mkdtemp(prefix="skdice-gpu-check-"))
    try:
        module = spec.module.eval().to(device)

        def bare():
            with torch.no_grad():
                for start in range(0, n, 256):
                    module(tensors[start:start + 256].to(device, non_blocking=True))

        bare_rate = _rate(bare, n, device, rounds=2)
        module.to("cpu")
        counter = iter(range(100))

        def pipeline():
            extract_features(spec, ArraySource(tensors), work / f"s{next(counter)}.zarr", "test",
                             batch_size=256, device=str(device), progress=False)

        pipe_rate = _rate(pipeline, n, device, rounds=2)
        print(f"densenet-bc-100 32x32, {n} images: bare forward {bare_rate:.0f} images/s; "
              f"extract_features into a store {pipe_rate:.0f} images/s ({pipe_rate / bare_rate:.2f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
