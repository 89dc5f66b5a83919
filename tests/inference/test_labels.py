"""Shipped class-name lists and ``load_labels`` on every accepted file format and error case.

The known indices below were checked against public sources (see docs/inference.md, predict):
Kinetics-400 against PyTorchVideo's ``kinetics_classnames.json`` ({name: index}), Kinetics-600
against class ids printed by a Kinetics-600 model, SSv2 against the ``labels.json`` ids.
"""

from __future__ import annotations

import json

import pytest

from timesformer.errors import ConfigError
from timesformer.inference.labels import LABEL_SETS, load_labels

KNOWN = {
    "kinetics400": {
        0: "abseiling",
        1: "air drumming",
        5: "archery",
        100: "drinking",
        196: "massaging person's head",
        208: "passing American football (in game)",
        209: "passing American football (not in game)",
        308: "skiing (not slalom or crosscountry)",
        399: "zumba",
    },
    "kinetics600": {
        0: "abseiling",
        31: "biking through snow",
        124: "cutting apple",
        309: "passing american football (not in game)",
        466: "skiing mono",
        509: "swinging baseball bat",
        556: "using a sledge hammer",
        599: "zumba",
    },
    "ssv2": {
        0: "Approaching something with your camera",
        16: "Holding something",
        67: "Pretending to open something without actually opening it",
        120: "Putting something, something and something on the table",
        140: "Spinning something that quickly stops spinning",
        173: "Wiping something off of something",
    },
}
COUNTS = {"kinetics400": 400, "kinetics600": 600, "ssv2": 174}


@pytest.mark.parametrize("name", LABEL_SETS)
def test_shipped_sets_have_the_published_size_and_no_duplicates(name):
    names = load_labels(name)
    assert len(names) == COUNTS[name]
    assert len(set(names)) == len(names)
    assert all(n and n == n.strip() for n in names)


@pytest.mark.parametrize("name", LABEL_SETS)
def test_shipped_sets_put_known_classes_at_their_published_indices(name):
    names = load_labels(name)
    for index, label in KNOWN[name].items():
        assert names[index] == label, (name, index)


@pytest.mark.parametrize("name", LABEL_SETS)
def test_shipped_sets_are_in_alphabetical_order(name):
    # The official ids of all three sets are the alphabetical order of the names; a line out of
    # place would mislabel every class after it.
    names = load_labels(name)
    assert names == sorted(names)


def test_kinetics600_keeps_368_kinetics400_classes_unchanged():
    # "368 of the original 400 classes are exactly the same" (Carreira et al., the K600 note):
    # a name typed differently in one of the two lists would break this count.
    assert len(set(load_labels("kinetics400")) & set(load_labels("kinetics600"))) == 368


def test_load_labels_returns_a_fresh_list_each_call():
    first = load_labels("ssv2")
    first[0] = "changed"
    assert load_labels("ssv2")[0] == "Approaching something with your camera"


# --- accepted file formats -------------------------------------------------------------------


