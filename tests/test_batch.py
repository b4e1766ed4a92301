"""The batch step against the pandas path: each store's precomputed slice equals what the
store's report would compute from the loaded chain; and the compressed model fits equal plain
lifetimes fits."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter

from rxrepurchase import batch, metrics, rfm
from rxrepurchase.cli import main
from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.errors import OutputError
from rxrepurchase.loading import load_chain
from rxrepurchase.models import BGNBDModel, GammaGammaModel

AS_OF = "2026-09-30"
CUT = "2026-04-30"
CONFIG = DemoConfig(n_members=800, n_stores=4, months=12, seed=9, end_date=AS_OF)
MONEY = {"check_exact": False, "rtol": 1e-9}
KEYS = {
    "stores": ["store_id"],
    "orders": ["order_id"],
    # An order can hold two lines of one SKU; CSV gives no row number to keep their order.
    "order_lines": ["order_id", "sku", "quantity", "line_amount", "days_supply"],
    "members": ["member_id"],
    "campaigns": ["campaign_id"],
}


@pytest.fixture(scope="module", params=["parquet", "csv"])
def batch_run(request, tmp_path_factory):
    """(loaded chain, batch folder, manifest) for the demo chain in one file format."""
    data = tmp_path_factory.mktemp(f"chain_{request.param}")
    write_demo_chain(data, CONFIG, file_format=request.param, overwrite=True)
    out = tmp_path_factory.mktemp(f"batch_{request.param}")
    manifest = batch.precompute_chain(data, out, as_of=AS_OF, calibration_end=CUT, memory_limit="1GB",
                                      overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain = load_chain(data, as_of=AS_OF)
    return chain, out, manifest


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def _assert_same_tables(expected, got) -> None:
    for name, keys in KEYS.items():
        pd.testing.assert_frame_equal(
            _sorted(getattr(expected, name), keys), _sorted(getattr(got, name), keys), **MONEY
        )


def test_manifest_records_the_run(batch_run):
    chain, out, manifest = batch_run
    on_disk = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    assert manifest["as_of"] == AS_OF and manifest["calibration_end"] == CUT
    assert manifest["rows_loaded"] == chain.quality.rows_loaded
    assert manifest["stores"] == chain.orders.groupby("store_id").size().to_dict()
    assert not (out / ".work").exists()  # the DuckDB work files are cleaned up


def test_store_slice_equals_the_loaded_chain_for_the_store(batch_run):
    chain, out, _ = batch_run
    rates = metrics.repurchase_rates(chain.orders, "M", "store_id")
    cohorts = metrics.cohort_retention(chain.orders, "M", "store_id", as_of=AS_OF)
    for store_id in chain.store_ids:
        got = batch.load_store_slice(out, store_id)
        expected = chain.for_store(store_id)
        _assert_same_tables(expected, got.chain)
        assert got.chain.as_of == chain.as_of

        orders = expected.orders
        summary = rfm.rfm_summary(orders, as_of=AS_OF)
        pd.testing.assert_frame_equal(summary, got.rfm, **MONEY)
        assert summary.attrs == got.rfm.attrs
        np.testing.assert_array_equal(summary["frequency"], got.rfm["frequency"])

        split = rfm.calibration_holdout(orders, CUT, holdout_end=AS_OF)
        pd.testing.assert_frame_equal(split.calibration, got.calibration, **MONEY)
        assert split.calibration.attrs == got.calibration.attrs
        pd.testing.assert_frame_equal(split.holdout, got.holdout, **MONEY)

        pd.testing.assert_frame_equal(
            rates[rates["store_id"] == store_id].reset_index(drop=True), got.repurchase_monthly
        )
        pd.testing.assert_frame_equal(
            cohorts[cohorts["store_id"] == store_id].reset_index(drop=True), got.cohorts
        )
        assert got.rfm["frequency"].sum() > 0 and len(got.repurchase_monthly) >= 10


def test_slice_feeds_the_models(batch_run):
    chain, out, _ = batch_run
    store_id = chain.store_ids[0]
    got = batch.load_store_slice(out, store_id)
    fitted = BGNBDModel().fit(got.rfm)
    direct = BGNBDModel().fit(rfm.rfm_summary(chain.for_store(store_id).orders, as_of=AS_OF))
    np.testing.assert_allclose(fitted.params_, direct.params_, rtol=1e-9)


def test_errors_name_the_folder_and_store(batch_run, tmp_path):
    chain, out, _ = batch_run
    with pytest.raises(batch.BatchError, match="unknown store 'S-NONE'"):
        batch.load_store_slice(out, "S-NONE")
    with pytest.raises(batch.BatchError, match="manifest.json does not exist"):
        batch.load_store_slice(tmp_path, chain.store_ids[0])
    with pytest.raises(OutputError, match="holds files already"):
        batch.precompute_chain(chain.source, out, as_of=AS_OF)
    with pytest.raises(batch.BatchError, match="must be before as_of"):
        batch.precompute_chain(chain.source, tmp_path / "x", as_of=AS_OF, calibration_end=AS_OF)
    with pytest.raises(batch.BatchError, match="calibration_end .* must be before as_of"), \
            pytest.warns(FutureWarning, match=r"precompute_chain\(cut=\.\.\.\) is renamed"):
        batch.precompute_chain(chain.source, tmp_path / "x", as_of=AS_OF, cut=AS_OF)  # old name


def test_store_folders_are_numbered_and_an_old_layout_is_refused(batch_run, tmp_path):
    chain, out, manifest = batch_run
    # A store's folder is its position among the sorted store ids, never the id (data).
    assert manifest["store_parts"] == {sid: n for n, sid in enumerate(sorted(chain.store_ids), 1)}
    for name in ("orders", "order_lines", "members"):
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(
            f"store_part={n}" for n in manifest["store_parts"].values())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest | {"layout_version": 2}))
    with pytest.raises(batch.BatchError, match="layout version 2 is not 3; rerun `rxrepurchase precompute`"):
        batch.load_store_slice(tmp_path, chain.store_ids[0])


def test_stores_sharing_a_folder_and_a_store_without_rows(tmp_path, monkeypatch):
    data = tmp_path / "chain"
    write_demo_chain(data, DemoConfig(n_members=200, n_stores=2, months=4, seed=3, end_date=AS_OF),
                     file_format="parquet")
    stores = pd.read_parquet(data / "stores.parquet")
    new = stores.iloc[[0]].assign(store_id="S999")  # opened after as_of: no orders, no members
    pd.concat([stores, new]).to_parquet(data / "stores.parquet", index=False)
    monkeypatch.setattr(batch, "MAX_STORE_FOLDERS", 2)  # 3 stores: 2 to a folder
    manifest = batch.precompute_chain(data, tmp_path / "out", as_of=AS_OF, memory_limit="500MB")
    assert manifest["stores"]["S999"] == 0
    assert manifest["store_parts"] == {"S01": 1, "S02": 1, "S999": 2}
    assert not (tmp_path / "out" / "orders" / "store_part=2").exists()  # S999 has no orders
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain = load_chain(data, as_of=AS_OF)
    for store_id in ("S01", "S02", "S999"):
        expected = chain.for_store(store_id)
        got = batch.load_store_slice(tmp_path / "out", store_id)
        _assert_same_tables(expected, got.chain)
        if store_id == "S999":
            assert expected.orders.empty and got.rfm.empty
        else:
            pd.testing.assert_frame_equal(rfm.rfm_summary(expected.orders, as_of=AS_OF), got.rfm, **MONEY)


def test_cli_precompute(tmp_path, capsys):
    data = tmp_path / "chain"
    write_demo_chain(data, DemoConfig(n_members=300, n_stores=2, months=6, seed=1,
                                      end_date=AS_OF), file_format="parquet")
    code = main(["precompute", "--data", str(data), "--out", str(tmp_path / "out"),
                 "--as-of", AS_OF, "--memory-limit", "500MB"])
    assert code == 0
    assert "2 stores" in capsys.readouterr().out
    assert batch.read_manifest(tmp_path / "out")["time_unit"] == "days"
    assert main(["precompute", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert "holds files already" in capsys.readouterr().err


# --------------------------------------------------------------------------- compressed fits


def test_compressed_fits_equal_plain_lifetimes(batch_run):
    """Fitting on unique rows with weights= gives plain lifetimes' parameters (1e-6)."""
    chain, _, _ = batch_run
    summary = rfm.rfm_summary(chain.orders, as_of=AS_OF, time_unit="weeks")
    model = BGNBDModel().fit(summary)
    assert model.n_unique_rows_ < len(summary)  # the fit really ran on compressed rows
    plain = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    np.testing.assert_allclose(
        model.params_.to_numpy(), [plain.params_[k] for k in ("r", "alpha", "a", "b")], rtol=1e-6
    )
    spend = GammaGammaModel().fit(summary)
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    plain_gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    np.testing.assert_allclose(
        spend.params_.to_numpy(), [plain_gg.params_[k] for k in ("p", "q", "v")], rtol=1e-6
    )


def test_memory_limit_sizes_and_a_bad_one():
    assert batch.memory_bytes("4GB") == 4 * 1000**3
    assert batch.memory_bytes("1.5GiB") == 3 * 2**29
    assert batch.memory_bytes("500 mb") == 500 * 1000**2
    with pytest.raises(batch.BatchError, match="'4 gigs' is not a size"):
        batch.memory_bytes("4 gigs")
