"""Framework pieces that know nothing of world models: the replay (windows from a dataset's shards
or from episodes in memory) and the agent as a collection policy."""

ON_DAMAGE = ("fail", "skip")
"""What a stream does with a damaged shard: stop with an error, or leave it out and record it."""
