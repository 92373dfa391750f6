"""Relabel throughput against the bare model, and what a large prompt set costs per family.

Usage::

    .venv/bin/python bench/relabel.py                     # about 2.5 minutes on 2 busy CPU cores
    .venv/bin/python bench/relabel.py --device cuda --episodes 32 --trunk resnet50 --image-size 224
    .venv/bin/python bench/relabel.py --threads 0             # torch's default thread count

Models are randomly initialised with realistic shapes (nothing is downloaded):

* R3M: a torchvision-layout ResNet trunk (``--trunk``, resnet18 by default) at ``--image-size``
  (128 by default to fit the time budget on 2 CPU cores; 224 like the released models) and the
  4-hidden-layer 1024-wide reward MLP. The text encoder is a tiny 32-d stand-in: with the split
  head, text only enters the once-per-set prompt term, so it does not change the per-episode
  cost; the head comparison [3] uses R3M's real 768-d text width on random embeddings;
* CLIP: a ViT at 224 px, patch 32, ``--clip-width`` wide and ``--clip-layers`` deep (384 × 6 by
  default: ViT-B/32 at half width and depth), 512-d projection, and a 1-layer 64-d text tower
  (again only the once-per-set prompt embedding depends on it);
* SigLIP: the same ViT size at 224 px with patch 16 (SigLIP-B/16's patching: 4× CLIP-B/32's
  tokens) and a 1-layer 64-d text tower;
* X-CLIP: the same ViT size at 224 px, patch 32, on clips of 8 frames (X-CLIP-B/32), 512-d
  projection, multi-frame integration transformer and a 2-layer video-specific prompt generator
  as released (this one's cost grows with the prompt count), and a 1-layer 64-d text tower.

Prints, all measured in this run on the same frames:

1. relabel frames/s (decode in a background thread, score, write reward shards; the same
   scorer, built once) against the bare model on the same frames already in memory
   (``EpisodeScorer.score``), goal ≥ 0.9;
2. per-episode cost at P = 1 and P = ``--prompts`` prompts for CLIP (goal ≤ 1.2×) and R3M;
3. the R3M head at P = ``--prompts``: split first layer against the naive per-pair MLP on
   ``[e_0, e_t, l]`` (goal ≥ 2× faster), for the resnet18 (512-d) and resnet50 (2048-d) heads.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lamp_data import schema
from lamp_data.envs import EnvConfig
from lamp_data.pipeline.collect import CollectConfig, collect
from lamp_data.pipeline.relabel import relabel
from lamp_data.rewards.prompts import load_prompt_set
from lamp_data.rewards.vlm.r3m.networks import HEAD_CHUNK_ELEMENTS, R3M, LanguageRewardHead, R3MConfig
from lamp_data.rewards.vlm.scoring import make_scorer
from lamp_data.store import iter_episodes, layout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny models the tests build
from tiny_models import save_tiny_clip, save_tiny_distilbert, save_tiny_r3m, save_tiny_siglip, save_tiny_xclip  # noqa: E402


def timed(function, repeats: int = 1, warm_up: bool = True) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up call unless ``warm_up`` is False)."""
    if warm_up:
        function()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def bare_vs_relabel(dataset: Path, spec: str, prompts: str, device: str, batch_size: int, repeats: int) -> dict[str, float]:
    """Frames/s of the bare scorer (frames already in memory) and of relabel with the same scorer.

    Bare runs and full relabels (reward folder removed before each) alternate ``repeats``
    times and the best of each is kept, so a change in machine load hits both sides alike.
    CPU time (all threads of this process) is reported too: on a shared machine it is the
    steadier measure of the work relabel adds around the model.
    """
    scorer = make_scorer(spec, prompts, device=device, batch_size=batch_size)
    episodes = [episode[schema.IMAGE] for episode in iter_episodes(dataset)]
    frames = sum(len(episode) for episode in episodes)

    def bare() -> None:
        for episode in episodes:
            scorer.score(episode)

    def full() -> None:
        shutil.rmtree(layout.rewards_dir(dataset), ignore_errors=True)
        summary = relabel(dataset, scorer, progress=False)
        assert summary.frames == frames and summary.shards_written == summary.shards_total

    bare()
    wall: dict[str, list[float]] = {"bare": [], "relabel": []}
    cpu: dict[str, list[float]] = {"bare": [], "relabel": []}
    for _ in range(repeats):
        for name, run in (("bare", bare), ("relabel", full)):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - wall_start)
            cpu[name].append(time.process_time() - cpu_start)
    return {
        "bare_fps": frames / min(wall["bare"]),
        "relabel_fps": frames / min(wall["relabel"]),
        "cpu_ratio": min(cpu["bare"]) / min(cpu["relabel"]),
    }


