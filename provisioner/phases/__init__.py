"""Flows as lists of named phases, run by a small manager."""

from provisioner.phases.base import Context, Phase, PhaseManager, PhaseOutcome, PlaybookPhase, Reporter

__all__ = ["Context", "Phase", "PhaseManager", "PhaseOutcome", "PlaybookPhase", "Reporter"]
