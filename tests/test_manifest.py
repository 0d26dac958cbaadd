import json

import pytest

from asr.errors import ManifestError
from asr.manifest import Utterance, read_manifest, write_manifest

GOOD = {"id": "u1", "audio": "a.wav", "duration": 1.5, "text": "HELLO", "speaker": "s1"}


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_round_trip_resolves_relative_audio(tmp_path):
    utts = [Utterance("u1", "a.wav", 1.5, "HELLO", "s1"), Utterance("u2", "/abs/b.wav", 2.0, "YES", "s2", offset=3.0)]
    assert write_manifest(utts, tmp_path / "m.jsonl") == 2
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0].audio == str(tmp_path / "a.wav")
    assert back[1] == utts[1]
    assert "offset" not in json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert back[0].offset is None


def test_offset_zero_marks_a_segment_and_survives_the_round_trip(tmp_path):
    utts = [Utterance("talk-0000000-0000250", "/abs/talk.sph", 2.5, "HI", "talk", offset=0.0)]
    write_manifest(utts, tmp_path / "m.jsonl")
    assert json.loads((tmp_path / "m.jsonl").read_text())["offset"] == 0.0
    assert read_manifest(tmp_path / "m.jsonl") == utts


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "text"}), "missing field 'text'"),
        (json.dumps({**GOOD, "duration": "long"}), "field 'duration' has the wrong type"),
        (json.dumps({**GOOD, "duration": 0}), "'duration' must be a finite number > 0"),
        (json.dumps({**GOOD, "duration": float("nan")}), "'duration' must be a finite number > 0"),
        (json.dumps({**GOOD, "offset": -1}), "'offset' must be a number >= 0"),
        (json.dumps(GOOD), "duplicate id 'u1'"),
    ],
)
def test_bad_record_names_file_and_line(tmp_path, bad, message):
    path = write_lines(tmp_path / "m.jsonl", [json.dumps(GOOD), "", bad])
    with pytest.raises(ManifestError) as e:
        read_manifest(path)
    assert str(e.value).startswith(f"{path}:3: ") and message in str(e.value)


def test_missing_and_empty_manifests(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "none.jsonl")
    with pytest.raises(ManifestError, match="holds no utterances"):
        read_manifest(write_lines(tmp_path / "empty.jsonl", ["", " "]))


def test_atomic_write_leaves_no_temporary_and_usual_mode(tmp_path):
    import os

    write_manifest([Utterance("u1", "a.wav", 1.5, "HELLO", "s1")], tmp_path / "m.jsonl")
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.jsonl").stat().st_mode & 0o777 == 0o666 & ~mask
