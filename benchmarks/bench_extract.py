"""Extraction throughput: ``extract_features`` into a store vs a bare eager forward.

    python benchmarks/bench_extract.py [--model densenet-bc-100] [--n 256] [--batch-size 64]
                                       [--rounds 5] [--threads N] [--device cpu] [--amp]

Both sides run the same network (random weights: speed does not depend on
them) over the same preprocessed input tensors, at the same thread count:

- baseline: ``with torch.no_grad(): model(batch)`` for every batch, default
  memory format, nothing stored (what a user would write by hand);
- reference: the same bare loop in channels_last under inference_mode, to
  separate what the memory format gains from what the loop costs;
- candidate: :func:`skdice.extract.run.extract_features` over an
  :class:`~skdice.extract.data.ArraySource` of those tensors, writing features,
  logits, labels and paths to a fresh Zarr split each round (inference_mode,
  channels_last, background chunk writes; ``--amp`` adds bf16 autocast on CUDA).

Rounds are interleaved and the median per-round ratio is printed; the target
on CPU for densenet-bc-100 is a speed ratio (candidate images/s over baseline
images/s) of at least 1.0. Image decoding is left out of both sides: it costs
the same whichever loop consumes it, and with ``--workers`` it moves to other
processes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import interleaved, machine  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="densenet-bc-100", help="preset (random weights)")
    parser.add_argument("--n", type=int, default=256, help="images per round")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median taken)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for the candidate (CUDA)")
    args = parser.parse_args(argv)

    import torch

    from skdice.extract.data import ArraySource
    from skdice.extract.models import load_preset
    from skdice.extract.run import extract_features

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    bare = load_preset(args.model, random_init=True).module.eval().to(device)
    bare_cl = load_preset(args.model, random_init=True).module.eval().to(device, memory_format=torch.channels_last)
    spec = load_preset(args.model, random_init=True)
    x = torch.randn(args.n, *spec.input_size)
    x_dev = x.to(device)
    source = ArraySource(x, name="bench")
    tmp = Path(tempfile.mkdtemp(prefix="skdice-bench-extract-"))
    counter = [0]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def baseline():
        with torch.no_grad():
            for i in range(0, args.n, args.batch_size):
                bare(x_dev[i : i + args.batch_size])
        sync()

    def reference():
        with torch.inference_mode():
            for i in range(0, args.n, args.batch_size):
                bare_cl(x_dev[i : i + args.batch_size].contiguous(memory_format=torch.channels_last))
        sync()

    def candidate():
        counter[0] += 1
        extract_features(spec, source, tmp / "bench.zarr", f"round{counter[0]}", batch_size=args.batch_size,
                         device=args.device, amp=args.amp, progress=False)
        sync()

    print(machine())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"{args.model} {spec.input_size}, {args.n} images per round, batch {args.batch_size}")
    try:
        result = interleaved(baseline, {"channels_last": reference, "extract": candidate}, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base_s = result["baseline"]["seconds"]
    cand = result["extract"]
    print(f"bare eager forward : {args.n / base_s:8.1f} images/s (median of {args.rounds})")
    ref = result["channels_last"]
    print(f"bare channels_last : {args.n / ref['seconds']:8.1f} images/s")
    print(f"extract_features   : {args.n / cand['seconds']:8.1f} images/s"
          f"{' (bf16 autocast)' if args.amp and device.type == 'cuda' else ''}")
    speeds = ", ".join(f"{1 / r:.2f}" for r in cand["ratios"])
    print(f"speed ratio extract / bare: {1 / cand['ratio']:.3f} (median; per round: {speeds}); target >= 1.0")
    loop = [r / c for r, c in zip(ref["ratios"], cand["ratios"])]
    loop.sort()
    print(f"speed ratio extract / bare channels_last (the loop's own cost): {loop[len(loop) // 2]:.3f}")


if __name__ == "__main__":
    main()
