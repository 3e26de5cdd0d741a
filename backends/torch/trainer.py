"""PyTorch implementation of :class:`bench.backend.Trainer` (its framework part; the base class owns the epoch
loop), at parity with the Keras backend.

One training step serves every optimizer (the differences live in optim.py). Loss and accuracy sums stay on
the device during the epoch and are read once at its end, so a step never waits for the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from backends.torch import conv, fused, optim
from backends.torch import model as model_lib
from bench import backend, cpu
from bench.architecture import CNNSpec, ModelSpec
from bench.config import RunConfig, kernel_l2
from bench.errors import ConfigError

STATE_FILE = "torch_state.pt"  # in the run's checkpoint folder (bench/checkpoint.py)


def _keep_freed_memory_for_reuse() -> None:
    """Make glibc's malloc serve every block from its heap and keep freed memory, like a caching allocator.

    torch has no caching allocator on CPU, and glibc serves each block over 32 MB (every large activation
    here) with a fresh mmap, unmapped again when freed: each step page-faults all its activations back in, the
    kernel zero-filling every page first. That was ~40 % of a step's CPU time at 180 px; reused from the heap,
    pages fault in once. The heap then keeps its peak size, as a caching allocator does. A no-op where the C
    library has no ``mallopt`` (not glibc).
    """
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(m_mmap_max, 0)
        libc.mallopt(m_trim_threshold, 2**31 - 1)
    except (OSError, AttributeError, TypeError):
        pass


def _use_gpu(run: RunConfig) -> bool:
    return run.backend.device != "cpu" and torch.cuda.is_available()


def _configure_process(run: RunConfig) -> None:
    """Seed, determinism, threads and allocator: process-wide, for one run."""
    if run.backend.device == "gpu" and not torch.cuda.is_available():
        raise ConfigError("backend.device=gpu, but torch sees no CUDA GPU; use backend.device=auto or cpu")
    torch.set_num_threads(run.backend.threads or len(os.sched_getaffinity(0)))
    torch.manual_seed(run.seed)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also NaN-fills every new tensor (to expose reads of uninitialised memory): an extra
    # write of each activation, ~5 % of a step here. The kernels used write all of their outputs, so results
    # stay bit-identical run to run without it.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False  # autotuning may pick another (non-deterministic) kernel per run
    cpu.check_bf16(run.train.precision, not _use_gpu(run), run.train.allow_emulated_bf16)
    if not _use_gpu(run):
        _keep_freed_memory_for_reuse()


class Trainer(backend.Trainer):
    @classmethod
    def setup(cls, run: RunConfig) -> None:
        _configure_process(run)

    def __init__(
        self,
        run: RunConfig,
        spec: ModelSpec,
        initial_weights: dict[str, np.ndarray] | None,
        steps_per_epoch: int,
    ):
        self.run, self.spec = run, spec
        self.device = torch.device("cuda" if _use_gpu(run) else "cpu")
        # channels_last matches the NHWC batches (no transpose copy) and is oneDNN's fast layout on CPU.
        self.model = model_lib.build_model(spec).to(self.device, memory_format=torch.channels_last)
        if initial_weights is not None:  # None: a user's model, as its framework initialized it
            model_lib.set_weights(self.model, spec, initial_weights)
        self.kernels = model_lib.kernels(self.model, spec)
        backend.check_l2_has_kernels(spec, len(self.kernels), kernel_l2(run.optimizer))
        others = model_lib.others(self.model, spec)  # biases; BatchNorm gamma and beta
        self.stepper = optim.make_optimizer(
            run.optimizer, run.schedule, steps_per_epoch * run.train.epochs, self.kernels, others
        )
        self.l2 = kernel_l2(run.optimizer)
        self.bf16 = run.train.precision == "bf16"
        # (loss*n, ce*n, correct) of the current pass, on the device in float64; read once at its end.
        self.sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        self._eval_penalty = torch.zeros((), device=self.device)

    def _inputs(self, images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 NHWC numpy → float32 in [0, 1], NCHW-shaped but channels_last in memory (a free view)."""
        x = torch.from_numpy(np.asarray(images)).to(self.device).permute(0, 3, 1, 2)
        x = x.float() / 255.0  # the same division as Keras' cast / 255, so the inputs match to the bit
        return x, torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast around the forward pass; weights and optimizer state stay float32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            # float32 logits: the softmax cross-entropy at full precision, like Keras' float32 logits layer.
            return self.model(x).float()

    def _penalty(self) -> torch.Tensor:
        """``l2 * sum(kernel**2)`` of the current weights, reported in the loss. Differentiable only where
        gradients are on: train_step turns them off when the optimizer adds the penalty's gradient itself."""
        if self.l2 == 0:
            return torch.zeros((), device=self.device)
        # A dot product per kernel: one pass over the 16.6 M dense weights at 180 px, where square().sum() takes
        # two and a temporary.
        return self.l2 * torch.stack([torch.dot(k.reshape(-1), k.reshape(-1)) for k in self.kernels]).sum()

    @staticmethod
    def _sums(
        ce: torch.Tensor, penalty: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """This batch's (loss, cross-entropy, correct) sums, on the device, in float64."""
        n = labels.shape[0]
        ce_sum = ce.detach().double() * n
        correct = (logits.detach().argmax(1) == labels).sum().double()
        return torch.stack([ce_sum + penalty.double() * n, ce_sum, correct])

    def begin_pass(self, training: bool) -> None:
        self.model.train(training)
        self.sums.zero_()
        if not training:
            with torch.no_grad():
                self._eval_penalty = self._penalty()  # the weights do not change during evaluation

    def train_step(self, images: np.ndarray, labels: np.ndarray) -> None:
        x, y = self._inputs(images, labels)
        # Of the weights this forward pass uses, before the update. Back-propagated only for a user's
        # optimizer: the built-in ones add its gradient as coupled weight_decay (backends/torch/optim.py).
        with torch.set_grad_enabled(not self.stepper.adds_l2_gradient):
            penalty = self._penalty()
        logits = self._logits(x)
        ce = F.cross_entropy(logits, y)  # mean, = Keras' SparseCategoricalCrossentropy(from_logits=True)
        self.stepper.optimizer.zero_grad(set_to_none=True)
        (ce + penalty if penalty.requires_grad else ce).backward()
        self.stepper.step()
        self.sums += self._sums(ce, penalty.detach(), logits, y)

    @torch.inference_mode()
    def eval_step(self, images: np.ndarray, labels: np.ndarray) -> None:
        x, y = self._inputs(images, labels)
        logits = self._logits(x)
        self.sums += self._sums(F.cross_entropy(logits, y), self._eval_penalty, logits, y)

    def read_sums(self) -> tuple[float, float, float]:
        loss_sum, ce_sum, correct = self.sums.tolist()  # the pass's one device → host transfer
        return loss_sum, ce_sum, correct

    @torch.inference_mode()
    def predict_logits(self, images: np.ndarray) -> np.ndarray:
        self.model.eval()
        return self._logits(self._inputs(images, np.zeros(len(images)))[0]).cpu().numpy()

    def learning_rate(self) -> float:
        return self.stepper.learning_rate()

    def get_weights(self) -> dict[str, np.ndarray]:
        return model_lib.get_weights(self.model, self.spec)

    def save_state(self, folder: Path) -> None:
        state = {
            "model": self.model.state_dict(),  # BatchNorm's moving statistics are buffers: in it
            "stepper": self.stepper.state_dict(),
            "rng": torch.get_rng_state(),  # dropout: the fused kernel's seeds and torch's masks come from it
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
        }
        torch.save(state, folder / STATE_FILE)

    def load_state(self, folder: Path) -> None:
        state = torch.load(folder / STATE_FILE, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.stepper.load_state_dict(state["stepper"])
        torch.set_rng_state(state["rng"].cpu())
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])

    def environment(self) -> dict[str, Any]:
        on_gpu = self.device.type == "cuda"
        return {
            "framework": "torch",
            "torch_version": torch.__version__,
            "device": torch.cuda.get_device_name(self.device) if on_gpu else "cpu",
            "threads": torch.get_num_threads(),
            "precision": self.run.train.precision,
            "optimizer_class": optim.class_path(self.stepper.optimizer),
            "memory_format": "channels_last",
            # The CNN's max-pool, ReLU and dropout; the ResNet has no such block.
            "pool_relu_dropout": (
                ("fused kernel" if fused.uses_fused_kernel(self.device) else "torch ops")
                if isinstance(self.spec, CNNSpec)
                else None
            ),
            # The CNN's 3x3 convolutions: the C++ kernels (and their ISA) or torch's alone.
            "conv_kernels": (
                conv.description() if isinstance(self.spec, CNNSpec) and not on_gpu else "torch"
            ),
            "deterministic": True,
            "cpu": platform.processor() or platform.machine(),
        }
