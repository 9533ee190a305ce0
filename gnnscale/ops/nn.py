"""Model kernels: the time encoding of temporal models and a threaded dropout."""
from typing import Optional

import torch

from . import kernels


class _TimeEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dt, frequency, phase):
        ctx.save_for_backward(dt, frequency, phase)
        return kernels.OPS.time_encode(dt, frequency, phase)

    @staticmethod
    def backward(ctx, grad):
        dt, frequency, phase = ctx.saved_tensors
        grad_frequency, grad_phase = kernels.OPS.time_encode_backward(grad.contiguous(), dt, frequency, phase)
        return None, grad_frequency, grad_phase


def time_encode(dt: torch.Tensor, frequency: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """``cos(dt[:, None] * frequency + phase)``: ``[len(dt), len(frequency)]`` in the dtype of the
    parameters, with the angle formed in float64 (time gaps of real streams make angles of
    millions of radians, which float32 cannot place to within 0.1 rad). Differentiable in
    ``frequency`` and ``phase``; ``dt`` is data."""
    if dt.dim() != 1 or not dt.is_floating_point():
        raise ValueError(f"dt must be a 1-D floating tensor, got {dt.dtype} of shape {tuple(dt.shape)}")
    if frequency.dim() != 1 or frequency.shape != phase.shape or frequency.dtype != phase.dtype:
        raise ValueError("frequency and phase must be 1-D tensors of the same length and dtype, got "
                         f"{tuple(frequency.shape)} {frequency.dtype} and {tuple(phase.shape)} {phase.dtype}")
    if frequency.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"frequency and phase must be float32 or float64, got {frequency.dtype}")
    if dt.requires_grad:
        raise ValueError("time_encode is not differentiable in dt")
    if not frequency.device.type == dt.device.type == "cpu":
        angle = dt.to(torch.float64).unsqueeze(1) * frequency.to(torch.float64) + phase.to(torch.float64)
        return torch.cos(angle).to(frequency.dtype)
    return _TimeEncode.apply(dt.contiguous(), frequency, phase)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p: float, seed: int):
        out, keep = kernels.OPS.dropout_forward(x, p, seed)
        ctx.p = p
        ctx.save_for_backward(keep)
        return out

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return kernels.OPS.dropout_backward(grad, keep, ctx.p), None, None


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True,
            generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``F.dropout`` with the mask drawn on all threads on CPU (ATen's CPU dropout draws it serially
    and is ~10x slower than the multiplication); one byte per element is kept for the
    backward. The mask's seed comes from ``generator`` (torch's default generator when None), so
    ``torch.manual_seed`` and saved RNG states reproduce it. Other devices use ``F.dropout``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not x.is_floating_point():
        if generator is None:
            return torch.nn.functional.dropout(x, p, True)
        keep = torch.empty_like(x).uniform_(generator=generator).ge_(p)
        return x * keep.to(x.dtype) / (1.0 - p)
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return _Dropout.apply(x, p, seed)
