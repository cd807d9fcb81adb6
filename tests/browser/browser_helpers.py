"""What every browser test does to a page: keep a screenshot, run axe-core on it.

Screenshots go to ``test-artifacts/console/`` at the top of the repository (kept by the
run, ignored by git; ``TOKENLEDGER_ARTIFACTS`` moves it). The directory is emptied when a
run starts, so what is there is the last run's.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import axe_playwright_python
from playwright.sync_api import ConsoleMessage, Page

REPOSITORY = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(
    os.environ.get("TOKENLEDGER_ARTIFACTS", REPOSITORY / "test-artifacts")
).resolve() / ("console")
#: The impacts axe-core ranks as blocking: a page with one of these fails its test.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of what the browser shows now, as ``<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=path, full_page=True)
    return path


@cache
def _axe_source() -> str:
    # axe-core's own build, as shipped inside the axe-playwright-python package.
    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text("utf-8")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (every rule it runs by default)."""
    # page.evaluate runs through the DevTools protocol, which the page's Content Security
    # Policy does not govern; a <script> tag (page.add_script_tag) would be refused by the
    # console's CSP, which forbids inline scripts. So the browser context keeps enforcing the
    # console's real CSP (no bypass_csp), and a page that breaks its own policy breaks here.
    page.evaluate(_axe_source())
    results: dict[str, Any] = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
    )
    violations: list[dict[str, Any]] = results["violations"]
    return violations


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """One paragraph per rule: its id, impact and help, and the elements that break it."""
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            target = " ".join(str(part) for part in node["target"])
            lines.append(f"    at {target}: {node['html'][:160]}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    ... and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """Fail when axe-core finds any violation of impact "serious" or "critical"."""
    blocking = [v for v in axe_violations(page) if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"accessibility violations on {page.url}:\n{describe_violations(blocking)}"


#: Words of at most this many characters (a status, a column's name) are never to be broken
#: across lines; longer ones (ids, hashes) may wrap where a narrow screen needs it.
SHORT_WORD = 12

_BROKEN_WORDS = """(root, longest) => {
  const broken = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.data.matchAll(/[^\\s-]+/g)) {
      if (match[0].length > longest) continue;
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
      if (lines.size > 1) broken.push(match[0]);
    }
  }
  return broken;
}"""


def broken_words(page: Page, selector: str = "main") -> list[str]:
    """The short words inside ``selector`` that the layout splits over two lines or more
    (what a table squeezed into a narrow screen does to "revoked": r / e / v ...). A hyphen
    is a fair place to break, so the parts between hyphens count as the words."""
    words: list[str] = page.locator(selector).evaluate(_BROKEN_WORDS, SHORT_WORD)
    return words


_problems: WeakKeyDictionary[Page, list[str]] = WeakKeyDictionary()


def watch(page: Page) -> None:
    """Note what the page itself reports going wrong: an uncaught script error, or anything
    its Content Security Policy refused (a page that breaks its own policy)."""
    problems = _problems.setdefault(page, [])

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: script error: {error}"))


def check_page(page: Page, name: str) -> None:
    """What every page the tests visit goes through: a screenshot, no error the page itself
    reported, then axe-core."""
    screenshot(page, name)
    problems = _problems.get(page, [])
    assert not problems, "the page reported errors:\n" + "\n".join(problems)
    assert_accessible(page)
