"""Scheduled runs: the config file, the lock, exit codes, and the whole `rxrepurchase run` on a
small demo chain against a real SMTP server (STARTTLS + AUTH) on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from smtp_server import PASSWORD, USER, Recorder, self_signed_certificate, smtp_server

from rxrepurchase.cli import main
from rxrepurchase.demo import DemoConfig, write_demo_chain
from rxrepurchase.scheduled import (
    _SECTIONS,
    EXIT_CONFIG_ERROR,
    EXIT_LOCKED,
    load_config,
    run_lock,
    run_scheduled,
)

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2026-06-30"
HEAD_OFFICE = ["ho@chain.example", "cfo@chain.example"]


def _config(folder: Path, smtp: str, run_extra: str = "", data: str = "data",
            data_extra: str = "") -> Path:
    path = folder / "chain.toml"
    path.write_text(
        f"""
[data]
path = "{data}"
{data_extra}
[run]
as_of = "{AS_OF}"
output = "reports"
{run_extra}
[recipients]
head_office = {json.dumps(HEAD_OFFICE)}
[smtp]
{smtp}
""",
        encoding="utf-8",
    )
    return path


PLAIN_SMTP = 'host = "127.0.0.1"\nsecurity = "none"\nsender = "reports@chain.example"'


# ------------------------------------------------------------------ config


def test_example_config_is_valid_and_documents_every_key(tmp_path):
    (tmp_path / "examples").mkdir()
    (tmp_path / "data" / "demo").mkdir(parents=True)
    example = shutil.copy(REPO / "examples" / "chain.toml", tmp_path / "examples" / "chain.toml")
    config = load_config(example, today=dt.date(2025, 7, 1))
    assert config.as_of == dt.date(2025, 6, 30)  # "yesterday"
    assert config.data == tmp_path / "data" / "demo"  # relative to the config file
    assert config.smtp.password_env == "RXREPURCHASE_SMTP_PASSWORD"
    assert config.head_office == ("ops@kanghe-pharmacy.example.com", "ceo@kanghe-pharmacy.example.com")
    assert config.currency == "CNY"
    assert config.targets == {"chain": {"user_repurchase_rate": 0.7},
                              "store": {"user_repurchase_rate": 0.58}, "stores": {}}
    text = (REPO / "examples" / "chain.toml").read_text(encoding="utf-8")
    for section, keys in _SECTIONS.items():
        assert f"[{section}]" in text
        for key in keys or ():
            assert f"\n{key} = " in text or f"\n# {key} = " in text, key
    for key in ("host", "port", "security", "sender", "username", "password_env", "password_file",
                "ca_file", "timeout", "attempts", "backoff"):
        assert f"\n{key} = " in text or f"\n# {key} = " in text, key


@pytest.mark.parametrize(
    ("smtp", "run_extra", "message"),
    [
        (PLAIN_SMTP + '\npassword = "hunter2"', "", "smtp.password: passwords must not be written"),
        (PLAIN_SMTP, 'as_of = "last week"', None),  # duplicate key: TOML error
        (PLAIN_SMTP, "jobs = 0", "run.jobs: must be at least 1"),
        (PLAIN_SMTP, 'lang = "fr"', "run.lang: 'fr'"),
        (PLAIN_SMTP, 'currency = "RMB¥"', "run.currency: currency must be a three-letter"),
        (PLAIN_SMTP, 'pdf_engine = "wkhtml"', "run.pdf_engine"),
        (PLAIN_SMTP, "colour = 1", "run.colour: unknown key"),
        (PLAIN_SMTP + "\nport = 70000", "", "smtp.port: 70000"),
        (PLAIN_SMTP + "\n[targets.chain]\nuser_repurchase_rate = 62", "",
         "targets.chain.user_repurchase_rate: a rate is a fraction between 0 and 1, got 62"),
        (PLAIN_SMTP + "\n[targets.stores.S01]\nrepeat = 0.5", "",
         "targets.stores.S01.repeat: unknown figure"),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path, capsys, smtp, run_extra, message):
    (tmp_path / "data").mkdir()
    config = _config(tmp_path, smtp, run_extra)
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG_ERROR
    out = capsys.readouterr().out
    assert str(config) in out
    assert (message or "not valid TOML") in out
    assert "hunter2" not in out
    assert not (tmp_path / "reports").exists()  # nothing ran


def test_data_encoding_and_mapping(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "export-mapping.toml").write_text('[files]\norders = "销售订单.csv"\n', encoding="utf-8")
    (tmp_path / "bad-mapping.toml").write_text('[columns.orders]\n"会员卡号" = "card"\n', encoding="utf-8")
    config = load_config(_config(tmp_path, PLAIN_SMTP,
                                 data_extra='encoding = "gb18030"\nmapping = "export-mapping.toml"'))
    assert config.encoding == "gb18030"
    assert config.mapping == tmp_path / "export-mapping.toml"  # relative to the config file
    assert load_config(_config(tmp_path, PLAIN_SMTP)).encoding is None
    for extra, message in [
        ('encoding = "gbkk"', "data.encoding: unknown encoding 'gbkk'"),
        ('mapping = "nope.toml"', f"data.mapping: mapping file {tmp_path / 'nope.toml'} does not exist"),
        ('mapping = "bad-mapping.toml"', f"data.mapping: {tmp_path / 'bad-mapping.toml'}: "
                                         "[columns.orders] maps to unknown column(s) ['card']"),
        ("encoding = 936", "data.encoding: expected str"),
    ]:
        config = _config(tmp_path, PLAIN_SMTP, data_extra=extra)
        assert main(["run", "--config", str(config)]) == EXIT_CONFIG_ERROR
        out = capsys.readouterr().out
        assert message in out, out
    assert not (tmp_path / "reports").exists()


def test_missing_data_folder_exits_2(tmp_path, capsys):
    assert main(["run", "--config", str(_config(tmp_path, PLAIN_SMTP))]) == EXIT_CONFIG_ERROR
    assert "data.path: folder" in capsys.readouterr().out


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    (tmp_path / "data").mkdir()
    config = load_config(_config(tmp_path, PLAIN_SMTP))
    with run_lock(config.lock_file):
        outcome = run_scheduled(config)
    assert outcome.exit_code == EXIT_LOCKED
    assert f"another run holds the lock {config.lock_file} (pid " in outcome.summary[0]
    assert "another run holds the lock" in config.log_file.read_text(encoding="utf-8")
    # released: the next run gets past the lock (and stops at the empty data folder)
    assert run_scheduled(config).exit_code == EXIT_CONFIG_ERROR


# ------------------------------------------------------------------ the whole run


@pytest.mark.slow
def test_scheduled_run_emails_every_report_to_the_right_people_and_nothing_else(tmp_path, capsys):
    data = tmp_path / "data"
    write_demo_chain(data, DemoConfig(n_members=400, n_stores=2, months=8, seed=3, end_date=AS_OF))
    # Exported as a Chinese POS system does: GBK files, the orders under a name of its own.
    for path in data.glob("*.csv"):
        path.write_bytes(path.read_text(encoding="utf-8-sig").encode("gbk"))
    (data / "orders.csv").rename(data / "销售订单.csv")
    (tmp_path / "export-mapping.toml").write_text('[files]\norders = "销售订单.csv"\n', encoding="utf-8")
    secrets = tmp_path / "secrets"  # outside any git repository
    secrets.mkdir()
    (secrets / "smtp-password").write_text(PASSWORD + "\n")
    (secrets / "smtp-password").chmod(0o600)
    cert = self_signed_certificate(secrets)
    recorder = Recorder()
    with smtp_server(recorder, security="starttls", cert=cert, auth=True) as port:
        config = _config(
            tmp_path,
            f'host = "127.0.0.1"\nport = {port}\nsecurity = "starttls"\nsender = "reports@chain.example"\n'
            f'username = "{USER}"\npassword_file = "secrets/smtp-password"\nca_file = "secrets/cert.pem"',
            run_extra='stores = "all"\nlang = "zh"',
            data_extra='encoding = "gbk"\nmapping = "export-mapping.toml"',
        )
        code = main(["run", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0, out

    [run_folder] = (tmp_path / "reports").glob("2*")
    managers = {"S01": "s01.manager@kanghe-pharmacy.example.com", "S02": "s02.manager@kanghe-pharmacy.example.com"}
    by_rcpt = recorder.by_recipient()
    assert sorted(by_rcpt) == sorted([*managers.values(), *HEAD_OFFICE])  # nobody else
    assert len(recorder.received) == 3  # one per store, one for head office

    for store_id, manager in managers.items():
        [received] = by_rcpt[manager]
        assert received.rcpt_tos == [manager]
        assert received.subject.startswith(f"会员复购报告 {store_id} ")
        assert received.subject.endswith(f"（截至 {AS_OF}）")
        # Named by store and date; intact; only its own: the PDF and the lists' workbook.
        pdf_path = run_folder / "stores" / store_id / f"{store_id}_{AS_OF}.pdf"
        book_name = f"{store_id}_{AS_OF}_lists.xlsx"
        attached = received.attachments()
        assert sorted(attached) == [f"{store_id}_{AS_OF}.pdf", book_name]
        assert attached[pdf_path.name] == pdf_path.read_bytes()
        # The workbook opens, a sheet per list, Chinese headers and codes, the lists' rows.
        book = load_workbook(io.BytesIO(attached[book_name]))
        actions = run_folder / "stores" / store_id / "actions"
        sheets = {"refill_reminder": "续方提醒", "wake_up": "唤醒", "lapsed_refill": "中断续方"}
        written = [name for name in sheets if (actions / f"{name}.csv").exists()]
        assert "refill_reminder" in written and "lapsed_refill" in written
        assert book.sheetnames == [sheets[name] for name in written]
        for name in written:
            listed = pd.read_csv(actions / f"{name}.csv", encoding="utf-8-sig", dtype=str)
            sheet = book[sheets[name]]
            rows = list(sheet.values)
            assert sheet.freeze_panes == "A2"
            assert rows[0][0] == "会员编号" and "建议动作" in rows[0]
            assert len(rows) - 1 == len(listed)
            assert len(listed) > 0 or name != "refill_reminder"
            assert [r[0] for r in rows[1:]] == listed["member_id"].tolist()
            if "status" in listed:
                codes = {"not_due": "未到期", "due_soon": "即将到期",
                         "due_now": "已到期", "overdue": "已逾期", "lapsed": "已中断"}
                assert [r[rows[0].index("续方状态")] for r in rows[1:]] == listed["status"].map(codes).tolist()
        reader = PdfReader(io.BytesIO(pdf_path.read_bytes()))
        text = "".join(page.extract_text() for page in reader.pages).replace("\n", "")
        metrics = json.loads((run_folder / "stores" / store_id / "metrics.json").read_text(encoding="utf-8"))
        assert store_id in text
        assert f"{metrics['user_repurchase_rate']:.1%}" in text
        assert f"{metrics['order_repurchase_rate']:.1%}" in text
        assert sum(len(page.images) for page in reader.pages) >= 2  # the charts
        # The body carries the store's figures and list sizes, in the run's language.
        body = received.message.get_body(("plain",)).get_content()
        assert f"- 用户复购率（近 90 天）：{metrics['user_repurchase_rate']:.1%}" in body
        assert (f"- 续方提醒：{metrics['refill_reminder_members']:,} 名会员（会员 × 商品 "
                f"{metrics['refill_reminder_rows']:,} 行）") in body

    [office] = by_rcpt[HEAD_OFFICE[0]]
    assert office.rcpt_tos == HEAD_OFFICE
    assert office.subject == f"会员复购报告：连锁总览（截至 {AS_OF}）"
    office_body = office.message.get_body(("plain",)).get_content()
    assert "全部 2 家门店报告均已生成并发送给店长。" in office_body
    assert "- S01：续方提醒 " in office_body and "各门店名单规模（会员人数）：" in office_body
    assert office.attachments() == {
        "chain_overview.pdf": (run_folder / "chain" / "chain_overview.pdf").read_bytes(),
        "index.pdf": (run_folder / "index.pdf").read_bytes(),
    }
    # The index PDF links nothing (head office has no HTML pages): it names the PDF files.
    index = PdfReader(run_folder / "index.pdf")
    assert all("/Annots" not in page for page in index.pages)
    text = "".join(page.extract_text() for page in index.pages).replace("\n", "")
    assert f"stores/S01/S01_{AS_OF}.pdf" in text and f"stores/S02/S02_{AS_OF}.pdf" in text
    assert "chain/chain_overview.pdf" in text
    assert "查看报告" not in text  # "open report"

    delivery = json.loads((run_folder / "delivery.json").read_text(encoding="utf-8"))
    assert delivery["failed"] == [] and delivery["problems"] == [] and len(delivery["sent"]) == 3
    log = (tmp_path / "reports" / "rxrepurchase-run.log").read_text(encoding="utf-8")
    assert "exit code 0" in log and "exit code 0" in out
    assert PASSWORD not in log + out
