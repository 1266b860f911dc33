"""Tasks: what is trained and how it is scored, per model kind (promptable, concept)."""

from __future__ import annotations

from samlora.config import Config
from samlora.models.loading import LoadedModel


def make_task(loaded: LoadedModel, cfg: Config):
    """The task object the Trainer drives for this model's family."""
    if loaded.spec.task == "promptable":
        from samlora.tasks.promptable.task import PromptableTask

        return PromptableTask(loaded, cfg)
    from samlora.tasks.concept.task import ConceptTask

    return ConceptTask(loaded, cfg)
