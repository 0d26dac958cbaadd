import math
import random

import pytest

from asr.errors import AsrError
from asr.lm import BOS, EOS, UNK, discounts_for, estimate, read_arpa as load_arpa, write_arpa


def test_discounts_follow_chen_goodman():
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [9] * 7
    d1, d2, d3 = discounts_for(counts)
    y = 10 / (10 + 2 * 5)
    assert (d1, d2, d3) == pytest.approx((1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5, 3 - 4 * y * 2 / 3))


def test_hand_computed_bigram():
    model = estimate([["A", "B"], ["A", "C"], ["B"]], order=2)
    # Unigram discounts fall back to one D = n1/(n1+2n2) = 1/3 (no adjusted count of 3).
    # Continuation counts: A 1, B 2, C 1, </s> 2 (total 6); vocabulary of 5 with <unk>.
    gamma0 = 4 * (1 / 3) / 6
    p_c = (1 - 1 / 3) / 6 + gamma0 / 5
    # Bigram counts 2,1,2,1,1,1 -> one D = 4/(4+2*2) = 0.5; context A has B:1 and C:1.
    assert model.probability("C", ["A"]) == pytest.approx(0.5 / 2 + (2 * 0.5 / 2) * p_c)
    assert model.probability("ZEBRA", ["A"]) == model.probability(UNK, ["A"])
    assert model.vocab[0] == EOS and UNK in model.vocab and BOS not in model.vocab


def corpus(seed=0, n=300):
    rng = random.Random(seed)
    words = "ENTER SIX TWO FOUR ERASE RUBOUT YES NO GO STOP A B C D E".split()
    weights = [1 / (i + 1) for i in range(len(words))]
    return [rng.choices(words, weights, k=rng.randint(1, 7)) for _ in range(n)]


def reference_probability(sentences, order, discounts, word, history):
    """Interpolated modified KN straight from the definitions, by scanning the corpus."""
    padded = [[BOS] + s + [EOS] for s in sentences]
    vocab = sorted({w for s in sentences for w in s} | {EOS, UNK})

    def occurrences(g):
        n = len(g)
        return [(s, i) for s in padded for i in range(len(s) - n + 1) if tuple(s[i : i + n]) == g]

    def adjusted(g):
        occ = occurrences(g)
        if len(g) == order or g[0] == BOS:
            return len(occ)
        return len({s[i - 1] for s, i in occ if i > 0})

    def p(w, h):
        if len(h) == 0:
            followers = {w2 for s in padded for w2 in s[1:]}
        else:
            followers = {s[i + len(h)] for s, i in occurrences(h) if i + len(h) < len(s)}
        lower = 1 / len(vocab) if len(h) == 0 else p(w, h[1:])
        counts = {x: adjusted(h + (x,)) for x in followers}
        total = sum(counts.values())
        if total == 0:
            return lower
        d = discounts[len(h)]
        disc = lambda c: d[min(c, 3) - 1]  # noqa: E731
        gamma = sum(disc(c) for c in counts.values()) / total
        c = counts.get(w, 0)
        return (c - disc(c) if c else 0) / total + gamma * lower

    return p(word, tuple(history)[-(order - 1):] if order > 1 else ())


@pytest.mark.parametrize("order", [1, 2, 3])
def test_agrees_with_reference_and_sums_to_one(order):
    sentences = corpus(n=50)
    model = estimate(sentences, order)
    histories = {()} | set(model.backoff) | {("NEVER", "SEEN"), (BOS, "ZZZ")}
    rng = random.Random(1)
    for h in sorted(histories):
        h = h[-(order - 1):] if order > 1 else ()
        total = sum(model.probability(w, h) for w in model.vocab)
        assert total == pytest.approx(1.0, abs=1e-9), h
    sample = rng.sample(sorted(histories), min(12, len(histories)))
    for h in sample:
        for w in rng.sample(model.vocab, 4):
            want = reference_probability(sentences, order, model.discounts, w, h)
            assert model.probability(w, h) == pytest.approx(want, rel=1e-9), (h, w)


