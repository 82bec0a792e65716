"""The container tag that says a video is a learned downscale, so that its inverse can restore it.

``vsr_pipe_rescale=model=irn_y;weights=3f2a9c01d2e4;factor=2x2;hr=1280x720;lr=640x360``: the
model and weights that made the LR, the factor (width x height) and both frame sizes, so the
restoration gets the exact original size back. MP4/MOV keep it with ``movflags=use_metadata_tags``;
Matroska keeps any tag (and upper-cases its name).
"""

from __future__ import annotations

from dataclasses import dataclass

TAG = "vsr_pipe_rescale"


@dataclass(frozen=True)
class RescaleTag:
    model: str
    weights: str
    hr: tuple[int, int]  # (width, height)
    lr: tuple[int, int]

    def format(self) -> str:
        fx, fy = self.hr[0] / self.lr[0], self.hr[1] / self.lr[1]
        return (
            f"model={self.model};weights={self.weights};factor={fx:.6g}x{fy:.6g};"
            f"hr={self.hr[0]}x{self.hr[1]};lr={self.lr[0]}x{self.lr[1]}"
        )

    @classmethod
    def parse(cls, text: str) -> RescaleTag | None:
        """The tag's fields, or None when it is absent or malformed (then nothing is assumed from it)."""
        try:
            fields = dict(part.split("=", 1) for part in text.strip().split(";") if part)
            hr = tuple(int(v) for v in fields["hr"].split("x"))
            lr = tuple(int(v) for v in fields["lr"].split("x"))
            if len(hr) != 2 or len(lr) != 2 or min(*hr, *lr) < 1:
                return None
            return cls(fields["model"], fields.get("weights", ""), (hr[0], hr[1]), (lr[0], lr[1]))
        except (KeyError, ValueError):
            return None


def find_tag(metadata: dict) -> RescaleTag | None:
    for key, value in metadata.items():
        if key.lower() == TAG:
            return RescaleTag.parse(str(value))
    return None


def without_tag(metadata: dict) -> dict:
    """Tags to copy to an output that is not itself a learned downscale."""
    return {k: v for k, v in metadata.items() if k.lower() != TAG}
