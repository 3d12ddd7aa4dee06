"""What the tabs share while the UI is built: components by name and how each is labelled in every language."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from studio.i18n import component_update


@dataclass
class Labelled:
    """How one component is relabelled: its locale key base, its kind, and its choice values if any."""

    key: str
    kind: str
    choices: list[Any] | None = None
    # Texts that are not plain locale lookups (choices marked for this machine, an info with a legend): language →
    # extra gr.update fields.
    extra: Callable[[str], dict[str, Any]] | None = None


@dataclass
class Context:
    """Components by name (config widgets are named after their config key) plus their locale keys."""

    lang: str = "en"
    initial: dict[str, Any] = field(default_factory=dict)  # values that replace field defaults (the model's)
    components: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Labelled] = field(default_factory=dict)

    def add(self, name: str, component: Any, key: str | None = None, kind: str = "input",
            choices: list[Any] | None = None, extra: Callable[[str], dict[str, Any]] | None = None) -> Any:
        """Register a component under `name`; with a locale `key` it is relabelled when the language changes."""
        if name in self.components:
            raise ValueError(f"component {name!r} registered twice")
        self.components[name] = component
        if key is not None:
            self.labels[name] = Labelled(key, kind, choices, extra)
        return component

    def __getitem__(self, name: str) -> Any:
        return self.components[name]

    def relabel(self, lang: str) -> list[Any]:
        """gr.update payloads for every labelled component, in `labelled_components()` order."""
        updates = []
        for item in self.labels.values():
            update = component_update(item.key, item.kind, lang, item.choices)
            updates.append({**update, **item.extra(lang)} if item.extra else update)
        return updates

    def labelled_components(self) -> list[Any]:
        """The components `relabel` returns updates for."""
        return [self.components[name] for name in self.labels]
