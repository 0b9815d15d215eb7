"""Paragraph-title levels over a whole document (PaddleX ``assign_levels_to_parsing_res``):
three votes (numbering style, order in which styles appear, font-height cluster)."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from deployments.datamodel import BlockResult

PATTERNS = {
    "ROMAN": re.compile(r"^\s*([IVX]+)(?:[\.．\)\s]|$)", flags=re.I),
    "LETTER": re.compile(r"^\s*([A-Z])(?:[\.．\)\s])", flags=re.I),
    "NUM_LIST": re.compile(r"^\s*(\d+(?:\.\d+)*)(?![）)])(?:[\.]?\s*|(?=[A-Z]))"),
    "NUM_LIST_WITH_BRACKET": re.compile(r"^\s*(?:[\(（])?(\d+(?:\.\d+)*)[\)）]"),
    "CHINESE_NUM": re.compile(
        r"^\s*(?:第|[（\(])?([一二三四五六七八九十]{1,2})(?:[章节篇卷部条题讲课回）\)]|(?![a-zA-Z\u4e00-\u9fa5]))",
        flags=re.I),
}
SPECIAL_KEYWORDS = {k: 1 for k in (
    "ABSTRACT SUMMARY RESUME 绪论 引言 CONTENTS REFERENCES REFERENCE 参考文献 APPENDIX APPENDICES 附录 "
    "ACKNOWLEDGMENTS INTRODUCTION BACKGROUNDANDRELATEDWORK BACKGROUND RELATEDWORK THEORETICALMODELS DATA "
    "METHOD METHODS METHODOLOGY TOPICANALYSIS RESULT RESULTS DISCUSSION CONCLUSIONS CONCLUSION LIMITATIONS "
    "研究背景 相关工作 研究方法 实验结果 讨论 结论 致谢 目录").split()}


def symbol_and_level(content: str) -> tuple[str | None, int]:
    txt = str(content).strip()
    if PATTERNS["NUM_LIST_WITH_BRACKET"].match(txt):
        return "NUM_LIST_BRACKET", 4
    if PATTERNS["ROMAN"].match(txt):
        return "ROMAN", 1
    if PATTERNS["CHINESE_NUM"].match(txt):
        return "CHINESE_NUM", 1
    if PATTERNS["LETTER"].match(txt):
        return "LETTER", 2
    match = PATTERNS["NUM_LIST"].match(txt)
    if match:
        return "NUM_LIST", match.group(1).count(".") + 1
    return None, -1


def title_height(block: BlockResult) -> int:
    """Height of one text line of the title (width for vertical titles)."""
    x1, y1 = int(block.bbox[0]), int(block.bbox[1])
    x2, y2 = int(math.ceil(block.bbox[2])), int(math.ceil(block.bbox[3]))
    h, w = y2 - y1, x2 - x1
    lines = block.content.strip().count("\n") + 1
    return int(h / lines) if w / h >= 1.0 else int(w / lines)


def cluster_heights(heights: list[int], k_max: int = 4) -> dict[int, int]:
    """Height → level (1 = largest font) by 1-D k-means, as PaddleX (scikit-learn, seed 42)."""
    from sklearn.cluster import KMeans

    uniq = sorted(set(heights))
    if not uniq:
        return {}
    km = KMeans(n_clusters=min(k_max, len(uniq)), random_state=42, n_init="auto")
    km.fit(np.array(heights).reshape(-1, 1))
    centers = km.cluster_centers_.reshape(-1)
    rank = {int(old): new + 1 for new, old in enumerate(np.argsort(-centers))}
    return {h: rank[int(np.argmin([abs(h - c) for c in centers]))] for h in uniq}


def _keyword(content: str) -> str:
    return str(content).upper().strip().rstrip("：: ").replace(" ", "")


def assign_title_levels(pages: list[list[BlockResult]]) -> None:
    """Set ``title_level`` on every paragraph title of the document (in place)."""
    titles = [b for page in pages for b in page if b.label == "paragraph_title"]
    heights = [title_height(b) for b in titles]
    symbols = [symbol_and_level(b.content) for b in titles]
    cluster = cluster_heights(heights)
    seq: dict[str, int] = {}
    for symbol, level in symbols:
        if level > 0 and symbol not in seq:
            seq[symbol] = len(seq) + 1
    first_num_level = 0
    for block, height, (symbol, level) in zip(titles, heights, symbols):
        if level > 0:
            if symbol == "NUM_LIST" and first_num_level != 0:
                relative = seq[symbol] + (level - first_num_level)
            else:
                first_num_level = level if symbol == "NUM_LIST" else first_num_level
                relative = seq[symbol]
            top, votes = Counter([level, relative, cluster[height]]).most_common(1)[0]
            final = top if votes > 1 else relative
        elif _keyword(block.content) in SPECIAL_KEYWORDS:
            final = SPECIAL_KEYWORDS[_keyword(block.content)]
        else:
            final = cluster[height]
        block.title_level = int(final)
