"""axe-core in the browser tests: the accessibility rules of WCAG 2.1 A and AA, run in the page.

axe-core is an npm package pinned in ``tests/browser/package-lock.json`` and installed into
``tests/browser/node_modules`` by ``make browser`` (``npm ci --prefix tests/browser``). When it is
missing or not the pinned version the test FAILS with what to run; it is never skipped.

Use::

    from tests.browser.axe import assert_no_violations, axe_violations, describe_violations

    assert_no_violations(page)  # serious and critical, with a readable message
    found = axe_violations(page, impacts=("moderate", "serious", "critical"))
    assert not found, describe_violations(found)

The script is evaluated through the DevTools protocol (``page.evaluate``), not added as a
``<script>`` element, so a strict Content-Security-Policy (no inline scripts, no eval) does not
block it and the ordinary ``page`` fixture can be used as it is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

PACKAGE_DIR = Path(__file__).resolve().parent
AXE_SCRIPT = PACKAGE_DIR / "node_modules" / "axe-core" / "axe.min.js"
AXE_PACKAGE = PACKAGE_DIR / "node_modules" / "axe-core" / "package.json"
LOCK_FILE = PACKAGE_DIR / "package-lock.json"

# The rule sets of the target: WCAG 2.0 and 2.1, levels A and AA.
WCAG_TAGS: tuple[str, ...] = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
IMPACTS: tuple[str, ...] = ("minor", "moderate", "serious", "critical")
BLOCKING: tuple[str, ...] = ("serious", "critical")

# At most this many elements are named per rule in a failure message.
NODES_SHOWN = 5

_RUN = """async ([tags]) => {
    const results = await axe.run(document, {
        runOnly: {type: "tag", values: tags},
        resultTypes: ["violations"],
    });
    return results.violations.map((rule) => ({
        id: rule.id,
        impact: rule.impact,
        help: rule.help,
        helpUrl: rule.helpUrl,
        tags: rule.tags,
        nodes: rule.nodes.map((node) => ({
            target: node.target,
            html: node.html,
            impact: node.impact,
            failureSummary: node.failureSummary,
        })),
    }));
}"""


def _pinned_version() -> str:
    lock = json.loads(LOCK_FILE.read_text())
    return str(lock["packages"]["node_modules/axe-core"]["version"])


@functools.cache
def axe_source() -> str:
    """axe.min.js as pinned by the lock file; fails the test when it is absent or stale."""
    fix = "Run `make browser` (or `npm ci --prefix tests/browser`) to install it."
    if not AXE_SCRIPT.is_file():
        pytest.fail(
            f"The accessibility tests need axe-core, which is not installed ({AXE_SCRIPT} "
            f"is missing). {fix}",
            pytrace=False,
        )
    pinned = _pinned_version()
    installed = json.loads(AXE_PACKAGE.read_text()).get("version")
    if installed != pinned:
        pytest.fail(
            f"axe-core {installed} is installed but package-lock.json pins {pinned}. {fix}",
            pytrace=False,
        )
    return AXE_SCRIPT.read_text(encoding="utf-8")


def inject_axe(page: Page) -> None:
    """Load axe-core into the page's main frame (once per document)."""
    if page.evaluate("() => typeof window.axe === 'object'"):
        return
    # A script body, not a function: evaluated as it is, then `true` as its value.
    page.evaluate(axe_source() + "\n;true")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        pytest.fail("axe-core was evaluated in the page but `window.axe` is not defined")


def axe_violations(
    page: Page,
    *,
    impacts: Sequence[str] = BLOCKING,
    allowed: Iterable[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """The WCAG 2.1 A/AA violations axe-core finds in the page as it is now, of ``impacts``.

    Each is a dict: ``id`` (the rule), ``impact``, ``help``, ``helpUrl``, ``tags`` and
    ``nodes`` (each with ``target``, a list of CSS selectors, ``html``, ``impact`` and
    ``failureSummary``). ``allowed`` names (rule id, CSS target) pairs not to report: one
    rule on one element, for a problem outside the project's code; say why where it is used.
    A rule whose nodes are all allowed is left out.
    """
    unknown = set(impacts) - set(IMPACTS)
    if unknown:
        raise ValueError(f"unknown axe impacts {sorted(unknown)}; known: {IMPACTS}")
    inject_axe(page)
    found: list[dict[str, Any]] = page.evaluate(_RUN, [list(WCAG_TAGS)])
    skip = set(allowed)
    kept: list[dict[str, Any]] = []
    for rule in found:
        if rule["impact"] not in impacts:
            continue
        nodes = [node for node in rule["nodes"] if (rule["id"], _target(node)) not in skip]
        if nodes:
            kept.append({**rule, "nodes": nodes})
    return kept


def _target(node: dict[str, Any]) -> str:
    """A node's target as one string: its selector, or the chain through frames/shadow roots."""
    return " >> ".join(part if isinstance(part, str) else " ".join(part) for part in node["target"])


def describe_violations(violations: Sequence[dict[str, Any]], *, where: str = "") -> str:
    """A readable account of ``violations`` for an assertion message: one paragraph per rule
    with its impact, what it asks, and the first elements that break it."""
    if not violations:
        return "no accessibility violations"
    count = sum(len(rule["nodes"]) for rule in violations)
    lines = [f"{len(violations)} axe rule(s) violated on {count} element(s){where}:"]
    for rule in violations:
        lines.append(f"- {rule['id']} [{rule['impact']}] {rule['help']} ({rule['helpUrl']})")
        for node in rule["nodes"][:NODES_SHOWN]:
            lines.append(f"    {_target(node)}: {_shorten(node['html'])}")
            summary = (node.get("failureSummary") or "").strip().splitlines()
            if len(summary) > 1:
                lines.append(f"      {summary[1].strip()}")
        hidden = len(rule["nodes"]) - NODES_SHOWN
        if hidden > 0:
            lines.append(f"    ... and {hidden} more")
    return "\n".join(lines)


def _shorten(html: str, limit: int = 160) -> str:
    flat = " ".join(html.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def assert_no_violations(
    page: Page,
    *,
    impacts: Sequence[str] = BLOCKING,
    allowed: Iterable[tuple[str, str]] = (),
) -> None:
    """Fail with a readable list unless axe-core finds no violation of ``impacts``."""
    found = axe_violations(page, impacts=impacts, allowed=allowed)
    assert not found, describe_violations(found, where=f" at {page.url}")
