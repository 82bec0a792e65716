"""What a training run is: one frozen dataclass per model, the one place its defaults live.

Torch-free, so the command line can show these defaults in its help without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class EspcnTrainConfig:
    scale: int
    train_dirs: tuple[str, ...]
    val_dir: str | None
    out_dir: str
    steps: int = 60_000  # the shipped x3's; x2 shipped after 40k, x4 after 20k (README)
    batch: int = 64
    lr_patch: int = 24
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-5
    luma: bool = True
    residual: bool = True
    num_feat: tuple[int, int] = (64, 32)  # the paper's; (16, 8) is the light model a live run falls back to
    threads: int = 0  # 0: leave torch's default
    eval_every: int = 5_000
    checkpoint_every: int = 1_000
    seed: int = 0
    size_factors: tuple[float, ...] = field(default=(1.0, 0.9, 0.8, 0.7, 0.6))


    @property
    def weights_name(self) -> str:
        """The shipped name of what this trains: espcn_y_x2, or espcn_y_x2_f16x8 for other widths."""
        width = "" if tuple(self.num_feat) == (64, 32) else f"_f{self.num_feat[0]}x{self.num_feat[1]}"
        return f"espcn_y_x{self.scale}{width}"


@dataclass(frozen=True)
class IrnTrainConfig:
    train_dirs: tuple[str, ...]
    val_dir: str | None
    out_dir: str
    steps: int = 30_000
    batch: int = 16
    lr_patch: int = 16
    learning_rate: float = 5e-4
    latent_scale_learning_rate: float = 1e-2
    final_learning_rate: float = 1e-5
    grad_clip: float = 10.0
    blocks: tuple[int, int] = (6, 4)
    growth: int = 16
    convs: int = 3
    warmup: float = 0.4  # share of the steps over which z's temperature ramps from 0 to final_temperature
    final_temperature: float = 0.0  # 1: IRN's protocol (restore from z ~ N(0, 1)); 0: from z = 0 (shipped)
    share_x2: float = 0.35
    share_x4: float = 0.2
    share_asymmetric: float = 0.15
    codec_share: float = 0.0  # share of batches whose LR is coded by the codec stand-in before restoring
    cycle_weight: float = 10.0  # 1 moved the x1.5 cycle loss too slowly (0.68 -> 0.63 dB in 2,000 steps)
    init_from: str | None = None  # weights (safetensors) to start from instead of the initialisation
    threads: int = 0
    device: str = "cpu"  # "cuda" on a GPU machine; validation always runs on a CPU copy
    max_seconds: float = 0.0  # stop, with a checkpoint, after this much wall-clock time; 0: no limit
    eval_every: int = 1_000
    checkpoint_every: int = 250
    seed: int = 0


def default(config: type, name: str):
    """The default of field ``name`` of a config class (for help texts)."""
    return next(f.default for f in fields(config) if f.name == name)


def from_saved(config: type, saved: dict):
    """A config from the dict a checkpoint stores (JSON lists back to tuples; unknown keys dropped)."""
    known = {f.name for f in fields(config)}
    return config(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known})
