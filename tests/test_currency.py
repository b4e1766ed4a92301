"""Amounts formatted by currency (CNY by default), through format_money, the notebooks'
currency parameter and the CLI."""

from __future__ import annotations

import pytest

from rxrepurchase.cli import build_parser
from rxrepurchase.errors import RxRepurchaseError
from rxrepurchase.i18n import currency, format_money, set_currency


def test_amounts_are_formatted_in_the_currency():
    assert currency() == "CNY"
    assert format_money(1234.4) == "¥1,234"
    assert format_money(123456, "zh") == "¥12.3万"
    assert format_money(1234.4, currency="usd") == "$1,234"
    assert format_money(-50, currency="EUR") == "-€50"
    assert format_money(1234, currency="CHF") == "CHF 1,234"  # no symbol: the code
    assert format_money(None, currency="USD") == "–"
    with set_currency("USD"):
        assert format_money(99.6) == "$100"
        assert format_money(20000, "zh") == "$2.0万"
    assert format_money(1) == "¥1"  # back to the default after the block
    for bad in ("US", "dollar", "", "¥"):
        with pytest.raises(RxRepurchaseError, match="ISO 4217"):
            format_money(1, currency=bad)


def test_cli_report_takes_a_currency():
    parser = build_parser()
    args = parser.parse_args(["report", "--data", "x", "--currency", "USD"])
    assert args.currency == "USD"
    assert parser.parse_args(["report", "--data", "x"]).currency == "CNY"
