"""Small numbers and unfinished periods in store comparisons, on a demo chain of many tiny
stores (DemoConfig shape "tiny_stores")."""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rxrepurchase import report_data as rd  # noqa: E402
from rxrepurchase.cohorts import COHORTS  # noqa: E402
from rxrepurchase.demo import DemoConfig, write_demo_chain  # noqa: E402
from rxrepurchase.loading import load_chain  # noqa: E402
from rxrepurchase.metrics import repurchase_rates  # noqa: E402

AS_OF = "2026-09-01"  # the 1st: September has one day


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-stores")
    write_demo_chain(folder, DemoConfig(n_members=3000, n_stores=25, months=6, seed=6,
                                        end_date="2026-09-30", shape="tiny_stores"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # later orders are future rows
        chain = load_chain(folder, as_of=AS_OF)
    return chain, pd.DataFrame([rd.store_headline(chain, s) for s in chain.store_ids])


def test_ranking_ranks_no_store_below_the_minimum(tiny):
    chain, stores = tiny
    ranked, apart = rd.store_ranking(stores)
    # The generator option made stores of every size: some below 30 active members, some above.
    assert len(ranked) >= 5 and len(apart) >= 5
    assert (ranked["active_members"] >= 30).all() and (apart["active_members"] < 30).all()
    assert sorted([*ranked["store_id"], *apart["store_id"]]) == sorted(chain.store_ids)
    assert ranked["user_repurchase_rate"].is_monotonic_decreasing
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    # The page: the ranked table holds exactly the ranked stores, the others come after.
    page = rd.chain_ranking_html(stores)
    first_table, rest = page.split("</table>", 1)
    assert all(f"<td>{s}</td>" in first_table for s in ranked["store_id"])
    assert not any(f"<td>{s}</td>" in first_table for s in apart["store_id"])
    assert all(f"<td>{s}</td>" in rest for s in apart["store_id"])
    assert "at least 30 active members" in page
    # The chain median every store is compared with is the median of the ranked stores only.
    start, end = rd.report_period(chain.as_of, 90)
    rates = repurchase_rates(chain.orders, (start, end), by="store_id")
    big = rates.loc[rates["members"] >= 30, "user_repurchase_rate"]
    assert stores["chain_median_user_repurchase_rate"].iloc[0] == pytest.approx(big.median())
    assert big.median() != pytest.approx(rates["user_repurchase_rate"].median())
    # The bar chart shows the ranked stores, each with its n.
    fig, ax = plt.subplots()
    rd.plot_store_rates(stores, ax=ax)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == list(ranked["store_id"])
    assert [t.get_text() for t in ax.texts[: len(ranked)]] == [f"n={n}" for n in ranked["active_members"]]
    plt.close(fig)
    # A higher minimum ranks fewer stores.
    strict = pd.DataFrame([rd.store_headline(chain, s, min_active_members=100) for s in chain.store_ids])
    assert (rd.store_ranking(strict)[0]["active_members"] >= 100).all()


def test_rates_carry_a_wilson_interval(tiny):
    _, stores = tiny
    # Hand-computed Wilson interval, z = 1.959964: k of n -> centre (p + z^2/2n) / (1 + z^2/n),
    # half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
    z = 1.959963984540054
    for row in stores.itertuples():
        n, k = row.active_members, row.repeat_members
        if n == 0:
            assert pd.isna(row.user_repurchase_low) and pd.isna(row.user_repurchase_high)
            continue
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert row.user_repurchase_low == pytest.approx(centre - half)
        assert row.user_repurchase_high == pytest.approx(centre + half)
        assert row.user_repurchase_low <= row.user_repurchase_rate <= row.user_repurchase_high


def test_unfinished_month_is_marked_and_not_drawn_as_a_drop(tiny):
    chain, stores = tiny
    store = rd.store_ranking(stores)[0]["store_id"].iloc[0]
    table = rd.monthly_repurchase(chain, store)
    last = table.iloc[-1]
    assert last["month"] == pd.Timestamp("2026-09-01") and last["partial"] and last["days"] == 1
    assert not table["partial"].iloc[:-1].any() and (table["days"].iloc[:-1] >= 28).all()
    fig, ax = plt.subplots()
    rd.plot_monthly_repurchase(table, ax=ax)
    for line in ax.get_lines():  # no line reaches the one-day month
        assert pd.Timestamp("2026-09-01") not in set(pd.to_datetime(line.get_xdata()))
    assert any("partial: 1 d" in t.get_text() for t in ax.texts)
    plt.close(fig)


def test_cohort_table_shows_each_cohorts_interval(tiny):
    chain, stores = tiny
    store = rd.store_ranking(stores)[0]["store_id"].iloc[0]
    cohorts = rd.store_cohorts(chain, store)
    cmp = cohorts["comparison"].set_index("subsidy_cohort")
    page = rd.cohort_table_html(cohorts["comparison"])
    row = page.split("User repurchase rate, whole history, 95% interval</th>", 1)[1].split("</tr>", 1)[0]
    cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
    low, high = rd.repurchase_interval(cmp["repeat_members"], cmp["members"])
    assert cells == [f"{100 * lo:.0f}%–{100 * hi:.0f}%" for lo, hi in zip(low, high, strict=True)]
    # The page says who the store's members are and how subsidies were judged.
    assert "everyone who bought here at least once" in rd.cohort_summary(cohorts["comparison"])
    note = rd.calibration_note(cohorts["members"])
    assert "routine member discount" in note and "undetermined" in note
    assert "subsidised share at least 50% (of 3 or more purchases)" in note


def test_report_charts_order_the_cohorts_as_the_cohorts_module():
    # report_data's palette is the charts' order of cohorts (a store kernel does not import
    # rxrepurchase.cohorts): it must name every cohort, in COHORTS' order.
    assert tuple(rd.COHORT_COLORS) == COHORTS
