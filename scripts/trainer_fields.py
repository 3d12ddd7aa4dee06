"""Write engine/config/trainer_fields.py from the installed transformers' training arguments."""

from pathlib import Path

from engine.config.trainer_table import render_trainer_fields

target = Path(__file__).resolve().parent.parent / "engine" / "config" / "trainer_fields.py"
target.write_text(render_trainer_fields(), encoding="utf-8")
print(target)
