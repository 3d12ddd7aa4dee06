"""Regenerate the multimodal demo datasets: drawn images, GIF videos, WAV tones, their JSON files and registry entries.

Everything is made here from code (no downloaded media), deterministically: running it again rewrites the same
bytes, which the tests check. Writes `data/mllm_demo_data/` (media), `data/mllm_demo.json` (images),
`data/mllm_video_demo.json`, `data/mllm_audio_demo.json`, `data/mllm_video_audio_demo.json`, the colour-squares
learning check `data/mllm_colors.json` / `data/mllm_colors_eval.json`, the tones learning check
`data/mllm_tones.json` / `data/mllm_tones_eval.json`, and their entries in `data/dataset_info.json` (under
LLaMA-Factory's names and column mappings).

    python scripts/make_mllm_demo.py [DATA_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data.media import PLACEHOLDERS  # noqa: E402
from engine.data.synthetic import color_squares, tones, write_tone  # noqa: E402

MEDIA = "mllm_demo_data"
WHITE = (255, 255, 255)
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
DATASETS = {  # registry name -> (file, media columns)
    "mllm_demo": ("mllm_demo.json", ("images",)),
    "mllm_audio_demo": ("mllm_audio_demo.json", ("audios",)),
    "mllm_video_demo": ("mllm_video_demo.json", ("videos",)),
    "mllm_video_audio_demo": ("mllm_video_audio_demo.json", ("videos", "audios")),
    "mllm_colors": ("mllm_colors.json", ("images",)),
    "mllm_colors_eval": ("mllm_colors_eval.json", ("images",)),
    "mllm_tones": ("mllm_tones.json", ("audios",)),
    "mllm_tones_eval": ("mllm_tones_eval.json", ("audios",)),
}


def draw_images(folder: Path) -> None:
    """Three small pictures of coloured shapes, each easy to describe in one sentence."""
    circle = Image.new("RGB", (96, 96), WHITE)
    ImageDraw.Draw(circle).ellipse((18, 18, 77, 77), fill=(220, 30, 30))
    pair = Image.new("RGB", (112, 80), WHITE)
    draw = ImageDraw.Draw(pair)
    draw.rectangle((10, 20, 49, 59), fill=(30, 70, 220))
    draw.polygon([(62, 62), (102, 62), (82, 18)], fill=(30, 160, 50))
    dots = Image.new("RGB", (72, 72), WHITE)
    for i in range(3):
        ImageDraw.Draw(dots).ellipse((6 + 22 * i, 6 + 22 * i, 21 + 22 * i, 21 + 22 * i), fill=(245, 130, 20))
    for name, image in (("1.png", circle), ("2.png", pair), ("3.png", dots)):
        image.save(folder / name, format="PNG", optimize=True)


def draw_videos(folder: Path) -> None:
    """Two 6-frame GIFs (half a second a frame): a square moving right, and a square changing colour."""
    moving, changing = [], []
    for i in range(6):
        frame = Image.new("RGB", (64, 64), WHITE)
        ImageDraw.Draw(frame).rectangle((4 + 8 * i, 22, 19 + 8 * i, 37), fill=(220, 30, 30))
        moving.append(frame)
        color = [(220, 30, 30), (30, 160, 50), (30, 70, 220)][i // 2]
        frame = Image.new("RGB", (64, 64), WHITE)
        ImageDraw.Draw(frame).rectangle((16, 16, 47, 47), fill=color)
        changing.append(frame)
    for name, frames in (("1.gif", moving), ("2.gif", changing)):
        frames[0].save(folder / name, format="GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)


def make_audio(folder: Path) -> None:
    """A steady A (440 Hz, 1 s), two short high beeps, and a rising sweep (16 kHz WAVs)."""
    write_tone(folder / "1.wav", [(440, 440, 1.0)])
    write_tone(folder / "2.wav", [(880, 880, 0.15), (0, 0, 0.15), (880, 880, 0.15)])
    write_tone(folder / "3.wav", [(300, 900, 0.6)])


def chat(*turns: str) -> list[dict]:
    """Alternating user/assistant messages."""
    return [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(turns)]


def rows() -> dict[str, list[dict]]:
    """The rows of the four demo files (English, then Chinese, as LLaMA-Factory's demo data)."""
    img, vid, aud = (f"{MEDIA}/{n}" for n in ("{}.png", "{}.gif", "{}.wav"))
    return {
        "mllm_demo.json": [
            {"messages": chat("<image>What shape is this?", "It is a red circle on a white background.",
                              "What colour is it?<image>", "It is red."),
             "images": [img.format(1), img.format(1)]},
            {"messages": chat("<image>How many shapes are in the picture?",
                              "Two: a blue square on the left and a green triangle on the right."),
             "images": [img.format(2)]},
            {"messages": chat("<image>Describe the picture.",
                              "Three orange dots in a diagonal line from the top left to the bottom right."),
             "images": [img.format(3)]},
            {"messages": chat("<image>这是什么形状？", "这是白色背景上的一个红色圆形。", "它是什么颜色？<image>", "红色。"),
             "images": [img.format(1), img.format(1)]},
            {"messages": chat("<image>图里有几个图形？", "两个：左边一个蓝色正方形，右边一个绿色三角形。"),
             "images": [img.format(2)]},
            {"messages": chat("<image>描述一下这张图片。", "三个橙色圆点从左上到右下排成一条斜线。"),
             "images": [img.format(3)]},
        ],
        "mllm_video_demo.json": [
            {"messages": chat("<video>What happens in this video?", "A red square moves from left to right."),
             "videos": [vid.format(1)]},
            {"messages": chat("<video>How does the square change?",
                              "It changes colour from red to green, then to blue."),
             "videos": [vid.format(2)]},
            {"messages": chat("<video>视频里发生了什么？", "一个红色方块从左向右移动。"), "videos": [vid.format(1)]},
        ],
        "mllm_audio_demo.json": [
            {"messages": chat("<audio>What do you hear?", "A steady beep at 440 Hz, the note A."),
             "audios": [aud.format(1)]},
            {"messages": chat("<audio>How many beeps are there?", "Two short, high beeps."),
             "audios": [aud.format(2)]},
            {"messages": chat("<audio>这是什么声音？", "一个音调从低到高逐渐升高的声音。"), "audios": [aud.format(3)]},
        ],
        "mllm_video_audio_demo.json": [
            {"messages": chat("<video><audio>What do you see and hear?",
                              "A red square moves to the right while a steady beep plays."),
             "videos": [vid.format(1)], "audios": [aud.format(1)]},
            {"messages": chat("<video><audio>Describe the video and its sound.",
                              "A square turns red, green, then blue, with two short beeps."),
             "videos": [vid.format(2)], "audios": [aud.format(2)]},
            {"messages": chat("<video><audio>视频和声音里有什么？", "一个红色方块向右移动，同时响起一个升高的音调。"),
             "videos": [vid.format(1)], "audios": [aud.format(3)]},
        ],
    }


def write_json(path: Path, value: object) -> None:
    """JSON as the registry and the demo files are written: two-space indent, UTF-8 text kept readable."""
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def register(data_dir: Path) -> None:
    """Add or update the entries in dataset_info.json, leaving every other entry and the order as they are."""
    path = data_dir / "dataset_info.json"
    registry = json.loads(path.read_text(encoding="utf-8"))
    for name, (file_name, media) in DATASETS.items():
        columns = {"messages": "messages", **{kind: kind for kind in media}}
        registry[name] = {"file_name": file_name, "formatting": "sharegpt", "columns": columns, "tags": TAGS}
    write_json(path, registry)


def main(data_dir: Path) -> None:
    """Write every file; the placeholders must be the defaults, or the shipped text would not match them."""
    if PLACEHOLDERS != {"images": "<image>", "videos": "<video>", "audios": "<audio>"}:
        raise SystemExit("Unset IMAGE_PLACEHOLDER / VIDEO_PLACEHOLDER / AUDIO_PLACEHOLDER to regenerate the demo.")
    media = data_dir / MEDIA
    media.mkdir(parents=True, exist_ok=True)
    draw_images(media)
    draw_videos(media)
    make_audio(media)
    for file_name, content in rows().items():
        write_json(data_dir / file_name, content)
    for name, n, seed in (("mllm_colors", 40, 0), ("mllm_colors_eval", 20, 1)):
        squares = color_squares(media / "colors", n, seed=seed, relative_to=data_dir)
        write_json(data_dir / DATASETS[name][0], squares)
    for name, n, seed in (("mllm_tones", 30, 0), ("mllm_tones_eval", 15, 1)):
        write_json(data_dir / DATASETS[name][0], tones(media / "tones", n, seed=seed, relative_to=data_dir))
    register(data_dir)
    print(f"wrote the multimodal demo datasets into {data_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "data")
