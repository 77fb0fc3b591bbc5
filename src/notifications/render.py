"""Render a notification from Jinja2 templates shipped in ``notifications/templates``.

Each kind has three templates: ``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``
(the HTML one is autoescaped). Undefined variables raise (``StrictUndefined``). Dates are
shown with the ``cn_date`` filter as ``2021年10月20日``; the ``lines`` macro in
``_macros.html`` shows a multi-line text in HTML (escaped, line breaks as ``<br>``).

Kinds and their context variables (all required):

``reminder`` (to a unit, before a deadline)
    ``unit_name`` str, ``round_title`` str, ``milestone_name`` str (e.g.
    ``自评报告、自评打分表和佐证材料报送``), ``due_date`` date, ``days_left`` int (0 = due today),
    ``case_id`` str, ``what_to_do`` str (may span lines), ``contact_line`` str (the
    bureau's contact; may be empty).

``missed`` (to a unit, a deadline has passed)
    ``unit_name``, ``round_title``, ``milestone_name``, ``due_date`` date,
    ``noticed_on`` date, ``case_id``, ``what_to_do``.

``digest`` (to a coordinator: overdue items in a jurisdiction)
    ``coordinator_name``, ``jurisdiction_name``, ``round_title``, ``as_of`` date,
    ``rows``: a list of mappings with ``unit_name``, ``milestone_name``, ``due_date``
    (date), ``days_overdue`` (int), ``case_id``. The subject states the count. Optional:
    ``anchor``, a mapping with ``sequence``, ``created_at`` (str) and ``merkle_root``: the latest
    checkpoint of the audit chain, quoted so that a copy lands in the coordinators' mailboxes.

``rectification`` (to a unit whose verified score is below the pass mark)
    ``unit_name``, ``round_title``, ``due_date`` date, ``days_left`` int, ``case_id``,
    ``verified_total`` str (e.g. ``"82.5"``), ``pass_mark`` str (e.g. ``"85"``).

``rectification_notice`` (to a unit, at once when rectification is ordered or extended: its
    整改通知) ``unit_name``, ``round_title``, ``due_date`` date (the last day), ``days_left`` int,
    ``case_id``, ``verified_total`` str, ``pass_mark`` str, ``what_to_do`` str (may be empty),
    ``contact_line`` str (may be empty).

``duty_reminder`` (to a coordinator, before a duty of their jurisdiction is due: a city's
    report, a filing) ``coordinator_name``, ``jurisdiction_name`` (the one that owes it),
    ``round_title``, ``duty_name``, ``due_date`` date, ``days_left`` int, ``what_to_do`` str,
    ``how_to_record`` str (may be empty).

``duty_missed`` (to a coordinator: a duty passed its date undone) ``coordinator_name``,
    ``round_title``, ``duty_name``, ``due_date`` date, ``days_overdue`` int, ``how_to_record``
    str, ``items``: the jurisdictions that missed it, each with ``jurisdiction_name`` and
    ``rows`` (the cases still waiting, ``unit_name`` and ``case_id``; empty for a duty that is
    recorded done).

``coordinator_reminder`` (to a coordinator, before a deadline the bureau itself owes,
    e.g. verifying submitted cases) ``coordinator_name``, ``jurisdiction_name``,
    ``round_title``, ``milestone_name``, ``due_date`` date, ``days_left`` int, ``rows``: a
    list of mappings with ``unit_name`` and ``case_id``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Undefined, select_autoescape

__all__ = ["KINDS", "Rendered", "cn_date", "render"]

KINDS: tuple[str, ...] = ("reminder", "missed", "digest", "rectification", "coordinator_reminder",
                          "rectification_notice", "duty_reminder", "duty_missed", "checkpoint", "revocation_notice")


@dataclass(frozen=True)
class Rendered:
    """A rendered notification: one-line subject, plain text and HTML bodies."""

    subject: str
    text: str
    html: str


def cn_date(value: date) -> str:
    """Format a date (or datetime) the Chinese way: ``2021年10月20日``."""
    if not isinstance(value, date):
        raise TypeError(f"cn_date needs a date, got {type(value).__name__}")
    return f"{value.year}年{value.month}月{value.day}日"


def _cn_date_filter(value: date | Undefined) -> str | Undefined:
    """``cn_date`` for templates: a missing value stays undefined, so rendering it raises."""
    return value if isinstance(value, Undefined) else cn_date(value)


_env = Environment(
    loader=PackageLoader("notifications", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)
_env.filters["cn_date"] = _cn_date_filter


def render(kind: str, context: Mapping[str, Any]) -> Rendered:
    """Render the subject, text and HTML of ``kind`` with ``context``.

    Raises ValueError for an unknown kind and ``jinja2.UndefinedError`` when the context
    lacks a variable the templates use. The subject is collapsed to one line.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; known kinds: {', '.join(KINDS)}")
    values = dict(context)
    subject = _env.get_template(f"{kind}.subject.txt").render(values)
    text = _env.get_template(f"{kind}.txt").render(values)
    html = _env.get_template(f"{kind}.html").render(values)
    return Rendered(subject=" ".join(subject.split()), text=text.strip() + "\n", html=html)
