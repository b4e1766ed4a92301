"""The command line: `summary` reports the data quality; bad input ends with exit code 2."""

from __future__ import annotations

from test_loading import good_tables, write

from rxrepurchase.cli import main


def test_summary_prints_sizes_and_quality(tmp_path, capsys):
    t = good_tables()
    t["orders"].loc[2, "paid_amount"] = "-3"  # O3 excluded, and its two lines
    folder = write(tmp_path, t)
    assert main(["summary", "--data", str(folder), "--as-of", "2026-06-30"]) == 0
    out = capsys.readouterr().out
    assert "orders: 4" in out and "order lines: 4" in out
    # 1 walk-in order of the 4 loaded
    assert "walk-in share 25.0%" in out
    assert "[excluded] orders.csv: column 'paid_amount': 1 row(s) with a negative paid amount" in out


def test_bad_folder_is_an_error_without_traceback(tmp_path, capsys):
    t = good_tables()
    t["orders"] = t["orders"].drop(columns=["ordered_at"])
    folder = write(tmp_path, t)
    assert main(["summary", "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rxrepurchase summary: error: ")
    assert "orders.csv: missing required column(s) ['ordered_at']" in err
    assert "Traceback" not in err
    assert main(["summary", "--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_walk_in_share_uses_loaded_orders(tmp_path, capsys):
    folder = write(tmp_path, good_tables())
    main(["summary", "--data", str(folder), "--as-of", "2026-06-30"])
    # 1 walk-in of 5 orders
    assert "walk-in share 20.0%" in capsys.readouterr().out
