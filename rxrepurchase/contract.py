"""The data contract: the tables a pharmacy chain exports and what each column means.

A chain's data arrives as one file per table (CSV or Parquet) from its ERP / POS / member
system. :data:`TABLES` is the single source of truth for column names, types and meaning; the
loader (:mod:`rxrepurchase.loading`), the demo generator and ``docs/data-contract.md`` follow it.

Types are logical: ``id`` and ``text`` become pandas ``string``, ``timestamp`` and ``date``
become ``datetime64[ns]`` (dates at midnight), ``money`` and ``number`` ``float64``,
``integer`` nullable ``Int64``, ``flag`` ``bool`` (nullable ``boolean`` where empty is allowed:
empty means unknown).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from rxrepurchase.errors import DataContractError, RxRepurchaseError

__all__ = [
    "Column",
    "Table",
    "TABLES",
    "TARGETED_CAMPAIGN_KINDS",
    "TIERS",
    "TIER_LABELS_ZH",
    "ORDER_CHANNELS",
    "ACQUISITION_CHANNELS",
    "CAMPAIGN_GROUPS",
    "SEND_CHANNELS",
    "HEADER_ALIASES_ZH",
    "TAG_SEPARATOR",
    "contract_markdown",
    "require_columns",
]

TIERS: tuple[str, ...] = ("regular", "gold", "diamond", "plus")
"""Member tiers from lowest to highest (普通 / 金卡 / 钻石 / PLUS)."""

TIER_LABELS_ZH: dict[str, str] = {
    "regular": "普通会员",
    "gold": "金卡会员",
    "diamond": "钻石会员",
    "plus": "PLUS会员",
}

ORDER_CHANNELS: tuple[str, ...] = ("store", "mini_program", "o2o_delivery", "b2c_online")
"""Where an order was placed. Other values are accepted and kept as they are."""

ACQUISITION_CHANNELS: tuple[str, ...] = (
    "store",
    "wechat_official_account",
    "mini_program",
    "o2o_platform",
    "referral",
)
"""How a member was recruited. Other values are accepted and kept as they are."""

CAMPAIGN_GROUPS: tuple[str, ...] = ("treatment", "control")
"""Groups of a campaign's send list: sent the offer, or held out of it (the holdout group)."""

SEND_CHANNELS: tuple[str, ...] = ("wechat", "sms", "app", "in_store")
"""How a campaign reached a member. Other values are accepted with a warning."""

TAG_SEPARATOR = ";"

TARGETED_CAMPAIGN_KINDS: frozenset[str] = frozenset({"wake_up", "birthday"})
"""Campaign kinds sent to a list of members: their window is open to those members only,
not a period when anyone buying in the chain meets a campaign."""
"""Separator of the free tag list in ``members.tags`` (e.g. ``公众号;慢病;高血压``)."""


