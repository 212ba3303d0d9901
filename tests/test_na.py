"""Tests of freqbias.na: missing values with their reason, through a CSV and back; a malformed cell is an error."""

from __future__ import annotations

import csv
import io
import math

import pytest

from freqbias.config import DataError
from freqbias.io import load_csv
from freqbias.na import NA, NO_VALUE, cell, csv_rows, na_estimate, number, parse_reasons


def roundtrip(rows: list[dict]) -> list[dict]:
    """Rows written as csv_rows would be and read back by csv.DictReader (all cells text)."""
    out = csv_rows(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(out[0]))
    writer.writeheader()
    writer.writerows(out)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def test_na_value():
    na = NA("clean accuracy is 0;  masked / clean undefined")
    assert math.isnan(float(na)) and str(na) == "n/a (clean accuracy is 0, masked / clean undefined)"
    with pytest.raises(TypeError):
        na + 1                                                   # arithmetic on a missing value fails loudly
    assert NA("").reason == NO_VALUE and na_estimate("x") == (NA("x"),) * 3
    assert [number(v) for v in (1, "0.5", "", None, "nan", math.inf, na, "text", True)] == \
        [1.0, 0.5, None, None, None, None, None, None, None]


def test_csv_rows_write_empty_cells_and_the_reason_per_column():
    undefined = NA("clean accuracy is 0: undefined")
    rows = [{"model": "A", "acc": 0.5, "ratio": undefined, "ratio_lo": undefined, "corr": math.nan, "n": None},
            {"model": "B", "acc": 0.7, "ratio": 1.0, "ratio_lo": 0.9, "corr": 0.1, "extra": 3,
             "reason": "2 images left out"}]
    a, b = roundtrip(rows)
    assert list(a) == ["model", "acc", "ratio", "ratio_lo", "corr", "n", "extra", "reason"]  # all, reason last
    assert a["ratio"] == a["ratio_lo"] == a["corr"] == a["n"] == a["extra"] == ""
    assert a["reason"] == ("ratio, ratio_lo: clean accuracy is 0: undefined; corr: not a finite number; "
                           "n: no value recorded; extra: not recorded for this row")
    assert cell(a, "ratio") == NA("clean accuracy is 0: undefined") == cell(a, "ratio_lo")
    assert cell(a, "corr") == NA("not a finite number") and cell(a, "acc") == 0.5
    assert b["reason"] == "2 images left out; n: not recorded for this row" and cell(b, "ratio") == 1.0
    assert cell({"x": "", "reason": ""}, "x") == NA(NO_VALUE)    # an empty cell without a reason still reads n/a
    assert cell({"x_lo": "", "x": "1", "reason": "x: one seed"}, "x_lo") == NA("one seed")  # the interval's column


def test_parse_reasons_keeps_colons_inside_a_reason():
    text = "val_ratio: val clean accuracy is 0: masked / clean undefined; 3 of 8 images left out: NaN"
    assert parse_reasons(text) == {"val_ratio": "val clean accuracy is 0: masked / clean undefined",
                                   "": "3 of 8 images left out: NaN"}
    assert parse_reasons("") == {}


@pytest.mark.parametrize(("text", "problem"), [
    ("0.9x1", "'0.9x1' is not a number"), ("abc", "'abc' is not a number"),
    ("nan", "'nan' is not a finite number"), ("-inf", "'-inf' is not a finite number"),
    ("1e999", "'1e999' is not a finite number")])
def test_a_malformed_cell_of_a_table_file_names_file_row_and_column(tmp_path, text, problem):
    path = tmp_path / "accuracy.csv"
    path.write_text(f"model,val_clean,test_clean,reason\nN-s0,0.9,0.8,\nA-s0,{text},,test_clean: one seed\n")
    n, a = load_csv(path, "result table")
    assert cell(n, "val_clean") == 0.9 and cell(a, "test_clean") == NA("one seed")  # an empty cell is n/a
    with pytest.raises(DataError) as err:
        cell(a, "val_clean")
    assert str(err.value).startswith(f"{path}: row 2: column 'val_clean': {problem}") and "\n" not in str(err.value)
