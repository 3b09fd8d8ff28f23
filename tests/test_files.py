"""The one bounded JSON reader (``anatcl_nipype.files``) and the four readers built on it:
every refusal names the file and says what was wrong, in the caller's error family."""

import json

import pytest

from anatcl_nipype.cli.group import read_probe_card
from anatcl_nipype.errors import AnatCLError, PredictionError, RegionalError
from anatcl_nipype.files import (
    MAX_SIDECAR_BYTES,
    MAX_SIDECAR_DEPTH,
    JSONFileError,
    parse_json_bounded,
    read_json_bounded,
)
from anatcl_nipype.prediction.feature_source import read_sidecar
from anatcl_nipype.prediction.persistence import MAX_CARD_BYTES, MAX_JSON_DEPTH
from anatcl_nipype.regional.tables import merge_measures_tables, write_measures_tsv


def nested_lists(depth):
    return "[" * depth + "]" * depth


def write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def write_sparse(path, size):
    with open(path, "wb") as stream:
        stream.truncate(size)  # sparse: costs no disk
    return path


# --- the reader --------------------------------------------------------------------

def test_a_small_shallow_file_is_read(tmp_path):
    path = write(tmp_path / "x.json", '{"weights": {"fold": 0, "sha256": "ab"}, "n": [1.5, null]}')
    assert read_json_bounded(path, max_bytes=100, max_depth=2) == {
        "weights": {"fold": 0, "sha256": "ab"}, "n": [1.5, None]}


@pytest.mark.parametrize("text, depth", [
    ("1", 0), ("[]", 1), ("{}", 1), ('{"a": {}}', 2), ('[1, [2, [3]], {"b": 4}]', 3),
    ('{"a": [{"b": [{}]}]}', 5),
])
def test_depth_limit_is_exact(tmp_path, text, depth):
    path = write(tmp_path / "x.json", text)
    assert read_json_bounded(path, max_bytes=100, max_depth=depth) == json.loads(text)
    if depth:
        with pytest.raises(JSONFileError, match=rf"^{path}: the JSON file nests more than "
                           rf"{depth - 1} deep$"):
            read_json_bounded(path, max_bytes=100, max_depth=depth - 1)


@pytest.mark.parametrize("depth", [MAX_SIDECAR_DEPTH + 1, 2_000, 100_000])
def test_deep_nesting_is_refused_without_exhausting_the_stack(tmp_path, depth):
    """Beyond the parser's recursion limit too (~1000 levels), with the same message."""
    path = write(tmp_path / "deep.json", nested_lists(depth))
    with pytest.raises(JSONFileError, match=rf"^{path}: the sidecar nests more than "
                       rf"{MAX_SIDECAR_DEPTH} deep$"):
        read_json_bounded(path, max_bytes=MAX_SIDECAR_BYTES, max_depth=MAX_SIDECAR_DEPTH,
                          what="sidecar")


def test_size_limit_is_exact_and_a_large_file_is_refused_unread(tmp_path):
    path = write(tmp_path / "x.json", '"' + "a" * 8 + '"')  # 10 bytes
    assert read_json_bounded(path, max_bytes=10, max_depth=0) == "a" * 8
    with pytest.raises(JSONFileError, match=rf"^{path}: larger than 9 bytes, more than any "
                       "card holds; refused unread$"):
        read_json_bounded(path, max_bytes=9, max_depth=0, what="card")
    huge = write_sparse(tmp_path / "huge.json", 1 << 30)  # 1 GiB of zeros, never read whole
    with pytest.raises(JSONFileError, match=rf"^{huge}: larger than 1024 bytes"):
        read_json_bounded(huge, max_bytes=1024, max_depth=1)


@pytest.mark.parametrize("content, byte", [
    (b'{"name": "\xff"}', 10),
    ('{"name": "é"}'.encode("latin-1"), 10),
    ('{"name": "x"}'.encode("utf-16"), 0),  # json.loads would decode it from bytes
])
def test_text_that_is_not_utf8_is_refused(tmp_path, content, byte):
    path = write(tmp_path / "x.json", content)
    with pytest.raises(JSONFileError, match=rf"^{path}: the JSON file is not valid JSON \(not "
                       rf"UTF-8 text at byte {byte}\)$"):
        read_json_bounded(path, max_bytes=100, max_depth=2)


