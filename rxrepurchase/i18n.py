"""Report texts in English and Chinese, and number formats for each language.

Every heading, label and sentence a report shows comes from :data:`STRINGS` through :func:`t`,
so a report is entirely in one language (``lang="en"`` or ``"zh"``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from contextlib import contextmanager
from contextvars import ContextVar
from numbers import Real

from rxrepurchase.contract import TIER_LABELS_ZH
from rxrepurchase.errors import UnknownCurrencyError, UnknownLanguageError
from rxrepurchase.renames import renamed_keywords

__all__ = [
    "CURRENCY_SYMBOLS",
    "DEFAULT_CURRENCY",
    "LANGUAGES",
    "STRINGS",
    "UnknownCurrencyError",
    "check_currency",
    "currency",
    "set_currency",
    "format_count",
    "format_money",
    "format_rate",
    "format_text",
    "label",
    "normalize_lang",
    "t",
    "windowed",
]

LANGUAGES: tuple[str, ...] = ("en", "zh")

MISSING = "–"
"""Shown where a figure cannot be computed (no data)."""

# key: (English, Chinese). Placeholders use str.format names.
STRINGS: dict[str, tuple[str, str]] = {
    # index page
    "index_title": ("Member repurchase reports", "会员复购分析报告"),
    "index_meta": (
        "As of {as_of} · data: {data} · {n} stores · {failed} failed",
        "数据截至 {as_of} · 数据目录：{data} · 门店 {n} 家 · 失败 {failed} 个",
    ),
    "store": ("Store", "门店"),
    "store_name": ("Name", "门店名称"),
    "city": ("City", "城市"),
    "report": ("Report", "报告"),
    "open_report": ("open report", "查看报告"),
    "failed": ("failed", "失败"),
    "partial_notebook": ("partial notebook", "未完成的笔记本"),
    "chain_overview": ("Chain overview: all stores compared", "连锁总览：门店对比"),
    # the printed (PDF) index: files named instead of linked
    "report_file": ("Report file", "报告文件"),
    "file_ref": ("{what} — {file}", "{what}——{file}"),
    "no_document": ("no PDF (see the run summary)", "未生成 PDF（见运行摘要）"),
    "index_print_note": (
        "Each store's report is emailed to that store's manager only; the chain overview comes "
        "with this index. Every file named here is kept in the run folder {folder} on the "
        "reporting server.",
        "各门店报告仅发送给该门店店长；连锁总览随本索引一并发送。文中列出的文件均保存在报告服务器的"
        "运行目录 {folder} 中。",
    ),
    # headline figures
    "user_repurchase_rate": ("User repurchase rate", "用户复购率"),
    "order_repurchase_rate": ("Order repurchase rate", "订单复购率"),
    # every rate names its window: the page shows rates over three different windows
    "window_last_days": ("{what}, last {days} days", "{what}（近 {days} 天）"),
    "window_month": ("{what}, per calendar month", "{what}（按自然月）"),
    "active_members": ("Active members", "活跃会员"),
    "orders": ("Orders (incl. walk-in)", "订单数（含非会员）"),
    "revenue": ("Revenue", "销售额"),
    "subsidy": ("Subsidy spent", "补贴支出"),
    "chain_median": ("chain median {value}", "连锁中位数 {value}"),
    "chain_median_of": ("{what}, chain median", "{what}（连锁中位数）"),
    "period": ("{start} to {end}", "{start} 至 {end}"),
    "member_purchases": ("Member purchases", "会员购买次数"),
    "trend_title": ("Repurchase rates by calendar month (each month's own purchases)",
                    "按自然月的复购率（各月内的购买）"),
    # store report
    "store_report_title": ("{name} ({store_id}): member repurchase report",
                           "{name}（{store_id}）会员复购分析报告"),
    "report_meta": ("City: {city} · data as of {as_of}", "城市：{city} · 数据截至 {as_of}"),
    "section_this_week": ("This week", "本周行动"),
    # "This week" (rxrepurchase.this_week): whom, how many, which channel, which offer
    "tw_intro": (
        "What to do this week, from the data as of {as_of}. The sections below explain each "
        "figure. Members who buy almost only on coupons are never offered a coupon here.",
        "根据截至 {as_of} 的数据，本周要做的事。下文各节解释每个数字。只在有券时购买的会员，"
        "这里一律不发优惠券。",
    ),
    "tw_nothing": ("No action is due this week.", "本周没有需要执行的行动。"),
    "tw_channels": (
        "Channel: WeChat {wechat} · SMS {sms} · in store {in_store}",
        "渠道：微信 {wechat} · 短信 {sms} · 到店 {in_store}",
    ),
    "tw_reminder_coupon": ("Refill reminder with a coupon", "续药提醒 + 优惠券"),
    "tw_reminder_coupon_text": (
        "Chronic patients to remind about a refill: {n} ({soon} due within {soon_days} days or "
        "overdue; {items} member × product refills). Contact the earliest due first.",
        "{n} 位按周期购药的慢病会员需要续药提醒（其中 {soon} 位在 {soon_days} 天内到期或已逾期；"
        "共 {items} 个会员 × 商品续方）。按到期日先后联系。",
    ),
    "tw_reminder_only": ("Refill reminder, no coupon", "续药提醒（不发券）"),
    "tw_reminder_only_text": (
        "To remind about a refill but buying almost only on coupons: {n} ({soon} due within "
        "{soon_days} days or overdue). Remind them, without a coupon.",
        "{n} 位需要续药提醒的会员几乎只在有券时购买（其中 {soon} 位在 {soon_days} 天内到期或已逾期）："
        "只提醒，不发券。",
    ),
    "tw_win_back_coupon": ("Win back lapsing valuable members", "挽回正在流失的高价值会员"),
    "tw_win_back_coupon_text": (
        "Members among the most valuable a month ago, now buying less and not seen for "
        "{days}+ days: {n}, with {value} of expected value to keep. Call the largest (value "
        "at risk × chance still active) first; a moderate coupon.",
        "{n} 位一个月前属于最有价值的会员购买减少，且已 {days} 天以上未购买；可挽回的预期价值 "
        "{value}。按（风险价值 × 仍活跃概率）从高到低联系；配合适度优惠券。",
    ),
    "tw_win_back_no_coupon": ("Win back, no deep coupon", "挽回（不发大额券）"),
    "tw_win_back_no_coupon_text": (
        "Lapsing valuable members who buy almost only on coupons: {n} ({value} of expected "
        "value). A care message, no deep coupon.",
        "另有 {n} 位正在流失的高价值会员几乎只在有券时购买（预期价值 {value}）：发关怀消息，"
        "不发大额券。",
    ),
    "tw_member_care": ("Top members whose visits slowed", "到店变少的头部会员"),
    "tw_member_care_text": (
        "Of the top 20% of members by what they paid at this store ({top}), those not back "
        "for more than {factor} times their usual interval between purchases: {n}. Call the "
        "largest spenders first: member care (a pharmacist's call, priority service, a birthday "
        "greeting), not a discount.",
        "按本店实付金额排名前 20% 的会员（{top} 位）中，有 {n} 位距上次购买已超过其平常购买间隔的 "
        "{factor} 倍。按消费额从高到低联系：做会员关怀（药师回访、优先服务、生日问候），而不是打折。",
    ),
    "tw_evening_offer": ("Evening offer", "晚间优惠"),
    "tw_evening_offer_text": (
        "{share} of member orders in the last {days} days came between {hours} h, {ratio} times "
        "an average two hours; members who bought then: {n}. An in-store evening offer (e.g. "
        "8 pm deals), announced on WeChat.",
        "近 {days} 天 {share} 的会员订单集中在 {hours} 点，是平均两小时的 {ratio} 倍；"
        "{n} 位会员在此时段购买。可推出到店晚间优惠（如“超值晚8点”），并通过微信公告。",
    ),
    "section_headline": ("1. Headline", "一、核心指标"),
    "section_cohorts": ("2. Subsidy-driven vs loyal members", "二、补贴驱动会员与忠诚会员对比"),
    "section_value": ("3. Member value", "三、会员价值"),
    "section_segments": ("4. Segments", "四、会员分层"),
    "section_refills": ("5. Refills", "五、慢病续方"),
    "section_actions": ("6. Actions", "六、行动清单"),
    "section_quality": ("7. Data quality", "七、数据质量"),
    # chain overview
    "chain_meta": ("{n} stores · period {start} to {end} ({days} days) · data as of {as_of}",
                   "门店 {n} 家 · 统计期 {start} 至 {end}（{days} 天）· 数据截至 {as_of}"),
    "section_chain_totals": ("The chain this period", "全连锁本期表现"),
    "chain_totals_intro": (
        "All stores together, {start} to {end} ({days} days), against the {days} days before "
        "({pstart} to {pend}) and the same dates a year before.",
        "全部门店合计，{start} 至 {end}（{days} 天），对比此前 {days} 天（{pstart} 至 {pend}）"
        "及去年同期。",
    ),
    "chain_no_year_before": (
        "The data does not reach back to {start}: no comparison with a year before.",
        "数据未覆盖到 {start}，无法与去年同期比较。",
    ),
    "chain_figure": ("Figure", "指标"),
    "period_this": ("This period", "本期"),
    "period_previous": ("Previous period", "上期"),
    "change_previous": ("Change", "环比"),
    "period_year_before": ("A year before", "去年同期"),
    "change_year_before": ("Change on a year", "同比"),
    "points": ("{value} pts", "{value} 个百分点"),
    "chain_trend_title": ("Chain repurchase rates by calendar month (each member once over all stores)",
                          "全连锁各自然月复购率（全部门店，每位会员计一次）"),
    "population_chain": ("{what}, each member once over all stores",
                         "{what}，全部门店，每位会员计一次"),
    "population_store": ("{what}, purchases at the store", "{what}，仅计本店购买"),
    "chain_vs_stores_none": (
        "No store has enough active members in the period to compare its rate with the chain's.",
        "本期没有活跃会员足够多的门店，无法将门店复购率与全连锁比较。",
    ),
    "chain_vs_stores": (
        "Why the chain's rate differs from the stores': the chain's user repurchase rate ({chain}) "
        "counts each of its {members} active members once, whichever stores they bought at; a "
        "store's ({low} to {high} across the {n} compared stores) counts the members who bought "
        "there, and only their purchases there. {multi} members bought at two or more stores, "
        "so counted store by store the chain has {pairs} store members, of whom {pooled} repeat "
        "at that store. {once} times a member bought once at a store, counted there as a "
        "one-time buyer, while a repeat buyer for the chain; {cross} members repeat only across "
        "stores, never twice at one.",
        "为什么全连锁复购率与各门店不同：全连锁用户复购率（{chain}）把 {members} 名活跃会员每人只计一次，"
        "不论在哪些门店购买；门店复购率（参与比较的 {n} 家门店为 {low} 至 {high}）只计在该店购买的会员"
        "及其在该店的购买。{multi} 名会员在两家及以上门店购买，因此逐店计算共有 {pairs} 个门店会员，"
        "其中 {pooled} 在该店复购。有 {once} 次会员在某店只买过一次，在该店算一次性购买，"
        "在连锁层面却是复购会员；{cross} 名会员只是跨店复购，在任何一家门店都未购买两次。",
    ),
    "section_attention": ("Stores needing attention first", "优先关注的门店"),
    "attention_intro": (
        "Among stores with at least {n} active members in this and in the previous period: "
        "the largest falls of the user repurchase rate, then the highest subsidy per retained "
        "member above these stores' median (the lowest subsidy efficiency).",
        "仅看本期和上期活跃会员均不少于 {n} 人的门店：先列用户复购率降幅最大的门店，"
        "再列每留住一位会员补贴高于这些门店中位数、且最高（补贴效率最低）的门店。",
    ),
    "attention_none": ("No store of that size fell or stands out.", "没有符合条件且需要关注的门店。"),
    "attention_reason": ("Why", "原因"),
    "reason_repurchase_fall": ("Repurchase fell", "复购率下降"),
    "reason_subsidy_efficiency": ("Costly subsidy", "补贴效率低"),
    "previous_user_repurchase_rate": ("previous period", "上期"),
    "repurchase_change": ("Change (points)", "变化（百分点）"),
    "section_lists": ("List sizes per store", "各门店名单规模"),
    "lists_intro": (
        "The lists each store's page, files and email hold this run, in members (refill "
        "reminders also in member × product rows): refill reminders (as many as fall due within "
        "{within} days or are overdue, the likeliest to be bought chosen), valuable members to "
        "wake up, lapsed refills, and the top 20% of members by what they paid.",
        "本次各门店报告、文件及邮件中的名单规模（会员人数；续方提醒另列会员 × 商品行数）："
        "续方提醒（数量与 {within} 天内到期或已逾期的续方相同，选最可能购买的）、待唤醒的高价值会员、中断的续方，以及按实付金额排名前 20% 的会员。",
    ),
    "lists_not_run": (
        "List sizes come from the stores' reports of a run (rxrepurchase report); this overview "
        "was run on its own.",
        "名单规模来自一次完整运行（rxrepurchase report）中的各门店报告；本总览为单独运行，无此数据。",
    ),
    "refill_reminder_members": ("Refill reminders (members)", "续方提醒（会员）"),
    "refill_reminder_rows": ("Refill reminders (member × product)", "续方提醒（会员 × 商品）"),
    "wake_up_members": ("Wake-up (members)", "唤醒（会员）"),
    "lapsed_refill_members": ("Lapsed refills (members)", "中断续方（会员）"),
    "top_members": ("Top 20% (members)", "前 20%（会员）"),
    "this_week_member_care_members": ("Top 20% whose visits slowed", "前 20% 中到店变少的会员"),
    "nothing_none_sent": (
        "Every store's report was produced; this run sends no email.",
        "所有门店报告均已生成；本次运行不发送邮件。",
    ),
    "nothing_none": (
        "Every store's manager receives the store's report and lists.",
        "所有门店店长都会收到本店报告和名单。",
    ),
    "nothing_stores": ("Managers who receive nothing: {stores}.", "收不到任何内容的店长：{stores}。"),
    "nothing_store": ("{store} ({reason})", "{store}（{reason}）"),
    "nothing_report_failed": ("report failed: {detail}", "报告生成失败：{detail}"),
    "nothing_no_manager_address": ("no manager address: {detail}", "没有店长邮箱：{detail}"),
    "nothing_pdf_failed": ("PDF failed: {detail}", "PDF 生成失败：{detail}"),
    "nothing_email_failed": ("email failed: {detail}", "邮件发送失败：{detail}"),
    # a store manager's email (rxrepurchase.delivery.store_figures_text)
    "mail_period": ("Last {days} days ({start} to {end}):", "近 {days} 天（{start} 至 {end}）："),
    "mail_rate": ("- {what}: {value} (chain median {median})", "- {what}：{value}（连锁中位数 {median}）"),
    "mail_members_money": ("- Active members: {members} · revenue {revenue} · subsidy {subsidy}",
                           "- 活跃会员 {members} 人 · 销售额 {revenue} · 补贴 {subsidy}"),
    "mail_lists": ("This week's lists (in the attached workbook):", "本周名单（见附件工作簿）："),
    "mail_list_refill": ("- Refill reminders: {members} members ({rows} member × product)",
                         "- 续方提醒：{members} 名会员（会员 × 商品 {rows} 行）"),
    "mail_list_wake_up": ("- Wake-up: {members} valuable members", "- 唤醒：{members} 名高价值会员"),
    "mail_list_lapsed": ("- Lapsed refills: {members} members ({rows} member × product)",
                         "- 中断续方：{members} 名会员（会员 × 商品 {rows} 行）"),
    "mail_list_top": ("- Top members whose visits slowed (member care, not a discount): "
                      "{members} of the top 20% ({top})",
                      "- 到店变少的头部会员（会员关怀，不打折）：前 20% 会员（{top} 名）中的 {members} 名"),
    # head office's email
    "ho_all": ("All {n} store reports were produced and delivered to their managers.",
               "全部 {n} 家门店报告均已生成并发送给店长。"),
    "ho_some": ("{k} of {n} store reports were delivered to their managers.",
                "{n} 家门店报告中有 {k} 家已发送给店长。"),
    "ho_lists": ("List sizes per store (members):", "各门店名单规模（会员人数）："),
    "ho_list_line": (
        "- {store}: refill reminders {refill_reminder_members} ({refill_reminder_rows} member × "
        "product) · wake-up {wake_up_members} · lapsed refills {lapsed_refill_members} · "
        "top 20% {top_members} ({this_week_member_care_members} slowed)",
        "- {store}：续方提醒 {refill_reminder_members}（会员 × 商品 {refill_reminder_rows}）· "
        "唤醒 {wake_up_members} · 中断续方 {lapsed_refill_members} · 前 20% {top_members}"
        "（到店变少 {this_week_member_care_members}）",
    ),
    "ho_details": ("Details: run.json and delivery.json in {folder}.",
                   "详情见 {folder} 中的 run.json 与 delivery.json。"),
    # targets (rxrepurchase.targets)
    "section_targets": ("Targets", "目标"),
    "targets_intro": (
        "Targets set in the run's config; each figure over the last {days} days ({start} to "
        "{end}) against its target, which it should reach or pass.",
        "运行配置中设定的目标：各指标按近 {days} 天（{start} 至 {end}）计算，应达到或超过目标。",
    ),
    "target_who": ("For", "对象"),
    "target_chain": ("Chain (all stores together)", "全连锁（全部门店合计）"),
    "target_value": ("Target", "目标"),
    "target_actual": ("Now", "当前"),
    "target_gap": ("Gap", "差距"),
    "target_progress": ("Progress", "完成度"),
    "target_met": ("reached", "已达成"),
    "target_to_go": ("{gap} to go", "还差 {gap}"),
    "section_store_ranking": ("Stores ranked by user repurchase rate", "门店用户复购率排名"),
    "ranking_intro": (
        "{start} to {end}. Ranked: stores with at least {n} active members; the range is the 95% "
        "(Wilson) interval of the user repurchase rate. The chain median and the outliers use "
        "these stores only.",
        "{start} 至 {end}。参与排名：活跃会员不少于 {n} 人的门店；区间为用户复购率的 95%（Wilson）置信区间。"
        "连锁中位数与异常门店也只按这些门店计算。",
    ),
    "unranked_stores": ("{n} stores with fewer active members, not ranked (too few to compare):",
                        "活跃会员太少、不参与排名的门店 {n} 家："),
    "user_repurchase_low": ("95% interval, low", "95% 区间下限"),
    "user_repurchase_high": ("95% interval, high", "95% 区间上限"),
    "partial_month": ("partial: {days} d", "未完：{days} 天"),
    "bar_n": ("n={n}", "{n}人"),
    "store_rates_title": ("Repurchase rates by store", "各门店复购率"),
    "rank": ("Rank", "排名"),
    "outliers": ("Outliers", "异常项"),
    "loyal_share": ("Loyal members", "忠诚会员占比"),
    "subsidy_driven_share": ("Subsidy-driven members", "补贴驱动会员占比"),
    "section_store_value": ("Cohort mix, subsidy efficiency and member value",
                            "会员结构、补贴效率与会员价值"),
    "subsidy_efficiency_title": ("Subsidy cost per retained member vs subsidy-driven share",
                                 "每留存会员补贴成本与补贴驱动会员占比"),
    "chain_value_note": (
        "Shares are of the members who bought at the store. Subsidy per retained member is all "
        "subsidy on members' orders divided by the members who bought at least twice. CLV: "
        "expected gross profit of a member over the next 12 months (BG/NBD + Gamma-Gamma "
        "fitted per store, gross margin {margin}). Outliers lie beyond 1.5 interquartile "
        "ranges from the middle half of the stores.",
        "占比以在该店购买的会员为分母。每留存会员补贴成本 = 会员订单补贴合计 / 购买至少两次的会员数。"
        "CLV：会员未来 12 个月的预期毛利（每店分别拟合 BG/NBD 与 Gamma-Gamma，毛利率 {margin}）。"
        "异常项：超出中间一半门店 1.5 倍四分位距的门店。",
    ),
    "not_modelled_stores": ("Could not be modelled: {stores}.", "无法建模的门店：{stores}。"),
    "outlier_high": ("well above the other stores", "显著高于其他门店"),
    "outlier_low": ("well below the other stores", "显著低于其他门店"),
    # section 2: cohorts
    "cohort_loyal": ("Loyal", "忠诚会员"),
    "cohort_mixed": ("Mixed", "混合型"),
    "cohort_occasional": ("Occasional", "偶发购买"),
    "cohort_subsidy_driven": ("Subsidy-driven", "补贴驱动"),
    "cohort_new": ("New", "新会员"),
    "cohort_undetermined": ("Undetermined", "待定"),
    "store_membership": (
        "Members of this store: everyone who bought here at least once. Their cohort comes from "
        "their whole history in the chain; every figure on this page counts their purchases "
        "here only (so members who also shop at other stores repurchase less here).",
        "本店会员：在本店至少购买过一次的会员。会员类型按其全连锁购买记录判定；本页所有数字只计其在本店的购买"
        "（同时在其他门店购买的会员，在本店的复购率会更低）。",
    ),
    "calibration_note": (
        "How subsidies were judged on this chain: the routine member discount is {routine} of "
        "list price; a purchase counts as subsidised from {excess} beyond it. Signals: "
        "subsidised share at least {share} (of {share_purchases} or more purchases); discount "
        "beyond routine at least {depth}; {campaign}; "
        "last purchase subsidised and none for {days} days. Subsidy-driven: at least {needed} "
        "signals. {undetermined} members ({undetermined_share}) are undetermined: too close to "
        "call.",
        "本连锁的补贴判定：日常会员折扣为原价的 {routine}；比日常折扣多优惠 {excess} 及以上的购买算作补贴购买。"
        "信号：补贴购买占比不低于 {share}（购买 {share_purchases} 次及以上）；超出日常折扣的优惠不低于 {depth}；"
        "{campaign}；最后一次为补贴购买且"
        " {days} 天未再购买。至少 {needed} 个信号为补贴驱动。{undetermined} 名会员（{undetermined_share}）"
        "证据不足，列为待定。",
    ),
    "calibration_campaign_on": ("campaigns run on {cover} of days, bought in them at least {share}",
                                "活动覆盖 {cover} 的天数，活动期内购买占比不低于 {share}"),
    "calibration_campaign_off": ("campaigns run on {cover} of days: the campaign signal is off",
                                 "活动覆盖 {cover} 的天数：活动期信号不使用"),
    "post_subsidy_note": (
        "Counted: members with a subsidised purchase on or before {cutoff} ({days} days before "
        "the analysis date). Both bars are the same members: bought again within {days} days "
        "of their first purchase, and within {days} days of their last subsidised purchase "
        "up to {cutoff}.",
        "统计对象：在 {cutoff}（分析日前 {days} 天）及之前有过补贴购买的会员。两组柱子是同一批会员："
        "首购后 {days} 天内复购，以及截至 {cutoff} 的最后一次补贴购买后 {days} 天内复购。",
    ),
    "cohort_no_purchase": ("No purchase", "未购买"),
    "cohort_count": ("{label} {n} ({share})", "{label} {n} 人（{share}）"),
    "cohort_summary": (
        "{total} members bought at this store: {parts}. Members are classified on their whole "
        "history in the chain: subsidy-driven members mostly buy with coupons or in promotions "
        "and stop when the subsidy stops; loyal members come back regularly at (near) full price; "
        "new members bought for the first time less than a month ago (too early to tell).",
        "共有 {total} 名会员在本店购买：{parts}。会员按其在全连锁的完整购买记录分类："
        "补贴驱动会员主要在有券或促销时购买，补贴一停就不再回来；忠诚会员以（接近）原价定期回购；"
        "新会员首购不足一个月，尚待观察。",
    ),
    "cmp_members": ("Members who bought here", "本店购买会员数"),
    "cmp_member_share": ("Share of members", "会员占比"),
    "cmp_user_repurchase_rate": ("User repurchase rate, whole history", "用户复购率（全部历史）"),
    "cmp_user_repurchase_interval": ("User repurchase rate, whole history, 95% interval",
                                     "用户复购率（全部历史）95% 区间"),
    "cmp_order_repurchase_rate": ("Order repurchase rate, whole history", "订单复购率（全部历史）"),
    "cmp_repurchase_within_days": ("Bought again within {days} days of the first purchase",
                                   "首购后 {days} 天内复购"),
    "cmp_repurchase_after_last_subsidy": ("Bought again within {days} days after the last subsidy",
                                          "最后一次补贴后 {days} 天内复购"),
    "cmp_spend_per_member": ("Spend per member (list price)", "人均消费（原价）"),
    "cmp_subsidy_per_member": ("Subsidy per member", "人均补贴"),
    "cmp_revenue_net_of_subsidy_per_member": ("Revenue net of subsidy per member",
                                              "人均实收（扣除补贴）"),
    "cmp_subsidy_rate": ("Subsidy as share of spend", "补贴占消费比例"),
    "cmp_subsidy_per_retained_member": ("Subsidy per retained member", "每留存会员补贴成本"),
    "months_since_first": ("Months since first purchase", "首购后月数"),
    "retention_title": ("Share buying again, by month after the first purchase",
                        "首购后各月仍在购买的会员比例"),
    "spend_title": ("Paid per member at this store", "会员在本店的累计实付"),
    "after_first": ("within {days} days after the first purchase", "首购后 {days} 天内复购"),
    "after_last_subsidy": ("within {days} days after the last subsidised purchase",
                           "最后一次补贴购买后 {days} 天内复购"),
    "post_subsidy_title": ("Repurchase once the subsidy stops", "补贴停止后的复购"),
    "participants": ("Participants", "参与会员数"),
    "new_members": ("New members", "新会员数"),
    "wave": ("Promotion wave", "促销波次"),
    "name": ("Campaign", "活动"),
    "starts_on": ("Start", "开始日期"),
    "repurchase_rate": ("Repurchase rate after the wave", "活动后复购率"),
    "full_price_repurchase_rate": ("Full-price repurchase after the wave", "活动后原价复购率"),
    "subsidy_per_retained_member": ("Subsidy per retained member", "每留存会员补贴成本"),
    "wave_repurchase_rate": ("bought again within {days} days", "{days} 天内复购"),
    "wave_full_price_repurchase_rate": ("bought again at full price within {days} days",
                                        "{days} 天内原价复购"),
    "waves_title": ("Response to successive promotion waves", "历次促销活动的效果"),
    "section_cohorts_waves": ("Promotion waves", "促销波次"),
    # did the subsidy pay? (rxrepurchase.uplift)
    "section_uplift": ("Did the subsidy pay?", "补贴值不值？"),
    "uplift_intro": (
        "What each campaign caused: members of its send list who bought again within {days} "
        "days, against members held out of it (randomized) or, without a holdout group, "
        "against non-recipients who had bought as recently, as often and as much "
        "(observational). Intervals are 95%. Money is revenue, not profit.",
        "每次活动带来的真实增量：发送名单中 {days} 天内再次购买的会员，与被随机留出的对照组比较"
        "（随机对照）；没有对照组时，与购买时间、频次和金额相近、未收到活动的会员比较（观察性估计）。"
        "区间为 95% 置信区间。金额为销售额而非利润。",
    ),
    "uplift_sentence": (
        "Wave {wave} ({name}, {method}) cost {cost} and brought {n} ({low} to {high}) members "
        "back who would not otherwise have come back; {per} per extra member, against a "
        "12-month value of {value} per member.",
        "第{wave}波（{name}，{method}）花费 {cost}，多带回 {n}（{low} 至 {high}）位本不会回来的"
        "会员；每多带回一位会员花费 {per}，而一位会员 12 个月的价值为 {value}。",
    ),
    "uplift_sentence_none": (
        "Wave {wave} ({name}, {method}) cost {cost} and brought back no measurable extra "
        "members ({low} to {high}): the coupons mostly paid members who would have come anyway.",
        "第{wave}波（{name}，{method}）花费 {cost}，未带回可测出的额外会员（{low} 至 {high}）："
        "补贴主要给了本来就会回来的会员。",
    ),
    "uplift_not_measured": (
        "Wave {wave} ({name}, {method}) cost {cost}; its effect cannot be measured yet (the "
        "window has not ended, or too few members were sent or could be compared).",
        "第{wave}波（{name}，{method}）花费 {cost}；尚无法测算其效果（观察期未结束，或收到活动或可比的会员太少）。",
    ),
    "uplift_net": (
        "Over 180 days each sent member made {net} extra purchases ({low} to {high}), against "
        "{window} in the first {days} days.",
        "180 天内每位收到活动的会员多买 {net} 次（{low} 至 {high}），前 {days} 天为 {window} 次。",
    ),
    "uplift_pulled_forward": (
        "Part of the lift was bought earlier, not extra (pulled forward).",
        "部分增量只是提前购买，并非新增（透支了后续购买）。",
    ),
    "estimate_interval": ("{value} ({low} to {high})", "{value}（{low} 至 {high}）"),
    "method_randomized": ("randomized", "随机对照"),
    "method_observational": ("observational", "观察性估计"),
    "uplift_missing": (
        "The export has no send lists, so what the campaigns caused cannot be measured. Export "
        "campaign_members.csv: for each WeChat / SMS / app campaign, one row per member with "
        "campaign_id, member_id, group (treatment, or control for a random 10-20% held out and "
        "sent nothing), sent_at and channel. See docs/uplift.md.",
        "数据中没有活动发送名单，无法测算活动带来的真实增量。请导出 campaign_members.csv："
        "每次微信 / 短信 / App 活动，每位会员一行，包含 campaign_id、member_id、group"
        "（treatment；随机留出 10-20% 不发券的会员为 control）、sent_at 和 channel。详见 docs/uplift.md。",
    ),
    "uplift_none_for_store": ("No member of this store was on a send list.",
                              "本店会员不在任何活动发送名单中。"),
    "uplift_ranking": ("Campaigns ranked by cost per extra member", "按每位增量会员成本排序的活动"),
    "method": ("Method", "方法"),
    "sent_and_control": ("Sent / control", "发送 / 对照人数"),
    "uplift_interval": ("Extra repurchase (95%)", "增量复购率（95%）"),
    "subsidy_per_incremental_member": ("Subsidy per extra member", "每位增量会员补贴"),
    "return_on_subsidy": ("Revenue per ¥ subsidy", "每元补贴增量销售额"),
    "extra_purchases_180d": ("Net extra buys, 180 d", "180 天人均净增购买"),
    # section 3: member value
    "group_subsidy_cohort": ("Cohort", "会员类型"),
    "group_tier": ("Tier", "会员等级"),
    "members": ("Members", "会员数"),
    "p_alive": ("Probability still active", "仍活跃概率"),
    "expected_purchases": ("Expected purchases, next {days} days", "未来 {days} 天预计购买次数"),
    "expected_spend": ("Expected spend per purchase", "预计每次消费"),
    "clv_mean": ("CLV, mean", "CLV 均值"),
    "clv_median": ("CLV, median", "CLV 中位数"),
    "clv_total": ("CLV, total", "CLV 合计"),
    "expected_purchases_range": ("Expected purchases, {level} range", "预计购买次数 {level} 区间"),
    "clv_total_range": ("CLV total, {level} range", "CLV 合计 {level} 区间"),
    "user_repurchase_range": ("Repurchase rate, 95% interval", "复购率 95% 区间"),
    "clv_share": ("Share of total CLV", "占 CLV 总额比例"),
    "value_summary": (
        "Two statistical models, one for how often members buy and one for how much they "
        "spend, were fitted on the {members} members who bought at this store. On average a member is still active "
        "with probability {alive}; together they are expected to make {purchases} purchases in "
        "the next {days} days. Customer lifetime value (CLV) is the gross profit a member is "
        "expected to bring in the next {months} months, discounted, at a gross margin of "
        "{margin}: {clv}{clv_range} for all members of the store.",
        "基于本店 {members} 名购买会员，分别拟合了“多久买一次”和“每次花多少”两个统计模型。"
        "会员平均仍活跃概率为 {alive}；预计未来 {days} 天共购买 {purchases} 次。"
        "客户终身价值（CLV）指会员在未来 {months} 个月预计带来的毛利（按 {margin} 毛利率、"
        "折现后）：本店会员合计 {clv}{clv_range}。",
    ),
    "range_suffix": (
        " ({level} range from the models' parameter uncertainty: {low} to {high})",
        "（模型参数不确定性下的 {level} 区间：{low} 至 {high}）",
    ),
    "store_no_orders": (
        "No member orders at this store up to {as_of}: there is nothing to analyse yet, so this "
        "report holds no figures.",
        "截至 {as_of}，本店没有会员订单，尚无可分析的数据，本报告不含指标。",
    ),
    "not_modelled": (
        "This store could not be modelled: {reason}. Member value figures are left out; the "
        "repurchase figures above do not depend on the models.",
        "本店无法建立会员价值模型：{reason}。因此不展示会员价值指标；上文的复购指标不依赖模型。",
    ),
    "clv_title": ("Predicted CLV per member", "会员预测 CLV 分布"),
    "holdout_title": ("Does the model earn trust? Holdout check", "模型可信吗？留出期检验"),
    "holdout_actual": ("actual", "实际"),
    "holdout_predicted": ("predicted by the model", "模型预测"),
    "holdout_x": ("Repeat purchases in the calibration period", "校准期内复购次数"),
    "holdout_y": ("Purchases per member in the holdout", "留出期人均购买次数"),
    "holdout_summary": (
        "The model was fitted again on purchases before {start} only, and asked to predict "
        "{start} to {end}: it predicted {predicted} repeat purchases, members made {actual} "
        "({error}; a naive \"same rate as before\" forecast is off by {naive_error}). Per "
        "member the model is off by {mae} purchases on average (naive: {naive_mae}). The chart "
        "compares actual and predicted purchases for members grouped by how often they had "
        "bought before.",
        "仅用 {start} 之前的购买记录重新拟合模型，预测 {start} 至 {end} 的复购：模型预测 "
        "{predicted} 次，实际 {actual} 次（偏差 {error}；按“保持以往频率”的简单预测偏差 "
        "{naive_error}）。按会员计，模型平均误差 {mae} 次（简单预测 {naive_mae} 次）。"
        "下图按此前复购次数分组对比预测与实际。",
    ),
    "holdout_naive": ("naive baseline", "简单预测"),
    "holdout_failed": ("The holdout check could not be run: {reason}.",
                       "无法进行留出期检验：{reason}。"),
    "value_by_tier": ("Member value by tier", "各会员等级的价值"),
    # section 4: segments
    "member_share": ("Share", "占比"),
    "spend_365d_mean": ("Paid per member, 365 days", "近365天人均实付"),
    "spend_365d_total": ("Paid, 365 days", "近365天实付合计"),
    "channel": ("Channel", "渠道"),
    "purchases": ("Purchases", "购买次数"),
    "product_name": ("Product", "商品"),
    "pdc_mean": ("Days covered (PDC), mean", "平均用药覆盖率（PDC）"),
    "adherent_share": ("Adherent (PDC ≥ 80%)", "依从会员占比（PDC≥80%）"),
    "pareto_sentence": (
        "The top 20% of members ({top}) bring {share} of what members paid at this store.",
        "前 20% 的会员（{top} 人）贡献了本店会员实付金额的 {share}。",
    ),
    "stored_value_sentence": (
        "{n} members ({share}) hold a stored-value card; their user repurchase rate over the "
        "last {days} days is {rate}, against {other} for the others.",
        "{n} 名会员（{share}）持有储值卡；近 {days} 天其用户复购率为 {rate}，其他会员为 {other}。",
    ),
    "rfm_title": ("Members per group (recency, frequency, spend)", "各会员分组人数（按最近购买、频次、金额）"),
    "rfm_group": ("Group", "会员分组"),
    "rfm_action": ("What to do", "建议行动"),
    # one-line readings that open the sections (rxrepurchase.readings)
    "reading_waves": (
        "From wave {first} to wave {last}, participants went {p0} → {p1} and repurchase after "
        "the wave {r0} → {r1}; each member still buying at full price cost {c0} of subsidy in "
        "wave {first} and {c1} in wave {last}.",
        "从第 {first} 波到第 {last} 波，参与会员 {p0} → {p1}，活动后复购率 {r0} → {r1}；"
        "每留住一位原价复购会员的补贴成本，第 {first} 波为 {c0}，第 {last} 波为 {c1}。",
    ),
    "reading_hours": (
        "Members buy most between {start} and {end} h: {share} of member orders in the last "
        "{days} days, {ratio} times an average two hours.",
        "会员购买最集中在 {start}–{end} 点：近 {days} 天 {share} 的会员订单，是平均两小时的 {ratio} 倍。",
    ),
    "reading_tags": (
        "By member tag, user repurchase rate over the last {days} days is highest for "
        "“{high}” ({high_rate}, {high_n} members) and lowest for “{low}” ({low_rate}, "
        "{low_n} members).",
        "按会员标签看，近 {days} 天用户复购率最高的是“{high}”（{high_rate}，{high_n} 人），"
        "最低的是“{low}”（{low_rate}，{low_n} 人）。",
    ),
    # glossary at the end of a store page: plain words for the terms the page uses
    "section_glossary": ("Glossary", "名词解释"),
    "gloss_user_repurchase": (
        "User repurchase rate: of the members who bought in a window, the share who bought "
        "at least twice in it.",
        "用户复购率：在某一时间窗内购买过的会员中，购买至少两次的比例。",
    ),
    "gloss_order_repurchase": (
        "Order repurchase rate: the share of a window's member purchases that were repeat "
        "purchases.",
        "订单复购率：时间窗内会员购买中属于重复购买的比例。",
    ),
    "gloss_cohorts": (
        "Subsidy-driven members buy mostly on coupons or promotions and stop when the subsidy "
        "stops; loyal members come back at (near) full price.",
        "补贴驱动会员主要在有券或促销时购买，补贴一停就不再回来；忠诚会员以（接近）原价回购。",
    ),
    "gloss_value": (
        "Customer lifetime value (CLV): the gross profit a member is expected to bring over "
        "the coming months. Chance still active: how likely a member has not quietly left.",
        "客户终身价值（CLV）：会员在未来若干个月预计带来的毛利。仍活跃概率：会员尚未悄然流失的可能性。",
    ),
    "gloss_value_at_risk": (
        "Value at risk: how much a member's expected value fell over the last month.",
        "风险价值：会员的预期价值在过去一个月中下降的金额。",
    ),
    "gloss_retained": (
        "Cost per retained member: a wave's subsidy divided by the participants who bought "
        "again at full price afterwards.",
        "每留住一位会员的成本：某波活动的补贴除以活动后以原价复购的参与会员数。",
    ),
    "gloss_pdc": (
        "Days covered (PDC): the share of days a chronic patient had medicine at hand.",
        "用药覆盖率（PDC）：慢病会员手中有药的天数占比。",
    ),
    "hour_of_day": ("Hour of day", "下单时段（小时）"),
    "hours_title": ("When members buy", "会员购买时段"),
    "label_champions": ("Best members: recent, frequent, big spenders", "核心会员：近期常买、消费高"),
    "rfm_action_champions": ("Member care (pharmacist's call, priority service); no discount needed", "会员关怀（药师回访、优先服务），无需打折"),
    "label_loyal_customers": ("Regulars", "老顾客：经常购买"),
    "rfm_action_loyal_customers": ("Refill reminders and member-day points", "续药提醒、会员日积分"),
    "label_potential_loyalists": ("Recent, becoming regular", "近期到店、正在养成习惯"),
    "rfm_action_potential_loyalists": ("Explain member benefits; a second-purchase coupon", "介绍会员权益，发放二次购买券"),
    "label_new_customers": ("New: first purchase just now", "新客：刚刚首购"),
    "rfm_action_new_customers": ("Welcome message; refill reminder if chronic", "欢迎消息；慢病会员加续药提醒"),
    "label_promising": ("Recent, bought once", "近期到店、仅购买一次"),
    "rfm_action_promising": ("Second-purchase offer within 30 days", "30 天内二次购买优惠"),
    "label_need_attention": ("Average, slipping", "一般会员：开始下滑"),
    "rfm_action_need_attention": ("Reminder of what they usually buy", "提醒其常购商品"),
    "label_about_to_sleep": ("About to drift away", "即将流失"),
    "rfm_action_about_to_sleep": ("Reminder with a small coupon", "提醒并附小额优惠券"),
    "label_at_risk": ("Regulars gone quiet", "久未到店的常客"),
    "rfm_action_at_risk": ("WeChat / SMS reminder with a moderate coupon", "微信/短信提醒，附适度优惠券"),
    "label_cant_lose": ("Big buyers gone quiet", "久未到店的大客户"),
    "rfm_action_cant_lose": ("A pharmacist's call this week, with a personal offer", "本周由药师致电，附个人专属优惠"),
    "label_hibernating": ("Quiet for a while, bought little", "较久未到店、购买少"),
    "rfm_action_hibernating": ("Next mass campaign only; no personal effort", "仅纳入下次群发活动，不做一对一跟进"),
    "label_lost": ("Lost: long gone, bought once or twice", "已流失：久未到店、仅买过一两次"),
    "rfm_action_lost": ("No personal action; cheap mass channels only", "不做一对一跟进，仅用低成本群发渠道"),
    "label_never_purchased": ("Never purchased", "从未购买"),
    "rfm_action_never_purchased": ("First-purchase invitation", "首购邀请"),
    "label_store": ("In store", "门店"),
    "label_mini_program": ("Mini program", "小程序"),
    "label_o2o_delivery": ("O2O delivery", "O2O 外卖"),
    "label_b2c_online": ("B2C online", "B2C 电商"),
    # section 5: refills
    "refills_precision_sentence": (
        "How good is this list? Of the {listed} refills it named on {as_of}, {precision} were "
        "bought within {days} days (95% interval {low}–{high}); a list timed by each "
        "product's median interval: {naive}.",
        "名单准确吗？{as_of} 的名单列出的 {listed} 个续方中，{precision} 在 {days} 天内购买"
        "（95% 区间 {low}–{high}）；按各商品中位间隔排期的名单为 {naive}。",
    ),
    "refills_sentence": (
        "{members} members of this store buy chronic or regularly taken products on a rhythm. "
        "The reminder list holds the {rows} refills (member × product) likeliest to be bought "
        "soon: {due} fall due in the next {within} days, {overdue} are overdue and {later} "
        "fall due later but are likely within the month; {lapsed} have lapsed. On average they had {pdc} of days covered over the last year; {adherent} "
        "of them are adherent (at least 80% of days covered).",
        "本店有 {members} 名会员按周期购买慢病或常用健康产品。提醒名单列出最可能近期购买的 {rows} "
        "个续方（会员×商品）：{due} 个在未来 {within} 天内到期，{overdue} 个已逾期，{later} "
        "个稍后到期但很可能在本月内购买；{lapsed} 个已中断。近一年平均用药覆盖率为 {pdc}；"
        "{adherent} 的会员依从性良好（覆盖率至少 80%）。",
    ),
    "refills_due_title": ("Refills coming due, by week", "未来各周到期的续方"),
    "as_of_suffix": ("{what} (as of {as_of})", "{what}（截至 {as_of}）"),
    "refills_due_now": ("due now /\noverdue", "已到期/\n逾期"),
    "week_n": ("wk {n}", "第{n}周"),
    "weeks_ahead": ("Weeks from the analysis date", "距分析日期的周数"),
    "member_products": ("Member × product", "会员 × 商品"),
    "pdc_axis": ("Proportion of days covered (PDC)", "用药覆盖率（PDC）"),
    "pdc_adherent_line": ("adherent (PDC ≥ {threshold:g})", "依从（PDC ≥ {threshold:g}）"),
    # section 6: actions
    "list_wake_up": ("Wake-up list", "唤醒名单"),
    "list_wake_up_what": (
        "Valuable members (top 20% by CLV a month ago) whose probability of still being "
        "active fell by at least 20 points, largest value at risk × probability still active "
        "first; members who bought in the last 14 days are left out: contact them before "
        "they are gone.",
        "一个月前 CLV 排名前 20%、且仍活跃概率下降至少 20 个百分点的高价值会员，按风险价值×仍活跃概率"
        "排序；近 14 天内购买过的会员不在名单上：请在流失前联系。",
    ),
    "list_refill_reminder": ("Refill reminder list", "续方提醒名单"),
    "list_refill_reminder_what": (
        "Refills (member × product) due within the next days or up to 30 days overdue, soonest "
        "first, with a suggested add-on that is never a prescription drug (unknown products "
        "await a pharmacist's review), for WeChat / SMS reminders (phone numbers masked).",
        "未来几天到期或逾期不超过 30 天的续方（会员×商品），按到期日排序；推荐搭配绝不含处方药"
        "（无法判断的商品需药师审核），用于微信/短信提醒（手机号已脱敏）。",
    ),
    "list_lapsed_refill": ("Wake-up list: lapsed refills", "唤醒名单：中断的续方"),
    "list_lapsed_refill_what": (
        "Refills (member × product) more than 30 days past due, moved here from the reminder "
        "list; members who bought in the last 14 days are left out.",
        "逾期超过 30 天的续方（会员×商品），已从续方提醒名单移到这里；近 14 天内购买过的会员不在名单上。",
    ),
    "lapsed_too_old": (
        "Left out, overdue by more than {days} days (most likely filled elsewhere now): {rows} "
        "member × product refills of {members} members.",
        "逾期超过 {days} 天的续方（很可能已在别处购药）不列入：{members} 名会员的 {rows} 个会员 × 商品续方。",
    ),
    "list_size": ("{rows} rows, {members} members", "{rows} 行，{members} 名会员"),
    "not_written": ("file not written", "未生成文件"),
    # the lists' workbook (rxrepurchase.actionlists.write_lists_workbook): sheet names
    # (Excel allows 31 characters, no ':'), column headers and codes
    "sheet_refill_reminder": ("Refill reminders", "续方提醒"),
    "sheet_wake_up": ("Wake-up", "唤醒"),
    "sheet_lapsed_refill": ("Lapsed refills", "中断续方"),
    "col_member_id": ("Member ID", "会员编号"),
    "col_home_store_id": ("Home store", "所属门店"),
    "col_last_store_id": ("Last store", "上次购买门店"),
    "col_tier": ("Tier", "会员等级"),
    "col_acquisition_channel": ("Recruited via", "来源渠道"),
    "col_last_channel": ("Last channel", "上次购买渠道"),
    "col_tags": ("Tags", "标签"),
    "col_product": ("Product code", "商品编码"),
    "col_product_name": ("Product", "商品名称"),
    "col_status": ("Refill status", "续方状态"),
    "col_last_fill": ("Last bought", "上次购买日期"),
    "col_expected_on": ("Expected on", "预计购买日期"),
    "col_due_low": ("Expected from (80%)", "预计最早（80%区间）"),
    "col_due_high": ("Expected by (80%)", "预计最晚（80%区间）"),
    "col_window_start": ("Window start", "提醒窗口开始"),
    "col_window_end": ("Window end", "提醒窗口结束"),
    "col_days_until_due": ("Days until due", "距到期天数"),
    "col_days_overdue": ("Days overdue", "逾期天数"),
    "col_p_refill": ("Chance of a refill in 30 days", "30天内续方概率"),
    "col_suggested_action": ("Suggested action", "建议动作"),
    "col_also_recommend": ("Also recommend (not prescription)", "推荐搭配（非处方药）"),
    "col_pharmacist_review": ("Pharmacist review before offering", "需药师审核后推荐"),
    "col_phone": ("Phone (masked)", "手机号（脱敏）"),
    "col_wechat_id": ("WeChat ID", "微信号"),
    "col_p_alive_before": ("Probability active a month ago", "一个月前仍活跃概率"),
    "col_p_alive_now": ("Probability active now", "当前仍活跃概率"),
    "col_p_alive_now_low": ("Probability active now, low (80%)", "当前仍活跃概率下限（80%）"),
    "col_p_alive_now_high": ("Probability active now, high (80%)", "当前仍活跃概率上限（80%）"),
    "col_p_alive_drop": ("Drop in probability active", "仍活跃概率下降"),
    "col_clv_before": ("12-month value a month ago (CNY)", "一个月前12个月价值（元）"),
    "col_clv_now": ("12-month value now (CNY)", "当前12个月价值（元）"),
    "col_clv_now_low": ("12-month value now, low (80%)", "当前12个月价值下限（80%）"),
    "col_clv_now_high": ("12-month value now, high (80%)", "当前12个月价值上限（80%）"),
    "col_value_at_risk": ("Value at risk (CNY, ≥ 0)", "风险价值（元，≥0）"),
    "col_frequency": ("Repeat purchases", "复购次数"),
    "col_last_purchase": ("Last purchase", "最近购买日期"),
    "col_days_since_last_purchase": ("Days since last purchase", "距最近购买天数"),
    "label_not_due": ("Not yet due", "未到期"),
    "label_due_soon": ("Due soon", "即将到期"),
    "label_due_now": ("Due now", "已到期"),
    "label_overdue": ("Overdue", "已逾期"),
    "label_lapsed": ("Lapsed", "已中断"),
    "label_refill_reminder": ("Refill reminder (WeChat / SMS)", "续方提醒（微信/短信）"),
    "label_wake_up_offer": ("Wake-up offer", "唤醒优惠"),
    "label_refill_wake_up": ("Call about the lapsed refill", "联系中断续方的会员"),
    "label_member_care": ("Member care (personal contact)", "会员关怀（专人联系）"),
    "label_wechat_official_account": ("WeChat official account", "公众号"),
    "label_o2o_platform": ("O2O platform", "O2O 平台"),
    "label_referral": ("Referral", "推荐"),
    # data quality
    "quality_none": ("No order or order-line row of this store was excluded or flagged while loading.",
                     "加载数据时，本门店没有被剔除或标记的订单或明细行。"),
    "quality_intro": ("{excluded} rows of this store were left out of the analysis; rows only flagged are kept.",
                      "本门店共有 {excluded} 行数据未纳入分析；仅标记的行仍然保留。"),
    "quality_excluded": ("excluded", "已剔除"),
    "quality_kept": ("kept, flagged", "保留（已标记）"),
    "quality_table": ("Table", "数据表"),
    "quality_rule": ("Rule", "规则"),
    "quality_action": ("Action", "处理"),
    "quality_rows": ("Rows", "行数"),
    "quality_message": ("Details", "说明"),
}

_TIER_LABELS_EN = {"regular": "Regular", "gold": "Gold", "diamond": "Diamond", "plus": "PLUS"}


def normalize_lang(lang: str) -> str:
    """Return ``"en"`` or ``"zh"`` for ``lang`` (accepts ``zh-CN``, ``zh_cn``, ``EN``, ...).

    Raises
    ------
    UnknownLanguageError
        For any other language.
    """
    code = str(lang).strip().lower().replace("_", "-").split("-")[0]
    if code not in LANGUAGES:
        raise UnknownLanguageError(
            f"report language {lang!r} is not supported; use one of {', '.join(LANGUAGES)}"
        )
    return code


def t(key: str, lang: str = "en", **values) -> str:
    """The text ``key`` in ``lang``, with ``{placeholders}`` filled from ``values``.

    Raises
    ------
    KeyError
        If ``key`` is not in :data:`STRINGS` (a typo in the report, not a user error).
    """
    try:
        en, zh = STRINGS[key]
    except KeyError:
        raise KeyError(f"no report text {key!r} in rxrepurchase.i18n.STRINGS") from None
    text = zh if normalize_lang(lang) == "zh" else en
    return text.format(**values) if values else text


@renamed_keywords(days="period_days")
def windowed(key: str, lang: str = "en", *, period_days: int | None = None) -> str:
    """The label of rate ``key`` with its window: the last ``period_days`` days, or
    (``period_days`` None) per calendar month. A page shows repurchase rates over several
    windows; each says which."""
    what = t(key, lang)
    if period_days is None:
        return t("window_month", lang, what=what)
    return t("window_last_days", lang, what=what, days=period_days)


def label(value: str, lang: str = "en") -> str:
    """Display label of a domain value (tier, cohort, channel, ...); the value itself if unknown."""
    lang = normalize_lang(lang)
    if value in _TIER_LABELS_EN:
        return TIER_LABELS_ZH[value] if lang == "zh" else _TIER_LABELS_EN[value]
    key = f"label_{value}"
    if key in STRINGS:
        return t(key, lang)
    return str(value)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, Real) and math.isnan(value))


def format_rate(value: float | None, lang: str = "en", digits: int = 1) -> str:
    """A fraction as a percentage: ``0.3456`` → ``"34.6%"``."""
    normalize_lang(lang)
    return MISSING if _is_missing(value) else f"{100 * float(value):.{digits}f}%"


def format_count(value: float | None, lang: str = "en") -> str:
    """A count with thousands separators: ``12345`` → ``"12,345"``."""
    normalize_lang(lang)
    return MISSING if _is_missing(value) else f"{round(float(value)):,}"


DEFAULT_CURRENCY = "CNY"
CURRENCY_SYMBOLS: dict[str, str] = {
    "CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "JP¥", "HKD": "HK$",
    "TWD": "NT$", "SGD": "S$", "AUD": "A$", "CAD": "C$", "KRW": "₩",
}  # fmt: skip
"""Symbols of common currencies; any other ISO 4217 code is shown as the code ("CHF 1,234")."""

_CURRENCY: ContextVar[str] = ContextVar("rxrepurchase_currency", default=DEFAULT_CURRENCY)


def check_currency(code: str) -> str:
    """``code`` upper-cased if it is a three-letter ISO 4217 code (``"usd"`` → ``"USD"``)."""
    if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{3}", code.strip()):
        raise UnknownCurrencyError(
            f"currency must be a three-letter ISO 4217 code such as CNY or USD, got {code!r}"
        )
    return code.strip().upper()


def currency() -> str:
    """The currency amounts are formatted in (``CNY`` unless :func:`set_currency` changed it)."""
    return _CURRENCY.get()


@contextmanager
def _restoring(token):
    try:
        yield
    finally:
        _CURRENCY.reset(token)


def set_currency(code: str):
    """Format amounts in ``code`` from now on (a report notebook calls it once, with its
    ``currency`` parameter); usable as ``with set_currency("USD"): ...`` to change it for a
    block only."""
    return _restoring(_CURRENCY.set(check_currency(code)))


def format_money(value: float | None, lang: str = "en", currency: str | None = None) -> str:
    """An amount in ``currency`` (default :func:`currency`, CNY): ``"¥1,234,567"`` in English,
    ``"¥123.5万"`` from 10,000 up in Chinese; ``"$1,234"``, ``"CHF 1,234"``."""
    lang = normalize_lang(lang)
    code = check_currency(currency) if currency is not None else _CURRENCY.get()
    if _is_missing(value):
        return MISSING
    value = float(value)
    symbol = CURRENCY_SYMBOLS.get(code, f"{code} ")
    sign = "-" if value < 0 else ""
    if lang == "zh" and abs(value) >= 10_000:
        return f"{sign}{symbol}{abs(value) / 10_000:,.1f}万"
    return f"{sign}{symbol}{abs(value):,.0f}"


TEXT_LIMIT = 80
"""Characters of a data-borne text (store name, city, product) shown on a report page."""


def format_text(value, limit: int = TEXT_LIMIT) -> str:
    """Text from data as shown on a page: control characters as spaces, at most ``limit``
    characters (cut with ``…``). For display only: the data keep the full text.

    Not HTML-escaped: the page writer escapes (Jinja, ``html.escape``, ``to_html``).
    """
    if _is_missing(value):
        return ""
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"
