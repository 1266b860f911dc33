"""Exceptions raised for user input problems.

Every message says what is wrong, where (file, key, record id) and how to fix it.
The CLI prints them without a traceback and exits with status 2.
"""

from __future__ import annotations


class SamloraError(Exception):
    """Base class of every error samlora raises for a user's input."""


class ConfigError(SamloraError):
    """A configuration file or command-line override is invalid.

    ``problems`` holds one line per problem; all of them are reported at once.
    """

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the configuration{where}:\n{lines}")


class ModelLoadError(SamloraError):
    """A model could not be found, loaded or recognised."""


class LoraTargetError(SamloraError):
    """LoRA settings name components or modules the model does not have."""


class AdapterError(SamloraError):
    """An adapter folder is missing, malformed, or made for another base model."""


class DataError(SamloraError):
    """A data set has problems; ``report`` holds every one of them."""

    def __init__(self, message: str, report: object | None = None):
        self.report = report
        super().__init__(message)


class PromptError(SamloraError):
    """A prompt cannot be given to this model (wrong type, bad coordinates)."""


class TrainingError(SamloraError):
    """Training cannot go on (non-finite loss, output folder in use, inconsistent resume state)."""


class ExportError(SamloraError):
    """A model cannot be exported, its export failed verification, or an export folder cannot be used."""
