"""Reading Prometheus expositions in tests, with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

# The samples each metric type exposes, by suffix (the text format's rules).
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


class Exposition:
    """A parsed /metrics text: families by name, and sample lookup by labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def names(self) -> set[str]:
        """Every sample name the families can expose (a labelled metric with no series yet
        still declares its type, so its names are known)."""
        return {f.name + s for f in self.families.values() for s in SAMPLE_SUFFIXES[f.type]}

    def samples(self, name: str, **labels: str) -> list[float]:
        """Values of the samples called `name` whose labels include `labels`."""
        return [
            s.value
            for f in self.families.values()
            for s in f.samples
            if s.name == name and _has(s.labels, labels)
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the matching samples (0 when none)."""
        return sum(self.samples(name, **labels))

    def label_sets(self, name: str) -> list[dict[str, str]]:
        """The label sets of a sample name."""
        return [dict(s.labels) for f in self.families.values() for s in f.samples if s.name == name]


def _has(have: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())
