"""Names of the text encoders, importable without torch (configs name their default encoder with them).

:mod:`lamp_data.rewards.text` builds the encoders these names stand for.
"""

MINILM = "minilm"
"""Name of the bundled all-MiniLM-L6-v2 encoder."""
DISTILBERT = "distilbert"
"""Name of R3M's text encoder, ``distilbert-base-uncased`` from the Hugging Face cache."""
