"""The coordinator's day in a real browser: the dashboard, the flagged queue, a match's
checklist, moving the pair to "contacted" with a note, the CSV export; and a coordinator of
another site who sees none of it. Screenshots of the dashboard, queue and match page are kept
as test artifacts."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from patients.models import Patient, Review, ReviewNote
from tests.browser.conftest import Account, DemoData, log_in
from trials.models import Trial

MATTERHORN = "NCT04592913"  # perioperative durvalumab + FLOT: flagged for EX1
INELIGIBLE_FOR_EX1 = "NCT03006705"  # per the examples' expectations


def colour(page: Page, selector: str) -> tuple[int, int, int]:
    """The computed background colour of the first element matching ``selector``."""
    value = page.locator(selector).first.evaluate("e => getComputedStyle(e).backgroundColor")
    red, green, blue = (int(part) for part in re.findall(r"\d+", value)[:3])
    return red, green, blue


def pair_path(mrn: str, nct_id: str) -> str:
    patient = Patient.objects.get(external_id=mrn)
    trial = Trial.objects.get(nct_id=nct_id)
    return f"/admin/patients/match/pair/{patient.pk}/{trial.pk}/"


def test_coordinator_works_a_flagged_pair_from_the_queue_to_contacted(
    page: Page,
    demo_data: DemoData,
    coordinator_a: Account,
    screenshot: Callable[[Page, str], Path],
) -> None:
    assert ("EX1", MATTERHORN) in demo_data.flagged_a
    log_in(page, coordinator_a)

    # The dashboard: the funnel and the new flags, drawn without any CDN.
    dashboard = page.locator("#dashboard")
    expect(dashboard).to_be_visible()
    expect(dashboard.locator("svg").first).to_be_visible()
    screenshot(page, "dashboard")

    # The queue: flagged pairs first, each marked by a word and symbol, not colour alone.
    page.goto("/admin/patients/match/")
    rows = page.locator("#result_list tbody tr")
    expect(rows.first).to_contain_text("⚑")
    flagged_rows = rows.filter(has_text="⚑").count()
    assert flagged_rows == min(len(demo_data.flagged_a), rows.count())
    expect(page.locator("#result_list")).not_to_contain_text("NORTH-0001")  # site B's
    screenshot(page, "queue")

    # Found by MRN, opened from its row.
    page.goto("/admin/patients/match/?q=EX1")
    row = page.locator("#result_list tbody tr", has_text=MATTERHORN)
    expect(row).to_contain_text("⚑")
    with page.expect_navigation():
        row.locator("a[href*='/match/pair/']").first.click()
    expect(page.locator("h1")).to_contain_text(f"EX1 \N{MULTIPLICATION SIGN} {MATTERHORN}")

    # The checklist: green satisfied, grey unknown, each with its reason; "to find out".
    satisfied = page.locator(".ws-checklist .ws-check--pass")
    unknown = page.locator(".ws-checklist .ws-check--unknown")
    expect(satisfied.first).to_contain_text("✓")
    expect(unknown.first).to_contain_text("?")
    expect(satisfied.first.locator(".ws-check__reason")).not_to_be_empty()
    green, grey = (
        colour(page, ".ws-checklist .ws-check--pass"),
        colour(page, ".ws-checklist .ws-check--unknown"),
    )
    assert green[1] > max(green[0], green[2]), green  # green dominates
    assert max(grey) - min(grey) < 20, grey  # a grey
    expect(page.get_by_role("heading", name="To find out")).to_be_visible()
    expect(
        page.get_by_role("link", name=re.compile(f"{MATTERHORN} on ClinicalTrials.gov"))
    ).to_have_attribute("href", f"https://clinicaltrials.gov/study/{MATTERHORN}")
    screenshot(page, "match")

    # Moved to "contacted" with a note: recorded with its author.
    page.get_by_label("Contacted").check()
    page.get_by_label("Note", exact=True).fill(
        "Phoned the patient: interested, information pack sent."
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Move").click()
    workflow = page.locator("#workflow")
    expect(workflow).to_contain_text("Contacted")
    expect(workflow.locator(".ws-notes")).to_contain_text("information pack sent")
    expect(workflow.locator(".ws-notes")).to_contain_text(coordinator_a.username)
    review = Review.objects.get(patient__external_id="EX1", trial__nct_id=MATTERHORN)
    assert review.status == Review.Status.CONTACTED
    assert ReviewNote.objects.get(review=review).author == coordinator_a.user

    # A pair the patient fails: red, with the failing reason.
    page.goto(pair_path("EX1", INELIGIBLE_FOR_EX1))
    failing = page.locator(".ws-checklist .ws-check--fail")
    expect(failing.first).to_contain_text("✗")
    red = colour(page, ".ws-checklist .ws-check--fail")
    assert red[0] > max(red[1], red[2]), red  # red dominates

    # The CSV export of the selected rows.
    page.goto("/admin/patients/match/?q=EX1")
    page.locator("#result_list tbody tr", has_text=MATTERHORN).locator(
        "input.action-select"
    ).check()
    page.locator("select[name=action]").select_option(label="Export CSV")
    with page.expect_download() as download:
        page.get_by_role("button", name="Run").or_(page.get_by_role("button", name="Go")).click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert len(exported) == 1
    assert set(exported[0].values()) >= {"EX1", MATTERHORN}
    assert "contacted" in {value.lower() for value in exported[0].values()}


def test_a_coordinator_of_another_site_sees_none_of_it(
    page: Page,
    demo_data: DemoData,
    coordinator_b: Account,
    screenshot: Callable[[Page, str], Path],
) -> None:
    log_in(page, coordinator_b, next_url="/admin/patients/match/")

    queue = page.locator("#result_list")
    expect(queue).to_contain_text("NORTH-0001")
    for mrn, _ in demo_data.flagged_a:
        expect(queue).not_to_contain_text(mrn)
    page.goto("/admin/patients/match/?q=EX1")
    expect(page.locator("#result_list tbody tr")).to_have_count(0)

    answer = page.goto(pair_path("EX1", MATTERHORN))
    assert answer is not None
    assert answer.status == 404
    answer = page.goto(
        f"/admin/patients/patient/{Patient.objects.get(external_id='EX1').pk}/change/"
    )
    assert answer is not None
    assert answer.status == 404
    page.goto("/admin/")
    expect(page.locator("#dashboard")).not_to_contain_text("EX1")
    screenshot(page, "dashboard-other-site")
