"""The stages that run over a dataset: :mod:`.collect` records episodes, :mod:`.relabel` scores
them with a reward model, :mod:`.repair` brings a damaged dataset back. Every episode they play
goes through the one driver in :mod:`.rollout`; their work units run on :mod:`.executors`."""
