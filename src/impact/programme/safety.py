"""What a programme spec may do: the security model of specs, in one place.

A spec is untrusted input (specs are written by many regions and run on a shared machine), so every
string in it that reaches pandas, the file system or a method call is checked here against an
allow-list before anything runs:

- **Expressions** (``derive``, data and evaluation ``query``): column names, literals, comparisons,
  arithmetic, boolean logic, lists and a few pure maths functions; no ``@`` references, attribute
  access, indexing, dunder names or other calls; bounded in length, size and cost (no power towers,
  no repeated text or lists).
- **Chained methods** (``then``): only the result methods in :data:`ALLOWED_STEPS`, each with its
  named, typed arguments; every one returns a new result and none writes or reads a file.
- **Files** (data and indicator libraries): inside the spec's folder or a configured data root, after
  following symlinks; regular files only.
- **TOML**: bounded size and nesting depth.
- **SQL** (a data source's ``sql``): one SELECT statement, run by :func:`sql_connection`'s DuckDB
  connection in which the spec's one confined file is the table ``data`` and every other file system
  access, extension loading, configuration change and lookup of Python objects is switched off.

Designs are checked in :func:`impact.programme.spec.resolve_design` (a public estimator of a design
module). The runner calls these checks again before it evaluates anything (defence in depth).
"""

from __future__ import annotations

import ast
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from impact.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_EXPRESSION_NODES",
    "MAX_SPEC_BYTES",
    "MAX_NESTING",
    "ALLOWED_FUNCTIONS",
    "ALLOWED_STEPS",
    "StepRule",
    "check_expression",
    "check_step",
    "confine_path",
    "configured_roots",
    "parse_toml",
    "check_sql",
    "sql_connection",
    "MAX_SQL_LENGTH",
]

#: Longest expression accepted (characters) and largest syntax tree (nodes): enough for a filter on
#: a few hundred codes, small enough that checking and evaluating stay instant.
MAX_EXPRESSION_LENGTH = 4000
MAX_EXPRESSION_NODES = 1000
#: ``x ** k`` only with a literal exponent of at most this size (no ``10 ** 10 ** 10``).
MAX_EXPONENT = 64
#: Integer literals beyond this are refused: with Python integers, arithmetic on them is unbounded.
MAX_INTEGER = 10**18
MAX_TEXT_LITERAL = 1000
#: A spec file's size and TOML nesting depth (a programme spec needs about 4 levels).
MAX_SPEC_BYTES = 1_000_000
MAX_NESTING = 16

#: Pure, elementwise functions pandas.eval supports; nothing else may be called.
ALLOWED_FUNCTIONS = frozenset({
    "sin", "cos", "tan", "exp", "log", "expm1", "log1p", "sqrt", "sinh", "cosh", "tanh", "arcsin", "arccos",
    "arctan", "arccosh", "arcsinh", "arctanh", "abs", "arctan2", "log10", "floor", "ceil",
})

_NODES = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Load, ast.Constant,
    ast.List, ast.Tuple, ast.And, ast.Or, ast.Not, ast.Invert, ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult,
    ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BitAnd, ast.BitOr, ast.Eq, ast.NotEq, ast.Lt,
    ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Call,
)
_ALLOWED_TEXT = (
    "use column names, numbers, text in quotes, comparisons, arithmetic, &/|/and/or/not, lists and "
    f"the functions {', '.join(sorted(ALLOWED_FUNCTIONS))}"
)
_BACKTICK = re.compile(r"`([^`]*)`")


# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------
def check_expression(expr: str) -> list[str]:
    """Validate a ``query``/``derive`` expression; return the column names it uses, in order.

    Raises
    ------
    SpecError
        If the expression is empty, too long or too large, cannot be parsed, or uses anything but
        the safe subset described in the module docstring.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise SpecError("the expression is empty.")
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise SpecError(f"the expression has {len(expr):,} characters; at most {MAX_EXPRESSION_LENGTH:,} are allowed.")
    if "@" in _BACKTICK.sub("", _strip_strings(expr)):
        raise SpecError(f"expression {_short(expr)} uses '@' (a reference to Python variables), which is not allowed; {_ALLOWED_TEXT}.")
    # `column name` (pandas' quoting of names with spaces) becomes a placeholder identifier.
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        key = f"_quoted_column_{len(quoted)}"
        quoted[key] = match.group(1)
        return key

    try:
        tree = ast.parse(_BACKTICK.sub(placeholder, expr).strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise SpecError(f"cannot parse expression {_short(expr)}: {getattr(exc, 'msg', exc)}.") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_EXPRESSION_NODES:
        raise SpecError(f"expression {_short(expr)} has {len(nodes):,} parts; at most {MAX_EXPRESSION_NODES:,} are allowed.")
    names: list[str] = []
    called: set[int] = set()
    for node in nodes:
        if not isinstance(node, _NODES):
            raise SpecError(f"expression {_short(expr)} uses {type(node).__name__}, which is not allowed; {_ALLOWED_TEXT}.")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in ALLOWED_FUNCTIONS or node.keywords:
                raise SpecError(f"expression {_short(expr)} calls a function that is not allowed; {_ALLOWED_TEXT}.")
            called.add(id(node.func))
        elif isinstance(node, ast.Constant):
            _check_constant(node.value, expr)
        elif isinstance(node, ast.BinOp):
            _check_arithmetic(node, expr)
        elif isinstance(node, ast.Name) and id(node) not in called:
            if node.id.startswith("__"):
                raise SpecError(f"expression {_short(expr)} names {node.id!r}: names starting with '__' are not allowed.")
            if node.id not in ("True", "False"):
                names.append(quoted.get(node.id, node.id))
    return list(dict.fromkeys(names))


def _strip_strings(expr: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", expr)


def _short(expr: str) -> str:
    return repr(expr if len(expr) <= 80 else expr[:77] + "...")


def _check_constant(value: Any, expr: str) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int) and abs(value) > MAX_INTEGER:
        raise SpecError(f"expression {_short(expr)} has an integer beyond {MAX_INTEGER:.0e}; write it as a float (e.g. 1e20).")
    if isinstance(value, str) and len(value) > MAX_TEXT_LITERAL:
        raise SpecError(f"expression {_short(expr)} has a text longer than {MAX_TEXT_LITERAL:,} characters.")
    if not isinstance(value, int | float | str):
        raise SpecError(f"expression {_short(expr)} has a {type(value).__name__} literal, which is not allowed; {_ALLOWED_TEXT}.")


def _literal_number(node: ast.AST) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _literal_number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _check_arithmetic(node: ast.BinOp, expr: str) -> None:
    for side in (node.left, node.right):
        if isinstance(side, ast.List | ast.Tuple) or (isinstance(side, ast.Constant) and isinstance(side.value, str)):
            raise SpecError(
                f"expression {_short(expr)} does arithmetic on text or a list, which is not allowed "
                "(it can build unbounded values); compare text with ==, != or in [...]."
            )
    if isinstance(node.op, ast.Pow):
        exponent = _literal_number(node.right)
        if exponent is None or not math.isfinite(exponent) or abs(exponent) > MAX_EXPONENT:
            raise SpecError(
                f"expression {_short(expr)}: the exponent of ** must be a number between -{MAX_EXPONENT} and "
                f"{MAX_EXPONENT} (no power towers such as 10 ** 10 ** 10); use exp() and log() for other powers."
            )
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(node.left)):
            raise SpecError(f"expression {_short(expr)} nests powers (a ** b ** c), which is not allowed; multiply the exponents.")


# ---------------------------------------------------------------------------------------------
# Chained result methods
# ---------------------------------------------------------------------------------------------
def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INTEGER


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and 0 < len(value) <= 100 and all(_number(v) for v in value)


def _level(value: Any) -> bool:
    return _number(value) and 0 < value < 1


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200


def _choice(*values: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return value in values

    check.__doc__ = "one of " + ", ".join(repr(v) for v in values)
    return check


def _scalar(value: Any) -> bool:
    return _number(value) or _short_text(value)


_number.__doc__ = "a finite number"
_integer.__doc__ = "a whole number"
_numbers.__doc__ = "a list of 1 to 100 finite numbers"
_level.__doc__ = "a number strictly between 0 and 1"
_flag.__doc__ = "true or false"
_short_text.__doc__ = "a text of at most 200 characters"
_scalar.__doc__ = "a number or a short text"


@dataclass(frozen=True)
class StepRule:
    """A result method a spec may chain with ``then``, and the check of each argument's value."""

    method: str
    arguments: Mapping[str, Callable[[Any], bool]]
    returns: str