def read_arpa(path):
    """A plain ARPA reader: {ngram: (log10 p, log10 backoff)} and the header counts."""
    entries, header, order = {}, {}, 0
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("ngram "):
            n, count = line[6:].split("=")
            header[int(n)] = int(count)
        elif line.endswith("-grams:"):
            order = int(line[1:].split("-")[0])
        elif line and order and not line.startswith("\\"):
            parts = line.split("\t")
            words = tuple(parts[1].split())
            assert len(words) == order
            entries[words] = (float(parts[0]), float(parts[2]) if len(parts) > 2 else 0.0)
    return entries, header


def arpa_probability(entries, word, history):
    h = tuple(history)
    log_bo = 0.0
    while h + (word,) not in entries:
        log_bo += entries.get(h, (0, 0.0))[1] if h else 0.0
        h = h[1:]
    return 10 ** (log_bo + entries[h + (word,)][0])


def test_arpa_file_gives_the_same_probabilities(tmp_path):
    sentences = corpus(seed=3)
    model = estimate(sentences, 3)
    write_arpa(model, tmp_path / "lm.arpa")
    entries, header = read_arpa(tmp_path / "lm.arpa")
    for n in (1, 2, 3):
        assert header[n] == sum(1 for g in entries if len(g) == n)
    assert entries[(BOS,)][0] == -99
    for h in [(), (BOS,), (BOS, "ENTER"), ("SIX", "TWO"), ("NO", "SUCH")]:
        for w in model.vocab:
            p = arpa_probability(entries, w, h)
            assert p == pytest.approx(model.probability(w, h), rel=1e-5)
            assert math.isfinite(math.log10(p))


def test_reading_an_arpa_file_back_gives_the_estimated_model(tmp_path):
    model = estimate(corpus(seed=5), 3)
    write_arpa(model, tmp_path / "lm.arpa")
    back = load_arpa(tmp_path / "lm.arpa")
    assert back.order == 3 and sorted(back.vocab) == sorted(model.vocab)
    for h in [(), (BOS,), (BOS, "ENTER"), ("SIX", "TWO"), ("NO", "SUCH")]:
        for w in model.vocab + ["NEVER_SEEN"]:
            assert back.probability(w, h) == pytest.approx(model.probability(w, h), rel=1e-5)
    words = ["ENTER", "SIX", "NEVER_SEEN", "TWO"]
    by_hand = sum(math.log10(model.probability(w, [BOS] + words[:i])) for i, w in enumerate(words + [EOS]))
    assert back.sentence_log10(words) == pytest.approx(by_hand, rel=1e-5)
    assert back.sentence_log10([]) == pytest.approx(math.log10(model.probability(EOS, [BOS])), rel=1e-5)


def test_arpa_without_unk_and_broken_arpa_lines(tmp_path):
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-99\t<s>\n-0.3\t</s>\n-0.3\tYES\n\n\\end\\\n")
    lm = load_arpa(arpa)
    assert lm.probability("YES", [BOS]) == pytest.approx(10 ** -0.3)
    assert lm.probability("NO", [BOS]) == pytest.approx(1e-100)  # no <unk>: KenLM's -100
    arpa.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\t</s>\n-0.3 YES NO\n\\end\\\n")
    with pytest.raises(AsrError, match=r"lm.arpa:6: not an ARPA 1-gram line"):
        load_arpa(arpa)


def test_rejects_empty_text():
    with pytest.raises(ValueError):
        estimate([[], []], 2)


