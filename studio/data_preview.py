"""*Look at the data*, computed in a child process: `python -m studio.data_preview` reads the dataset, renders one
row as the model sees it, counts token lengths and makes small previews of the page's images, videos and audio,
then answers with one JSON line.

A dataset can be far larger than its file (a compressed Parquet of a million rows is a few kilobytes), and reading
it is the user's choice, so the studio's own process never does it: the child runs under the same memory cap and
timeout as the pre-launch checks, and a failure there costs one message, not the studio.

Media reach the page as small `data:` URIs (images as re-encoded thumbnails; audio and video copied only under a
size cap), never as served files, and only files inside the data folders are read (`MediaPaths`). The page's
HTML is made here in the studio from the child's plain answer (`media_html`), every user value escaped.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.loader import media_folder
from engine.data.media import (
    EXTENSIONS,
    KINDS,
    PILLOW_VIDEO_EXTENSIONS,
    PLACEHOLDERS,
    load_image,
    load_video,
    probe_media,
)
from engine.errors import StudioError, error_from_json, error_to_json
from engine.preflight import cap_memory
from studio.markup import escape_html, html_error, html_text
from studio.supervisor import run_json_child

PREVIEW_TIMEOUT_S = 120.0
PAGE_SIZE = 5
THUMB_PX = 160  # longest side of an image thumbnail
MIN_THUMB_PX = 64  # smaller images are enlarged to about this
GIF_FRAMES = 24  # frames kept of an animated GIF / WebP video (two a second)
EMBED_MB = 2.0  # largest audio or video file copied into the page
PAGE_EMBED_MB = 8.0  # all the media of one preview together
ITEMS_PER_ROW = 8  # media items shown per row (the rest are counted)
# The MIME type a browser plays each audio / video file type with (the types engine.data.media reads; the
# animated GIF / WebP videos become animated thumbnails instead).
PLAYABLE = {".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/mp4", ".wav": "audio/wav",
            ".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg", ".m4a": "audio/mp4"}
_ICONS = {"images": "🖼", "videos": "🎬", "audios": "🔊"}
_CHIP = "display:inline-block;border-radius:9px;padding:0 7px;margin:0 2px;font-size:12px;font-weight:600;"
_CHIP_COLOURS = {"images": "background:#dbeafe;color:#1e3a8a;", "videos": "background:#ede9fe;color:#4c1d95;",
                 "audios": "background:#fef3c7;color:#78350f;", "missing": "background:#fee2e2;color:#991b1b;"}


@dataclass
class Preview:
    """What the preview shows: a page of raw rows, one row rendered, length statistics (or why they failed)."""

    rows: list[dict]
    total: int
    rendered: str = ""
    stats: dict[str, Any] | None = None
    error: StudioError | None = None  # rendering or counting failed (the rows are still shown)
    media: list[dict] = field(default_factory=list)  # the page's rows with media (`media_cards`), if any has some


def preview_data(**request: Any) -> Preview:
    """Run the preview in a child process; the keywords are `collect`'s. Raises the StudioError of reading rows."""
    import pandas as pd

    answer = run_json_child([sys.executable, "-m", "studio.data_preview"], stdin_text=json.dumps(request),
                            timeout=PREVIEW_TIMEOUT_S,
                            on_timeout=StudioError("inspection_timeout", seconds=f"{PREVIEW_TIMEOUT_S:g}"),
                            on_crash=lambda reason: StudioError("inspection_failed", reason=reason))
    stats = answer.get("stats")
    if stats is not None:
        stats = {**stats, "histogram": pd.DataFrame(stats["histogram"])}
    error = error_from_json(answer["render_error"]) if answer.get("render_error") else None
    return Preview(answer["rows"], answer["total"], answer.get("rendered", ""), stats, error, answer.get("media", []))


