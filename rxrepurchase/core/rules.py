"""The data contract's row rules as data, evaluated as Ibis expressions.

:data:`RULES` lists every rule a chain's rows must meet once read: a value of the right type,
no empty required value, plausible amounts and dates, unique keys, known references. Each
rule names its table and column, what it checks, what happens to a row that breaks it
(``excluded``: left out of every analysis; ``kept``: a warning, the value sometimes blanked)
and the message the data-quality report gives. One evaluator (:class:`Evaluator`) applies
them to Ibis tables, so the pandas loader (:func:`rxrepurchase.loading.load_chain`, over the
frames it has read) and the DuckDB engine (:class:`rxrepurchase.engine.ChainSource`, over
views of the files) keep and flag the same rows; only reading the files (encodings, headers,
timestamp layouts, :mod:`rxrepurchase.exports`) differs between them.

Rules come in kinds, applied in stages:

``type`` and ``missing``
    A value that cannot be read as its column's type, and an empty required value. The reader
    gives each read column a ``_problem_<column>`` code (``unparseable``, ``out_of_range``,
    ...), which the type rules look at; an unreadable value is empty once read, so the
    ``missing`` rule alone already excludes its row where the reader gives no codes.
``value``
    A condition on one row (``paid_amount >= 0``).
``copy`` and ``conflict``
    Rows sharing a key: an exact copy is dropped, a key repeated with different content
    loses all its rows.
``reference`` and ``cross``
    A value the referenced table lacks, and warnings that need another table (order lines
    that do not add up to the order).

Within a stage a row is counted under the first rule that excludes it; warnings are counted
on the rows the stage keeps.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd

from rxrepurchase.contract import CAMPAIGN_GROUPS, SEND_CHANNELS, TABLES, TIERS
from rxrepurchase.core import backend as core_backend
from rxrepurchase.core.cells import SPAN
from rxrepurchase.core.sql import sql_name

__all__ = [
    "MAX_AMOUNT",
    "MIN_YEAR",
    "RULES",
    "Context",
    "Evaluator",
    "Rule",
    "Step",
    "check_tables",
    "rules_for",
    "rules_markdown",
]

Action = Literal["excluded", "kept"]
Kind = Literal["type", "missing", "value", "copy", "conflict", "reference", "cross"]

MAX_AMOUNT = 1_000_000.0
"""Default plausibility limit of one order's (or line's) amount, CNY: far above any pharmacy
sale (the dearest specialty drugs sold over the counter cost a few hundred thousand yuan)."""
MIN_YEAR = 2000
"""Default first plausible year of an order: older orders are flagged (kept)."""


@dataclass
class Context:
    """What the rules are evaluated against: the analysis date, tolerances and the tables.

    Attributes
    ----------
    as_of : pandas.Timestamp
        Analysis date (midnight); rows dated after the end of this day break the date rules.
    tolerance : float
        CNY tolerance of the money rules.
    max_amount : float or None
        Plausibility limit of an amount; None: no limit.
    min_year : int or None
        First plausible year of an order.
    first_opened : pandas.Timestamp or None
        The chain's first store opening, when known: orders before it are implausibly old.
    read : dict of ibis.Table
        Each table as read (typed, before any rule).
    kept : dict of ibis.Table
        Each table's rows kept so far; references look values up here.
    campaigns_file : bool
        The export has a campaigns table (else campaigns are derived from the orders and an
        order's campaign cannot be unknown).
    """

    as_of: pd.Timestamp
    tolerance: float = 0.01
    max_amount: float | None = MAX_AMOUNT
    min_year: int | None = MIN_YEAR
    first_opened: pd.Timestamp | None = None
    read: dict[str, ir.Table] = field(default_factory=dict)
    kept: dict[str, ir.Table] = field(default_factory=dict)
    campaigns_file: bool = False

    @property
    def end_of_day(self) -> pd.Timestamp:
        return self.as_of + pd.Timedelta(days=1)

    def plausible_start(self) -> tuple[pd.Timestamp | None, str]:
        """The earliest plausible order time, and why: the configured year or the opening of
        the chain's first store, whichever is later."""
        year = pd.Timestamp(self.min_year, 1, 1) if self.min_year is not None else None
        opened = self.first_opened
        if opened is not None and (year is None or opened > year):
            return opened, "when the chain's first store opened"
        return year, f"the first plausible year, min_year={self.min_year}"

    def words(self) -> dict[str, object]:
        """The values rule messages are formatted with."""
        floor, why = self.plausible_start()
        return {
            "as_of": self.as_of.date(),
            "tol": self.tolerance,
            "limit": self.max_amount,
            "floor": floor.date() if floor is not None else None,
            "floor_why": why,
            "year": self.as_of.year,
        }


Check = Callable[[ir.Table, Context], ir.BooleanValue]


@dataclass(frozen=True)
class Rule:
    """One rule of the contract.

    Attributes
    ----------
    rule : str
        Machine-readable code shown in the quality report (``negative_paid_amount``).
    table, column : str
        Where the rule applies and the column it is reported under.
    kind : str
        How it is evaluated (see the module's docstring).
    action : {"excluded", "kept"}
        What happens to a row breaking it.
    message : str
        What the rows breaking it are, completing "n row(s) ..."; ``{as_of}``, ``{tol}``,
        ``{limit}``, ``{floor}``, ``{floor_why}`` and ``{year}`` come from the
        :class:`Context`.
    check : callable, optional
        ``check(table, context)``: the condition a row must meet (``value`` rules; a row
        where it is NULL breaks the rule), or, for ``cross`` rules, the table's rows that break
        it.
    show : tuple of str
        Columns shown with the examples, after the table's key.
    blank : bool
        A kept row has the column blanked (set empty).
    code : str, optional
        ``type`` rules: the reader's problem code for the column.
    key : tuple of str
        ``copy``/``conflict`` rules: the key columns.
    ref : (table, column, among), optional
        ``reference`` rules: the referenced table and column, looked up among its rows as
        ``read`` or as ``kept``.
    when : callable, optional
        ``when(context)``: the rule applies only when this is true.
    always : bool
        Applied even when validation is turned off (``ChainSource(validate="none")``): an
        order after the analysis date is outside the analysis, not an error.
    """

    rule: str
    table: str
    column: str
    kind: Kind
    action: Action
    message: str
    check: Callable | None = None
    show: tuple[str, ...] = ()
    blank: bool = False
    code: str | None = None
    key: tuple[str, ...] = ()
    ref: tuple[str, str, str] | None = None
    when: Callable[[Context], bool] | None = None
    always: bool = False

    def applies(self, ctx: Context) -> bool:
        return self.when is None or self.when(ctx)

    def what(self, ctx: Context) -> str:
        """The message with the context's values."""
        return self.message.format(**ctx.words())


# --------------------------------------------------------------------------- the rules

_TYPE_PROBLEMS = {
    "timestamp": [
        ("out_of_range", f"outside the dates that can be held ({SPAN[0]:%Y-%m-%d} to {SPAN[1]:%Y-%m-%d})"),
        ("ambiguous", "written day and month first (e.g. 01/10/2025), which could be either; set "
                      "{setting} in the mapping (e.g. \"%d/%m/%Y %H:%M:%S\")"),
        ("unparseable", "with an unparseable {kind} (expected ISO 8601 such as "
                        "2026-03-01 14:05:00, or the mapping's {setting})"),
    ],
    "number": [
        ("non_finite", "with a non-finite number (inf or NaN)"),
        ("unparseable", "with an unparseable number"),
    ],
    "flag": [("unparseable", "with an unparseable true/false value")],
}
_TYPE_PROBLEMS["date"] = _TYPE_PROBLEMS["timestamp"]
_TYPE_PROBLEMS["money"] = _TYPE_PROBLEMS["integer"] = _TYPE_PROBLEMS["number"]


def _column_rules(table: str) -> list[Rule]:
    """Type and empty-value rules, from the contract's columns: a required column's bad value
    excludes its row; an optional column's is blanked."""
    out = []
    for col in TABLES[table].columns:
        for code, what in _TYPE_PROBLEMS.get(col.kind, []):
            # Braces of the layout example are literal once formatted here.
            what = what.format(setting=f"{col.kind}_format", kind=col.kind)
            what = what.replace("{", "{{").replace("}", "}}")
            action: Action = "kept" if col.nullable else "excluded"
            out.append(Rule(f"{code}_{col.kind}", table, col.name, "type", action,
                            what + (" (value blanked)" if col.nullable else ""), code=code))
        # The readers fill an empty stored_value_amount with 0 (no stored-value payment), so
        # only an unreadable one is missing there.
        if not col.nullable:
            out.append(Rule("missing_value", table, col.name, "missing", "excluded",
                            "with an empty required value"))
    return out


def _money(t: ir.Table) -> ir.NumericValue:
    return ibis.greatest(t.gross_amount, t.discount_amount, t.paid_amount, t.stored_value_amount)


def _lines_off(t: ir.Table, ctx: Context) -> ir.Table:
    lines = ctx.kept["order_lines"]
    sums = lines.group_by("order_id").aggregate(_line_sum=lines.line_amount.sum())
    joined = t.join(sums, "order_id")
    return joined.filter((joined._line_sum - joined.paid_amount).abs() > ctx.tolerance * 10).select(t.columns)


def _without_lines(t: ir.Table, ctx: Context) -> ir.Table:
    return t.anti_join(ctx.kept["order_lines"].select("order_id"), "order_id")


def _sent_late(t: ir.Table, ctx: Context) -> ir.Table:
    c = ctx.kept["campaigns"]
    ends = c.select(campaign_id=c.campaign_id, _ends=c.ends_on)
    joined = t.join(ends, "campaign_id")
    return joined.filter(joined.sent_at.truncate("D") > joined._ends).select(t.columns)


def _control_redeemed(t: ir.Table, ctx: Context) -> ir.Table:
    """Control-group sends whose member later redeemed the campaign's coupon."""
    o = ctx.kept["orders"]
    coupon = o.filter(o.coupon_id.notnull() & o.campaign_id.notnull())
    last = coupon.group_by(["campaign_id", "member_id"]).aggregate(_last=coupon.ordered_at.max())
    joined = t.join(last, ["campaign_id", "member_id"])
    return joined.filter((joined.group == "control") & (joined._last >= joined.sent_at)).select(t.columns)


def _value_rules() -> list[Rule]:
    def v(rule, table, column, action, message, check, show, **kw):
        return Rule(rule, table, column, "value", action, message, check, tuple(show), **kw)

    return [
        v("negative_paid_amount", "orders", "paid_amount", "excluded", "with a negative paid amount",
          lambda t, c: t.paid_amount >= 0, ["paid_amount"]),
        v("negative_gross_amount", "orders", "gross_amount", "excluded", "with a negative gross amount",
          lambda t, c: t.gross_amount >= 0, ["gross_amount"]),
        v("negative_discount_amount", "orders", "discount_amount", "excluded", "with a negative discount",
          lambda t, c: t.discount_amount >= 0, ["discount_amount"]),
        v("discount_exceeds_gross", "orders", "discount_amount", "excluded",
          "with a discount larger than the gross amount",
          lambda t, c: t.discount_amount <= t.gross_amount + c.tolerance, ["gross_amount", "discount_amount"]),
        v("after_as_of", "orders", "ordered_at", "excluded", "dated after the analysis date {as_of}",
          lambda t, c: t.ordered_at < c.end_of_day.to_pydatetime(), ["ordered_at"], always=True),
        v("paid_mismatch", "orders", "paid_amount", "kept",
          "where paid_amount differs from gross_amount - discount_amount by more than {tol} CNY",
          lambda t, c: (t.paid_amount - (t.gross_amount - t.discount_amount)).abs() <= c.tolerance,
          ["gross_amount", "discount_amount", "paid_amount"]),
        v("stored_value_exceeds_paid", "orders", "stored_value_amount", "kept",
          "where the stored-value payment exceeds the paid amount",
          lambda t, c: t.stored_value_amount <= t.paid_amount + c.tolerance,
          ["paid_amount", "stored_value_amount"]),
        v("implausibly_old", "orders", "ordered_at", "kept", "dated before {floor} ({floor_why})",
          lambda t, c: t.ordered_at >= c.plausible_start()[0].to_pydatetime(), ["ordered_at"],
          when=lambda c: c.plausible_start()[0] is not None),
        v("implausible_amount", "orders", "paid_amount", "kept",
          "with an amount above the plausibility limit of {limit:,.0f}",
          lambda t, c: _money(t) <= c.max_amount, ["gross_amount", "paid_amount"],
          when=lambda c: c.max_amount is not None),
        v("negative_quantity", "order_lines", "quantity", "excluded",
          "with a negative quantity (returns or corrections are not analysed)",
          lambda t, c: t.quantity >= 0, ["sku", "quantity"]),
        v("zero_quantity", "order_lines", "quantity", "excluded",
          "with a quantity of zero (no pack sold: coupon, service or other pseudo-item lines)",
          lambda t, c: t.quantity != 0, ["sku", "quantity"]),
        v("negative_line_amount", "order_lines", "line_amount", "excluded",
          "with a negative line amount (discount or coupon lines)",
          lambda t, c: t.line_amount >= 0, ["sku", "line_amount"]),
        v("non_positive_days_supply", "order_lines", "days_supply", "kept",
          "with days_supply of zero or less (value blanked)",
          lambda t, c: t.days_supply.isnull() | (t.days_supply > 0), ["sku", "days_supply"], blank=True),
        v("implausible_amount", "order_lines", "line_amount", "kept",
          "with an amount above the plausibility limit of {limit:,.0f}",
          lambda t, c: t.line_amount <= c.max_amount, ["sku", "line_amount"],
          when=lambda c: c.max_amount is not None),
        v("implausible_birth_year", "members", "birth_year", "kept",
          "with a birth year outside 1900-{year} (value blanked)",
          lambda t, c: t.birth_year.isnull() | t.birth_year.between(1900, c.as_of.year), ["birth_year"],
          blank=True),
        v("unknown_tier", "members", "tier", "kept", f"with a tier other than {', '.join(TIERS)}",
          lambda t, c: t.tier.isin(TIERS), ["tier"]),
        v("joined_after_as_of", "members", "joined_on", "kept", "who joined after the analysis date {as_of}",
          lambda t, c: t.joined_on < c.end_of_day.to_pydatetime(), ["joined_on"]),
        v("unknown_group", "campaign_members", "group", "excluded",
          f"with a group other than {' / '.join(CAMPAIGN_GROUPS)}",
          lambda t, c: t.group.isin(CAMPAIGN_GROUPS), ["member_id", "group"]),
        v("sent_after_as_of", "campaign_members", "sent_at", "excluded", "sent after the analysis date {as_of}",
          lambda t, c: t.sent_at < c.end_of_day.to_pydatetime(), ["member_id", "sent_at"]),
        v("unknown_send_channel", "campaign_members", "channel", "kept",
          f"with a channel other than {', '.join(SEND_CHANNELS)}",
          lambda t, c: t.channel.isin(SEND_CHANNELS), ["member_id", "channel"]),
        v("campaign_ends_before_start", "campaigns", "ends_on", "excluded", "ending before they start",
          lambda t, c: t.ends_on >= t.starts_on, ["starts_on", "ends_on"]),
    ]


def _key_rules() -> list[Rule]:
    out = []
    for name, table in TABLES.items():
        if table.key is not None:
            k = table.key
            out += [
                Rule(f"duplicate_{k}", name, k, "copy", "excluded",
                     f"repeating an earlier row with the same {k} (copy dropped)", key=(k,)),
                Rule(f"conflicting_{k}", name, k, "conflict", "excluded",
                     f"sharing a {k} with different content (all versions excluded)", key=(k,)),
            ]
    pair = ("campaign_id", "member_id")
    return out + [
        Rule("duplicate_send", "campaign_members", "member_id", "copy", "excluded",
             "repeating an earlier row of the same campaign and member (copy dropped)", key=pair,
             show=pair),
        Rule("conflicting_send", "campaign_members", "member_id", "conflict", "excluded",
             "listing a member twice in one campaign with different group, time or channel "
             "(all versions excluded)", key=pair, show=(*pair, "group")),
    ]


def _cross_rules() -> list[Rule]:
    """References and rules across tables, in the order they are evaluated."""
    pair = ("campaign_id", "member_id")
    return [
        Rule("unknown_home_store", "members", "home_store_id", "reference", "kept",
             "belonging to a store not in the stores table", ref=("stores", "store_id", "kept")),
        Rule("unknown_store", "orders", "store_id", "reference", "excluded",
             "referencing a store not in the stores table", ref=("stores", "store_id", "kept")),
        Rule("unknown_member", "orders", "member_id", "reference", "excluded",
             "referencing a member not in the members table", ref=("members", "member_id", "kept")),
        Rule("unknown_order", "order_lines", "order_id", "reference", "excluded",
             "referencing an order not in the orders file", ref=("orders", "order_id", "read")),
        Rule("line_of_excluded_order", "order_lines", "order_id", "reference", "excluded",
             "belonging to an order that was excluded", ref=("orders", "order_id", "kept")),
        Rule("lines_do_not_sum_to_paid", "orders", "paid_amount", "cross", "kept",
             "whose order lines do not add up to paid_amount", _lines_off, show=("paid_amount",)),
        Rule("order_without_lines", "orders", "order_id", "cross", "kept",
             "with no order lines (product analyses leave them out)", _without_lines),
        Rule("unknown_campaign", "orders", "campaign_id", "reference", "kept",
             "referencing a campaign not in the campaigns table",
             ref=("campaigns", "campaign_id", "kept"), when=lambda c: c.campaigns_file),
        *[r for r in _key_rules() if r.table == "campaign_members"],
        Rule("unknown_campaign", "campaign_members", "campaign_id", "reference", "excluded",
             "referencing a campaign not in the campaigns table (or in no order)",
             ref=("campaigns", "campaign_id", "kept"), show=pair),
        Rule("unknown_member", "campaign_members", "member_id", "reference", "excluded",
             "referencing a member not in the members table", ref=("members", "member_id", "kept"),
             show=pair),
        Rule("sent_after_campaign_end", "campaign_members", "sent_at", "cross", "kept",
             "sent after the campaign's last day", _sent_late, show=(*pair, "sent_at")),
        Rule("control_redeemed_coupon", "campaign_members", "group", "cross", "kept",
             "in the control group who nevertheless redeemed the campaign's coupon "
             "(contamination: the measured effect is diluted)", _control_redeemed,
             show=(*pair, "group")),
    ]


RULES: tuple[Rule, ...] = (
    *[r for t in TABLES for r in _column_rules(t)],
    *_value_rules(),
    *[r for r in _key_rules() if r.table != "campaign_members"],
    *_cross_rules(),
)
"""Every rule, in evaluation order within each stage."""


def rules_for(table: str, kinds: Sequence[str]) -> list[Rule]:
    """The rules of ``table`` of the given kinds, in :data:`RULES` order."""
    return [r for r in RULES if r.table == table and r.kind in kinds]


_ROW_KINDS = ("type", "missing", "value")
_KEY_KINDS = ("copy", "conflict")
CROSS_KINDS = ("reference", "cross")


_PARAMETERS = {"{as_of}": "`as_of`", "{tol}": "`amount_tolerance`", "{limit:,.0f}": "`max_amount`",
               "{floor} ({floor_why})": "`min_year` or the first store's opening",
               "{year}": "the analysis year"}


def rules_markdown() -> str:
    """:data:`RULES` as a Markdown table, as published in ``docs/data-contract.md``.

    Type and empty-value rules, one per column, are shown once per rule with the tables they
    apply to."""
    def action(r: Rule) -> str:
        if r.action == "excluded":
            return "row excluded"
        return "value blanked, kept" if r.blank else "kept, warned"

    out = ["| rule | table | column | action | rows ... |", "| --- | --- | --- | --- | --- |"]
    done = set()
    for r in RULES:
        if r.kind in ("type", "missing"):
            if r.rule in done:
                continue
            done.add(r.rule)
            same = [x for x in RULES if x.rule == r.rule]
            tables = ", ".join(dict.fromkeys(x.table for x in same))
            kind = TABLES[r.table].column(r.column).kind
            column = "every required column" if r.kind == "missing" else f"every {kind} column"
            actions = {x.action for x in same}
            how = ("row excluded; where the column may be empty, value blanked and kept"
                   if actions == {"excluded", "kept"} else
                   "row excluded" if actions == {"excluded"} else "value blanked, kept")
            what = r.message.replace(" (value blanked)", "").replace("{{", "{").replace("}}", "}")
            out.append(f"| `{r.rule}` | {tables} | {column} | {how} | {what} |")
            continue
        what = r.message
        for placeholder, name in _PARAMETERS.items():
            what = what.replace(placeholder, name)
        out.append(f"| `{r.rule}` | {r.table} | `{r.column}` | {action(r)} | {what} |")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- the evaluator


@dataclass
class Step:
    """One stage of the rules on one table.

    Attributes
    ----------
    kept : ibis.Table
        The rows the stage keeps (lazy), with blanked values blanked.
    rules : list of Rule
        The rules evaluated, in order.
    flags : ibis.Table or None
        The rows breaking any of them: ``_pos``, ``_first`` (the index in :attr:`rules` of the
        first rule that excludes the row, or NULL) and, for each warning ``i``, ``_r<i>``
        (the row breaks it). None when the table has no ``_pos`` (nothing is reported).
    """

    kept: ir.Table
    rules: list[Rule]
    flags: ir.Table | None

    def positions(self) -> dict[int, pd.Series]:
        """Per rule (by its index in :attr:`rules`), the ``_pos`` of the rows it counts."""
        if self.flags is None or not self.rules:
            return {}
        df = _run(self.flags)
        first = df["_first"]
        return {i: df.loc[(first == i) if r.action == "excluded"
                          else first.isna() & df[f"_r{i}"].astype(bool), "_pos"].sort_values()
                for i, r in enumerate(self.rules)}


class Evaluator:
    """Apply :data:`RULES` to Ibis tables.

    Parameters
    ----------
    ctx : Context
    materialize : callable, optional
        ``materialize(expr) -> ibis.Table``: compute a small intermediate table once (keys
        seen twice, unknown references of a keyed table), so that the kept rows, queried
        many times, only filter on it; a rule that finds nothing then costs nothing. Without
        it everything stays one lazy expression (cheaper when it is run once, as by the
        loader).
    values : callable, optional
        ``values(table, column) -> ibis.Table``: the distinct values of a column as read
        (default: from ``ctx.read``); a reader can give a cheaper query (the engine takes
        the distinct raw cells first, then types only those).
    """

    def __init__(self, ctx: Context, materialize: Callable[[ir.Table], ir.Table] | None = None,
                 values: Callable[[str, str], ir.Table] | None = None):
        self.ctx = ctx
        self.materialize = materialize
        self.eager = materialize is not None
        self.values = values or (lambda table, col: ctx.read[table].select(col).distinct())

    # -- row rules ---------------------------------------------------------------------
    def rows(self, t: ir.Table, table: str, *, only_always: bool = False) -> Step:
        """Type, empty-value and value rules on single rows of ``t``.

        ``type`` rules need the reader's ``_problem_<column>`` codes and are skipped where
        ``t`` has none (the ``missing`` rule then excludes the unreadable value's row).

        With ``materialize``, a keyed table (read once anyway for its keys) and a row number
        ``_row`` in ``t`` (a Parquet file's), the rows excluded by rules other than the
        ``always`` ones are found once, in one pass over the table, as a small table of row
        numbers (usually empty): later queries then read only the columns they need instead
        of every column the rules look at. Other tables (order lines: the many rows) are
        filtered when queried, so that a query that does not read them pays nothing.
        """
        rules = [r for r in rules_for(table, _ROW_KINDS) if r.applies(self.ctx)
                 and (r.kind != "type" or f"_problem_{r.column}" in t.columns)
                 and (r.always or not only_always)]
        broken = [self._row_broken(t, r) for r in rules]
        ok = [self._row_ok(t, r) for r in rules]
        once = [i for i, r in enumerate(rules) if r.action == "excluded" and not r.always]
        if not (self.eager and once and TABLES[table].key is not None
                and "_row" in t.columns and "_pos" not in t.columns):
            return _step(t, rules, broken, ok)
        bad = self.materialize(t.filter(ibis.or_(*[broken[i] for i in once])).select("_row"))
        rest = [i for i in range(len(rules)) if i not in once]
        step = _step(t, [rules[i] for i in rest], [broken[i] for i in rest], [ok[i] for i in rest])
        if not _empty(bad):
            step.kept = step.kept.filter(~step.kept._row.isin(bad._row))
        return step

    def _row_ok(self, t: ir.Table, r: Rule) -> ir.BooleanValue:
        """The condition as a filter (a NULL drops the row, as a broken rule does)."""
        if r.kind == "type":
            return t[f"_problem_{r.column}"].fill_null("") != r.code
        if r.kind == "missing":
            return t[r.column].notnull()
        return r.check(t, self.ctx)

    def _row_broken(self, t: ir.Table, r: Rule) -> ir.BooleanValue:
        if r.kind in ("type", "missing"):
            return ~self._row_ok(t, r)
        return _broken(r.check(t, self.ctx))

    # -- keys ----------------------------------------------------------------------------
    def keys(self, t: ir.Table, table: str, read: ir.Table | None = None) -> Step:
        """Rows sharing a key: exact copies after the first go, conflicting versions all go.

        Keys seen more than once are looked for in ``read`` (default ``t``), which is cheaper
        than in ``t`` when ``t`` is ``read`` with the row rules applied; the few candidates
        are then resolved on ``t``.
        """
        rules = rules_for(table, _KEY_KINDS)  # the copy rule, then the conflict rule
        if not rules:
            return Step(t, [], None)
        key = list(rules[0].key)
        cols = TABLES[table].column_names
        src = read if read is not None else t
        # Keys seen twice are looked for by their hash (a table of integers is far cheaper
        # than one of strings); a shared hash only makes its rows candidates, which are then
        # compared by their values.
        seen = src.filter(*[src[k].notnull() for k in key]).select(_h=_hash(src, key))
        counts = seen.group_by("_h").aggregate(_n=ibis._.count())
        candidates = counts.filter(counts._n > 1).select("_h")
        if self.eager:
            candidates = self.materialize(candidates)
            if _empty(candidates):
                return Step(t, rules, None)
        among = ibis.and_(*[t[k].notnull() for k in key]) & _hash(t, key).isin(candidates._h)
        inside = t.filter(among)
        versions = inside.select(cols).distinct().group_by(key).aggregate(_n=ibis._.count())
        conflicting = versions.filter(versions._n > 1).select(key).mutate(_conflict=True)
        order = [inside._pos] if "_pos" in t.columns else []
        marked = inside.mutate(_copy=ibis.row_number().over(group_by=cols, order_by=order) > 0)
        marked = marked.left_join(conflicting, key)
        marked = marked.select(*inside.columns, _r0=marked._copy & marked._conflict.isnull(),
                               _r1=marked._conflict.notnull())
        resolved = marked.filter(~marked._r0 & ~marked._r1).drop("_r0", "_r1")
        kept = t.filter(~among).union(resolved)
        flags = None
        if "_pos" in t.columns:
            flags = marked.select("_pos", _first=ibis.cases((marked._r1, 1), (marked._r0, 0),
                                                            else_=ibis.null("int64")))
            flags = flags.filter(flags._first.notnull())
        return Step(kept, rules, flags)

    # -- across tables -------------------------------------------------------------------
    def cross(self, t: ir.Table, rules: Sequence[Rule]) -> Step:
        """Reference and cross-table rules of one table on ``t`` (its kept rows), in order."""
        rules = self.cross_rules(rules, report="_pos" in t.columns)
        broken = [self._cross_broken(t, r) for r in rules]
        return _step(t, [r for r, b in zip(rules, broken, strict=True) if b is not None],
                     [b for b in broken if b is not None])

    def cross_rules(self, rules: Sequence[Rule], *, report: bool) -> list[Rule]:
        """The rules among ``rules`` that apply; without a report (no ``_pos``) only those
        that can exclude a row not excluded otherwise."""
        return [r for r in rules if r.applies(self.ctx)
                and (report or (r.action == "excluded" and not _subsumed(r)))]

    def _cross_broken(self, t: ir.Table, rule: Rule) -> ir.BooleanValue | None:
        if rule.kind == "cross":  # warnings on rows found by a query across tables
            return t._pos.isin(rule.check(t, self.ctx)._pos)
        ref_table, ref_col, among = rule.ref
        source = (self.ctx.read if among == "read" else self.ctx.kept)[ref_table]
        col = rule.column
        if self.eager and TABLES[rule.table].key is not None:
            # Keyed tables: the few unknown values are found once; later queries filter on
            # them. Other tables (order lines: the many rows) semi-join when queried.
            values = self.values(rule.table, col)
            unknown = self.materialize(values.filter(values[col].notnull())
                                       .anti_join(source.select(**{col: source[ref_col]}), col))
            if _empty(unknown):
                return None
            found = t[col].isin(unknown[col])
        else:
            found = ~t[col].isin(source[ref_col])
        # An empty value refers to nothing: allowed where the column may be empty.
        return found.fill_null(not TABLES[rule.table].column(col).nullable)


Stage = Literal["rows", "keys", "cross"]


def check_tables(
    evaluator: Evaluator,
    tables: Mapping[str, ir.Table],
    validate: Literal["full", "rows", "none"] = "full",
    *,
    on_step: Callable[[str, Stage, Step], ir.Table | None] | None = None,
    publish: Callable[[str, ir.Table], ir.Table] | None = None,
    derive_campaigns: Callable[[ir.Table], ir.Table] | None = None,
) -> dict[str, ir.Table]:
    """The rows of each table the rules keep: the one validation loop of every reader.

    Each table (contract order) goes through its row rules, then its keys; then the
    references and cross-table rules run, one table's run of rules at a time in
    :data:`RULES` order, each on the rows the earlier ones kept (so order lines are checked
    against the orders that passed their own references). ``evaluator.ctx.read`` and
    ``.kept`` are filled as it goes.

    Parameters
    ----------
    evaluator : Evaluator
    tables : mapping of str to ibis.Table
        Each table as read (typed), by contract name; absent optional tables are left out.
    validate : {"full", "rows", "none"}
        ``"full"``: every rule; ``"rows"``: the rules on single rows; ``"none"``: only the
        ``always`` rules (orders after ``as_of``).
    on_step : callable, optional
        ``on_step(table, stage, step)``, after every step: the loader reports the step's
        findings and returns the kept rows as a new table (None: ``step.kept``).
    publish : callable, optional
        ``publish(table, kept)`` once a table's rows are final, returning the table later
        rules refer to (the engine's named view); default ``kept`` itself.
    derive_campaigns : callable, optional
        ``derive_campaigns(kept_orders)``: the campaigns of a chain without a campaigns
        table, made before the send lists are checked against them, else at the end.

    Returns
    -------
    dict of str to ibis.Table
        The kept rows of each table, ``campaigns`` included when derived.
    """
    ctx = evaluator.ctx
    done = on_step or (lambda name, stage, step: None)
    publish = publish or (lambda name, kept: kept)

    def run(name: str, stage: Stage, step: Step) -> ir.Table:
        kept = done(name, stage, step)
        return step.kept if kept is None else kept

    names = [n for n in TABLES if n in tables]
    for name in names:
        read = ctx.read[name] = tables[name]
        kept = run(name, "rows", evaluator.rows(read, name, only_always=validate == "none"))
        if validate == "full":
            kept = run(name, "keys", evaluator.keys(kept, name, read=read))
        ctx.kept[name] = kept
    groups = []
    if validate == "full":
        cross = [r for r in RULES if r.kind in CROSS_KINDS and r.table in tables]
        for name, group in itertools.groupby(cross, key=lambda r: r.table):
            group = evaluator.cross_rules(list(group), report="_pos" in ctx.kept[name].columns)
            if group:
                groups.append((name, group))
    last = {name: i for i, (name, _) in enumerate(groups)}
    for name in names:
        if name not in last:
            ctx.kept[name] = publish(name, ctx.kept[name])
    for i, (name, group) in enumerate(groups):
        if name == "campaign_members" and "campaigns" not in ctx.kept and derive_campaigns:
            ctx.kept["campaigns"] = derive_campaigns(ctx.kept["orders"])
        ctx.kept[name] = run(name, "cross", evaluator.cross(ctx.kept[name], group))
        if last[name] == i:
            ctx.kept[name] = publish(name, ctx.kept[name])
    if "campaigns" not in ctx.kept and derive_campaigns:
        ctx.kept["campaigns"] = derive_campaigns(ctx.kept["orders"])
    return dict(ctx.kept)


def _step(t: ir.Table, rules: list[Rule], broken: list[ir.BooleanValue],
          ok: list[ir.BooleanValue] | None = None) -> Step:
    """Keep the rows no excluding rule breaks (blanking what kept rules blank) and flag each
    row under the first rule that excludes it, or under each warning of a kept row.

    ``ok``: the conditions themselves, a shorter filter than ``NOT broken``."""
    ok = ok or [~b for b in broken]
    excluded = [b for r, b in zip(rules, broken, strict=True) if r.action == "excluded"]
    kept = t.filter(*[k for r, k in zip(rules, ok, strict=True) if r.action == "excluded"]) \
        if excluded else t
    blanks = {r.column: b for r, b in zip(rules, broken, strict=True) if r.blank}
    if blanks:
        kept = kept.mutate(**{c: ibis.ifelse(b, ibis.null(kept[c].type()), kept[c])
                              for c, b in blanks.items()})
    if "_pos" not in t.columns or not rules:
        return Step(kept, rules, None)
    first = ibis.cases(*[(b, i) for i, (r, b) in enumerate(zip(rules, broken, strict=True))
                         if r.action == "excluded"], else_=ibis.null("int64")) \
        if excluded else ibis.null("int64")
    warn = {f"_r{i}": b.fill_null(False) for i, (r, b) in enumerate(zip(rules, broken, strict=True))
            if r.action == "kept"}
    marked = t.select("_pos", _first=first, **warn)
    return Step(kept, rules, marked.filter(ibis.or_(marked._first.notnull(), *[marked[c] for c in warn])))


@ibis.udf.scalar.builtin(name="hash")
def _hash1(a: str) -> dt.uint64:
    """DuckDB's hash of a value."""


@ibis.udf.scalar.builtin(name="hash")
def _hash2(a: str, b: str) -> dt.uint64:
    """DuckDB's hash of two values."""


def _hash(t: ir.Table, key: Sequence[str]) -> ir.IntegerValue:
    """One integer per key value (equal keys, equal hashes). On DuckDB its own ``hash``:
    Ibis's ``Value.hash`` detours through a bit string there, dearer than grouping the
    strings themselves (and DuckDB's unsigned hashes have no Spark type)."""
    if t._find_backend().name == "duckdb":
        return _hash1(t[key[0]]) if len(key) == 1 else _hash2(*[t[k] for k in key])
    return functools.reduce(operator.xor, [t[k].hash() for k in key])


def _broken(check: ir.BooleanValue) -> ir.BooleanValue:
    return ~check.fill_null(False)


def _empty(table: ir.Table) -> bool:
    return _run(table.count().as_table()).iloc[0, 0] == 0


def _run(expr: ir.Table) -> pd.DataFrame:
    """``expr``'s rows. On DuckDB its SQL is compiled once per shape: the rules build the same
    expressions at every load, only on other tables (each load registers its own frames), and
    compiling costs more than running them on a small chain."""
    backend = expr._find_backend()
    if backend.name != "duckdb":
        return core_backend.to_pandas(expr, backend)
    tables = list(dict.fromkeys(expr.op().find(ops.DatabaseTable)))
    shape = expr.op().replace({t: ops.UnboundTable(name=f"__rx_table_{i}__", schema=t.schema)
                               for i, t in enumerate(tables)})
    sql = _sql(shape)
    for i, t in enumerate(tables):
        sql = sql.replace(sql_name(f"__rx_table_{i}__"), sql_name(t.name))
    return backend.con.sql(sql).to_arrow_table().to_pandas()


@functools.lru_cache(maxsize=256)
def _sql(shape: ops.Node) -> str:
    return ibis.to_sql(shape.to_expr(), dialect="duckdb", pretty=False)


def _subsumed(rule: Rule) -> bool:
    """A reference to the rows as read is implied by a later one to the kept rows (kept rows
    are among the read ones): only the quality report tells the two apart."""
    table, col, among = rule.ref
    return among == "read" and any(
        r.ref == (table, col, "kept") and r.table == rule.table and r.column == rule.column
        and r.action == "excluded" for r in RULES)