def test_cli_builds_from_text_and_manifest(tmp_path, capsys):
    from asr.cli import main
    from asr.manifest import Utterance, write_manifest

    (tmp_path / "a.txt").write_text("enter six two\n\nerase c q\n")
    write_manifest([Utterance("u", "x.wav", 1.0, "GO STOP", "s")], tmp_path / "m.jsonl")
    out = tmp_path / "lm.arpa"
    assert main(["lm", "build", "--order", "2", str(tmp_path / "a.txt"), "--manifest", str(tmp_path / "m.jsonl"),
                 "-o", str(out)]) == 0
    entries, header = read_arpa(out)
    assert ("ENTER", "SIX") in entries and ("GO", "STOP") in entries and ("SIX", "TWO") in entries
    assert "3 sentences" in capsys.readouterr().out
    assert main(["lm", "build", str(tmp_path / "missing.txt"), "-o", str(out)]) == 1
    assert "missing.txt: no such text file" in capsys.readouterr().err
    assert main(["lm", "build", "--order", "0", str(tmp_path / "a.txt"), "-o", str(out)]) == 1
    assert "order must be at least 1" in capsys.readouterr().err


def test_repeated_sentences_only_still_give_a_proper_model(tmp_path):
    """No n-gram seen once: the discount must stay inside (0, 1), not fall to zero."""
    model = estimate([["YES"], ["YES"]], 3)
    for h in [(), (BOS,), (BOS, "YES"), ("YES",)]:
        assert sum(model.probability(w, h) for w in model.vocab) == pytest.approx(1.0)
        assert all(model.probability(w, h) > 0 for w in model.vocab)
    write_arpa(model, tmp_path / "lm.arpa")  # every log10 is finite


