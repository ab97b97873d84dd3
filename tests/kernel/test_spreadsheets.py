"""Every staff export (orders, mall redemptions, settlement batches) goes through one writer: one BOM rule,
one formula escape."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from kernel.spreadsheets import cell, to_csv, to_xlsx


def test_text_that_could_run_as_a_formula_is_escaped_and_numbers_stay_numbers():
    assert [cell(v) for v in ("=1+1", "+86", "-2", "@SUM(A1)", "\tx", "林**", None)] == \
        ["'=1+1", "'+86", "'-2", "'@SUM(A1)", "'\tx", "林**", ""]
    assert cell(-150) == -150 and cell(0) == 0


def test_csv_starts_with_one_bom_and_xlsx_holds_no_formula():
    rows = [["nickname", "net_fen"], ['=HYPERLINK("http://x")', -1]]
    data = to_csv(rows)
    assert data.startswith("\ufeff".encode()) and not data.startswith(("\ufeff" * 2).encode())
    assert list(csv.reader(io.StringIO(data.decode("utf-8-sig")))) == [["nickname", "net_fen"],
                                                                        ['\'=HYPERLINK("http://x")', "-1"]]
    sheet = load_workbook(io.BytesIO(to_xlsx(rows, sheet_title="t"))).active
    assert sheet["A2"].data_type == "s" and sheet["A2"].value.startswith("'") and sheet["B2"].value == -1
