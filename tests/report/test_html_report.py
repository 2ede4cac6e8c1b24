"""report.html of a recipe run: self-contained, its table is the run's summary, its images are real PNGs, and
after quantization the size shown is the integer model's or is marked simulated."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import slimkit
from slimkit.cli import main
from slimkit.recipe import parse_recipe, run_recipe
from slimkit.report import format_bytes, format_count, run_plots, write_html_report
from slimkit.report.run_folder import layer_widths

SYNTHETIC = {"name": "synthetic", "options": {"num_samples": 256, "in_channels": 1, "num_classes": 4,
                                               "image_size": 28}}
TRAIN = {"type": "train", "epochs": 1, "lr": 0.05, "batch_size": 32, "progress": False}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(tmp_path_factory, name: str, stages: list[dict]) -> Path:
    run_dir = tmp_path_factory.mktemp(name) / "run"
    recipe = parse_recipe({"name": name, "model": {"name": "lenet5"}, "data": SYNTHETIC, "stages": stages,
                           "report": {"latency_repeats": 3}})
    run_recipe(recipe, run_dir, echo=lambda *_: None)
    return run_dir


@pytest.fixture(scope="module")
def integer_run(tmp_path_factory) -> Path:
    """Train, prune by sensitivity (draws its own curves), fine-tune, quantize with an int8 ONNX export."""
    return _run(tmp_path_factory, "int8", [
        TRAIN,
        {"type": "sensitivity", "ratios": [0.25, 0.5], "max_drop": 0.5},
        {"type": "finetune", "epochs": 1, "batch_size": 32, "progress": False},
        {"type": "quantize", "calibration_batches": 2, "onnx_int8": True},
    ])


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory) -> Path:
    return _run(tmp_path_factory, "sim", [TRAIN, {"type": "quantize", "calibration_batches": 2}])


class _Page(HTMLParser):
    """Tags, attributes, table rows (cell texts) and figure captions of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        self._in_style = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_style:
            self.styles.append(data)
        self.text.append(data)


def _parse(run_dir: Path) -> _Page:
    page = _Page()
    page.feed((run_dir / "report.html").read_text(encoding="utf-8"))
    page.close()
    return page


def _images(page: _Page) -> list[bytes]:
    sources = [v for tag, k, v in page.attrs if tag == "img" and k == "src"]
    prefix = "data:image/png;base64,"
    assert all(s.startswith(prefix) for s in sources), [s[:40] for s in sources]
    return [base64.b64decode(s[len(prefix):], validate=True) for s in sources]


def _assert_self_contained(page: _Page) -> None:
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for tag, key, value in page.attrs:
        if key in ("src", "href", "srcset", "poster", "data"):
            assert value.startswith("data:"), f"<{tag} {key}={value[:60]!r}> loads something from outside"
    css = "".join(page.styles)
    assert "url(" not in css and "@import" not in css


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _stage(run_dir: Path, stage_type: str) -> dict:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return next(s for s in manifest["stages"] if s["type"] == stage_type)


def test_report_is_self_contained_with_the_summary_table_and_png_images(integer_run):
    page = _parse(integer_run)
    _assert_self_contained(page)
    summary = _summary(integer_run)
    table = page.tables[0]
    assert table[0] == ["", "before", "after", "change"]
    assert table[1:] == summary["rows"]  # the page shows exactly what the terminal showed
    labels = [row[0] for row in table[1:]]
    assert labels[:2] == ["accuracy", "params"] and "MACs" in labels and "size" in labels
    assert any(label.startswith("latency bs1") for label in labels)
    images = _images(page)
    assert len(images) >= 6  # summary, stages, channels, accuracy vs MACs and size, the stage's sensitivity curves
    assert all(image.startswith(PNG_MAGIC) for image in images)
    written = {p.name for p in (integer_run / "plots").glob("*.png")}
    assert written == {"summary.png", "stages.png", "channels.png", "accuracy_vs_macs.png", "accuracy_vs_size.png"}
    for name in written:  # the PNGs beside the page are the ones embedded in it
        assert (integer_run / "plots" / name).read_bytes() in images
    assert (integer_run / "01-sensitivity" / "sensitivity.png").read_bytes() in images
    assert "Figures not drawn" not in "".join(page.text)


