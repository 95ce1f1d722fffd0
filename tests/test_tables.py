"""The book's table formatter writes numbers as a reader reads them."""

import numpy as np
import pandas as pd

from nadbook.tables import cell, kind, markdown


def test_each_kind_of_number_is_written_as_read():
    assert kind("accuracy (%)") == "percent" and kind("QAP p") == "p" and kind("kappa") == "number"
    assert cell(92.490001, "percent") == "92.5" and cell(100.0, "percent") == "100.0"
    assert cell(0.0, "p") == "< 0.001" and cell(0.0486, "p") == "0.049"
    assert cell(600.0) == "600" and cell(0.970312476158) == "0.97" and cell(-0.0312, signed=True) == "-0.031"
    assert cell(float("nan"), missing="n/a (one class)") == "n/a (one class)"


def test_a_table_has_no_nan_and_no_truncation():
    df = pd.DataFrame({"kappa": [0.12345, -0.5], "p": [0.0001, np.nan], "long text column": ["x" * 80, "y"]},
                      index=pd.Index(["vgg16", "darts"], name="network"))
    text = markdown(df, missing={"p": "not testable"})
    assert "nan" not in text and "x" * 80 in text and "+0.12" in text and "not testable" in text
    assert text.splitlines()[0] == "| network | kappa | p | long text column |"


def test_a_table_of_measures_is_formatted_row_by_row():
    df = pd.DataFrame({"trained": [92.49, 0.93], "untrained": [10.0, np.nan]},
                      index=pd.Index(["accuracy (%)", "best hit rate"], name="measure"))
    lines = markdown(df, by_row=True, missing={"best hit rate": "n/a (no mosaic)"}).splitlines()
    assert lines[2] == "| accuracy (%) | 92.5 | 10.0 |" and lines[3] == "| best hit rate | 0.93 | n/a (no mosaic) |"


def test_significant_digits_count_after_rounding():
    from nadbook.verdicts import sig

    assert sig(0.00999, signed=False) == "0.010" and sig(99.96, signed=False) == "100"