def relabel_fps(dataset: Path, spec: str, prompts: str, device: str, batch_size: int) -> float:
    """Frames/s of one relabel of ``dataset`` with a scorer built and warmed up on one episode beforehand."""
    scorer = make_scorer(spec, prompts, device=device, batch_size=batch_size)
    scorer.score(next(iter_episodes(dataset))[schema.IMAGE])
    shutil.rmtree(layout.rewards_dir(dataset), ignore_errors=True)
    return relabel(dataset, scorer, progress=False).frames_per_second


def prompt_scaling(spec: str, prompts: list[str], frames: np.ndarray, device: str, batch_size: int, repeats: int) -> tuple[float, float, float]:
    """Per-episode seconds at P = 1 and P = len(prompts) (best of interleaved runs), and the
    one-time prompt embedding."""
    small = make_scorer(spec, prompts[:1], device=device, batch_size=batch_size)
    large = make_scorer(spec, prompts, device=device, batch_size=batch_size)
    small.score(frames), large.score(frames)
    small_seconds, large_seconds = [], []
    for _ in range(repeats):
        small_seconds.append(timed(lambda: small.score(frames), warm_up=False))
        large_seconds.append(timed(lambda: large.score(frames), warm_up=False))
    return min(small_seconds), min(large_seconds), large.prompt_seconds


