"""The report's PDF: its HTML printed by headless Chromium, so the PDF looks like the page (A4,
the page's own print styles, figures never split across pages)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class PdfError(RuntimeError):
    """Chromium is missing or could not print; the message says what to do."""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_flags(profile: Path) -> list[str]:
    """Headless, without the sandbox (root in containers and CI) and without the background
    connections Chromium makes at every start, which a closed network refuses."""
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",
    ]  # fmt: skip


def print_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 120.0) -> None:
    exe = chromium()
    if exe is None:
        raise PdfError(
            "the PDF is printed by Chromium, which is not installed: apt-get install chromium "
            f"(the HTML report {html_path} is complete without it)"
        )
    with tempfile.TemporaryDirectory(prefix="kera-chromium-") as profile:
        argv = [
            exe, *chromium_flags(Path(profile)), "--no-pdf-header-footer",
            "--virtual-time-budget=10000", f"--print-to-pdf={pdf_path}", html_path.as_uri(),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv, check=False, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            raise PdfError(f"Chromium did not print {html_path} within {timeout_s:.0f} s") from None
    if done.returncode != 0 or not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        raise PdfError(f"Chromium could not print {html_path}: {done.stderr.strip()[-500:]}")
