"""Files: model files (JSON, safetensors), checkpoints and run records.

:mod:`.models` saves and loads networks (:mod:`.json_format`, :mod:`.safetensors_format`, the
fields both validate in :mod:`.fields`); :mod:`.checkpoints` is the checkpoint format;
:mod:`.run_records` the history and the record beside a saved model; :mod:`.writing` writes
every file atomically.
"""

from .checkpoints import Checkpoint, RunPosition, load_checkpoint, save_checkpoint
from .models import load, save
from .run_records import EpochRecord
from .writing import atomic_write_bytes, check_save_path

__all__ = ["save", "load", "Checkpoint", "RunPosition", "EpochRecord", "load_checkpoint",
           "save_checkpoint", "atomic_write_bytes", "check_save_path"]
