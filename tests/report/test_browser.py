"""The HTML report in a real headless browser: every image loads, formulas and tables show.

Slow (a browser start); ``.ci/run`` installs Chromium and runs it. Where the
browser cannot be found the test fails and says how to install it: it never
skips silently.
"""

import pytest
from matplotlib.image import imread

from evomal.report.build import write_report
from tests.report.browser import open_page, page_facts, screenshot


@pytest.mark.slow
def test_the_report_renders_with_its_images_formulas_and_tables(experiment_dir, tmp_path):
    html, _ = write_report([experiment_dir], tmp_path / "report.html", top=3)
    try:
        driver = open_page(html)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        facts = page_facts(driver)
    finally:
        driver.quit()
    images = facts["images"]
    assert len(images) >= 8
    assert all(complete and width > 0 and height > 0 for complete, width, height in images)
    assert facts["formulas"] >= 1 and facts["tables"] >= 4
    assert "Loss shape" in facts["headings"] and "Filter activity" in facts["headings"]
    shot = tmp_path / "report.png"
    screenshot(html, shot, height=2400)
    pixels = imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.std() > 0.05  # a rendered page, not a blank one
