"""Clauses that qualify one element, allowances the reading holds, kinds read from real wording.

Table-driven over real criterion wording from ClinicalTrials.gov records: each criterion is
read by the parser and applied as the matcher applies it, against ``PatientFacts`` built here.
A case says what the outcome must be and why; the classes are those of docs/reading-model.md
("Where a gap stands", "Allowances the reading holds", "Undefined qualities").
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

import pytest

from tests.trials.lab_results import lab
from tests.trials.test_reading_review import BASE, ON, outcome, read
from trials.eligibility import constraints as c
from trials.eligibility.evaluate import Outcome
from trials.eligibility.facts import Comorbidity, ComorbidityKind, Medication, PatientFacts
from trials.eligibility.parser import parse_eligibility
from trials.eligibility.units import Analyte
from trials.eligibility.vocabulary import CancerSite


def _since(days: int) -> datetime.date:
    return ON - datetime.timedelta(days=days)


def ill(*items: Comorbidity) -> PatientFacts:
    return dataclasses.replace(BASE, comorbidities=items)


def taking(*items: Medication) -> PatientFacts:
    return dataclasses.replace(BASE, medications=items)


def treated(disease: str, medication: Medication) -> PatientFacts:
    """An active autoimmune disease and the medication taken for it."""
    autoimmune = Comorbidity(ComorbidityKind.AUTOIMMUNE, disease, active=True)
    return dataclasses.replace(ill(autoimmune), medications=(medication,))


PREDNISONE_20 = Medication("prednisone", "systemic_steroid", True, 20.0)
PREDNISONE_5 = Medication("prednisone", "systemic_steroid", True, 5.0)
TACROLIMUS_ENDED = Medication("tacrolimus", "immunosuppressant", False, end=_since(200))
PROSTATE_3_YEARS = Comorbidity(
    ComorbidityKind.OTHER_MALIGNANCY,
    "Malignant neoplasm of prostate",
    active=False,
    onset=_since(3 * 365),
)
CERVIX_IN_SITU = Comorbidity(
    ComorbidityKind.OTHER_MALIGNANCY,
    "Carcinoma in situ of cervix",
    active=False,
    onset=_since(2 * 365),
)
IMMUNODEFICIENCY_OR_STEROIDS = (
    "Diagnosis of immunodeficiency or is receiving systemic steroid therapy or any other form "
    "of immunosuppressive therapy within 7 days prior to the first dose of trial treatment. "
    "Replacement therapy (ie physiologic corticosteroid replacement therapy for adrenal or "
    "pituitary insufficiency) is allowed."
)
IMMUNOSUPPRESSIVE_USE = (
    "Current or prior use of immunosuppressive medication within 14 days before the first dose "
    "of durvalumab"
)
REMISSION_AND_NO_THERAPY = (
    "Participants with previous malignancies are excluded unless a complete remission was "
    "achieved at least 2 years prior to first treatment and no additional therapy is required "
    "or anticipated to be required during the study period."
)
OTHER_CANCER_ALLOWED_AFTER_5_YEARS = (
    "Patients with the history of other cancer (patients who were disease-free for > 5 years "
    "from previous other cancer are allowed to be included in this study)"
)
ORGAN_LIMITS_WITH_KIDNEY_CONDITION = (
    "AST and ALT <= 2.5 x ULN, bilirubin <= 1.5 x ULN, creatinine <= 1.5 x ULN or creatinine "
    "clearance > 60 mL/min, if just below 60 mL/min then glomerular filtration rate > 60 mL/min "
    "as determined by 24 hour urine collection"
)
KEYNOTE_AUTOIMMUNE = (
    "Has active autoimmune disease that has required systemic treatment in the past 2 years "
    "(i.e. with use of disease modifying agents, corticosteroids or immunosuppressive drugs). "
    "Replacement therapy (e.g., thyroxine, insulin, or physiologic corticosteroid replacement "
    "therapy for adrenal or pituitary insufficiency, etc.) is not considered a form of systemic "
    "treatment."
)
PNEUMONIA = Comorbidity(ComorbidityKind.INFECTION, "pneumonia", active=True, onset=_since(6))


@dataclass(frozen=True)
class Case:
    text: str
    kind: str
    facts: PatientFacts
    expected: Outcome
    why: str


CASES = [
    # A grade binds to the concept it follows, not to the whole list.
    Case(
        "History of interstitial lung disease, idiopathic pulmonary fibrosis, drug-induced "
        "pneumonitis, or active pneumonitis >= grade 2",
        "exclusion",
        ill(Comorbidity(ComorbidityKind.ILD, "idiopathic pulmonary fibrosis")),
        Outcome.MET,
        "the first element is read in full; the grade qualifies only the last",
    ),
    Case(
        "Clinical evidence of deep vein thrombosis, pulmonary embolism or other thromboembolic "
        "event present during the screening period",
        "exclusion",
        ill(Comorbidity(ComorbidityKind.VENOUS_THROMBOEMBOLISM, onset=_since(5 * 365))),
        Outcome.UNKNOWN,
        "words that are not a grade after the last concept still govern every element",
    ),
    # A clause in parentheses qualifies its own list element.
    Case(
        "Patients with chronic hepatitis B (HBsAg positive but HBV DNA < 2000 IU/mL can be "
        "included), or HIV antibody positive",
        "exclusion",
        ill(Comorbidity(ComorbidityKind.HIV, "HIV disease")),
        Outcome.MET,
        "the allowance in parentheses belongs to hepatitis B, not to HIV",
    ),
    Case(
        "Patients with chronic hepatitis B (HBsAg positive but HBV DNA < 2000 IU/mL can be "
        "included), or HIV antibody positive",
        "exclusion",
        ill(Comorbidity(ComorbidityKind.HBV, "chronic hepatitis B", active=True)),
        Outcome.UNKNOWN,
        "hepatitis B with an allowance not read: the viral load is not known",
    ),
    Case(
        "Hemoglobin >= 9 g/dL, absolute neutrophil count >= 1.5 x 10^9/L (unless due to marrow "
        "infiltration)",
        "inclusion",
        dataclasses.replace(
            BASE, labs={Analyte.HAEMOGLOBIN: lab(Analyte.HAEMOGLOBIN, 7.0, "g/dL")}
        ),
        Outcome.NOT_MET,
        "the exception in parentheses stands beside the neutrophils only",
    ),
    Case(
        "Hemoglobin >= 9 g/dL, absolute neutrophil count >= 1.5 x 10^9/L (unless due to marrow "
        "infiltration)",
        "inclusion",
        dataclasses.replace(BASE, labs={Analyte.ANC: lab(Analyte.ANC, 0.9, "10^9/L")}),
        Outcome.UNKNOWN,
        "the neutrophil limit has an exception the reading does not hold",
    ),
    # A condition naming one organ's measures qualifies that organ's limits only.
    Case(
        ORGAN_LIMITS_WITH_KIDNEY_CONDITION,
        "inclusion",
        dataclasses.replace(
            BASE, labs={Analyte.BILIRUBIN: lab(Analyte.BILIRUBIN, 3.6, "mg/dL", uln=1.2)}
        ),
        Outcome.NOT_MET,
        "the kidney's condition leaves the bilirubin limit read in full",
    ),
    Case(
        ORGAN_LIMITS_WITH_KIDNEY_CONDITION,
        "inclusion",
        dataclasses.replace(
            BASE, labs={Analyte.CREATININE: lab(Analyte.CREATININE, 3.0, "mg/dL", uln=1.2)}
        ),
        Outcome.UNKNOWN,
        "the kidney's limits carry the condition not read",
    ),
    # "including, but not limited to": a list's opening, neither an exception nor a negation.
    Case(
        "Uncontrolled intercurrent illness including, but not limited to, ongoing or active "
        "infection, symptomatic congestive heart failure, unstable angina pectoris",
        "exclusion",
        ill(Comorbidity(ComorbidityKind.UNSTABLE_ANGINA, onset=_since(21))),
        Outcome.MET,
        "a named example of the wider illness is present",
    ),
    # Steroids above replacement doses are immunosuppressive medication.
    Case(
        IMMUNOSUPPRESSIVE_USE,
        "exclusion",
        taking(PREDNISONE_20),
        Outcome.MET,
        "prednisone 20 mg/day is above replacement: an immunosuppressant",
    ),
    Case(
        IMMUNOSUPPRESSIVE_USE,
        "exclusion",
        taking(PREDNISONE_5),
        Outcome.UNKNOWN,
        "a replacement dose says nothing of the other immunosuppressants",
    ),
    Case(
        IMMUNOSUPPRESSIVE_USE,
        "exclusion",
        taking(TACROLIMUS_ENDED),
        Outcome.UNKNOWN,
        "tacrolimus ended, but the steroids are not recorded",
    ),
    Case(
        IMMUNOSUPPRESSIVE_USE,
        "exclusion",
        taking(TACROLIMUS_ENDED, PREDNISONE_5),
        Outcome.NOT_MET,
        "tacrolimus ended and the steroid is at a replacement dose",
    ),
    # A disease, "or", a drug: either excludes; replacement allowed is a 10 mg/day floor.
    Case(
        IMMUNODEFICIENCY_OR_STEROIDS,
        "exclusion",
        ill(Comorbidity(ComorbidityKind.IMMUNODEFICIENCY, "common variable immunodeficiency")),
        Outcome.MET,
        "the disease is one alternative",
    ),
    Case(
        IMMUNODEFICIENCY_OR_STEROIDS,
        "exclusion",
        taking(PREDNISONE_20),
        Outcome.MET,
        "the drug is the other, above the replacement floor",
    ),
    Case(
        IMMUNODEFICIENCY_OR_STEROIDS,
        "exclusion",
        taking(PREDNISONE_5),
        Outcome.UNKNOWN,
        "a replacement dose is allowed; the other immunosuppressants are not recorded",
    ),
    Case(
        "Systemic corticosteroids within 14 days before the first dose. Inhaled or topical "
        "steroids are permitted.",
        "exclusion",
        taking(PREDNISONE_20),
        Outcome.MET,
        "inhaled and topical use is not systemic: the allowance changes nothing",
    ),
    # "Replacement therapy is not considered a form of systemic treatment": held.
    Case(
        KEYNOTE_AUTOIMMUNE,
        "exclusion",
        treated("Crohn's disease", PREDNISONE_20),
        Outcome.MET,
        "Crohn's disease on prednisone 20 mg/day: systemic treatment",
    ),
    Case(
        KEYNOTE_AUTOIMMUNE,
        "exclusion",
        treated("Addison's disease", PREDNISONE_5),
        Outcome.UNKNOWN,
        "a replacement dose may be only replacement",
    ),
    Case(
        "Active autoimmune disease that has required systemic treatment in the past 2 years "
        "(i.e. with use of disease modifying agents, corticosteroids or immunosuppressive "
        "drugs).",
        "exclusion",
        treated("rheumatoid arthritis", PREDNISONE_5),
        Outcome.MET,
        "no replacement allowance: a low-dose steroid is systemic treatment",
    ),
    # Active infection: a recorded acute infection, current only while recent.
    Case(
        "Active infection requiring systemic therapy",
        "exclusion",
        ill(PNEUMONIA),
        Outcome.MET,
        "a pneumonia six days ago is an active infection treated systemically",
    ),
    Case(
        "Active infection requiring systemic therapy",
        "exclusion",
        ill(dataclasses.replace(PNEUMONIA, onset=_since(400))),
        Outcome.UNKNOWN,
        "a pneumonia still 'active' on the problem list a year on: not known to be current",
    ),
    Case(
        "Active infection requiring systemic therapy",
        "exclusion",
        ill(dataclasses.replace(PNEUMONIA, onset=None)),
        Outcome.UNKNOWN,
        "no onset: whether current is not known",
    ),
    Case(
        "Known human immunodeficiency virus (HIV) infection",
        "exclusion",
        ill(PNEUMONIA),
        Outcome.UNKNOWN,
        "an infection named is that infection, not any infection",
    ),
    Case(
        "Infection requiring hospitalization within 4 weeks",
        "exclusion",
        ill(PNEUMONIA),
        Outcome.UNKNOWN,
        "hospitalisation is not read: the reading decides only the infection's absence",
    ),
    # Another cancer: the window an allowance or "unless" states is the reading's window.
    Case(
        OTHER_CANCER_ALLOWED_AFTER_5_YEARS,
        "exclusion",
        ill(PROSTATE_3_YEARS),
        Outcome.MET,
        "a prostate cancer three years ago is inside the five years",
    ),
    Case(
        OTHER_CANCER_ALLOWED_AFTER_5_YEARS,
        "exclusion",
        ill(dataclasses.replace(PROSTATE_3_YEARS, onset=_since(9 * 365))),
        Outcome.NOT_MET,
        "nine years ago: the allowance admits it",
    ),
    Case(
        "No prior invasive malignancy, unless disease-free for >= 5 years prior to registration "
        "(Exceptions: non-melanoma skin cancer, in-situ cancers).",
        "inclusion",
        ill(CERVIX_IN_SITU),
        Outcome.MET,
        "'in-situ' is the in-situ exception, hyphen or not",
    ),
    Case(
        REMISSION_AND_NO_THERAPY,
        "exclusion",
        ill(dataclasses.replace(PROSTATE_3_YEARS, onset=_since(300))),
        Outcome.MET,
        "ten months ago: inside the window whatever the further condition says",
    ),
    Case(
        REMISSION_AND_NO_THERAPY,
        "exclusion",
        ill(PROSTATE_3_YEARS),
        Outcome.UNKNOWN,
        "outside the window, but whether therapy is anticipated is not read",
    ),
    Case(
        "Prior malignancy except basal cell carcinoma, squamous cell skin cancer, carcinoma in "
        "situ of the cervix, superficial bladder cancer, or localized prostate cancer",
        "exclusion",
        ill(PROSTATE_3_YEARS),
        Outcome.NOT_MET,
        "the fifth exception is kept: a prostate cancer is one the criterion allows",
    ),
    # A condition on what happens later in the study says nothing of who is eligible.
    Case(
        "Pregnant or lactating women; if a patient becomes pregnant during the study she will "
        "be withdrawn from the study",
        "exclusion",
        dataclasses.replace(BASE, sex="female", pregnant=True),
        Outcome.MET,
        "pregnant now: excluded, whatever happens to those who become pregnant later",
    ),
    # "Disease limited to the oesophagus": that organ's cancer, without distant spread.
    Case(
        "Disease must be clinically limited to the esophagus",
        "inclusion",
        BASE,
        Outcome.NOT_MET,
        "a gastric cancer is not limited to the oesophagus",
    ),
    Case(
        "Disease must be clinically limited to the esophagus",
        "inclusion",
        dataclasses.replace(BASE, primary_site=CancerSite.ESOPHAGUS, primary_site_code="C15.5"),
        Outcome.MET,
        "an oesophageal cancer, M0",
    ),
    # An undefined cardiovascular quality: recent infarction, unstable angina, stroke are floors.
    Case(
        "Clinically significant cardiac disease",
        "exclusion",
        ill(Comorbidity(ComorbidityKind.MYOCARDIAL_INFARCTION, onset=_since(50))),
        Outcome.MET,
        "an infarction seven weeks ago is clinically significant cardiac disease",
    ),
    Case(
        "Clinically significant cardiac disease",
        "exclusion",
        ill(Comorbidity(ComorbidityKind.MYOCARDIAL_INFARCTION, onset=_since(6 * 365))),
        Outcome.UNKNOWN,
        "an old infarction may or may not be what the protocol means",
    ),
    Case(
        "Clinically significant cardiac disease",
        "exclusion",
        BASE,
        Outcome.UNKNOWN,
        "nothing recorded: an undefined quality never settles absence",
    ),
    Case(
        "Serious cardiovascular and cerebrovascular diseases, digestive system diseases, blood "
        "system diseases",
        "exclusion",
        ill(Comorbidity(ComorbidityKind.STROKE, onset=_since(70))),
        Outcome.MET,
        "a stroke ten weeks ago; the other elements are more alternatives",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.why)
def test_the_reading_decides_only_what_it_read(case: Case) -> None:
    criterion = read(case.text, case.kind)
    found, reason = outcome(criterion, case.facts)
    assert found is case.expected, (criterion.constraints, criterion.gaps, criterion.parts, reason)


@pytest.mark.parametrize(
    ("text", "analytes"),
    [
        (
            "Total bilirubin <= 1.5 x ULN (unless Gilbert syndrome), ANC >= 1.5 x 10^9/L",
            [("bilirubin", "not_gilbert"), ("anc", None)],
        ),
        (
            "Total bilirubin <= 1.5 x ULN, except Gilbert syndrome: bilirubin <= 3 x ULN",
            [("bilirubin", None), ("bilirubin", "gilbert")],
        ),
        (
            "AST/ALT <= 2.5 x ULN (<= 5 x ULN if liver metastases), bilirubin <= 1.5 x ULN",
            [
                ("ast", None),
                ("ast", "liver_metastases"),
                ("alt", None),
                ("alt", "liver_metastases"),
                ("bilirubin", None),
            ],
        ),
    ],
)
def test_a_limits_condition_stays_on_its_own_analyte(
    text: str, analytes: list[tuple[str, str | None]]
) -> None:
    criterion = read(text)
    found = [(x.analyte, x.condition) for x in criterion.constraints if isinstance(x, c.Lab)]
    assert found == analytes


def test_immunosuppressive_steroid_reason_names_the_dose() -> None:
    criterion = read("Use of immunosuppressive medication within 14 days", "exclusion")
    found, reason = outcome(criterion, taking(PREDNISONE_20))
    assert found is Outcome.MET
    assert "20 mg/day" in reason
    assert "immunosuppressive" in reason


def test_a_current_cancer_is_inside_any_window() -> None:
    criterion = read(
        "Patients with previous (less than 10 years) or current history of malignant "
        "neoplasms, except for curatively treated",
        "exclusion",
    )
    assert not criterion.gaps
    active = dataclasses.replace(PROSTATE_3_YEARS, active=True, onset=_since(20 * 365))
    assert outcome(criterion, ill(active))[0] is Outcome.MET


def test_an_exclusion_for_one_group_binds_only_that_group() -> None:
    text = (
        "Exclusion Criteria:\n\n* Exclusion criteria for the cirrhosis and chronic liver "
        "disease groups:\n\n  * Previous or current cancer history within the past 5 years "
        "(excluding non-melanoma skin cancer).\n"
    )
    (criterion,) = [x for x in parse_eligibility(text).criteria if not x.header]
    assert criterion.gaps == (
        "heading: criteria for the cirrhosis and chronic liver disease groups",
    )
    assert outcome(criterion, ill(PROSTATE_3_YEARS))[0] is Outcome.UNKNOWN


def test_a_group_heading_over_inclusions_is_what_its_members_meet() -> None:
    text = (
        "Inclusion Criteria:\n\n* Inclusion Criteria for Gastric Cancer group:\n\n"
        "  * Recently diagnosed gastric cancer\n"
    )
    (criterion,) = [x for x in parse_eligibility(text).criteria if not x.header]
    assert not criterion.gaps


def test_a_suspect_sex_leaves_the_rest_of_an_all_of_reading_deciding() -> None:
    criterion = read("Age > 18 years old, female", sex="ALL")
    assert "registry record admits all sexes" in criterion.marks[0]
    young = dataclasses.replace(BASE, sex="female", birth_date=datetime.date(2010, 1, 1))
    assert outcome(criterion, young)[0] is Outcome.NOT_MET  # the age is read in full
    assert outcome(criterion)[0] is Outcome.UNKNOWN  # a man: the sex is the suspect part
    alone = read("Female patients", sex="ALL")
    assert outcome(alone)[0] is Outcome.UNKNOWN
