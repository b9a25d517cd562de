"""Reading a spec's data files: only the columns and rows the spec asks for reach pandas.

National registers run to tens of millions of rows, of which an evaluation needs a few columns and
often a subset of rows. For Parquet, Apache Arrow's dataset reader does the work in the engine:
``select`` becomes a column projection and a data source's ``query`` becomes a filter pushed into
the scan (row groups whose statistics exclude the condition are skipped, the rest filtered in Arrow),
whenever the query names only columns of the file and uses what Arrow can evaluate (comparisons,
``in`` lists, and/or/not). Anything else is filtered by pandas after reading, with the same result.
CSV reads only the selected columns. A source with ``sql`` runs that SELECT in a sandboxed DuckDB
connection (:func:`impact.programme.safety.sql_connection`) over the file as table ``data``. Queries are checked by :func:`impact.programme.safety.
check_expression` before they get here; this module only translates the checked syntax tree.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from impact.programme.spec import DataSource

__all__ = ["ReadFrame", "read_source", "arrow_filter"]

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}


@dataclass(frozen=True)
class ReadFrame:
    """A file's rows as read: ``rows_in_file`` before any pushed-down filter; ``pushed`` is the
    query the reader applied (None when pandas must still apply it)."""

    frame: pd.DataFrame
    rows_in_file: int
    pushed: str | None = None


def arrow_filter(query: str, columns: set[str]) -> Any | None:
    """The Arrow dataset expression equivalent to a checked pandas ``query``, or None where the
    query uses something Arrow's scan cannot evaluate the same way (arithmetic, functions, derived
    columns): such queries are applied by pandas after reading."""
    import pyarrow.dataset as ds

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -node.operand.value
        raise ValueError

    def field(node: ast.AST) -> Any:
        if isinstance(node, ast.Name) and node.id in columns:
            return ds.field(node.id)
        raise ValueError

    def side(node: ast.AST) -> Any:
        try:
            return field(node)
        except ValueError:
            return value(node)

    def convert(node: ast.AST) -> Any:
        if isinstance(node, ast.BoolOp):
            parts = [convert(v) for v in node.values]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if isinstance(node.op, ast.And) else (out | p)
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
            left, right = convert(node.left), convert(node.right)
            return (left & right) if isinstance(node.op, ast.BitAnd) else (left | right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
            return ~convert(node.operand)
        if isinstance(node, ast.Compare):
            terms, left = [], node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                # pandas compares a missing value as False (and != as True); Arrow gives null, which
                # a filter drops but which "not"/"or" would propagate: make every atom a plain bool
                if isinstance(op, ast.In | ast.NotIn):
                    if not isinstance(right, ast.List | ast.Tuple):
                        raise ValueError
                    f = field(left)
                    members = f.isin([value(e) for e in right.elts]) & f.is_valid()
                    terms.append(~members if isinstance(op, ast.NotIn) else members)
                elif type(op) in _COMPARE:
                    a, b = side(left), side(right)
                    fields = [x for x in (a, b) if isinstance(x, ds.Expression)]
                    if not fields:
                        raise ValueError
                    valid = fields[0].is_valid()
                    for f in fields[1:]:
                        valid = valid & f.is_valid()
                    comparison = _COMPARE[type(op)](a, b)
                    terms.append(comparison | ~valid if isinstance(op, ast.NotEq) else comparison & valid)
                else:
                    raise ValueError
                left = right
            out = terms[0]
            for t in terms[1:]:
                out = out & t
            return out
        raise ValueError

    try:
        return convert(ast.parse(query.replace("`", ""), mode="eval").body)
    except (ValueError, SyntaxError, TypeError):
        return None


def read_source(source: DataSource) -> ReadFrame:
    """Read the file of ``source`` with its column selection and, for Parquet, its filter."""
    if getattr(source, "sql", None):
        return _read_sql(source)
    select = list(source.select) or None
    if source.format != "parquet":
        frame = pd.read_csv(source.path, usecols=select, dtype=dict(source.dtypes) or None)
        return ReadFrame(frame, len(frame))
    import pyarrow.dataset as ds

    dataset = ds.dataset(source.path, format="parquet")
    names = set(dataset.schema.names)
    derived = {d.name for d in source.derive}
    expression = None
    if source.query and not derived & _names(source.query):
        from impact.programme.safety import check_expression

        check_expression(source.query)  # again here: a DataSource can be built without load_spec
        expression = arrow_filter(source.query, names)
    table = dataset.to_table(columns=select, filter=expression)
    frame = table.to_pandas()
    if source.dtypes:
        frame = frame.astype(dict(source.dtypes))
    return ReadFrame(frame, dataset.count_rows(), source.query if expression is not None else None)


def _read_sql(source: DataSource) -> ReadFrame:
    """Run a spec's SQL over its file in the sandboxed DuckDB connection; only the result reaches pandas."""
    from impact.programme.safety import check_sql, run_sql, sql_connection

    check_sql(source.sql)  # again here: a DataSource can be built without load_spec
    con = sql_connection(source.path, source.format)
    frame = run_sql(con, source.sql)
    rows = int(con.sql("SELECT count(*) FROM data").fetchall()[0][0])
    if source.dtypes:
        frame = frame.astype(dict(source.dtypes))
    return ReadFrame(frame, rows, source.sql)


def _names(query: str) -> set[str]:
    try:
        tree = ast.parse(query.replace("`", ""), mode="eval")
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
