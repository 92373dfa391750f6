"""The LAMP agent: a language-conditioned world model with Plan2Explore and an actor-critic.

One :class:`Agent` owns every network and optimizer. ``train_step`` runs one update of, in
order, the masked autoencoder (MWM front-end only), the world model, the Plan2Explore
ensemble (pretraining only), and actor and critic in imagination. ``policy_step`` acts in an
environment one frame at a time. Randomness comes from the agent's own generator states
(one for training, one for acting), so a resumed agent repeats its updates exactly whatever
else the process draws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn
from torch.nn import functional as F

from lamp_agent.actor_critic import Actor, Critic, RewardScale, ReturnScale, lambda_returns
from lamp_agent.checkpoint import read_checkpoint, read_checkpoint_tensors, write_checkpoint
from lamp_agent.config import AgentConfig
from lamp_agent.frontend import CnnFrontend
from lamp_agent.mwm import MaskedWorldModelFrontend
from lamp_agent.networks import ConvDecoder, ConvEncoder, TwoHotSymlog, mlp, zero_init_
from lamp_agent.p2e import Ensemble
from lamp_agent.precision import resolve_precision
from lamp_agent.rssm import RSSM
from lamp_data import schema
from lamp_data.devices import check_device
from lamp_data.errors import DamagedDataError, LampError

MODES = ("pretrain", "finetune")
"""``pretrain``: P2E + VLM reward mix; ``finetune``: the task's own reward."""


@contextlib.contextmanager
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """Let gradients flow through ``modules`` without accumulating into their parameters."""
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


