"""The Chat tab's arena, without its widgets: which models it can compare, the votes it keeps and their summary.

Votes are appended, one JSON object a line, to `saves/.studio/arena/votes.jsonl` (each demo visitor has their own
saves folder): a vote holds the whole round (both conversations), which model sat on which side, whether the names
were hidden, the verdict and the time, so the summary can always be recomputed from the file alone.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from engine.errors import StudioError
from engine.runfolder import CONFIG_FILE
from studio.i18n import t
from studio.runs import WEIGHT_FILES, list_runs
from studio.widgets import ADAPTER_METHODS
from studio.workspace import saves_dir

BASE = "base"  # the arena choice that stands for the top bar's model
VOTES = ("a", "b", "tie", "both_bad")  # A better, B better, equally good, both bad
SIDES = ("a", "b")


def votes_path(saves: Path | None = None) -> Path:
    """The current visitor's (or workstation's) vote file."""
    return Path(saves or saves_dir()) / ".studio" / "arena" / "votes.jsonl"


def model_choices(top_model: str, lang: str, saves: Path | None = None) -> list[tuple[str, str]]:
    """What each side of the arena can load: the top bar's model, finished training runs and finished exports
    (newest first), as (label, value) pairs; a run's or an export's value is its folder."""
    choices = [(t("arena.choice.base", lang, model=short_name(top_model) if top_model else "—"), BASE)]
    for run in list_runs(saves):
        if run["kind"] not in ("train", "export") or run["state"] != "finished":
            continue
        if not any((Path(run["path"]) / name).is_file() for name in WEIGHT_FILES):
            continue
        name = f"{run['model']}/{run['method']}/{run['name']}"
        choices.append((t(f"arena.choice.{'run' if run['kind'] == 'train' else 'export'}", lang, name=name),
                        run["path"]))
    return choices


def choice_config(choice: str | None, top: dict[str, Any], choices: list[tuple[str, str]]) -> dict[str, Any]:
    """One side's chat server config: `top` (the top bar's model, method, template, quantization and the chat's
    backend and dtype) for the base model, else the chosen run's model and weights with the template it was
    trained with. `choices` is what `model_choices` lists now: a value from anywhere else is refused."""
    if not choice:
        raise StudioError("arena_no_choice")
    if choice not in [value for _, value in choices]:
        raise StudioError("arena_unknown_choice", choice=choice)
    if choice == BASE:
        return dict(top)
    folder = Path(choice)
    try:
        run = yaml.safe_load((folder / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        run = {}
    config = {**top, "template": run.get("template")}
    method = str(run.get("finetuning_type") or "lora")
    if (folder / "adapter_model.safetensors").is_file() and method in ADAPTER_METHODS:
        return {**config, "model_name_or_path": run.get("model_name_or_path"), "finetuning_type": method,
                "adapter_name_or_path": str(folder)}
    return {**config, "model_name_or_path": str(folder), "finetuning_type": method, "adapter_name_or_path": None}


def short_name(identity: str) -> str:
    """A model's identity ("<model> + <adapter>", paths) as shown on screen: the last folder of each part."""
    return " + ".join(Path(part.rstrip("/")).name or part for part in identity.split(" + "))


def pick_swapped(blind: bool, rng: random.Random | None = None) -> bool:
    """Whether this round shows the second loaded model as A: at random in blind mode (a favourite side cannot
    give a model away), never otherwise."""
    return bool(blind) and (rng or random).random() < 0.5


def record_vote(path: Path, *, models: dict[str, str], vote: str, blind: bool, swapped: bool,
                conversation: dict[str, list[dict[str, Any]]], system: str = "",
                now: datetime | None = None) -> dict[str, Any]:
    """Append one vote (`models` and `conversation` keyed by the screen's sides "a" and "b") and return it."""
    if vote not in VOTES:
        raise ValueError(f"unknown vote {vote!r}; known: {', '.join(VOTES)}")
    record = {"time": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
              "models": {side: models[side] for side in SIDES}, "vote": vote, "blind": bool(blind),
              "swapped": bool(swapped), "system": system or "",
              "conversation": {side: conversation[side] for side in SIDES}}
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write of one line to a file opened for appending: concurrent voters never interleave within a line.
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return record


def read_votes(path: Path) -> list[dict[str, Any]]:
    """Every vote in the file, oldest first; a line that is not a vote (cut short by a crash) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    votes = []
    for line in lines:
        try:
            vote = json.loads(line)
        except ValueError:
            continue
        models = vote.get("models") if isinstance(vote, dict) else None
        named = isinstance(models, dict) and all(isinstance(models.get(side), str) for side in SIDES)
        if named and vote.get("vote") in VOTES:
            votes.append(vote)
    return votes


def summarise(votes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per pair of models (in name order, whichever side each sat on): wins of each, ties, both bad, the count and
    the first model's win rate, where a tie or "both bad" counts as half a win for each. Most voted pairs first."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for vote in votes:
        models = vote["models"]
        first, second = sorted((models["a"], models["b"]))
        row = pairs.setdefault((first, second), {"model_1": first, "model_2": second, "wins_1": 0, "wins_2": 0,
                                                 "ties": 0, "both_bad": 0, "count": 0})
        row["count"] += 1
        if vote["vote"] in SIDES:
            row["wins_1" if models[vote["vote"]] == first else "wins_2"] += 1
        else:
            row["ties" if vote["vote"] == "tie" else "both_bad"] += 1
    rows = list(pairs.values())
    for row in rows:
        row["win_rate_1"] = (row["wins_1"] + (row["ties"] + row["both_bad"]) / 2) / row["count"]
    return sorted(rows, key=lambda row: (-row["count"], row["model_1"], row["model_2"]))


SUMMARY_COLUMNS = ("model_1", "model_2", "wins_1", "wins_2", "ties", "both_bad", "win_rate_1")


def summary_rows(votes: list[dict[str, Any]], lang: str) -> tuple[list[str], list[list[Any]]]:
    """The summary as a table: localized headers and one row per pair (models by their short names, the win rate
    with its vote count)."""
    headers = [t(f"arena.summary.{column}", lang) for column in SUMMARY_COLUMNS]
    rows = []
    for row in summarise(votes):
        rate = t("arena.summary.rate_value", lang, rate=f"{row['win_rate_1']:.0%}", count=row["count"])
        names = [short_name(row["model_1"]), short_name(row["model_2"])]
        rows.append([*names, *(row[column] for column in SUMMARY_COLUMNS[2:-1]), rate])
    return headers, rows