def _rule(method: str, returns: str, **arguments: Callable[[Any], bool]) -> tuple[str, StepRule]:
    return method, StepRule(method, MappingProxyType(arguments), returns)


#: The result methods ``then`` may call (add a row to allow another one). Each returns a new result;
#: none reads or writes files. ``seed`` is passed by the runner where a method takes it.
ALLOWED_STEPS: Mapping[str, StepRule] = MappingProxyType(dict([
    _rule("aggregate", "an aggregated DiD result", kind=_choice("simple", "dynamic", "group", "calendar"),
          min_e=_integer, max_e=_integer, balance_e=_integer),
    _rule("placebo", "the synthetic control with in-space placebos", drop_poor_fit=_number,
          include_treated_in_pool=_flag),
    _rule("in_time_placebo", "an in-time placebo synthetic control", fake_time=_scalar),
    _rule("leave_one_out", "leave-one-out synthetic controls"),
    # "honest" itself is not listed: its `method` argument collides with the step's `method` key
    _rule("honest_relative_magnitude", "HonestDiD relative-magnitudes sensitivity", Mbar=_numbers, target=_scalar,
          level=_level, test=_choice("hybrid", "conditional", "bonferroni")),
    _rule("honest_smoothness", "HonestDiD smoothness sensitivity", M=_numbers, target=_scalar, level=_level),
    _rule("effect", "the effect in a matched sample", se=_choice("cluster", "robust", "abadie_imbens", "abadie_imbens_2016"),
          covariates=lambda v: _short_text(v) or (isinstance(v, list) and all(_short_text(x) for x in v)),
          bias_adjust=_flag, n_variance_matches=_integer,
          conditional_variance=_choice("sample_variance", "abadie_imbens_2006"),
          outcome_model=_choice("additive", "interacted"), level=_level),
]))


def check_step(method: Any, arguments: Mapping[str, Any]) -> StepRule:
    """The rule for a ``then`` step, after checking its method and every argument; else SpecError."""
    if not isinstance(method, str) or method not in ALLOWED_STEPS:
        raise SpecError(
            f"then: method {method!r} cannot be chained; allowed: {', '.join(ALLOWED_STEPS)} "
            "(each returns a new result)."
        )
    rule = ALLOWED_STEPS[method]
    for name, value in arguments.items():
        check = rule.arguments.get(name)
        if check is None:
            accepted = ", ".join(rule.arguments) or "no arguments"
            raise SpecError(f"then: {method} has no argument {name!r}; it accepts {accepted}.")
        if not check(value):
            raise SpecError(f"then: {method}({name} = {_show(value)}): expected {check.__doc__ or 'another value'}.")
    return rule


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
#: Longest SQL query accepted from a spec (characters).
MAX_SQL_LENGTH = 20_000


def check_sql(sql: Any) -> str:
    """A spec's SQL query: one SELECT statement (``WITH``, joins, ``UNION`` and aggregates are SELECTs).

    Other statements (COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CREATE, EXPORT, ...) and several
    statements are refused. What a SELECT may read is limited by :func:`sql_connection`, not here."""
    if not isinstance(sql, str) or not sql.strip():
        raise SpecError("sql must be a non-empty string holding one SELECT statement.")
    if len(sql) > MAX_SQL_LENGTH:
        raise SpecError(f"sql is {len(sql):,} characters long; at most {MAX_SQL_LENGTH:,} are accepted.")
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        raise SpecError("sql does not parse as DuckDB SQL; write one SELECT statement over the table 'data'.") from None
    kinds = [str(st.type).rsplit(".", 1)[-1] for st in statements]
    if kinds != ["SELECT"]:
        found = ", ".join(kinds) or "nothing"
        raise SpecError(f"sql must be exactly one SELECT statement over the table 'data' (found: {found}); "
                        "specs may read data, not write files, attach databases, load extensions or change settings.")
    return sql


MAX_SQL_SECONDS = 600.0  # a spec's query is stopped after this long (an endless WITH RECURSIVE, a huge cross join)