@pytest.mark.parametrize("text, problem", [
    ("", "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
    ('{"a" 1}', "JSONDecodeError: Expecting ':' delimiter: line 1 column 6 (char 5)"),
    ("[1] [2]", "JSONDecodeError: Extra data: line 1 column 5 (char 4)"),
    ("\ufeff{}", "JSONDecodeError: Unexpected UTF-8 BOM"),
    ("1" * 5000, "ValueError: Exceeds the limit (4300 digits)"),
])
def test_invalid_json_is_refused_saying_why(tmp_path, text, problem):
    path = write(tmp_path / "x.json", text)
    with pytest.raises(JSONFileError) as error:
        read_json_bounded(path, max_bytes=10_000, max_depth=2, what="card")
    assert str(error.value).startswith(f"{path}: the card is not valid JSON ({problem}")


def test_a_missing_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(JSONFileError, match=rf"^{path}: cannot read the card \(No such file "
                       r"or directory\)$"):
        read_json_bounded(path, max_bytes=100, max_depth=2, what="card")


def test_bytes_already_read_are_checked_the_same_way():
    assert parse_json_bounded(b'{"a": [1]}', source="m.skops", max_depth=2) == {"a": [1]}
    with pytest.raises(JSONFileError, match=r"^m\.skops: the schema nests more than 1 deep$"):
        parse_json_bounded(b'{"a": [1]}', source="m.skops", max_depth=1, what="schema")


# --- its callers -------------------------------------------------------------------

def read_card_from_the_command_line(card):
    return read_probe_card(write(card.with_suffix(".skops"), b"the card is read first"))


#: reader, file it reads, error family, what it calls the file, limits, advice.
READERS = {
    "feature sidecar": (read_sidecar, "embeddings.json", PredictionError, "JSON sidecar",
                        MAX_SIDECAR_BYTES, MAX_SIDECAR_DEPTH,
                        "restore the sidecar the encoder wrote beside the file"),
    "probe card, command line": (read_card_from_the_command_line, "age.json", AnatCLError,
                                 "probe's card", MAX_CARD_BYTES, MAX_JSON_DEPTH,
                                 "restore the .json a fit saved beside the .skops file"),
}

#: How to write a hostile file, and what the error then says after the file's name.
HOSTILE = {
    "nested 100000 deep": (lambda path, size, depth: write(path, nested_lists(100_000)),
                           "the {what} nests more than {depth} deep"),
    "nested one level too deep": (lambda path, size, depth: write(path, nested_lists(depth + 1)),
                                  "the {what} nests more than {depth} deep"),
    "one byte too large": (lambda path, size, depth: write_sparse(path, size + 1),
                           "larger than {size} bytes, more than any {what} holds; refused unread"),
    "invalid UTF-8": (lambda path, size, depth: write(path, b'{"weights": "\xff"}'),
                      "the {what} is not valid JSON (not UTF-8 text at byte 13)"),
    "invalid JSON": (lambda path, size, depth: write(path, '{"weights": '),
                     "the {what} is not valid JSON (JSONDecodeError: Expecting value: "
                     + "line 1 column 13 (char 12))"),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_json_is_refused_with_one_clear_error(tmp_path, reader, case):
    read, name, family, what, size, depth, advice = READERS[reader]
    write_hostile, problem = HOSTILE[case]
    path = write_hostile(tmp_path / name, size, depth)
    with pytest.raises(family) as error:
        read(path)
    assert str(error.value) == (f"{path}: {problem.format(what=what, size=size, depth=depth)}; "
                                f"{advice}")


def test_feature_sidecar_that_is_not_an_object_is_refused(tmp_path):
    path = write(tmp_path / "embeddings.json", "[1, 2]")
    with pytest.raises(PredictionError, match=rf"^{path}: the JSON sidecar is not an object"):
        read_sidecar(path)


@pytest.fixture
def probe_file(tmp_path):
    return write(tmp_path / "age.skops", b"the card is read first")


def test_missing_probe_card_is_named_by_the_command_line(probe_file):
    card = probe_file.with_suffix(".json")
    with pytest.raises(AnatCLError, match=rf"^{card}: cannot read the probe's card \(No such "
                       r"file or directory\); restore the \.json"):
        read_probe_card(probe_file)


def test_probe_card_within_the_limits_is_read_by_the_command_line(probe_file):
    card = {"task": "regression", "target": "age", "feature_source": {"columns": ["emb_000"]}}
    write(probe_file.with_suffix(".json"), json.dumps(card))
    assert read_probe_card(probe_file) == card


def test_regional_sidecar_nested_too_deep_is_refused_naming_it(tmp_path):
    table, _ = write_measures_tsv({"sub-01": {"a_r1_Vgm": 1.5}}, tmp_path / "a.tsv")
    sidecar = write(tmp_path / "a_deep.json", nested_lists(MAX_SIDECAR_DEPTH + 1))
    with pytest.raises(RegionalError, match=rf"^{sidecar}: the JSON sidecar nests more than "
                       rf"{MAX_SIDECAR_DEPTH} deep; pass the sidecar this package wrote"):
        merge_measures_tables([table], tmp_path / "group.tsv", sidecar_paths=[sidecar])
