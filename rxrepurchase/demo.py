"""A realistic, seeded demo pharmacy chain in the data contract, with its ground truth.

The generator simulates members of four archetypes (see ``docs/demo-chain.md``):

* ``loyal_chronic`` -- chronic-disease patients refilling one chronic medication on a cycle of
  about 28-35 days (``days_supply`` per pack), sometimes late, with a small chance of leaving
  after each refill, plus occasional other purchases;
* ``loyal_general`` -- frequent small baskets of health and personal-care products;
* ``occasional_acute`` -- a few purchases a year, peaking in the cold-and-flu season;
* ``coupon_hunter`` -- recruited in ``new_member`` promotion waves, buying mostly with deep
  coupons and dropping out quickly; each later wave recruits fewer and repurchases less.

Purchases of the last three follow the BG/NBD story exactly: while alive a member buys as a
Poisson process of rate ``lambda ~ Gamma(r, alpha)`` (per day) and drops out after each repeat
purchase with probability ``p ~ Beta(a, b)``. Walk-in orders (no member) come on top.

Everything is vectorized numpy: a million members (~9 million orders) take about 20 s. The ground truth
(archetype, true rates, dropout dates, recruitment wave, refill cycle) goes to a separate
file that the analysis code never reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from rxrepurchase.contract import TABLES, TAG_SEPARATOR, TIERS
from rxrepurchase.errors import DataContractError, DemoConfigError, DemoOutputError

__all__ = [
    "ARCHETYPES",
    "DEMO_SHAPES",
    "DemoChain",
    "DemoConfig",
    "DemoConfigError",
    "DemoOutputError",
    "PopulationParams",
    "generate_demo_chain",
    "TRUTH_COHORT",
    "cohort_recovery",
    "load_ground_truth",
    "load_send_truth",
    "write_demo_chain",
]

ARCHETYPES: tuple[str, ...] = ("loyal_chronic", "loyal_general", "occasional_acute", "coupon_hunter")
"""Member archetypes of the demo chain, in the order of their integer codes."""

CHRONIC, GENERAL, ACUTE, HUNTER, WALK_IN = range(5)
TRUTH_MEMBERS_FILE = "ground_truth_members.csv"
CHAIN_TIME_ZONE = "Asia/Shanghai"  # the demo chain's local time (its order times)
TRUTH_PARAMS_FILE = "ground_truth.json"
_DIGIT_TRIPLES = np.array([list(f"{k:03d}".encode()) for k in range(1000)], dtype=np.uint8)


@dataclass(frozen=True)
class PopulationParams:
    """BG/NBD population parameters, in days.

    ``lambda ~ Gamma(shape=r, rate=alpha)`` purchases per day while alive and
    ``p ~ Beta(a, b)`` dropout probability after each repeat purchase.
    """

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self, unit: str = "days") -> dict[str, float]:
        """Parameters as a dict; ``unit="weeks"`` rescales alpha (rate per week = 7 x per day)."""
        scale = {"days": 1.0, "weeks": 7.0}[unit]
        return {"r": self.r, "alpha": self.alpha / scale, "a": self.a, "b": self.b}


DEMO_SHAPES: dict[str, dict[str, Any]] = {
    "standard": {},
    # The loyalty-card price: 13-17% off list on every member order (routine, not a subsidy).
    "member_price": {"member_discount": (0.13, 0.17)},
    # Week-long member-day promotions on 80% of the calendar (3-8% off, no coupon).
    "campaigns_most_of_year": {"promo_calendar_share": 0.8},
    # Members shop at their home store half the time, else at two other stores of their own.
    "multi_store": {"home_store_share": 0.5, "other_stores": 2},
    # The export has no coupon or campaign ids: the subsidy shows only in the discount.
    # No send lists either: they name the campaigns such an export does not have.
    "discount_only": {"subsidy_ids": False, "send_waves": 0},
    # Files hold order times in UTC with a "+00:00" suffix (the chain is on Asia/Shanghai).
    "utc": {"utc_timestamps": True},
    # Chronic patients refill on an erratic rhythm (gap CV 0.125-0.875 per patient).
    "irregular_refill": {"refill_dispersion": 0.5},
    # Store sizes vary a lot: many stores have only a handful of members.
    "tiny_stores": {"store_size_spread": 2.0},
}
"""Demo chain shapes: the :class:`DemoConfig` fields each one sets (``shape=`` applies them).
A new shape is one more entry here."""


def _default_shares() -> dict[str, float]:
    return {"loyal_chronic": 0.22, "loyal_general": 0.18, "occasional_acute": 0.32, "coupon_hunter": 0.28}


@dataclass(frozen=True)
class DemoConfig:
    """Size and behaviour of the demo chain. Every default is documented in docs/demo-chain.md.

    Parameters
    ----------
    n_members, n_stores, months : int
        Members simulated, stores, and months of orders ending on ``end_date``.
    seed : int
        Seed of the random generator: the same config gives identical tables.
    end_date : str
        Last day with orders (inclusive), ISO date.
    archetype_shares : dict
        Share of members per archetype (must sum to 1).
    walk_in_share : float
        Share of all orders placed by walk-in customers (no member id).
    n_waves, wave_days, coupon_valid_days : int
        Number of ``new_member`` promotion waves, days each runs, and days a recruit's
        new-member coupons stay valid after the wave ends.
    wave_recruit_decay : float
        Coupon hunters recruited by wave k are proportional to ``decay ** (k - 1)``.
    wave_rate_decay : float
        Mean purchase rate of wave k's coupon hunters is ``decay ** (k - 1)`` times wave 1's.
    loyal_general, occasional_acute, coupon_hunter : PopulationParams
        BG/NBD population parameters (days) of these archetypes (coupon hunters: wave 1).
    chronic_other : PopulationParams
        Chronic patients: rate of purchases besides refills (r, alpha) and dropout chance
        after each refill (a, b).
    chronic_late_prob, chronic_late_mean_days, chronic_jitter : float
        A refill is late with this probability by an exponential number of days of this mean;
        every refill gap also varies by a normal relative jitter of this standard deviation.
    refill_dispersion : float
        Irregular refills (0, the default: off). When positive, each patient gets a
        coefficient of variation ``refill_dispersion x Uniform(0.25, 1.75)`` and every refill
        gap is also multiplied by a Gamma draw of mean 1 and that CV: some patients stay
        regular, others refill erratically, as on a real retailer's export.
    acute_seasonality : float
        Relative amplitude of the winter (mid-January) peak of acute buying.
    loyal_wave_coupon_prob : float
        Chance that a loyal member who joins during a wave uses its new-member coupon (and so
        counts as recruited by the wave).
    tier_thresholds : tuple of float
        Spend over the last 365 days (CNY) from which a member is gold, diamond, plus.
    shape : str
        A name of :data:`DEMO_SHAPES`: sets the fields listed there (setting one of them to
        another value as well is refused, so nothing is silently overwritten).
    member_discount : tuple of float
        Routine member price: every member order gets a discount drawn uniformly from this
        range (share of list price).
    promo_calendar_share : float
        Share of the calendar covered by week-long member-day promotions (kind
        ``promotion``, 3-8% off, taken by a third of member orders); 0 for none.
    home_store_share : float
        Chance that a member's purchase (after the first) is at the registration store.
    other_stores : int
        0: other purchases go to any store; 1-3: to that many stores of the member's own.
    subsidy_ids : bool
        False leaves ``coupon_id`` and ``campaign_id`` empty and the campaigns table empty.
    utc_timestamps : bool
        :func:`write_demo_chain` writes ``ordered_at`` in UTC with a ``+00:00`` suffix (the
        tables in memory keep the chain's local time, Asia/Shanghai).
    store_size_spread : float
        Standard deviation of the log of the stores' relative sizes.
    send_waves, send_window_days : int
        Wake-up coupon waves sent to existing members (``campaign_members``), and the days
        from the send in which the coupon is valid and the effect is measured. 0 waves: none.
    send_share, send_control_share : float
        Share of eligible members a wave is sent to, and share of an odd (randomized) wave's
        list held out as the control group. Even waves target lapsing members, no control.
    send_effect_decay : float
        Chance to respond to wave k's offer is ``decay ** (k - 1)`` times wave 1's.
    send_control_leak : float
        Chance that a control member buying in the window redeems the coupon anyway.
    """

    n_members: int = 20_000
    n_stores: int = 8
    months: int = 18
    seed: int = 7
    end_date: str = "2026-09-30"
    archetype_shares: dict[str, float] = field(default_factory=_default_shares)
    walk_in_share: float = 0.30
    n_waves: int = 4
    wave_days: int = 14
    coupon_valid_days: int = 30
    wave_recruit_decay: float = 0.75
    wave_rate_decay: float = 0.7
    loyal_general: PopulationParams = PopulationParams(r=3.0, alpha=36.0, a=1.0, b=19.0)
    occasional_acute: PopulationParams = PopulationParams(r=1.5, alpha=90.0, a=2.0, b=4.0)
    coupon_hunter: PopulationParams = PopulationParams(r=0.8, alpha=30.0, a=6.0, b=4.0)
    chronic_other: PopulationParams = PopulationParams(r=2.0, alpha=150.0, a=1.0, b=30.0)
    chronic_late_prob: float = 0.12
    chronic_late_mean_days: float = 12.0
    chronic_jitter: float = 0.06
    refill_dispersion: float = 0.0
    acute_seasonality: float = 0.6
    loyal_wave_coupon_prob: float = 0.5
    tier_thresholds: tuple[float, float, float] = (600.0, 2000.0, 5000.0)
    shape: str = "standard"
    member_discount: tuple[float, float] = (0.0, 0.08)
    promo_calendar_share: float = 0.0
    home_store_share: float = 0.85
    other_stores: int = 0
    subsidy_ids: bool = True
    utc_timestamps: bool = False
    store_size_spread: float = 0.35

    # campaign send lists and their true effect (issue 16)
    send_waves: int = 4
    send_window_days: int = 30
    send_share: float = 0.3
    send_control_share: float = 0.2
    send_effect_decay: float = 0.7
    send_control_leak: float = 0.03

    def __post_init__(self) -> None:
        if self.shape not in DEMO_SHAPES:
            raise DemoConfigError(f"DemoConfig.shape must be one of {sorted(DEMO_SHAPES)} "
                                  f"(got {self.shape!r})")
        defaults = {f.name: f.default for f in fields(self)}
        for name, value in DEMO_SHAPES[self.shape].items():
            if getattr(self, name) not in (defaults[name], value):
                raise DemoConfigError(f"DemoConfig.{name}: shape {self.shape!r} sets it to "
                                      f"{value!r}; use shape='standard' to set it yourself")
            object.__setattr__(self, name, value)

    def validate(self) -> None:
        """Raise :class:`DemoConfigError` naming the first field out of range."""
        checks = [
            ("n_members", self.n_members >= 1, "must be at least 1"),
            ("n_stores", 1 <= self.n_stores <= 999, "must be between 1 and 999"),
            ("months", 3 <= self.months <= 120, "must be between 3 and 120"),
            ("walk_in_share", 0 <= self.walk_in_share < 1, "must be in [0, 1)"),
            ("n_waves", self.n_waves >= 1, "must be at least 1"),
            ("wave_days", self.wave_days >= 1, "must be at least 1"),
            ("coupon_valid_days", self.coupon_valid_days >= 0, "must be 0 or more"),
            ("wave_recruit_decay", self.wave_recruit_decay > 0, "must be positive"),
            ("wave_rate_decay", self.wave_rate_decay > 0, "must be positive"),
            ("chronic_late_prob", 0 <= self.chronic_late_prob <= 1, "must be in [0, 1]"),
            ("chronic_jitter", 0 <= self.chronic_jitter < 0.5, "must be in [0, 0.5)"),
            ("refill_dispersion", 0 <= self.refill_dispersion <= 1.5, "must be in [0, 1.5]"),
            ("acute_seasonality", 0 <= self.acute_seasonality < 1, "must be in [0, 1)"),
            ("loyal_wave_coupon_prob", 0 <= self.loyal_wave_coupon_prob <= 1, "must be in [0, 1]"),
            ("member_discount", 0 <= self.member_discount[0] <= self.member_discount[1] < 0.5,
             "must be a (low, high) range within [0, 0.5)"),
            ("promo_calendar_share", 0 <= self.promo_calendar_share <= 1, "must be in [0, 1]"),
            ("home_store_share", 0 <= self.home_store_share <= 1, "must be in [0, 1]"),
            ("other_stores", 0 <= self.other_stores <= 3 and self.other_stores < self.n_stores,
             "must be 0-3 and fewer than n_stores"),
            ("store_size_spread", self.store_size_spread >= 0, "must be 0 or more"),
            ("send_waves", 0 <= self.send_waves <= 24, "must be between 0 and 24"),
            ("send_window_days", 1 <= self.send_window_days <= 90, "must be between 1 and 90"),
            ("send_share", 0 < self.send_share <= 1, "must be in (0, 1]"),
            ("send_control_share", 0 < self.send_control_share < 1, "must be in (0, 1)"),
            ("send_effect_decay", self.send_effect_decay > 0, "must be positive"),
            ("send_control_leak", 0 <= self.send_control_leak <= 1, "must be in [0, 1]"),
            ("tier_thresholds", list(self.tier_thresholds) == sorted(self.tier_thresholds)
             and len(self.tier_thresholds) == len(TIERS) - 1, "must be 3 increasing amounts"),
        ]
        unknown = set(self.archetype_shares) - set(ARCHETYPES)
        shares = [self.archetype_shares.get(a, 0.0) for a in ARCHETYPES]
        checks += [
            ("archetype_shares", not unknown, f"has unknown archetypes {sorted(unknown)}"),
            ("archetype_shares", min(shares) >= 0 and abs(sum(shares) - 1) < 1e-9,
             "must be non-negative and sum to 1"),
        ]
        for name in ("loyal_general", "occasional_acute", "coupon_hunter", "chronic_other"):
            p = getattr(self, name)
            checks.append((name, min(p.r, p.alpha, p.a, p.b) > 0, "parameters must be positive"))
        try:
            pd.Timestamp(self.end_date)
        except ValueError:
            checks.append(("end_date", False, f"{self.end_date!r} is not a date"))
        for name, ok, what in checks:
            if not ok:
                raise DemoConfigError(f"DemoConfig.{name} {what} (got {getattr(self, name)!r})")


@dataclass
class DemoChain:
    """The generated chain: contract tables plus the ground truth (never read by analyses)."""

    stores: pd.DataFrame
    members: pd.DataFrame
    orders: pd.DataFrame
    order_lines: pd.DataFrame
    campaigns: pd.DataFrame
    truth: pd.DataFrame
    truth_params: dict[str, Any]
    config: DemoConfig
    campaign_members: pd.DataFrame | None = None
    send_truth: pd.DataFrame | None = None  # both potential outcomes of every listed member

    def tables(self) -> dict[str, pd.DataFrame]:
        """The contract tables by name (``campaign_members`` when the demo sends waves)."""
        tables = {
            "stores": self.stores,
            "members": self.members,
            "orders": self.orders,
            "order_lines": self.order_lines,
            "campaigns": self.campaigns,
        }
        if self.campaign_members is not None:
            tables["campaign_members"] = self.campaign_members
        return tables


# -- catalogue ---------------------------------------------------------------------------
# sku, product name, category, list price CNY, days one pack lasts (0: not a chronic product).
_CATALOGUE: tuple[tuple[str, str, str, float, int], ...] = (
    ("HBP-AML5", "苯磺酸氨氯地平片 5mg×28片", "antihypertensive", 32.50, 28),
    ("HBP-NIF30", "硝苯地平控释片 30mg×28片", "antihypertensive", 96.00, 28),
    ("HBP-VAL80", "缬沙坦胶囊 80mg×28粒", "antihypertensive", 45.80, 28),
    ("HBP-IRB150", "厄贝沙坦片 150mg×28片", "antihypertensive", 39.90, 28),
    ("DM-MET500", "盐酸二甲双胍缓释片 0.5g×60片", "antidiabetic", 28.00, 30),
    ("DM-GLM2", "格列美脲片 2mg×30片", "antidiabetic", 36.00, 30),
    ("LIP-ATO20", "阿托伐他汀钙片 20mg×28片", "lipid_lowering", 68.00, 28),
    ("LIP-ROS10", "瑞舒伐他汀钙片 10mg×28片", "lipid_lowering", 59.00, 28),
    ("CV-ASP100", "阿司匹林肠溶片 100mg×30片", "antiplatelet", 16.50, 30),
    ("CV-CLO75", "硫酸氢氯吡格雷片 75mg×28片", "antiplatelet", 86.00, 28),
    ("THY-LEV50", "左甲状腺素钠片 50μg×30片", "thyroid", 25.00, 30),
    ("DS-GLU50", "血糖试纸 50片", "diabetes_supplies", 98.00, 25),
    ("VIT-CAD60", "碳酸钙D3片 600mg×60片", "vitamins", 49.00, 60),
    ("VIT-MUL60", "多种维生素矿物质片 60片", "vitamins", 88.00, 60),
    ("VIT-VC20", "维生素C泡腾片 20片", "vitamins", 29.00, 0),
    ("HS-FO100", "深海鱼油软胶囊 100粒", "health_supplements", 128.00, 50),
    ("HS-PRO400", "蛋白粉 400g", "health_supplements", 198.00, 0),
    ("TCM-LWDH", "六味地黄丸 200丸", "tcm_tonic", 22.00, 30),
    ("TCM-EJ250", "阿胶 250g", "tcm_tonic", 368.00, 0),
    ("CF-GML9", "感冒灵颗粒 10g×9袋", "cold_flu", 15.80, 0),
    ("CF-LHQW24", "连花清瘟胶囊 0.35g×24粒", "cold_flu", 26.80, 0),
    ("CF-IBU20", "布洛芬缓释胶囊 0.3g×20粒", "cold_flu", 18.50, 0),
    ("CF-APAP20", "对乙酰氨基酚片 0.5g×20片", "cold_flu", 9.90, 0),
    ("CF-BLG20", "板蓝根颗粒 10g×20袋", "cold_flu", 19.90, 0),
    ("CG-GC100", "复方甘草口服溶液 100ml", "cough", 12.00, 0),
    ("CG-CBPP150", "川贝枇杷膏 150ml", "cough", 32.00, 0),
    ("AB-AMX24", "阿莫西林胶囊 0.25g×24粒", "antibiotics", 14.50, 0),
    ("GI-MTS10", "蒙脱石散 3g×10袋", "digestive", 18.00, 0),
    ("GI-JWXS32", "健胃消食片 0.8g×32片", "digestive", 12.80, 0),
    ("AL-LRT6", "氯雷他定片 10mg×6片", "allergy", 22.00, 0),
    ("SK-HMS10", "红霉素软膏 10g", "skin", 6.50, 0),
    ("FA-CKT100", "云南白药创可贴 100片", "first_aid", 29.90, 0),
    ("MS-MASK50", "医用外科口罩 50只", "medical_supplies", 25.00, 0),
    ("MS-ALC500", "75%医用酒精 500ml", "medical_supplies", 12.90, 0),
    ("MD-THM", "电子体温计", "medical_devices", 39.00, 0),
    ("MD-BPM", "上臂式电子血压计", "medical_devices", 239.00, 0),
    ("EYE-ZSM15", "珍视明滴眼液 15ml", "eye_care", 18.80, 0),
    ("PC-WNN50", "舒敏保湿特护霜 50g", "personal_care", 198.00, 0),
    ("PC-HAND100", "护手霜 100g", "personal_care", 35.00, 0),
)
_CHRONIC_DRUG_CATEGORIES = {  # share of chronic patients per disease category, and the tag
    "antihypertensive": (0.45, "高血压"),
    "antidiabetic": (0.25, "糖尿病"),
    "lipid_lowering": (0.15, "高血脂"),
    "antiplatelet": (0.05, "冠心病"),
    "thyroid": (0.10, "甲状腺"),
}
# Category weights of the items in a basket, per basket profile (chronic patients' other
# items, general shoppers, acute buyers, coupon hunters, walk-ins).
_BASKET_WEIGHTS: tuple[dict[str, float], ...] = (
    {"vitamins": 3, "health_supplements": 2, "tcm_tonic": 1, "cold_flu": 1.5, "digestive": 1,
     "medical_supplies": 1, "medical_devices": 0.4, "diabetes_supplies": 1, "skin": 0.5,
     "eye_care": 0.5, "first_aid": 0.5},
    {"vitamins": 3, "health_supplements": 2.5, "tcm_tonic": 1, "personal_care": 2,
     "medical_supplies": 2, "eye_care": 1.5, "skin": 1, "first_aid": 1, "digestive": 1,
     "cold_flu": 1, "allergy": 0.5, "medical_devices": 0.3},
    {"cold_flu": 5, "cough": 2.5, "antibiotics": 1.5, "digestive": 1.5, "allergy": 1, "skin": 1,
     "first_aid": 0.7, "medical_supplies": 0.7, "medical_devices": 0.3},
    {"vitamins": 2, "health_supplements": 2, "personal_care": 2.5, "medical_supplies": 2,
     "cold_flu": 1.5, "eye_care": 1, "first_aid": 1, "skin": 1, "digestive": 0.5, "tcm_tonic": 0.5},
    {"cold_flu": 3, "cough": 1.5, "digestive": 1.5, "antibiotics": 1, "allergy": 1, "skin": 1,
     "first_aid": 1, "medical_supplies": 1.5, "eye_care": 0.7, "personal_care": 0.7,
     "vitamins": 0.7, "antihypertensive": 0.3, "antidiabetic": 0.2},
)
_EXTRA_LINES_MEAN = np.array([0.6, 0.9, 0.6, 1.3, 0.4])  # items beyond the first, per profile

# Per archetype (and walk-ins): order channel probabilities (store, mini_program,
# o2o_delivery, b2c_online).
_ORDER_CHANNELS = ("store", "mini_program", "o2o_delivery", "b2c_online")
_CHANNEL_PROBS = np.array([
    [0.85, 0.07, 0.06, 0.02],
    [0.75, 0.12, 0.10, 0.03],
    [0.70, 0.10, 0.18, 0.02],
    [0.35, 0.35, 0.28, 0.02],
    [0.85, 0.00, 0.15, 0.00],
])
_ACQ_CHANNELS = ("store", "wechat_official_account", "mini_program", "o2o_platform", "referral")
_ACQ_TAGS = np.array(["门店", "公众号", "小程序", "O2O", "老带新"], dtype=object)
_ACQ_PROBS = np.array([
    [0.60, 0.20, 0.10, 0.00, 0.10],
    [0.50, 0.20, 0.20, 0.05, 0.05],
    [0.60, 0.10, 0.10, 0.20, 0.00],
    [0.10, 0.25, 0.35, 0.30, 0.00],
])
_STORED_VALUE_PROB = np.array([0.20, 0.15, 0.03, 0.03])
# Hour-of-day profiles: ordinary store, store with an evening (19-21h) peak, online orders.
# All within 8-22h: a member's same-day orders swap times of day to keep their order.
_HOURS = np.array([
    [0, 0, 0, 0, 0, 0, 0, 0, 3, 8, 10, 9, 6, 5, 5, 6, 7, 9, 9, 7, 5, 3, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 2, 5, 6, 6, 4, 4, 4, 5, 6, 8, 9, 11, 12, 10, 3, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 5, 6, 6, 5, 5, 5, 6, 7, 8, 9, 10, 9, 6, 0],
], dtype=float)
_CITIES = {
    "杭州": ("西湖区", "拱墅区", "上城区", "滨江区", "余杭区", "萧山区", "临平区", "钱塘区"),
    "宁波": ("海曙区", "江北区", "鄞州区", "镇海区"),
    "绍兴": ("越城区", "柯桥区", "上虞区"),
}
_LUNAR_NEW_YEAR = {
    2020: "01-25", 2021: "02-12", 2022: "02-01", 2023: "01-22", 2024: "02-10", 2025: "01-29",
    2026: "02-17", 2027: "02-06", 2028: "01-26", 2029: "02-13", 2030: "02-03", 2031: "01-23",
    2032: "02-11", 2033: "01-31", 2034: "02-19", 2035: "02-08",
}


# -- small vectorized helpers -------------------------------------------------------------
def _choice_by_group(rng: np.random.Generator, group: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Draw one column index per row of ``group`` from the probability row ``probs[group]``.

    Probabilities are rounded to multiples of 2**-16, so that a draw is a single lookup in a
    small table (much faster than a search for tens of millions of draws).
    """
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    grid = (np.arange(1 << 16) + 0.5) / (1 << 16)
    table = np.minimum([np.searchsorted(c, grid, side="right") for c in cum], probs.shape[1] - 1)
    return table[group, rng.integers(0, 1 << 16, len(group), dtype=np.uint16)]


def _stable_argsort(key: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative integer keys, by 16-bit radix passes.

    NumPy's stable sort of 16-bit integers is a radix sort: a few passes beat a merge sort
    of 64-bit keys by far on tens of millions of rows.
    """
    key = np.asarray(key, dtype=np.uint64)
    order = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    top = int(key.max()) if len(key) else 0
    shift = 16
    while top >> shift:
        digit = ((key[order] >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
        shift += 16
    return order


def _strings(labels, codes: np.ndarray) -> pd.arrays.ArrowStringArray:
    """Pandas ``string`` array of ``labels[codes]``; code -1 gives <NA>."""
    codes = np.asarray(codes, dtype=np.int32)
    coded = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0),
                                           pa.array(list(labels), pa.large_string()))
    return pd.array(coded.cast(pa.large_string()), dtype="string")


def _int64(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """Pandas ``Int64`` array of ``values``, <NA> where ``missing``."""
    return pd.arrays.IntegerArray(np.asarray(values, dtype=np.int64), np.asarray(missing, dtype=bool))


def _numbered(prefix: str, numbers: np.ndarray, width: int,
              missing: np.ndarray | None = None) -> pd.arrays.ArrowStringArray:
    """Pandas ``string`` array ``prefix`` + ``width`` digits, e.g. ``O000000123``; <NA> where
    ``missing``. Built as one fixed-width byte buffer: formatting millions of numbers one by
    one is the slow part otherwise.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    size = len(head) + width
    chars = np.empty((len(numbers), size), dtype=np.uint8)
    chars[:, : len(head)] = head
    rest = numbers.copy()
    for pos in range(size, len(head), -3):  # three digits at a time, over positions not rows
        first = max(pos - 3, len(head))
        chars[:, first:pos] = _DIGIT_TRIPLES[rest % 1000, 3 - (pos - first):]
        rest //= 1000
    if len(numbers) and (numbers.min() < 0 or rest.max() > 0):
        raise ValueError(f"numbers do not fit in {width} digits")
    offsets = np.arange(0, (len(numbers) + 1) * size, size, dtype=np.int64)
    validity = None if missing is None else pa.py_buffer(np.packbits(~missing, bitorder="little"))
    array = pa.LargeStringArray.from_buffers(len(numbers), pa.py_buffer(offsets), pa.py_buffer(chars),
                                             validity)
    return pd.array(array, dtype="string")


def _largest_remainder(shares: np.ndarray, n: int) -> np.ndarray:
    """Integer counts summing to ``n`` as close as possible to ``shares * n``."""
    raw = shares * n
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def _bgnbd_repeats(rng: np.random.Generator, t0: np.ndarray, horizon: float, lam: np.ndarray,
                   p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repeat purchases of members following BG/NBD from their first purchase at ``t0``.

    While alive a member buys as a Poisson process of rate ``lam``; after each repeat purchase
    she drops out with probability ``p``, i.e. after the J-th, J ~ Geometric(p). With N ~
    Poisson(lam * L) arrivals in her observation length L, she dropped out inside the window iff
    N >= J, at the J-th arrival, distributed as L * Beta(J, N - J + 1); the earlier arrivals are
    uniform before it.

    Returns
    -------
    owner, times : ndarray
        Index into ``t0`` and time (days) of every repeat purchase.
    dropout : ndarray
        Time of the purchase after which each member dropped out, NaN if alive at the horizon.
    """
    length = horizon - t0
    j = rng.geometric(p)
    n = rng.poisson(lam * length)
    dropped = n >= j
    upper = length.copy()
    upper[dropped] *= rng.beta(j[dropped], n[dropped] - j[dropped] + 1)
    free = np.where(dropped, j - 1, n)
    owner = np.repeat(np.arange(len(t0)), free)
    times = t0[owner] + rng.random(len(owner)) * upper[owner]
    last = np.flatnonzero(dropped)
    dropout = np.full(len(t0), np.nan)
    dropout[last] = t0[last] + upper[last]
    return np.concatenate([owner, last]), np.concatenate([times, dropout[last]]), dropout


def _seasonal_warp(start: pd.Timestamp, length: int, amplitude: float):
    """Map 'operational' days on [0, length] to calendar days with a mid-January peak.

    A homogeneous process in operational time becomes one whose intensity is proportional to
    ``1 + amplitude * cos(2 pi (day_of_year - 15) / 365.25)`` and has the same mean.
    """
    grid = np.arange(length + 1, dtype=float)
    doy = (start + pd.to_timedelta(grid, unit="D")).day_of_year.to_numpy()
    intensity = 1 + amplitude * np.cos(2 * np.pi * (doy - 15) / 365.25)
    cum = np.concatenate([[0.0], np.cumsum((intensity[1:] + intensity[:-1]) / 2)])
    cum *= length / cum[-1]
    return lambda u: np.interp(u, cum, grid)


def _holidays(start: pd.Timestamp, length: int) -> list[tuple[str, str, int, int]]:
    """Holiday promotions inside the window: (code, name, first day, last day) in window days."""
    out = []
    end = start + pd.Timedelta(days=length - 1)
    for year in range(start.year, end.year + 1):
        spans = [("618", f"{year} 618年中大促", pd.Timestamp(f"{year}-06-01"), pd.Timestamp(f"{year}-06-18")),
                 ("1111", f"{year} 双11健康节", pd.Timestamp(f"{year}-11-01"), pd.Timestamp(f"{year}-11-11"))]
        if year in _LUNAR_NEW_YEAR:
            cny = pd.Timestamp(f"{year}-{_LUNAR_NEW_YEAR[year]}")
            spans.append(("CNY", f"{year} 春节年货节", cny - pd.Timedelta(days=14), cny - pd.Timedelta(days=1)))
        for code, name, first, last in spans:
            first, last = max(first, start), min(last, end)
            if first <= last:
                out.append((f"{year}{code}", name, (first - start).days, (last - start).days))
    return sorted(out, key=lambda h: h[2])


def _wave_starts(config: DemoConfig, length: int) -> np.ndarray:
    """First day of each acquisition wave: evenly spread, the last one leaving 90 days to watch."""
    first, last = 14, length - config.wave_days - 90
    if last < first:
        first, last = 0, max(length - config.wave_days, 0)
    return np.round(np.linspace(first, last, config.n_waves)).astype(np.int64)


# -- the generator ------------------------------------------------------------------------
@dataclass
class _Period:
    """The order window: ``length`` days from ``start``; times are days since start."""

    start: pd.Timestamp
    end: pd.Timestamp
    length: int

    @property
    def horizon(self) -> float:
        return float(self.length)


@dataclass
class _Members:
    """Simulated members, in simulation order (member numbers are assigned at the end)."""

    arch: np.ndarray
    t0: np.ndarray  # first purchase, days since start
    lam: np.ndarray
    p: np.ndarray
    dropout: np.ndarray  # time of the purchase after which the member left, NaN if alive
    acq_wave: np.ndarray  # recruiting wave (0-based), -1 if none
    chronic_sku: np.ndarray  # catalogue row, -1 if not a chronic patient
    disease: np.ndarray  # index into _CHRONIC_DRUG_CATEGORIES, -1 if not a chronic patient
    packs: np.ndarray
    cycle: np.ndarray


@dataclass
class _Waves:
    start: np.ndarray  # first day of each wave, days since start
    end: np.ndarray  # last day, inclusive


_CATALOGUE_FRAME = pd.DataFrame(_CATALOGUE, columns=["sku", "product_name", "category", "price", "pack_days"])
# Prescription drugs (处方药) of the catalogue: the chronic medicines and the antibiotic.
# Supplies, vitamins, TCM tonics and the OTC cold / pain / allergy medicines are not.
_PRESCRIPTION_SKUS = frozenset({
    "HBP-AML5", "HBP-NIF30", "HBP-VAL80", "HBP-IRB150", "DM-MET500", "DM-GLM2", "LIP-ATO20",
    "LIP-ROS10", "CV-ASP100", "CV-CLO75", "THY-LEV50", "AB-AMX24",
})


def _simulate_members(rng: np.random.Generator, config: DemoConfig, period: _Period,
                      waves: _Waves) -> tuple[_Members, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Members and their purchases: (owner, time, is refill) arrays per archetype."""
    n, horizon = config.n_members, period.horizon
    shares = np.array([config.archetype_shares.get(a, 0.0) for a in ARCHETYPES])
    arch = np.repeat(np.arange(4), _largest_remainder(shares, n))
    is_hunter = arch == HUNTER
    # Hunters: recruited by wave k in proportion to decay ** (k - 1), joining inside it.
    acq_wave = np.full(n, -1)
    acq_wave[is_hunter] = _choice_by_group(rng, np.zeros(is_hunter.sum(), dtype=np.int64),
                                           config.wave_recruit_decay ** np.arange(config.n_waves)[None, :])
    t0 = rng.random(n) * horizon
    t0[is_hunter] = np.minimum(waves.start[acq_wave[is_hunter]] + rng.random(is_hunter.sum()) * config.wave_days,
                               horizon - 1e-6)
    m = _Members(arch=arch, t0=t0, lam=np.zeros(n), p=np.zeros(n), dropout=np.full(n, np.nan),
                 acq_wave=acq_wave, chronic_sku=np.full(n, -1), disease=np.full(n, -1),
                 packs=np.ones(n, dtype=np.int64), cycle=np.full(n, np.nan))
    events = [(np.arange(n), t0, arch == CHRONIC)]  # first purchases; t0 of acute buyers warped below
    warp = _seasonal_warp(period.start, period.length, config.acute_seasonality)
    for code, params in ((GENERAL, config.loyal_general), (ACUTE, config.occasional_acute),
                         (HUNTER, config.coupon_hunter)):
        idx = np.flatnonzero(arch == code)
        alpha = np.full(len(idx), params.alpha)
        if code == HUNTER:
            alpha = params.alpha / config.wave_rate_decay ** acq_wave[idx]
        m.lam[idx] = rng.gamma(params.r, 1 / alpha)
        m.p[idx] = rng.beta(params.a, params.b, len(idx))
        owner, times, drop = _bgnbd_repeats(rng, t0[idx], horizon, m.lam[idx], m.p[idx])
        if code == ACUTE:
            # Acute buyers live in operational time, mapped to the calendar with a winter peak.
            t0[idx], times, drop = warp(t0[idx]), warp(times), warp(drop)
        events.append((idx[owner], times, np.zeros(len(owner), dtype=bool)))
        m.dropout[idx] = drop
    events += _simulate_chronic(rng, config, horizon, m)
    # Loyal members joining during a wave may use its new-member coupon: recruited by it.
    join_day = np.floor(t0).astype(np.int64)[:, None]
    in_wave = (join_day >= waves.start[None, :]) & (join_day <= waves.end[None, :])
    recruited = ~is_hunter & in_wave.any(axis=1) & (rng.random(n) < config.loyal_wave_coupon_prob)
    acq_wave[recruited] = in_wave[recruited].argmax(axis=1)
    return m, events


def _simulate_chronic(rng: np.random.Generator, config: DemoConfig, horizon: float,
                      m: _Members) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Chronic patients: one chronic SKU refilled every cycle (pack days x packs x adherence),
    a dropout chance after each refill, and Poisson purchases of other items while a patient."""
    idx = np.flatnonzero(m.arch == CHRONIC)
    nc = len(idx)
    categories = _CATALOGUE_FRAME["category"].to_numpy()
    disease = _choice_by_group(rng, np.zeros(nc, dtype=np.int64),
                               np.array([[v[0] for v in _CHRONIC_DRUG_CATEGORIES.values()]]))
    drug_skus = [np.flatnonzero(categories == c) for c in _CHRONIC_DRUG_CATEGORIES]
    n_alt = np.array([len(s) for s in drug_skus])
    first_alt = np.concatenate([[0], np.cumsum(n_alt)[:-1]])
    m.disease[idx] = disease
    m.chronic_sku[idx] = np.concatenate(drug_skus)[first_alt[disease] + rng.integers(0, 1 << 30, nc) % n_alt[disease]]
    m.packs[idx] = np.where(rng.random(nc) < 0.1, 2, 1)
    pack_days = _CATALOGUE_FRAME["pack_days"].to_numpy()
    cycle = pack_days[m.chronic_sku[idx]] * m.packs[idx] * rng.uniform(1.0, 1.15, nc)
    m.cycle[idx] = cycle
    max_refills = int(np.ceil(horizon / (0.5 * cycle.min()))) + 1 if nc else 0
    shape = (nc, max_refills)
    gaps = cycle[:, None] * np.maximum(1 + config.chronic_jitter * rng.standard_normal(shape), 0.5)
    gaps += np.where(rng.random(shape) < config.chronic_late_prob,
                     rng.exponential(config.chronic_late_mean_days, shape), 0.0)
    if config.refill_dispersion > 0:  # drawn only when asked: the default chain stays the same
        cv2 = (config.refill_dispersion * rng.uniform(0.25, 1.75, nc)) ** 2
        gaps *= rng.gamma(1 / cv2[:, None], cv2[:, None], shape)
    t0 = m.t0[idx]
    refill_t = t0[:, None] + np.cumsum(gaps, axis=1)
    cp = config.chronic_other
    m.p[idx] = rng.beta(cp.a, cp.b, nc)
    last_refill = rng.geometric(m.p[idx])  # the patient leaves after this refill
    rows, cols = np.nonzero((np.arange(1, max_refills + 1)[None, :] <= last_refill[:, None])
                            & (refill_t < horizon))
    drop = np.full(nc, np.nan)
    has_drop = last_refill <= max_refills
    drop[has_drop] = refill_t[np.flatnonzero(has_drop), last_refill[has_drop] - 1]
    drop[drop >= horizon] = np.nan
    m.dropout[idx] = drop
    other_rate = rng.gamma(cp.r, 1 / cp.alpha, nc)
    alive = np.where(np.isnan(drop), horizon, drop) - t0
    owner = np.repeat(np.arange(nc), rng.poisson(other_rate * alive))
    m.lam[idx] = 1 / (cycle + config.chronic_late_prob * config.chronic_late_mean_days) + other_rate
    return [(idx[rows], refill_t[rows, cols], np.ones(len(rows), dtype=bool)),
            (idx[owner], t0[owner] + rng.random(len(owner)) * alive[owner], np.zeros(len(owner), dtype=bool))]


def _place_orders(rng: np.random.Generator, config: DemoConfig, period: _Period, m: _Members,
                  events: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  store_weights: np.ndarray | None = None) -> dict[str, Any]:
    """Add walk-ins, give every purchase a store, channel and time of day, sort by time.
    ``store_weights`` replaces the drawn store sizes (drawn all the same, so the random
    stream does not move)."""
    owner, t, refill = (np.concatenate(parts) for parts in zip(*events, strict=True))
    # Walk-ins on top: a share of all orders, with a milder winter peak.
    n_walk = int(round(len(owner) * config.walk_in_share / (1 - config.walk_in_share)))
    walk_warp = _seasonal_warp(period.start, period.length, config.acute_seasonality / 3)
    owner = np.concatenate([owner, np.full(n_walk, -1)])
    t = np.concatenate([t, walk_warp(rng.random(n_walk) * period.horizon)])
    refill = np.concatenate([refill, np.zeros(n_walk, dtype=bool)])
    first = np.zeros(len(t), dtype=bool)
    first[: config.n_members] = True  # the first event block holds the first purchases
    is_member = owner >= 0
    group = np.where(is_member, m.arch[np.maximum(owner, 0)], WALK_IN)
    day = np.minimum(np.floor(t), period.length - 1).astype(np.int64)

    # Stores: sizes vary; members shop at their registration store 85% of the time.
    store_w = rng.lognormal(0, config.store_size_spread, config.n_stores)
    store_w = store_w if store_weights is None else store_weights
    store_probs = (store_w / store_w.sum())[None, :]
    reg_store = _choice_by_group(rng, np.zeros(config.n_members, dtype=np.int64), store_probs)
    store = _choice_by_group(rng, np.zeros(len(t), dtype=np.int64), store_probs)
    at_home = is_member & (first | (rng.random(len(t)) < config.home_store_share))
    store[at_home] = reg_store[owner[at_home]]
    if config.other_stores:
        # Each member's few other stores: the registration store plus 1..other_stores steps.
        steps = rng.permutation(np.arange(1, config.n_stores))[: config.other_stores]
        own = (reg_store[:, None] + steps[None, :]) % config.n_stores
        away = np.flatnonzero(is_member & ~at_home)
        store[away] = own[owner[away], rng.integers(0, config.other_stores, len(away))]
    evening_store = np.arange(config.n_stores) % 3 == 2
    channel = _choice_by_group(rng, group, _CHANNEL_PROBS)

    # Time of day; within a member's day, times follow purchase order (first purchase first).
    profile = np.where(channel == 0, evening_store[store].astype(np.int64), 2)
    tod = _choice_by_group(rng, profile, _HOURS) * 3600 + rng.integers(0, 3600, len(t))
    m_pos = np.flatnonzero(is_member)
    member_day = owner[m_pos] * period.length + day[m_pos]
    by_day = _stable_argsort(member_day)
    same_day = member_day[by_day][1:] == member_day[by_day][:-1]
    shared = np.zeros(len(m_pos), dtype=bool)
    shared[1:] |= same_day
    shared[:-1] |= same_day
    sub = m_pos[by_day[shared]]  # the few member-days with several orders
    by_t = sub[np.lexsort((t[sub], day[sub], owner[sub]))]
    tod[by_t] = tod[sub[np.lexsort((tod[sub], day[sub], owner[sub]))]]
    seconds = day * 86_400 + tod
    # The truth's dropout: the purchase whose time is the member's dropout time.
    is_drop = np.zeros(len(t), dtype=bool)
    is_drop[m_pos] = t[m_pos] == m.dropout[owner[m_pos]]

    order = _stable_argsort(seconds)
    o = {k: v[order] for k, v in (("owner", owner), ("day", day), ("refill", refill), ("group", group),
                                  ("store", store), ("channel", channel), ("seconds", seconds),
                                  ("first", first), ("is_drop", is_drop))}
    o["is_member"] = o["owner"] >= 0
    o["mo"] = np.maximum(o["owner"], 0)  # owner as a safe index; mask with is_member
    o["ts"] = np.datetime64(period.start, "ns").astype(np.int64) + o.pop("seconds") * 10**9
    o.update(reg_store=reg_store, evening_store=evening_store, n_walk=n_walk, store_weights=store_w)
    return o


def _subsidise(rng: np.random.Generator, config: DemoConfig, period: _Period, waves: _Waves,
               holidays: list, promos: list, m: _Members, o: dict[str, Any],
               birth_month: np.ndarray) -> dict[str, Any]:
    """Campaign, coupon and discount rate of every order (see docs/demo-chain.md)."""
    n_orders, group, day, is_member, mo = len(o["ts"]), o["group"], o["day"], o["is_member"], o["mo"]
    n_w, n_h = config.n_waves, len(holidays)
    bday_campaign, gen_coupon = n_w + n_h, n_w + n_h + 1
    campaign = np.full(n_orders, -1)
    coupon = np.full(n_orders, -1)
    coupon_rate = np.zeros(n_orders)
    promo_rate = np.zeros(n_orders)

    # New-member coupons: a recruit's first order, and 90% of a hunter's orders while valid.
    wave = m.acq_wave[mo]
    w_safe = np.maximum(wave, 0)
    valid = (is_member & (wave >= 0) & (day >= waves.start[w_safe])
             & (day <= waves.end[w_safe] + config.coupon_valid_days))
    subsidised = valid & (o["first"] | ((group == HUNTER) & (rng.random(n_orders) < 0.9)))
    campaign[subsidised] = wave[subsidised]
    coupon[subsidised] = wave[subsidised]
    coupon_rate[subsidised] = rng.uniform(0.3, 0.6, subsidised.sum())

    holiday_of_day = np.full(period.length, -1)
    for k, (_, _, first_day, last_day) in enumerate(holidays):  # over the few holidays
        holiday_of_day[first_day:last_day + 1] = n_w + k
    hol = holiday_of_day[day]
    take_holiday = ((campaign < 0) & (hol >= 0)
                    & (rng.random(n_orders) < np.array([0.35, 0.4, 0.3, 0.85, 0.25])[group]))
    campaign[take_holiday] = hol[take_holiday]
    promo_rate[take_holiday] = rng.uniform(0.08, 0.15, take_holiday.sum())
    hol_coupon = take_holiday & is_member & (rng.random(n_orders) < np.where(group == HUNTER, 0.8, 0.4))
    coupon[hol_coupon] = hol[hol_coupon]
    coupon_rate[hol_coupon] = 0.1

    month_of_day = (period.start + pd.to_timedelta(np.arange(period.length), unit="D")).month.to_numpy()
    birthday = (is_member & (campaign < 0) & (birth_month[mo] == month_of_day[day])
                & (rng.random(n_orders) < 0.25))
    campaign[birthday] = bday_campaign
    coupon[birthday] = bday_campaign
    coupon_rate[birthday] = 0.15

    general = (is_member & (coupon < 0)
               & (rng.random(n_orders) < np.array([0.05, 0.06, 0.05, 0.45, 0.0])[group]))
    coupon[general] = gen_coupon
    coupon_rate[general] = rng.uniform(0.05, 0.15, general.sum())
    if promos:
        promo_of_day = np.full(period.length, -1)
        for k, (_, _, first_day, last_day) in enumerate(promos):  # over the few promotions
            promo_of_day[first_day:last_day + 1] = bday_campaign + 1 + k
        promo = promo_of_day[day]
        take_promo = is_member & (campaign < 0) & (promo >= 0) & (rng.random(n_orders) < 1 / 3)
        campaign[take_promo] = promo[take_promo]
        promo_rate[take_promo] = rng.uniform(0.03, 0.08, take_promo.sum())
    member_rate = np.where(is_member, rng.uniform(*config.member_discount, n_orders), 0.0)
    return {"campaign": campaign, "coupon": coupon,
            "rate": np.minimum(coupon_rate + promo_rate + member_rate, 0.7)}


def _baskets(rng: np.random.Generator, m: _Members, o: dict[str, Any], rate: np.ndarray) -> dict[str, Any]:
    """Order lines and amounts in fen: gross, discount, paid, and paid per line."""
    n_orders, mo = len(o["ts"]), o["mo"]
    basket = np.where(o["group"] == CHRONIC, 0, o["group"])  # profile 0: chronic patients' other items
    n_lines = np.minimum(1 + rng.poisson(_EXTRA_LINES_MEAN[basket]), 6)
    line_order = np.repeat(np.arange(n_orders), n_lines)
    line_start = np.concatenate([[0], np.cumsum(n_lines)[:-1]])
    categories = _CATALOGUE_FRAME["category"].to_numpy()
    weights = np.array([[w.get(c, 0.0) for c in categories] for w in _BASKET_WEIGHTS])
    weights /= np.array([[(categories == c).sum() for c in categories]])  # category weight over its SKUs
    sku = _choice_by_group(rng, basket[line_order], weights)
    quantity = _choice_by_group(rng, np.zeros(len(sku), dtype=np.int64), np.array([[0.8, 0.15, 0.05]])) + 1
    refill_line = o["refill"][line_order]
    refill_line[np.arange(len(line_order)) != line_start[line_order]] = False  # first line only
    refill_member = mo[line_order[refill_line]]
    sku[refill_line] = m.chronic_sku[refill_member]
    quantity[refill_line] = m.packs[refill_member]

    price_fen = np.round(_CATALOGUE_FRAME["price"].to_numpy() * 100).astype(np.int64)
    line_gross = price_fen[sku] * quantity
    gross = np.add.reduceat(line_gross, line_start)
    discount = np.round(gross * rate).astype(np.int64)
    paid = gross - discount
    # Discount spread over lines in proportion to list price; the last line takes the rounding.
    line_paid = line_gross * paid[line_order] // gross[line_order]
    line_paid[line_start + n_lines - 1] += paid - np.add.reduceat(line_paid, line_start)
    return {"line_order": line_order, "sku": sku, "quantity": quantity, "line_paid": line_paid,
            "gross": gross, "discount": discount, "paid": paid}


def generate_demo_chain(config: DemoConfig | None = None) -> DemoChain:
    """Generate the demo chain in memory.

    Parameters
    ----------
    config : DemoConfig, optional
        Size, seed and behaviour; defaults to ``DemoConfig()`` (8 stores, 20,000 members,
        18 months to 2026-09-30).

    Returns
    -------
    DemoChain
        Tables in the data contract's columns and dtypes, plus ``truth`` (one row per member)
        and ``truth_params`` (the chain-level parameters simulated from).
    """
    config = config or DemoConfig()
    config.validate()
    return _generate(config, _Part())[0]


@dataclass
class _Part:
    """Where one part of a chain written in parts (:func:`write_demo_chain`) sits in the
    whole: numbers before its members and orders, the whole chain's id widths, and the store
    sizes of the first part (so every part shops at the same stores alike)."""

    members_before: int = 0
    orders_before: int = 0
    member_width: int | None = None
    order_width: int | None = None
    store_weights: np.ndarray | None = None


def _generate(config: DemoConfig, part: _Part) -> tuple[DemoChain, np.ndarray]:
    """The chain of ``config`` numbered as ``part`` says, and its store size weights."""
    rng = np.random.default_rng(config.seed)
    end = pd.Timestamp(config.end_date).normalize()
    start = end + pd.Timedelta(days=1) - pd.DateOffset(months=config.months)
    period = _Period(start, end, (end - start).days + 1)
    wave_start = _wave_starts(config, period.length)
    waves = _Waves(wave_start, np.minimum(wave_start + config.wave_days - 1, period.length - 1))
    holidays = _holidays(start, period.length)
    n = config.n_members
    members = np.arange(n)

    m, events = _simulate_members(rng, config, period, waves)
    send_rng = np.random.default_rng([config.seed, 16])  # the chain without sends is unchanged
    sends = None
    if config.send_waves:
        events, sends = _simulate_sends(send_rng, config, period, m, events)
    o = _place_orders(rng, config, period, m, events, part.store_weights)
    del events
    birth_month = np.where(rng.random(n) < 0.85, rng.integers(1, 13, n), 0)  # 0: unknown
    promos = _promotions(period.length, config.promo_calendar_share)
    subsidy = _subsidise(rng, config, period, waves, holidays, promos, m, o, birth_month)
    if sends is not None:
        # send-wave campaigns follow the waves', holidays', birthday and promotions' codes
        n_codes = config.n_waves + len(holidays) + 1
        _redeem_send_coupons(send_rng, config, sends, o, subsidy, n_codes + len(promos),
                             n_codes + 1)
    lines = _baskets(rng, m, o, subsidy["rate"])
    is_member, mo, paid = o["is_member"], o["mo"], lines["paid"]

    # Stored value: 60% of a stored-value member's orders, fully or partly from the card.
    stored_value = rng.random(n) < _STORED_VALUE_PROB[m.arch]
    from_card = is_member & stored_value[mo] & (rng.random(len(paid)) < 0.6)
    card_share = np.where(rng.random(len(paid)) < 0.7, 1.0, rng.uniform(0.2, 0.9, len(paid)))
    stored_value_amount = np.where(from_card, np.floor(paid * card_share), 0).astype(np.int64)

    # -- members ------------------------------------------------------------------------
    # Tier from spend over the last 365 days.
    recent = is_member & (o["day"] >= period.length - 365)
    spend = np.bincount(mo[recent], weights=paid[recent], minlength=n) / 100
    tier = np.searchsorted(np.asarray(config.tier_thresholds), spend, side="right")
    # Home store: the store of most orders, ties to the registration store.
    mpos = np.flatnonzero(is_member)
    pair, pair_n = np.unique(mo[mpos] * config.n_stores + o["store"][mpos], return_counts=True)
    pair_member, pair_store = pair // config.n_stores, pair % config.n_stores
    score = pair_n * 2 + (pair_store == o["reg_store"][pair_member])
    best = np.lexsort((-score, pair_member))
    home = np.empty(n, dtype=np.int64)
    home[pair_member[best][::-1]] = pair_store[best][::-1]  # the first of each member wins
    # Member numbers follow registration order.
    first_pos = np.flatnonzero(o["first"] & is_member)
    first_ts = np.empty(n, dtype=np.int64)
    first_ts[mo[first_pos]] = o["ts"][first_pos]
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((members, first_ts))] = members
    by_rank = np.argsort(rank)

    stores_df, store_city, store_district = _stores_frame(rng, config, start)
    demographics = _member_demographics(rng, m.arch, home, store_city, store_district)
    acq = _choice_by_group(rng, m.arch, _ACQ_PROBS)
    recruit = m.acq_wave >= 0
    acq[recruit] = np.where(rng.random(recruit.sum()) < 0.5, 2, 3)  # mini program / O2O
    chronic_tag = np.array(["慢病" + TAG_SEPARATOR + v[1] for v in _CHRONIC_DRUG_CATEGORIES.values()], dtype=object)
    tags = _add_tag(_ACQ_TAGS[acq], m.arch == CHRONIC, chronic_tag[np.maximum(m.disease, 0)])
    tags = _add_tag(tags, (m.arch == GENERAL) & (rng.random(n) < 0.5), "保健")
    tags = _add_tag(tags, recruit, "新客活动")
    tags = _add_tag(tags, stored_value, "储值")
    balance = np.where(stored_value, np.round(rng.lognormal(np.log(300), 1.0, n), 2), np.nan)
    balance[stored_value & (rng.random(n) < 0.1)] = 0.0

    id_width = part.member_width or max(6, len(str(n)))
    rank += part.members_before  # member numbers of a part follow the parts before it
    member_ids = _numbered("M", rank[by_rank] + 1, id_width)  # in rank (registration) order
    member_df = pd.DataFrame({
        "member_id": member_ids,
        "home_store_id": stores_df["store_id"].array[home[by_rank]],
        "joined_on": pd.to_datetime(first_ts[by_rank]).normalize().astype("datetime64[ns]"),
        "tier": _strings(TIERS, tier[by_rank]),
        **{k: v[by_rank] for k, v in demographics.items()},
        "acquisition_channel": _strings(_ACQ_CHANNELS, acq[by_rank]),
        "tags": pd.array(tags[by_rank], dtype="string"),
        "birth_month": _int64(birth_month[by_rank], birth_month[by_rank] == 0),
        "phone": _fake_contacts(rng, n, "phone")[by_rank],
        "wechat_id": _fake_contacts(rng, n, "wechat")[by_rank],
        "stored_value_balance": balance[by_rank],
    })

    # -- orders, lines, campaigns -------------------------------------------------------
    n_orders = len(paid)
    campaign_codes = ([f"CP-NEW{k + 1:02d}" for k in range(config.n_waves)]
                      + [f"CP-{h[0]}" for h in holidays] + ["CP-BDAY"] + [p[0] for p in promos])
    coupon_codes = ([f"CPN-NEW{k + 1:02d}" for k in range(config.n_waves)]
                    + [f"CPN-{h[0]}" for h in holidays] + ["CPN-BDAY", "CPN-GEN"])
    n_sent = 0 if sends is None else len(sends.days)
    coupon_codes += [f"CPN-WAKE{k + 1:02d}" for k in range(n_sent)]
    orders_df = pd.DataFrame({
        "order_id": _numbered("O", np.arange(1, n_orders + 1) + part.orders_before,
                              part.order_width or max(9, len(str(n_orders)))),
        "member_id": _numbered("M", rank[mo] + 1, id_width, missing=~is_member),
        "store_id": stores_df["store_id"].array[o["store"]],
        "ordered_at": o["ts"].astype("datetime64[ns]"),
        "channel": _strings(_ORDER_CHANNELS, o["channel"]),
        "gross_amount": lines["gross"] / 100,
        "discount_amount": lines["discount"] / 100,
        "paid_amount": paid / 100,
        "coupon_id": _strings(coupon_codes, subsidy["coupon"]),
        "campaign_id": _strings(campaign_codes + [f"CP-WAKE{k + 1:02d}" for k in range(n_sent)],
                                subsidy["campaign"]),
        "stored_value_amount": stored_value_amount / 100,
    })
    sku = lines["sku"]
    days_supply = _CATALOGUE_FRAME["pack_days"].to_numpy()[sku] * lines["quantity"]
    lines_df = pd.DataFrame({
        "order_id": orders_df["order_id"].array[lines["line_order"]],
        "sku": _strings(_CATALOGUE_FRAME["sku"], sku),
        "product_name": _strings(_CATALOGUE_FRAME["product_name"], sku),
        "category": _strings(_CATALOGUE_FRAME["category"], sku),
        "is_chronic": days_supply > 0,
        "is_prescription": pd.array(_CATALOGUE_FRAME["sku"].isin(_PRESCRIPTION_SKUS).to_numpy()[sku],
                                    dtype="boolean"),
        "quantity": lines["quantity"].astype(float),
        "line_amount": lines["line_paid"] / 100,
        "days_supply": _int64(days_supply, days_supply == 0),
    })
    campaigns_df = _campaigns_frame(start, period.length, waves.start, waves.end, holidays, promos,
                                    campaign_codes)
    if not config.subsidy_ids:
        no_ids = _strings([], np.full(n_orders, -1))
        orders_df["coupon_id"] = no_ids
        orders_df["campaign_id"] = no_ids
        campaigns_df = campaigns_df.iloc[:0]
    send_members = send_truth = None
    if sends is not None:
        send_campaigns, send_members, send_truth = _send_tables(config, start, sends, m, rank, id_width)
        campaigns_df = pd.concat([campaigns_df, send_campaigns], ignore_index=True)

    # -- ground truth -------------------------------------------------------------------
    drop_pos = np.flatnonzero(o["is_drop"])
    dropped_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    dropped_at[o["owner"][drop_pos]] = o["ts"][drop_pos].astype("datetime64[ns]")
    truth = pd.DataFrame({
        "member_id": member_ids,
        "archetype": _strings(ARCHETYPES, m.arch[by_rank]),
        "purchase_rate_per_day": m.lam[by_rank],
        "dropout_prob": m.p[by_rank],
        "dropped_out_at": dropped_at[by_rank],
        "acquisition_wave": _int64(m.acq_wave[by_rank] + 1, m.acq_wave[by_rank] < 0),
        "chronic_sku": _strings(_CATALOGUE_FRAME["sku"], m.chronic_sku[by_rank]),
        "refill_interval_days": m.cycle[by_rank],
        "packs_per_refill": _int64(m.packs[by_rank], m.arch[by_rank] != CHRONIC),
        "first_purchase_at": first_ts[by_rank].astype("datetime64[ns]"),
        "stored_value_member": stored_value[by_rank],
        "n_orders": np.bincount(mo[mpos], minlength=n)[by_rank],
        "spend_last_365d": np.round(spend[by_rank], 2),
    })
    params = _truth_params(config, start, end, m, waves, campaign_codes, stores_df,
                           o["evening_store"], n_orders, o["n_walk"])
    if send_truth is not None:
        params["send_waves"] = _send_truth_params(config, send_truth)
    return DemoChain(stores_df, member_df, orders_df, lines_df, campaigns_df, truth, params, config,
                     send_members, send_truth), o["store_weights"]


def _add_tag(tags: np.ndarray, mask: np.ndarray, tag) -> np.ndarray:
    """Append ``tag`` (scalar or per-member array) to the tag lists of members in ``mask``."""
    tag = np.broadcast_to(np.asarray(tag, dtype=object), tags.shape)
    return np.where(mask, tags + TAG_SEPARATOR + tag, tags)


def _fake_contacts(rng: np.random.Generator, n: int, kind: str) -> pd.arrays.ArrowStringArray:
    """Fake mobile numbers (1[35789]x xxxx xxxx, 90% of members) or WeChat ids (45%)."""
    if kind == "phone":
        number = 10**10 + rng.choice([3, 5, 7, 8, 9], n) * 10**9 + rng.integers(0, 10**9, n)
        prefix, width, share = "", 11, 0.9
    else:
        number = rng.integers(10**9, 10**10, n)
        prefix, width, share = "wxid_", 10, 0.45
    return _numbered(prefix, number, width, missing=rng.random(n) >= share)


def _stores_frame(rng: np.random.Generator, config: DemoConfig,
                  start: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The stores table, and each store's city and district (for members' regions)."""
    cities = ["杭州", "杭州", "宁波", "绍兴"]
    city = np.array([cities[k % 4] for k in range(config.n_stores)], dtype=object)
    seen: dict[str, int] = {}
    district, names = [], []
    for c in city:  # at most n_stores iterations, over stores not orders
        k = seen.get(c, 0)
        seen[c] = k + 1
        d = _CITIES[c][k % len(_CITIES[c])]
        district.append(d)
        names.append(f"康和大药房{d}{'' if k < len(_CITIES[c]) else k // len(_CITIES[c]) + 1}店")
    width = max(2, len(str(config.n_stores)))
    ids = _numbered("S", np.arange(1, config.n_stores + 1), width)
    opened = start - pd.to_timedelta(rng.integers(200, 6000, config.n_stores), unit="D")
    email = pd.Series(ids).str.lower() + ".manager@kanghe-pharmacy.example.com"
    email[np.arange(config.n_stores) % 7 == 5] = pd.NA  # a store without a manager's email
    df = pd.DataFrame({
        "store_id": ids,
        "name": pd.array(names, dtype="string"),
        "city": pd.array(list(city), dtype="string"),
        "opened_on": opened.normalize().astype("datetime64[ns]"),
        "manager_email": email.astype("string"),
    })
    return df, city, np.array(district, dtype=object)


def _member_demographics(rng: np.random.Generator, arch: np.ndarray, home: np.ndarray,
                         store_city: np.ndarray, store_district: np.ndarray) -> dict[str, Any]:
    """Gender, birth year (by archetype) and region (mostly the home store's district)."""
    n = len(arch)
    year = np.round(rng.normal(np.array([1958, 1978, 1982, 1990])[arch], np.array([9, 12, 14, 8])[arch]))
    year = np.clip(year, 1935, 2006).astype(np.int64)
    gender = _choice_by_group(rng, np.zeros(n, dtype=np.int64), np.array([[0.58, 0.38, 0.04]]))
    # Region: the home store's district mostly, else another district of its city.
    city = store_city[home]
    region = store_district[home].copy()
    elsewhere = rng.random(n) < 0.3
    pick = rng.integers(0, 1 << 30, n)
    for c, districts in _CITIES.items():  # over the few cities, not members
        m = elsewhere & (city == c)
        region[m] = np.array(districts, dtype=object)[pick[m] % len(districts)]
    birth_year = _int64(year, rng.random(n) < 0.08)
    return {
        "gender": _strings(["F", "M"], np.where(gender == 2, -1, gender)),
        "birth_year": birth_year,
        "region": pd.array(region, dtype="string"),
    }


def _promotions(length: int, share: float) -> list[tuple[str, str, int, int]]:
    """Week-long member-day promotions evenly spread over ``share`` of the ``length`` days."""
    n = int(np.ceil(share * length / 7))
    if n == 0:
        return []
    starts = np.round(np.linspace(0, max(length - 7, 0), n)).astype(np.int64)
    return [(f"CP-PROMO{k + 1:03d}", f"会员日特惠第{k + 1}期", int(s), int(min(s + 6, length - 1)))
            for k, s in enumerate(starts)]


def _campaigns_frame(start: pd.Timestamp, length: int, wave_start: np.ndarray, wave_end: np.ndarray,
                     holidays: list, promos: list, codes: list[str]) -> pd.DataFrame:
    """The campaigns table: acquisition waves, holiday promotions, the birthday campaign, and
    member-day promotions."""
    names = [f"第{k + 1}波新客招募(首单券)" for k in range(len(wave_start))] + [h[1] for h in holidays]
    names.append("会员生日礼")
    names += [p[1] for p in promos]
    first = np.concatenate([wave_start, [h[2] for h in holidays], [0],
                            [p[2] for p in promos]]).astype(np.int64)
    last = np.concatenate([wave_end, [h[3] for h in holidays], [length - 1],
                           [p[3] for p in promos]]).astype(np.int64)
    kinds = (["new_member"] * len(wave_start) + ["holiday"] * len(holidays) + ["birthday"]
             + ["promotion"] * len(promos))
    return pd.DataFrame({
        "campaign_id": pd.array(codes, dtype="string"),
        "name": pd.array(names, dtype="string"),
        "starts_on": (start + pd.to_timedelta(first, unit="D")).astype("datetime64[ns]"),
        "ends_on": (start + pd.to_timedelta(last, unit="D")).astype("datetime64[ns]"),
        "kind": pd.array(kinds, dtype="string"),
    })


def _truth_params(config: DemoConfig, start: pd.Timestamp, end: pd.Timestamp, m: _Members, waves: _Waves,
                  campaign_codes: list[str], stores_df: pd.DataFrame, evening_store: np.ndarray,
                  n_orders: int, n_walk: int) -> dict[str, Any]:
    """The chain-level truth written to ground_truth.json (see docs/demo-chain.md)."""
    counts = np.bincount(m.arch, minlength=len(ARCHETYPES))
    archetypes = {}
    for code, name in enumerate(ARCHETYPES):
        entry: dict[str, Any] = {"members": int(counts[code]), "share": float(config.archetype_shares.get(name, 0))}
        if code == CHRONIC:
            cp = config.chronic_other
            entry["other_purchases"] = {"r": cp.r, "alpha_days": cp.alpha, "alpha_weeks": cp.alpha / 7}
            entry["dropout_per_refill"] = {"a": cp.a, "b": cp.b}
            entry["refill"] = {"cycle": "pack days x packs x Uniform(1.0, 1.15)",
                               "jitter_sd": config.chronic_jitter, "late_prob": config.chronic_late_prob,
                               "late_mean_days": config.chronic_late_mean_days,
                               "dispersion": config.refill_dispersion}
        else:
            params = getattr(config, name)
            entry["bgnbd_days"] = params.as_dict("days")
            entry["bgnbd_weeks"] = params.as_dict("weeks")
        archetypes[name] = entry
    per_wave = []
    hp = config.coupon_hunter
    for k in range(config.n_waves):
        alpha = hp.alpha / config.wave_rate_decay**k
        wave_params = PopulationParams(hp.r, alpha, hp.a, hp.b)
        per_wave.append({
            "wave": k + 1,
            "campaign_id": campaign_codes[k],
            "starts_on": str((start + pd.Timedelta(days=int(waves.start[k]))).date()),
            "ends_on": str((start + pd.Timedelta(days=int(waves.end[k]))).date()),
            "coupon_hunters_recruited": int(((m.acq_wave == k) & (m.arch == HUNTER)).sum()),
            "loyal_recruited": int(((m.acq_wave == k) & (m.arch != HUNTER)).sum()),
            "hunter_bgnbd_days": wave_params.as_dict("days"),
            "hunter_bgnbd_weeks": wave_params.as_dict("weeks"),
            # P(at least one repeat within 60 days) = 1 - E[exp(-60 lambda)]: dropout only
            # happens after a repeat purchase, so it cannot prevent the first one.
            "hunter_repurchase_60d": float(1 - (alpha / (alpha + 60)) ** hp.r),
        })
    return {
        "config": json.loads(json.dumps(asdict(config))),
        "period": {"start": str(start.date()), "end": str(end.date())},
        "archetypes": archetypes,
        "waves": per_wave,
        "walk_in_share": config.walk_in_share,
        "orders": int(n_orders),
        "walk_in_orders": int(n_walk),
        "evening_peak_stores": list(stores_df["store_id"].astype(str)[evening_store]),
        "tier_thresholds_cny": list(config.tier_thresholds),
        "catalogue": [dict(zip(["sku", "product_name", "category", "price", "pack_days"], row, strict=True))
                      for row in _CATALOGUE],
    }


# -- campaign send lists with a holdout group, and their true effect -----------------------
# Wake-up coupon waves sent to existing members (WeChat / SMS / app). Odd waves keep a random
# control group out of the send; even waves are targeted at lapsing members without one, as
# chains usually do. Every listed member's response to the offer is simulated whether or not
# they were sent it, so both potential outcomes are known: the truth the estimators of
# rxrepurchase.uplift are checked against (docs/demo-chain.md, docs/uplift.md).
SEND_TRUTH_FILE = "ground_truth_campaign_members.csv"
_SEND_CHANNELS = ("wechat", "sms", "app", "in_store")
_SEND_CHANNEL_PROBS = np.array([[0.5, 0.3, 0.15, 0.05]])
# Per archetype (chronic, general, acute, hunter): chance to respond to wave 1's offer, and
# the share of responses that only pull the next purchase forward into the window.
_SEND_RESPONSE = np.array([0.02, 0.06, 0.25, 0.50])
_SEND_PULL_SHARE = np.array([0.0, 0.3, 0.2, 0.9])
_SEND_HORIZONS = (90, 180)


@dataclass
class _Sends:
    """The simulated send lists, in simulation member indices, and both potential outcomes."""

    wave: np.ndarray
    member: np.ndarray
    control: np.ndarray
    day: np.ndarray  # send day, days since start
    channel: np.ndarray
    respond: np.ndarray  # 0: none, 1: pulls a purchase forward, 2: an extra purchase
    outcomes: dict[str, np.ndarray]  # y0_/y1_ window (any purchase), 90, 180 (purchases)
    days: np.ndarray  # send day of each wave


def _send_days(config: DemoConfig, length: int) -> np.ndarray:
    """Send day of each wake-up wave: spread over the period, leaving 180 days to watch."""
    first = min(120, length // 3)
    last = length - max(_SEND_HORIZONS) - 1
    if last < first:
        last = max(first, length - config.send_window_days - 1)
    return np.round(np.linspace(first, last, config.send_waves)).astype(np.int64)


def _window_counts(owner: np.ndarray, t: np.ndarray, members: np.ndarray, start: np.ndarray,
                   days: int) -> np.ndarray:
    """Purchases of each of ``members`` in [start, start + days) (whole days), from events
    sorted by (owner, t)."""
    key = owner * 1e6 + np.floor(t)
    lo = np.searchsorted(key, members * 1e6 + start, side="left")
    hi = np.searchsorted(key, members * 1e6 + start + days, side="left")
    return hi - lo


def _simulate_sends(rng: np.random.Generator, config: DemoConfig, period: _Period, m: _Members,
                    events: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                    ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], _Sends]:
    """Send lists of the wake-up waves and the purchases the offers cause.

    A listed member responds with probability ``_SEND_RESPONSE[archetype] * decay ** (wave - 1)``
    (if alive through the window). A response either pulls the member's next purchase after
    the window (within 180 days of the send) into the window, or adds an extra purchase in it.
    Only the treatment group's responses happen; the control group's are recorded as truth.
    """
    owner, t, refill = (np.concatenate(parts) for parts in zip(*events, strict=True))
    n, window = config.n_members, config.send_window_days
    days = _send_days(config, period.length)
    sent_before = np.zeros(n, dtype=bool)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("wave", "member", "control", "day", "respond")}
    outcomes: dict[str, list[np.ndarray]] = {}
    alive_to = np.where(np.isnan(m.dropout), np.inf, m.dropout)
    for k, d in enumerate(days):  # over the few waves
        order = np.lexsort((t, owner))
        owner, t, refill = owner[order], t[order], refill[order]
        eligible = (m.t0 < d - 30) & ~sent_before
        if k % 2 == 0:  # randomized: a random sample, a random control group within it
            listed = eligible & (rng.random(n) < config.send_share)
            control = rng.random(n) < config.send_control_share
        else:  # targeted at members lapsing 30-120 days, no control group
            last = np.full(n, -np.inf)
            before = t < d
            np.maximum.at(last, owner[before], t[before])
            lapsing = (d - last >= 30) & (d - last <= 120)
            listed = eligible & (rng.random(n) < np.where(lapsing, 0.6, 0.08) * config.send_share / 0.3)
            control = np.zeros(n, dtype=bool)
        idx = np.flatnonzero(listed)
        sent_before[idx] = True
        ctrl = control[idx]
        prob = _SEND_RESPONSE[m.arch[idx]] * config.send_effect_decay ** k
        respond = np.where(rng.random(len(idx)) < prob,
                           np.where(rng.random(len(idx)) < _SEND_PULL_SHARE[m.arch[idx]], 1, 2), 0)
        start = np.full(len(idx), d)
        y0 = {"window": _window_counts(owner, t, idx, start, window)}
        y0.update({str(h): _window_counts(owner, t, idx, start, h) for h in _SEND_HORIZONS})
        # Pull forward: the first purchase after the window and within the longest horizon.
        key = owner * 1e6 + np.floor(t)
        nxt = np.searchsorted(key, idx * 1e6 + d + window, side="left")
        has_next = (nxt < len(t)) & (owner[np.minimum(nxt, len(t) - 1)] == idx)
        has_next &= t[np.minimum(nxt, len(t) - 1)] < d + max(_SEND_HORIZONS)
        pull = (respond == 1) & has_next
        extra = (respond == 2) & (alive_to[idx] >= d + window) & (d + window <= period.horizon)
        respond = np.where(pull, 1, np.where(extra, 2, 0))
        # Potential outcome under treatment, for every listed member.
        y1 = {key_: v.copy() for key_, v in y0.items()}
        y1["window"] += pull | extra
        for h in _SEND_HORIZONS:
            moved_in = pull & (np.floor(t[np.minimum(nxt, len(t) - 1)]) >= d + h)
            y1[str(h)] += moved_in | extra
        for name, v in y0.items():
            outcomes.setdefault(f"y0_{name}", []).append(v)
            outcomes.setdefault(f"y1_{name}", []).append(y1[name])
        # Only the treatment group's responses happen.
        act = ~ctrl
        pos = nxt[pull & act]
        prev_t = np.where(pos > 0, t[np.maximum(pos - 1, 0)], -np.inf)
        prev_t = np.where(owner[np.maximum(pos - 1, 0)] == owner[pos], prev_t, -np.inf)
        low = np.maximum(d, prev_t)
        new_t = low + rng.random(len(pos)) * (d + window - low)
        was_drop = t[pos] == m.dropout[owner[pos]]
        m.dropout[owner[pos][was_drop]] = new_t[was_drop]  # the dropout purchase moved earlier
        t[pos] = new_t
        add = idx[extra & act]
        owner = np.concatenate([owner, add])
        t = np.concatenate([t, d + rng.random(len(add)) * window])
        refill = np.concatenate([refill, np.zeros(len(add), dtype=bool)])
        for name, v in (("wave", np.full(len(idx), k)), ("member", idx), ("control", ctrl),
                        ("day", start), ("respond", respond)):
            cols[name].append(v)
    # The first purchases stay the first n events (the order placement relies on it).
    first = np.zeros(len(owner), dtype=bool)
    first_pos = np.flatnonzero(t == m.t0[owner])
    first[first_pos[np.unique(owner[first_pos], return_index=True)[1]]] = True
    keep = np.concatenate([np.flatnonzero(first)[np.argsort(owner[first])], np.flatnonzero(~first)])
    sends = _Sends(**{k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in cols.items()},
                   channel=np.zeros(0, dtype=np.int64),
                   outcomes={k: np.concatenate(v) for k, v in outcomes.items()}, days=days)
    sends.channel = _choice_by_group(rng, np.zeros(len(sends.member), dtype=np.int64), _SEND_CHANNEL_PROBS)
    return [(owner[keep], t[keep], refill[keep])], sends


def _redeem_send_coupons(rng: np.random.Generator, config: DemoConfig, sends: _Sends, o: dict[str, Any],
                         subsidy: dict[str, Any], first_campaign: int, first_coupon: int) -> None:
    """The wake-up coupon on a treated member's first order in the window (and, by a leak,
    on a few control members' orders): campaign, coupon and a 15-25% discount."""
    wave_of = np.full((config.n_members,), -1)
    wave_of[sends.member] = sends.wave
    is_control = np.zeros(config.n_members, dtype=bool)
    is_control[sends.member[sends.control]] = True
    w = np.where(o["is_member"], wave_of[o["mo"]], -1)
    day0 = sends.days[np.maximum(w, 0)]
    in_window = (w >= 0) & (o["day"] >= day0) & (o["day"] < day0 + config.send_window_days)
    pos = np.flatnonzero(in_window)
    first = pos[np.unique(o["mo"][pos], return_index=True)[1]]  # orders are sorted by time
    leak = rng.random(len(first)) < config.send_control_leak
    first = first[~is_control[o["mo"][first]] | leak]
    first = first[subsidy["campaign"][first] < 0]  # a new-member coupon takes precedence
    subsidy["campaign"][first] = first_campaign + w[first]
    subsidy["coupon"][first] = first_coupon + w[first]
    subsidy["rate"][first] = np.minimum(subsidy["rate"][first] + rng.uniform(0.15, 0.25, len(first)), 0.7)


def _send_tables(config: DemoConfig, start: pd.Timestamp, sends: _Sends, m: _Members, rank: np.ndarray,
                 id_width: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The campaigns of the waves, the ``campaign_members`` table and its per-member truth."""
    codes = [f"CP-WAKE{k + 1:02d}" for k in range(len(sends.days))]
    first = start + pd.to_timedelta(sends.days, unit="D")
    campaigns = pd.DataFrame({
        "campaign_id": pd.array(codes, dtype="string"),
        "name": pd.array([f"第{k + 1}波沉睡会员唤醒券" for k in range(len(codes))], dtype="string"),
        "starts_on": first.astype("datetime64[ns]"),
        "ends_on": (first + pd.Timedelta(days=config.send_window_days - 1)).astype("datetime64[ns]"),
        "kind": pd.array(["wake_up"] * len(codes), dtype="string"),
    })
    order = np.lexsort((rank[sends.member], sends.wave))
    member_ids = _numbered("M", rank[sends.member[order]] + 1, id_width)
    campaign = _strings(codes, sends.wave[order])
    # Sent at 09:00-10:59 on the send day (the window counts whole days from it).
    minutes = (sends.member[order] * 7919) % 120 + 9 * 60
    sent_at = (start + pd.to_timedelta(sends.day[order], unit="D")
               + pd.to_timedelta(minutes, unit="m")).astype("datetime64[ns]")
    table = pd.DataFrame({
        "campaign_id": campaign,
        "member_id": member_ids,
        "group": _strings(["treatment", "control"], sends.control[order].astype(np.int64)),
        "sent_at": sent_at,
        "channel": _strings(_SEND_CHANNELS, sends.channel[order]),
    })
    truth = table[["campaign_id", "member_id", "group"]].assign(
        wave=sends.wave[order] + 1,
        randomized=sends.wave[order] % 2 == 0,
        archetype=_strings(ARCHETYPES, m.arch[sends.member[order]]),
        response=_strings(["none", "pull_forward", "extra_purchase"], sends.respond[order]),
        **{k: v[order] for k, v in sends.outcomes.items()},
    )
    return campaigns, table, truth


def _send_truth_params(config: DemoConfig, truth: pd.DataFrame) -> list[dict[str, Any]]:
    """Per wake-up wave: the true effects on the listed members (ground_truth.json)."""
    out = []
    t = truth.assign(
        effect_window=truth["y1_window"].clip(upper=1) - truth["y0_window"].clip(upper=1),
        **{f"effect_{h}": truth[f"y1_{h}"] - truth[f"y0_{h}"] for h in _SEND_HORIZONS},
    )
    effects = ["effect_window", *(f"effect_{h}" for h in _SEND_HORIZONS)]
    for (wave, campaign), g in t.groupby(["wave", "campaign_id"], sort=True):
        treated = g[g["group"] == "treatment"]
        out.append({
            "wave": int(wave),
            "campaign_id": str(campaign),
            "randomized": bool(g["randomized"].iloc[0]),
            "window_days": config.send_window_days,
            "treatment": int(len(treated)),
            "control": int((g["group"] == "control").sum()),
            "response_prob_by_archetype": {
                a: float(_SEND_RESPONSE[i] * config.send_effect_decay ** (wave - 1))
                for i, a in enumerate(ARCHETYPES)},
            # Sample average effects: over every listed member (what a random control group
            # estimates) and over the treated (what an observational comparison estimates).
            "repurchase_effect_listed": float(g["effect_window"].mean()),
            "repurchase_effect_treated": float(treated["effect_window"].mean()),
            **{f"purchases_effect_{h}d_listed": float(g[f"effect_{h}"].mean()) for h in _SEND_HORIZONS},
            **{f"purchases_effect_{h}d_treated": float(treated[f"effect_{h}"].mean()) for h in _SEND_HORIZONS},
            "by_archetype": {
                str(a): {e: float(v) for e, v in ga[effects].mean().items()}
                for a, ga in g.groupby("archetype", sort=True)},
        })
    return out


def load_send_truth(folder) -> pd.DataFrame:
    """The per-member potential outcomes of the demo's send lists (tests and benchmarks only)."""
    path = Path(folder) / SEND_TRUTH_FILE
    if not path.exists():
        raise DataContractError(f"{path} does not exist: the folder holds no demo send-list truth")
    truth = pd.read_csv(path, dtype={"campaign_id": "string", "member_id": "string", "group": "string",
                                     "archetype": "string", "response": "string"}, encoding="utf-8")
    truth["randomized"] = truth["randomized"].astype(str) == "True"
    return truth


# -- files --------------------------------------------------------------------------------
PART_MEMBERS = 250_000
"""Members generated at a time by :func:`write_demo_chain` (about 1.5 GB of memory each)."""


def write_demo_chain(out, config: DemoConfig | None = None, *, file_format: str = "csv",
                     overwrite: bool = False, part_members: int = PART_MEMBERS) -> dict[str, Path]:
    """Generate the demo chain and write it into folder ``out``.

    A chain of more than ``part_members`` members is generated and written in parts, so memory
    stays that of one part whatever the chain's size: part ``k`` is the chain of ``config``
    with ``part_members`` members (the last part the rest) and its own seed drawn from
    ``(config.seed, k)``, its members and orders numbered after those of the parts before it,
    and the store sizes of part 0. Every part follows the same distributions; the members are
    distinct. A chain of at most ``part_members`` members is :func:`generate_demo_chain`'s
    exactly. The same ``config`` and ``part_members`` give the same files; another
    ``part_members`` gives another (equally distributed) draw.

    Parameters
    ----------
    out : str or Path
        Folder, created if missing.
    config : DemoConfig, optional
        Defaults to ``DemoConfig()``.
    file_format : {"csv", "parquet"}
        Format of the five contract tables (CSV is UTF-8 with a header).
    overwrite : bool
        Replace existing files; otherwise an existing file raises :class:`DemoOutputError`.
    part_members : int
        Members generated at a time.

    Returns
    -------
    dict
        Path of each written file by table name, plus ``ground_truth_members`` and
        ``ground_truth``.
    """
    if file_format not in ("csv", "parquet"):
        raise DemoConfigError(f"file_format must be 'csv' or 'parquet' (got {file_format!r})")
    if part_members < 1:
        raise DemoConfigError(f"part_members must be at least 1 (got {part_members!r})")
    config = config or DemoConfig()
    config.validate()
    folder = Path(out)
    paths = {name: folder / f"{name}.{file_format}" for name in TABLES}
    paths["ground_truth_members"] = folder / TRUTH_MEMBERS_FILE
    paths["ground_truth"] = folder / TRUTH_PARAMS_FILE
    if not overwrite:
        # A table in the other format would shadow or mix with ours when loading.
        candidates = [folder / f"{name}.{ext}" for name in TABLES for ext in ("csv", "parquet")]
        candidates += [paths["ground_truth_members"], paths["ground_truth"]]
        for path in candidates:
            if path.exists():
                raise DemoOutputError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        other = folder / f"{name}.{'parquet' if file_format == 'csv' else 'csv'}"
        other.unlink(missing_ok=True)  # reached only with overwrite=True (checked above)
    sizes = [part_members] * (config.n_members // part_members)
    sizes += [config.n_members % part_members] if config.n_members % part_members else []
    writer = _PartWriter(paths, file_format)
    part, params, send_truths = _Part(member_width=max(6, len(str(config.n_members)))), None, []
    try:
        for k, size in enumerate(sizes):
            seed = config.seed if k == 0 else int(np.random.SeedSequence([config.seed, k]).generate_state(1)[0])
            chain, weights = _generate(replace(config, n_members=size, seed=seed), part)
            if k == 0:
                part.store_weights = weights
                # Order numbers as wide as the whole chain's (estimated from the first part
                # with room to spare); part 0 is made again only if its own are narrower.
                part.order_width = max(9, len(str(len(chain.orders) * len(sizes) * 2)))
                if part.order_width > max(9, len(str(len(chain.orders)))):
                    chain = _generate(replace(config, n_members=size, seed=seed), part)[0]
            _write_part(writer, chain, k, file_format)
            params = chain.truth_params if params is None else _add_truth_params(params, chain.truth_params)
            if chain.send_truth is not None:
                send_truths.append(chain.send_truth)
            part.members_before += size
            part.orders_before += len(chain.orders)
            del chain
    finally:
        writer.close()
    params["config"] = json.loads(json.dumps(asdict(config)))
    if len(sizes) > 1:
        params["parts"] = {"part_members": part_members, "parts": len(sizes)}
        if send_truths:
            params["send_waves"] = _send_truth_params(config, pd.concat(send_truths, ignore_index=True))
    paths["ground_truth"].write_text(json.dumps(params, ensure_ascii=False, indent=2), encoding="utf-8")
    if send_truths:
        paths["ground_truth_campaign_members"] = folder / SEND_TRUTH_FILE
    else:
        paths.pop("campaign_members")
        (folder / f"campaign_members.{file_format}").unlink(missing_ok=True)
    return paths


class _PartWriter:
    """Appends the parts' tables to their files: Parquet row groups, or CSV rows under one
    header."""

    def __init__(self, paths: dict[str, Path], file_format: str) -> None:
        self.paths, self.file_format = paths, file_format
        self.parquet: dict[str, Any] = {}

    def append(self, name: str, df: pd.DataFrame, first: bool, csv: bool = False) -> None:
        path = self.paths[name]
        if csv or self.file_format == "csv":
            df.to_csv(path, index=False, encoding="utf-8", mode="w" if first else "a", header=first)
            return
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df, preserve_index=False)
        if name not in self.parquet:
            self.parquet[name] = pq.ParquetWriter(path, table.schema)
        writer = self.parquet[name]
        # A column empty in one part is typed null there; the first part's types hold.
        writer.write_table(table.cast(writer.schema))

    def close(self) -> None:
        for writer in self.parquet.values():
            writer.close()


def _write_part(writer: _PartWriter, chain: DemoChain, k: int, file_format: str) -> None:
    """Write part ``k`` of a chain: its rows of every table (the stores and campaigns, the
    same in every part, from part 0 only) and of the ground truth."""
    for name, df in chain.tables().items():
        if k > 0 and name in ("stores", "campaigns"):
            continue
        if name == "orders" and chain.config.utc_timestamps:
            utc = df["ordered_at"].dt.tz_localize(CHAIN_TIME_ZONE).dt.tz_convert("UTC")
            df = df.assign(ordered_at=utc.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
                           if file_format == "csv" else utc)
        writer.append(name, df, k == 0)
    writer.append("ground_truth_members", chain.truth, k == 0, csv=True)
    if chain.send_truth is not None:
        writer.paths.setdefault("ground_truth_campaign_members", writer.paths["ground_truth"].parent / SEND_TRUTH_FILE)
        writer.append("ground_truth_campaign_members", chain.send_truth, k == 0, csv=True)


def _add_truth_params(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """The chain-level truth of two parts together: their counts added."""
    for key in ("orders", "walk_in_orders"):
        total[key] += part[key]
    for name, entry in part["archetypes"].items():
        total["archetypes"][name]["members"] += entry["members"]
    for wave, entry in zip(total["waves"], part["waves"], strict=True):
        for key in ("coupon_hunters_recruited", "loyal_recruited"):
            wave[key] += entry[key]
    return total


def load_ground_truth(folder) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read the ground truth written by :func:`write_demo_chain` (tests and benchmarks only).

    Returns
    -------
    truth : DataFrame
        One row per member, dtypes as in :attr:`DemoChain.truth`.
    params : dict
        The chain-level parameters (:attr:`DemoChain.truth_params`).
    """
    folder = Path(folder)
    members_file, params_file = folder / TRUTH_MEMBERS_FILE, folder / TRUTH_PARAMS_FILE
    for path in (members_file, params_file):
        if not path.exists():
            raise DataContractError(f"{path} does not exist: the folder holds no demo ground truth")
    truth = pd.read_csv(members_file, dtype=str, encoding="utf-8")
    for col in ("member_id", "archetype", "chronic_sku"):
        truth[col] = truth[col].astype("string")
    for col in ("purchase_rate_per_day", "dropout_prob", "refill_interval_days", "spend_last_365d"):
        truth[col] = truth[col].astype(float)
    for col in ("acquisition_wave", "packs_per_refill", "n_orders"):
        truth[col] = pd.to_numeric(truth[col]).astype("Int64")
    truth["n_orders"] = truth["n_orders"].astype(np.int64)
    for col in ("dropped_out_at", "first_purchase_at"):
        truth[col] = pd.to_datetime(truth[col]).astype("datetime64[ns]")
    truth["stored_value_member"] = truth["stored_value_member"] == "True"
    return truth, json.loads(params_file.read_text(encoding="utf-8"))


TRUTH_COHORT: dict[str, str] = {
    "coupon_hunter": "subsidy_driven",
    "loyal_chronic": "loyal",
    "loyal_general": "loyal",
    "occasional_acute": "occasional",
}
"""The subsidy cohort each archetype should get (tests and benchmarks)."""


def cohort_recovery(labels: pd.DataFrame, truth: pd.DataFrame,
                    cohorts: tuple[str, ...] = ("subsidy_driven", "loyal", "occasional")) -> pd.DataFrame:
    """Precision and recall of subsidy-cohort labels against the archetypes (tests, benchmarks).

    Members labelled ``new`` are left out (too early to tell, by design); ``undetermined``
    and every other wrong label count as a miss.

    Returns
    -------
    DataFrame
        One row per cohort: ``cohort, precision, recall, members`` (of the cohort in truth),
        plus ``undetermined_share`` (of the judged members) and ``new_share`` (of all).
    """
    m = labels.merge(truth[["member_id", "archetype"]], on="member_id", how="inner")
    new = m["subsidy_cohort"] == "new"
    judged = m.loc[~new]
    want = judged["archetype"].map(TRUTH_COHORT)
    rows = []
    for cohort in cohorts:
        said, true = judged["subsidy_cohort"] == cohort, want == cohort
        hit = int((said & true).sum())
        rows.append({"cohort": cohort, "precision": hit / max(int(said.sum()), 1),
                     "recall": hit / max(int(true.sum()), 1), "members": int(true.sum())})
    out = pd.DataFrame(rows)
    out["undetermined_share"] = float((judged["subsidy_cohort"] == "undetermined").mean())
    out["new_share"] = float(new.mean())
    return out
