"""Real English sentences available offline: the docstrings of Python's standard library and of installed packages.

:func:`stdlib_sentences` walks a fixed list of stdlib modules, takes ``inspect.getdoc`` of each module and of its
public classes and functions, splits the text into sentences, keeps those of 5 to 40 words made mostly of letters,
drops duplicates (case-folded) and sorts them. :func:`package_sentences` does the same for the scientific packages
slimkit depends on (numpy, scipy, torch: :data:`PACKAGE_MODULES`), whose public objects are mostly defined in
private submodules and often builtins. :func:`wide_sentences` adds more text for distillation (``corpus="wide"``):
the Python language reference shipped with the interpreter (``pydoc_data.topics``) and the docstrings of the packages
torch and the ``minilm`` extra bring along (:data:`WIDE_MODULES`: sympy, networkx, mpmath, matplotlib, transformers,
more of torch). :func:`split_sentences` then puts each sentence in ``train`` or ``heldout``
by a hash of its text (blake2b), so the split is deterministic, disjoint, and does not move when the module list
grows. The text depends on the Python and package versions (docstrings change between releases).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import warnings

STDLIB_MODULES = (
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "calendar", "cmd", "codecs", "collections",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum",
    "fractions", "ftplib", "functools", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html", "http.client",
    "imaplib", "inspect", "io", "ipaddress", "itertools", "json", "logging", "mailbox", "math", "mimetypes",
    "multiprocessing", "netrc", "numbers", "operator", "optparse", "os", "pathlib", "pickle", "pkgutil", "platform",
    "plistlib", "poplib", "pprint", "queue", "random", "re", "sched", "secrets", "selectors", "shelve", "shlex",
    "shutil", "signal", "smtplib", "socket", "sqlite3", "ssl", "statistics", "string", "struct", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "time", "timeit", "tokenize", "trace", "traceback", "typing",
    "unittest", "urllib.parse", "urllib.request", "uuid", "warnings", "weakref", "xml.dom.minidom", "zipfile",
    "zlib",
)

PACKAGE_MODULES = (
    "numpy", "numpy.fft", "numpy.linalg", "numpy.ma", "numpy.polynomial", "numpy.random", "scipy.linalg",
    "scipy.optimize", "scipy.signal", "scipy.sparse", "scipy.stats", "torch", "torch.autograd", "torch.distributions",
    "torch.fx", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data",
)

WIDE_MODULES = (
    "sympy", "sympy.core", "sympy.matrices", "sympy.polys", "sympy.sets", "sympy.stats", "networkx",
    "networkx.algorithms", "mpmath", "matplotlib", "matplotlib.pyplot", "matplotlib.axes", "matplotlib.figure",
    "transformers.modeling_utils", "transformers.trainer", "transformers.training_args",
    "transformers.tokenization_utils_base", "transformers.configuration_utils", "transformers.generation.utils",
    "torch.nn.modules", "torch.linalg", "torch.sparse", "torch.special", "torch.onnx", "torch.export",
    "torch.distributed", "torch.ao.quantization", "torch.nn.utils", "torch.amp", "torch.func", "torch.profiler",
)
CORPORA = ("stdlib", "base", "wide")

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def sentences_of(text: str, *, min_words: int = 5, max_words: int = 40) -> list[str]:
    """Sentences of ``text``: paragraphs joined into lines, split after ``.!?`` before a capital, filtered to
    ``min_words``..``max_words`` words, at least 70% letters and spaces, ending in ``.`` (no code, no lists)."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        if any(line.startswith((" ", ">>>", "-", "*")) for line in paragraph.splitlines()):
            continue  # code, doctests, bullet lists
        flat = " ".join(paragraph.split())
        for sentence in _SPLIT.split(flat):
            words = sentence.split()
            letters = sum(c.isalpha() or c == " " for c in sentence)
            if (min_words <= len(words) <= max_words and sentence.endswith(".") and sentence[0].isupper()
                    and letters >= 0.7 * len(sentence)):
                out.append(sentence)
    return out


