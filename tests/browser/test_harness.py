"""The browser harness itself, against pages that exist without the console: Chromium loads the
offline Swagger UI from a real server, the guard catches a request that leaves the host, and
Chinese is drawn with a CJK font (not tofu)."""
from __future__ import annotations

import os
from pathlib import Path

from .conftest import CHROMIUM

HANZI = "节约型机关"


def test_swagger_ui_loads_offline(console, page) -> None:
    response = page.goto(f"{console.base}/docs")
    assert response is not None and response.ok
    assert "API" in page.title()
    # Swagger UI has rendered the app's OpenAPI document (fetched from the same server).
    page.wait_for_selector(".swagger-ui .info .title")
    page.wait_for_selector(".swagger-ui .opblock")
    assert page.locator(".swagger-ui .opblock").count() > 10
    assert page.blocked_urls == []


def test_guard_blocks_a_request_that_leaves_the_host(page) -> None:
    page.goto("about:blank")
    page.evaluate("fetch('http://example.com/x').catch(() => 0)")
    assert page.blocked_urls == ["http://example.com/x"]
    page.blocked_urls.clear()  # the fixture's teardown would fail the test otherwise


def platform_fonts(page, selector: str) -> list[dict]:
    """The fonts Chromium actually drew the node's text with (DevTools' "Rendered Fonts"):
    ``document.fonts.check`` cannot tell, it answers true even for a font that does not exist."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]


def test_chinese_is_drawn_with_a_cjk_font(page) -> None:
    # lang="zh-CN": without it Chromium's fallback picks Noto Sans CJK *JP* (Japanese glyph forms),
    # whatever the context's locale; the console's pages say <html lang="zh-CN">.
    page.set_content(f'<p lang="zh-CN"><span style="font-size:40px">{HANZI}</span></p>')
    fonts = platform_fonts(page, "span")
    assert [(f["familyName"], f["glyphCount"]) for f in fonts] == [("Noto Sans CJK SC", 5)], fonts
    # each hanzi one em wide (tofu from a Latin font is narrower: ~73 px for the five)
    assert page.evaluate("document.querySelector('span').getBoundingClientRect().width") >= 5 * 40 - 1


def test_the_font_check_fails_without_cjk_fonts(browser, tmp_path: Path) -> None:
    """The check above can fail: a Chromium whose fontconfig rejects every CJK font draws tofu."""
    (tmp_path / "fonts.conf").write_text(f"""<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>/usr/share/fonts</dir>
  <cachedir>{tmp_path}/cache</cachedir>
  <include ignore_missing="yes">/etc/fonts/conf.d</include>
  <selectfont><rejectfont><glob>*CJK*</glob><glob>*cjk*</glob></rejectfont></selectfont>
</fontconfig>
""")
    other = browser.browser_type.launch(executable_path=CHROMIUM, args=["--no-sandbox"],
                                        env={**os.environ, "FONTCONFIG_FILE": str(tmp_path / "fonts.conf")})
    try:
        page = other.new_page(locale="zh-CN")
        page.set_content(f'<p lang="zh-CN"><span style="font-size:40px">{HANZI}</span></p>')
        families = [f["familyName"] for f in platform_fonts(page, "span")]
        assert "Noto Sans CJK SC" not in families, families
    finally:
        other.close()
