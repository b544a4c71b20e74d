"""Issue 31's video comparison: `task=seg` run on every frame of a video suite's clips, one fit a frame.

    python research/video_seg_frames.py make suites/video --split test --out cases/video_frames_test
    python scripts/evaluate.py --cases cases/video_frames_test --jobs 2 --override threads=1 logger=none --out eval/video_frames_test
    python research/video_seg_frames.py table eval/video_frames_test --video eval/video_test --out eval/video_frames_test/clips.md

``make`` writes a folder of seg cases (``<clip>__<frame>``: the frame as the image, its true mask as the truth) that
``scripts/evaluate.py`` runs like any case folder. ``table`` averages the per-frame IoUs of each clip (the video
task's score: the mean IoU over a clip's frames) for ddip's seg and GrabCut, beside the video fit's IoU per clip
when ``--video`` names that evaluation's folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from evaluate import table as markdown_table

SEPARATOR = "__"


def make(suite: Path, split: str, out: Path) -> int:
    """One seg case per frame of every clip of ``split``; returns the number of cases written."""
    clips = json.loads((suite / "cases.json").read_text())
    cases = {}
    for name, clip in clips.items():
        if clip.get("split") != split:
            continue
        frames = sorted((suite / name / clip["images"]).glob("*.png"))
        for frame in frames:
            case = f"{name}{SEPARATOR}{frame.stem}"
            folder = out / case
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(frame, folder / "image.png")
            shutil.copyfile(suite / name / clip["truth"]["mask"] / frame.name, folder / "mask.png")
            cases[case] = {"task": "seg", "image": "image.png", "truth": {"mask": "mask.png"}, "clip": name}
    (out / "cases.json").write_text(json.dumps(cases, indent=1))
    return len(cases)


def per_clip(records: list[dict], metric: str = "iou") -> dict[str, dict[str, float]]:
    """``{method: {clip: mean metric over its frames}}`` from an evaluate.json of frame cases."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if metric in record and record[metric] is not None:
            clip = record["case"].split(SEPARATOR)[0]
            scores[record["method"]][clip].append(record[metric])
    return {method: {clip: mean(values) for clip, values in clips.items()} for method, clips in scores.items()}


def table(frames_eval: Path, video_eval: Path | None) -> str:
    columns = per_clip(json.loads((frames_eval / "evaluate.json").read_text()))
    if video_eval is not None:
        for record in json.loads((video_eval / "evaluate.json").read_text()):
            if record.get("iou") is not None:
                columns.setdefault(f"video: {record['method']}", {})[record["case"]] = record["iou"]
    clips = sorted({clip for scores in columns.values() for clip in scores})
    rows = [{"clip": clip, **{method: scores[clip] for method, scores in columns.items() if clip in scores}} for clip in clips]
    rows.append({"clip": "**mean**", **{method: mean(scores.values()) for method, scores in columns.items()}})
    return markdown_table(rows, ["clip", *columns])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make_parser = commands.add_parser("make", help="a seg case per frame of a video suite's split")
    make_parser.add_argument("suite", type=Path)
    make_parser.add_argument("--split", default="test")
    make_parser.add_argument("--out", type=Path, required=True)
    table_parser = commands.add_parser("table", help="per-clip mean IoU of the frame fits")
    table_parser.add_argument("frames_eval", type=Path)
    table_parser.add_argument("--video", type=Path, default=None, help="the video task's evaluate.py folder")
    table_parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.command == "make":
        print(f"{make(args.suite, args.split, args.out)} seg cases in {args.out}")
        return
    text = table(args.frames_eval, args.video)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
