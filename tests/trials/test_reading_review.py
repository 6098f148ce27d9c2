"""An uncertain reading never decides: structure, word accounting, review marks, trial checks.

Table-driven over real criterion wording (most lines from ClinicalTrials.gov records). Each
criterion is read by the parser and applied as the matcher applies it (``Criterion.review``:
the review note and where the reading may still decide), against ``PatientFacts`` built here.
See docs/reading-model.md.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

import pytest

from tests.trials.lab_results import lab
from trials.eligibility.constraints import PrimarySite
from trials.eligibility.evaluate import Outcome, PatientEvaluator
from trials.eligibility.facts import (
    Comorbidity,
    ComorbidityKind,
    PatientFacts,
    Staging,
    Surgery,
    Treatment,
    TreatmentCategory,
)
from trials.eligibility.parser import Criterion, parse_eligibility
from trials.eligibility.structure import Role, heading_scope, parse_structure
from trials.eligibility.units import Analyte
from trials.eligibility.vocabulary import CancerSite, Histology

ON = datetime.date(2026, 12, 1)
BASE = PatientFacts(
    external_id="base",
    sex="male",
    birth_date=datetime.date(1964, 5, 1),
    primary_site=CancerSite.STOMACH,
    histology=Histology.ADENOCARCINOMA,
    clinical={"T": Staging("T3"), "N": Staging("N1"), "M": Staging("M0")},
    ecog=0,
    prior_anticancer_therapy=False,
    surgeries=(Surgery("total_gastrectomy", "planned"),),
)


def read(text: str, kind: str = "inclusion", *, sex: str = "") -> Criterion:
    heading = "Inclusion Criteria:" if kind == "inclusion" else "Exclusion Criteria:"
    found = [
        x
        for x in parse_eligibility(f"{heading}\n\n* {text}\n", sex=sex).criteria
        if x.origin == "text" and not x.header
    ]
    assert len(found) == 1, found
    return found[0]


def outcome(criterion: Criterion, facts: PatientFacts = BASE) -> tuple[Outcome, str]:
    result = PatientEvaluator(facts, ON).criterion(criterion.as_rule())
    return result.outcome, result.reason


# --- 1. The sentence structure ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "roles"),
    [
        ("AST <= 2.5 x ULN (<= 5 x ULN if liver metastases)", {Role.MAIN, Role.CONDITION}),
        ("Prior or concurrent malignancy (except non-melanomatous skin cancer)", {Role.EXCEPTION}),
        (
            "Patients with chronic hepatitis B (HBsAg positive but HBV DNA < 2000 IU/mL can be "
            "included)",
            {Role.ALLOWANCE},
        ),
        ("Hemoglobin >= 9 g/dl (transfusion or use of EPO is permitted).", {Role.ALLOWANCE}),
        ("T4 tumours will be excluded from the study. Note: staging by CT", {Role.REMARK}),
        ("Need for major surgery during the study", {Role.SCOPE}),
        ("Active autoimmune disease (e.g. ulcerative colitis)", {Role.EXAMPLE}),
    ],
)
def test_clauses_get_their_roles(text: str, roles: set[Role]) -> None:
    structure = parse_structure(text)
    assert roles <= {clause.role for clause in structure.clauses}


def test_a_parenthesis_speaks_for_itself() -> None:
    structure = parse_structure("Hemoglobin >= 9 g/dl (transfusion or use of EPO is permitted).")
    main = [x for x in structure.clauses if x.role is Role.MAIN]
    assert main
    assert main[0].text(structure.text).startswith("Hemoglobin")


@pytest.mark.parametrize(
    ("heading", "scope"),
    [
        ("Adequate organ function as defined by:", ""),
        ("A patient will be eligible only if ALL of the following criteria apply:", ""),
        ("For patients with solid tumors without known bone marrow involvement:", "condition"),
        ("Cohort E2: triple-negative breast cancer", "cohort"),
        ("Patients must meet one of the following:", "one of the following"),
    ],
)
def test_a_heading_governs_its_items(heading: str, scope: str) -> None:
    found = heading_scope(heading)
    if scope:
        assert found.startswith(scope)
    else:
        assert found == ""


# --- 2. Complete readings decide; incomplete ones say what they did not understand -------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("ECOG performance status 0-1", "inclusion"),
        ("Absolute neutrophil count >= 1.5 x 10^9/L", "inclusion"),
        ("Histologically confirmed adenocarcinoma of the stomach", "inclusion"),
        ("(cT2, cT3, cT4, any N category, M0), or (any T, N+, M0)", "inclusion"),
        ("Known human epidermal growth factor receptor 2 (HER2) positive", "exclusion"),
        ("Participants with leptomeningeal disease are excluded", "exclusion"),
    ],
)
def test_a_reading_that_explains_every_word_is_complete(text: str, kind: str) -> None:
    criterion = read(text, kind)
    assert criterion.reading_status == "complete", criterion.gaps


@pytest.mark.parametrize(
    ("text", "kind", "words"),
    [
        # A condition of an inclusion may admit more.
        (
            "Prothrombin time (PT)/international normalized ratio (INR) =< 1.8 times upper "
            "limit of normal (unless patient is on anticoagulation)",
            "inclusion",
            "exception: unless",
        ),
        # Alternatives not read, in an inclusion.
        (
            "Histologically or cytologically confirmed, locally advanced or metastatic solid "
            "tumor, refractory to standard therapy or no standard therapy available.",
            "inclusion",
            "or",
        ),
        # A qualifier list running into the concept read.
        (
            "Untreated or symptomatic central nervous system (CNS) metastases",
            "exclusion",
            "untreated",
        ),
        # A number the reading did not take.
        (
            "Patients having received more than one previous systemic chemotherapy regimen",
            "exclusion",
            "one",
        ),
    ],
)
def test_an_incomplete_reading_is_unknown_with_the_words(text: str, kind: str, words: str) -> None:
    criterion = read(text, kind)
    assert criterion.reading_status == "incomplete"
    assert any(words in gap for gap in criterion.gaps), criterion.gaps
    found, reason = outcome(criterion, dataclasses.replace(BASE, comorbidities=()))
    assert (
        found is Outcome.UNKNOWN
        or not PatientEvaluator(BASE, ON).criterion(criterion.as_rule()).disqualifying
    )
    if found is Outcome.UNKNOWN and criterion.review()[1] == "":
        assert reason.startswith("reading incomplete, not understood: ")


def test_unread_qualifiers_decide_only_where_the_concept_is_absent() -> None:
    criterion = read("Previous radiotherapy to the pelvic area", "exclusion")
    assert criterion.gaps == ("pelvic", "area")
    never = dataclasses.replace(BASE, prior_anticancer_therapy=False)
    treated = dataclasses.replace(
        BASE,
        prior_anticancer_therapy=True,
        treatments=(Treatment(TreatmentCategory.RADIOTHERAPY, status="completed"),),
    )
    assert outcome(criterion, never)[0] is Outcome.NOT_MET  # never irradiated: settled
    assert outcome(criterion, treated)[0] is Outcome.UNKNOWN  # pelvic or not: review


def test_an_exclusions_unread_alternative_decides_only_where_the_concept_is_present() -> None:
    criterion = read(
        "Major surgical procedure, open biopsy, or significant traumatic injury within 28 days "
        "prior to randomization",
        "exclusion",
    )
    assert criterion.gaps == ("or: open traumatic injury",)
    operated = dataclasses.replace(
        BASE, surgeries=(Surgery("other", "done", date=ON - datetime.timedelta(days=11)),)
    )
    assert outcome(criterion, operated)[0] is Outcome.MET  # the part read already excludes
    assert outcome(criterion)[0] is Outcome.UNKNOWN  # the injury may still have happened


def _since(days: int) -> datetime.date:
    return ON - datetime.timedelta(days=days)


RECTAL_IV = dataclasses.replace(
    BASE,
    primary_site=CancerSite.OTHER,
    primary_site_code="C20",
    clinical={"T": Staging("T3"), "N": Staging("N1"), "M": Staging("M1"), "stage": Staging("IV")},
)
BREAST = dataclasses.replace(
    BASE, sex="female", primary_site=CancerSite.OTHER, primary_site_code="C50.9"
)


@dataclass(frozen=True)
class Part:
    text: str
    kind: str
    facts: PatientFacts
    expected: Outcome  # the criterion's outcome for that patient
    why: str


# A constraint read in full beside words not understood: where it settles the criterion by
# itself it decides; where the words not understood could matter it does not.
PARTS = [
    Part(
        "Pathologically documented breast cancer that is unresectable or metastatic.",
        "inclusion",
        BASE,
        Outcome.NOT_MET,
        "the site is read in full: a gastric cancer is not a breast cancer, whatever the extent",
    ),
    Part(
        "Pathologically documented breast cancer that is unresectable or metastatic.",
        "inclusion",
        BREAST,
        Outcome.NOT_MET,
        "resectable and M0: neither unresectable nor metastatic",
    ),
    Part(
        "Patients aged >= 18 years at the time of diagnosis with locally advanced unresectable "
        "or metastatic GC/GEJC",
        "inclusion",
        dataclasses.replace(BASE, primary_site=CancerSite.OTHER, primary_site_code="C18.7"),
        Outcome.NOT_MET,
        "the disease is read in full beside the extent's alternative",
    ),
    Part(
        "Patients aged >= 18 years at the time of diagnosis with locally advanced unresectable "
        "or metastatic GC/GEJC",
        "inclusion",
        BASE,
        Outcome.NOT_MET,
        "resectable and M0: 'unresectable or metastatic' is either one, and neither holds",
    ),
    Part(
        "New York Heart Association Class III or IV, cardiac disease, myocardial infarction "
        "within the past 6 months, unstable arrhythmia",
        "exclusion",
        dataclasses.replace(
            BASE,
            comorbidities=(Comorbidity(ComorbidityKind.MYOCARDIAL_INFARCTION, onset=_since(90)),),
        ),
        Outcome.MET,
        "one element of an exclusion's list read in full and present excludes",
    ),
    Part(
        "New York Heart Association Class III or IV, cardiac disease, myocardial infarction "
        "within the past 6 months, unstable arrhythmia",
        "exclusion",
        dataclasses.replace(
            BASE, comorbidities=(Comorbidity(ComorbidityKind.ARRHYTHMIA, onset=_since(30)),)
        ),
        Outcome.UNKNOWN,
        "an arrhythmia, stable or not: 'unstable' was not read",
    ),
    Part(
        "Have a history of immunodeficiency, including HIV positive or other acquired or "
        "congenital immunodeficiency diseases, or a history of organ transplantation.",
        "exclusion",
        dataclasses.replace(BASE, comorbidities=(Comorbidity(ComorbidityKind.HIV),)),
        Outcome.MET,
        "HIV is named in full; the wider 'immunodeficiency' only adds to what excludes",
    ),
    Part(
        "Clinical evidence of deep vein thrombosis (DVT), pulmonary embolism (PE) or other "
        "known thromboembolic (TE) event present during the screening period;",
        "exclusion",
        dataclasses.replace(
            BASE,
            comorbidities=(
                Comorbidity(ComorbidityKind.VENOUS_THROMBOEMBOLISM, onset=_since(5 * 365)),
            ),
        ),
        Outcome.UNKNOWN,
        "words after a list's last concept may govern every element: a DVT years ago",
    ),
    Part(
        "Patients with stage I or IV cancer of the rectum.",
        "exclusion",
        RECTAL_IV,
        Outcome.MET,
        "the disease named as a noun phrase is read with the stage",
    ),
    Part(
        "Patients with stage I or IV cancer of the rectum.",
        "exclusion",
        dataclasses.replace(RECTAL_IV, primary_site=CancerSite.STOMACH, primary_site_code="C16.9"),
        Outcome.NOT_MET,
        "a stage IV gastric cancer is not a stage IV rectal cancer",
    ),
    Part(
        "All patients must have histologically confirmed urothelial cancer of the bladder "
        "within 60 days prior to registration",
        "inclusion",
        BASE,
        Outcome.NOT_MET,
        "a window not read only narrows: the disease is absent",
    ),
]


@pytest.mark.parametrize("case", PARTS, ids=lambda case: case.why)
def test_a_constraint_read_in_full_decides_on_its_own(case: Part) -> None:
    criterion = read(case.text, case.kind)
    found, reason = outcome(criterion, case.facts)
    assert found is case.expected, (criterion.gaps, criterion.parts, reason)
    if criterion.gaps and found is not Outcome.UNKNOWN:
        assert "decided on the words read" in reason


@pytest.mark.parametrize(
    ("text", "kind", "site"),
    [
        (
            "Patient with HER2-negative breast carcinoma: IHC score 0, 1+ or 2+",
            "inclusion",
            "breast",
        ),
        ("Patients with stage I or IV cancer of the rectum.", "exclusion", "rectum"),
        ("Neuroendocrine tumors of the pancreas", "exclusion", "pancreas"),
        (
            "Locally advanced or metastatic NSCLC not amenable to curative surgery",
            "inclusion",
            "lung",
        ),
        # Not the patient's disease: a reference, a treatment's object, another cancer, cases.
        (
            "Clinical stage cT1N1-2M0, according to the AJCC TNM classification for Esophageal "
            "Cancer",
            "inclusion",
            None,
        ),
        ("Previous radiotherapy for rectal cancer", "exclusion", None),
        ("History of breast cancer", "exclusion", None),
        ("Age, race, and sex-matched to qualified pancreatic cancer cases", "inclusion", None),
        ("Unfit for gastric cancer surgery", "exclusion", None),
    ],
)
def test_the_disease_named_as_a_noun_phrase_is_read_as_the_primary_site(
    text: str, kind: str, site: str | None
) -> None:
    criterion = read(text, kind)
    sites = [code for x in criterion.constraints if isinstance(x, PrimarySite) for code in x.any_of]
    assert sites == ([site] if site else []), criterion.constraints


def test_a_disease_label_in_capitals_is_not_a_requirement() -> None:
    parsed = parse_eligibility("Inclusion Criteria:\n\n* OVARIAN CANCER\n")
    assert not [x for x in parsed.criteria if x.origin == "text" and x.constraints]


def test_an_exclusions_examples_decide_where_present_never_for_the_wider_head() -> None:
    criterion = read(
        "Patients who have received non-surgical treatment (e.g., radiotherapy, chemotherapy, "
        "hormone therapy) for gastric cancer",
        "exclusion",
    )
    assert criterion.gaps == ("wider: non-surgical",)
    treated = dataclasses.replace(
        BASE,
        prior_anticancer_therapy=True,
        treatments=(Treatment(TreatmentCategory.CHEMOTHERAPY, status="completed"),),
    )
    other = dataclasses.replace(
        BASE,
        prior_anticancer_therapy=True,
        treatments=(Treatment(TreatmentCategory.IMMUNOTHERAPY, status="completed"),),
    )
    assert outcome(criterion, treated)[0] is Outcome.MET  # an example: non-surgical
    assert outcome(criterion, other)[0] is Outcome.UNKNOWN  # non-surgical too, not read


def test_a_plausibility_correction_is_marked_and_does_not_decide() -> None:
    criterion = read("hemoglobin>9g/l")
    assert criterion.reading_status == "suspect"
    assert "implausible" in criterion.marks[0]
    anaemic = dataclasses.replace(BASE, labs={})
    assert outcome(criterion, anaemic)[0] is Outcome.UNKNOWN


def test_enzyme_limits_in_units_are_read_as_multiples_of_the_upper_limit_and_marked() -> None:
    criterion = read("ALT & AST <= 2.5 U/L")
    assert next(x.as_dict() for x in criterion.constraints)["uln"] == 2.5
    assert criterion.reading_status == "suspect"


# --- 3. A trial's readings checked together and against the registry --------------------------


def test_a_sex_read_against_a_registry_that_admits_all_is_suspect() -> None:
    criterion = read("Male/female patients aged >= 18 years", sex="ALL")
    assert not any(x.type == "sex" for x in criterion.constraints)  # "male/female": both
    male_only = read("Male patients", sex="ALL")
    assert "registry record admits all sexes" in male_only.marks[0]


def test_stage_definitions_listed_one_after_another_are_suspect() -> None:
    parsed = parse_eligibility(
        "Inclusion Criteria:\n\n* cT >= 2, any cN, M0\n* Any cT, cN1-3, M0\n* ECOG 0-1\n"
    ).criteria
    marked = [x for x in parsed if x.marks]
    assert len(marked) == 2
    assert all("stage definitions listed together" in x.marks[0] for x in marked)


def test_an_inclusion_set_no_patient_can_meet_is_suspect() -> None:
    parsed = parse_eligibility(
        "Inclusion Criteria:\n\n* Clinical stage T2\n* Clinical stage T4 or higher\n"
    ).criteria
    assert all("no patient can meet" in x.marks[0] for x in parsed if x.constraints)


def test_prior_therapy_required_beside_no_prior_therapy_is_suspect() -> None:
    parsed = parse_eligibility(
        "Inclusion Criteria:\n\n* Received at least one cycle of PD-1 inhibitor preoperatively\n"
        "* No prior anti-tumor treatments such as chemotherapy or radiotherapy\n"
    ).criteria
    assert sum(bool(x.marks) for x in parsed) == 2


# --- 4. Classes the readers now keep ----------------------------------------------------------


@dataclass(frozen=True)
class Kept:
    text: str
    kind: str
    facts: PatientFacts
    outcome: Outcome


def _tnm(t: str, n: str, m: str) -> PatientFacts:
    return dataclasses.replace(BASE, clinical={"T": Staging(t), "N": Staging(n), "M": Staging(m)})


KEPT = [
    # The M status set apart by a comma holds for both alternatives, in a parenthesis too.
    Kept(
        "Histologically confirmed locally advanced gastric adenocarcinoma (cT3-4 or N+, M0)",
        "inclusion",
        _tnm("T3", "N0", "M0"),
        Outcome.MET,
    ),
    Kept(
        "Gastric adenocarcinoma, cT3-4 or N+, M0", "inclusion", _tnm("T2", "N1", "M0"), Outcome.MET
    ),
    Kept(
        "Gastric adenocarcinoma, cT3-4 or N+, M0",
        "inclusion",
        _tnm("T3", "N1", "M1"),
        Outcome.NOT_MET,
    ),
    # "Locally advanced": beyond early, not metastatic; "... or metastatic": not early.
    Kept(
        "locally advanced Gastric Cancer or Gastroesophageal Junction Cancer confirmed by "
        "investigator.",
        "inclusion",
        _tnm("T1", "N0", "M0"),
        Outcome.NOT_MET,
    ),
    Kept(
        "locally advanced Gastric Cancer or Gastroesophageal Junction Cancer confirmed by "
        "investigator.",
        "inclusion",
        _tnm("T3", "N1", "M1"),
        Outcome.NOT_MET,
    ),
    Kept(
        "Locally advanced or metastatic gastric adenocarcinoma",
        "inclusion",
        _tnm("T2", "N0", "M1"),
        Outcome.MET,
    ),
    # Beside a resectability word the extent is the resectability reader's.
    Kept(
        "Adults with histologically documented unresectable, locally advanced or metastatic "
        "gastric or gastroesophageal junction cancer not amenable to curative therapy",
        "inclusion",
        _tnm("T3", "N1", "M0"),
        Outcome.NOT_MET,
    ),
    # A specific disease named: only a recorded disease of that name counts.
    Kept(
        "History of inflammatory bowel disorders",
        "exclusion",
        dataclasses.replace(
            BASE, comorbidities=(Comorbidity(ComorbidityKind.AUTOIMMUNE, "Ulcerative colitis"),)
        ),
        Outcome.MET,
    ),
    Kept(
        "History of inflammatory bowel disorders",
        "exclusion",
        dataclasses.replace(
            BASE, comorbidities=(Comorbidity(ComorbidityKind.AUTOIMMUNE, "Psoriasis vulgaris"),)
        ),
        Outcome.NOT_MET,
    ),
    Kept(
        "History of inflammatory bowel disorders",
        "exclusion",
        dataclasses.replace(BASE, comorbidities=(Comorbidity(ComorbidityKind.AUTOIMMUNE),)),
        Outcome.UNKNOWN,
    ),
    # The conditional branch of an any-of needs its condition.
    Kept(
        "AST/ALT =< 3 X ULN; or AST/ALT =< 5 X ULN if patient has liver tumors",
        "inclusion",
        dataclasses.replace(
            BASE,
            labs={
                Analyte.AST: lab(Analyte.AST, 180, "U/L", uln=40),
                Analyte.ALT: lab(Analyte.ALT, 170, "U/L", uln=40),
            },
        ),
        Outcome.NOT_MET,
    ),
    Kept(
        "Have adequate performance status (up to and including ECOG 2)",
        "inclusion",
        dataclasses.replace(BASE, ecog=3),
        Outcome.NOT_MET,
    ),
    Kept(
        "Metastasized disease.",
        "exclusion",
        dataclasses.replace(BASE, metastatic_sites=("peritoneum",)),
        Outcome.MET,
    ),
    Kept(
        "Pregnant or breast-feeding women will not be entered on this study",
        "exclusion",
        dataclasses.replace(BASE, sex="female", pregnant=True),
        Outcome.MET,
    ),
    # "Advanced ... cancer": beyond an early cancer (T2 or deeper, nodes, or metastases).
    Kept(
        "Histologically confirmed advanced esophageal carcinoma",
        "inclusion",
        dataclasses.replace(
            _tnm("T1", "N0", "M0"), primary_site=CancerSite.ESOPHAGUS, histology=Histology.SQUAMOUS
        ),
        Outcome.NOT_MET,
    ),
    # "Locally advanced or metastatic" is one extent: a locally advanced cancer meets it.
    Kept(
        "Locally advanced or metastatic gastric adenocarcinoma",
        "inclusion",
        _tnm("T3", "N1", "M0"),
        Outcome.MET,
    ),
    # Consent to take part is enrolment itself, not a fact that could be missing.
    Kept(
        'Patients with a histologically confirmed diagnosis of "colorectal cancer" with distant '
        "metastases, who have provided informed consent to participate in the study.",
        "inclusion",
        _tnm("T3", "N1", "M0"),
        Outcome.NOT_MET,
    ),
    # An undefined "adequate" / "normal" function: grade 3 or worse values are never adequate;
    # anything else is left to review.
    Kept(
        "Normal functions of heart, lung, liver, kidney and bone marrow",
        "inclusion",
        dataclasses.replace(
            BASE, labs={Analyte.BILIRUBIN: lab(Analyte.BILIRUBIN, 4.0, "mg/dL", uln=1.2)}
        ),
        Outcome.NOT_MET,
    ),
    Kept(
        "Normal functions of heart, lung, liver, kidney and bone marrow",
        "inclusion",
        dataclasses.replace(
            BASE, labs={Analyte.BILIRUBIN: lab(Analyte.BILIRUBIN, 1.5, "mg/dL", uln=1.2)}
        ),
        Outcome.UNKNOWN,
    ),
    Kept(
        "Adequate performance status and labs.",
        "inclusion",
        dataclasses.replace(BASE, ecog=4),
        Outcome.NOT_MET,
    ),
    Kept("Adequate performance status and labs.", "inclusion", BASE, Outcome.UNKNOWN),
    # "No A or B": neither; a note on how the study tests changes nothing of who is eligible.
    Kept(
        "No known brain metastases or carcinomatous meningitis* NOTE: *Baseline CT scan or MRI "
        "of the brain required if there is clinical suspicion of CNS metastases",
        "inclusion",
        dataclasses.replace(BASE, metastatic_sites=("brain",)),
        Outcome.NOT_MET,
    ),
    Kept(
        "No known brain metastases or carcinomatous meningitis* NOTE: *Baseline CT scan or MRI "
        "of the brain required if there is clinical suspicion of CNS metastases",
        "inclusion",
        _tnm("T3", "N1", "M0"),
        Outcome.MET,
    ),
    # "Including but not limited to" lists examples, not exceptions.
    Kept(
        "Active, diagnosed, or suspected autoimmune disease (including but not limited to: "
        "uveitis, enteritis, hepatitis, pituitary, nephritis, vasculitis, hyperthyroidism, "
        "hypothyroidism and asthma)",
        "exclusion",
        dataclasses.replace(
            BASE,
            comorbidities=(Comorbidity(ComorbidityKind.AUTOIMMUNE, "Hypothyroidism, autoimmune"),),
        ),
        Outcome.MET,
    ),
    # Named operations count by name ("distal" and "subtotal" are one operation).
    *(
        Kept(
            "Patients need to undergo total gastrectomy or distal gastrectomy",
            "exclusion",
            dataclasses.replace(BASE, surgeries=(Surgery(procedure, "planned"),)),
            outcome,
        )
        for procedure, outcome in (
            ("total_gastrectomy", Outcome.MET),
            ("subtotal_gastrectomy", Outcome.MET),
            ("proximal_gastrectomy", Outcome.NOT_MET),
            ("gastrectomy", Outcome.UNKNOWN),
        )
    ),
    # T / N alternatives: cT2 N2 meets the second branch.
    Kept(
        "T3/4 N any or T 1/2 N 2/3",
        "inclusion",
        dataclasses.replace(
            BASE, clinical={"T": Staging("T2"), "N": Staging("N2"), "M": Staging("M0")}
        ),
        Outcome.MET,
    ),
    # "N+/-": any N.
    Kept(
        "cT2-4bN+/-, M0",
        "inclusion",
        dataclasses.replace(
            BASE, clinical={"T": Staging("T3"), "N": Staging("N0"), "M": Staging("M0")}
        ),
        Outcome.MET,
    ),
    # Either MMR or MSI result answers.
    Kept(
        "dMMR and/or MSI-H",
        "inclusion",
        dataclasses.replace(BASE, biomarkers={"mmr": "dMMR"}),
        Outcome.MET,
    ),
    # Creatinine or clearance: either suffices.
    Kept(
        "Serum creatinine <= 1.5 x ULN or creatinine clearance >= 50 mL/min",
        "inclusion",
        BASE,
        Outcome.UNKNOWN,  # neither recorded
    ),
    # A melanoma of the skin is not non-melanoma skin cancer.
    Kept(
        "Prior or concurrent malignancy (except non-melanomatous skin cancer) unless "
        "disease-free for at least 5 years.",
        "exclusion",
        dataclasses.replace(
            BASE,
            comorbidities=(
                Comorbidity(
                    ComorbidityKind.OTHER_MALIGNANCY,
                    "Malignant melanoma of skin",
                    active=True,
                    onset=ON - datetime.timedelta(days=400),
                ),
            ),
        ),
        Outcome.MET,
    ),
]


@pytest.mark.parametrize("case", KEPT, ids=[x.text[:40] for x in KEPT])
def test_the_readers_keep_the_structure_of_the_text(case: Kept) -> None:
    assert outcome(read(case.text, case.kind), case.facts)[0] is case.outcome
