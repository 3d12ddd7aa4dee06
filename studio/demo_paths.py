"""Where a demo visitor's config may point: every path resolved and confined by `confine_path`.

The engine subprocess runs with its working directory set to the visitor's workspace, so a relative path means the
same there as here; the config still gets absolute paths, so that nothing depends on that. `..` is refused
outright, and symlinks are followed before the check, so a link out of the workspace does not count as inside.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import Setting, StudioError
from engine.model.families import list_models, model_path
from engine.paths import resource_dir
from studio.demo_keys import PATH_ROLES
from studio.demo_settings import DemoSettings

# Read-only folders shipped with the studio that configs may read from (datasets, benchmarks, DeepSpeed presets).
SHIPPED = ("data", "evaluation", "examples")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0", "none", "")


def shipped_roots() -> list[Path]:
    """The shipped read-only folders, resolved."""
    return [resource_dir(name).resolve() for name in SHIPPED]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def confine_path(value: Any, key: str, workspace: Path, *, write: bool = False,
                 within: list[Path] | None = None) -> str:
    """The absolute path `value` (relative: to the workspace) means, or StudioError `demo_path_outside`.

    Writing is allowed inside the workspace only; reading also from the shipped folders; `within` narrows the
    allowed folders further (a model must be one of the visitor's runs, a DeepSpeed file a shipped one).
    """
    text = str(value).strip()
    given = Path(text).expanduser()
    if not text or ".." in given.parts:
        raise StudioError("demo_path_outside", setting=Setting(key), path=text)
    workspace = workspace.resolve()
    resolved = (given if given.is_absolute() else workspace / given).resolve()
    roots = within if within is not None else [workspace] if write else [workspace, *shipped_roots()]
    if not _inside(resolved, [root.resolve() for root in roots]):
        raise StudioError("demo_path_outside", setting=Setting(key), path=text)
    return str(resolved)


def model_allowed(model: str | None, settings: DemoSettings) -> bool:
    """Whether the demo may load `model`: an allow-listed id, or the same registry model on the other hub."""
    model = (model or "").strip()
    if model in settings.models:
        return True
    return any(model_path(name, "modelscope") == model for name in list_models()
               if model_path(name) in settings.models)


def _own_runs(workspace: Path) -> list[Path]:
    return [workspace.resolve() / "saves"]


def _model(value: Any, key: str, workspace: Path, settings: DemoSettings) -> str:
    """An allow-listed model id as given, or one of the visitor's own run folders as an absolute path."""
    text = str(value).strip()
    if model_allowed(text, settings):
        return text
    refused = StudioError("demo_model_not_allowed", model=text, allowed=", ".join(settings.models))
    try:
        folder = confine_path(text, key, workspace, within=_own_runs(workspace))
    except StudioError:
        raise refused from None
    if not Path(folder).is_dir():  # a hub id, or a missing folder the engine would read as one
        raise refused
    return folder


def _adapters(value: Any, key: str, workspace: Path, settings: DemoSettings) -> str:
    """Adapter runs of the visitor (comma-separated, each checked); `compare_with: base` is no path."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    if key == "compare_with" and str(value).strip() == "base":
        return "base"
    return ",".join(confine_path(item, key, workspace, within=_own_runs(workspace))
                    for item in map(str, items) if item.strip())


def _checkpoint(value: Any, key: str, workspace: Path, settings: DemoSettings) -> Any:
    """`resume_from_checkpoint`: true/false (this run's own latest checkpoint) or a checkpoint of the visitor."""
    if isinstance(value, bool) or str(value).strip().lower() in _TRUE + _FALSE:
        return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE
    return confine_path(value, key, workspace, within=_own_runs(workspace))


_ROLES: dict[str, Callable[[Any, str, Path, DemoSettings], Any]] = {
    "write": lambda value, key, ws, _: confine_path(value, key, ws, write=True),
    "read": lambda value, key, ws, _: confine_path(value, key, ws),
    "workspace": lambda value, key, ws, _: confine_path(value, key, ws, within=[ws]),
    "shipped": lambda value, key, ws, _: confine_path(value, key, ws, within=shipped_roots()),
    "model": _model,
    "adapters": _adapters,
    "checkpoint": _checkpoint,
}


def confine_config(config: dict[str, Any], workspace: Path, settings: DemoSettings) -> dict[str, Any]:
    """`config` with every path-like value confined to what the visitor may use, as absolute paths."""
    config = dict(config)
    for key, role in PATH_ROLES.items():
        value = config.get(key)
        if value is None or value is False or (isinstance(value, str) and not value.strip()):
            continue
        config[key] = _ROLES[role](value, key, workspace, settings)
    return config
