"""LLaVA record reading: errors name file:line and the key."""

import json

import pytest

from sicog.data.records import DataError, read_records


def _write(tmp_path, lines, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


GOOD = {"id": "a", "image": "x.png", "conversations": [
    {"from": "human", "value": "<image>\nhi"}, {"from": "gpt", "value": "yo"}]}


def test_reads_jsonl_and_json(tmp_path):
    p = _write(tmp_path, [json.dumps(GOOD), "", json.dumps({**GOOD, "id": "b"})])
    recs = read_records(p)
    assert [r.record["id"] for r in recs] == ["a", "b"] and recs[1].line == 3
    q = tmp_path / "d.json"
    q.write_text(json.dumps([GOOD]))
    assert read_records(q)[0].where.endswith("d.json:1")


def test_malformed_line_names_file_line(tmp_path):
    p = _write(tmp_path, [json.dumps(GOOD), "{not json"])
    with pytest.raises(DataError, match=r"d.jsonl:2: invalid JSON"):
        read_records(p)


@pytest.mark.parametrize("rec, key", [
    ({"id": "a"}, "conversations"),
    ({**GOOD, "image": 3}, "image"),
    ({**GOOD, "conversations": [{"from": "robot", "value": "x"}]}, "conversations[0].from"),
    ({**GOOD, "conversations": [{"from": "human", "value": 1}]}, "conversations[0].value"),
    ({**GOOD, "conversations": [{"from": "human", "value": "a"}]}, "conversations"),
])
def test_bad_record_names_key(tmp_path, rec, key):
    p = _write(tmp_path, [json.dumps(GOOD), json.dumps(rec)])
    with pytest.raises(DataError) as e:
        read_records(p)
    assert f"d.jsonl:2: key '{key}'" in str(e.value)


def test_unlabeled_allowed_when_asked(tmp_path):
    rec = {"id": "u", "image": "x.png", "conversations": [{"from": "human", "value": "<image>\nq"}]}
    p = _write(tmp_path, [json.dumps(rec)])
    assert read_records(p, require_answer=False)[0].record["id"] == "u"