class Agent:
    """World model + Plan2Explore + actor-critic, conditioned on a prompt embedding.

    Args:
        config: Sizes and learning settings (see :func:`lamp_agent.load_preset`).
        image_size: Square frame side in pixels.
        state_dim: Size of the proprio state.
        action_dim: Size of the continuous action in [-1, 1].
        lang_dim: Size of the prompt embedding (384 for all-MiniLM-L6-v2).
        device: torch device string.
        seed: Seeds the weights and the agent's own random streams.
        cameras: Camera views it encodes, stacked along channels (see :mod:`lamp_agent.frontend`);
            default ``config.cameras``, else the front camera alone.

    Raises:
        LampError: ``cameras`` differs from the ``config.cameras`` the config asks for.
    """

    def __init__(self, config: AgentConfig, *, image_size: int, state_dim: int, action_dim: int, lang_dim: int, device: str = "cpu", seed: int = 0, cameras: tuple[str, ...] | None = None):
        self.config = config
        cameras = schema.check_cameras(cameras or config.cameras or schema.DEFAULT_CAMERAS)
        if config.cameras is not None and cameras != config.cameras:
            raise LampError(f"agent config '{config.preset}' encodes cameras {','.join(config.cameras)}, not {','.join(cameras)}")
        self.cameras = cameras
        """Camera names of the views the agent encodes, front first."""
        self.image_keys = schema.image_keys(cameras)
        """Step keys of those views' frames (``image``, ``image_wrist``)."""
        self.sizes = {"image_size": int(image_size), "state_dim": int(state_dim), "action_dim": int(action_dim), "lang_dim": int(lang_dim)}
        self.device = torch.device(check_device(device))
        if config.precision == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise LampError("precision 'bf16' was asked for but this GPU has no bfloat16 support; use fp32")
        self.precision, self.precision_reason = resolve_precision(config.precision, str(self.device))
        """The precision updates run in (``fp32`` or ``bf16``; ``auto`` resolved for this machine), and why."""
        self.seed = int(seed)
        self.step = 0
        self.phase = "pretrain"
        self.info: dict[str, Any] = {}
        """Free-form provenance saved with checkpoints (reward set, alpha, data...)."""
        self._rng: dict[str, dict[str, torch.Tensor]] = {}
        self.reseed(self.seed)
        with self._random("train"):
            self.nets = self._build().to(self.device)
        if config.channels_last:
            for module in self.nets.modules():
                if isinstance(module, (ConvEncoder, ConvDecoder)):
                    module.use_channels_last()
        self.reward_dist = TwoHotSymlog(config.reward_bins).to(self.device)
        self._build_optimizers()

    # ----------------------------------------------------------------- construction
    def _build(self) -> nn.ModuleDict:
        config, sizes = self.config, self.sizes
        feat_dim = config.deter + config.stoch_groups * config.stoch_classes
        image_size, state_dim, lang_dim, action_dim = sizes["image_size"], sizes["state_dim"], sizes["lang_dim"], sizes["action_dim"]
        try:
            if config.frontend == "cnn":
                frontend: nn.Module = CnnFrontend(
                    image_size, state_dim, lang_dim, feat_dim, depth=config.cnn_depth,
                    min_resolution=config.cnn_min_resolution, token_units=config.token_units,
                    units=config.mlp_units, layers=config.mlp_layers, views=len(self.cameras),
                )
            else:
                frontend = MaskedWorldModelFrontend(image_size, state_dim, lang_dim, feat_dim, config, views=len(self.cameras))
        except ValueError as error:
            raise LampError(f"agent front-end '{config.frontend}' cannot take {image_size} px frames: {error}") from error
        rssm = RSSM(frontend.embed_dim, action_dim, config.deter, config.stoch_groups, config.stoch_classes, config.hidden, config.unimix)
        reward_in = feat_dim + (lang_dim if config.reward_lang else 0)
        reward_head = mlp(reward_in, config.reward_bins, config.mlp_units, config.mlp_layers)
        zero_init_(reward_head[-1])
        policy_in = feat_dim + lang_dim
        critic = Critic(policy_in, config.mlp_units, config.mlp_layers, config.reward_bins)
        # built in this order, so that one seed gives the same weights as in earlier releases
        continue_head = mlp(feat_dim, 1, config.mlp_units, config.mlp_layers)
        ensemble = Ensemble(feat_dim + action_dim, rssm.stoch_dim, config.ensemble_size, config.ensemble_units, config.ensemble_layers)
        actor = Actor(policy_in, action_dim, config.mlp_units, config.mlp_layers, config.action_std_min, config.action_std_max)
        if config.actor_init_scale != 1.0:
            actor.scale_output_(config.actor_init_scale)
        return nn.ModuleDict(
            {
                "frontend": frontend,
                "rssm": rssm,
                "reward": reward_head,
                "continue": continue_head,
                "ensemble": ensemble,
                "actor": actor,
                "critic": critic,
                "slow_critic": critic.copy(),
                "intrinsic_stats": RewardScale(config.reward_norm_decay),
                "extrinsic_stats": RewardScale(config.reward_norm_decay),
                "return_scale": ReturnScale(config.return_norm_decay),
            }
        )

    def _world_model_parameters(self) -> list[nn.Parameter]:
        separate = {id(p) for p in self.nets["frontend"].representation_parameters()}
        modules = [self.nets[name] for name in ("frontend", "rssm", "reward", "continue")]
        return [p for module in modules for p in module.parameters() if id(p) not in separate]

    def _build_optimizers(self) -> None:
        config = self.config

        def adam(parameters: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
            return torch.optim.Adam([p for p in parameters if p.requires_grad], lr=lr, eps=1e-6)

        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "model": adam(self._world_model_parameters(), config.model_lr),
            "ensemble": adam(list(self.nets["ensemble"].parameters()), config.ensemble_lr),
            "actor": adam(list(self.nets["actor"].parameters()), config.actor_lr),
            "critic": adam(list(self.nets["critic"].parameters()), config.critic_lr),
        }
        representation = self.nets["frontend"].representation_parameters()
        if representation:
            self.optimizers["representation"] = adam(representation, config.mae_lr)
        self.optimizer_steps = {name: 0 for name in self.optimizers}
        """Steps each optimizer has taken since it was built (the learning-rate warm-up's clock)."""

    def prepare_finetune(self) -> None:
        """Switch to finetuning: the critic gets a fresh linear output head and, with
        ``finetune_critic: probe`` (LAMP), a frozen body (a linear probe); everything else is
        finetuned. The slow critic, the return scale and all optimizers start afresh.
        """
        critic: Critic = self.nets["critic"]
        with self._random("train"):
            critic.reset_head()
        if self.config.finetune_critic == "probe":
            for module in (critic.body, critic.activation):
                for parameter in module.parameters():
                    parameter.requires_grad_(False)
        self.nets["slow_critic"] = critic.copy()
        self.nets["return_scale"] = ReturnScale(self.config.return_norm_decay).to(self.device)
        self.phase = "finetune"
        self._build_optimizers()

    # ----------------------------------------------------------------- randomness
    def reseed(self, seed: int, streams: tuple[str, ...] = ("train", "act")) -> None:
        """Restart the agent's random streams from ``seed`` (weights are left as they are).

        Args:
            seed: The new seed; the streams of one seed never depend on what ran before.
            streams: Which streams: ``train`` (updates) and/or ``act`` (``policy_step``).
        """
        for index, name in enumerate(("train", "act")):
            if name in streams:
                self._rng[name] = self._fresh_rng_state(int(seed) * 2 + index)
        if set(streams) == {"train", "act"}:
            self.seed = int(seed)

    def _fresh_rng_state(self, seed: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        state = {"cpu": generator.get_state()}
        if self.device.type == "cuda":
            cuda = torch.Generator(device=self.device).manual_seed(seed)
            state["cuda"] = cuda.get_state()
        return state

    @contextlib.contextmanager
    def acting_apart(self, seed: int) -> Iterator[None]:
        """Act (:meth:`policy_step`) on a fresh random stream seeded by ``seed``; afterwards the
        agent's own ``act`` stream is where it was, so what is played inside changes nothing
        that follows (e.g. evaluation episodes with sampled actions in the middle of a run)."""
        kept = self._rng["act"]
        self._rng["act"] = self._fresh_rng_state(int(seed))
        try:
            yield
        finally:
            self._rng["act"] = kept

    @contextlib.contextmanager
    def _random(self, stream: str) -> Iterator[None]:
        """Run with the agent's own random stream ``stream``, leaving the global one untouched."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self._rng[stream]["cpu"])
            if devices:
                torch.cuda.set_rng_state(self._rng[stream]["cuda"], self.device)
            try:
                yield
            finally:
                self._rng[stream] = {"cpu": torch.get_rng_state()}
                if devices:
                    self._rng[stream]["cuda"] = torch.cuda.get_rng_state(self.device)

    # ----------------------------------------------------------------- views
    def stack_views(self, source: dict[str, Any]) -> Any:
        """The frames of the agent's cameras in ``source`` (an observation or a batch) stacked
        along the last axis: ``[..., H, W, 3 * len(cameras)]``, the front camera's channels first.

        Raises:
            LampError: ``source`` lacks a view the agent encodes.
        """
        missing = [key for key in self.image_keys if key not in source]
        if missing:
            raise LampError(
                f"the agent encodes cameras {','.join(self.cameras)} but the observation lacks {', '.join(missing)}; "
                f"record or run the env with --cameras {','.join(self.cameras)}"
            )
        if len(self.image_keys) == 1:
            return source[schema.IMAGE]
        views = [source[key] for key in self.image_keys]
        if isinstance(views[0], torch.Tensor):
            return torch.cat(views, -1)
        return np.concatenate([np.asarray(view) for view in views], -1)

    # ----------------------------------------------------------------- acting
    def policy_step(self, obs: dict[str, np.ndarray], lang: np.ndarray, carry: Any = None, explore: bool = True) -> tuple[np.ndarray, Any]:
        """One action for one environment.

        Args:
            obs: ``{"image": uint8 [H, W, 3], "state": float32 [S]}``, plus ``image_wrist`` for an
                agent that encodes the wrist camera.
            lang: float32 ``[lang_dim]`` prompt embedding.
            carry: ``None`` at the start of an episode, else what the last call returned.
            explore: Sample from the policy (True) or take its mean (False).

        Returns:
            The action, float32 ``[A]`` in [-1, 1], and the new carry (latent + action).
        """
        nets = self.nets
        with torch.no_grad(), self._random("act"):
            image = torch.as_tensor(np.asarray(self.stack_views(obs)), device=self.device).unsqueeze(0)
            state = torch.as_tensor(np.asarray(obs["state"], np.float32), device=self.device).unsqueeze(0)
            lang_tensor = torch.as_tensor(np.asarray(lang, np.float32), device=self.device).reshape(1, -1)
            if carry is None:
                latent = nets["rssm"].initial(1, self.device)
                previous = torch.zeros(1, self.sizes["action_dim"], device=self.device)
                is_first = torch.ones(1, dtype=torch.bool, device=self.device)
            else:
                latent, previous = carry["latent"], carry["action"]
                is_first = torch.zeros(1, dtype=torch.bool, device=self.device)
            embed = nets["frontend"].embed(nets["frontend"].observe(image, state, lang_tensor))
            latent, _ = nets["rssm"].obs_step(latent, previous, embed, is_first)
            dist = nets["actor"](torch.cat([nets["rssm"].feat(latent), lang_tensor], -1))
            action = (dist.sample() if explore else dist.mean).clamp(-1, 1)
        return action[0].cpu().numpy().astype(np.float32), {"latent": latent, "action": action}

    # ----------------------------------------------------------------- learning
    def mix_rewards(self, intrinsic: torch.Tensor, extrinsic: torch.Tensor, update: bool = True) -> torch.Tensor:
        """LAMP's pretraining reward: ``alpha * norm(intrinsic) + (1 - alpha) * norm(extrinsic)``.

        Args:
            intrinsic: Plan2Explore disagreement.
            extrinsic: The VLM reward head's prediction, same shape.
            update: Fold these values into the normalisers' statistics first.
        """
        alpha = self.config.alpha
        intrinsic_stats, extrinsic_stats = self.nets["intrinsic_stats"], self.nets["extrinsic_stats"]
        if update:
            intrinsic_stats.update(intrinsic)
            extrinsic_stats.update(extrinsic)
        mixed = torch.zeros_like(intrinsic)
        if alpha > 0:
            mixed = mixed + alpha * intrinsic_stats.normalize(intrinsic)
        if alpha < 1:
            mixed = mixed + (1 - alpha) * extrinsic_stats.normalize(extrinsic)
        return mixed

    def reward_logits(self, feat: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        """The reward head's logits ``[..., bins]`` for features ``[..., F]`` under prompts ``[..., L]``.

        With ``reward_lang`` the head reads the prompt embedding beside the features, so a
        batch whose sequences were relabelled with different prompts trains one reward per
        prompt instead of their average.
        """
        if self.config.reward_lang:
            feat = torch.cat([feat, lang.expand(*feat.shape[:-1], lang.shape[-1])], -1)
        return self.nets["reward"](feat).float()

    def imagined_rewards(self, feats: torch.Tensor, actions: torch.Tensor, mode: str, lang: torch.Tensor, update: bool = True) -> dict[str, torch.Tensor]:
        """Rewards ``[H, N]`` on arriving at imagined steps 1..H.

        Args:
            feats: ``[H + 1, N, F]`` imagined features (step 0 is the start).
            actions: ``[H, N, A]`` actions taken at steps 0..H-1.
            mode: ``pretrain`` (mixed P2E + VLM head) or ``finetune`` (reward head).
            lang: ``[N, L]`` prompt embedding of each imagined trajectory.
            update: Update the reward normalisers (pretraining only).

        Returns:
            ``{"reward", "extrinsic"}`` and, when pretraining, ``"intrinsic"``.
        """
        extrinsic = self.reward_dist.mean(self.reward_logits(feats[1:], lang.unsqueeze(0)))
        if mode == "finetune":
            return {"reward": extrinsic, "extrinsic": extrinsic}
        horizon, count = actions.shape[:2]
        inputs = torch.cat([feats[:-1], actions], -1).reshape(horizon * count, -1)
        intrinsic = self.nets["ensemble"].disagreement(inputs).view(horizon, count)
        return {"reward": self.mix_rewards(intrinsic, extrinsic, update), "extrinsic": extrinsic, "intrinsic": intrinsic}

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast of forward passes when ``precision`` is ``bf16``, else nothing."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _clip_step(self, name: str, loss: torch.Tensor, clip: float) -> None:
        optimizer = self.optimizers[name]
        warmup = self.config.lr_warmup
        if warmup:
            factor = min(1.0, (self.optimizer_steps[name] + 1) / warmup)
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("base_lr", group["lr"]) * factor
        with torch.autocast(self.device.type, enabled=False):  # autocast is for forward passes only
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(parameters, clip)
            optimizer.step()
        self.optimizer_steps[name] += 1

    def train_step(self, batch: dict[str, torch.Tensor], *, mode: str = "pretrain", policy: bool = True) -> dict[str, float]:
        """One update of every part of the agent on a batch of sequences.

        Args:
            batch: As :class:`lamp_agent.core.replay.ShardReplay` yields (``[B, L, ...]``) plus
                ``lang`` float32 ``[B, lang_dim]``. Pretraining reads ``vlm_reward``,
                finetuning reads ``reward``.
            mode: ``pretrain`` or ``finetune``.
            policy: Also update actor and critic; False trains the world model (and ensemble)
                alone, as the initial updates on prefill data do, so the policy does not chase
                a model that has not yet learned what actions do.

        Returns:
            Scalar metrics (losses, rewards in imagination, entropy).
        """
        if mode not in MODES:
            raise LampError(f"train mode must be one of {', '.join(MODES)}, got {mode!r}")
        target_key = "vlm_reward" if mode == "pretrain" else "reward"
        missing = [key for key in (*self.image_keys, "state", "action", "is_first", "lang", target_key) if key not in batch]
        if missing:
            raise LampError(f"training batch lacks {', '.join(missing)} (mode {mode})")
        with self._random("train"), self._autocast():
            metrics = self._train_step(batch, mode, target_key, policy)
        self.step += 1
        return metrics

    def _train_step(self, batch: dict[str, torch.Tensor], mode: str, target_key: str, policy: bool) -> dict[str, float]:
        config, nets, device = self.config, self.nets, self.device
        image = self.stack_views(batch).to(device)
        batch_size, length = image.shape[:2]
        state = batch["state"].to(device).float()
        action = batch["action"].to(device).float()
        is_first = batch["is_first"].to(device).bool()
        is_terminal = batch.get("is_terminal", torch.zeros_like(batch["is_first"])).to(device).bool()
        target = batch[target_key].to(device).float()
        lang = batch["lang"].to(device).float()
        lang_seq = lang.unsqueeze(1).expand(-1, length, -1)
        flat = lambda value: value.reshape(batch_size * length, *value.shape[2:])  # noqa: E731
        metrics: dict[str, float] = {}
        frontend, rssm = nets["frontend"], nets["rssm"]

        if "representation" in self.optimizers:
            frames = min(batch_size * length, config.mae_batch_size * config.mae_seq_len)
            pick = torch.randperm(batch_size * length, device=device)[:frames]
            with torch.autocast(device.type, enabled=False):  # the masked autoencoder trains in float32
                losses = frontend.representation_losses(flat(image)[pick], flat(state)[pick], flat(lang_seq)[pick], flat(target)[pick])
            loss = sum(value.mean() for value in losses.values())
            self._clip_step("representation", loss, config.model_grad_clip)
            metrics.update({f"{name}_loss": value.mean().item() for name, value in losses.items()})

        observed = frontend.observe(flat(image), flat(state), flat(lang_seq))
        embed = frontend.embed(observed).view(batch_size, length, -1)
        posterior, prior = rssm.observe(embed, action, is_first)
        feat = rssm.feat(posterior)
        pick = None
        if config.image_loss_fraction < 1.0:
            frames = batch_size * length
            pick = torch.randperm(frames, device=device)[: max(1, round(config.image_loss_fraction * frames))]
        decoder = frontend.decoder_losses(flat(feat), observed, pick)
        reward_logits = self.reward_logits(feat, lang_seq)
        reward_loss = self.reward_dist.loss(reward_logits, target).mean()
        continue_loss = F.binary_cross_entropy_with_logits(nets["continue"](feat).squeeze(-1), (~is_terminal).float())
        dynamics, representation = rssm.kl_losses(posterior["logits"].float(), prior["logits"].float(), config.free_bits)
        model_loss = (
            sum(value.mean() for value in decoder.values()) + reward_loss + continue_loss
            + config.kl_dynamics * dynamics.mean() + config.kl_representation * representation.mean()
        )
        self._clip_step("model", model_loss, config.model_grad_clip)
        metrics.update({f"{name}_loss": value.mean().item() for name, value in decoder.items()})
        metrics.update(
            model_loss=model_loss.item(), reward_loss=reward_loss.item(), continue_loss=continue_loss.item(),
            reward_excess=(reward_loss - self.reward_dist.floor(target).mean()).item(),
            reward_error=(self.reward_dist.mean(reward_logits.detach()) - target).abs().mean().item(),
            kl_dynamics=dynamics.mean().item(), kl_representation=representation.mean().item(),
        )

        feat = feat.detach()
        if mode == "pretrain":
            inputs = torch.cat([feat[:, :-1], action[:, 1:]], -1)
            keep = ~is_first[:, 1:]
            ensemble_loss = nets["ensemble"].loss(inputs[keep], posterior["stoch"][:, 1:].detach().flatten(-2)[keep])
            self._clip_step("ensemble", ensemble_loss, config.model_grad_clip)
            metrics["ensemble_loss"] = ensemble_loss.item()

        if policy:
            replayed = None
            if mode == "finetune" and config.repval_loss > 0:
                replayed = {"feat": feat, "lang": lang_seq, "reward": target, "is_terminal": is_terminal}
            metrics.update(self._train_actor_critic({key: flat(value.detach()) for key, value in posterior.items()}, flat(lang_seq), mode, replayed))
        return metrics

    def _train_actor_critic(self, start: dict[str, torch.Tensor], lang: torch.Tensor, mode: str,
                            replayed: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Actor and critic on trajectories imagined from every ``start`` state; with ``replayed``
        (the batch's ``[B, L]`` features, prompts, rewards and terminal flags, in finetuning),
        the critic also learns DreamerV3's replay value loss on the recorded sequences."""
        config, nets = self.config, self.nets
        rssm, actor, critic = nets["rssm"], nets["actor"], nets["critic"]

        with _frozen(rssm, nets["reward"], nets["continue"], nets["ensemble"], critic):
            latent = start
            feats, actions, entropies = [rssm.feat(latent)], [], []
            for _ in range(config.horizon):
                dist = actor(torch.cat([feats[-1].detach(), lang], -1))
                if dist.loc.dtype != torch.float32:  # bf16 autocast: sample actions in float32
                    dist = torch.distributions.Normal(dist.loc.float(), dist.scale.float())
                action = Actor.clip(dist.rsample())
                entropies.append(dist.entropy().sum(-1))
                latent = rssm.img_step(latent, action)
                feats.append(rssm.feat(latent))
                actions.append(action)
            feats_stack, actions_stack = torch.stack(feats), torch.stack(actions)
            rewards = self.imagined_rewards(feats_stack, actions_stack, mode, lang)
            discount = config.discount * torch.sigmoid(nets["continue"](feats_stack[1:]).squeeze(-1).float())
            lang_h = lang.unsqueeze(0).expand(config.horizon + 1, -1, -1)
            values = critic.value(torch.cat([feats_stack, lang_h], -1))
            returns = lambda_returns(rewards["reward"], values, discount, config.lambda_)
            weight = torch.cumprod(torch.cat([torch.ones_like(discount[:1]), discount[:-1]]), 0).detach()
            nets["return_scale"].update(returns)
            entropy = torch.stack(entropies)
            actor_loss = -(weight * (returns / nets["return_scale"].scale() + config.actor_entropy * entropy)).mean()
        self._clip_step("actor", actor_loss, config.ac_grad_clip)

        critic_in = torch.cat([feats_stack[:-1].detach(), lang_h[:-1]], -1)
        logits = critic(critic_in).float()
        with torch.no_grad():
            slow_values = nets["slow_critic"].value(critic_in)
        critic_loss = (weight * (critic.dist.loss(logits, returns.detach()) + critic.dist.loss(logits, slow_values))).mean()
        if replayed is not None:
            critic_loss = critic_loss + config.repval_loss * self._replay_value_loss(replayed, returns[0].detach())
        self._clip_step("critic", critic_loss, config.ac_grad_clip)
        with torch.no_grad():
            for slow, fast in zip(nets["slow_critic"].parameters(), critic.parameters()):
                slow.lerp_(fast, config.slow_critic_fraction)

        metrics = {
            "actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(),
            "actor_entropy": entropy.mean().item(), "imagined_return": returns.mean().item(),
            "imagined_reward": rewards["reward"].mean().item(), "extrinsic_reward": rewards["extrinsic"].mean().item(),
        }
        if "intrinsic" in rewards:
            metrics["intrinsic_reward"] = rewards["intrinsic"].mean().item()
        return metrics

    def _replay_value_loss(self, replayed: dict[str, torch.Tensor], imagined: torch.Tensor) -> torch.Tensor:
        """DreamerV3's ``repval``: the critic's loss on lambda-returns along the replayed sequences.

        Step ``t`` of a sequence holds the reward received on arriving at it, so the return of
        step ``t`` is ``r[t+1] + gamma * (1 - terminal[t+1]) * ((1 - lambda) * boot[t+1] + lambda * R[t+1])``
        with ``boot`` the imagined lambda-return from each replayed state (``imagined``, flat
        ``[B * L]``) and ``R[L-1] = boot[L-1]``; the slow critic regularises it as in imagination.
        """
        config, critic = self.config, self.nets["critic"]
        feat, lang = replayed["feat"].detach(), replayed["lang"]
        batch_size, length = feat.shape[:2]
        boot = imagined.view(batch_size, length).float()
        reward = replayed["reward"][:, 1:].float()
        discount = config.discount * (~replayed["is_terminal"][:, 1:]).float()
        returns = [boot[:, -1]]
        for step in reversed(range(length - 1)):
            returns.append(reward[:, step] + discount[:, step] * ((1 - config.lambda_) * boot[:, step + 1] + config.lambda_ * returns[-1]))
        target = torch.stack(returns[::-1][:-1], 1)
        critic_in = torch.cat([feat[:, :-1], lang[:, :-1]], -1)
        logits = critic(critic_in).float()
        with torch.no_grad():
            slow_values = self.nets["slow_critic"].value(critic_in)
        return (critic.dist.loss(logits, target) + critic.dist.loss(logits, slow_values)).mean()

    @torch.no_grad()
    def open_loop(self, batch: dict[str, torch.Tensor], context: int) -> dict[str, np.ndarray]:
        """Dreamer's check of a world model: filter the first ``context`` frames of each sequence,
        then predict the rest from the recorded actions alone, and decode every step.

        Sampling runs on a fixed seed of its own, so calling this changes no random stream of
        the agent's and leaves its training exactly as it would be without.

        Args:
            batch: ``[B, L, ...]`` sequences with ``image`` (and the agent's other views),
                ``state``, ``action``, ``is_first`` and ``lang``.
            context: Steps observed before the model runs open loop (at least 1, below ``L``).

        Returns:
            uint8 ``[B, L, H, V * W, 3]`` arrays, the agent's V camera views side by side:
            ``truth``, ``model`` (the decoded prediction) and ``error`` (their absolute difference).
        """
        nets, device = self.nets, self.device
        image = self.stack_views(batch).to(device)
        batch_size, length = image.shape[:2]
        if not 1 <= context < length:
            raise LampError(f"open-loop context must be between 1 and {length - 1}, got {context}")
        lang = batch["lang"].to(device).float().unsqueeze(1).expand(-1, length, -1)
        flat = lambda value: value.reshape(batch_size * length, *value.shape[2:])  # noqa: E731
        frontend, rssm = nets["frontend"], nets["rssm"]
        action = batch["action"].to(device).float()
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            observed = frontend.observe(flat(image), flat(batch["state"].to(device).float()), flat(lang))
            embed = frontend.embed(observed).view(batch_size, length, -1)
            posterior, _ = rssm.observe(embed[:, :context], action[:, :context], batch["is_first"].to(device).bool()[:, :context])
            state = {key: value[:, -1] for key, value in posterior.items()}
            feats = [rssm.feat(posterior)]
            for step in range(context, length):
                state = rssm.img_step(state, action[:, step])
                feats.append(rssm.feat(state).unsqueeze(1))
            predicted = frontend.decode_image(torch.cat(feats, 1).flatten(0, 1)).view(batch_size, length, *image.shape[2:])
        truth = image.float() / 255.0

        def as_uint8(value: torch.Tensor) -> np.ndarray:
            views = torch.cat(value.split(3, -1), -2)  # [..., H, W, 3V] -> [..., H, V * W, 3]
            return (views * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()

        truth_image, model_image = as_uint8(truth), as_uint8(predicted)
        # the error shown is the difference of the two images shown, computed in integers
        error = np.abs(truth_image.astype(np.int16) - model_image.astype(np.int16)).astype(np.uint8)
        return {"truth": truth_image, "model": model_image, "error": error}

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write a checkpoint folder (see :mod:`lamp_agent.checkpoint`) and return it."""
        return write_checkpoint(
            path,
            {name: value.detach().to("cpu").contiguous() for name, value in self.nets.state_dict().items()},
            {"optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}, "rng": self._rng,
             "optimizer_steps": dict(self.optimizer_steps)},
            {
                "preset": self.config.preset,
                "config": self.config.to_dict(),
                "sizes": self.sizes,
                "cameras": list(self.cameras),
                "seed": self.seed,
                "phase": self.phase,
                "step": self.step,
                "info": self.info,
            },
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Agent":
        """Rebuild an agent exactly as it was saved, from a checkpoint folder or a pretraining run
        folder (its newest checkpoint).

        Raises:
            LampError: The folder is missing, a file is absent or damaged (checksum), or the
                weights do not fit the recorded config.
        """
        folder, meta = read_checkpoint(path)
        try:
            config = AgentConfig.from_dict(meta["config"])
            sizes = {key: int(meta["sizes"][key]) for key in ("image_size", "state_dim", "action_dim", "lang_dim")}
        except (KeyError, TypeError, ValueError) as error:
            raise DamagedDataError(f"damaged agent checkpoint {folder}: bad config ({error})") from error
        cameras = schema.check_cameras(meta.get("cameras") or schema.DEFAULT_CAMERAS)
        agent = cls(config, **sizes, device=device, seed=int(meta.get("seed", 0)), cameras=cameras)
        if meta.get("phase") == "finetune":
            agent.prepare_finetune()
        try:
            tensors, state = read_checkpoint_tensors(folder, agent.device)
            agent.nets.load_state_dict(tensors, strict=True)
            for name, optimizer in agent.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            agent.optimizer_steps.update({name: int(steps) for name, steps in state.get("optimizer_steps", {}).items() if name in agent.optimizers})
            agent._rng = {
                stream: {key: value.cpu() for key, value in generators.items() if key == "cpu" or agent.device.type == "cuda"}
                for stream, generators in state["rng"].items()
            }
        except (SafetensorError, RuntimeError, KeyError, ValueError, OSError) as error:
            raise DamagedDataError(f"agent checkpoint {folder} does not fit its config: {str(error).splitlines()[0]}") from error
        agent.step = int(meta.get("step", 0))
        agent.info = dict(meta.get("info", {}))
        return agent
