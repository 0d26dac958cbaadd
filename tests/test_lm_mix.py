"""Interpolated n-gram LMs (asr lm mix), their weights fitted on held-out text, and spelled word
lists (asr lm spell)."""

import gzip
import math
import random

import pytest

from asr.errors import AsrError
from asr.lm import (BOS, EOS, UNK, best_mixture_weights, component_probability, estimate, interpolate, perplexity,
                    read_arpa, spelled_words, write_arpa)

COMMANDS = "ENTER SIX TWO FOUR ERASE RUBOUT YES NO GO STOP A B C".split()
LETTERS = list("ABCDEFGHIJ")


def text(words, seed, n, longest=7):
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(words))]
    return [rng.choices(words, weights, k=rng.randint(1, longest)) for _ in range(n)]


@pytest.fixture(scope="module")
def two_models():
    # Different vocabularies (A B C in both), orders 2 and 3.
    return estimate(text(COMMANDS, 0, 200), 2), estimate(text(LETTERS, 1, 300), 3)


def histories(model):
    return sorted({(), (BOS,), ("NEVER", "SEEN"), (BOS, "ZZZ"), *model.backoff, *(g[:-1] for g in model.prob)})


def exact_mixture(models, weights, word, history):
    return sum(lam * component_probability(m, word, history) for m, lam in zip(models, weights))


def test_mixture_sums_to_one_and_lists_exact_mixed_probabilities(two_models):
    weights = [0.7, 0.3]
    mixed = interpolate(two_models, weights)
    assert mixed.order == 3
    assert set(mixed.vocab) == set(two_models[0].vocab) | set(two_models[1].vocab)
    for h in histories(mixed):
        total = sum(mixed.probability(w, h) for w in mixed.vocab)
        assert total == pytest.approx(1.0, abs=1e-9), h
    listed = [g for g in mixed.prob if len(g) > 1]
    assert len(listed) > 500
    for g in listed:
        assert mixed.prob[g] == pytest.approx(exact_mixture(two_models, weights, g[-1], g[:-1]), rel=1e-12), g
    # a word only one model knows gets its share from that model alone, not the other's <unk>
    p = mixed.probability("RUBOUT", [BOS])
    assert p == pytest.approx(0.7 * two_models[0].probability("RUBOUT", [BOS]))
    assert mixed.probability("ZEBRA", ["A"]) == mixed.probability(UNK, ["A"]) > 0


def bayes_weights(models, priors, h):
    start = 1 if h and h[0] == BOS else 0
    post = []
    for m, lam in zip(models, priors):
        for i in range(start, len(h)):
            lam *= component_probability(m, h[i], h[:i])
        post.append(lam)
    return [p / sum(post) for p in post] if sum(post) > 0 else list(priors)


def test_bayes_mixture_weights_follow_the_history(two_models):
    priors = [0.7, 0.3]
    mixed = interpolate(two_models, priors, bayes=True)
    for h in histories(mixed):
        assert sum(mixed.probability(w, h) for w in mixed.vocab) == pytest.approx(1.0, abs=1e-9), h
    for g in (g for g in mixed.prob if len(g) > 1):
        h = g[:-1]
        want = sum(lam * component_probability(m, g[-1], h) for m, lam in zip(two_models, bayes_weights(two_models, priors, h)))
        assert mixed.prob[g] == pytest.approx(want, rel=1e-12), g
    commands, letters = two_models
    # <s> alone tells nothing: the priors; a history only the first model can produce leaves the
    # second out entirely
    assert mixed.prob[(BOS, "RUBOUT")] == pytest.approx(0.7 * commands.probability("RUBOUT", [BOS]))
    after_rubout = [g for g in mixed.prob if len(g) == 2 and g[0] == "RUBOUT" and g[1] in letters.vocab]
    assert after_rubout
    for g in after_rubout:
        assert mixed.prob[g] == pytest.approx(commands.probability(g[1], ["RUBOUT"])), g
    # a history of letters the second model likes moves weight to it, beyond its prior
    h = (BOS, "D")  # D: a letter, not a command
    assert bayes_weights(two_models, priors, h)[1] > 0.9
    static = interpolate(two_models, priors)
    after = [g for g in mixed.prob if len(g) == 3 and g[:2] == h]
    only_letters = [g for g in after if g[2] in "DEFGHIJ"]  # what the commands' model never says
    assert only_letters and all(mixed.prob[g] > static.prob[g] for g in only_letters)