@dataclass(frozen=True)
class Column:
    """One column of a table in the contract.

    Parameters
    ----------
    name : str
        Column name in the export (after header mapping).
    kind : str
        Logical type: ``id``, ``text``, ``timestamp``, ``date``, ``money``, ``number``,
        ``integer`` or ``flag``.
    description : str
        What the column means, for the chain's IT team.
    required : bool
        The column must be present in the file.
    nullable : bool
        Empty cells are allowed.
    """

    name: str
    kind: str
    description: str
    required: bool = True
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    """One table of the contract: its file stem, key and columns."""

    name: str
    description: str
    key: str | None
    columns: tuple[Column, ...]
    required: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "stores",
            "One row per pharmacy store.",
            key="store_id",
            columns=(
                Column("store_id", "id", "Store code (门店编码), unique."),
                Column("name", "text", "Store name."),
                Column("city", "text", "City the store is in."),
                Column("opened_on", "date", "Opening date.", nullable=True),
                Column(
                    "manager_email",
                    "text",
                    "Store manager's email; the store's report is sent here. May be empty.",
                    nullable=True,
                ),
            ),
        ),
        Table(
            "members",
            "One row per registered member (会员).",
            key="member_id",
            columns=(
                Column("member_id", "id", "Member number (会员编号), unique."),
                Column("home_store_id", "id", "Store the member registered at / belongs to."),
                Column("joined_on", "date", "Date the member registered."),
                Column("tier", "text", "Member tier: regular / gold / diamond / plus (普通/金卡/钻石/PLUS)."),
                Column("gender", "text", "F / M / empty when unknown.", nullable=True),
                Column("birth_year", "integer", "Year of birth, for age bands.", nullable=True),
                Column("region", "text", "District or region of residence.", nullable=True),
                Column(
                    "acquisition_channel",
                    "text",
                    "How the member was recruited: store, wechat_official_account, mini_program, "
                    "o2o_platform, referral, ...",
                ),
                Column(
                    "tags",
                    "text",
                    f"Free tag list separated by '{TAG_SEPARATOR}' (channel, product interest, ...).",
                    nullable=True,
                ),
                Column("birth_month", "integer", "Birth month 1-12, for birthday gifts.", required=False, nullable=True),
                Column("phone", "text", "Mobile number, for SMS reminders (masked in lists by default).", required=False, nullable=True),
                Column("wechat_id", "text", "WeChat / WeCom contact id, for WeChat reminders.", required=False, nullable=True),
                Column(
                    "stored_value_balance",
                    "money",
                    "Current stored-value card balance in CNY (储值余额).",
                    required=False,
                    nullable=True,
                ),
            ),
        ),
        Table(
            "orders",
            "One row per order (sales ticket), members and walk-in customers alike.",
            key="order_id",
            columns=(
                Column("order_id", "id", "Order number (订单号), unique."),
                Column("member_id", "id", "Member number; empty for walk-in customers.", nullable=True),
                Column("store_id", "id", "Store the order belongs to."),
                Column("ordered_at", "timestamp", "Local date and time of the order (下单时间)."),
                Column("channel", "text", "store / mini_program / o2o_delivery / b2c_online / ..."),
                Column("gross_amount", "money", "Amount at list price before any subsidy, CNY (应收金额)."),
                Column(
                    "discount_amount",
                    "money",
                    "All subsidy on the order: coupons, promotions, member price (优惠金额).",
                ),
                Column("paid_amount", "money", "Amount the customer paid = gross - discount (实付金额)."),
                Column("coupon_id", "id", "Coupon redeemed on the order, empty if none.", nullable=True),
                Column("campaign_id", "id", "Promotion campaign the order belongs to, empty if none.", nullable=True),
                Column(
                    "stored_value_amount",
                    "money",
                    "Part of paid_amount paid from a stored-value card (储值支付); 0 if none.",
                ),
            ),
        ),
        Table(
            "order_lines",
            "One row per product line of an order.",
            key=None,
            columns=(
                Column("order_id", "id", "Order the line belongs to."),
                Column("sku", "id", "Product code (商品编码)."),
                Column("product_name", "text", "Product name (商品名称)."),
                Column("category", "text", "Product category, e.g. antihypertensive, cold_flu, vitamins."),
                Column(
                    "is_chronic",
                    "flag",
                    "True for chronic-disease medication or a regularly taken health product.",
                ),
                Column(
                    "is_prescription",
                    "flag",
                    "True for a prescription drug (处方药), False for OTC and non-drug products. "
                    "Optional; empty or absent means unknown, and an unknown product is never "
                    "suggested as an add-on without a pharmacist's review (docs/refills.md).",
                    required=False,
                    nullable=True,
                ),
                Column("quantity", "number", "Packs sold."),
                Column("line_amount", "money", "Amount paid for the line, CNY."),
                Column(
                    "days_supply",
                    "integer",
                    "Days the quantity on this line lasts at the labelled dose; empty if unknown.",
                    nullable=True,
                ),
            ),
        ),
        Table(
            "campaigns",
            "Optional: one row per promotion campaign. Derived from orders when absent.",
            key="campaign_id",
            required=False,
            columns=(
                Column("campaign_id", "id", "Campaign code, as in orders.campaign_id."),
                Column("name", "text", "Campaign name."),
                Column("starts_on", "date", "First day of the campaign."),
                Column("ends_on", "date", "Last day of the campaign."),
                Column(
                    "kind",
                    "text",
                    "new_member (acquisition wave), wake_up, holiday, birthday, ...",
                    nullable=True,
                ),
            ),
        ),
        Table(
            "campaign_members",
            "Optional: a campaign's send list (WeChat / SMS / app export), one row per member "
            "sent the offer or held out of it (the control group). Needed to measure what a "
            "campaign caused (docs/uplift.md).",
            key=None,
            required=False,
            columns=(
                Column("campaign_id", "id", "Campaign code, as in campaigns.campaign_id."),
                Column("member_id", "id", "Member number; a member appears once per campaign."),
                Column(
                    "group",
                    "text",
                    "treatment (sent the offer) / control (randomly held out, sent nothing).",
                ),
                Column(
                    "sent_at",
                    "timestamp",
                    "When the offer was sent; for the control group, when it would have been.",
                ),
                Column("channel", "text", "wechat / sms / app / in_store."),
            ),
        ),
    )
}

