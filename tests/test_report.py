"""`labeldist report`: one self-contained HTML file from real tiny-model runs and a sweep,
opened offline in headless Chromium, screenshotted, and every figure checked to have rendered.
The check itself is shown to fail on a figure the browser cannot decode and on a blank one."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil

import pytest
from analysis_runs import analysis_runs
from PIL import Image
from tiny_models import with_positions

from labeldist.cli import main
from labeldist.report.browser import BrowserError, blank, check_report, find_browser


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return analysis_runs(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    argv = [
        "report",
        str(runs["dev"]),
        str(runs["train"]),
        str(runs["sweep"]),
        "--out",
        str(out),
        "--examples",
        "2",
        "--resamples",
        "100",
        "--title",
        "Tiny model report",
    ]
    assert main(argv) == 0
    return out


def needs_browser():
    if find_browser() is not None:
        return
    if os.environ.get("LABELDIST_REQUIRE_BROWSER"):  # set by `make test`, which installs Chromium first
        pytest.fail("no Chromium on PATH although LABELDIST_REQUIRE_BROWSER is set (`make browser` installs it)")
    pytest.skip("no Chromium on this machine (Debian package chromium; `make test` installs it where apt works)")


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<title>Tiny model report</title>" in text
    # nothing to fetch: no external src/href, no script, no remote stylesheet or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<script" not in text and "@import" not in text and "url(" not in text
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    # 4 analyses + 1 sweep figure
    assert len(images) == 5
    for data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert not blank(image.convert("RGB"))


def test_report_sections(runs, report):
    text = report.read_text(encoding="utf-8").replace("<wbr>", "")  # line-break hints in names
    for anchor, heading in (
        ("runs", "Runs"),
        ("evaluation", "Evaluation"),
        ("analyses", "Analyses"),
        ("sweep-1", "Sweep: sweep"),
        ("examples", "Examples"),
    ):
        assert f"<h2 id='{anchor}'>{heading}</h2>" in text and f"<a href='#{anchor}'>{heading}</a>" in text
    # the analyses compare the runs given directly (dev and train: other items, so nothing is
    # paired item by item); the sweep's runs have their own section
    assert "second &minus; first" not in text
    assert "<th>run-dev</th><th>run-train</th></tr><tr><th>items</th>" in text
    # the runs' configurations, the sweep's runs among them
    for name in ("run-dev", "run-train", "sweep/share-0", "sweep/share-0.5", "sweep/share-1"):
        assert f"<th>{name}</th>" in text
    # evaluation tables: one per run (computed: these runs have no evaluation.json), every estimator row
    assert text.count("computed for this report") == 5
    for estimator in ("first", "max", "mean", "noisy-or", "output", "oracle"):
        assert f"<tr><td>{estimator}</td>" in text
    # examples: 2 dev items, then 2 train items (that run shares no item with run-dev); the
    # sweep's runs are not among them; slots as bars beside the votes
    assert text.count('class="example"') == 4
    assert text.count("<h4>vote fractions</h4>") == 2 + 2
    assert text.count('class="bar-row chosen"') >= 2 + 2
    assert "<h4>sweep/share-" not in text


def test_report_renders_in_headless_chromium(report, tmp_path):
    needs_browser()
    shot = tmp_path / "report.png"
    page = check_report(report, shot)
    assert len(page["images"]) == 5
    assert all(box["complete"] and box["naturalWidth"] > 400 and not box["blank"] for box in page["images"])
    with Image.open(shot) as image:
        # the full page, not one viewport
        assert image.width >= 1280 and image.height == page["height"] > 3000
    # every request stayed inside the file
    assert all(url.startswith(("file:", "data:", "about:")) for url in page["requests"])


def test_the_check_fails_on_broken_and_blank_figures(tmp_path):
    needs_browser()
    white = io.BytesIO()
    Image.new("RGB", (600, 300), "white").save(white, format="PNG")
    blank_page = tmp_path / "blank.html"
    blank_page.write_text(
        f'<!DOCTYPE html><html><body><h1>x</h1><img alt="white" src="data:image/png;base64,'
        f'{base64.b64encode(white.getvalue()).decode()}"></body></html>'
    )
    with pytest.raises(BrowserError, match="blank"):
        check_report(blank_page, tmp_path / "blank.png")
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><img alt="cut" src="data:image/png;base64,iVBORw0KGgoAAAA"></body></html>')
    with pytest.raises(BrowserError, match="not decoded"):
        check_report(broken, tmp_path / "broken.png")


def test_the_check_fails_on_overflow_and_illegible_figures(tmp_path):
    """Issue 19: a table wider than its box (scrolling sideways hides columns) and a figure drawn
    so small that its smallest text falls below 8 px are errors, naming where."""
    needs_browser()
    chart = io.BytesIO()
    Image.new("RGB", (3000, 400), "white").save(chart, format="PNG")
    image = Image.open(chart)
    for x in range(0, 3000, 40):  # something drawn, so the figure is not blank
        image.paste((30, 30, 30), (x, 100, x + 20, 300))
    inked = io.BytesIO()
    image.save(inked, format="PNG")
    data = base64.b64encode(inked.getvalue()).decode()
    figure = f'<img alt="wide chart" data-min-font-px="14.6" style="max-width:100%" src="data:image/png;base64,{data}">'
    wide_table = (
        "<h3>Scores</h3><div style='overflow-x:auto'><table><tr>" + "<td>0.123 [0.100, 0.150]</td>" * 40 + "</tr></table></div>"
    )
    page = tmp_path / "wide.html"
    page.write_text(f"<!DOCTYPE html><html><body style='max-width:1100px'>{wide_table}{figure}</body></html>")
    with pytest.raises(BrowserError, match=r"a div under 'Scores' is \d+ px wide in a \d+ px box"):
        check_report(page, tmp_path / "wide.png")
    small = tmp_path / "small.html"
    small.write_text(f"<!DOCTYPE html><html><body style='max-width:1100px'><h3>Chart</h3>{figure}</body></html>")
    with pytest.raises(
        BrowserError, match=r"figure 1 \(wide chart\) is drawn at 1100 of its 3000 px: its smallest text is 5.4 px"
    ):
        check_report(small, tmp_path / "small.png")


LONG_LABELS = (
    "delays of public transport 🚌 and everything around them",
    "praise for a neighbour's cooking 🍲",
    "worries about rent, heating and the cost of living",
    "sport: football, tennis and the local swimming club 🏊",
    "a label whose name is an unbroken_identifier_of_sixty_characters_with_no_spaces",
    "none of the above, as far as the annotator could tell",
)


@pytest.fixture(scope="module")
def long_label_runs(tiny, tmp_path_factory):
    """Two real runs of the tiny model on a table with long label names, emoji and line breaks
    in its texts (written in the table loader's format)."""
    import pandas as pd

    root = tmp_path_factory.mktemp("long-labels")
    rows = []
    for i in range(8):
        text = f"Item {i} 😀🎉: the bus was late again.\nSecond line of the post, after a break.\n\n— signed, a commuter 🚌"
        for annotator in ("a1", "a2", "a3"):
            chosen = [LONG_LABELS[(i + j) % len(LONG_LABELS)] for j in range((i + len(annotator)) % 3)]
            labels = json.dumps(chosen, ensure_ascii=False)
            rows.append({"id": f"item-{i}", "text": text, "annotator": annotator, "labels": labels})
    pd.DataFrame(rows).to_csv(root / "test.csv", index=False)
    label_set = "labels=" + json.dumps(LONG_LABELS, ensure_ascii=False)
    argv = [label_set if a.startswith("labels=") else a for a in tiny.argv(root, "test")]
    # the long label list makes a 309-token prompt, past the 256 positions the tiny model was
    # trained for (a run refuses that). Its positions are rotary (no table of positions): a copy
    # that declares 1,024 reads the prompt, untrained past 256, which is all a layout test needs.
    wider = with_positions(argv[argv.index("--model") + 1], root / "tiny-model-1024-positions")
    argv[argv.index("--model") + 1] = str(wider)
    runs = []
    for name in ("a-run-with-a-rather-long-name-zero-shot", "second"):
        runs.append(root / name)
        assert main([*argv, "--option", "annotator_column=annotator", "--out", str(runs[-1])]) == 0
    return runs


def test_a_report_with_long_labels_and_emoji_fits_the_page(long_label_runs, tmp_path):
    """Issue 19, looked at: long labels, emoji and line breaks in texts, long run names. The page
    fits the window (no table scrolls sideways), every figure's text stays legible, and item
    texts keep their line breaks."""
    needs_browser()
    out, shot = tmp_path / "report.html", tmp_path / "report.png"
    assert main(["report", *map(str, long_label_runs), "--out", str(out), "--examples", "2", "--resamples", "50"]) == 0
    page = check_report(out, shot)
    assert page["width"] <= page["viewport"] and not page["overflowing"]
    assert all(box["min_font_px"] >= 8 for box in page["images"])
    text = out.read_text(encoding="utf-8")
    assert "white-space: pre-wrap" in text and "😀🎉" in text and "\nSecond line" in text
    if os.environ.get("LABELDIST_KEEP_SCREENSHOT"):  # to look at it: the screenshot is kept there
        shot.replace(os.environ["LABELDIST_KEEP_SCREENSHOT"])


def test_emoji_are_drawn_in_colour(tmp_path):
    """An emoji font is present (make test installs fonts-noto-color-emoji with chromium): an
    emoji is drawn as a coloured glyph, not as a grey box."""
    needs_browser()
    from labeldist.report.browser import screenshot

    page = tmp_path / "emoji.html"
    # emoji DejaVu Sans lacks (it draws 😀 itself, in black and white; a missing glyph is a box)
    page.write_text("<!DOCTYPE html><html><body style='margin:0'><span style='font-size:96px'>🚌🍲</span></body></html>")
    screenshot(page, tmp_path / "emoji.png")
    with Image.open(tmp_path / "emoji.png") as image:
        pixels = [image.convert("RGB").getpixel((x, y)) for x in range(0, 240, 3) for y in range(0, 120, 3)]
    saturated = [p for p in pixels if max(p) - min(p) > 80]
    assert len(saturated) > 50, "emoji drawn without colour: no emoji font (Debian: fonts-noto-color-emoji)"


def test_report_cli_screenshot_option(runs, tmp_path, capsys):
    needs_browser()
    out, shot = tmp_path / "r.html", tmp_path / "r.png"
    assert (
        main(["report", str(runs["dev"]), "--out", str(out), "--examples", "1", "--resamples", "50", "--screenshot", str(shot)])
        == 0
    )
    assert "4 figures, all rendered" in capsys.readouterr().err
    assert shot.exists()


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 2
    assert "missing" in capsys.readouterr().err
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{not json")
    assert main(["report", str(sweep), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "sweep.json" in err and "not a sweep file" in err


def test_saved_evaluations_are_shown_each_once(runs, tmp_path, capsys):
    """A run's evaluation.json and evaluation-*.json (as `labeldist evaluate --json` was saved
    for the evaluation issue's tables) each give one table; a file repeating another is shown once."""
    import json

    run = tmp_path / "run-dev"
    shutil.copytree(runs["dev"], run, ignore=shutil.ignore_patterns("evaluation*.json"))
    outputs = {}
    for threshold in ("0.5", "tuned"):
        capsys.readouterr()
        assert (
            main(
                [
                    "evaluate",
                    "--save",
                    str(run),
                    "--calibrate-on",
                    str(runs["train"]),
                    "--threshold",
                    threshold,
                    "--resamples",
                    "50",
                    "--json",
                ]
            )
            == 0
        )
        outputs[threshold] = capsys.readouterr().out
        (run / f"evaluation-{threshold}.json").write_text(outputs[threshold])
    # evaluation.json is now the tuned one again: three files, two evaluations
    assert json.loads((run / "evaluation.json").read_text())["threshold"] == "tuned"
    out = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(out), "--examples", "0"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.count("<h3>run-dev, threshold ") == 2
    assert "<h3>run-dev, threshold tuned</h3>" in text and "<h3>run-dev, threshold 0.5</h3>" in text
    assert f"{run}/evaluation.json" in text and f"{run}/evaluation-0.5.json" in text
    assert f"{run}/evaluation-tuned.json" not in text and "computed for this report" not in text
    assert "<h2 id='examples'>" not in text and "href='#examples'" not in text
