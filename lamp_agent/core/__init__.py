"""Framework pieces that know nothing of world models: the replay (windows from a dataset's shards
or from episodes in memory) and the agent as a collection policy."""