def test_after_quantize_the_summary_shows_the_integer_model(integer_run):
    summary, quantize = _summary(integer_run), _stage(integer_run, "quantize")
    onnx = integer_run / "03-quantize" / "model.int8.onnx"
    assert summary["after"]["size_bytes"] == onnx.stat().st_size
    assert summary["after"]["accuracy"] == quantize["metrics"]["accuracy_int8"]
    assert summary["after"]["size_bytes_fake_quant"] > onnx.stat().st_size  # fp32 storage of the fake-quant model
    assert summary["marks"] == {"size_bytes": "int8", "accuracy": "int8", "latency_ms_bs1": "int8"}
    rows = {row[0]: row for row in _parse(integer_run).tables[0][1:]}
    assert rows["size"][2] == f"{format_bytes(onnx.stat().st_size)} [int8]"
    assert rows["accuracy"][2] == f"{100 * quantize['metrics']['accuracy_int8']:.2f}% [int8]"
    text = (integer_run / "summary.txt").read_text()
    assert "[int8] measured on the integer model 03-quantize/model.int8.onnx" in text
    assert "03-quantize/model.int8.onnx" in "".join(_parse(integer_run).text)


def test_channels_per_layer_shows_the_pruned_widths(integer_run):
    page = _parse(integer_run)
    stages = page.tables[1]
    assert [row[0] for row in stages[1:]] == ["00 train", "01 sensitivity", "02 finetune", "03 quantize"]
    sensitivity = _stage(integer_run, "sensitivity")["metrics"]
    assert any(r > 0 for r in sensitivity["ratios"].values())  # it pruned, so the channel figure is drawn
    assert "Channels per layer" in page.text
    assert (integer_run / "plots" / "channels.png").read_bytes() in _images(page)
    before = layer_widths(integer_run / "reference.pt")
    after = layer_widths(integer_run / "03-quantize" / "model.pt")
    model = slimkit.load_model(integer_run / "03-quantize" / "model.pt")
    assert after["features.0"] == model.features[0].out_channels < before["features.0"] == 20


def test_fake_quant_figures_are_marked_simulated(simulated_run):
    summary, quantize = _summary(simulated_run), _stage(simulated_run, "quantize")
    assert summary["after"]["size_bytes"] == quantize["metrics"]["size_bytes"]  # at the layers' bit widths
    assert summary["after"]["size_bytes_fake_quant"] > quantize["metrics"]["size_bytes"]
    assert summary["marks"] == {"size_bytes": "sim", "accuracy": "sim", "latency_ms_bs1": "sim"}
    text = (simulated_run / "summary.txt").read_text()
    assert re.search(r"^size .*\[sim\]", text, re.M) and re.search(r"^latency bs1 .*\[sim\]", text, re.M)
    assert "[sim] simulated" in text and "onnx_int8: true" in text
    page = _parse(simulated_run)
    _assert_self_contained(page)
    rows = {row[0]: row for row in page.tables[0][1:]}
    assert rows["size"][2].endswith("[sim]") and rows["latency bs1 (cpu)"][2].endswith("[sim]")
    assert any("simulated" in t for t in page.text)
    assert not (simulated_run / "plots" / "channels.png").exists()  # nothing was pruned


def test_a_figure_that_fails_is_named_on_the_page(integer_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "copy"
    shutil.copytree(integer_run, run_dir)

    def broken(run, path):
        raise ValueError("no widths today")

    monkeypatch.setattr(run_plots, "channels_figure", broken)
    write_html_report(run_dir)
    page = _parse(run_dir)
    text = "".join(page.text)
    assert "Figures not drawn" in text and "channels per layer" in text and "ValueError: no widths today" in text
    assert page.tables[0][1:] == _summary(run_dir)["rows"]  # the rest of the report is there


def test_a_report_that_fails_does_not_fail_the_run(tmp_path, monkeypatch):
    import slimkit.report

    def broken(run_dir, **_):
        raise RuntimeError("disk says no")

    monkeypatch.setattr(slimkit.report, "write_html_report", broken)
    lines: list[str] = []
    recipe = parse_recipe({"name": "r", "model": {"name": "lenet5"}, "data": SYNTHETIC,
                           "stages": [{"type": "evaluate"}], "report": {"latency": False}})
    result = run_recipe(recipe, tmp_path / "run", echo=lines.append)
    assert result.summary["after"]["accuracy"] is not None
    assert any("report.html not written (RuntimeError: disk says no)" in line for line in lines)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "done"


@pytest.mark.cli
def test_cli_report_regenerates_from_the_run_folder(integer_run, tmp_path, capsys):
    run_dir = tmp_path / "moved"  # a run folder moved elsewhere still reports its integer model
    shutil.copytree(integer_run, run_dir)
    (run_dir / "report.html").unlink()
    shutil.rmtree(run_dir / "plots")
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")
    assert _parse(run_dir).tables[0][1:] == _summary(run_dir)["rows"]
    assert (run_dir / "plots" / "summary.png").read_bytes().startswith(PNG_MAGIC)
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "no manifest.json" in err and "Traceback" not in err


def _browser() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_browser() is None, reason="no Chromium installed (apt-get install chromium)")
def test_report_renders_in_a_real_browser(integer_run, tmp_path):
    """Chromium loads the page and decodes every embedded image (the page itself needs no script: the probe
    is added to a copy)."""
    probe = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
             "document.body.setAttribute('data-decoded',i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+"
             "i.length);document.body.setAttribute('data-rows',document.querySelectorAll('table tr').length)})"
             "</script>")
    page = (integer_run / "report.html").read_text(encoding="utf-8").replace("</body>", probe + "</body>")
    copy = tmp_path / "probe.html"
    copy.write_text(page, encoding="utf-8")
    done = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120,
    )
    decoded = re.search(r'data-decoded="(\d+)/(\d+)"', done.stdout)
    assert decoded, done.stderr[-2000:]
    assert decoded.group(1) == decoded.group(2) and int(decoded.group(2)) >= 6
    rows = int(re.search(r'data-rows="(\d+)"', done.stdout).group(1))
    assert rows == 1 + len(_summary(integer_run)["rows"]) + 1 + 4  # both tables, header rows included


