"""The report folder: files, contents, and input problems reported instead of crashing."""

import json
import re

import pytest

from asr.cli import main
from asr.report import write_report
from tests.test_cli import assert_one_line_error, run_cli

REF = "ENTER SIX TWO FOUR (spk1-u1)\nGO (spk1-u2)\n (spk2-u3)\nYES NO (spk2-u4)\n"
HYP = "enter six to four (spk1-u1)\nNO (spk2-u3)\nYES (spk2-u4)\nEXTRA (spk3-u9)\n"


@pytest.fixture
def scored(tmp_path, capsys):
    (tmp_path / "ref.trn").write_text(REF)
    (tmp_path / "hyp.trn").write_text(HYP)
    out = tmp_path / "report"
    assert main(["score", "--ref", str(tmp_path / "ref.trn"), "--hyp", str(tmp_path / "hyp.trn"),
                 "--out", str(out)]) == 0
    return out, capsys.readouterr().out


def test_report_files_and_problems(scored):
    out, printed = scored
    for name in ("ref.trn", "hyp.trn", "errs.txt", "summary.txt", "summary.json", "summary.md", "report.html",
                 "utts.jsonl", "wer_vs_length.png", "error_types.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "wer_vs_length.png").read_bytes()[:4] == b"\x89PNG"
    s = json.loads((out / "summary.json").read_text())
    # u1: TWO->TO; u2 missing: GO deleted; u3: empty reference, NO inserted; u4: NO deleted.
    assert (s["n_sentences"], s["n_words"], s["correct"], s["substitutions"], s["deletions"], s["insertions"]) == (
        4, 7, 4, 1, 2, 1)
    assert s["wer"] == pytest.approx(100 * 4 / 7)
    assert s["missing_hypotheses"] == ["u2"] and s["unknown_hypotheses"] == ["u9"]
    assert s["empty_references"] == ["u3"]
    assert s["speakers"]["spk2"]["insertions"] == 1 and s["speakers"]["spk1"]["deletions"] == 1
    assert s["wer_ci95"][0] <= s["wer"] <= s["wer_ci95"][1]
    assert s["normalization"]["upper_case"] and "sclite" in s["alignment"]
    assert s["top_deletions"] == [{"word": "GO", "count": 1}, {"word": "NO", "count": 1}]
    assert s["top_substitutions"] == [{"ref": "TWO", "hyp": "TO", "count": 1}]
    # One error each: the undefined WER (empty reference) first, then by WER.
    assert [w["id"] for w in s["worst_utterances"]] == ["u3", "u2", "u4", "u1"]
    utts = [json.loads(line) for line in (out / "utts.jsonl").read_text().splitlines()]
    assert [u["id"] for u in utts] == ["u1", "u2", "u3", "u4"]
    assert utts[1]["missing"] and utts[1]["ops"] == "D" and utts[2]["wer"] is None
    # The missing hypothesis is an empty line in hyp.trn, so sclite scores it the same way.
    assert "(spk1-u2)" in (out / "hyp.trn").read_text().splitlines()[1]
    assert "note: 1 utterance(s) had no hypothesis and were scored as empty (all words deleted): u2" in printed
    assert "note: 1 hypothesis id(s) have no reference and were not scored: u9" in printed
    assert (out / "summary.txt").read_text().splitlines()[-2].startswith("%WER 57.14 [ 4 / 7")


def test_html_is_self_contained(scored):
    out, _ = scored
    html = (out / "report.html").read_text()
    assert not re.search(r"(?:src|href)=['\"](?!data:|#)", html)  # nothing to fetch
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert html.count("data:image/png;base64,") == 2
    links = re.findall(r"href='#([^']+)'", html)
    assert links and all(f"id='{target}'" in html for target in links)  # worst utterances link to their entry
    assert "Input problems" in html and "u9" in html and "empty reference" in html
    assert html.count("<th>REF</th>") == 4 + 4  # every utterance, and the worst ones again
    assert "<td class='S'>TWO</td>" in html and "<td class='S'>TO</td>" in html
    assert "95% CI" in html and "NFKC" in html and "Speakers" in html
    md = (out / "summary.md").read_text()
    assert "## Speakers" in md and "| TWO → TO | 1 |" in md and "![WER against utterance length]" in md


def test_all_references_empty(tmp_path, capsys):
    (tmp_path / "ref.trn").write_text("(s-u1)\n(s-u2)\n")
    (tmp_path / "hyp.trn").write_text("A (s-u1)\n(s-u2)\n")
    assert main(["score", "--ref", str(tmp_path / "ref.trn"), "--hyp", str(tmp_path / "hyp.trn"),
                 "--out", str(tmp_path / "r")]) == 0
    assert "%WER undefined" in capsys.readouterr().out
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["wer"] is None and s["wer_ci95"] is None and s["insertions"] == 1
    assert "undefined" in (tmp_path / "r" / "report.html").read_text()


def test_score_against_a_manifest(tmp_path, capsys):
    rec = {"id": "a1", "audio": "x.wav", "duration": 1.0, "text": "Hello World", "speaker": "s-1"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec) + "\n")
    (tmp_path / "hyp.trn").write_text("HELLO WORD (s_1-a1)\n")
    assert main(["score", "--ref", str(tmp_path / "m.jsonl"), "--hyp", str(tmp_path / "hyp.trn"),
                 "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "ref.trn").read_text() == "HELLO WORLD (s_1-a1)\n"  # '-' in a speaker: '_'
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["substitutions"] == 1


def test_bad_trn_files(tmp_path, capsys):
    def score_error(ref_text):
        (tmp_path / "ref.trn").write_text(ref_text)
        assert main(["score", "--ref", str(tmp_path / "ref.trn"), "--hyp", str(tmp_path / "hyp.trn"),
                     "--out", str(tmp_path / "r")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        return err

    (tmp_path / "hyp.trn").write_text("A B (s-u1)\n")
    assert score_error("A B (s-u1)\nno id here\n") == (
        f"asr: error: {tmp_path / 'ref.trn'}:2: expected 'TEXT (speaker-utterance)'")
    assert "ref.trn:2: duplicate utterance id 'u1'" in score_error("A (s-u1)\nB (s-u1)\n")
    assert "ref.trn: trn file holds no utterances" in score_error(";; only a comment\n")
    r = run_cli("score", "--ref", str(tmp_path / "none.trn"), "--hyp", str(tmp_path / "hyp.trn"), "--out",
                str(tmp_path / "r"))
    assert_one_line_error(r, "none.trn", "no such trn file")
    assert not (tmp_path / "r").exists()


def test_write_report_keeps_the_old_files(tmp_path):
    tmp_path = tmp_path / "report"
    s = write_report(tmp_path, ids=["u1", "u2"], speakers=["spk", "spk"], refs=["A B", "C"], hyps=["A", "C"],
                     title="test", extra={"decode": "greedy"})
    assert (tmp_path / "ref.trn").read_text() == "A B (spk-u1)\nC (spk-u2)\n"
    assert (tmp_path / "hyp.trn").read_text() == "A (spk-u1)\nC (spk-u2)\n"
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["wer"] == pytest.approx(100 / 3) and data["deletions"] == 1 and data["decode"] == "greedy"
    summary = (tmp_path / "summary.txt").read_text()
    assert "%WER 33.33 [ 1 / 3, 0 ins, 1 del, 0 sub ]" in summary and "| Sum/Avg" in summary
    assert "id: u1\nScores: (#C #S #D #I) 1 0 1 0" in (tmp_path / "errs.txt").read_text()
    assert s.summary.sentence_errors == 1 and s.unknown == []


def test_error_type_plot_stays_readable_with_many_speakers():
    from asr import plots
    from asr.report import build_report

    n = 100
    report = build_report([f"u{i}" for i in range(n)], [f"s{i}" for i in range(n)], ["A B"] * n,
                          ["A" if i % 2 else "A C" for i in range(n)])
    png = plots.error_types(report.summary, report.speakers)
    height = int.from_bytes(png[20:24], "big")  # PNG IHDR
    assert png[:4] == b"\x89PNG" and height < 100 * (1.2 + 0.28 * (plots.MAX_SPEAKER_BARS + 2))


def write_small(out, hyp="A"):
    return write_report(out, ids=["u1"], speakers=["spk"], refs=["A B"], hyps=[hyp], title=f"hyp {hyp}")


def test_a_second_writer_of_a_report_folder_stops_with_a_clear_error(tmp_path):
    from tests.conftest import lock_held_elsewhere

    out = tmp_path / "r"
    with lock_held_elsewhere("report", out) as pid:
        with pytest.raises(Exception, match=rf"r: another asr process \(pid {pid}\) is writing this report"):
            write_small(out)
        assert not out.exists()
    write_small(out)
    assert json.loads((out / "summary.json").read_text())["title"] == "hyp A"


def test_a_report_replaces_an_earlier_one_whole_and_a_failed_write_leaves_it(tmp_path, monkeypatch):
    out = tmp_path / "r"
    write_small(out, "A")
    (out / "wer_vs_length.png").unlink()  # an earlier, older report with fewer files
    write_small(out, "A B")
    assert json.loads((out / "summary.json").read_text())["wer"] == 0
    assert (out / "hyp.trn").read_text() == "A B (spk-u1)\n" and (out / "wer_vs_length.png").is_file()
    import asr.html_report

    def crash(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(asr.html_report, "render_html", crash)
    with pytest.raises(RuntimeError):
        write_small(out, "B")
    assert (out / "hyp.trn").read_text() == "A B (spk-u1)\n"  # the old report, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", "r"]  # no temporary folder left
    (tmp_path / ".r.k1ll3d00.tmp").mkdir()  # as a writer killed with SIGKILL leaves it
    (tmp_path / ".r.k1ll3d00.tmp" / "ref.trn").write_text("half")
    (tmp_path / ".r.v2.abcd1234.tmp").mkdir()  # another report's (r.v2) folder in progress: not ours
    monkeypatch.undo()
    write_small(out, "B")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", ".r.v2.abcd1234.tmp", "r"]


def test_a_writer_killed_between_its_renames_leaves_the_old_report_to_put_back(tmp_path):
    out = tmp_path / "r"
    write_small(out, "A")
    old = tmp_path / ".r.zz11yy22.old"
    old.mkdir()
    out.rename(old / "r")  # the first rename done, the second never happened
    write_small(tmp_path / "other", "C")  # another folder's writer leaves it alone
    assert (old / "r" / "summary.json").is_file()
    import asr.report

    asr.report.remove_stale_folders(out)  # what the next writer of r does under its lock
    assert (out / "hyp.trn").read_text() == "A (spk-u1)\n" and not old.exists()


def test_a_folder_with_other_files_is_not_replaced(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="holds files that are not a report's \\(notes.txt\\)"):
        write_small(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