def test_text_corpus_reads_gzip_and_samples_lines(tmp_path):
    import gzip

    from asr.errors import AsrError
    from asr.lm import read_text_corpus

    lines = [f"line {i} it's" for i in range(10)]
    with gzip.open(tmp_path / "t.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n")
    (tmp_path / "u.txt").write_text("more text\n")
    assert read_text_corpus([tmp_path / "t.txt.gz"]) == [["LINE", str(i), "IT'S"] for i in range(10)]
    assert read_text_corpus([tmp_path / "t.txt.gz"], every=3) == [["LINE", str(i), "IT'S"] for i in (0, 3, 6, 9)]
    assert read_text_corpus([tmp_path / "t.txt.gz", tmp_path / "u.txt"], max_lines=2, every=4) == [
        ["LINE", "0", "IT'S"], ["LINE", "4", "IT'S"]]
    assert read_text_corpus([tmp_path / "t.txt.gz", tmp_path / "u.txt"], every=5)[-1] == ["MORE", "TEXT"]  # line 11
    (tmp_path / "bad.txt.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(AsrError, match="bad.txt.gz: cannot read text"):
        read_text_corpus([tmp_path / "bad.txt.gz"])
    with pytest.raises(AsrError, match="at least 1"):
        read_text_corpus([tmp_path / "u.txt"], every=0)


def test_cli_max_lines(tmp_path, capsys):
    import gzip

    from asr.cli import main

    with gzip.open(tmp_path / "t.gz", "wt") as f:
        f.write("A B\nB C\nC D\nD E\n")
    assert main(["lm", "build", "--order", "2", "--max-lines", "2", str(tmp_path / "t.gz"), "-o",
                 str(tmp_path / "lm.arpa")]) == 0
    entries, _ = read_arpa(tmp_path / "lm.arpa")
    assert ("A", "B") in entries and ("B", "C") in entries and ("C", "D") not in entries
    assert "2 sentences" in capsys.readouterr().out


def kenlm_or_skip():
    import os

    from asr.kenlm import find_kenlm

    if find_kenlm() is None:
        if os.environ.get("CI"):
            pytest.fail("lmplz not built: .ci/run runs `asr lm install-kenlm`")
        pytest.skip("KenLM's lmplz is not built (asr lm install-kenlm)")


def test_kenlm_and_python_backends_agree_on_the_same_text(an4_prepared, tmp_path, capsys):
    """AN4's training transcripts plus a Zipf text: the same n-grams, log10 probabilities and
    backoff weights within 1e-4 from lmplz and from the Python estimator."""
    import random

    from asr.cli import main

    kenlm_or_skip()
    rng = random.Random(0)
    words = [f"W{i}" for i in range(300)]
    weights = [1 / (i + 1) for i in range(300)]
    (tmp_path / "text.txt").write_text("".join(" ".join(rng.choices(words, weights, k=rng.randint(3, 12))) + "\n"
                                               for _ in range(3000)))
    manifest = str(an4_prepared / "manifests" / "train.jsonl")
    common = ["lm", "build", str(tmp_path / "text.txt"), "--manifest", manifest, "--order", "3"]
    assert main([*common, "--backend", "kenlm", "-o", str(tmp_path / "k.arpa")]) == 0
    assert main([*common, "--backend", "python", "-o", str(tmp_path / "p.arpa")]) == 0
    assert "kenlm backend" in capsys.readouterr().out
    k, p = load_arpa(tmp_path / "k.arpa"), load_arpa(tmp_path / "p.arpa")
    assert set(k.prob) == set(p.prob) and len(k.prob) > 10000
    for g in k.prob:
        assert math.log10(k.prob[g]) == pytest.approx(math.log10(p.prob[g]), abs=1e-4), g
    for g in set(k.backoff) | set(p.backoff):  # lmplz writes a backoff of 0 (log10) where we write none
        assert math.log10(k.backoff.get(g, 1.0)) == pytest.approx(math.log10(p.backoff.get(g, 1.0)), abs=1e-4), g


def test_kenlm_pruning_and_binary_output(tmp_path):
    from asr.cli import main

    kenlm_or_skip()
    (tmp_path / "t.txt").write_text("A B C\nA B D\nA B C\nE F G\n" * 5 + "X Y Z\n")
    assert main(["lm", "build", str(tmp_path / "t.txt"), "--backend", "kenlm", "--prune", "0,1,1",
                 "--binary", str(tmp_path / "lm.bin"), "-o", str(tmp_path / "lm.arpa")]) == 0
    text = (tmp_path / "lm.arpa").read_text()
    assert "X Y Z" not in text and "A B C" in text  # the singleton trigram is pruned
    assert (tmp_path / "lm.bin").read_bytes()[:16] == b"mmap lm http://k"  # KenLM's binary header
    assert main(["lm", "build", str(tmp_path / "t.txt"), "--backend", "python", "--prune", "0,1",
                 "-o", str(tmp_path / "x.arpa")]) == 1


@pytest.mark.parametrize("backend", ["python", "kenlm"])
def test_lm_text_with_invalid_utf8_or_empty_lines(tmp_path, capsys, backend):
    from asr.cli import main

    if backend == "kenlm":
        kenlm_or_skip()
    (tmp_path / "ok.txt").write_text("A B\n\n   \nA C\n" * 5)
    assert main(["lm", "build", str(tmp_path / "ok.txt"), "--backend", backend, "--order", "2",
                 "-o", str(tmp_path / "ok.arpa")]) == 0
    assert ", 10 sentences," in capsys.readouterr().out  # the empty lines are skipped, not sentences
    (tmp_path / "bad.txt").write_bytes(b"A B\nA \xff C\nA B\n")
    assert main(["lm", "build", str(tmp_path / "bad.txt"), "--backend", backend, "-o", str(tmp_path / "bad.arpa")]) == 1
    assert f"{tmp_path / 'bad.txt'}:2: not UTF-8 (invalid start byte at byte 2)" in capsys.readouterr().err
    assert not (tmp_path / "bad.arpa").exists()


def test_kenlm_backend_missing_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from asr.cli import main

    monkeypatch.setenv("ASR_KENLM_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "t.txt").write_text("A B\n")
    assert main(["lm", "build", str(tmp_path / "t.txt"), "--backend", "kenlm", "-o", str(tmp_path / "l.arpa")]) == 1
    assert "the kenlm backend needs lmplz and build_binary: run `asr lm install-kenlm`" in capsys.readouterr().err
