"""The public pre-screening form in a real browser, as a visitor uses it: every step with some
"I don't know"s, the results (flagged preoperative immunotherapy trials first for a resectable
cancer, none for a metastatic one), validation messages beside the right fields, the request to
be contacted arriving in the coordinators' queue; axe-core clean on every page at 1280 and
375 px wide, screenshots kept."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from patients.models import Match, Patient, Source
from tests.browser.axe import assert_no_violations
from tests.browser.conftest import Account, DemoData, log_in

Answers = list[dict[str, str | list[str]]]

RESECTABLE: Answers = [
    {"age": "64", "sex": "female"},
    {"site": "stomach", "histology": "adenocarcinoma", "spread": "no"},
    {"stage": "III", "t_stage": "T3", "n_stage": "unknown", "surgery": "planned"},
    {"treatments": ["none"], "activity": "1"},
    {
        "conditions": ["unknown"],
        "country": "United States",
        "postal_code": "10065",
        "travel": "any",
    },
]
METASTATIC: Answers = [
    {"age_unknown": "on", "sex": "male"},
    {"site": "stomach", "histology": "unknown", "spread": "yes", "spread_sites": ["liver"]},
    {"stage": "IV", "surgery": "not_planned"},
    {"treatments": ["chemotherapy"], "activity": "unknown"},
    {"conditions": ["none"], "travel": "unknown"},
]


@pytest.fixture(autouse=True)
def quick_visitor(settings: Any) -> None:
    """The browser answers faster than a person: no minimum fill time."""
    settings.PRESCREEN_MIN_FILL_SECONDS = 0


def answer(page: Page, name: str, value: str | list[str]) -> None:
    """Fill one question by its field name, whatever control it is drawn with."""
    values = value if isinstance(value, list) else [value]
    select = page.locator(f"select[name='{name}']")
    if select.count():
        select.select_option(values)
        return
    text = page.locator(f"input[name='{name}']:not([type=radio]):not([type=checkbox])")
    if text.count():
        text.fill(values[0])
        return
    for item in values:
        choice = page.locator(f"input[name='{name}'][value='{item}']")
        if not choice.count():  # a single checkbox ("on") carries no value attribute
            choice = page.locator(f"input[type=checkbox][name='{name}']")
        choice.check()


def submit(page: Page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("Continue|See my results")).click()


def walk(
    page: Page,
    answers: Answers,
    screenshot: Callable[[Page, str], Path] | None = None,
    prefix: str = "",
) -> None:
    """From the intro page through every step to the results, axe-checking each page."""
    page.goto("/prescreen/")
    assert_no_violations(page)
    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("Start")).click()
    for number, step in enumerate(answers, start=1):
        expect(page.locator(".progress")).to_contain_text(str(number))
        for name, value in step.items():
            answer(page, name, value)
        assert_no_violations(page)
        if screenshot is not None:
            screenshot(page, f"{prefix}step-{number}")
        submit(page)
        expect(page.locator(".error-summary")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/prescreen/results/[\w-]+/$"))


@pytest.mark.parametrize("width", [1280, 375])
def test_a_resectable_cancer_sees_flagged_trials_first_and_asks_to_be_contacted(
    page: Page,
    demo_data: DemoData,
    coordinator_a: Account,
    screenshot: Callable[[Page, str], Path],
    width: int,
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    walk(page, RESECTABLE, screenshot, prefix=f"prescreen-{width}-")

    trials = page.locator(".trial-list > li")
    expect(trials.first).to_have_class(re.compile("trial-flagged"))
    expect(trials.first).to_contain_text("Shown first")
    flagged = page.locator(".trial-list > li.trial-flagged").count()
    assert flagged >= 2  # MATTERHORN and the neoadjuvant camrelizumab trial
    # Flagged ones are on top: none after the first trial that is not flagged.
    classes = [trials.nth(index).get_attribute("class") or "" for index in range(trials.count())]
    assert all("trial-flagged" in item for item in classes[:flagged])
    expect(page.locator(".checked-line")).to_contain_text("We checked")
    expect(page.get_by_text(re.compile("not medical advice", re.IGNORECASE)).first).to_be_visible()
    assert_no_violations(page)
    screenshot(page, f"prescreen-{width}-results")

    # Asking to be contacted: consent is required, then a reference code.
    contact = page.locator("section.contact")
    contact.get_by_label(re.compile("name", re.IGNORECASE)).first.fill("Ana Example")
    contact.locator("input[name=email]").fill("ana@example.org")
    answer(page, "contact_time", "morning")
    with page.expect_navigation():
        contact.get_by_role("button", name="Ask to be contacted").click()
    expect(page.locator("#error-consent")).to_be_visible()  # beside the consent box
    assert not Patient.objects.filter(source=Source.WEB_FORM).exists()
    page.locator("input[name=consent]").check()
    with page.expect_navigation():
        page.locator("section.contact").get_by_role("button", name="Ask to be contacted").click()
    reference = re.search(r"WEB-[A-Z2-9]{8}", page.content())
    assert reference is not None
    assert_no_violations(page)

    # The referral reaches the coordinators' queue, flagged.
    referral = Patient.objects.get(external_id=reference.group(0))
    assert referral.source == Source.WEB_FORM
    assert Match.objects.filter(patient=referral, flagged=True).exists()
    log_in(page, coordinator_a, next_url=f"/admin/patients/match/?q={reference.group(0)}")
    rows = page.locator("#result_list tbody tr")
    expect(rows.first).to_contain_text(reference.group(0))
    expect(rows.first).to_contain_text("⚑")


def test_a_metastatic_cancer_sees_no_flagged_trial(
    page: Page, demo_data: DemoData, screenshot: Callable[[Page, str], Path]
) -> None:
    walk(page, METASTATIC)

    expect(page.locator(".trial-list > li.trial-flagged")).to_have_count(0)
    expect(page.locator(".checked-line")).to_contain_text("We checked")
    assert_no_violations(page)
    screenshot(page, "prescreen-metastatic-results")


def test_validation_messages_stand_beside_their_fields_and_answers_are_kept(
    page: Page, demo_data: DemoData, screenshot: Callable[[Page, str], Path]
) -> None:
    page.goto("/prescreen/step/1/")
    answer(page, "age", "64")
    submit(page)  # no sex chosen

    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    link = summary.get_by_role("link").first
    target = link.get_attribute("href")
    assert target is not None
    assert target.startswith("#")
    expect(page.locator(target)).to_have_count(1)
    sex_question = page.locator(".question.has-error")
    expect(sex_question).to_have_count(1)
    expect(sex_question.locator("#error-sex")).to_be_visible()
    expect(page.locator("input[name=age]")).to_have_value("64")
    assert_no_violations(page)
    screenshot(page, "prescreen-error")

    answer(page, "age", "250")
    answer(page, "sex", "unknown")
    submit(page)
    expect(page.locator("#error-age")).to_be_visible()
    expect(page.locator("input[name=sex][value=unknown]")).to_be_checked()