def run_sql(con: Any, sql: str, *, seconds: float | None = None) -> pd.DataFrame:
    """Run a checked query in a :func:`sql_connection` and return its result, stopping it (DuckDB's
    interrupt) once it has run ``seconds`` (default :data:`MAX_SQL_SECONDS`): a spec from another
    region must not be able to occupy a shared machine indefinitely."""
    import threading

    limit = MAX_SQL_SECONDS if seconds is None else seconds
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["frame"] = con.sql(sql).df()
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            out["error"] = exc

    worker = threading.Thread(target=work, name="impact-sql", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        con.interrupt()
        worker.join(30)
        raise SpecError(f"the data source's sql ran for more than {limit:g} s and was stopped; simplify the query "
                        "(an endless WITH RECURSIVE or a cross join of large tables never finishes) or aggregate the "
                        "data before the spec reads it.")
    if "error" in out:
        raise out["error"]
    return out["frame"]


def sql_connection(path: Path, fmt: str) -> Any:
    """A DuckDB connection in which the confined file ``path`` is the table ``data`` and nothing else
    is reachable: no file system access (``read_csv('/etc/...')``, ``glob``, ``COPY``, ``ATTACH``), no
    extension installing or loading, no scans of Python variables by name, a locked configuration, a
    memory limit and one thread. The file is handed over as an Arrow dataset, read by impact."""
    import duckdb
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet" if fmt == "parquet" else "csv")
    con = duckdb.connect(":memory:", config={
        "enable_external_access": False, "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "python_enable_replacements": False, "memory_limit": "2GB", "threads": 1, "lock_configuration": True})
    con.register("data", dataset)
    return con


def configured_roots(folder: Path) -> tuple[Path, ...]:
    """Data roots the project configures for specs in ``folder``.

    The nearest ``pyproject.toml`` at or above ``folder`` may list folders under
    ``[tool.impact] data-roots``, relative to itself; each must lie inside that file's own folder, so a
    file placed next to a spec can only widen access to its own folder tree.
    """
    for parent in (folder, *folder.parents):
        config = parent / "pyproject.toml"
        if not config.is_file():
            continue
        try:
            tool = parse_toml(config.read_text(encoding="utf-8"), config).get("tool", {})
        except (OSError, SpecError, UnicodeDecodeError):
            return ()
        roots = tool.get("impact", {}).get("data-roots", []) if isinstance(tool, Mapping) else []
        out = []
        for entry in roots if isinstance(roots, list) else []:
            if not isinstance(entry, str):
                continue
            root = (parent / entry).resolve()
            if root == parent.resolve() or parent.resolve() in root.parents:
                out.append(root)
        return tuple(out)
    return ()


def confine_path(relative: str, base: Path, roots: Iterable[Path] = ()) -> Path:
    """Resolve ``relative`` (to the spec's folder ``base``) and check it stays inside ``base`` or a root.

    Symlinks are followed before the check, so a link that leaves the roots is refused. The message
    names the allowed folders and how to add one; it never shows the file's content.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise SpecError("the path is empty.")
    if "\x00" in relative:
        raise SpecError("the path contains a NUL character.")
    allowed = [base.resolve(), *(Path(r).resolve() for r in roots)]
    target = Path(relative).expanduser() if relative.startswith("~") else Path(relative)
    resolved = (base / target).resolve()
    if not any(resolved == root or root in resolved.parents for root in allowed):
        kind = "an absolute path" if target.is_absolute() else "a path"
        link = " (through a symbolic link)" if _through_link(base / target) else ""
        raise SpecError(
            f"{kind} outside the allowed data folders{link}: {relative!r}. Data must lie in the spec's folder "
            f"or a data root ({', '.join(str(a) for a in allowed)}); add a folder with --data-root or "
            "[tool.impact] data-roots in the project's pyproject.toml."
        )
    return resolved


def _through_link(path: Path) -> bool:
    try:
        return any(p.is_symlink() for p in (path, *path.parents))
    except OSError:
        return False


def is_regular_file(path: Path) -> bool:
    """True for a regular file (not a folder, device, FIFO or socket, which could block a read)."""
    try:
        import stat

        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# TOML
# ---------------------------------------------------------------------------------------------
def parse_toml(text: str, path: Path | str) -> dict[str, Any]:
    """``tomllib.loads`` with a bounded size and nesting depth (never a RecursionError)."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: the spec has {len(text):,} characters; at most {MAX_SPEC_BYTES:,} are allowed.")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{path}: values are nested too deeply; at most {MAX_NESTING} levels are allowed.") from None
    deepest = _value_depth(raw)
    if deepest > MAX_NESTING:
        raise SpecError(f"{path}: values are nested {deepest} deep; at most {MAX_NESTING} levels are allowed.")
    return raw


def _value_depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest

