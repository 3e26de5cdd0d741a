"""The HTML report in a real browser: headless Chromium (Debian's ``chromium-headless-shell``; the test is
skipped where it is not installed, and marked slow).

A copy of report.html gets a probe script that, once the page has loaded, writes what the browser measured
into the DOM, which ``--dump-dom`` prints: whether the page scrolls sideways at a laptop's 1366 px, whether
every figure decoded, whether every link of the contents lands on a section. The report itself has no script.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report import build_report
from tests.test_report import write_run

CHROMIUM = next(
    (
        found
        for name in ("chromium-headless-shell", "chromium", "chromium-browser")
        if (found := shutil.which(name))
    ),
    None,
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium-headless-shell)"),
]

PROBE = """<script>
window.addEventListener('load', () => {
  const page = document.documentElement, links = [...document.querySelectorAll('nav a')];
  document.body.setAttribute('data-probe', JSON.stringify({
    scrollWidth: page.scrollWidth, clientWidth: page.clientWidth, images: document.images.length,
    decoded: [...document.images].filter(image => image.complete && image.naturalWidth > 0).length,
    links: links.length, landing: links.filter(a => document.getElementById(a.hash.slice(1))).length,
  }));
});
</script>"""


def measure(report_html: Path, width: int = 1366) -> dict:
    probe = report_html.with_name("probe.html")
    probe.write_text(report_html.read_text(encoding="utf-8").replace("</body>", f"{PROBE}</body>"))
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={width},900",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    return json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dom).group(1)))


def test_the_report_page_fits_a_laptop_screen_with_its_figures_and_links(tmp_path: Path) -> None:
    """A sweep with long labels and wide tables: two backends, three optimizers with their own lr."""
    for backend in ("keras", "torch"):
        for seed, base in enumerate((0.5, 0.6, 0.7)):
            write_run(
                tmp_path, backend=backend, optimizer="adamw", seed=seed, final_val_accuracy=base, lr=3e-4
            )
            write_run(
                tmp_path, backend=backend, optimizer="adam_l2", seed=seed, final_val_accuracy=base - 0.05
            )
            write_run(tmp_path, backend=backend, optimizer="sgd_l2", seed=seed, final_val_accuracy=base - 0.2)
    report = build_report([tmp_path]) / "report.html"
    seen = measure(report)
    assert seen["scrollWidth"] <= seen["clientWidth"], seen  # the page never scrolls sideways
    assert seen["images"] >= 4 and seen["decoded"] == seen["images"], seen
    assert seen["links"] >= 8 and seen["landing"] == seen["links"], seen