def test_a_model_mixed_with_itself_is_unchanged():
    model = estimate(text(COMMANDS, 2, 150), 3)
    mixed = interpolate([model, model], [0.4, 0.6])
    assert set(mixed.prob) == set(model.prob)
    for h in histories(model):
        for w in model.vocab:
            assert mixed.probability(w, h) == pytest.approx(model.probability(w, h), rel=1e-9), (h, w)


@pytest.mark.parametrize("bayes", [False, True])
def test_mixture_written_as_arpa_reads_back(two_models, tmp_path, bayes):
    mixed = interpolate(two_models, [0.5, 0.5], bayes=bayes)
    write_arpa(mixed, tmp_path / "mix.arpa")
    back = read_arpa(tmp_path / "mix.arpa")
    assert back.order == 3 and set(back.prob) == set(mixed.prob)
    for h in histories(mixed)[:40]:
        for w in mixed.vocab:
            assert back.probability(w, h) == pytest.approx(mixed.probability(w, h), rel=1e-5), (h, w)


def test_weights_must_be_positive_and_sum_to_one(two_models):
    for weights in ([0.5], [0.6, 0.6], [1.0, 0.0], [1.2, -0.2]):
        with pytest.raises(ValueError):
            interpolate(two_models, weights)


def exact_log_likelihood(models, weights, sentences):
    total = 0.0
    for words in sentences:
        history = [BOS]
        for w in [*words, EOS]:
            total += math.log(exact_mixture(models, weights, w, history))
            history.append(w)
    return total


def test_fitted_weights_maximize_the_held_out_likelihood(two_models):
    held_out = text(LETTERS, 7, 40) + text(COMMANDS, 8, 10)  # mostly the letters' domain
    weights = best_mixture_weights(two_models, held_out)
    assert sum(weights) == pytest.approx(1.0) and weights[1] > 0.5
    best = exact_log_likelihood(two_models, weights, held_out)
    for w in (0.1, 0.3, 0.5, 0.7, 0.9, weights[1] - 0.02, weights[1] + 0.02):
        assert exact_log_likelihood(two_models, [1 - w, w], held_out) <= best + 1e-9, w
    # held-out text of the first model's domain only moves the weight the other way
    assert best_mixture_weights(two_models, text(COMMANDS, 9, 50))[0] > 0.9
    with pytest.raises(ValueError):
        best_mixture_weights(two_models, [])


def test_perplexity_matches_sentence_scores():
    model = estimate(text(COMMANDS, 3, 100), 2)
    sents = text(COMMANDS, 4, 5)
    want = 10 ** (-sum(model.sentence_log10(s) for s in sents) / sum(len(s) + 1 for s in sents))
    assert perplexity(model, sents) == pytest.approx(want)


def test_spelled_words_from_census_lists_and_plain_lists(tmp_path):
    (tmp_path / "dist.all.last").write_text("SMITH          1.006  1.006      1\nO'BRIEN 0.1 0.2 2\n"
                                           "JOHNSON        0.810  1.816      2\n\n")
    with gzip.open(tmp_path / "words.gz", "wt") as f:
        f.write("linda\nsmith\nR2D2\nAbe\n")
    lines = spelled_words([tmp_path / "dist.all.last", tmp_path / "words.gz"])
    assert lines == ["S M I T H", "J O H N S O N", "L I N D A", "A B E"]
    # by frequency: each line round(f / least positive f) times, at least once, summed per word
    (tmp_path / "first.txt").write_text("LINDA 1.036 1.0 3\nMARY 2.630 2.6 1\nZYTA 0.000 99.9 5000\nLINDA 0.002 9 9\n")
    weighted = spelled_words([tmp_path / "first.txt", tmp_path / "words.gz"], by_frequency=True)
    assert weighted.count("L I N D A") == 518 + 1 + 1 and weighted.count("M A R Y") == 1315
    assert weighted.count("Z Y T A") == 1 and weighted.count("A B E") == 1 and len(weighted) == 1315 + 520 + 1 + 2
    assert weighted[0] == "L I N D A" and weighted[-1] == "A B E"
    with pytest.raises(AsrError, match="missing.txt: no such word list"):
        spelled_words([tmp_path / "missing.txt"])
    for bad in ("nan", "inf", "-1"):
        (tmp_path / "freq.txt").write_text(f"ANNA 0.5 0.5 1\nBOB {bad} 0.9 2\n")
        with pytest.raises(AsrError, match=f"freq.txt:2: frequency '{bad}' is not a number >= 0"):
            spelled_words([tmp_path / "freq.txt"], by_frequency=True)
    (tmp_path / "freq.txt").write_text("ANNA 1e9 1 1\nBOB 0.001 1 2\n")
    with pytest.raises(AsrError, match="the frequencies ask for 1,000,000,000,001 lines"):
        spelled_words([tmp_path / "freq.txt"], by_frequency=True)
    (tmp_path / "bad.txt").write_bytes(b"ANNA\n\xff\xfe\n")
    with pytest.raises(AsrError, match=r"bad.txt:2: not UTF-8"):
        spelled_words([tmp_path / "bad.txt"])
    (tmp_path / "digits.txt").write_text("123\n")
    with pytest.raises(AsrError, match="no words of letters"):
        spelled_words([tmp_path / "digits.txt"])


