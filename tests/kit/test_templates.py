"""Chat templates render as transformers renders them, inside jinja2's immutable sandbox."""

from __future__ import annotations

import pytest

from llmux import InvalidRequest
from llmux.kit import ChatTemplate

USER = [{"role": "user", "content": "Grüße"}]


def render(source: str, messages=USER, **kwargs) -> str:
    return ChatTemplate(source, "<s>", "</s>").render(messages, **kwargs)


def test_the_variables_transformers_passes():
    source = ("{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}\n{% endfor %}"
              "{% if add_generation_prompt %}assistant:{% endif %}{{ tools is none }}")
    assert render(source) == "<s>user:Grüße\nassistant:True"


def test_tojson_keeps_non_ascii_and_takes_transformers_arguments():
    assert render("{{ messages[0] | tojson }}") == '{"role": "user", "content": "Grüße"}'
    assert render("{{ messages[0] | tojson(indent=1, sort_keys=true) }}") == (
        '{\n "content": "Grüße",\n "role": "user"\n}')


def test_loop_controls_generation_blocks_and_whitespace_control():
    source = ("{% for m in [1, 2, 3] %}\n  {% if m == 3 %}{% break %}{% endif %}\n"
              "{% generation %}{{ m }}{% endgeneration %}\n{% endfor %}")
    assert render(source) == "12"  # the newlines after block tags are trimmed


def test_kwargs_reach_the_template():
    assert render("{{ enable_thinking }}", enable_thinking=False) == "False"


def test_raise_exception_is_a_400_with_the_templates_words():
    with pytest.raises(InvalidRequest) as info:
        render("{{ raise_exception('System message must be first') }}")
    assert info.value.message == (
        "the chat template rejected the messages: System message must be first")


@pytest.mark.parametrize("source", [
    "{{ messages.append({'role': 'system'}) }}",  # immutable: no mutating the request
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # no reaching Python's internals
    "{{ messages.__class__ }}{{ cycler.__init__.__globals__.os }}",
])
def test_the_sandbox_refuses_unsafe_attribute_access(source):
    with pytest.raises(InvalidRequest) as info:
        render(source)
    assert "unsafe" in info.value.message


def test_strftime_now_is_available():
    assert len(render("{{ strftime_now('%Y') }}")) == 4
