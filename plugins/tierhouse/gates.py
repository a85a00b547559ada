"""What a quality gate reports, shared by the Great Expectations checkpoints
(:mod:`tierhouse.grading.quality`) and the de-identification gate
(:mod:`tierhouse.privacy.deidentification`), which sits below grading."""

from __future__ import annotations

from dataclasses import dataclass

from tierhouse.errors import TierhouseError


class QualityGateFailed(TierhouseError, RuntimeError):
    """A checkpoint found data that must not flow on; the message lists every failed expectation."""


class CheckpointError(TierhouseError, ValueError):
    """A checkpoint cannot run as asked: an unknown checkpoint, a missing or unsafe parameter."""


@dataclass(frozen=True)
class ExpectationFailure:
    suite: str
    expectation: str
    kwargs: dict
    observed: object

    def __str__(self) -> str:
        column = self.kwargs.get("column", "")
        return f"{self.suite}: {self.expectation}({column}) observed {self.observed}"


@dataclass(frozen=True)
class CheckpointOutcome:
    checkpoint: str
    success: bool
    evaluated: int
    failures: tuple[ExpectationFailure, ...]