def test_cli_spell_build_and_mix(tmp_path, capsys):
    from asr.cli import main
    from asr.manifest import Utterance, write_manifest

    (tmp_path / "names.txt").write_text("LINDA\nMARY\nDONALD\nMARK\nMARGARET\nMARYANN\n")
    assert main(["lm", "spell", str(tmp_path / "names.txt"), "-o", str(tmp_path / "spelled.txt")]) == 0
    assert "6 words spelled" in capsys.readouterr().out
    assert (tmp_path / "spelled.txt").read_text().splitlines()[0] == "L I N D A"
    (tmp_path / "commands.txt").write_text("ENTER SIX TWO\nERASE M A R Y\nGO\n")
    for name, order in (("spelled", 4), ("commands", 2)):
        assert main(["lm", "build", "--backend", "python", "--order", str(order), str(tmp_path / f"{name}.txt"),
                     "-o", str(tmp_path / f"{name}.arpa")]) == 0
    capsys.readouterr()
    arpas = [str(tmp_path / "commands.arpa"), str(tmp_path / "spelled.arpa")]
    assert main(["lm", "mix", *arpas, "--weights", "0.75,0.25", "-o", str(tmp_path / "mix.arpa")]) == 0
    assert "order 4, weights 0.7500, 0.2500" in capsys.readouterr().out
    mixed = read_arpa(tmp_path / "mix.arpa")
    assert mixed.probability("A", ["L", "I", "N", "D"]) > read_arpa(arpas[0]).probability("A", ["L", "I", "N", "D"])
    write_manifest([Utterance("u", "x.wav", 1.0, "D O N A L D", "s"), Utterance("v", "y.wav", 1.0, "L I N D A", "s"),
                    Utterance("w", "z.wav", 1.0, "ENTER SIX", "s")], tmp_path / "dev.jsonl")
    assert main(["lm", "mix", *arpas, "--fit", str(tmp_path / "dev.jsonl"), "-o", str(tmp_path / "fit.arpa")]) == 0
    out = capsys.readouterr().out
    assert main(["lm", "mix", *arpas, "--fit", str(tmp_path / "dev.jsonl"), "--bayes", "-o", str(tmp_path / "b.arpa")]) == 0
    bayes_out = capsys.readouterr().out
    assert "prior weights" in bayes_out and bayes_out.split("prior weights")[1].split(";")[0] in out
    ppl = [float(o.split("-> mixed ")[1].split(",")[0]) for o in (out, bayes_out)]
    assert ppl[1] < ppl[0]  # names and commands are different sentences: the history tells them apart
    assert "perplexity on" in out and "-> mixed" in out
    fitted = [float(w) for w in out.split("weights ")[1].split(";")[0].split(",")]
    assert 0.5 < fitted[1] < 1  # the spelled names carry most of the dev text
    for bad, message in ((["--weights", "0.5,0.6"], "positive and sum to 1"), (["--weights", "1"], "2 models, 1 weights"),
                         ([], "either --weights or --fit"),
                         (["--weights", "1", "--fit", "x"], "either --weights or --fit")):
        assert main(["lm", "mix", *arpas, *bad, "-o", str(tmp_path / "x.arpa")]) == 1
        assert message in capsys.readouterr().err
    assert main(["lm", "mix", arpas[0], "--weights", "1", "-o", str(tmp_path / "x.arpa")]) == 1
    assert "at least two" in capsys.readouterr().err
    assert main(["lm", "mix", arpas[0], str(tmp_path / "none.arpa"), "--weights", "0.5,0.5",
                 "-o", str(tmp_path / "x.arpa")]) == 1
    assert "none.arpa" in capsys.readouterr().err


