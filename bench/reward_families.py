"""Every reward-model family on one held-out evaluation set, in one reward-quality table.

Usage::

    .venv/bin/python bench/reward_families.py --out data/rq-heldout --models data/family-models \\
        --report results/reward-quality/families

Nothing is downloaded, so the CLIP, SigLIP and X-CLIP rows are models of each family's real
architecture (through ``transformers``) with small, randomly initialised weights, and the R3M
row is a small ResNet-18 R3M saved in R3M's own checkpoint layout and scored at the frames'
native size, as LAMP does. They measure that every family runs through the same relabel and
reward-quality path on real episodes, and give the chance level a reward without knowledge
scores; the in-domain ``lamp-r3m-metaworld`` and its untrained twin are the trained row and its
baseline. With real checkpoints on disk, pass them with ``--vlm`` (repeatable) to add rows:
``--vlm clip:/models/clip-vit-base-patch32 --vlm xclip:/models/xclip-base-patch32``.

The evaluation set is ``bench/reward_quality_set.py``'s (``--noisy`` noisy experts at action
noise ``--noise`` beside ``--random`` random episodes of every held-out task, seed ``--seed``),
recorded into ``--out`` unless it is already there; the random models go to ``--models``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import reward_quality_set


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="Folder of the per-task held-out datasets.")
    parser.add_argument("--models", required=True, type=Path, help="Folder for the randomly initialised family models.")
    parser.add_argument("--report", type=Path, help="Write REPORT.md and REPORT.json (the table).")
    parser.add_argument("--noisy", type=int, default=8, help="Noisy-expert episodes per task.")
    parser.add_argument("--noise", type=float, default=0.2, help="Action noise of the noisy expert.")
    parser.add_argument("--random", type=int, default=8, help="Random episodes per task.")
    parser.add_argument("--seed", type=int, default=2027, help="Dataset seed.")
    parser.add_argument("--untrained", help="Spec of the in-domain model's untrained twin (`--steps 0` of its recipe).")
    parser.add_argument("--vlm", action="append", default=[], help="More reward model specs (repeatable).")
    return parser.parse_args(argv)


def family_specs(models: Path) -> list[str]:
    """Save (once) a randomly initialised model of every family into ``models``; their specs."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny models the tests build
    from tiny_models import save_tiny_clip, save_tiny_distilbert, save_tiny_r3m, save_tiny_siglip, save_tiny_xclip

    shapes = dict(image_size=64, width=64, layers=2, patch_size=16)
    savers = {
        "clip": lambda folder: save_tiny_clip(folder, projection_dim=64, **shapes),
        "siglip": lambda folder: save_tiny_siglip(folder, **shapes),
        "xclip": lambda folder: save_tiny_xclip(folder, frames=8, projection_dim=64, **shapes),
    }
    specs = []
    for family, save in savers.items():
        folder = models / f"random-{family}"
        if not (folder / "config.json").is_file():
            save(folder)
        specs.append(f"{family}:{folder}")
    r3m = models / "random-r3m" / "model.pt"
    if not r3m.is_file():
        text = save_tiny_distilbert(models / "random-r3m-text")
        save_tiny_r3m(r3m, trunk="resnet18", text_encoder=str(text), original_layout=True)
    specs.append(f"r3m:{r3m}?text={models / 'random-r3m-text'}")
    return specs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    specs = ["lamp-r3m-metaworld", *([args.untrained] if args.untrained else []), *family_specs(args.models), *args.vlm]
    forwarded = ["--out", str(args.out), "--noisy", str(args.noisy), "--noise", str(args.noise), "--random", str(args.random),
                 "--seed", str(args.seed)]
    for spec in specs:
        forwarded += ["--vlm", spec]
    if args.report:
        forwarded += ["--report", str(args.report)]
    command = "python bench/reward_families.py " + " ".join(shlex.quote(part) for part in (sys.argv[1:] if argv is None else argv))
    reward_quality_set.main(forwarded, command=command)


if __name__ == "__main__":
    main()
