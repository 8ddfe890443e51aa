"""The journeys the engine runs: the current version of each, and every older version an
enrollment may still be on (an enrollment finishes on the version it entered)."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.journeys.compiler import CompiledJourney, compile_journey
from orchestrator.journeys.format import JourneyFile
from orchestrator.journeys.loader import JourneyError, LoadedJourney


@dataclass
class JourneyCatalog:
    current: dict[str, CompiledJourney] = field(default_factory=dict)
    versions: dict[tuple[str, str], CompiledJourney] = field(default_factory=dict)
    errors: list[JourneyError] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)
    refreshed_at: float = 0.0  # monotonic time of the last refresh from the database
    # Every event name that some version reacts to (trigger, exit_on, wait_for, goal). An
    # event outside it cannot change any enrollment, so ingesting it takes no customer lock.
    reacting_events: frozenset[str] = frozenset()

    def add_current(self, loaded: LoadedJourney) -> CompiledJourney:
        compiled = compile_journey(loaded.definition, loaded.version)
        self.current[compiled.id] = compiled
        self._add(compiled)
        return compiled

    def add_version(self, journey_id: str, version: str, source: dict) -> CompiledJourney:
        if (journey_id, version) not in self.versions:
            self._add(compile_journey(JourneyFile.model_validate(source), version))
        return self.versions[(journey_id, version)]

    def add_compiled(self, journey: CompiledJourney) -> None:
        """A version compiled elsewhere (a broadcast's one-step journey): known, never current."""
        self._add(journey)

    def _add(self, journey: CompiledJourney) -> None:
        self.versions[(journey.id, journey.version)] = journey
        self.reacting_events = self.reacting_events | events_reacted_to(journey)

    def version(self, journey_id: str, version: str) -> CompiledJourney | None:
        return self.versions.get((journey_id, version))

    def set_current(self, journey_id: str, version: str | None) -> None:
        if version is None:
            self.current.pop(journey_id, None)
        elif (journey_id, version) in self.versions:
            self.current[journey_id] = self.versions[(journey_id, version)]

    def triggered_by(self, event_name: str) -> list[CompiledJourney]:
        """Journeys taking new entrants on this event: current versions, not paused."""
        return [
            j for j in self.current.values() if j.definition.trigger.event == event_name and j.id not in self.paused
        ]


def events_reacted_to(journey: CompiledJourney) -> set[str]:
    definition = journey.definition
    names = {definition.trigger.event, *definition.exit_on}
    if definition.goal:
        names.add(definition.goal.event)
    names.update(node.event for node in journey.nodes.values() if node.event)
    return names
