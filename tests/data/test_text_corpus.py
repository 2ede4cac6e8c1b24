"""The stdlib-docstring sentence corpus: sentence filter, determinism, disjoint held-out split."""

from __future__ import annotations

import pytest

from slimkit.data.text_corpus import package_sentences, sentences_of, split_sentences, stdlib_sentences


def test_sentences_of_keeps_prose_and_drops_code_and_fragments():
    text = ("Return the sum of the values in the list. Short one.\n\n"
            "    >>> sum([1, 2])\n    3\n\nThe result is an integer when every value is an integer.")
    assert sentences_of(text) == ["Return the sum of the values in the list.",
                                  "The result is an integer when every value is an integer."]


def test_stdlib_sentences_are_deterministic_sorted_and_unique():
    a = stdlib_sentences(("json", "textwrap"))
    assert a == stdlib_sentences(("json", "textwrap"))
    assert len(a) > 10 and a == sorted(a)
    assert len({s.casefold() for s in a}) == len(a)


def test_package_sentences_read_objects_defined_in_private_submodules():
    own = stdlib_sentences(("numpy.linalg",))  # stdlib rule: only objects whose __module__ is numpy.linalg itself
    wide = package_sentences(("numpy.linalg", "no_such_package_xyz"))  # a missing package is skipped
    assert wide == package_sentences(("numpy.linalg",)) == sorted(wide)
    assert len(wide) > len(own) + 20  # solve, inv, eig... live in numpy.linalg._linalg
    assert any("matrix" in s for s in wide)


def test_split_is_disjoint_deterministic_and_stable_under_growth():
    sentences = [f"Sentence number {i} says something about the library." for i in range(1000)]
    split = split_sentences(sentences, heldout=0.2)
    assert not set(split["train"]) & set(split["heldout"])
    assert sorted(split["train"] + split["heldout"]) == sorted(sentences)
    assert 150 < len(split["heldout"]) < 250
    grown = split_sentences(sentences + ["Another sentence that was added later on."], heldout=0.2)
    assert set(split["heldout"]) <= set(grown["heldout"])
    with pytest.raises(ValueError, match="heldout"):
        split_sentences(sentences, heldout=1.0)


def test_reference_sentences_are_prose_from_the_language_reference():
    pytest.importorskip("pydoc_data.topics")
    from slimkit.data.text_corpus import reference_sentences

    ref = reference_sentences()
    assert len(ref) > 200 and ref == sorted(ref)
    assert len({s.casefold() for s in ref}) == len(ref)
    assert any("statement" in s for s in ref)


def _fake_sources(monkeypatch):
    import slimkit.data.text_corpus as tc

    stdlib = [f"The standard library sentence number {i} is here." for i in range(400)]
    base = [f"A package docstring sentence number {i} is here." for i in range(400)]
    held = tc.split_sentences(stdlib)["heldout"]
    # wide text repeats one held-out sentence in other case, and one base sentence: neither may leak or double
    wide = [f"A reference topic sentence number {i} is here." for i in range(400)] + [held[0].upper(), base[0]]
    monkeypatch.setattr(tc, "stdlib_sentences", lambda: stdlib)
    monkeypatch.setattr(tc, "package_sentences", lambda: base)
    monkeypatch.setattr(tc, "wide_sentences", lambda: wide)
    return tc, held


def test_corpora_share_the_heldout_split_and_grow_train_without_leaks(monkeypatch):
    tc, held = _fake_sources(monkeypatch)
    splits = {c: tc.corpus_splits(corpus=c) for c in tc.CORPORA}
    assert all(s["heldout"] == held for s in splits.values())
    seen = {c: set(s["train"]) | set(s["val"]) for c, s in splits.items()}
    assert seen["stdlib"] < seen["base"] < seen["wide"]
    held_keys = {s.casefold() for s in held}
    for s in splits.values():
        assert not set(s["train"]) & set(s["val"])
        assert not {x.casefold() for x in s["train"] + s["val"]} & held_keys
    assert tc.corpus_splits(packages=False) == splits["stdlib"] and tc.corpus_splits() == splits["base"]
    with pytest.raises(ValueError, match="corpus must be one of"):
        tc.corpus_splits(corpus="web")