def collect(dataset_dir: str, dataset: str, model_path: str | None, template: str | None, cutoff_len: int, index: int,
            train_on_prompt: bool, mask_history: bool, placeholders: dict[str, str], media_dir: str | None = None,
            link_roots: list[str] | None = None, embed_mb: float = EMBED_MB) -> dict[str, Any]:
    """The preview as JSON-ready values (in the child). Reading the rows fails the whole; rendering only its part.

    `media_dir` and `link_roots` are `MediaPaths`'s; `embed_mb` caps each audio or video file copied in. Without
    a model only the rows and their media are collected (an upload's first look).
    """
    from studio.datasets import length_stats, local_attr, preview_rows, render_preview

    page = index // PAGE_SIZE
    rows, total = preview_rows(dataset_dir, dataset, page=page, page_size=PAGE_SIZE)
    answer: dict[str, Any] = {"rows": json.loads(json.dumps(rows, default=str)), "total": total}
    attr = local_attr(dataset_dir, dataset)
    if any(attr.columns.get(kind) for kind in KINDS):
        paths = MediaPaths(dataset_dir, media_dir, link_roots)
        answer["media"] = media_cards(attr, rows, page * PAGE_SIZE, index, paths, embed_mb)
    if model_path is None:
        return answer
    try:
        answer["rendered"] = render_preview(dataset_dir, dataset, model_path, template, cutoff_len, index,
                                            train_on_prompt=train_on_prompt, mask_history=mask_history,
                                            placeholders=placeholders)
        stats = length_stats(dataset_dir, dataset, model_path, template, cutoff_len)
    except StudioError as err:
        answer["render_error"] = error_to_json(err)
        return answer
    histogram = stats.pop("histogram")
    answer["stats"] = {**stats, "histogram": {"bucket": [str(b) for b in histogram["bucket"]],
                                              "count": [int(c) for c in histogram["count"]]}}
    return answer


# --- media, in the child


class MediaPaths:
    """Where a row's media reference points, and whether the preview may read it.

    Relative references start at `media_dir` when set, else the dataset folder (LLaMA-Factory's rule). A file is
    read only when its path lies inside one of those two folders (`..` cannot leave them); with `link_roots` (the
    public demo) the place its links lead to must also lie inside one of them.
    """

    def __init__(self, dataset_dir: str, media_dir: str | None, link_roots: list[str] | None) -> None:
        self.base = media_folder(dataset_dir, media_dir)
        self.roots = [Path(os.path.normpath(media_folder(dataset_dir, folder))) for folder in {None, media_dir}]
        self.link_roots = None if link_roots is None else [Path(root).resolve() for root in link_roots]

    def locate(self, ref: str) -> tuple[Path | None, str | None]:
        """The file `ref` names, or why it is not read: (None, the locale key of the note)."""
        if re.match(r"^([a-z][a-z0-9+.-]*://|data:)", ref, re.I):
            return None, "data.media.remote"
        path = Path(os.path.normpath(self.base / os.path.expanduser(ref)))
        inside = any(path == root or path.is_relative_to(root) for root in self.roots)
        if inside and self.link_roots is not None:
            real = path.resolve()
            inside = any(real == root or real.is_relative_to(root) for root in self.link_roots)
        if not inside:
            return None, "data.media.outside"
        if not path.is_file():
            return None, "data.media.missing"
        return path, None


def media_cards(attr: Any, rows: list[dict], first: int, selected: int, paths: MediaPaths,
                embed_mb: float) -> list[dict]:
    """One card per row of the page: its turns of text and a preview (or a note) for each media item.

    A card: {"row", "selected", "turns": [[role, text]], "media": {kind: [item]}, "more": {kind: n},
    "error": a StudioError as JSON when the row cannot be read}; an item: {"name", "shown": "img" | "video" |
    "audio" | None, "uri", "note": [locale key, values] | None, "error": engine.data.media's StudioError as JSON
    when the file does not decode}.
    """
    from engine.data import convert_rows
    from studio.datasets import one_row_attr

    budget = [PAGE_EMBED_MB * 1024 * 1024]
    cards = []
    for offset, row in enumerate(rows):
        card: dict[str, Any] = {"row": first + offset, "selected": first + offset == selected}
        try:
            (example,) = convert_rows(one_row_attr(attr, row), [row], require_response=False)
        except StudioError as err:
            cards.append({**card, "error": error_to_json(err)})
            continue
        turns = [[m["role"], m["content"]] for m in example["messages"]]
        turns += [[key, example[key]] for key in ("chosen", "rejected") if example.get(key)]
        card.update(turns=turns, media={}, more={})
        for kind in KINDS:
            refs = example.get(kind) or []
            card["media"][kind] = [media_item(kind, ref, f"{attr.name}:{first + offset}", paths, embed_mb, budget)
                                   for ref in refs[:ITEMS_PER_ROW]]
            card["more"][kind] = max(len(refs) - ITEMS_PER_ROW, 0)
        cards.append(card)
    return cards


def media_item(kind: str, ref: str, row: str, paths: MediaPaths, embed_mb: float,
               budget: list[float]) -> dict[str, Any]:
    """The preview of one media reference, or the note that says why there is none (never an exception)."""
    item: dict[str, Any] = {"name": ref, "shown": None, "uri": None, "note": None}
    path, why = paths.locate(ref)
    if path is None:
        item["note"] = [why, {"file": ref}]
        return item
    ext = path.suffix.lower()
    if ext not in EXTENSIONS[kind]:
        item["note"] = ["data.media.unsupported", {"file": ref, "ext": ext or "-",
                                                   "supported": " ".join(EXTENSIONS[kind])}]
        return item
    try:
        if kind == "images" or ext in PILLOW_VIDEO_EXTENSIONS:
            data, mime = _thumbnail(kind, path, row)
            item["shown"] = "img"
        else:
            size = path.stat().st_size
            if ext not in PLAYABLE or size > min(embed_mb * 1024 * 1024, budget[0]):
                key = "data.media.not_playable" if ext not in PLAYABLE else "data.media.too_big"
                item["note"] = [key, {"file": ref, "size": f"{size / 1024 / 1024:.1f}", "limit": f"{embed_mb:g}"}]
                return item
            if ext == ".wav":  # the one kind checkable without FFmpeg; the browser's player tells the rest
                probe_media(kind, path, row=row)
            data, mime = path.read_bytes(), PLAYABLE[ext]
            item["shown"] = "video" if kind == "videos" else "audio"
    except StudioError as err:
        # Named as the row names it: the page never shows where the data folder lies on the server.
        err.params = {k: v.replace(str(path), ref) if type(v) is str else v for k, v in err.params.items()}
        item["error"] = error_to_json(err)
        return item
    except OSError as err:
        item["note"] = ["data.media.unreadable", {"file": ref, "reason": err.strerror or type(err).__name__}]
        return item
    budget[0] -= len(data)
    item["uri"] = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return item


def _thumbnail(kind: str, path: Path, row: str) -> tuple[bytes, str]:
    """A small re-encoded copy of an image (JPEG), or of an animated GIF / WebP video's frames (GIF)."""
    out = io.BytesIO()
    if kind == "videos":
        frames = [_fit(frame) for frame in load_video(path, fps=2.0, maxlen=GIF_FRAMES, row=row)]
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=500)
        return out.getvalue(), "image/gif"
    _fit(load_image(path, row=row)).save(out, "JPEG", quality=80)
    return out.getvalue(), "image/jpeg"


