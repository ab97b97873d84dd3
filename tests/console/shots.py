"""The pictures the console tests keep, to look at them: set CONSOLE_SCREENSHOTS=<dir>. Without it, none is taken."""

from __future__ import annotations

import os
from pathlib import Path

SHOTS = Path(os.environ["CONSOLE_SCREENSHOTS"]) if os.environ.get("CONSOLE_SCREENSHOTS") else None


async def shot(page, name: str, *, full_page: bool = False) -> None:
    """Keep a picture of the screen as `<name>.png`, once nothing on it moves (a dialog fades in)."""
    if SHOTS is None:
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.wait_for_function("() => document.getAnimations().every((a) => a.playState !== 'running')")
    await page.screenshot(path=str(SHOTS / f"{name.removesuffix('.png')}.png"), full_page=full_page)
