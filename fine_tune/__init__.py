"""medmcqa-ft: fine-tune a small LM to answer MedMCQA questions with one strict JSON object."""

__version__ = "0.1.0"