def _fit(image: Any) -> Any:
    """`image` at most THUMB_PX on its longest side; a tiny one (an icon, a test square) enlarged by whole pixels
    to at least MIN_THUMB_PX, so it can be seen."""
    from PIL import Image

    longest = max(image.size)
    if longest < MIN_THUMB_PX:
        scale = -(-MIN_THUMB_PX // longest)
        return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    image.thumbnail((THUMB_PX, THUMB_PX))
    return image


# --- media, as HTML in the studio


def media_html(cards: list[dict], lang: str) -> str:
    """The page's rows beside their media, placeholders shown as numbered chips; empty when no row has media."""
    if not any(item for card in cards for items in card.get("media", {}).values() for item in items):
        return ""
    parts = [f'<p style="margin:4px 0;font-size:13px;">{html_text("data.media.legend", lang)}</p>']
    for card in cards:
        outline = "border:2px solid #2563eb;" if card["selected"] else "border:1px solid #e5e7eb;"
        head = f'<p style="margin:0 0 4px;font-weight:600;">{html_text("data.media.row", lang, row=card["row"])}</p>'
        if card.get("error"):
            body = f'<p style="color:#b91c1c;">❌ {html_error(error_from_json(card["error"]), lang)}</p>'
            parts.append(f'<div class="media-card" style="{outline}border-radius:8px;padding:8px;margin:6px 0;">'
                         f"{head}{body}</div>")
            continue
        parts.append(
            f'<div class="media-card" style="{outline}border-radius:8px;padding:8px;margin:6px 0;display:flex;'
            f'flex-wrap:wrap;gap:12px;"><div class="media-text" style="flex:1 1 320px;min-width:0;">{head}'
            f'{_turns_html(card, lang)}</div><div class="media-items" style="flex:0 1 auto;display:flex;'
            f'flex-wrap:wrap;gap:8px;align-items:flex-start;">{_items_html(card, lang)}</div></div>')
    return '<div class="media-preview" style="margin-bottom:12px;">' + "".join(parts) + "</div>"


def _chip(kind: str, number: int, lang: str, missing: bool = False) -> str:
    label = html_text(f"data.media.chip.{kind}", lang, n=number)
    colour = _CHIP_COLOURS["missing" if missing else kind]
    return f'<span class="media-chip media-chip-{kind}" style="{_CHIP}{colour}">{_ICONS[kind]} {label}</span>'


def _turns_html(card: dict, lang: str) -> str:
    """The row's text, escaped, each placeholder a chip numbered like the file it stands for; then any mismatch."""
    marks = PLACEHOLDERS
    kind_of = {escape_html(mark): kind for kind, mark in marks.items()}
    pattern = re.compile("|".join(re.escape(mark) for mark in kind_of))
    seen = dict.fromkeys(KINDS, 0)
    have = {kind: len(card["media"].get(kind, [])) + card["more"].get(kind, 0) for kind in KINDS}

    def chip(match: re.Match) -> str:
        kind = kind_of[match.group(0)]
        seen[kind] += 1
        return _chip(kind, seen[kind], lang, missing=seen[kind] > have[kind])

    lines = []
    for role, text in card["turns"]:
        shown = pattern.sub(chip, escape_html(text))
        lines.append(f'<div style="margin:2px 0;white-space:pre-wrap;word-break:break-word;">'
                     f'<b>{escape_html(role)}:</b> {shown}</div>')
    for kind in KINDS:
        if seen[kind] != have[kind]:
            note = html_text("data.media.count_mismatch", lang, placeholder=marks[kind], marks=seen[kind],
                             files=have[kind])
            lines.append(f'<p style="color:#b91c1c;margin:4px 0;">⚠ {note}</p>')
    return "".join(lines)


def _items_html(card: dict, lang: str) -> str:
    """Each media item: its thumbnail or player under a chip with its number, or the note saying why not."""
    out = []
    for kind in KINDS:
        for number, item in enumerate(card["media"].get(kind, []), start=1):
            name = escape_html(Path(item["name"]).name or item["name"])
            uri = escape_html(item["uri"] or "")
            if item["shown"] == "img":
                body = f'<img src="{uri}" alt="{name}" style="max-width:{THUMB_PX}px;max-height:{THUMB_PX}px;' \
                       'border:1px solid #d1d5db;border-radius:4px;display:block;">'
            elif item["shown"] == "video":
                body = f'<video controls preload="metadata" src="{uri}" style="max-width:240px;display:block;">' \
                       "</video>"
            elif item["shown"] == "audio":
                body = f'<audio controls preload="none" src="{uri}" style="width:240px;display:block;"></audio>'
            else:
                note = html_error(error_from_json(item["error"]), lang) if item.get("error") else \
                    html_text(item["note"][0], lang, **item["note"][1])
                body = f'<div class="media-note" style="max-width:260px;color:#92400e;font-size:12px;">⚠ {note}</div>'
            out.append(f'<figure class="media-item media-{kind}" style="margin:0;"><figcaption style="font-size:12px;'
                       f'margin-bottom:2px;">{_chip(kind, number, lang)} {name}</figcaption>{body}</figure>')
        if card["more"].get(kind):
            out.append(f'<p style="font-size:12px;">{html_text("data.media.more", lang, count=card["more"][kind])}'
                       "</p>")
    return "".join(out)


def main() -> int:
    """Read the request (JSON on stdin), answer on stdout: the preview, or `{"error": …}`."""
    cap_memory()
    try:
        answer = collect(**json.loads(sys.stdin.read()))
    except StudioError as err:
        answer = {"error": error_to_json(err)}
    sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