# Headers seen in Chinese ERP / POS exports, mapped to contract names. A chain's own mapping
# file (see rxrepurchase.loading.load_chain) overrides and extends these.
HEADER_ALIASES_ZH: dict[str, dict[str, str]] = {
    "stores": {
        "门店编码": "store_id",
        "门店编号": "store_id",
        "门店名称": "name",
        "城市": "city",
        "开业日期": "opened_on",
        "店长邮箱": "manager_email",
    },
    "members": {
        "会员编号": "member_id",
        "会员卡号": "member_id",
        "所属门店": "home_store_id",
        "开卡门店": "home_store_id",
        "入会日期": "joined_on",
        "注册日期": "joined_on",
        "会员等级": "tier",
        "性别": "gender",
        "出生年份": "birth_year",
        "出生月份": "birth_month",
        "区域": "region",
        "来源渠道": "acquisition_channel",
        "标签": "tags",
        "手机号": "phone",
        "储值余额": "stored_value_balance",
    },
    "orders": {
        "订单号": "order_id",
        "订单编号": "order_id",
        "会员编号": "member_id",
        "会员卡号": "member_id",
        "门店编码": "store_id",
        "门店编号": "store_id",
        "下单时间": "ordered_at",
        "销售时间": "ordered_at",
        "渠道": "channel",
        "应收金额": "gross_amount",
        "原价金额": "gross_amount",
        "优惠金额": "discount_amount",
        "实付金额": "paid_amount",
        "优惠券编号": "coupon_id",
        "活动编号": "campaign_id",
        "储值支付": "stored_value_amount",
    },
    "order_lines": {
        "订单号": "order_id",
        "订单编号": "order_id",
        "商品编码": "sku",
        "商品名称": "product_name",
        "品类": "category",
        "是否慢病": "is_chronic",
        "是否处方药": "is_prescription",
        "处方药": "is_prescription",
        "数量": "quantity",
        "金额": "line_amount",
        "用药天数": "days_supply",
    },
    "campaigns": {
        "活动编号": "campaign_id",
        "活动名称": "name",
        "开始日期": "starts_on",
        "结束日期": "ends_on",
        "活动类型": "kind",
    },
    "campaign_members": {
        "活动编号": "campaign_id",
        "会员编号": "member_id",
        "会员卡号": "member_id",
        "分组": "group",
        "发送时间": "sent_at",
        "触达渠道": "channel",
    },
}

# Chinese and variant spellings of tier names, normalised on load.
TIER_ALIASES: dict[str, str] = {
    "普通": "regular",
    "普通会员": "regular",
    "金卡": "gold",
    "金卡会员": "gold",
    "钻石": "diamond",
    "钻石会员": "diamond",
    "plus": "plus",
    "PLUS": "plus",
    "PLUS会员": "plus",
    "Plus": "plus",
}


def contract_markdown() -> str:
    """The contract's tables as Markdown, as published in ``docs/data-contract.md``."""
    out = []
    for t in TABLES.values():
        need = "required" if t.required else "optional"
        key = f", key `{t.key}`" if t.key else ""
        out.append(f"### `{t.name}` ({need}{key})\n\n{t.description}\n")
        out.append("| column | type | required | empty allowed | meaning |")
        out.append("| --- | --- | --- | --- | --- |")
        for c in t.columns:
            out.append(
                f"| `{c.name}` | {c.kind} | {'yes' if c.required else 'no'} | "
                f"{'yes' if c.nullable else 'no'} | {c.description} |"
            )
        out.append("")
    return "\n".join(out)


def require_columns(
    df: pd.DataFrame,
    columns: Iterable[str],
    table: str,
    *,
    error: type[RxRepurchaseError] = DataContractError,
) -> None:
    """Raise ``error`` naming the columns of ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise error(f"{table} has no column(s) {', '.join(missing)}; present: {list(df.columns)}")

