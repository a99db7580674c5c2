"""medmcqa-ft: fine-tune a small LM to answer MedMCQA questions with one strict JSON object."""

from fine_tune import bounds as _bounds

_bounds.put_in_force()  # before any entry script imports transformers, peft, bitsandbytes or TRL

__version__ = "0.1.0"
