"""The engine's reading stored with each trial, and coordinators' curation of it.

Real recorded registry records are imported as a sync would import them; a registry update
is the same record with its eligibility text edited, imported again from a file.
"""

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.forms import CheckboxInput
from django.test import Client
from django.utils.html import escape

from tests.trials.conftest import CTGOV_DATA
from tests.trials.criteria_labels import load_labels
from trials import services
from trials.criteria import (
    CorrectionError,
    criterion_correct,
    refresh_stale_criteria,
    trial_refresh_criteria,
    trial_set_classification,
)
from trials.eligibility.parser import ENGINE_VERSION
from trials.models import Criterion, Trial

pytestmark = pytest.mark.django_db

LABELS = load_labels()

# MATTERHORN: perioperative durvalumab + FLOT, resectable gastric/GEJ cancer (labelled True).
MATTERHORN = "NCT04592913"
ECOG = "World Health Organization (WHO)/ECOG performance status of 0 or 1 at enrollment."
ORGAN_FUNCTION = "Adequate organ and marrow function."
TUMOUR_SAMPLE = "Availability of tumor sample prior to study entry."
LIFE_EXPECTANCY = "Must have a life expectancy of at least 24 weeks."
LIFE_EXPECTANCY = "Must have a life expectancy of at least 24 weeks."
METASTASIS = "Patients with peritoneal dissemination or distant metastasis."
CONTRAINDICATION = "Contra-indication to any of the study drugs."
# RESONANCE-II: neoadjuvant chemotherapy only, no immunotherapy (labelled False).
RESONANCE_II = "NCT04483076"
# An adolescent mental health trial whose exclusions repeat one criterion word for word,
# once for the adolescents and once for their parents.
PRIDE = "NCT03630471"
UNABLE_TO_COMMUNICATE = (
    "Unable to communicate clearly (due to a speech or hearing disability or inability to "
    "comprehend one of the program's languages)"
)

ANC_AND_PLATELETS = [
    {"type": "lab", "analyte": "anc", "op": ">=", "value": 1.5},
    {"type": "lab", "analyte": "platelets", "op": ">=", "value": 100},
]


# --- helpers -----------------------------------------------------------------------------


def record_path(nct_id: str) -> Path:
    for folder in ("v2", "v2-partial"):
        path = CTGOV_DATA / folder / f"{nct_id}.json"
        if path.exists():
            return path
    raise FileNotFoundError(nct_id)


def import_records(*nct_ids: str) -> None:
    run = services.import_trial_files(paths=[record_path(nct_id) for nct_id in nct_ids])
    assert run.failed == 0, run.errors


def read_trial(nct_id: str) -> Trial:
    """The recorded trial imported and read by the engine."""
    import_records(nct_id)
    trial = Trial.objects.get(nct_id=nct_id)
    trial_refresh_criteria(trial)
    trial.refresh_from_db()
    return trial


def publish_new_eligibility(tmp_path: Path, nct_id: str, edit: Callable[[str], str]) -> Trial:
    """The registry's next version of the record, with edited eligibility, synced and read."""
    study = json.loads(record_path(nct_id).read_text())
    module = study["protocolSection"]["eligibilityModule"]
    edited = edit(module["eligibilityCriteria"])
    assert edited != module["eligibilityCriteria"]
    module["eligibilityCriteria"] = edited
    path = tmp_path / f"{nct_id}.json"
    path.write_text(json.dumps(study))
    run = services.import_trial_files(paths=[path])
    assert run.updated == 1
    assert refresh_stale_criteria() == 1
    return Trial.objects.get(nct_id=nct_id)


def upgrade_engine() -> int:
    """What a new engine version does: every stored reading is stale and read again."""
    Trial.objects.update(criteria_engine_version="")
    return refresh_stale_criteria()


def criterion(trial: Trial, text: str) -> Criterion:
    return trial.criteria.get(text=text)


def heading_of(row: Criterion) -> str:
    """The text of the criterion this one is listed under."""
    assert row.parent_position is not None
    return row.trial.criteria.get(position=row.parent_position).text