def test_text_file_one_name_per_line(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\ndog\nbird\n", encoding="utf-8")
    assert load_labels(str(path)) == ["cat", "dog", "bird"]


def test_text_file_with_bom_crlf_spaces_and_trailing_blank_lines(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes("\ufeffcat\r\n  dog  \r\nbird\r\n\r\n\n".encode())
    assert load_labels(str(path)) == ["cat", "dog", "bird"]


def test_text_file_keeps_non_ascii_names(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("café\nnaïve\n", encoding="utf-8")
    assert load_labels(str(path)) == ["café", "naïve"]


def test_json_list(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(["cat", "dog"]), encoding="utf-8")
    assert load_labels(str(path)) == ["cat", "dog"]


def test_json_name_to_string_index_like_ssv2_labels_json(tmp_path):
    path = tmp_path / "labels.json"
    # Deliberately not in index order: the indices, not the key order, decide.
    data = {"Twisting something": "1", "Approaching something with your camera": "0"}
    path.write_text(json.dumps(data), encoding="utf-8")
    assert load_labels(str(path)) == [
        "Approaching something with your camera",
        "Twisting something",
    ]


def test_json_name_to_int_index(tmp_path):
    path = tmp_path / "label2id.json"
    path.write_text(json.dumps({"b": 1, "a": 2, "c": 0}), encoding="utf-8")
    assert load_labels(str(path)) == ["c", "b", "a"]


def test_json_index_to_name_like_id2label(tmp_path):
    path = tmp_path / "id2label.json"
    path.write_text(json.dumps({"2": "zumba", "0": "abseiling", "1": "air drumming"}))
    assert load_labels(str(path)) == ["abseiling", "air drumming", "zumba"]


def test_json_detected_by_content_without_json_suffix(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text('["cat", "dog"]\n', encoding="utf-8")
    assert load_labels(str(path)) == ["cat", "dog"]


def test_shipped_set_written_out_reads_back_identically(tmp_path):
    names = load_labels("kinetics600")
    path = tmp_path / "k600.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    assert load_labels(str(path)) == names


# --- errors: one line, naming the file and the problem --------------------------------------


def _error(arg: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_labels(arg)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file_names_it_and_the_shipped_sets(tmp_path):
    message = _error(str(tmp_path / "nope.txt"))
    assert "nope.txt" in message and "does not exist" in message
    assert "kinetics400" in message and "ssv2" in message


def test_unknown_set_name_is_reported_as_a_missing_file():
    message = _error("kinetics700")
    assert "'kinetics700' does not exist" in message and "kinetics600" in message


def test_directory_is_not_a_labels_file(tmp_path):
    assert "is not a file" in _error(str(tmp_path))


@pytest.mark.parametrize("content", ["", "\n\n", "   \n"])
def test_empty_text_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content, encoding="utf-8")
    message = _error(str(path))
    assert str(path) in message and "no class names" in message


@pytest.mark.parametrize("content", ["[]", "{}"])
def test_empty_json(tmp_path, content):
    path = tmp_path / "empty.json"
    path.write_text(content, encoding="utf-8")
    assert "no class names" in _error(str(path))


def test_blank_line_inside_text_file(tmp_path):
    path = tmp_path / "gap.txt"
    path.write_text("cat\n\ndog\n", encoding="utf-8")
    message = _error(str(path))
    assert str(path) in message and "line 2 is empty" in message


def test_duplicate_name_in_text_file(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("cat\ndog\ncat\n", encoding="utf-8")
    message = _error(str(path))
    assert str(path) in message and "'cat' appears twice (classes 0 and 2)" in message


def test_duplicate_name_in_json_list(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(["a", "b", "b"]), encoding="utf-8")
    assert "'b' appears twice" in _error(str(path))


def test_duplicate_name_in_json_index_to_name(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps({"0": "a", "1": "a"}), encoding="utf-8")
    assert "'a' appears twice" in _error(str(path))


def test_json_indices_with_a_gap(tmp_path):
    path = tmp_path / "gap.json"
    path.write_text(json.dumps({"a": 0, "b": 2}), encoding="utf-8")
    message = _error(str(path))
    assert str(path) in message and "indices must be 0..1" in message and "missing [1]" in message


def test_json_indices_not_starting_at_zero(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"1": "a", "2": "b"}), encoding="utf-8")
    assert "missing [0]" in _error(str(path))


def test_json_index_given_twice(tmp_path):
    path = tmp_path / "twice.json"
    path.write_text(json.dumps({"a": "0", "b": "0"}), encoding="utf-8")
    assert "index 0 is given to both 'a' and 'b'" in _error(str(path))


@pytest.mark.parametrize(
    "data",
    [{"a": "x"}, {"a": -1}, {"a": True}, {"a": 0.5}, {"a": [0]}],
    ids=["word", "negative", "bool", "float", "list"],
)
def test_json_object_without_integer_indices(tmp_path, data):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "must map names to integer indices" in _error(str(path))


@pytest.mark.parametrize("data", [["a", 3], ["a", ""], ["a", None]])
def test_json_list_item_that_is_not_a_name(tmp_path, data):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "item 1 is" in _error(str(path))


def test_json_of_the_wrong_type(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("42", encoding="utf-8")
    assert "not int" in _error(str(path))


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a": 0,\n "b": }', encoding="utf-8")
    message = _error(str(path))
    assert str(path) in message and "not valid JSON" in message and "line 2" in message


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    message = _error(str(path))
    assert str(path) in message and "not UTF-8" in message