def head_split_vs_naive(image_dim: int, lang_dim: int, frames: int, prompts: int, device: str, repeats: int) -> tuple[float, float, float]:
    """Seconds of the naive per-pair head and of the split head, and their largest difference."""
    config = R3MConfig(trunk="conv-small", image_size=32, text_encoder="unused", lang_dim=lang_dim)
    model = _head_only(config, image_dim).to(device)
    generator = torch.Generator().manual_seed(0)
    e0 = torch.randn(1, image_dim, generator=generator).to(device)
    et = torch.randn(frames, image_dim, generator=generator).to(device)
    lang = torch.randn(prompts, lang_dim, generator=generator).to(device)
    chunk = max(1, HEAD_CHUNK_ELEMENTS // (frames * config.head_hidden))

    def naive() -> torch.Tensor:
        columns = []
        for start in range(0, prompts, chunk):
            part = lang[start : start + chunk]
            shape = (frames, len(part), -1)
            columns.append(model.reward(e0[None].expand(*shape), et[:, None].expand(*shape), part[None].expand(*shape)))
        return torch.cat(columns, 1)

    prompt_term = model.prompt_terms(lang)

    def split() -> torch.Tensor:
        first, per_frame = model.frame_terms(e0, et)
        return model.split_rewards(first, per_frame, prompt_term)

    with torch.inference_mode():
        difference = float((naive() - split()).abs().max())  # also the warm-up of both
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        naive_seconds, split_seconds = [], []
        for _ in range(repeats):
            naive_seconds.append(timed(lambda: (naive(), sync()), warm_up=False))
            split_seconds.append(timed(lambda: (split(), sync()), warm_up=False))
    return min(naive_seconds), min(split_seconds), difference


class _NoText(torch.nn.Module):
    """Stands in for the text encoder where only the head is timed."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim


def _head_only(config: R3MConfig, image_dim: int):
    """An R3M whose head takes ``image_dim``-d frame embeddings (trunk and text unused)."""
    model = R3M(config, _NoText(config.lang_dim))
    model.lang_rew = LanguageRewardHead(image_dim, config.lang_dim, config.head_hidden, config.head_layers)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default). On a shared 2-core machine two threads stall on each other and timings swing 5x.")
    parser.add_argument("--episodes", type=int, default=8, help="Episodes of the relabel dataset (2 per shard).")
    parser.add_argument("--episode-length", type=int, default=15)
    parser.add_argument("--frame-size", type=int, default=64, help="Stored frame side (dummy env).")
    parser.add_argument("--trunk", default="resnet18", help="R3M trunk for the relabel and scaling runs.")
    parser.add_argument("--image-size", type=int, default=128, help="R3M input side (released models: 224).")
    parser.add_argument("--clip-width", type=int, default=384)
    parser.add_argument("--clip-layers", type=int, default=6, help="Depth of the CLIP, SigLIP and X-CLIP vision towers (width: --clip-width).")
    parser.add_argument("--family-episodes", type=int, default=4, help="Episodes relabelled once per family for the per-family frames/s.")
    parser.add_argument("--prompts", type=int, default=4000, help="Large prompt-set size.")
    parser.add_argument("--scaling-frames", type=int, default=4, help="Frames of the episode in the P = 1 vs P = N comparison.")
    parser.add_argument("--head-frames", type=int, default=1, help="Frames in the split-vs-naive head comparison.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved repeats of each comparison; the best is kept.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    work = Path(tempfile.mkdtemp(prefix="bench-relabel-"))
    try:
        print(f"device {args.device}, torch threads {torch.get_num_threads()}")
        text = save_tiny_distilbert(work / "text")
        r3m_path = save_tiny_r3m(work / "r3m.pt", trunk=args.trunk, text_encoder=str(text), image_size=args.image_size, head_hidden=1024, head_layers=4)
        clip_dir = save_tiny_clip(work / "clip", image_size=224, width=args.clip_width, layers=args.clip_layers, patch_size=32, projection_dim=512, text_width=64, text_layers=1)
        siglip_dir = save_tiny_siglip(work / "siglip", image_size=224, width=args.clip_width, layers=args.clip_layers, patch_size=16, text_width=64, text_layers=1)
        xclip_dir = save_tiny_xclip(work / "xclip", image_size=224, frames=8, width=args.clip_width, layers=args.clip_layers, patch_size=32, projection_dim=512, text_width=64, text_layers=1, prompt_layers=2)
        r3m_spec, clip_spec = f"r3m:{r3m_path}", f"clip:{clip_dir}"
        print(
            f"R3M: {args.trunk} trunk at {args.image_size} px, reward MLP 1024 x 4, 32-d stand-in text encoder; "
            f"CLIP: ViT {args.clip_width} wide x {args.clip_layers} layers at 224 px, patch 32, 1-layer 64-d stand-in text tower; "
            f"SigLIP: the same ViT at patch 16; X-CLIP: the same ViT at patch 32 on 8-frame clips, 2-layer video-specific prompt"
        )

        dataset = work / "data"
        collect(dataset, CollectConfig(env="dummy", episodes=args.episodes, shard_episodes=2,
                                       env_config=EnvConfig(episode_length=args.episode_length, image_size=args.frame_size)), progress=False)
        result = bare_vs_relabel(dataset, r3m_spec, "instructions", args.device, args.batch_size, args.repeats)
        print(f"\n[1] relabel vs bare model, R3M, {args.episodes} episodes x {args.episode_length + 1} frames of {args.frame_size} px, 'instructions' prompts")
        print(
            f"    bare model {result['bare_fps']:8.2f} frames/s   relabel {result['relabel_fps']:8.2f} frames/s   "
            f"ratio {result['relabel_fps'] / result['bare_fps']:.2f} (goal >= 0.9); CPU-time ratio {result['cpu_ratio']:.2f}"
        )
        subset = work / "family-data"
        collect(subset, CollectConfig(env="dummy", episodes=args.family_episodes, shard_episodes=2,
                                      env_config=EnvConfig(episode_length=args.episode_length, image_size=args.frame_size)), progress=False)
        print(f"    relabel frames/s per family, {args.family_episodes} episodes (one run each):")
        families = (("R3M", r3m_spec), ("CLIP", clip_spec), ("SigLIP", f"siglip:{siglip_dir}"), ("X-CLIP", f"xclip:{xclip_dir}"),
                    ("X-CLIP without the video-specific prompt", f"xclip:{xclip_dir}?video_prompt=0"))
        for family, spec in families:
            print(f"      {relabel_fps(subset, spec, 'instructions', args.device, args.batch_size):8.2f} frames/s  {family}", flush=True)

        prompts = list(load_prompt_set().prompts[: args.prompts])
        frames = np.random.default_rng(0).integers(0, 256, (args.scaling_frames, args.frame_size, args.frame_size, 3), dtype=np.uint8)
        print(f"\n[2] an episode of {len(frames)} frames, P = 1 vs P = {len(prompts)} (prompt embedding is once per set, shown apart)")
        for family, spec in (("CLIP", clip_spec), ("R3M", r3m_spec)):
            one, many, embed = prompt_scaling(spec, prompts, frames, args.device, args.batch_size, args.repeats)
            goal = "goal <= 1.2" if family == "CLIP" else "head grows with P"
            print(f"    {family:<5} P=1 {one * 1000:8.1f} ms   P={len(prompts)} {many * 1000:8.1f} ms   ratio {many / one:6.2f} ({goal});  embedding {len(prompts)} prompts once: {embed:.1f} s")

        print(f"\n[3] R3M head, {args.head_frames} frames x {len(prompts)} prompts: naive per-pair MLP vs split first layer")
        for name, image_dim in (("resnet18", 512), ("resnet50", 2048)):
            naive, split, difference = head_split_vs_naive(image_dim, 768, args.head_frames, len(prompts), args.device, args.repeats)
            inputs, hidden = 2 * image_dim + 768, 1024
            bound = (inputs * hidden + 3 * hidden * hidden) / (3 * hidden * hidden)  # per-pair multiply-adds, naive / split
            print(
                f"    {name} head ({inputs} inputs): naive {naive * 1000:8.1f} ms   split {split * 1000:8.1f} ms   "
                f"speed-up {naive / split:.2f}x (goal >= 2; multiply-add bound {bound:.2f}x)   max |diff| {difference:.1e}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
