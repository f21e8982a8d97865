"""replay.html in a real headless Chromium (DevTools protocol): loads cleanly, draws, the slider and clicks work."""

import pytest

from society_env.analysis.viewer import write_replay
from tests.browser import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (install the Debian package: apt-get install -y chromium)")

CANVAS_PICTURE = """(() => {
  const canvas = document.getElementById('grid');
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0, hash = 0;
  const colours = new Set();
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i] || pixels[i + 1] || pixels[i + 2]) lit++;
    colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
    hash = (hash * 31 + pixels[i] + 7 * pixels[i + 1] + 13 * pixels[i + 2]) >>> 0;
  }
  return {lit, colours: colours.size, hash};
})()"""


def move_slider(browser: Browser, step: int) -> None:
    browser.evaluate(f"(() => {{ const s = document.getElementById('slider'); s.value = {step}; "
                     f"s.dispatchEvent(new Event('input')); }})()")


@pytest.fixture(scope="module")
def viewer_page(recorded_run):
    page = write_replay(recorded_run)
    pytest.importorskip("websocket", reason="websocket-client is part of the test extra")
    with Browser(CHROMIUM) as browser:
        browser.open(page.as_uri())
        browser.wait_for("window.replayViewer")
        yield browser


def test_page_loads_without_errors_and_draws(viewer_page):
    assert viewer_page.evaluate("document.getElementById('status').textContent") == ""
    assert viewer_page.evaluate("replayViewer.steps") == 61
    picture = viewer_page.evaluate(CANVAS_PICTURE)
    assert picture["lit"] > 0 and picture["colours"] > 3  # black background + food + several agents
    assert viewer_page.evaluate("document.getElementById('stepLabel').textContent") == "step 0 / 60"
    assert viewer_page.errors == []


def test_slider_changes_the_picture_and_the_step(viewer_page):
    move_slider(viewer_page, 0)
    before = viewer_page.evaluate(CANVAS_PICTURE)
    move_slider(viewer_page, 30)
    after = viewer_page.evaluate(CANVAS_PICTURE)
    assert viewer_page.evaluate("document.getElementById('stepLabel').textContent") == "step 30 / 60"
    assert viewer_page.evaluate("replayViewer.step") == 30
    assert after["hash"] != before["hash"]
    stats = viewer_page.evaluate("document.getElementById('stepStats').textContent")
    alive = viewer_page.evaluate("replayViewer.data.agent_offsets[31] - replayViewer.data.agent_offsets[30]")
    assert stats.startswith(f"alive {alive} ")
    assert viewer_page.errors == []


def test_clicking_an_agent_shows_it(viewer_page):
    move_slider(viewer_page, 20)
    x, y, slot, energy = viewer_page.evaluate("""(() => {
      const v = replayViewer, d = v.data, i = d.agent_offsets[20], canvas = document.getElementById('grid');
      const box = canvas.getBoundingClientRect(), scale = box.width / canvas.width;
      return [box.left + (d.col[i] + 0.5) * v.cell * scale, box.top + (d.row[i] + 0.5) * v.cell * scale, d.slot[i], d.energy[i]]; })()""")
    viewer_page.click(x, y)
    panel = viewer_page.evaluate("document.getElementById('agent').innerText")
    assert f"agent_{slot}" in panel and f"energy\t{energy}" in panel
    assert "age" in panel and "personality" in panel and "last action" in panel and "openness" in panel
    assert viewer_page.errors == []


def test_play_advances_and_pause_stops(viewer_page):
    move_slider(viewer_page, 0)
    viewer_page.evaluate("document.getElementById('speed').value = '60'")
    viewer_page.evaluate("document.getElementById('play').click()")
    viewer_page.wait_for("replayViewer.step >= 5")
    viewer_page.evaluate("document.getElementById('play').click()")
    paused_at = viewer_page.evaluate("replayViewer.step")
    assert viewer_page.evaluate("document.getElementById('play').textContent").endswith("play")
    assert viewer_page.evaluate("new Promise(r => setTimeout(() => r(replayViewer.step), 200))") == paused_at
    assert viewer_page.errors == []


def test_event_rows_separate_the_event_from_the_agent(viewer_page):
    move_slider(viewer_page, 0)  # the founders are "added" at step 0
    rows = viewer_page.evaluate("[...document.querySelectorAll('#events div')].map(d => d.textContent)")
    added = [row for row in rows if row.startswith("added")]
    assert added and all(row.startswith("added agent_") for row in added), rows[:5]


def test_no_family_colour_is_the_food_green(viewer_page):
    hues = viewer_page.evaluate("Array.from({length: 2000}, (_, k) => familyHue(k))")
    assert all(0 <= hue < 100 or 160 <= hue < 360 for hue in hues)
    assert len({round(hue) for hue in hues}) > 200  # still spread over the wheel
