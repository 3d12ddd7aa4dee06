"""Write docs/config.md from the config dataclasses."""

from pathlib import Path

from engine.config.reference import render_reference

target = Path(__file__).resolve().parent.parent / "docs" / "config.md"
target.write_text(render_reference(), encoding="utf-8")
print(target)