def _docs(module_name: str, *, package: bool = False) -> list[str]:
    """Docstrings of a module and of its public classes (with their methods) and functions: those defined in the
    module itself, or with ``package`` anywhere in its top-level package, builtins and properties included."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # a stdlib module this build lacks (ssl, sqlite3), a package not installed
        return []
    top = module.__name__.split(".")[0]

    def own(obj: object) -> bool:
        where = getattr(obj, "__module__", None)
        if not package:
            return where == module.__name__
        return isinstance(where, str) and (where == top or where.startswith(top + "."))

    def documented(obj: object) -> bool:
        return inspect.isclass(obj) or inspect.isfunction(obj) or (package and callable(obj))

    docs = [inspect.getdoc(module) or ""]
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not own(obj) or not documented(obj):
            continue
        docs.append(inspect.getdoc(obj) or "")
        if inspect.isclass(obj):
            docs += [inspect.getdoc(m) or "" for n, m in sorted(vars(obj).items())
                     if not n.startswith("_") and (inspect.isfunction(m) or (package and isinstance(m, property)))]
    return docs


def _sentences(modules: tuple[str, ...], package: bool, filters: dict[str, int]) -> list[str]:
    seen: dict[str, str] = {}
    with warnings.catch_warnings():  # reading deprecated attributes (torch, matplotlib) warns; the text is wanted
        warnings.simplefilter("ignore")
        for name in modules:
            for doc in _docs(name, package=package):
                for sentence in sentences_of(doc, **filters):
                    seen.setdefault(sentence.casefold(), sentence)
    return sorted(seen.values())


def stdlib_sentences(modules: tuple[str, ...] = STDLIB_MODULES, **filters: int) -> list[str]:
    """Deduplicated (case-folded), sorted sentences from the docstrings of ``modules``."""
    return _sentences(modules, False, filters)


def package_sentences(modules: tuple[str, ...] = PACKAGE_MODULES, **filters: int) -> list[str]:
    """Deduplicated (case-folded), sorted sentences from the docstrings of installed packages' ``modules`` (those
    not installed are skipped): public objects defined anywhere in the package, builtins and properties included."""
    return _sentences(modules, True, filters)


def reference_sentences() -> list[str]:
    """Deduplicated, sorted sentences of the Python language and library reference topics that ``pydoc`` ships
    (``pydoc_data.topics``: the text of ``help("FORMATTING")``, ``help("if")``...)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        return []
    seen: dict[str, str] = {}
    for name in sorted(topics):
        for sentence in sentences_of(topics[name]):
            seen.setdefault(sentence.casefold(), sentence)
    return sorted(seen.values())


def wide_sentences(modules: tuple[str, ...] = WIDE_MODULES) -> list[str]:
    """The reference topics plus the docstrings of ``modules`` (those not installed are skipped)."""
    return sorted(set(reference_sentences()) | set(package_sentences(modules)))


def split_sentences(sentences: list[str], heldout: float = 0.2, salt: str = "slimkit") -> dict[str, list[str]]:
    """``{"train": [...], "heldout": [...]}``: a sentence goes to held-out when its salted blake2b hash falls in
    the first ``heldout`` fraction; order within each split is that of ``sentences``."""
    if not 0.0 < heldout < 1.0:
        raise ValueError(f"heldout must be in (0, 1), got {heldout}")
    out: dict[str, list[str]] = {"train": [], "heldout": []}
    for s in dict.fromkeys(sentences):
        h = int.from_bytes(hashlib.blake2b(f"{salt}:{s}".encode(), digest_size=8).digest(), "big") / 2**64
        out["heldout" if h < heldout else "train"].append(s)
    return out


def corpus_splits(packages: bool = True, val: float = 0.1, corpus: str | None = None) -> dict[str, list[str]]:
    """train / val / held-out sentences, disjoint and deterministic: held-out is the held-out split of the stdlib
    sentences (the same for every ``corpus``); train is the rest of the stdlib sentences plus the train split of
    the extra text, less a ``val`` fraction split off by another salted hash. ``corpus``: ``"stdlib"`` (no extra
    text), ``"base"`` (+ numpy/scipy/torch docstrings, :data:`PACKAGE_MODULES`) or ``"wide"`` (+ the reference
    topics and :data:`WIDE_MODULES`, about twice the text of base); None means ``"base"`` if ``packages`` else
    ``"stdlib"``. Extra sentences that hash into held-out, or equal a held-out sentence up to case, are used nowhere."""
    corpus = corpus or ("base" if packages else "stdlib")
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
    stdlib = split_sentences(stdlib_sentences())
    held = stdlib["heldout"]
    extra: list[str] = []
    if corpus in ("base", "wide"):
        extra += split_sentences(package_sentences())["train"]
    if corpus == "wide":
        extra += split_sentences(wide_sentences())["train"]
    held_keys = {s.casefold() for s in held}
    pool = sorted(set(stdlib["train"]) | {s for s in extra if s.casefold() not in held_keys})
    split = split_sentences(pool, heldout=val, salt="val")
    return {"train": split["train"], "val": split["heldout"], "heldout": held}
