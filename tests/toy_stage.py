"""A toy stage for tests/test_toy_route.py: the text of a drop in capitals, with its captions counted.

It is the first of the three places a route is written (stage module, table entry, brief model) and follows
the stage contract like any stage in omad/stages/: it reads its inputs through the context and writes under
``ctx.work``.
"""

from __future__ import annotations

from omad.errors import InputError
from omad.stage import Stage, StageContext, StageResult


class ShoutStage(Stage):
    name = "shout"
    needs = ("text", "srt")
    makes = ("shout",)

    def run(self, ctx: StageContext) -> StageResult:
        try:
            text = ctx.path("text").read_text(encoding="utf-8").strip()
            cues = ctx.path("srt").read_text(encoding="utf-8").count("-->")
        except UnicodeDecodeError as e:
            raise InputError("is not UTF-8 text. Save it as UTF-8 and drop it again.", file=ctx.label("text")) from e
        marks = "!" * int(ctx.options.get("exclaim", 1))
        (ctx.work / "shout.txt").write_text(f"{text.upper()}{marks}\n{cues} captions\n", encoding="utf-8")
        return StageResult(artifacts={"shout": "shout.txt"}, publish={".shout.txt": "shout"},
                           facts={"captions": cues})
