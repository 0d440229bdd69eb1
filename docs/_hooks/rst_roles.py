"""griffe extension: the reST habits of chiltepin's docstrings, as Markdown.

``:class:`Name``` (and ``:func:``, ``:meth:``, ...) becomes the code span ``Name``, and a
paragraph ending in ``::`` before an indented example ends in ``:``; the example itself is
already a Markdown code block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):`~?([^`]+)`")
LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)


def to_markdown(text: str) -> str:
    return LITERAL.sub(":", ROLE.sub(r"`\1`", text))


class RstRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
