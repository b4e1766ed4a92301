"""The rule table and its evaluator on hand-made rows (the loaders' tests cover the files)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rxrepurchase.contract import TABLES
from rxrepurchase.core import backend
from rxrepurchase.core.rules import RULES, Context, Evaluator, rules_markdown


def test_every_rule_names_a_contract_column_and_the_docs_list_them():
    for r in RULES:
        assert r.column in TABLES[r.table].column_names, (r.rule, r.table, r.column)
        assert r.action in ("excluded", "kept") and r.message
        assert all(c in TABLES[r.table].column_names for c in r.show)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert rules_markdown() in doc, "regenerate the rule table in docs/data-contract.md"


def _orders() -> pd.DataFrame:
    ts = pd.Timestamp("2026-06-01 10:00")
    return pd.DataFrame({
        "order_id": ["A", "B", "C", "D", "E", "E", "F", "F"],
        "member_id": ["M1", None, "M1", "M2", "M1", "M1", "M2", "M2"],
        "store_id": ["S1"] * 8,
        # C is after as_of AND has a negative paid amount: counted once, under the first rule.
        "ordered_at": [ts, ts, pd.Timestamp("2026-07-02"), ts, ts, ts, ts, ts],
        "channel": ["store"] * 8,
        "gross_amount": [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0],
        "discount_amount": [0.0, 10.005, 0.0, 12.0, 0.0, 0.0, 0.0, 0.0],
        "paid_amount": [10.0, 0.0, -1.0, 0.0, 10.0, 10.0, 10.0, 9.0],
        "coupon_id": [None] * 8, "campaign_id": [None] * 8,
        "stored_value_amount": [0.0] * 8,
        "_pos": range(8),
    })


def test_first_excluding_rule_counts_a_row_and_keys_resolve_as_documented():
    frame = _orders()
    with backend.tables(frame) as (t,):
        ev = Evaluator(Context(pd.Timestamp("2026-06-30")))
        rows = ev.rows(t, "orders")
        found = {rows.rules[i].rule: list(p) for i, p in rows.positions().items() if len(p)}
        # B: discount 10.005 <= gross 10 + tolerance 0.01 is fine; D: discount 12 > 10.
        assert found == {"negative_paid_amount": [2], "discount_exceeds_gross": [3],
                         "paid_mismatch": [7]}
        keys = ev.keys(rows.kept, "orders", read=t)
        found = {keys.rules[i].rule: list(p) for i, p in keys.positions().items() if len(p)}
        # E twice with the same content: the copy goes; F twice, different paid: both go.
        assert found == {"duplicate_order_id": [5], "conflicting_order_id": [6, 7]}
        kept = backend.to_pandas(keys.kept)
        assert sorted(kept["order_id"]) == ["A", "B", "E"]
        # Without positions (the engine's views) the same rows are kept, nothing is flagged.
        bare = Evaluator(Context(pd.Timestamp("2026-06-30")))
        plain = t.drop("_pos")
        lazy = bare.keys(bare.rows(plain, "orders").kept, "orders", read=plain)
        assert lazy.flags is None
        assert sorted(backend.to_pandas(lazy.kept)["order_id"]) == ["A", "B", "E"]
