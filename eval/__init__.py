"""Evaluation side of the LAMP toolkit: finetuning on held-out tasks, statistics, leaderboards."""
