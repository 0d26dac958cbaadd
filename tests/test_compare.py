"""asr compare: paired comparison of two report folders."""

import pytest

from asr.cli import main
from asr.compare import compare_reports
from asr.report import write_report
from tests.test_cli import assert_one_line_error, run_cli

IDS = [f"u{i}" for i in range(1, 9)]
REFS = ["A B C D", "E F G", "H I", "J K L M", "N O P", "Q R", "S T U V", "W X"]


def report(folder, hyps, ids=IDS, refs=REFS):
    write_report(folder, ids, ["s1" if i < 4 else "s2" for i in range(len(ids))], refs, hyps, title=folder.name)
    return folder


@pytest.fixture
def systems(tmp_path):
    a = report(tmp_path / "A", ["A X C D", "E F", "H I", "J K L M", "N O Z", "Q R", "S T Y V", "W X X"])
    b = report(tmp_path / "B", ["A B C D", "E F G", "H Z", "J K L M", "N O P", "Q R", "S T U V", "W X"])
    return a, b


def test_compare_lists_changes_and_tests(systems, tmp_path, capsys):
    a, b = systems
    out = tmp_path / "cmp.txt"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_text() == text
    assert "WER A 20.83% [ 5 / 24 ]   WER B 4.17% [ 1 / 24 ]" in text
    assert "Utterances better in B (5): errors A -> B" in text and "  u1: 1 -> 0" in text
    assert "Utterances worse in B (1): errors A -> B\n  u3: 0 -> 1\n" in text
    assert "Utterances with the same number of errors: 2" in text
    assert "MAPSSWE" in text and "paired bootstrap" in text

    c = compare_reports(a, b)
    assert c.bootstrap.delta == pytest.approx(100 * (1 - 5) / 24)
    assert c.bootstrap.ci[0] < c.bootstrap.delta < c.bootstrap.ci[1] and c.bootstrap.p_b_better > 0.9
    # Segments: one per changed utterance here (each holds a single error region).
    assert (c.mapsswe.n_segments, c.mapsswe.errors_a, c.mapsswe.errors_b) == (6, 5, 1)
    assert c.mapsswe.mean == pytest.approx(4 / 6)  # differences 1, 1, -1 (u3), 1, 1, 1
    reverse = compare_reports(b, a)
    assert reverse.mapsswe.z == pytest.approx(-c.mapsswe.z) and [u for u, *_ in reverse.worse] == [
        u for u, *_ in c.better]


def test_compare_refuses_different_utterances(systems, tmp_path, capsys):
    a, _ = systems
    other = report(tmp_path / "C", ["A B C D", "E F G"], ids=["u1", "u99"], refs=REFS[:2])
    r = run_cli("compare", str(a), str(other))
    assert_one_line_error(r, "not on the same utterances", "7 only in the first (u2, u3, u4, u5, u6, ...)",
                          "1 only in the second (u99)")
    changed_ref = report(tmp_path / "D", ["A"] * 8, refs=["Z"] + REFS[1:])
    assert main(["compare", str(a), str(changed_ref)]) == 1
    err = capsys.readouterr().err.strip()
    assert "utterance u1: the references differ" in err and len(err.splitlines()) == 1
    assert main(["compare", str(a), str(tmp_path)]) == 1
    assert "not a report folder (no utts.jsonl" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "utts.jsonl").write_text('{"id": "u1"}\n')
    assert main(["compare", str(a), str(tmp_path / "bad")]) == 1
    assert "utts.jsonl:1: missing field 'ref'" in capsys.readouterr().err