def correction_of(row: Criterion) -> dict[str, Any]:
    return {
        "category": row.corrected_category,
        "constraints": row.corrected_constraints,
        "join": row.corrected_join,
        "note": row.correction_note,
        "by": row.corrected_by,
        "at": row.corrected_at,
    }


def run_command(*args: str, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def make_staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="x" * 20, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="trials", codename__in=codenames)
    )
    return user


@pytest.fixture
def coordinator() -> User:
    """A coordinator who may change trials and correct their criteria (not a superuser)."""
    return make_staff(
        "maria",
        "view_trial",
        "change_trial",
        "view_criterion",
        "change_criterion",
        "view_trialsite",
        "view_trialversion",
    )


@pytest.fixture
def coordinator_client(client: Client, coordinator: User) -> Client:
    client.force_login(coordinator)
    return client


def change_url(trial: Trial) -> str:
    return f"/admin/trials/trial/{trial.pk}/change/"


def change_form_data(response: Any) -> dict[str, Any]:
    """The change form as the page rendered it, posted back unchanged by a browser."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data: dict[str, Any] = {}
    for form in forms:
        for field in form:
            value = field.value()
            if isinstance(field.field.widget, CheckboxInput):
                if value:
                    data[field.html_name] = "on"
            elif value is not None:
                data[field.html_name] = value
    return data


def criterion_field(response: Any, row: Criterion, name: str) -> str:
    """The name the criterion inline posts ``name`` of this criterion under."""
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.model is Criterion:
            for form in inline.formset.forms:
                if form.instance.pk == row.pk:
                    return form.add_prefix(name)
    raise AssertionError(f"criterion {row.pk} is not in the change form")


def criterion_form_errors(response: Any) -> list[str]:
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.model is Criterion:
            return [
                message
                for form in inline.formset.forms
                for messages in form.errors.values()
                for message in messages
            ]
    raise AssertionError("no criterion inline on the page")


# --- 1. the engine's reading, stored -----------------------------------------------------


def test_reading_stores_inclusion_and_exclusion_criteria_with_categories_and_constraints() -> None:
    trial = read_trial(MATTERHORN)

    rows = list(trial.criteria.all())
    assert [row.position for row in rows] == list(range(len(rows)))
    assert [row.kind for row in rows].count(Criterion.Kind.INCLUSION) == 8  # 1 structured + 7
    assert [row.kind for row in rows].count(Criterion.Kind.EXCLUSION) == 5

    ecog = criterion(trial, ECOG)
    assert (ecog.kind, ecog.category, ecog.constraints) == (
        "inclusion",
        "performance_status",
        [{"type": "ecog", "allowed": [0, 1]}],
    )
    metastasis = criterion(trial, METASTASIS)
    assert metastasis.kind == "exclusion"
    assert metastasis.category == "metastasis"
    assert metastasis.join == "any"
    assert {(c["site"], c["present"]) for c in metastasis.constraints} == {
        ("peritoneal", True),
        ("distant", True),
    }
    not_read = criterion(trial, LIFE_EXPECTANCY)
    assert not_read.constraints == []
    assert not not_read.parsed
    # An undefined quality: the floors no definition goes below, marked undefined.
    organ = criterion(trial, ORGAN_FUNCTION)
    assert organ.reading_gaps == ["undefined: adequate organ and marrow function"]
    assert {x["analyte"] for x in organ.constraints} >= {"anc", "platelets", "bilirubin"}

    # Every criterion read from the text keeps its exact place in the text.
    for row in rows:
        if row.origin == "text":
            assert trial.eligibility_criteria[row.start : row.end] == row.text
    assert not any(row.corrected or row.needs_review for row in rows)

    assert trial.criteria_engine_version == ENGINE_VERSION
    assert trial.criteria_text_hash
    assert trial.criteria_parsed_at is not None


def test_the_registry_age_and_sex_fields_become_structured_criteria() -> None:
    import_records(MATTERHORN)
    # Every recorded record takes both sexes; this one as if it took women only.
    Trial.objects.filter(nct_id=MATTERHORN).update(sex="FEMALE")
    trial = Trial.objects.get(nct_id=MATTERHORN)

    trial_refresh_criteria(trial)

    age, sex = trial.criteria.filter(origin="structured").order_by("position")
    assert (age.position, age.kind, age.category) == (0, "inclusion", "age")
    assert age.text == "Registry record: minimum age 18 years, maximum age 200 years"
    assert age.constraints == [{"type": "age", "min": 18, "max": 200}]
    assert (sex.position, sex.kind, sex.category) == (1, "inclusion", "sex")
    assert sex.constraints == [{"type": "sex", "sex": "female"}]
    assert age.start is None
    assert sex.start is None


@pytest.mark.parametrize(
    "nct_id",
    [
        MATTERHORN,  # perioperative durvalumab
        "NCT03221426",  # KEYNOTE-585, a partial record
        RESONANCE_II,  # neoadjuvant chemotherapy only
        "NCT03006705",  # ATTRACTION-5, adjuvant nivolumab only
        "NCT06567782",  # neoadjuvant dostarlimab, colon cancer
    ],
)
def test_stored_classification_is_the_labelled_one(nct_id: str) -> None:
    expected = LABELS[nct_id]["classification"]

    trial = read_trial(nct_id)

    assert trial.gastric_preop_immunotherapy is expected["gastric_preop_immunotherapy"]
    assert (
        trial.classified_gastric,
        trial.classified_immunotherapy,
        trial.classified_preoperative,
    ) == (expected["gastric"], expected["immunotherapy"], expected["preoperative"])
    assert trial.classification_override is None


def test_classification_keeps_the_evidence_for_each_answer() -> None:
    trial = read_trial(MATTERHORN)

    assert trial.gastric_preop_immunotherapy is True
    by_question = {item["question"]: item for item in trial.classification_evidence}
    assert {"gastric", "immunotherapy", "preoperative"} <= by_question.keys()
    for item in trial.classification_evidence:
        assert item["field"]
        assert item["words"]
    assert "durvalumab" in by_question["immunotherapy"]["words"].lower()


# --- 2. corrections survive a re-read ----------------------------------------------------


def test_a_correction_survives_a_new_engine_version_and_wins(coordinator: User) -> None:
    trial = read_trial(MATTERHORN)
    criterion_correct(
        criterion(trial, ORGAN_FUNCTION),
        category="lab",
        constraints=ANC_AND_PLATELETS,
        note="thresholds from protocol section 5.1",
        user=coordinator,
    )
    criterion_correct(
        criterion(trial, TUMOUR_SAMPLE),
        category="other",
        note="tissue availability, not the diagnosis",
        user=coordinator,
    )
    before = {
        text: correction_of(criterion(trial, text)) for text in (ORGAN_FUNCTION, TUMOUR_SAMPLE)
    }
    old_pks = set(trial.criteria.values_list("pk", flat=True))

    assert upgrade_engine() == 1

    trial.refresh_from_db()
    assert trial.criteria_engine_version == ENGINE_VERSION
    assert not set(trial.criteria.values_list("pk", flat=True)) & old_pks  # really read again
    organ = criterion(trial, ORGAN_FUNCTION)
    sample = criterion(trial, TUMOUR_SAMPLE)
    assert correction_of(organ) == before[ORGAN_FUNCTION]
    assert correction_of(sample) == before[TUMOUR_SAMPLE]
    assert organ.corrected_by == coordinator
    # The engine's reading is kept beside the correction; the correction is what counts.
    assert organ.constraints
    assert organ.constraints != ANC_AND_PLATELETS
    assert organ.effective_constraints == ANC_AND_PLATELETS
    assert organ.parsed
    assert sample.category == "diagnosis"
    assert sample.effective_category == "other"
    assert not organ.needs_review
    assert not sample.needs_review
    assert not trial.curation_needs_review
    assert trial.orphaned_corrections == []
    assert trial.criteria.filter(corrected_at__isnull=False).count() == 2


def test_a_correction_stays_on_the_criterion_it_was_made_on_when_the_text_repeats(
    coordinator: User,
) -> None:
    trial = read_trial(PRIDE)
    adolescents, parents = trial.criteria.filter(text=UNABLE_TO_COMMUNICATE).order_by("position")
    assert heading_of(parents) == "For parent participants:"

    criterion_correct(parents, category="other", note="parents: English or Hindi", user=coordinator)
    upgrade_engine()

    adolescents, parents = trial.criteria.filter(text=UNABLE_TO_COMMUNICATE).order_by("position")
    assert heading_of(parents) == "For parent participants:"
    assert parents.correction_note == "parents: English or Hindi"
    assert not adolescents.corrected


def test_identical_criteria_corrected_differently_keep_their_own_corrections(
    coordinator: User,
) -> None:
    trial = read_trial(PRIDE)
    adolescents, parents = trial.criteria.filter(text=UNABLE_TO_COMMUNICATE).order_by("position")
    criterion_correct(adolescents, category="other", note="adolescents", user=coordinator)
    criterion_correct(parents, category="consent", note="parents", user=coordinator)

    upgrade_engine()

    trial.refresh_from_db()
    adolescents, parents = trial.criteria.filter(text=UNABLE_TO_COMMUNICATE).order_by("position")
    assert (adolescents.corrected_category, adolescents.correction_note) == ("other", "adolescents")
    assert (parents.corrected_category, parents.correction_note) == ("consent", "parents")
    assert trial.orphaned_corrections == []


def test_a_correction_of_a_repeated_text_follows_it_when_the_other_occurrence_goes(
    tmp_path: Path, coordinator: User
) -> None:
    trial = read_trial(PRIDE)
    _, parents = trial.criteria.filter(text=UNABLE_TO_COMMUNICATE).order_by("position")
    criterion_correct(parents, category="other", note="parents", user=coordinator)

    # The registry drops the adolescents' copy (the first occurrence).
    trial = publish_new_eligibility(
        tmp_path, PRIDE, lambda text: text.replace("\n* " + UNABLE_TO_COMMUNICATE, "", 1)
    )

    [remaining] = trial.criteria.filter(text=UNABLE_TO_COMMUNICATE)
    assert heading_of(remaining) == "For parent participants:"
    assert remaining.correction_note == "parents"
    assert remaining.needs_review
    assert trial.curation_needs_review
    assert trial.orphaned_corrections == []


# --- 3. the registry changes the eligibility text ----------------------------------------


def test_a_correction_of_a_criterion_still_in_the_changed_text_is_kept_for_review(
    tmp_path: Path, coordinator: User
) -> None:
    trial = read_trial(MATTERHORN)
    criterion_correct(
        criterion(trial, ORGAN_FUNCTION), constraints=ANC_AND_PLATELETS, user=coordinator
    )
    kept = correction_of(criterion(trial, ORGAN_FUNCTION))

    trial = publish_new_eligibility(
        tmp_path, MATTERHORN, lambda text: text.replace("at least 24 weeks", "at least 12 weeks")
    )

    assert trial.curation_needs_review
    organ = criterion(trial, ORGAN_FUNCTION)
    assert correction_of(organ) == kept
    assert organ.effective_constraints == ANC_AND_PLATELETS
    assert organ.needs_review
    # Criteria nobody corrected need no review; the edited one is read afresh.
    assert list(trial.criteria.filter(needs_review=True)) == [organ]
    assert trial.criteria.filter(text=LIFE_EXPECTANCY.replace("24", "12")).exists()
    assert not trial.criteria.filter(text=LIFE_EXPECTANCY).exists()
    assert trial.orphaned_corrections == []


def test_a_correction_of_a_criterion_gone_from_the_text_is_kept_on_the_trial(
    tmp_path: Path, coordinator: User
) -> None:
    trial = read_trial(MATTERHORN)
    criterion_correct(
        criterion(trial, CONTRAINDICATION),
        category="comorbidity",
        note="allergy to durvalumab or to FLOT",
        user=coordinator,
    )

    trial = publish_new_eligibility(
        tmp_path, MATTERHORN, lambda text: text.replace("\n* " + CONTRAINDICATION, "")
    )

    assert not trial.criteria.filter(text=CONTRAINDICATION).exists()
    assert not trial.criteria.filter(corrected_at__isnull=False).exists()
    assert trial.curation_needs_review
    [orphan] = trial.orphaned_corrections
    assert orphan["text"] == CONTRAINDICATION
    assert orphan["kind"] == "exclusion"
    assert orphan["category"] == "comorbidity"
    assert orphan["note"] == "allergy to durvalumab or to FLOT"
    assert orphan["by"] == "maria"
    assert orphan["at"]
    assert orphan["orphaned_at"]

    # A later re-read neither loses nor repeats it.
    upgrade_engine()
    trial.refresh_from_db()
    assert [item["text"] for item in trial.orphaned_corrections] == [CONTRAINDICATION]


# --- 4. the coordinator's classification -------------------------------------------------


def test_a_classification_override_wins_survives_re_reads_and_can_be_cleared(
    tmp_path: Path, coordinator: User
) -> None:
    trial = read_trial(MATTERHORN)
    assert trial.gastric_preop_immunotherapy is True

    trial_set_classification(trial, override=False, note="durvalumab arm closed", user=coordinator)
    trial.refresh_from_db()
    assert trial.gastric_preop_immunotherapy is False
    assert (trial.classification_by, trial.classification_note) == (
        coordinator,
        "durvalumab arm closed",
    )
    assert trial.classified_immunotherapy  # the engine's answers are kept

    upgrade_engine()
    trial.refresh_from_db()
    assert trial.classification_override is False
    assert trial.gastric_preop_immunotherapy is False
    assert not trial.curation_needs_review

    trial = publish_new_eligibility(
        tmp_path, MATTERHORN, lambda text: text.replace("at least 24 weeks", "at least 12 weeks")
    )
    assert trial.gastric_preop_immunotherapy is False
    assert trial.curation_needs_review  # the coordinator should look at the new text

    trial_set_classification(trial, override=None)
    trial.refresh_from_db()
    assert trial.classification_override is None
    assert trial.classification_by is None
    assert trial.gastric_preop_immunotherapy is True


def test_an_override_can_also_include_a_trial_the_engine_leaves_out(coordinator: User) -> None:
    trial = read_trial(RESONANCE_II)
    assert trial.gastric_preop_immunotherapy is False

    trial_set_classification(trial, override=True, user=coordinator)
    upgrade_engine()
    trial.refresh_from_db()
    assert trial.gastric_preop_immunotherapy is True

    trial_set_classification(trial, override=None)
    trial.refresh_from_db()
    assert trial.gastric_preop_immunotherapy is False


# --- 5. corrections that cannot be applied -----------------------------------------------


@pytest.mark.parametrize(
    ("correction", "message"),
    [
        ({"category": "cardiology"}, "unknown category 'cardiology'"),
        (
            {"constraints": [{"type": "ecog", "allowed": [0, 1]}, {"type": "ecog", "score": 2}]},
            "constraint 2: ecog has no field 'score'",
        ),
        ({"constraints": [{"allowed": [0, 1]}]}, "constraint 1: a constraint needs a 'type'"),
        ({"constraints": [{"type": "performance"}]}, "constraint 1: a constraint needs a 'type'"),
        ({"constraints": {"type": "ecog", "allowed": [0, 1]}}, "constraints must be a list"),
    ],
)
def test_an_invalid_correction_is_refused_and_the_row_left_as_it_was(
    coordinator: User, correction: dict[str, Any], message: str
) -> None:
    trial = read_trial(MATTERHORN)
    row = criterion(trial, ORGAN_FUNCTION)
    criterion_correct(row, constraints=ANC_AND_PLATELETS, note="earlier", user=coordinator)
    stored = Criterion.objects.filter(pk=row.pk).values().get()

    with pytest.raises(CorrectionError, match=message):
        criterion_correct(
            Criterion.objects.get(pk=row.pk), note="new note", user=coordinator, **correction
        )

    assert Criterion.objects.filter(pk=row.pk).values().get() == stored


# --- 6. the admin ------------------------------------------------------------------------


def test_change_page_shows_the_original_text_beside_the_parsed_criteria(
    coordinator_client: Client,
) -> None:
    trial = read_trial(MATTERHORN)

    response = coordinator_client.get(change_url(trial))

    assert response.status_code == 200
    page = response.content.decode()
    assert escape(trial.eligibility_criteria) in page
    for row in trial.criteria.all():
        assert escape(row.text) in page
    # The engine's reading of each criterion, and those it could not read.
    assert "ECOG 0, 1" in page
    assert "primary stomach or gej" in page
    assert "peritoneal metastasis OR distant metastasis" in page
    assert "age 18 to 200 years" in page
    assert "not read: needs review" in page
    # The editable correction fields are there for every criterion.
    rows = {form.instance.pk for form in _criterion_forms(response)}
    assert rows == set(trial.criteria.values_list("pk", flat=True))


def _criterion_forms(response: Any) -> list[Any]:
    [formset] = [
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is Criterion
    ]
    return list(formset.forms)


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ('[{"type": "ecog", "allowed": [0, 1]', "Enter a valid JSON."),
        ('[{"type": "ecog", "score": 2}]', "Constraint 1: ecog has no field 'score'"),
        ('{"type": "ecog", "allowed": [0, 1]}', "Give a list of constraints."),
    ],
)
def test_invalid_constraints_in_the_admin_are_a_form_error_and_nothing_is_saved(
    coordinator_client: Client, posted: str, error: str
) -> None:
    trial = read_trial(MATTERHORN)
    organ = criterion(trial, ORGAN_FUNCTION)
    page = coordinator_client.get(change_url(trial))
    data = change_form_data(page)
    data[criterion_field(page, organ, "corrected_constraints")] = posted
    data[criterion_field(page, organ, "correction_note")] = "should not be saved"

    response = coordinator_client.post(change_url(trial), data)

    assert response.status_code == 200
    assert criterion_form_errors(response) == [error]
    assert escape(error) in response.content.decode()
    assert not Criterion.objects.filter(trial=trial, corrected_at__isnull=False).exists()
    assert not Criterion.objects.filter(trial=trial).exclude(correction_note="").exists()


def test_a_valid_correction_posted_in_the_admin_is_saved(
    coordinator_client: Client, coordinator: User
) -> None:
    trial = read_trial(MATTERHORN)
    organ = criterion(trial, ORGAN_FUNCTION)
    sample = criterion(trial, TUMOUR_SAMPLE)
    page = coordinator_client.get(change_url(trial))
    data = change_form_data(page)
    data[criterion_field(page, organ, "corrected_constraints")] = json.dumps(ANC_AND_PLATELETS)
    data[criterion_field(page, organ, "correction_note")] = "thresholds from the protocol"
    data[criterion_field(page, sample, "corrected_category")] = "other"
    Trial.objects.filter(pk=trial.pk).update(needs_evaluation=False)

    response = coordinator_client.post(change_url(trial), data)

    assert response.status_code == 302, criterion_form_errors(response)
    organ.refresh_from_db()
    sample.refresh_from_db()
    assert organ.corrected_constraints == ANC_AND_PLATELETS
    assert organ.correction_note == "thresholds from the protocol"
    assert organ.corrected_by == coordinator
    assert organ.corrected_at is not None
    assert sample.effective_category == "other"
    assert sample.corrected_constraints is None  # the engine's constraints still count
    # Criteria the form posted back unchanged are not corrections.
    assert set(trial.criteria.filter(corrected_at__isnull=False)) == {organ, sample}
    trial.refresh_from_db()
    assert trial.needs_evaluation
    assert trial.gastric_preop_immunotherapy is True  # the classification was not touched
    assert "corrected by maria" in coordinator_client.get(change_url(trial)).content.decode()


def test_a_classification_override_posted_in_the_admin_is_saved(
    coordinator_client: Client, coordinator: User
) -> None:
    trial = read_trial(MATTERHORN)
    page = coordinator_client.get(change_url(trial))
    data = change_form_data(page)
    data["classification_override"] = "false"
    data["classification_note"] = "not enrolling gastric patients here"

    response = coordinator_client.post(change_url(trial), data)

    assert response.status_code == 302
    trial.refresh_from_db()
    assert trial.classification_override is False
    assert trial.gastric_preop_immunotherapy is False
    assert trial.classification_by == coordinator
    assert not trial.criteria.filter(corrected_at__isnull=False).exists()


def _flag_for_review(tmp_path: Path, coordinator: User) -> Trial:
    """A corrected trial whose eligibility text then changed in the registry."""
    trial = read_trial(MATTERHORN)
    criterion_correct(
        criterion(trial, ORGAN_FUNCTION), constraints=ANC_AND_PLATELETS, user=coordinator
    )
    trial = publish_new_eligibility(
        tmp_path, MATTERHORN, lambda text: text.replace("at least 24 weeks", "at least 12 weeks")
    )
    assert trial.curation_needs_review
    assert trial.criteria.filter(needs_review=True).exists()
    return trial


def test_mark_reviewed_clears_the_review_flags(
    tmp_path: Path, coordinator_client: Client, coordinator: User
) -> None:
    trial = _flag_for_review(tmp_path, coordinator)
    listing = coordinator_client.get("/admin/trials/trial/")
    assert "mark_reviewed" in dict(listing.context["action_form"].fields["action"].choices)

    response = coordinator_client.post(
        "/admin/trials/trial/",
        {"action": "mark_reviewed", "_selected_action": [trial.pk], "index": 0},
        follow=True,
    )

    assert "1 trial(s) marked as reviewed." in response.content.decode()
    trial.refresh_from_db()
    assert not trial.curation_needs_review
    assert not trial.criteria.filter(needs_review=True).exists()
    # Reviewed, the correction itself stays.
    assert criterion(trial, ORGAN_FUNCTION).effective_constraints == ANC_AND_PLATELETS


def test_mark_reviewed_needs_the_permission_to_change_trials(
    tmp_path: Path, client: Client, coordinator: User
) -> None:
    trial = _flag_for_review(tmp_path, coordinator)
    client.force_login(make_staff("viewer", "view_trial", "view_criterion"))

    listing = client.get("/admin/trials/trial/")
    client.post(
        "/admin/trials/trial/",
        {"action": "mark_reviewed", "_selected_action": [trial.pk], "index": 0},
    )

    assert listing.status_code == 200
    trial.refresh_from_db()
    assert trial.curation_needs_review
    assert trial.criteria.filter(needs_review=True).exists()


# --- 7. commands -------------------------------------------------------------------------


def test_export_includes_the_classification_and_the_criteria(coordinator: User) -> None:
    import_records(MATTERHORN, RESONANCE_II)
    refresh_stale_criteria()
    matterhorn = Trial.objects.get(nct_id=MATTERHORN)
    criterion_correct(criterion(matterhorn, TUMOUR_SAMPLE), category="other", user=coordinator)

    out, _ = run_command("export_trials", "--format", "json")

    rows = {row["nct_id"]: row for row in json.loads(out)}
    assert rows[MATTERHORN]["gastric_preop_immunotherapy"] is True
    assert rows[RESONANCE_II]["gastric_preop_immunotherapy"] is False
    assert rows[MATTERHORN]["classification"]["immunotherapy"] is True
    assert rows[MATTERHORN]["classification"]["coordinator_override"] is None
    assert rows[MATTERHORN]["classification"]["evidence"]
    for nct_id, row in rows.items():
        trial = Trial.objects.get(nct_id=nct_id)
        assert [item["text"] for item in row["criteria"]] == [c.text for c in trial.criteria.all()]
        for item in row["criteria"]:
            assert {"type", "text", "category", "parsed"} <= item.keys()
            assert item["type"] in ("inclusion", "exclusion")
            assert item["category"] in Criterion.Category.values
            assert isinstance(item["parsed"], bool)
    by_text = {item["text"]: item for item in rows[MATTERHORN]["criteria"]}
    assert by_text[ECOG] == {
        "type": "inclusion",
        "text": ECOG,
        "category": "performance_status",
        "parsed": True,
        "constraints": [{"type": "ecog", "allowed": [0, 1]}],
        "join": "all",
        "corrected": False,
        "reading_gaps": [],
        "reading_marks": [],
    }
    assert by_text[METASTASIS]["type"] == "exclusion"
    assert by_text[LIFE_EXPECTANCY]["parsed"] is False
    assert by_text[TUMOUR_SAMPLE]["category"] == "other"  # the coordinator's
    assert by_text[TUMOUR_SAMPLE]["corrected"] is True

    csv_out, _ = run_command("export_trials", "--format", "csv")
    lines = {line["nct_id"]: line for line in csv.DictReader(io.StringIO(csv_out))}
    assert lines[MATTERHORN]["gastric_preop_immunotherapy"] == "True"
    assert lines[RESONANCE_II]["gastric_preop_immunotherapy"] == "False"
    assert f"[inclusion/performance_status] {ECOG}" in lines[MATTERHORN]["criteria"]
    assert f"[inclusion/other, not read] {LIFE_EXPECTANCY}" in lines[MATTERHORN]["criteria"]


def test_parse_criteria_reads_stale_trials_and_reports_how_many(coordinator: User) -> None:
    import_records(MATTERHORN, RESONANCE_II, PRIDE)  # imported, not yet read

    out, _ = run_command("parse_criteria")
    assert out.strip() == "Criteria read for 3 trial(s)."
    assert not Trial.objects.exclude(criteria_engine_version=ENGINE_VERSION).exists()
    assert Trial.objects.get(nct_id=MATTERHORN).criteria.count() == 13

    out, _ = run_command("parse_criteria")
    assert out.strip() == "Criteria read for 0 trial(s)."

    matterhorn = Trial.objects.get(nct_id=MATTERHORN)
    criterion_correct(criterion(matterhorn, TUMOUR_SAMPLE), category="other", user=coordinator)
    out, _ = run_command("parse_criteria", "--all")
    assert out.strip() == "Criteria read for 3 trial(s)."
    assert criterion(matterhorn, TUMOUR_SAMPLE).effective_category == "other"

    out, _ = run_command("parse_criteria", "--trial", MATTERHORN)
    assert out.strip() == f"{MATTERHORN}: 13 criteria."
    assert criterion(matterhorn, TUMOUR_SAMPLE).effective_category == "other"


def test_parse_criteria_names_an_unknown_trial() -> None:
    with pytest.raises(CommandError, match="No trial 'NCT00000000'"):
        run_command("parse_criteria", "--trial", "NCT00000000")


def test_a_note_alone_is_kept_across_a_re_read(coordinator: User) -> None:
    trial = read_trial(MATTERHORN)
    criterion_correct(criterion(trial, ECOG), note="checked: reads right", user=coordinator)

    upgrade_engine()

    ecog = criterion(Trial.objects.get(pk=trial.pk), ECOG)
    assert ecog.correction_note == "checked: reads right"
    assert ecog.corrected_by == coordinator


def test_a_correction_the_engine_no_longer_splits_out_is_orphaned_and_flagged(
    coordinator: User,
) -> None:
    """Same registry text, new engine reading: a correction with no criterion left to sit on."""
    trial = read_trial(MATTERHORN)
    row = criterion(trial, LIFE_EXPECTANCY)
    criterion_correct(row, category="other", note="not assessable", user=coordinator)
    # What an older engine might have split differently from today's reading.
    Criterion.objects.filter(pk=row.pk).update(text="Life expectancy of at least 24 weeks")

    upgrade_engine()

    trial.refresh_from_db()
    assert trial.curation_needs_review is True
    assert [orphan["note"] for orphan in trial.orphaned_corrections] == ["not assessable"]
