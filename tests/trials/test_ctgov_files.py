"""Reading study records from files: every shape, streamed, exact whatever the layout."""

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.trials.conftest import CTGOV_DATA
from trials.ctgov import files
from trials.ctgov.files import RecordFileError, iter_file_studies, record_files

SMALL = [
    json.loads((CTGOV_DATA / "v2" / f"{nct}.json").read_text())
    for nct in ("NCT04592913", "NCT06008288", "NCT03878472", "NCT00000102")
]


def studies_in(path: Path, **kwargs: Any) -> list[Any]:
    return [record.study for record in iter_file_studies(path, **kwargs)]


@pytest.mark.parametrize("indent", [None, 2])
def test_reads_an_array_a_page_and_a_single_study(tmp_path: Path, indent: int | None) -> None:
    (tmp_path / "array.json").write_text(json.dumps(SMALL, indent=indent))
    (tmp_path / "page.json").write_text(json.dumps({"studies": SMALL, "nextPageToken": "x"}))
    (tmp_path / "one.json").write_text(json.dumps(SMALL[0], indent=indent))

    assert studies_in(tmp_path / "array.json") == SMALL
    assert studies_in(tmp_path / "page.json") == SMALL
    assert studies_in(tmp_path / "one.json") == [SMALL[0]]


def test_reads_gzip_and_folders_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(json.dumps(SMALL[1:]).encode()))
    (tmp_path / "a.json").write_text(json.dumps(SMALL[0]))
    (tmp_path / "notes.txt").write_text("ignored")

    found = record_files(tmp_path)

    assert [p.name for p in found] == ["a.json", "b.json.gz"]
    assert [s for p in found for s in studies_in(p)] == SMALL


def test_every_recorded_bulk_file_reads_whole() -> None:
    counts = {p.name: len(studies_in(p)) for p in record_files(CTGOV_DATA / "bulk")}

    assert counts["UserZetsu_dtx-analysis_ctg-studies.json.gz"] == 128
    assert counts["arjuns238_Cheiron_page_0a96c62008137b7789ed5eaa00ab8940.json.gz"] == 1000
    assert sum(counts.values()) == 1367


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    picks=st.lists(st.sampled_from(range(len(SMALL))), min_size=1, max_size=8),
    oddities=st.lists(
        st.sampled_from([7, "text", None, {"hasResults": False}, {"x": '{"protocolSection":'}]),
        max_size=3,
    ),
    indent=st.sampled_from([None, 1, 4]),
    block=st.integers(min_value=16, max_value=4096),
    seed=st.randoms(use_true_random=False),
)
def test_streamed_arrays_decode_exactly_whatever_the_layout(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    picks: list[int],
    oddities: list[Any],
    indent: int | None,
    block: int,
    seed: Any,
) -> None:
    """Elements are found exactly even when blocks cut them anywhere and odd values sit
    between records (including a string that looks like a record start)."""
    monkeypatch.setattr(files, "READ_SIZE", block)
    elements: list[Any] = [SMALL[i] for i in picks] + oddities
    seed.shuffle(elements)
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(elements, indent=indent))

    assert studies_in(path) == elements


def test_known_texts_are_not_decoded(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text(json.dumps(SMALL))
    hashes = [record.source_hash for record in iter_file_studies(path)]

    again = list(iter_file_studies(path, known={hashes[0], hashes[2]}.__contains__))

    assert [record.study is None for record in again] == [True, False, True, False]
    assert [record.source_hash for record in again] == hashes
    assert all(hashes)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b"nonsense", "not JSON: expected a study object, a page or an array"),
        (b'{"protocolSection": ', "not readable JSON"),
        (b"\xff\xfe[]", "not readable JSON"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)

    with pytest.raises(RecordFileError, match=message):
        studies_in(path)


def test_a_cut_array_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    text = json.dumps(SMALL)
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) - 200])
    seen: list[Any] = []

    def read_all() -> None:
        seen.extend(record.study for record in iter_file_studies(path))

    with pytest.raises(RecordFileError, match=r"after 3 record\(s\)"):
        read_all()

    assert seen == SMALL[:3]
