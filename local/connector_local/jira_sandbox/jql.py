"""The JQL subset the connector and dynamic webhook filters use: tokenizer, parser, and text matching."""

from __future__ import annotations

import re
from typing import Any

from .common import JqlError

_JQL_TOKEN = re.compile(
    r"""\s*(?:(?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)|(?P<op>!=|!~|>=|<=|=|~|>|<)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<word>[^\s()",'=!~<>]+)|(?P<bad>\S))""",
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
_JQL_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r", " ": " "}


def _jql_tokens(jql: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(jql):
        if not jql[position:].strip():
            break
        match = _JQL_TOKEN.match(jql, position)
        if not match or match.lastgroup == "bad":
            raise JqlError(f"Error in the JQL Query: the character '{jql[position:].strip()[:1]}' is a reserved "
                           f"JQL character. You must enclose it in a string or use the escape '\\u' "
                           f"(at character {position + 1}).")
        kind, text = match.lastgroup or "", match.group(match.lastgroup or 0)
        if kind == "string":
            text = _jql_unescape(text[1:-1])
        elif kind == "word" and text.lower() in _KEYWORDS:
            kind, text = "keyword", text.lower()
        tokens.append((kind, text))
        position = match.end()
    return tokens


def _jql_unescape(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        following = text[index + 1: index + 2]
        if following == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[index + 2: index + 6]):
            out.append(chr(int(text[index + 2: index + 6], 16)))
            index += 6
        elif following in _JQL_ESCAPES:
            out.append(_JQL_ESCAPES[following])
            index += 2
        else:
            raise JqlError(f"Error in the JQL Query: '\\{following}' is an illegal JQL escape sequence.")
    return "".join(out)


class _JqlParser:
    """Recursive descent over ``clause (AND|OR clause)* [ORDER BY field [ASC|DESC], ...]`` with NOT and parentheses."""

    def __init__(self, jql: str) -> None:
        self.tokens = _jql_tokens(jql)
        self.position = 0

    def parse(self) -> tuple[Any, list[tuple[str, bool]]]:
        clause = None
        if self.tokens and not self._at_keyword("order"):
            clause = self._or()
        order: list[tuple[str, bool]] = []
        if self._at_keyword("order"):
            self.position += 1
            self._expect_keyword("by")
            while True:
                name = self._field_name()
                descending = False
                if self._at_keyword("asc") or self._at_keyword("desc"):
                    descending = self.tokens[self.position][1] == "desc"
                    self.position += 1
                order.append((name, descending))
                if not self._at("comma"):
                    break
                self.position += 1
        if self.position != len(self.tokens):
            raise JqlError(f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got "
                           f"'{self.tokens[self.position][1]}'.")
        return clause, order

    def _at(self, kind: str) -> bool:
        return self.position < len(self.tokens) and self.tokens[self.position][0] == kind

    def _at_keyword(self, word: str) -> bool:
        return self._at("keyword") and self.tokens[self.position][1] == word

    def _expect_keyword(self, word: str) -> None:
        if not self._at_keyword(word):
            raise JqlError(f"Error in the JQL Query: Expecting '{word.upper()}'.")
        self.position += 1

    def _or(self) -> Any:
        parts = [self._and()]
        while self._at_keyword("or"):
            self.position += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def _and(self) -> Any:
        parts = [self._not()]
        while self._at_keyword("and"):
            self.position += 1
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def _not(self) -> Any:
        if self._at_keyword("not"):
            self.position += 1
            return ("not", self._not())
        if self._at("lparen"):
            self.position += 1
            inner = self._or()
            if not self._at("rparen"):
                raise JqlError("Error in the JQL Query: Expecting ')' before the end of the query.")
            self.position += 1
            return inner
        return self._clause()

    def _field_name(self) -> str:
        if not (self._at("word") or self._at("string")):
            raise JqlError("Error in the JQL Query: Expecting a field name.")
        name = self.tokens[self.position][1]
        self.position += 1
        return name

    def _value(self) -> str:
        if self._at("word") or self._at("string"):
            value = self.tokens[self.position][1]
            self.position += 1
            if self._at("lparen"):
                raise JqlError(f"Error in the JQL Query: the function '{value}' is not supported here.")
            return value
        raise JqlError("Error in the JQL Query: Expecting a value.")

    def _clause(self) -> Any:
        name = self._field_name()
        if self._at("op"):
            operator = self.tokens[self.position][1]
            self.position += 1
            return ("clause", name, operator, self._value())
        if self._at_keyword("in") or self._at_keyword("not"):
            negated = self._at_keyword("not")
            self.position += 1
            if negated:
                self._expect_keyword("in")
            if not self._at("lparen"):
                raise JqlError("Error in the JQL Query: Expecting '(' after IN.")
            self.position += 1
            values = [self._value()]
            while self._at("comma"):
                self.position += 1
                values.append(self._value())
            if not self._at("rparen"):
                raise JqlError("Error in the JQL Query: Expecting ')' to close the IN list.")
            self.position += 1
            return ("clause", name, "not in" if negated else "in", values)
        if self._at_keyword("is"):
            self.position += 1
            negated = self._at_keyword("not")
            if negated:
                self.position += 1
            if not (self._at_keyword("empty") or self._at_keyword("null")):
                raise JqlError("Error in the JQL Query: Expecting EMPTY or NULL after IS.")
            self.position += 1
            return ("clause", name, "is not" if negated else "is", None)
        raise JqlError(f"Error in the JQL Query: Expecting operator after the field '{name}'.")


def _text_tokens(value: str) -> list[str]:
    return re.findall(r"[^\W_]+", value.casefold())


def _text_terms(query: str) -> list[tuple[list[str], bool]]:
    """A Lucene-style text query as (tokens, prefix-wildcard) terms; a quoted phrase is one term of many tokens."""
    terms: list[tuple[list[str], bool]] = []
    index = 0
    while index < len(query):
        char = query[index]
        if char.isspace():
            index += 1
            continue
        if char == '"':
            end, phrase = index + 1, []
            while end < len(query) and query[end] != '"':
                if query[end] == "\\" and end + 1 < len(query):
                    end += 1
                phrase.append(query[end])
                end += 1
            if end >= len(query):
                raise JqlError(f"The text query '{query}' is not valid: the phrase is not closed.")
            terms.append((_text_tokens("".join(phrase)), False))
            index = end + 1
            continue
        end, word = index, []
        while end < len(query) and not query[end].isspace() and query[end] != '"':
            if query[end] == "\\" and end + 1 < len(query):
                end += 1
            word.append(query[end])
            end += 1
        text = "".join(word)
        terms.append((_text_tokens(text), text.endswith("*")))
        index = end
    terms = [term for term in terms if term[0]]
    if not terms:
        raise JqlError(f"The text query '{query}' is not valid: it contains no searchable term.")
    return terms


def _text_matches(query: str, value: Any) -> bool:
    words = _text_tokens(value) if isinstance(value, str) else []
    for tokens, prefix in _text_terms(query):
        width = len(tokens)
        found = False
        for start in range(len(words) - width + 1):
            window = words[start: start + width]
            last_matches = window[-1] == tokens[-1] or (prefix and window[-1].startswith(tokens[-1]))
            if window[:-1] == tokens[:-1] and last_matches:
                found = True
                break
        if not found:
            return False
    return True
