"""Where a torch CNN training step goes, layer by layer, forward and backward: with the C++ conv kernels
(:mod:`backends.torch.conv`) and without them (torch's oneDNN convolutions), taking turns in one process.

    python -m backends.torch.profile                       # 180 px, batch 32, the seed CNN, 2 threads
    FLOWERBENCH_CPU_ISA=avx2 python -m backends.torch.profile --reps 7

Each layer runs on its own input (detached, so that its backward is timed alone): forward, then, from the
logits back, ``torch.autograd.grad`` of its output for its input (not for the photos: conv0's input needs
none) and its parameters. The medians over ``--reps`` rounds are printed in ms, with the step's total.
README "Throughput" has the tables this printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

# isort: off
import bench  # noqa: F401  (first: FLOWERBENCH_CPU_ISA's ISA caps and THP, before torch loads)
import torch
import torch.nn.functional as F

# isort: on
from backends.torch import conv
from backends.torch.model import build_cnn
from bench import cpu
from bench.architecture import CNNSpec


def time_layers(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Seconds per layer, forward (``name fwd``) and backward (``name bwd``), for one step."""
    times: dict[str, float] = {}
    inputs, outputs = [], []
    x = images
    for i, (name, layer) in enumerate(model.named_children()):
        x = x.detach().requires_grad_(i > 0)
        start = time.perf_counter()
        y = layer(x)
        times[f"{name} fwd"] = time.perf_counter() - start
        inputs.append(x), outputs.append(y)
        x = y
    grad = torch.autograd.grad(F.cross_entropy(x, labels), x)[0]
    for (name, layer), x, y in reversed(list(zip(model.named_children(), inputs, outputs, strict=True))):
        wrt = [*([x] if x.requires_grad else []), *layer.parameters()]
        start = time.perf_counter()
        grads = torch.autograd.grad(y, wrt, grad) if wrt else ()
        times[f"{name} bwd"] = time.perf_counter() - start
        grad = grads[0] if x.requires_grad else None
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=180)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = CNNSpec(args.image_size, 3, 5, (64, 64), 3, 128, 0.2)
    model = build_cnn(spec).to(memory_format=torch.channels_last).train()
    images = torch.rand(args.batch, 3, args.image_size, args.image_size).contiguous(
        memory_format=torch.channels_last
    )
    labels = torch.randint(0, 5, (args.batch,))
    variants = {"kernels": True, "torch": False}
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for rep in range(args.reps + 1):  # the first round warms up
        for variant, enabled in variants.items():
            with conv.kernels_enabled(enabled):
                times = time_layers(model, images, labels)
            if rep:
                runs[variant].append(times)
    isa = cpu.emulated_isa() or "native"
    print(f"{cpu.model_name()}, ISA {isa} ({conv.description()}), torch {torch.__version__}, "
          f"{args.threads} threads, {args.image_size} px, batch {args.batch}, median of {args.reps}, ms")  # fmt: skip
    print(f"{'layer':<28}{'kernels':>10}{'torch':>10}")
    keys = list(runs["kernels"][0])
    totals = {v: statistics.median(sum(r.values()) for r in runs[v]) for v in variants}
    for key in keys:
        med = {v: statistics.median(r[key] for r in runs[v]) * 1e3 for v in variants}
        if max(med.values()) >= 0.5:
            print(f"{key:<28}{med['kernels']:>10.0f}{med['torch']:>10.0f}")
    print(f"{'step (sum of layers)':<28}{totals['kernels'] * 1e3:>10.0f}{totals['torch'] * 1e3:>10.0f}")


if __name__ == "__main__":
    main()
