"""Charts of the dashboard drawn on the server as inline SVG: no script, no CDN.

Accessible without the picture: the SVG is an image with a title and a description that
carry every number, each bar has its label and number written beside it, and the bars are
one colour (nothing is told by colour alone).
"""

from __future__ import annotations

from collections.abc import Sequence

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from patients.dashboard import FunnelStage

register = template.Library()

LABEL_WIDTH = 180
BAR_WIDTH = 340
NUMBER_WIDTH = 120
ROW_HEIGHT = 34
BAR_HEIGHT = 22
MIN_BAR = 2  # a count above zero stays visible however small beside the first


def _share(count: int, whole: int) -> str:
    return f"{round(100 * count / whole)}%" if whole else "0%"


def funnel_description(stages: Sequence[FunnelStage]) -> str:
    """The chart in words: every stage with its count and its share of the first."""
    if not stages:
        return "No data."
    whole = stages[0].count
    parts = [f"{stages[0].label}: {stages[0].count}"]
    parts += [
        f"{stage.label}: {stage.count} ({_share(stage.count, whole)} of {stages[0].label.lower()})"
        for stage in stages[1:]
    ]
    return ". ".join(parts) + "."


@register.simple_tag
def funnel_svg(stages: Sequence[FunnelStage], chart_id: str = "funnel") -> SafeString:
    """Horizontal bars, one per stage, longest first, each labelled with its number."""
    whole = stages[0].count if stages else 0
    widest = max((stage.count for stage in stages), default=0)
    width = LABEL_WIDTH + BAR_WIDTH + NUMBER_WIDTH
    height = ROW_HEIGHT * len(stages) + 8
    rows = []
    for index, stage in enumerate(stages):
        top = 4 + index * ROW_HEIGHT
        bar = round(BAR_WIDTH * stage.count / widest) if widest else 0
        if stage.count and bar < MIN_BAR:
            bar = MIN_BAR
        middle = top + ROW_HEIGHT / 2
        number = str(stage.count) if index == 0 else f"{stage.count} ({_share(stage.count, whole)})"
        rows.append(
            (
                LABEL_WIDTH - 8,
                middle,
                stage.label,
                LABEL_WIDTH,
                top + (ROW_HEIGHT - BAR_HEIGHT) / 2,
                bar,
                BAR_HEIGHT,
                stage.key,
                LABEL_WIDTH + bar + 6,
                middle,
                stage.key,
                number,
            )
        )
    body = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle" '
        'class="funnel-label">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="{}" class="funnel-bar" fill="#417690" '
        'data-stage="{}"></rect>'
        '<text x="{}" y="{}" dominant-baseline="middle" class="funnel-count" '
        'data-stage="{}">{}</text>',
        rows,
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" class="funnel" '
        'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'aria-labelledby="{id}-title {id}-desc">'
        '<title id="{id}-title">Patients from registration to enrolment</title>'
        '<desc id="{id}-desc">{desc}</desc>{body}</svg>',
        width=width,
        height=height,
        id=chart_id,
        desc=funnel_description(stages),
        body=body,
    )
