"""gpt-oss (harmony) constrained outputs: the analysis message free, then a ``final`` message
whose body is the JSON answer, or one call ``commentary to=functions.NAME <|constrain|>json``
whose body is the arguments as JSON of the tool's schema. Harmony ends a turn after one call
(``<|call|>``), so an answer holds at most one call.
"""

from __future__ import annotations

from ..structured.target import Target, lark_literal, lark_tag


def grammar(target: Target, *, thinking: bool, specials: frozenset[str]) -> str:
    def t(tag: str) -> str:
        return lark_tag(tag, specials)

    channel, message = t("<|channel|>"), t("<|message|>")
    rules = [
        f'analysis: {channel} "analysis" {message} TEXT {t("<|end|>")} {t("<|start|>")} '
        '"assistant"',
        # Free text; without special tokens, text that could spell a tag is kept out.
        "TEXT: " + ("/(?s:.*)/" if "<|end|>" in specials else "/[^<]*/"),
    ]
    body = []
    if target.answer is not None:
        body.append("final")
        rules.append(f'final: {channel} "final" {message} {target.answer}')
    for i, call in enumerate(target.calls):
        body.append(f"call_{i}")
        rules.append(
            f"call_{i}: {channel} {lark_literal(f'commentary to=functions.{call.name} ')} "
            f'{t("<|constrain|>")} "json" {message} {call.arguments_lark()}'
        )
    return "\n".join([f"start: analysis? ({' | '.join(body)})", *rules]) + "\n"
