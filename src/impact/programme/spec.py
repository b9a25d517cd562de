"""Programme specs: one TOML file per programme, validated once into frozen dataclasses.

A spec describes a programme (metadata and evaluation questions), its effect chain (resources ->
activities -> outputs -> outcomes -> impacts, each item naming indicator codes), its data sources
(CSV or Parquet files relative to the spec, with an optional row filter and derived columns) and its
evaluations (an outcome, a design named ``module.function`` in impact, keyword options, methods
chained on the result, and robustness checks). See ``analyses/README.md`` for the format.

Every error is a :class:`~impact.errors.SpecError` naming the file, the key path and, where it can be
found in the text, the line.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import inspect
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from impact.errors import SpecError
from impact.programme.indicators import LEVELS, IndicatorLibrary, RegionLibrary, load_library

__all__ = [
    "ChainItem",
    "EffectChain",
    "Derived",
    "DataSource",
    "Step",
    "Check",
    "Evaluation",
    "Programme",
    "Spec",
    "load_spec",
    "resolve_design",
    "check_expression",
    "DESIGN_MODULES",
]

#: impact sub-modules a spec's ``design`` may name (``"did.twfe"`` -> ``impact.did.twfe``): those whose
#: estimators take the data frame first. Pooling (``impact.meta``) works on stored estimates instead:
#: see ``impact pool``.
DESIGN_MODULES = ("did", "matching", "rct", "synth")
_DTYPES = {"str": "string", "string": "string", "int": "Int64", "float": "float64", "category": "category", "bool": "boolean"}

_TOP_KEYS = {"programme", "effect_chain", "data", "evaluations", "indicator_libraries", "monitoring"}
_PROGRAMME_KEYS = {
    "id", "name", "regions", "region", "period", "budget", "owner", "questions", "summary", "limitations",
}
_CHAIN_ITEM_KEYS = {"text", "indicators", "measured"}
_DATA_KEYS = {"name", "path", "description", "query", "derive", "dtypes", "format"}
_DERIVE_KEYS = {"name", "expr"}
_EVALUATION_KEYS = {"name", "question", "outcome", "indicator", "data", "design", "options", "then", "robustness", "query"}
_CHECK_KEYS = {"name", "design", "options", "then", "query", "outcome", "data"}
_LIBRARY_KEYS = {"path", "prefix"}
#: Design options that name columns of the data, by the package's naming convention (API.md). Checked at
#: validation so that a typo is reported with its line before anything runs; other options are left
#: to the estimator.
COLUMN_OPTIONS = (
    "outcome", "treatment", "unit", "time", "cohort", "covariates", "cluster", "clusters", "blocks", "weights",
    "assignment", "predictors", "received", "observed", "exact",
)


# ---------------------------------------------------------------------------------------------
# The validated spec
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainItem:
    """One box of the effect chain: what it says and the indicators that measure it."""

    text: str
    indicators: tuple[str, ...] = ()
    measured: str | None = None


@dataclass(frozen=True)
class EffectChain:
    """Resources -> activities -> outputs -> outcomes -> impacts."""

    resources: tuple[ChainItem, ...] = ()
    activities: tuple[ChainItem, ...] = ()
    outputs: tuple[ChainItem, ...] = ()
    outcomes: tuple[ChainItem, ...] = ()
    impacts: tuple[ChainItem, ...] = ()

    def levels(self) -> list[tuple[str, tuple[ChainItem, ...]]]:
        """``(level, items)`` in chain order."""
        return [(level, getattr(self, level)) for level in LEVELS]

    def indicator_codes(self) -> list[str]:
        """Every indicator code the chain names, in order, without repeats."""
        seen: dict[str, None] = {}
        for _, items in self.levels():
            for item in items:
                for code in item.indicators:
                    seen.setdefault(code, None)
        return list(seen)


@dataclass(frozen=True)
class Derived:
    """A column computed from others with a restricted pandas expression (no Python execution)."""

    name: str
    expr: str


@dataclass(frozen=True)
class DataSource:
    """A data file (CSV or Parquet) and how it is prepared before any evaluation sees it."""

    name: str
    path: Path
    relative_path: str
    description: str = ""
    query: str | None = None
    derive: tuple[Derived, ...] = ()
    dtypes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    columns: tuple[str, ...] = ()

    @property
    def format(self) -> str:
        return "parquet" if self.path.suffix.lower() in (".parquet", ".pq") else "csv"


@dataclass(frozen=True)
class Step:
    """A method called on an intermediate result: ``getattr(obj, method)(**kwargs)``."""

    method: str
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Check:
    """A robustness check: the main evaluation re-run with another design or options."""

    name: str
    design: str
    options: Mapping[str, Any]
    then: tuple[Step, ...] = ()
    query: str | None = None
    outcome: str | None = None
    data: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """One evaluation question answered by one design on one outcome."""

    name: str
    question: str
    outcome: str
    indicator: str | None
    data: str
    design: str
    options: Mapping[str, Any]
    then: tuple[Step, ...] = ()
    robustness: tuple[Check, ...] = ()
    query: str | None = None


@dataclass(frozen=True)
class Programme:
    """Who runs the programme, where, when, with what budget, and what the evaluation asks."""

    id: str
    name: str
    regions: tuple[str, ...] = ()
    period: str = ""
    budget: str = ""
    owner: str = ""
    questions: tuple[str, ...] = ()
    summary: str = ""
    limitations: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    """A validated programme spec."""

    path: Path
    sha256: str
    programme: Programme
    effect_chain: EffectChain
    data: tuple[DataSource, ...]
    evaluations: tuple[Evaluation, ...]
    indicators: IndicatorLibrary
    indicator_libraries: tuple[RegionLibrary, ...] = ()
    monitoring: tuple[Any, ...] = ()  # impact.monitoring.spec.MonitoringSource: [[monitoring]] follow-up records

    def source(self, name: str) -> DataSource:
        """The data source called ``name``."""
        for src in self.data:
            if src.name == name:
                return src
        raise SpecError(f"{self.path}: no data source named {name!r}")

    def metadata(self) -> dict[str, Any]:
        """Programme metadata as a JSON-able dict (for results.json and the registry)."""
        p = self.programme
        return {
            "id": p.id,
            "name": p.name,
            "regions": list(p.regions),
            "period": p.period,
            "budget": p.budget,
            "owner": p.owner,
            "questions": list(p.questions),
            "summary": p.summary,
            "spec": self.path.name,
            "spec_sha256": self.sha256,
        }


# ---------------------------------------------------------------------------------------------
# Where in the file: key path -> line number
# ---------------------------------------------------------------------------------------------
def _find_line(text: str, keypath: Sequence[str | int]) -> int | None:
    """Best-effort line number (1-based) of a key path such as ``("evaluations", 1, "design")``."""
    lines = text.splitlines()
    cursor = 0
    found: int | None = None
    header: str | None = None
    parent = 0  # where the enclosing table starts: array-of-tables are counted from there
    for part in keypath:
        if isinstance(part, int):
            if header is not None:
                hits = [i for i in range(parent, len(lines)) if lines[i].strip().startswith(f"[[{header}]]")]
                if part < len(hits):
                    cursor = found = hits[part]
                    continue
            hits = [i for i in range(cursor, len(lines)) if "{" in lines[i] or lines[i].strip().startswith("[[")]
            if part < len(hits):
                cursor = found = hits[part]
            continue
        key = re.escape(str(part))
        table = re.compile(rf"^\s*\[\[?\s*([\w.\-\"]+\.)?\"?{key}\"?\s*\]\]?")
        assign = re.compile(rf"(^|[{{,\s])\"?{key}\"?\s*=")
        hit = None
        for i in range(cursor, len(lines)):
            m = table.match(lines[i])
            if m:
                hit = i
                parent = cursor
                header = (m.group(1) or "") + str(part)
                break
            if assign.search(lines[i].split("#", 1)[0]):
                hit = i
                break
        if hit is None:
            return found + 1 if found is not None else None
        cursor = found = hit
    return found + 1 if found is not None else None


class _Context:
    """File, text and helpers to raise SpecErrors that point into the file."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text

    def error(self, keypath: Sequence[str | int], message: str) -> SpecError:
        dotted = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(keypath))
        line = _find_line(self.text, keypath) if keypath else None
        where = f"{self.path}" + (f", line {line}" if line else "") + (f", key {dotted}" if dotted else "")
        return SpecError(f"{where}: {message}")

    def keys(self, table: Any, allowed: set[str], keypath: Sequence[str | int], required: Sequence[str] = ()) -> None:
        if not isinstance(table, Mapping):
            raise self.error(keypath, f"expected a table, got {type(table).__name__} {table!r}.")
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else f" Allowed keys: {', '.join(sorted(allowed))}."
                raise self.error([*keypath, key], f"unknown key {key!r}.{hint}")
        for key in required:
            if key not in table:
                raise self.error(keypath, f"missing required key {key!r}.")

    def string(self, table: Mapping[str, Any], key: str, keypath: Sequence[str | int], default: str | None = None) -> str:
        value = table.get(key, default)
        if value is None:
            raise self.error(keypath, f"missing required key {key!r}.")
        if isinstance(value, int | float) and not isinstance(value, bool) and key in ("budget", "period"):
            return str(value)
        if not isinstance(value, str):
            raise self.error([*keypath, key], f"expected text, got {type(value).__name__} {value!r}.")
        return value

    def strings(self, table: Mapping[str, Any], key: str, keypath: Sequence[str | int]) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error([*keypath, key], f"expected a list of text, got {value!r}.")
        return tuple(value)


# ---------------------------------------------------------------------------------------------
# Safe expressions for queries and derived columns
# ---------------------------------------------------------------------------------------------
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Load, ast.Constant,
    ast.List, ast.Tuple, ast.And, ast.Or, ast.Not, ast.Invert, ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult,
    ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BitAnd, ast.BitOr, ast.BitXor, ast.Eq, ast.NotEq, ast.Lt,
    ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Call,
)
#: functions pandas.eval supports; nothing else may be called.
_ALLOWED_FUNCTIONS = {
    "sin", "cos", "exp", "log", "expm1", "log1p", "sqrt", "sinh", "cosh", "tanh", "arcsin", "arccos", "arctan",
    "arccosh", "arcsinh", "arctanh", "abs", "arctan2", "log10", "floor", "ceil",
}


def check_expression(expr: str) -> list[str]:
    """Validate a query/derive expression; return the column names it uses.

    Only comparisons, arithmetic, boolean logic, literals, lists and pandas.eval's maths functions
    are allowed: no attribute access, indexing, lambdas or other calls, so a spec cannot run Python.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise SpecError("the expression is empty.")
    try:
        tree = ast.parse(expr.replace("`", ""), mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"cannot parse expression {expr!r}: {exc.msg}.") from None
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise SpecError(
                f"expression {expr!r} uses {type(node).__name__}, which is not allowed; use column names, "
                "numbers, text in quotes, comparisons, arithmetic, and/or/not and lists."
            )
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _ALLOWED_FUNCTIONS or node.keywords:
                raise SpecError(
                    f"expression {expr!r} calls a function that is not allowed; only {', '.join(sorted(_ALLOWED_FUNCTIONS))}."
                )
        elif isinstance(node, ast.Name):
            names.append(node.id)
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return [n for n in dict.fromkeys(names) if n not in calls and n not in ("True", "False")]


# ---------------------------------------------------------------------------------------------
# Design dispatch
# ---------------------------------------------------------------------------------------------
def resolve_design(design: str) -> Callable[..., Any]:
    """The impact function named by ``design`` (``"did.twfe"`` -> ``impact.did.twfe``).

    Generic on purpose: any public function of an impact design module can be named, so new
    estimators need no edit here.
    """
    name = design.removeprefix("impact.")
    module_name, _, function = name.rpartition(".")
    if not module_name or not function or function.startswith("_"):
        raise SpecError(f"design {design!r} must be 'module.function', e.g. 'did.twfe' or 'rct.difference_in_means'.")
    top = module_name.split(".")[0]
    if top not in DESIGN_MODULES:
        raise SpecError(f"design {design!r}: unknown module {top!r}; choose one of {', '.join(DESIGN_MODULES)}.")
    try:
        module = importlib.import_module(f"impact.{module_name}")
    except ImportError:
        raise SpecError(f"design {design!r}: module impact.{module_name} is not available in this version.") from None
    func = getattr(module, function, None)
    if not callable(func) or isinstance(func, type):
        available = sorted(
            n for n in getattr(module, "__all__", dir(module))
            if not n.startswith("_") and callable(getattr(module, n, None)) and not isinstance(getattr(module, n, None), type)
        )
        close = difflib.get_close_matches(function, available, n=1)
        hint = f" Did you mean '{module_name}.{close[0]}'?" if close else ""
        listed = ", ".join(f"{module_name}.{n}" for n in available) or "none yet"
        raise SpecError(f"unknown design {design!r}.{hint} Designs in impact.{module_name}: {listed}.")
    return func


def _check_option_columns(options: Mapping[str, Any], columns: Sequence[str], source: str, ctx: _Context,
                          keypath: list[str | int]) -> None:
    for key in COLUMN_OPTIONS:
        value = options.get(key)
        names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for name in names:
            if isinstance(name, str) and name not in columns:
                close = difflib.get_close_matches(name, list(columns), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ctx.error([*keypath, key], f"{key} = {name!r} is not a column of data source {source!r}.{hint}")


def _check_options(func: Callable[..., Any], options: Mapping[str, Any], ctx: _Context, keypath: list[str | int]) -> None:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" It accepts: {', '.join(allowed)}."
            raise ctx.error([*keypath, key], f"{func.__module__}.{func.__name__} has no option {key!r}.{hint}")


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
def _read_columns(path: Path, fmt: str) -> tuple[str, ...]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return tuple(pq.read_schema(path).names)
    import pandas as pd

    return tuple(str(c) for c in pd.read_csv(path, nrows=0).columns)


def _parse_chain(raw: Any, ctx: _Context, library: IndicatorLibrary) -> EffectChain:
    if raw is None:
        return EffectChain()
    ctx.keys(raw, set(LEVELS), ["effect_chain"])
    levels: dict[str, tuple[ChainItem, ...]] = {}
    for level in LEVELS:
        items = raw.get(level, [])
        if not isinstance(items, list):
            raise ctx.error(["effect_chain", level], "expected a list of {text = ..., indicators = [...]} items.")
        parsed = []
        for i, item in enumerate(items):
            kp: list[str | int] = ["effect_chain", level, i]
            if isinstance(item, str):
                item = {"text": item}
            ctx.keys(item, _CHAIN_ITEM_KEYS, kp, required=("text",))
            codes = ctx.strings(item, "indicators", kp)
            for code in codes:
                if code not in library:
                    raise ctx.error([*kp, "indicators"], library.unknown_message(code))
            measured = item.get("measured")
            if measured is not None and not isinstance(measured, str):
                raise ctx.error([*kp, "measured"], "expected text describing where the indicator is measured.")
            parsed.append(ChainItem(ctx.string(item, "text", kp), codes, measured))
        levels[level] = tuple(parsed)
    return EffectChain(**levels)


def _parse_steps(raw: Any, ctx: _Context, keypath: list[str | int]) -> tuple[Step, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.error(keypath, "expected a list of {method = ..., ...} tables.")
    steps = []
    for i, step in enumerate(raw):
        if not isinstance(step, Mapping) or not isinstance(step.get("method"), str):
            raise ctx.error([*keypath, i], "each step needs method = \"name\" (a method of the result), plus its options.")
        kwargs = {k: v for k, v in step.items() if k != "method"}
        steps.append(Step(step["method"], MappingProxyType(kwargs)))
    return tuple(steps)


def _parse_data(raw: Any, ctx: _Context, base: Path) -> tuple[DataSource, ...]:
    if raw is None:
        raise ctx.error([], "missing required [[data]] (at least one data source).")
    if not isinstance(raw, list):
        raise ctx.error(["data"], "write each data source as a [[data]] table.")
    sources = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        kp: list[str | int] = ["data", i]
        ctx.keys(item, _DATA_KEYS, kp, required=("name", "path"))
        name = ctx.string(item, "name", kp)
        if name in names:
            raise ctx.error([*kp, "name"], f"data source name {name!r} is used twice.")
        names.add(name)
        rel = ctx.string(item, "path", kp)
        path = (base / rel).resolve()
        if not path.is_file():
            raise ctx.error([*kp, "path"], f"data file {rel!r} not found (looked for {path}); paths are relative to the spec file.")
        fmt = item.get("format") or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
        if fmt not in ("csv", "parquet"):
            raise ctx.error([*kp, "format"], f"format {fmt!r} is not supported; use 'csv' or 'parquet'.")
        if fmt == "csv" and path.suffix.lower() in (".parquet", ".pq"):
            raise ctx.error([*kp, "format"], "a .parquet file cannot be read as csv.")
        try:
            columns = _read_columns(path, fmt)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a spec problem here
            raise ctx.error([*kp, "path"], f"cannot read {rel!r} as {fmt}: {exc}") from None
        dtypes = item.get("dtypes", {})
        ctx.keys(dtypes, set(columns), [*kp, "dtypes"])
        for col, dt in dtypes.items():
            if dt not in _DTYPES:
                raise ctx.error([*kp, "dtypes", col], f"dtype {dt!r} is not supported; choose one of {', '.join(_DTYPES)}.")
        available = list(columns)
        derived = []
        for j, d in enumerate(item.get("derive", [])):
            dkp: list[str | int] = [*kp, "derive", j]
            ctx.keys(d, _DERIVE_KEYS, dkp, required=("name", "expr"))
            dname, expr = ctx.string(d, "name", dkp), ctx.string(d, "expr", dkp)
            try:
                used = check_expression(expr)
            except SpecError as exc:
                raise ctx.error([*dkp, "expr"], str(exc)) from None
            _require(used, available, ctx, [*dkp, "expr"], expr)
            if dname in available:
                raise ctx.error([*dkp, "name"], f"derived column {dname!r} already exists in {rel}; choose a new name.")
            available.append(dname)
            derived.append(Derived(dname, expr))
        query = item.get("query")
        if query is not None:
            query = ctx.string(item, "query", kp)
            try:
                used = check_expression(query)
            except SpecError as exc:
                raise ctx.error([*kp, "query"], str(exc)) from None
            _require(used, available, ctx, [*kp, "query"], query)
        sources.append(
            DataSource(
                name=name,
                path=path,
                relative_path=rel,
                description=str(item.get("description", "")),
                query=query,
                derive=tuple(derived),
                dtypes=MappingProxyType({k: _DTYPES[v] for k, v in dtypes.items()}),
                columns=tuple(available),
            )
        )
    return tuple(sources)


def _require(used: Sequence[str], available: Sequence[str], ctx: _Context, keypath: list[str | int], expr: str) -> None:
    for col in used:
        if col not in available:
            close = difflib.get_close_matches(col, list(available), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ctx.error(keypath, f"expression {expr!r} names {col!r}, which is not a column of the data.{hint}")


def _parse_query(item: Mapping[str, Any], ctx: _Context, kp: list[str | int], columns: Sequence[str]) -> str | None:
    query = item.get("query")
    if query is None:
        return None
    query = ctx.string(item, "query", kp)
    if not query.strip():
        return None  # an empty query means all rows (lets a robustness check drop the main filter)
    try:
        used = check_expression(query)
    except SpecError as exc:
        raise ctx.error([*kp, "query"], str(exc)) from None
    _require(used, columns, ctx, [*kp, "query"], query)
    return query


def _parse_evaluations(
    raw: Any, ctx: _Context, sources: tuple[DataSource, ...], library: IndicatorLibrary
) -> tuple[Evaluation, ...]:
    if raw is None:
        raise ctx.error([], "missing required [[evaluations]] (at least one evaluation).")
    if not isinstance(raw, list):
        raise ctx.error(["evaluations"], "write each evaluation as an [[evaluations]] table.")
    by_name = {s.name: s for s in sources}
    evaluations = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        kp: list[str | int] = ["evaluations", i]
        ctx.keys(item, _EVALUATION_KEYS, kp, required=("name", "outcome", "design"))
        name = ctx.string(item, "name", kp)
        if name in names:
            raise ctx.error([*kp, "name"], f"evaluation name {name!r} is used twice.")
        names.add(name)
        data_name = item.get("data", sources[0].name if len(sources) == 1 else None)
        if data_name is None:
            raise ctx.error(kp, f"missing key 'data': name one of the data sources ({', '.join(by_name)}).")
        if data_name not in by_name:
            raise ctx.error([*kp, "data"], f"unknown data source {data_name!r}; defined: {', '.join(by_name)}.")
        source = by_name[data_name]
        outcome = ctx.string(item, "outcome", kp)
        if outcome not in source.columns:
            close = difflib.get_close_matches(outcome, list(source.columns), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ctx.error([*kp, "outcome"], f"outcome {outcome!r} is not a column of data source {data_name!r}.{hint}")
        indicator = item.get("indicator")
        if indicator is not None:
            indicator = ctx.string(item, "indicator", kp)
            if indicator not in library:
                raise ctx.error([*kp, "indicator"], library.unknown_message(indicator))
        elif outcome in library:
            indicator = outcome
        design = ctx.string(item, "design", kp)
        try:
            func = resolve_design(design)
        except SpecError as exc:
            raise ctx.error([*kp, "design"], str(exc)) from None
        options = item.get("options", {})
        ctx.keys(options, set(options) if isinstance(options, Mapping) else set(), [*kp, "options"])
        _check_options(func, {k: v for k, v in options.items()}, ctx, [*kp, "options"])
        _check_option_columns(options, source.columns, data_name, ctx, [*kp, "options"])
        query = _parse_query(item, ctx, kp, source.columns)
        checks = []
        for j, check in enumerate(item.get("robustness", [])):
            ckp: list[str | int] = [*kp, "robustness", j]
            ctx.keys(check, _CHECK_KEYS, ckp, required=("name",))
            cdesign = ctx.string(check, "design", ckp, default=design)
            try:
                cfunc = resolve_design(cdesign)
            except SpecError as exc:
                raise ctx.error([*ckp, "design"], str(exc)) from None
            coptions = check.get("options", {})
            ctx.keys(coptions, set(coptions) if isinstance(coptions, Mapping) else set(), [*ckp, "options"])
            # A check inherits the main options when it keeps the design (e.g. only vcov changes).
            merged = {**options, **coptions} if cdesign == design else dict(coptions)
            _check_options(cfunc, merged, ctx, [*ckp, "options"])
            cdata = check.get("data")
            if cdata is not None and cdata not in by_name:
                raise ctx.error([*ckp, "data"], f"unknown data source {cdata!r}; defined: {', '.join(by_name)}.")
            csource = by_name[cdata or data_name]
            _check_option_columns(merged, csource.columns, csource.name, ctx, [*ckp, "options"])
            coutcome = check.get("outcome")
            if coutcome is not None and coutcome not in csource.columns:
                raise ctx.error([*ckp, "outcome"], f"outcome {coutcome!r} is not a column of data source {csource.name!r}.")
            cquery = _parse_query(check, ctx, ckp, csource.columns) if "query" in check else query
            checks.append(
                Check(
                    name=ctx.string(check, "name", ckp),
                    design=cdesign,
                    options=MappingProxyType(merged),
                    then=_parse_steps(check.get("then"), ctx, [*ckp, "then"]),
                    query=cquery,
                    outcome=coutcome,
                    data=cdata,
                )
            )
        evaluations.append(
            Evaluation(
                name=name,
                question=str(item.get("question", "")),
                outcome=outcome,
                indicator=indicator,
                data=data_name,
                design=design,
                options=MappingProxyType(dict(options)),
                then=_parse_steps(item.get("then"), ctx, [*kp, "then"]),
                robustness=tuple(checks),
                query=query,
            )
        )
    return tuple(evaluations)


def _parse_programme(raw: Any, ctx: _Context, path: Path) -> Programme:
    if raw is None:
        raise ctx.error([], "missing required [programme] table (id, name, ...).")
    ctx.keys(raw, _PROGRAMME_KEYS, ["programme"], required=("id", "name"))
    kp: list[str | int] = ["programme"]
    pid = ctx.string(raw, "id", kp)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", pid):
        raise ctx.error([*kp, "id"], f"id {pid!r} names the report folder: use letters, digits, '_', '-' and '.'.")
    regions = ctx.strings(raw, "regions", kp) + ctx.strings(raw, "region", kp)
    return Programme(
        id=pid,
        name=ctx.string(raw, "name", kp),
        regions=regions,
        period=ctx.string(raw, "period", kp, default=""),
        budget=ctx.string(raw, "budget", kp, default=""),
        owner=ctx.string(raw, "owner", kp, default=""),
        questions=ctx.strings(raw, "questions", kp),
        summary=ctx.string(raw, "summary", kp, default=""),
        limitations=ctx.strings(raw, "limitations", kp),
    )


def _parse_libraries(raw: Any, ctx: _Context, base: Path) -> tuple[RegionLibrary, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.error(["indicator_libraries"], "expected a list of paths or {path = ..., prefix = ...} tables.")
    libs = []
    for i, item in enumerate(raw):
        kp: list[str | int] = ["indicator_libraries", i]
        if isinstance(item, str):
            item = {"path": item}
        ctx.keys(item, _LIBRARY_KEYS, kp, required=("path",))
        rel = ctx.string(item, "path", kp)
        path = (base / rel).resolve()
        if not path.is_file():
            raise ctx.error([*kp, "path"], f"indicator library {rel!r} not found (looked for {path}); paths are relative to the spec.")
        prefix = item.get("prefix")
        libs.append(RegionLibrary(path, prefix))
    return tuple(libs)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a programme spec.

    Checks keys (typos are reported with the closest valid key), required keys, indicator codes,
    data files and their columns, query and derive expressions, design names and their options.

    Raises
    ------
    SpecError
        With the file, the key path and, where it can be found, the line.
    """
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{path} is a folder; pass one spec file (or use `impact run` on the folder).")
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found.") from None
    text = raw_bytes.decode("utf-8", errors="replace")
    ctx = _Context(path, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    ctx.keys(raw, _TOP_KEYS, [])
    base = path.resolve().parent
    libraries = _parse_libraries(raw.get("indicator_libraries"), ctx, base)
    try:
        library = load_library(libraries)
    except SpecError as exc:
        raise ctx.error(["indicator_libraries"], str(exc)) from None
    programme = _parse_programme(raw.get("programme"), ctx, path)
    chain = _parse_chain(raw.get("effect_chain"), ctx, library)
    sources = _parse_data(raw.get("data"), ctx, base)
    evaluations = _parse_evaluations(raw.get("evaluations"), ctx, sources, library)
    from impact.monitoring.spec import parse_monitoring

    monitoring = parse_monitoring(raw.get("monitoring"), error=ctx.error, base=base, library=library,
                                  evaluations={e.name: e.indicator or (e.outcome if e.outcome in library else None) for e in evaluations})
    return Spec(
        path=path,
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        programme=programme,
        effect_chain=chain,
        data=sources,
        evaluations=evaluations,
        indicators=library,
        indicator_libraries=libraries,
        monitoring=monitoring,
    )
