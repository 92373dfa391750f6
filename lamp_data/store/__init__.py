"""The durable sharded trajectory store: WebDataset shards of whole episodes plus sidecars.

See :mod:`lamp_data.store.layout` for the folder layout and the crash-safety rules.
"""

from lamp_data.store.card import dataset_card, write_dataset_card
from lamp_data.store.layout import ShardInfo
from lamp_data.store.reader import DamagedShardError, Dataset, EpisodeIndex, index_episodes, iter_episodes, open_dataset
from lamp_data.store.verify import VerifyReport, verify_dataset
from lamp_data.store.writer import RewardSetWriter

__all__ = [
    "DamagedShardError",
    "Dataset",
    "EpisodeIndex",
    "RewardSetWriter",
    "ShardInfo",
    "VerifyReport",
    "dataset_card",
    "index_episodes",
    "iter_episodes",
    "open_dataset",
    "verify_dataset",
    "write_dataset_card",
]

