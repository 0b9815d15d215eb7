"""Load-time checks shared by the layout backends: the checkpoint is the configured layout model,
and its class ids name our classes in order (a checkpoint that fails either would give wrong or
mislabelled boxes, never an error, so it is refused before it serves)."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.layout.backends import LayoutLoadError


def wrong_model(source: str, found: Optional[str], evidence: str, model_name: str, wanted: str) -> LayoutLoadError:
    """The error for a checkpoint of another model than ``layout.model_name`` (``found``: that
    model's name, None when it is neither layout model), naming both fixes."""
    from deployments.pipelines import PIPELINES

    fix = ""
    if found:
        versions = " or ".join(v for v, p in PIPELINES.items() if p.layout_model == found)
        fix = f"to run it set the app's `pipeline` to {versions} (or layout.model_name: {found}), or "
    what = f"a {found} model" if found else "not a PP-DocLayoutV2/V3 model"
    return LayoutLoadError(f"layout model {source!r} is {what} ({evidence}) but layout.model_name is {model_name}; "
                           f"{fix}point layout.model at a {model_name} {wanted}")


def check_label_map(names: Union[Mapping, Sequence[str]], source: str, model_name: str,
                    aliases: Optional[Mapping[int, str]] = None) -> None:
    """Refuse a checkpoint whose class ids do not name ``PP_DOCLAYOUT_V2_LABELS`` in order (the
    post-processing, prompts and thresholds key on those ids): its boxes would be mislabelled.
    ``names``: an id → name mapping (config.json) or a list (inference.yml ``label_list``);
    ``aliases``: other names accepted for some ids."""
    aliases = aliases or {}
    given = {int(k): v for k, v in names.items()} if isinstance(names, Mapping) else dict(enumerate(names))
    expected = PP_DOCLAYOUT_V2_LABELS
    differ = [i for i in sorted(set(given) | set(range(len(expected))))
              if i >= len(expected) or given.get(i) not in {expected[i], aliases.get(i, expected[i])}]
    if differ:
        shown = ", ".join(f"id {i}: {given.get(i)!r} (expected {expected[i] if i < len(expected) else None!r})"
                          for i in differ[:8])
        raise LayoutLoadError(f"layout model {source} names its classes differently from {model_name}'s "
                              f"{len(expected)} classes at {len(differ)} ids ({shown}{', ...' if len(differ) > 8 else ''})"
                              f"; its boxes would be mislabelled: use an unmodified {model_name} checkpoint")
