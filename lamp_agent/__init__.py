"""The LAMP agent: a language-conditioned world model pretrained with Plan2Explore and VLM rewards.

``Agent`` is the world model (RSSM with discrete latents, CNN or Masked World Models
front-end), the Plan2Explore ensemble and the actor-critic; ``pretrain`` trains one from a
dataset's shards and reward set while collecting new episodes into it.
"""

from lamp_agent.agent import Agent
from lamp_agent.config import PRESETS, AgentConfig, load_preset
from lamp_agent.pretrain import PretrainConfig, PretrainSummary, pretrain

__all__ = ["PRESETS", "Agent", "AgentConfig", "PretrainConfig", "PretrainSummary", "load_preset", "pretrain"]
