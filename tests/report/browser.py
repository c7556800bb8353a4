"""Open a report in headless Chromium (Debian's package, driven by Selenium) and check it.

Used by ``tests/report/test_browser.py`` and, as a script, to take the README's screenshot::

    python -m tests.report.browser runs/report.html docs/images/report.png
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

INSTALL = (
    "install the browser with `apt-get install chromium chromium-driver` and Selenium with "
    "`pip install selenium` (.ci/run does both)"
)


def find_browser() -> tuple[str, str]:
    """Paths of the Chromium binary and its driver; RuntimeError saying how to install them."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        raise RuntimeError(f"headless Chromium not found: {INSTALL}")
    return binary, driver


def open_page(html: Path, width: int = 1200) -> Any:
    """A headless Chromium showing ``html``, its images loaded."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise RuntimeError(f"Selenium is missing ({exc}): {INSTALL}") from None
    binary, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},900")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.get(html.resolve().as_uri())
    driver.execute_script("return document.readyState")
    return driver


def page_facts(driver: Any) -> dict[str, Any]:
    """What a reader sees: every image's natural size, and the visible tables and formulas."""
    return driver.execute_script(
        """
        const imgs = Array.from(document.images);
        return {
          images: imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
          tables: Array.from(document.querySelectorAll('table')).filter(
              t => t.getBoundingClientRect().height > 0).length,
          formulas: Array.from(document.querySelectorAll('.formula')).filter(
              f => f.getBoundingClientRect().height > 0).length,
          headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
          height: document.body.scrollHeight,
        };
        """
    )


def screenshot(html: Path, png: Path, width: int = 1200, height: int | None = None) -> None:
    """A PNG of the rendered page (the whole page, or its top ``height`` pixels)."""
    driver = open_page(html, width)
    try:
        full = int(page_facts(driver)["height"])
        driver.set_window_size(width, min(full, height) if height else full)
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


if __name__ == "__main__":
    screenshot(
        Path(sys.argv[1]), Path(sys.argv[2]), height=int(sys.argv[3]) if len(sys.argv) > 3 else None
    )
