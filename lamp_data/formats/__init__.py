"""Trajectories in and out of other robot-learning formats: Minari, robomimic's HDF5, LeRobot.

``export_dataset(DIR, OUT, FORMAT)`` writes a dataset's episodes (frames, state, actions,
success, instructions and chosen VLM reward columns) in a format of :data:`FORMATS`;
``import_dataset(SRC, OUT, FORMAT)`` reads one back as a dataset that ``relabel``, ``view``,
``verify`` and ``pretrain`` take. Each format's package is an extra, imported only when the
format is asked for (``pip install 'lamp-toolkit[minari]'``, ``[hdf5]``, ``[lerobot]``).
"""

from lamp_data.formats.base import FORMATS, ExportOptions, RewardColumn
from lamp_data.formats.export import ExportSummary, export_dataset
from lamp_data.formats.ingest import ImportSummary, import_dataset

__all__ = ["FORMATS", "ExportOptions", "ExportSummary", "ImportSummary", "RewardColumn", "export_dataset", "import_dataset"]
