"""Framework pieces that know nothing of world models: in-memory replay, env driver."""
