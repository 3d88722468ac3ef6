from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from lockgate.api import ir
from lockgate.proxy.errors import ApiError
from lockgate.proxy.templates import (
    make_json_object,
    parse_json_answer,
    render_messages,
    slice_to_index_map,
    validate_variables,
)


def _template(prompt: str, **variables: ir.TemplateVariable) -> ir.ChatTemplate:
    return ir.ChatTemplate(model="m", prompt_template=prompt, variables=variables)


def test_functions() -> None:
    assert slice_to_index_map(["a", "b"], 1) == {"1": "a", "2": "b"}
    assert make_json_object("a", 1, "b", 2) == {"a": 1, "b": 2}
    assert make_json_object(a=1) == {"a": 1}
    template = _template("{{ jsonify(make_json_object('k', items)) }} {{ len(items) }}",
                         items=ir.TemplateVariable(type="array"))
    assert render_messages(template, {"items": ["é"]})[0]["content"] == '{"k": ["é"]} 1'


def test_validation_names_the_field() -> None:
    template = _template("x", n=ir.TemplateVariable(type="integer", required=True),
                         tags=ir.TemplateVariable(type="array", items=ir.TemplateVariable(type="string")),
                         mode=ir.TemplateVariable(enum=("a", "b"), default="a"))
    assert validate_variables(template, {"n": 1}) == {"n": 1, "tags": None, "mode": "a"}
    for posted, param in (({}, "n"), ({"n": "1"}, "n"), ({"n": True}, "n"), ({"n": 1, "tags": [1]}, "tags[0]"),
                          ({"n": 1, "mode": "c"}, "mode"), ({"n": 1, "extra": 1}, "extra")):
        with pytest.raises(ApiError) as error:
            validate_variables(template, posted)
        assert (error.value.status, error.value.param) == (400, param)


def test_sandbox_refuses_unsafe_access() -> None:
    template = _template("{{ items.__class__.__mro__ }}", items=ir.TemplateVariable(type="array"))
    with pytest.raises((SecurityError, ApiError)):
        render_messages(template, {"items": []})
    mutate = _template("{{ items.append(1) }}", items=ir.TemplateVariable(type="array"))
    with pytest.raises((SecurityError, ApiError)):
        render_messages(mutate, {"items": []})


def test_json_answers() -> None:
    assert parse_json_answer('{"a": 1}') == {"a": 1}
    assert parse_json_answer('```json\n[1, 2]\n```') == [1, 2]
    with pytest.raises(ApiError) as error:
        parse_json_answer("sorry")
    assert error.value.status == 502
