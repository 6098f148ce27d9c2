"""Which cancer sites a trial is for, and the matcher's per-patient pre-filter on them.

Pure Python, no database. The trials are real ClinicalTrials.gov records (``trials/data/ctgov``
``v2`` and ``v2-partial``) read as the matcher reads them: their conditions, MeSH terms and
titles. A patient is evaluated against every open trial for their cancer site; a trial for
any site (a basket, "solid tumours", a record naming no cancer) and a patient whose site is
not recorded are never filtered out, and the flag stays the gastric preoperative
immunotherapy program's.
"""

from __future__ import annotations

import datetime
import json

import pytest

from tests.trials.conftest import CTGOV_DATA
from trials.ctgov.mapping import map_study
from trials.eligibility.classify import trial_cancer_sites
from trials.eligibility.evaluate import PatientEvaluator, Prefilter, Rule, TrialRules, Verdict
from trials.eligibility.facts import PatientFacts, Staging, Surgery, surgical_candidate
from trials.eligibility.parser import parse_eligibility
from trials.eligibility.vocabulary import CancerSite, Histology

TODAY = datetime.date(2026, 11, 26)
STOMACH, GEJ, ESOPHAGUS, OTHER = (
    CancerSite.STOMACH,
    CancerSite.GEJ,
    CancerSite.ESOPHAGUS,
    CancerSite.OTHER,
)
ANY: frozenset[CancerSite] = frozenset()


def sites_of(nct_id: str, *, gastric: bool = False) -> frozenset[CancerSite]:
    """The sites of a recorded trial, read from what the sync stores of it."""
    folder = "v2" if (CTGOV_DATA / "v2" / f"{nct_id}.json").exists() else "v2-partial"
    mapped = map_study(json.loads((CTGOV_DATA / folder / f"{nct_id}.json").read_text()))
    return trial_cancer_sites(
        mapped.conditions,
        mapped.condition_mesh_terms,
        (mapped.brief_title, mapped.official_title),
        gastric=gastric,
    )


# --- The trial side: sites read from the record ------------------------------------------------


@pytest.mark.parametrize(
    ("nct_id", "sites"),
    [
        # Conditions naming the sites.
        ("NCT03006705", {STOMACH}),  # "Gastric Cancer"
        ("NCT03221426", {STOMACH, GEJ}),  # "Gastric Cancer", "Gastroesophageal Junction Cancer"
        ("NCT03399071", {STOMACH, ESOPHAGUS}),  # gastric and oesophageal adenocarcinoma
        ("NCT05913115", {STOMACH, GEJ, ESOPHAGUS}),  # "Gastric or Gastroesophageal Cancer"
        ("NCT04006262", {STOMACH, GEJ, ESOPHAGUS}),  # "Localized Oesogastric Adenocarcimona"
        # No conditions, or none naming a site: the title.
        ("NCT03940001", {ESOPHAGUS}),  # "... Before Surgery for Esophageal Cancer"
        ("NCT03878472", {STOMACH}),  # "... for Resectable Gastric Cancer"
        ("NCT02743494", {ESOPHAGUS, GEJ}),  # "Advanced Cancer"; "... Esophageal or GEJ Cancer"
        # Cancers of other organs.
        ("NCT02513394", {OTHER}),  # "Breast Cancer"
        ("NCT03240016", {OTHER}),  # "Urothelial Carcinoma"
        ("NCT03516279", {OTHER}),  # chronic myeloid leukaemia
        # Any site: solid tumours, the gastrointestinal family, nothing usable.
        ("NCT06008288", ANY),  # "Pancreatic Cancer", "Solid Tumor" (a KRAS G12C basket)
        ("NCT04250948", ANY),  # "Gastric Cancer", "Locally Advanced Solid Tumor"
        ("NCT04592913", ANY),  # "Gastrointestinal Neoplasms", "Esophagogastric Junction"
        ("NCT06171568", ANY),  # "Brain Injuries": no cancer named
        ("NCT00763412", ANY),  # "Pancreatic Insufficiency" is no pancreatic cancer
        ("NCT04227951", ANY),  # no conditions, no title
    ],
)
def test_a_trials_sites_are_read_from_its_conditions_then_its_title(
    nct_id: str, sites: set[CancerSite]
) -> None:
    assert sites_of(nct_id) == frozenset(sites)


def test_a_trial_classified_gastric_is_for_the_stomach_and_the_junction_too() -> None:
    # "Esophago-gastric adenocarcinoma" reads as the oesophagus; the classification (gastric
    # / GEJ, from the title, summary and criteria) adds the stomach and the junction.
    assert sites_of("NCT03288350") == {ESOPHAGUS}
    assert sites_of("NCT03288350", gastric=True) == {ESOPHAGUS, STOMACH, GEJ}
    assert sites_of("NCT03006705", gastric=True) == {STOMACH, GEJ}
    # A trial for any site stays one.
    assert sites_of("NCT06008288", gastric=True) == ANY


@pytest.mark.parametrize(
    ("conditions", "sites"),
    [
        (["Esophageal Squamous Cell Carcinoma"], {ESOPHAGUS}),
        (["Gastroesophageal Junction Adenocarcinoma"], {GEJ}),  # the junction, not the family
        (["Upper Gastrointestinal Cancer"], {STOMACH, GEJ, ESOPHAGUS}),
        (["Gastric Cancer", "Colorectal Cancer"], {STOMACH, OTHER}),
        (["Gastric Cancer", "Peritoneal Metastases", "Adenocarcinoma"], {STOMACH}),
        (["Advanced Solid Tumours"], ANY),
        (["Tumor Agnostic", "MSI-H"], ANY),
        (["Adenocarcinoma"], ANY),  # a histology names no site
        ([], ANY),
    ],
)
def test_words_for_sites_families_other_organs_and_any_site(
    conditions: list[str], sites: set[CancerSite]
) -> None:
    assert trial_cancer_sites(conditions) == frozenset(sites)


# --- The patient side: the pre-filter ----------------------------------------------------------


def open_trial(
    sites: frozenset[CancerSite] | set[CancerSite],
    *,
    status: str = "RECRUITING",
    gastric_preop_immunotherapy: bool = False,
) -> TrialRules:
    return TrialRules(
        key=1,
        nct_id="NCT00000001",
        rules=(),
        status=status,
        gastric_preop_immunotherapy=gastric_preop_immunotherapy,
        cancer_sites=frozenset(sites),
    )


def prefilter(site: CancerSite | None, trial: TrialRules) -> Prefilter:
    return PatientEvaluator(PatientFacts(primary_site=site), TODAY).prefilter(trial)


def mismatch(site: CancerSite | None, trial: TrialRules) -> bool:
    return PatientEvaluator(PatientFacts(primary_site=site), TODAY).site_mismatch(trial)


@pytest.mark.parametrize(
    ("site", "sites", "outside"),
    [
        # The patient's site is among the trial's.
        (STOMACH, {STOMACH, GEJ}, False),
        (ESOPHAGUS, {ESOPHAGUS}, False),
        (OTHER, {OTHER}, False),
        # A junction tumour fits gastric and oesophageal trials.
        (GEJ, {STOMACH}, False),
        (GEJ, {ESOPHAGUS}, False),
        (GEJ, {GEJ}, False),
        # Never outside: a trial for any site, a patient whose site is not recorded.
        (STOMACH, ANY, False),
        (ESOPHAGUS, ANY, False),
        (OTHER, ANY, False),
        (None, {ESOPHAGUS}, False),
        (None, {OTHER}, False),
        # Outside the sites the trial's conditions name.
        (STOMACH, {ESOPHAGUS}, True),
        (ESOPHAGUS, {STOMACH, GEJ}, True),
        (STOMACH, {GEJ}, True),
        (OTHER, {STOMACH, GEJ}, True),
        (GEJ, {OTHER}, True),
        (STOMACH, {ESOPHAGUS, OTHER}, True),
    ],
)
def test_a_site_outside_the_trials_conditions_is_told_apart_cheaply(
    site: CancerSite | None, sites: set[CancerSite], outside: bool
) -> None:
    trial = open_trial(sites)
    assert mismatch(site, trial) is outside
    # The conditions alone never keep a pair from being evaluated and stored.
    assert prefilter(site, trial) == Prefilter(True)


def test_outside_the_conditions_the_trials_disease_criterion_decides_first() -> None:
    """An oesophageal patient against a gastric trial: the trial's own disease criterion is
    read first, and the pair is ineligible on it (the rest not evaluated); against a trial
    whose criteria name no disease, the conditions alone exclude no one."""
    disease = parse_eligibility(
        "Inclusion Criteria:\n\n* Histologically confirmed gastric adenocarcinoma\n* ECOG 0-1\n"
    ).criteria
    rules = tuple(Rule(x.position, x.kind, x.category, x.constraints, x.join) for x in disease)
    with_disease = TrialRules(
        key=2,
        nct_id="NCT00000002",
        rules=rules,
        status="RECRUITING",
        cancer_sites=frozenset({STOMACH, GEJ}),
    )
    without = TrialRules(
        key=3,
        nct_id="NCT00000003",
        rules=rules[1:],
        status="RECRUITING",
        cancer_sites=frozenset({STOMACH, GEJ}),
    )
    oesophageal = PatientEvaluator(
        PatientFacts(primary_site=ESOPHAGUS, histology=Histology.SQUAMOUS, ecog=0), TODAY
    )
    screened = oesophageal.evaluate(with_disease)
    assert screened.verdict is Verdict.INELIGIBLE
    assert [x.reason for x in screened.criteria][1].startswith("not evaluated: ineligible already")
    assert oesophageal.evaluate(without).verdict is Verdict.ELIGIBLE


def test_a_closed_trial_is_not_evaluated_whatever_its_sites() -> None:
    closed = open_trial(ANY, status="COMPLETED")
    assert prefilter(STOMACH, closed) == Prefilter(False, "not open to enrolment (COMPLETED)")


# --- The flag: still the gastric preoperative immunotherapy program -----------------------------


JUNCTION_CANDIDATE = PatientFacts(
    sex="male",
    birth_date=datetime.date(1962, 5, 1),
    primary_site=GEJ,
    histology=Histology.ADENOCARCINOMA,
    clinical={"T": Staging("T3"), "N": Staging("N1"), "M": Staging("M0")},
    ecog=1,
    surgeries=(Surgery("total_gastrectomy", "planned"),),
)


@pytest.mark.parametrize("sites", [{ESOPHAGUS}, {STOMACH, GEJ}, ANY])
def test_only_a_gastric_preoperative_immunotherapy_trial_flags(sites: set[CancerSite]) -> None:
    assert surgical_candidate(JUNCTION_CANDIDATE).value is True
    evaluator = PatientEvaluator(JUNCTION_CANDIDATE, TODAY)

    other = evaluator.evaluate(open_trial(sites))
    program = evaluator.evaluate(open_trial(sites, gastric_preop_immunotherapy=True))

    assert other.verdict is program.verdict is Verdict.ELIGIBLE  # no criteria: nothing fails
    assert (other.flagged, other.flag_reason) == (False, "")
    assert program.flagged
    assert program.flag_reason.startswith("Preoperative immunotherapy trial")
