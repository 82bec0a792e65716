"""A causal recurrent video SR model in the manner of RLSP (Fuoli et al., ICCVW 2019), on luma.

Per frame it sees the current LR frame, the previous LR frame, its own previous output (folded to
LR size by pixel unshuffle) and a hidden state, and predicts a residual over a frozen single-frame
ESPCN's output plus the next hidden state. Alignment is left to the convolutions (RLSP's implicit
motion handling): small motion, which is what a stream mostly has, falls inside their reach.
Starting from ESPCN means training only has to learn what the frames before add: the residual
passes through a learnable gain that starts at zero (ReZero, Bachlechner et al. 2020), so an
untrained model is exactly ESPCN while every layer of the cell starts random and gets gradient
from the first step (a zero tail instead leaves the layers before it none).

The state is an explicit input and output, so ONNX Runtime and TensorRT run the same graph and the
pipeline carries it from chunk to chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .espcn import ESPCN

# Steps a fresh state takes on its first frame before that frame's output counts (outputs dropped).
# From zeros, the state needs a few frames to settle, which shows as flicker after every reset even
# on a still scene; a few steps on the frame itself settle it first. On the held-out person clip
# (python bench/temporal.py): flicker 0.098 -> 0.090 at x2, 0.162 -> 0.133 at x4, Y-PSNR unchanged.
WARMUP_STEPS = 3


class TemporalSR(nn.Module):
    """Causal recurrent SR for one integer scale, Y only.

    Args:
        scale: upscale factor r (2 or 4; any integer works).
        features: channels of the recurrent cell's convolutions.
        layers: 3x3 conv + ReLU layers between the cell's head and tail.
        state: channels of the hidden state carried from frame to frame (at LR size).

    ``forward(frame, prev_frame, prev_out, state) -> (out, state)``:
      frame, prev_frame: (N, 1, h, w) float32 in [0, 1]; prev_out: (N, 1, r*h, r*w);
      state: (N, state, h, w). out: (N, 1, r*h, r*w), unclipped; the new state, same shape.
    """

    def __init__(self, scale: int, features: int = 32, layers: int = 2, state: int = 16):
        super().__init__()
        self.scale, self.state_channels = int(scale), int(state)
        r2 = self.scale * self.scale
        self.base = ESPCN(self.scale)
        self.base.requires_grad_(False)
        self.head = nn.Conv2d(2 + 2 * r2 + state, features, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(features, features, 3, padding=1) for _ in range(layers))
        self.tail = nn.Conv2d(features, r2 + state, 3, padding=1)
        self.gain = nn.Parameter(torch.zeros(1))

    def initial_state(
        self, frame: torch.Tensor, warmup: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prev_frame, prev_out, state) for the first frame after a reset (a cut, a seek, a
        split's start): the frame itself, its ESPCN output, and zeros; then ``warmup`` steps on the
        frame itself (:data:`WARMUP_STEPS` at inference; training unrolls from zeros)."""
        n, _, h, w = frame.shape
        with torch.no_grad():
            prev_out = self.base(frame)
            state = frame.new_zeros(n, self.state_channels, h, w)
            for _ in range(warmup):
                prev_out, state = self(frame, frame, prev_out, state)
        return frame, prev_out, state

    def forward(
        self, frame: torch.Tensor, prev_frame: torch.Tensor, prev_out: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.scale
        base = self.base(frame)
        x = torch.cat(
            [frame, prev_frame, F.pixel_unshuffle(base, r), F.pixel_unshuffle(prev_out, r), state], dim=1
        )
        feat = F.relu(self.head(x))
        for conv in self.body:
            feat = F.relu(conv(feat))
        y = self.tail(feat)
        residual, new_state = y[:, : r * r], y[:, r * r :]
        return base + self.gain * F.pixel_shuffle(residual, r), torch.tanh(new_state)

    def run(self, frames: torch.Tensor) -> torch.Tensor:
        """A whole sequence from a reset state: (T, 1, h, w) -> (T, 1, r*h, r*w)."""
        prev, prev_out, state = self.initial_state(frames[:1], WARMUP_STEPS)
        outs = []
        for t in range(frames.shape[0]):
            out, state = self(frames[t : t + 1], prev, prev_out, state)
            outs.append(out)
            prev, prev_out = frames[t : t + 1], out
        return torch.cat(outs)
