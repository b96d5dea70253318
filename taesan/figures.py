"""What every matplotlib figure shares: the installed font that draws Hangul (Nanum from Debian's
fonts-nanum, else a CJK font) as rc settings scoped with `matplotlib.rc_context` (never global state),
and saving a figure as a PNG atomically. Not a plot: each module draws its own."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from taesan.atomic import atomic_path

KOREAN_FONTS = ("NanumGothic", "NanumBarunGothic", "NanumSquare", "NanumMyeongjo")
OTHER_CJK = ("Noto Sans CJK KR", "Noto Sans KR", "Noto Sans CJK JP", "Malgun Gothic", "AppleGothic")


def korean_font() -> str | None:
    """The family name of an installed Nanum (or other CJK) font, registering Nanum files with matplotlib if
    its font cache predates them; None when there is none."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for name in KOREAN_FONTS:
        if name in names:
            return name
    for path in font_manager.findSystemFonts():
        if "nanum" in Path(path).name.lower():
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                continue
    names = {f.name for f in font_manager.fontManager.ttflist}
    found = next((n for n in KOREAN_FONTS if n in names), None)
    found = found or next((n for n in sorted(names) if n.startswith("Nanum")), None)
    return found or next((n for n in OTHER_CJK if n in names), None)


def korean_rc(font: str | None) -> dict:
    """rc settings that draw Hangul with `font` (DejaVu Sans for what it lacks; ASCII minus signs, which
    Nanum fonts do not have), or {} when there is no font."""
    if font is None:
        return {}
    return {"font.family": [font, "DejaVu Sans"], "axes.unicode_minus": False}


def save_png(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Write `fig` to `path` as a PNG (a temporary file renamed into place) and close it."""
    import matplotlib.pyplot as plt


    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
