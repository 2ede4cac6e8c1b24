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