USER_NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, in_channels=1, num_classes=4):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3)
        self.fc = nn.Linear(8 * 26 * 26, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make(in_channels=1, num_classes=4):
    return Net(in_channels, num_classes)
'''


@pytest.mark.cli
def test_own_architecture_is_counted_with_its_factory_and_named_without(tmp_path, monkeypatch, capsys):
    (tmp_path / "slimkit_report_user_net.py").write_text(USER_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slimkit_report_user_net", raising=False)
    recipe = parse_recipe({"name": "own", "model": {"name": "slimkit_report_user_net:make"}, "data": SYNTHETIC,
                           "stages": [{"type": "prune", "ratio": 0.5}], "report": {"latency": False}})
    run_dir = tmp_path / "run"
    run_recipe(recipe, run_dir, echo=lambda *_: None)  # the runner has the factory: every figure is drawn
    page = _parse(run_dir)
    assert "Figures not drawn" not in page.text
    assert page.tables[1][1][4] == format_count(_summary(run_dir)["after"]["params"])

    assert main(["report", str(run_dir)]) == 0  # no --factory: the snapshots cannot be rebuilt, the page says so
    page = _parse(run_dir)
    text = "".join(page.text)
    assert "Figures not drawn" in page.text and "params and MACs of each stage's model: CheckpointError" in text
    assert page.tables[1][1][4] == "-" and "Channels per layer" in page.text  # widths need no model
    assert main(["report", str(run_dir), "--factory", "slimkit_report_user_net:make"]) == 0
    assert "Figures not drawn" not in _parse(run_dir).text
    capsys.readouterr()


def test_a_summary_without_rows_still_gets_its_table(integer_run, tmp_path):
    run_dir = tmp_path / "old"  # a run folder written before summary.json kept the printed rows
    shutil.copytree(integer_run, run_dir)
    summary = _summary(run_dir)
    del summary["rows"], summary["marks"], summary["notes"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    write_html_report(run_dir)
    rows = {row[0]: row for row in _parse(run_dir).tables[0][1:]}
    assert rows["size"][1:3] == [format_bytes(summary["before"]["size_bytes"]),
                                 format_bytes(summary["after"]["size_bytes"])]
    assert rows["MACs"][3] == f"{summary['before']['macs'] / summary['after']['macs']:.2f}x"
    assert set(rows) == {"accuracy", "params", "MACs", "size", "latency bs1"}


@pytest.mark.cli
def test_an_unfinished_run_is_reported_and_a_corrupt_manifest_is_named(integer_run, tmp_path, capsys):
    run_dir = tmp_path / "unfinished"
    shutil.copytree(integer_run, run_dir)
    (run_dir / "summary.json").unlink()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "running"
    manifest["stages"][-1]["status"] = "pending"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    write_html_report(run_dir)
    page = _parse(run_dir)
    assert "No before/after summary: the run has not finished (status: running)." in page.text
    assert [row[2] for row in page.tables[0][1:]] == ["done", "done", "done", "pending"]
    assert (run_dir / "plots" / "channels.png").is_file()  # the last finished stage's widths
    (run_dir / "manifest.json").write_text("{not json")
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json: not readable JSON" in err and "Traceback" not in err


def test_a_figure_the_run_no_longer_has_does_not_survive(integer_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "redrawn"
    shutil.copytree(integer_run, run_dir)
    monkeypatch.setattr(run_plots, "channels_figure", lambda run, path: None)  # e.g. nothing pruned any more
    write_html_report(run_dir)
    assert not (run_dir / "plots" / "channels.png").exists() and "Channels per layer" not in _parse(run_dir).text