def census_folder(path, names=("SMITH", "JOHNSON")):
    path.mkdir(parents=True, exist_ok=True)
    for i, file in enumerate(("dist.all.last", "dist.female.first", "dist.male.first")):
        (path / file).write_text("".join(f"{n}{'X' * i:<14} 1.006  1.006      {k}\n" for k, n in enumerate(names, 1)))
    return path


def test_census_name_lists_from_a_folder_the_environment_or_census_gov(tmp_path, monkeypatch, capsys):
    from asr.cli import main
    from asr.corpora import census_names

    source = census_folder(tmp_path / "src")
    got = census_names.census_name_lists(source, tmp_path / "out")
    assert [p.name for p in got] == ["dist.all.last", "dist.female.first", "dist.male.first"]
    assert got[1].read_text() == (source / "dist.female.first").read_text()
    assert spelled_words(got) == ["S M I T H", "J O H N S O N", "S M I T H X", "J O H N S O N X",
                                  "S M I T H X X", "J O H N S O N X X"]
    monkeypatch.setenv("ASR_CENSUS_NAMES", str(source))
    assert census_names.census_name_lists(None, tmp_path / "env")[0].is_file()
    monkeypatch.delenv("ASR_CENSUS_NAMES")
    fetched = []

    def fake_download(url, dest, **kwargs):
        fetched.append(url)
        census_folder(tmp_path / "web")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((tmp_path / "web" / dest.name).read_bytes())
        return dest

    monkeypatch.setattr(census_names, "download", fake_download)
    census_names.census_name_lists(None, tmp_path / "dl")
    assert fetched == [census_names.URL + name for name in census_names.FILES]
    census_names.census_name_lists(None, tmp_path / "dl")  # there already: nothing fetched again
    assert len(fetched) == 3

    # a bad file is not kept: a later call with a good source (or a new download) replaces it
    bad_web = []

    def bad_download(url, dest, **kwargs):
        bad_web.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("<html>Not Found</html>\n")
        return dest

    monkeypatch.setattr(census_names, "download", bad_download)
    with pytest.raises(AsrError, match=r"dist.all.last:1: not a census name list line"):
        census_names.census_name_lists(None, tmp_path / "bad_dl")
    assert not (tmp_path / "bad_dl" / "dist.all.last").exists()
    (tmp_path / "out" / "dist.all.last").write_text("SOMETHING ELSE\n")  # a source given: copied again
    census_names.census_name_lists(source, tmp_path / "out")
    assert (tmp_path / "out" / "dist.all.last").read_text() == (source / "dist.all.last").read_text()

    (source / "dist.male.first").unlink()
    assert main(["lm", "census-names", "--source", str(source), "--out", str(tmp_path / "x")]) == 1
    assert "no dist.male.first (the US Census 1990 name lists)" in capsys.readouterr().err
    bad = census_folder(tmp_path / "bad")
    (bad / "dist.all.last").write_text("<html>Not Found</html>\n")
    assert main(["lm", "census-names", "--source", str(bad), "--out", str(tmp_path / "y")]) == 1
    assert "dist.all.last:1: not a census name list line" in capsys.readouterr().err
    assert main(["lm", "census-names", "--source", str(tmp_path / "none"), "--out", str(tmp_path / "z")]) == 1
    assert "none: no such folder" in capsys.readouterr().err


def test_kenlm_reads_a_mixture(two_models, tmp_path):
    """KenLM's build_binary (as flashlight's decoder reads ARPA) takes the written mixture: every
    n-gram's context is listed."""
    import subprocess

    from asr.kenlm import find_kenlm

    tools = find_kenlm()
    if tools is None:
        if __import__("os").environ.get("CI"):
            pytest.fail("KenLM not built: .ci/run runs `asr lm install-kenlm`")
        pytest.skip("KenLM's build_binary is not built (asr lm install-kenlm)")
    write_arpa(interpolate(two_models, [0.6, 0.4], bayes=True), tmp_path / "mix.arpa")
    r = subprocess.run([str(tools["build_binary"]), str(tmp_path / "mix.arpa"), str(tmp_path / "mix.bin")],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-1000:]
    assert (tmp_path / "mix.bin").stat().st_size > 0


def test_a_zero_probability_is_an_error_not_a_log_of_zero(two_models):
    commands, letters = two_models
    broken = estimate(text(COMMANDS, 0, 200), 2)
    broken.prob[("ENTER",)] = 0.0  # as read from an ARPA line of -inf
    with pytest.raises(ValueError, match="'ENTER' probability 0"):
        interpolate([broken, letters], [0.5, 0.5])
