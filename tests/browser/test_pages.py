"""The web UI in headless Chromium against a real server holding real profiles.

Every test saves a screenshot under test-artifacts/, and fails on console errors, page
errors or any request to a host other than the server (see the `ui` fixture). Views whose
endpoint the server does not offer yet are skipped, naming the endpoint.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import PHASES, SPLIT, Profiled, Ui, wait_url

pytestmark = pytest.mark.integration

FLAME = "#view-flame .flame-canvas"


def need(profiled: Profiled, path: str, param: str | None = None) -> None:
    """The view under test needs this endpoint: its absence is a failure, not a skip."""
    what = f"a `{param}` parameter on {path}" if param else path
    assert profiled.has(path, param), f"the server's API lacks {what} (not in /openapi.json)"


def params(ui: Ui) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(ui.page.url).query).items()}


def test_flame_graph_draws_from_a_shared_link(ui: Ui) -> None:
    ui.open(f"?selector={SPLIT}&from=now-1h")
    ui.wait_view("flame")
    pixels = ui.painted(FLAME)
    width = ui.page.eval_on_selector(FLAME, "c => c.width")
    assert pixels["painted"] > 3 * 15 * width, pixels  # at least the root, <module> and main rows
    assert ui.page.input_value("#selector") == SPLIT
    for name in ("main", "spin_three", "spin_one"):
        assert ui.frame(name), f"{name} not drawn"
    summary = ui.page.text_content("#view-flame .summary") or ""
    assert re.search(r"[\d,]+ samples", summary), summary
    ui.shot("flame")


def test_hover_shows_function_file_and_costs(ui: Ui) -> None:
    ui.open(f"?selector={SPLIT}")
    ui.wait_view("flame")
    rect = ui.frame("spin_three")
    assert rect
    ui.page.evaluate("(y) => window.scrollBy(0, y)", rect["y"] - 300)
    rect = ui.frame("spin_three")
    assert rect
    ui.page.mouse.move(rect["x"] + rect["w"] / 2, rect["y"] + rect["h"] / 2)
    tip = ui.page.wait_for_selector(".tooltip:not([hidden])")
    text = tip.text_content() or ""
    assert "spin_three" in text and "known_split.py" in text and "CPU-s" in text and "%" in text
    ui.shot("flame-hover")


def test_click_zooms_with_breadcrumbs_and_esc_resets(ui: Ui) -> None:
    ui.open(f"?selector={SPLIT}")
    ui.wait_view("flame")
    canvas = ui.page.eval_on_selector(FLAME, "c => { const r = c.getBoundingClientRect(); return [r.left, r.width]; }")
    rect = ui.frame("spin_one")
    assert rect and rect["w"] < 0.6 * canvas[1]
    ui.click_frame("spin_one")
    ui.page.wait_for_selector("#view-flame .crumb.current:text-is('spin_one')")
    zoomed = ui.frame("spin_one")
    assert zoomed and abs(zoomed["x"] - canvas[0]) < 1 and abs(zoomed["w"] - canvas[1]) < 1
    assert params(ui)["zoom"].endswith("spin_one")
    ui.shot("flame-zoomed")
    # a breadcrumb zooms back out; Esc resets everything
    ui.page.click("#view-flame .crumb:text-is('main')")
    ui.page.wait_for_selector("#view-flame .crumb.current:text-is('main')")
    ui.page.locator("body").press("Escape")
    wait_url(ui, "!p.has('zoom')")
    ui.page.wait_for_selector("#view-flame .crumb-hint")


def test_search_highlights_matches_and_reports_their_share(ui: Ui) -> None:
    ui.open(f"?selector={SPLIT}")
    ui.wait_view("flame")
    one, three = ui.frame("spin_one"), ui.frame("spin_three")
    assert one and three
    centre = lambda r: (r["x"] + r["w"] / 2, r["y"] + 3)  # noqa: E731
    before_one, before_three = ui.pixel(FLAME, *centre(one)), ui.pixel(FLAME, *centre(three))
    ui.page.locator("body").press("/")
    assert ui.page.evaluate("document.activeElement.classList.contains('search')")
    ui.page.keyboard.type("spin_one")
    ui.page.wait_for_selector("#view-flame .match-info b")
    share = float(ui.page.get_attribute("#view-flame .match-info", "data-share") or "nan")
    assert 0.15 < share < 0.35, share  # known_split: spin_one is a quarter of the work
    assert "%" in (ui.page.text_content("#view-flame .match-info") or "")
    wait_url(ui, "p.get('search') === 'spin_one'")
    assert ui.pixel(FLAME, *centre(one)) == before_one  # the match keeps its colour
    assert ui.pixel(FLAME, *centre(three)) != before_three  # others are dimmed
    ui.shot("flame-search")


def test_orientation_toggle_puts_the_root_at_the_bottom(ui: Ui) -> None:
    ui.open(f"?selector={SPLIT}")
    ui.wait_view("flame")
    root, leaf = ui.frame("main"), ui.frame("spin_three")
    assert root and leaf and root["y"] < leaf["y"]  # icicle: callers above callees
    ui.page.click("#view-flame .seg-btn:has-text('Flame')")
    wait_url(ui, "p.get('orient') === 'flame'")
    root, leaf = ui.frame("main"), ui.frame("spin_three")
    assert root and leaf and root["y"] > leaf["y"]


def test_top_table_sorts_filters_and_focuses_the_flame_graph(ui: Ui) -> None:
    ui.open(f"?view=top&selector={SPLIT}")
    ui.wait_view("top")
    first = ui.page.get_attribute("#view-top tbody tr", "data-function")
    assert first == "spin_three"  # most self time
    ui.page.click("#view-top th button:has-text('Function')")
    wait_url(ui, "p.get('sort') === 'function'")
    ui.page.fill("#view-top input.search", "spin_")
    wait_url(ui, "p.get('filter') === 'spin_'")
    ui.page.wait_for_function("document.querySelectorAll('#view-top tbody tr').length === 2")
    ui.shot("top")
    ui.page.click("#view-top tr[data-function='spin_three']")
    ui.wait_view("flame")
    assert "view" not in params(ui) and params(ui)["focus"] == "spin_three"  # flame is the default view
    bar = ui.page.text_content("#view-flame .focus-bar") or ""
    assert "spin_three" in bar and "%" in bar
    assert ui.frame("spin_three")
    ui.shot("flame-focused")


def test_reloaded_url_restores_the_view(ui: Ui) -> None:
    ui.open(f"?selector={SPLIT}&orient=flame")
    ui.wait_view("flame")
    ui.click_frame("spin_three")
    ui.page.wait_for_selector("#view-flame .crumb.current:text-is('spin_three')")
    ui.page.locator("body").press("/")
    ui.page.keyboard.type("spin")
    wait_url(ui, "p.get('search') === 'spin'")
    url = ui.page.url
    ui.page.reload()
    ui.wait_view("flame")
    assert ui.page.url == url
    assert ui.page.input_value("#view-flame input.search") == "spin"
    assert ui.page.text_content("#view-flame .crumb.current") == "spin_three"
    assert ui.page.get_attribute("#view-flame .seg-btn.active", "title") == "Root at the bottom"
    # back restores the previous state too
    ui.page.go_back()
    ui.page.wait_for_function("!new URLSearchParams(location.search).has('zoom')")


def test_sandwich_shows_callers_and_callees(ui: Ui) -> None:
    ui.open(f"?view=sandwich&selector={SPLIT}&fn=main")
    ui.wait_view("sandwich")
    for canvas in ("callers", "callees"):
        pixels = ui.painted(f"#view-sandwich canvas[aria-label='{canvas} flame graph']")
        assert pixels["painted"] > 0, canvas
    assert "main" in (ui.page.text_content("#view-sandwich .summary") or "")
    ui.shot("sandwich")


def test_selector_autocompletes_label_names_and_values(ui: Ui) -> None:
    ui.open("?from=now-1h")
    ui.wait_view("flame")
    ui.page.click("#selector")
    ui.page.keyboard.type("{serv")
    ui.page.wait_for_selector("#suggest li[role=option]:text-is('service')")
    ui.page.keyboard.press("Enter")
    assert ui.page.input_value("#selector") == '{service=""}'
    ui.page.wait_for_selector("#suggest li[role=option]:text-is('ui-split')")
    ui.shot("autocomplete")
    ui.page.click("#suggest li[role=option]:text-is('ui-split')")
    assert ui.page.input_value("#selector") == SPLIT
    ui.page.keyboard.press("Enter")
    wait_url(ui, f"p.get('selector') === {SPLIT!r}")
    ui.wait_view("flame")


def test_time_presets_kind_and_gpu_state_go_to_the_url(ui: Ui) -> None:
    ui.open(f"?selector={SPLIT}")
    ui.wait_view("flame")
    ui.page.click(".querybar .seg-btn:text-is('6h')")
    wait_url(ui, "p.get('from') === 'now-6h'")
    ui.page.click(".querybar .seg-btn:text-is('wall')")
    wait_url(ui, "p.get('kind') === 'wall'")
    ui.page.select_option(".querybar select", "idle")
    wait_url(ui, "p.get('gpu_state') === 'idle'")
    ui.page.click(".querybar .seg-btn:text-is('custom')")
    ui.page.fill(".custom-range input[aria-label=From]", "now-30m")
    ui.page.click(".querybar button[type=submit]")
    wait_url(ui, "p.get('from') === 'now-30m'")
    ui.page.wait_for_function("['ready', 'empty'].includes(document.querySelector('#view-flame').dataset.status)")


def test_empty_range_says_how_to_start_profiling(ui: Ui) -> None:
    ui.open("?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z")
    ui.wait_view("flame", "empty")
    ui.page.wait_for_selector("#view-flame .cmd")
    assert "flamehouse run" in (ui.page.text_content("#view-flame .cmd") or "")
    ui.shot("empty")


def test_api_errors_are_shown_in_the_page(ui: Ui) -> None:
    ui.open('?selector={service="x"')
    ui.wait_view("flame", "error")
    text = ui.page.text_content("#view-flame [role=alert]") or ""
    assert "HTTP 400" in text and "position" in text
    ui.shot("error")
    # the browser logs the failed requests themselves; nothing else may be logged
    ui.errors[:] = [e for e in ui.errors if "status of 400" not in e]


def test_timeline_drag_selects_a_range(ui: Ui, profiled: Profiled) -> None:
    need(profiled, "/api/v1/timeline")
    ui.open(f"?selector={PHASES}&from=now-3m")
    ui.wait_view("timeline")
    assert int(ui.page.get_attribute("#timeline", "data-samples") or 0) > 0
    assert ui.painted("#timeline canvas")["painted"] > 0
    box = ui.page.eval_on_selector(
        "#timeline canvas", "c => { const r = c.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }"
    )
    y = box[1] + box[3] / 2
    ui.page.mouse.move(box[0] + box[2] * 0.4, y)
    ui.page.mouse.down()
    ui.page.mouse.move(box[0] + box[2] * 0.7, y, steps=5)
    ui.page.mouse.up()
    wait_url(ui, "/^\\d+$/.test(p.get('from') || '') && /^\\d+$/.test(p.get('to') || '')")
    p = params(ui)
    assert int(p["from"]) < int(p["to"])
    ui.wait_view("timeline")


def test_lines_view_costs_and_links_to_the_flame_graph(ui: Ui, profiled: Profiled) -> None:
    need(profiled, "/api/v1/lines")
    ui.open(f"?view=lines&selector={PHASES}")
    ui.wait_view("lines")
    assert "spin_until" in (ui.page.text_content("#view-lines tbody") or "")
    assert "$" in (ui.page.text_content("#view-lines .cards") or "")
    ui.page.fill("#view-lines input[aria-label='GPU $/h']", "10")
    ui.page.keyboard.press("Enter")
    wait_url(ui, "p.get('gpu_price') === '10'")
    ui.shot("lines")
    ui.page.click("#view-lines tbody tr:has-text('spin_until') a")
    ui.wait_view("flame")
    assert params(ui)["focus"] == "spin_until"
    assert "spin_until" in (ui.page.text_content("#view-flame .focus-bar") or "")


def test_gpu_view_renders_devices_and_links_to_the_idle_flame_graph(ui: Ui, profiled: Profiled) -> None:
    need(profiled, "/api/v1/gpu")
    ui.open(f"?view=gpu&selector={PHASES}&from=now-15m")
    ui.wait_view("gpu")
    assert ui.page.locator("#view-gpu .device[data-uuid='GPU-replay-0']").count() == 1
    assert ui.painted("#view-gpu canvas.chart")["painted"] > 0
    ui.shot("gpu")
    ui.page.click("#view-gpu a:has-text('idle')")
    wait_url(ui, "p.get('view') === null && p.get('gpu_state') === 'idle'")
    ui.wait_view("flame")
    assert ui.frame("load_batch"), "the idle profile is the loading phase"


def test_diff_view_colours_frames_and_lists_changes(ui: Ui, profiled: Profiled) -> None:
    need(profiled, "/api/v1/diff")
    ui.open(f"?view=diff&base={SPLIT}&comparison={PHASES}&base_from=now-1h&base_to=now")
    ui.wait_view("diff")
    assert ui.painted("#view-diff .flame-canvas")["painted"] > 0
    assert ui.page.locator("#view-diff tbody tr").count() > 0
    ui.shot("diff")


def test_export_buttons_download_the_profile(ui: Ui, profiled: Profiled) -> None:
    need(profiled, "/api/v1/export")
    ui.open(f"?selector={SPLIT}")
    ui.wait_view("flame")
    for fmt in ("speedscope", "pprof", "folded"):
        with ui.page.expect_download() as info:
            ui.page.click(f".exports a:text-is('{fmt}')")
        assert info.value.suggested_filename


def test_split_by_line_toggle(ui: Ui, profiled: Profiled) -> None:
    need(profiled, "/api/v1/flamegraph", "by")
    ui.open(f"?selector={SPLIT}")
    ui.wait_view("flame")
    ui.page.check("#view-flame .toggle input")
    wait_url(ui, "p.get('by') === 'line'")
    ui.wait_view("flame")
    assert ui.frame("spin_three")
    ui.shot("flame-by-line")
