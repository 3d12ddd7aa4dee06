"""A tiny evaluator for the subset of Go's text/template that the Ollama export writes (tests only).

It checks the export's own rules while it renders: literal text lives only in `{{- "..." }}` actions, and text
between actions is whitespace (trimmed by the `{{-` that starts every action). Supported: string, variable and
field output; `$x := ...` / `$x = ...`; if / else if / else / end; `range $i, $_ := ...`; and the functions
eq, ne, and, not, len, slice.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ACTION = re.compile(r"\{\{(-?) (.*?) \}\}", re.S)
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|[^\s()]+)')


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (hasattr(value, "__len__") and len(value) == 0)


_FUNCS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "and": lambda *args: next((a for a in args if not _truthy(a)), args[-1]),
    "not": lambda a: not _truthy(a),
    "len": len,
    "slice": lambda seq, start: seq[start:],
}


def _actions(source: str) -> list[str]:
    actions, pos = [], 0
    for match in _ACTION.finditer(source):
        assert not source[pos:match.start()].strip(), f"literal text outside an action: {source[pos:match.start()]!r}"
        assert match.group(1) == "-", f"action without whitespace trimming: {match.group(0)!r}"
        actions.append(match.group(2).strip())
        pos = match.end()
    assert not source[pos:].strip(), f"literal text after the last action: {source[pos:]!r}"
    return actions


def _parse(actions: list[str], i: int, stop: tuple[str, ...]) -> tuple[list, int]:
    body: list = []
    while i < len(actions):
        action = actions[i]
        if action == "end" or action == "else" or action.startswith("else if "):
            assert action.split(" ")[0] in stop, action
            return body, i
        if action.startswith("if "):
            branches, otherwise = [], []
            inner, i = _parse(actions, i + 1, ("else", "end"))
            branches.append((action[3:], inner))
            while actions[i] != "end":
                if actions[i].startswith("else if "):
                    cond = actions[i][8:]
                    inner, i = _parse(actions, i + 1, ("else", "end"))
                    branches.append((cond, inner))
                else:
                    otherwise, i = _parse(actions, i + 1, ("end",))
            body.append(("if", branches, otherwise))
        elif action.startswith("range "):
            match = re.fullmatch(r"range \$(\w+), \$(\w+) := (.+)", action)
            assert match, action
            inner, i = _parse(actions, i + 1, ("end",))
            body.append(("range", match[1], match[2], match[3], inner))
        elif re.match(r"\$\w+ :?= ", action):
            name, expr = re.fullmatch(r"\$(\w+) :?= (.+)", action).groups()  # type: ignore[union-attr]
            body.append(("set", name, expr))
        else:
            body.append(("out", action))
        i += 1
    assert not stop, f"missing {stop}"
    return body, i


def _operand(tokens: list[str], dot: Any, env: dict) -> tuple[Any, list[str]]:
    token, rest = tokens[0], tokens[1:]
    if token == "(":
        value, rest = _command(rest, dot, env)
        assert rest[0] == ")"
        return value, rest[1:]
    if token.startswith('"'):
        return json.loads(token), rest
    if token in ("true", "false"):
        return token == "true", rest
    if token.isdigit():
        return int(token), rest
    if token.startswith("$."):
        return env["$"][token[2:]], rest
    if token.startswith("$"):
        return env[token[1:]], rest
    if token.startswith("."):
        return dot[token[1:]], rest
    raise AssertionError(f"unsupported token {token!r}")


def _command(tokens: list[str], dot: Any, env: dict) -> tuple[Any, list[str]]:
    if tokens[0] not in _FUNCS:
        return _operand(tokens, dot, env)
    name, tokens, args = tokens[0], tokens[1:], []
    while tokens and tokens[0] != ")":
        value, tokens = _operand(tokens, dot, env)
        args.append(value)
    return _FUNCS[name](*args), tokens


def _eval(expr: str, dot: Any, env: dict) -> Any:
    value, rest = _command(_TOKEN.findall(expr), dot, env)
    assert not rest, rest
    return value


def _run(nodes: list, dot: Any, env: dict, out: list[str]) -> None:
    for node in nodes:
        if node[0] == "out":
            out.append(str(_eval(node[1], dot, env)))
        elif node[0] == "set":
            env[node[1]] = _eval(node[2], dot, env)
        elif node[0] == "if":
            for cond, body in node[1]:
                if _truthy(_eval(cond, dot, env)):
                    _run(body, dot, env, out)
                    break
            else:
                _run(node[2], dot, env, out)
        else:
            _, index_name, item_name, expr, body = node
            for index, item in enumerate(_eval(expr, dot, env)):
                env[index_name], env[item_name] = index, item
                _run(body, item, env, out)


def render(source: str, values: dict[str, Any]) -> str:
    """Render a Go template of the supported subset with `values` as its root (`.System`, `.Messages`)."""
    tree, _ = _parse(_actions(source), 0, ())
    out: list[str] = []
    _run(tree, values, {"$": values}, out)
    return "".join(out)
