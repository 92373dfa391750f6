"""Framework pieces that know nothing of world models: in-memory replay, the data stream, the agent as a policy."""
