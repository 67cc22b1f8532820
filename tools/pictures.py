"""Redraw the documentation's pictures from `make demo`'s output (`make pictures` runs both).

- docs/img/report.png: demo/report.html in headless Chromium;
- docs/img/plotloss.png: the first page of demo/plotloss.pdf (pdftoppm, from poppler-utils).

Both are trimmed of their blank margin and reduced to a 256-colour palette, so each stays well
under 300 KB. docs/img/live.png (the /mosaic page) is drawn by its own tool, not here.
Needs `apt-get install -y chromium poppler-utils`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"
IMG = ROOT / "docs" / "img"
LIMIT = 300_000  # bytes a picture may weigh in the repository
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--hide-scrollbars",
    "--virtual-time-budget=5000",  # the report draws its charts with JavaScript: let it finish
]


def _tool(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    sys.exit(f"pictures: {names[0]} not found; install it with: apt-get install -y chromium poppler-utils")


def _trim_and_save(raw: Path, out: Path, width: int | None = None) -> None:
    """Crop the blank (background-coloured) margin, scale to ``width``, save as a palette PNG."""
    image = Image.open(raw).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
    box = ImageChops.difference(image, background).getbbox()
    if box:
        margin = 16
        image = image.crop((max(box[0] - margin, 0), max(box[1] - margin, 0),
                            min(box[2] + margin, image.width), min(box[3] + margin, image.height)))
    if width and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)
    size = out.stat().st_size
    print(f"{out.relative_to(ROOT)}: {image.width}x{image.height}, {size // 1000} KB")
    if size > LIMIT:
        sys.exit(f"pictures: {out} weighs {size} bytes, over {LIMIT}: shrink it")


def report(work: Path) -> None:
    raw = work / "report.png"
    subprocess.run(
        [_tool("chromium", "chromium-browser"), *CHROMIUM_FLAGS, f"--screenshot={raw}",
         "--window-size=1400,2400", (DEMO / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    _trim_and_save(raw, IMG / "report.png", width=1200)


def plotloss(work: Path) -> None:
    subprocess.run([_tool("pdftoppm"), "-png", "-r", "80", "-f", "1", "-l", "1",
                    str(DEMO / "plotloss.pdf"), str(work / "plotloss")], check=True, timeout=120)
    _trim_and_save(next(work.glob("plotloss*.png")), IMG / "plotloss.png")


def main() -> None:
    for needed in ("report.html", "plotloss.pdf"):
        if not (DEMO / needed).is_file():
            sys.exit(f"pictures: demo/{needed} is missing; run `make demo` first")
    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        report(Path(work))
        plotloss(Path(work))


if __name__ == "__main__":
    main()
