"""Docs tables are rendered from result JSON (analysis/report.py): a page rendered from stored
JSON shows exactly its figures, re-rendering is idempotent, and the shipped docs are current."""

import json
import os

import pytest

from wespeaker_mfcon.analysis import report
from wespeaker_mfcon.analysis.summarize_comparison import build_summary
from wespeaker_mfcon.utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _runs(eers):
    """{variant: [run]} with cosine and asnorm EERs given per seed."""
    return {v: [{"seed": str(i + 1), "exp_dir": f"exp/{v}/seed{i + 1}", "blocks": None,
                 "results": {"trials": {"cosine": {"eer": c, "min_dcf_0.01": 0.9},
                                        "asnorm": {"eer": a, "min_dcf_0.01": 0.8}}}}
                for i, (c, a) in enumerate(seeds)]
            for v, seeds in eers.items()}


def _page(tmp_path, summary):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "cmp.json").write_text(json.dumps(summary))
    page = tmp_path / "page.md"
    page.write_text("# Title\n\ntext before\n\n<!-- report: comparison results/cmp.json -->\n"
                    "stale table\n<!-- /report -->\n\ntext after\n")
    return page


def test_a_page_renders_the_figures_of_its_json(tmp_path):
    # baseline cosine 10, 12 -> 11 ± 1.41; mfcon 8, 9 -> 8.5 ± 0.71, -22.7%, gap 2.5 > 2.12
    summary = build_summary(_runs({"baseline": [(10.0, 9.0), (12.0, 11.0)],
                                   "mfcon": [(8.0, 8.0), (9.0, 8.0)]}), "baseline")
    page = _page(tmp_path, summary)
    assert report.render_docs(str(tmp_path)) == [str(page)]
    text = page.read_text()
    assert "stale table" not in text and text.startswith("# Title\n\ntext before\n")
    assert text.endswith("<!-- /report -->\n\ntext after\n")
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()
            if line.startswith("| ")}
    assert "11.00 ± 1.41" in rows["baseline"] and "10.00 ± 1.41" in rows["baseline"]
    assert "| 8.50 ± 0.71 | -22.7% (yes) |" in rows["mfcon"]
    assert "| 8.00 ± 0.00 | -20.0% (yes) |" in rows["mfcon"]
    assert report.render_docs(str(tmp_path)) == []          # idempotent
    assert report.render_docs(str(tmp_path), check=True) == []


def test_check_reports_a_stale_page_without_changing_it(tmp_path):
    summary = build_summary(_runs({"baseline": [(10.0, 9.0)]}), "baseline")
    page = _page(tmp_path, summary)
    before = page.read_text()
    assert report.render_docs(str(tmp_path), check=True) == [str(page)]
    assert page.read_text() == before
    with pytest.raises(UserError, match="out of date"):
        report.main(["--docs", str(tmp_path), "--check"])


def test_unknown_renderer_and_missing_json_are_one_line_errors(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("<!-- report: nosuch results/x.json -->\n<!-- /report -->\n")
    with pytest.raises(UserError, match="p.md: report block 'nosuch': no such renderer"):
        report.render_docs(str(tmp_path))
    page.write_text("<!-- report: comparison results/x.json -->\n<!-- /report -->\n")
    with pytest.raises(UserError, match="x.json: cannot read the JSON of report 'comparison'"):
        report.render_docs(str(tmp_path))


def test_the_shipped_docs_are_rendered_from_their_json():
    assert report.render_docs(os.path.join(REPO, "docs"), check=True) == []
