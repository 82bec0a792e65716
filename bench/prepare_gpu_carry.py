"""Fill the ignored folders that travel to the GPU machine with ``bench/gpu_session.sh``.

    .venv/bin/python bench/prepare_gpu_carry.py [--data ../shared/data] [--av 18.1.0]

``.whl/``: PyAV (the one package the GPU machine lacks: it has Python 3.12, torch, numpy, click,
safetensors, pillow, onnx, onnxruntime and pytest) for CPython >= 3.11 on manylinux x86_64, fetched
with pip. Its wheel (34 MiB) and the images (30 MiB) together pass the 64 MiB a call may carry, so
the wheel's files travel repacked as ``<wheel name>.tar.xz`` (24 MiB, the same files: a wheel is a
zip of site-packages); ``gpu_session.sh`` unpacks it where pip would have put them. A plain ``.whl``
in the folder is installed with pip instead.
``.gpu_data/``: T91 and BSD200 (training), Set5 and Set14 (validation), the files as they are.
Prints the sizes and what the call will carry in all (tracked and untracked files count too).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("T91", "BSD200", "Set5", "Set14")
CARRY_LIMIT_MIB = 64


def size_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def fetch_av(version: str, dest: Path) -> Path:
    """The PyAV wheel's files repacked as ``dest/<wheel>.tar.xz``; reused when already there."""
    done = sorted(dest.glob(f"av-{version}-*.tar.xz"))
    if done:
        return done[0]
    with tempfile.TemporaryDirectory() as tmp:
        platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "-d", tmp, f"av=={version}"]  # fmt: skip
        subprocess.run(cmd + [a for p in platforms for a in ("--platform", p)], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        unpacked = Path(tmp) / "files"
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(unpacked)
        for so in unpacked.rglob("*.so*"):  # zip keeps no modes here; the loader needs none, tar keeps these
            so.chmod(0o755)
        target = dest / (wheel.name + ".tar.xz")
        partial = target.with_suffix(".partial")
        print(f"repacking {wheel.name} ({size_mib(wheel):.1f} MiB) as {target.name}: a minute or two", flush=True)
        with tarfile.open(partial, "w:xz", preset=9) as tar:
            for path in sorted(unpacked.iterdir()):
                tar.add(path, arcname=path.name)
        partial.rename(target)
    return target


def copy_images(data: Path, dest: Path) -> None:
    for name in FOLDERS:
        src = data / name
        if not src.is_dir():
            raise SystemExit(f"{src} is missing: pass --data (the folder that holds {', '.join(FOLDERS)})")
        out = dest / name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            if f.is_file() and not (out / f.name).exists():
                shutil.copyfile(f, out / f.name)


def travelling_tree_mib() -> float:
    """Tracked plus untracked-not-ignored files: they travel with every call too."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout  # fmt: skip
    paths = [ROOT / p for p in listed.decode().split("\0") if p]
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--av", default="18.1.0", help="PyAV version (the project venv's)")
    args = ap.parse_args()
    whl, data = ROOT / ".whl", ROOT / ".gpu_data"
    whl.mkdir(exist_ok=True)
    fetch_av(args.av, whl)
    copy_images(args.data, data)
    tree = travelling_tree_mib()
    total = size_mib(whl) + size_mib(data) + tree
    print(f".whl/ {size_mib(whl):.1f} MiB; .gpu_data/ {size_mib(data):.1f} MiB "
          f"({', '.join(f'{n} {size_mib(data / n):.1f}' for n in FOLDERS)}); working tree {tree:.1f} MiB; "
          f"a call carries {total:.1f} of {CARRY_LIMIT_MIB} MiB")  # fmt: skip
    if total > CARRY_LIMIT_MIB - 2:
        print("too close to the limit: the call may be refused", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
