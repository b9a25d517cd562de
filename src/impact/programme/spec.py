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

import collections.abc
import contextlib
import difflib
import hashlib
import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from impact.errors import SpecError
from impact.programme.indicators import LEVELS, IndicatorLibrary, RegionLibrary, load_library
from impact.programme.safety import check_expression, check_step, configured_roots, confine_path, is_regular_file, parse_toml

__all__ = [
    "ChainItem",
    "EffectChain",
    "Derived",
    "DataSource",
    "Step",
    "Check",
    "Evaluation",
    "ByRegion",
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
DESIGN_MODULES = ("did", "matching", "rct", "rd", "synth")
_DTYPES = {"str": "string", "string": "string", "int": "Int64", "float": "float64", "category": "category", "bool": "boolean"}

_TOP_KEYS = {"programme", "effect_chain", "data", "evaluations", "indicator_libraries", "monitoring"}
_PROGRAMME_KEYS = {
    "id", "name", "regions", "region", "period", "budget", "owner", "questions", "summary", "limitations",
    "intervention",
}
_CHAIN_ITEM_KEYS = {"text", "indicators", "measured"}
_DATA_KEYS = {"name", "path", "description", "query", "derive", "dtypes", "format", "select", "sql"}
_DERIVE_KEYS = {"name", "expr"}
_EVALUATION_KEYS = {
    "name", "question", "outcome", "indicator", "data", "design", "options", "then", "robustness", "query",
    "region", "intervention", "by_region",
}
_BY_REGION_KEYS = {"column", "design", "options", "then"}
_CHECK_KEYS = {"name", "design", "options", "then", "query", "outcome", "data"}
_LIBRARY_KEYS = {"path", "prefix"}
#: Design options that name columns of the data, by the package's naming convention (API.md). Checked at
#: validation so that a typo is reported with its line before anything runs; other options are left
#: to the estimator.
COLUMN_OPTIONS = (
    "outcome", "treatment", "unit", "time", "cohort", "covariates", "cluster", "clusters", "blocks", "weights",
    "assignment", "predictors", "received", "observed", "exact", "dose",
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
    #: the file's columns to read (empty: all); Parquet reads only these from disk
    select: tuple[str, ...] = ()
    #: the folders the file was confined to (the spec's folder and the data roots); checked again on reading
    roots: tuple[Path, ...] = ()
    #: a DuckDB SELECT over the file as table ``data`` (instead of select/query): only its result reaches pandas
    sql: str | None = None

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
    region: str | None = None
    intervention: str | None = None
    by_region: ByRegion | None = None


@dataclass(frozen=True)
class ByRegion:
    """Region-level estimates: the evaluation re-run once per treated region (that region's units and
    the never-treated comparison units), each labelled by ``column``; optionally with another design
    (e.g. synthetic DiD, whose placebo inference holds with one treated region)."""

    column: str
    design: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    then: tuple[Step, ...] = ()


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
    intervention: str = ""


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
            "intervention": p.intervention,
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
                header = None  # an index after a key counts inline items of that key, not [[tables]]
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
        self.problems: list[str] = []

    @contextlib.contextmanager
    def collect(self) -> Iterator[None]:
        """Record a SpecError raised inside the block and carry on, so validation reports every error."""
        try:
            yield
        except SpecError as exc:
            message = str(exc)
            if message not in self.problems:
                self.problems.append(message)

    def finish(self) -> None:
        """Raise one SpecError listing every recorded problem (its ``problems`` attribute holds them)."""
        if not self.problems:
            return
        def line(problem: str) -> int:
            found = re.search(r", line (\d+)", problem)
            return int(found.group(1)) if found else 0

        self.problems.sort(key=line)  # in the order of the file
        if len(self.problems) == 1:
            error = SpecError(self.problems[0])
        else:
            listed = "\n".join(f"  - {p}" for p in self.problems)
            error = SpecError(f"{self.path}: {len(self.problems)} errors in the spec:\n{listed}")
        error.problems = tuple(self.problems)  # type: ignore[attr-defined]
        raise error

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
# Design dispatch
# ---------------------------------------------------------------------------------------------
#: Estimators that return an intermediate object rather than a result; a spec reaches the result
#: through an allowed ``then`` step (``matching.match`` -> ``effect``).
_INTERMEDIATE_RETURNS = frozenset({"Matching"})


def _public_designs(module: Any) -> list[str]:
    """Names in a design module's ``__all__`` that are estimators: functions whose first argument is
    the data frame (``df``) and that return a result (annotated ``...Result``, or an intermediate
    such as ``Matching``; unannotated functions are left to the runner's check of what they return).
    Result classes, ``rct.power``, helpers such as ``did.honest`` and tools annotated to return
    something else (``rct.assign``, ``rd.rdplot``, ``rd.balance``) are not."""
    out = []
    for name in getattr(module, "__all__", ()):
        func = getattr(module, name, None)
        if name.startswith("_") or not inspect.isfunction(func):
            continue
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):
            continue
        first = next(iter(signature.parameters), None)
        returns = signature.return_annotation
        if returns is inspect.Signature.empty:  # unannotated: the runner checks what comes back
            returns = "Result"
        returns = returns if isinstance(returns, str) else getattr(returns, "__name__", "")
        if first == "df" and (returns.endswith("Result") or returns in _INTERMEDIATE_RETURNS):
            out.append(name)
    return out


def resolve_design(design: str) -> Callable[..., Any]:
    """The impact estimator named by ``design`` (``"did.twfe"`` -> ``impact.did.twfe``).

    Only public estimators can be named: ``module.function`` where ``module`` is one of
    :data:`DESIGN_MODULES` and ``function`` is in that module's ``__all__`` and takes the data frame
    first. Private modules (``did._staggered.fe_regression``), sub-modules (``rct.power.power``) and
    helpers that are not estimators are refused. New estimators need no edit here: adding them to
    ``__all__`` is enough.
    """
    if not isinstance(design, str) or len(design) > 100:
        raise SpecError(f"design must be a text 'module.function', e.g. 'did.twfe'; got {design!r:.60}.")
    name = design.removeprefix("impact.")
    module_name, _, function = name.rpartition(".")
    if not module_name or not function:
        raise SpecError(f"design {design!r} must be 'module.function', e.g. 'did.twfe' or 'rct.difference_in_means'.")
    if module_name not in DESIGN_MODULES:
        top = module_name.split(".")[0]
        if top in DESIGN_MODULES:
            raise SpecError(
                f"design {design!r} names a function inside a sub-module; name a public estimator as "
                f"'{top}.function' (one of: {', '.join(f'{top}.{n}' for n in _public_designs(importlib.import_module(f'impact.{top}')))})."
            )
        raise SpecError(f"design {design!r}: unknown module {top!r}; choose one of {', '.join(DESIGN_MODULES)}.")
    try:
        module = importlib.import_module(f"impact.{module_name}")
    except ImportError:
        raise SpecError(f"design {design!r}: module impact.{module_name} is not available in this version.") from None
    available = _public_designs(module)
    if function not in available:
        close = difflib.get_close_matches(function, available, n=1)
        hint = f" Did you mean '{module_name}.{close[0]}'?" if close else ""
        listed = ", ".join(f"{module_name}.{n}" for n in available) or "none yet"
        raise SpecError(f"unknown design {design!r}.{hint} Designs in impact.{module_name}: {listed}.")
    return getattr(module, function)


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
    """Option names against the design's signature, and values against its type annotations."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
    for key, value in options.items():
        with ctx.collect():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else f" It accepts: {', '.join(allowed)}."
                raise ctx.error([*keypath, key], f"{func.__module__}.{func.__name__} has no option {key!r}.{hint}")
            problem = option_value_problem(func, key, value)
            if problem:
                raise ctx.error([*keypath, key], f"{_design_name(func)}: {key} = {_show(value)} {problem}")


#: Allowed values of options the estimators annotate as plain ``str`` but check against a shared
#: table at run time (the table is the one the estimator uses, so the two cannot drift apart).
def _shared_option_values() -> dict[str, tuple[Any, ...]]:
    from impact.inference.vcov import VCOV_KINDS

    return {"vcov": VCOV_KINDS}


#: Upper bounds of options that set how much work an estimator does: a spec must not be able to ask
#: for a run that never ends (a denial of service on a shared machine). Generous for real use.
OPTION_LIMITS: dict[str, int] = {
    "n_permutations": 1_000_000, "n_bootstrap": 100_000, "bootstrap": 100_000, "n_simulations": 100_000,
    "max_iter": 1_000_000, "ratio": 100, "n_variance_matches": 100,
}


def _design_name(func: Callable[..., Any]) -> str:
    return f"{func.__module__.removeprefix('impact.').split('.')[0]}.{func.__name__}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _annotation(func: Callable[..., Any], name: str) -> Any:
    """The evaluated type annotation of parameter ``name`` (None when it cannot be evaluated)."""
    try:
        annotation = inspect.signature(func).parameters[name].annotation
    except (KeyError, TypeError, ValueError):
        return None
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        try:
            # our own package's annotation text, evaluated in the estimator's module (never spec text)
            annotation = eval(annotation, dict(getattr(func, "__globals__", {})))  # noqa: S307
        except Exception:  # noqa: BLE001 - names imported only for type checkers
            return None
    return annotation


def _literal_values(annotation: Any) -> list[Any]:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    out: list[Any] = []
    if get_origin(annotation) in (Union, UnionType):
        for arg in get_args(annotation):
            out.extend(_literal_values(arg))
    return out


def _accepts_value(annotation: Any, value: Any) -> bool | None:
    """Whether a TOML value fits ``annotation``: True, False, or None when the type is not understood."""
    origin = get_origin(annotation)
    if annotation is Any:
        return True
    if annotation is None or annotation is type(None):
        return False  # TOML has no null
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in get_args(annotation))
    if origin in (Union, UnionType):
        verdicts = [_accepts_value(arg, value) for arg in get_args(annotation)]
        if any(v is True for v in verdicts):
            return True
        return None if any(v is None for v in verdicts) else False
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, collections.abc.Sequence) or annotation in (list, tuple):
        if isinstance(value, str):
            return False
        if not isinstance(value, list):
            return False
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if len(args) == 1:
            verdicts = [_accepts_value(args[0], v) for v in value]
            if any(v is False for v in verdicts):
                return False
            return True if all(verdicts) else None
        return True
    if origin in (dict, Mapping, collections.abc.Mapping) or annotation is dict:
        return isinstance(value, dict)
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        return False
    return None


def option_value_problem(func: Callable[..., Any], name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for option ``name`` of ``func`` (None if it is, or cannot be told).

    Allowed values come from the estimator's ``Literal`` annotations, or from the shared table for
    options annotated as plain text; types from the annotation."""
    annotation = _annotation(func, name)
    if annotation is None:
        return None
    literals = _literal_values(annotation)
    shared = _shared_option_values().get(name)
    if shared and not literals and annotation is str:
        literals = list(shared)
    if literals and isinstance(value, str) and value not in literals:
        allowed = [v for v in literals if isinstance(v, str)]
        close = difflib.get_close_matches(value, allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"is not allowed; choose one of {', '.join(repr(v) for v in literals)}.{hint}"
    limit = OPTION_LIMITS.get(name)
    if limit is not None and isinstance(value, int | float) and not isinstance(value, bool) and value > limit:
        return f"is more than impact allows in a spec ({limit:,}); use a smaller number."
    verdict = _accepts_value(annotation, value)
    if verdict is False:
        expected = " or ".join(sorted({_describe(a) for a in (get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)) if a is not type(None)}))
        return f"has the wrong type ({type(value).__name__}); expected {expected}."
    return None


def _describe(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(annotation))
    if origin is not None:
        return {list: "a list", tuple: "a list", dict: "a table"}.get(origin, "a list" if "Sequence" in str(origin) else str(origin))
    return {bool: "true/false", int: "a whole number", float: "a number", str: "a text"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


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
            with ctx.collect():
                raise ctx.error(["effect_chain", level], "expected a list of {text = ..., indicators = [...]} items.")
            continue
        parsed = []
        for i, item in enumerate(items):
            with ctx.collect():
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
    """``then`` steps: only the allow-listed result methods, with their typed arguments."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.error(keypath, "expected a list of {method = ..., ...} tables.")
    steps = []
    for i, step in enumerate(raw):
        with ctx.collect():
            if not isinstance(step, Mapping) or not isinstance(step.get("method"), str):
                raise ctx.error([*keypath, i], "each step needs method = \"name\" (a method of the result), plus its options.")
            kwargs = {k: v for k, v in step.items() if k != "method"}
            try:
                check_step(step["method"], kwargs)
            except SpecError as exc:
                raise ctx.error([*keypath, i], str(exc)) from None
            steps.append(Step(step["method"], MappingProxyType(kwargs)))
    return tuple(steps)


def _confined_file(rel: str, what: str, ctx: _Context, keypath: list[str | int], base: Path, roots: tuple[Path, ...]) -> Path:
    """The resolved path of a file the spec names, inside the spec's folder or a data root."""
    try:
        path = confine_path(rel, base, roots)
    except SpecError as exc:
        raise ctx.error(keypath, str(exc)) from None
    if not is_regular_file(path):
        raise ctx.error(keypath, f"{what} {rel!r} not found (looked for {path}); paths are relative to the spec file.")
    return path


def _check_source_expressions(item: Mapping[str, Any], ctx: _Context, kp: list[str | int]) -> None:
    """Check a data source's derive and query expressions against the allow-list alone (no columns):
    used when the source's file cannot be read, so a spec with a bad path and unsafe expressions is
    refused with both problems at once rather than in two rounds."""
    derive = item.get("derive", [])
    expressions = [([*kp, "derive", j, "expr"], d.get("expr")) for j, d in enumerate(derive) if isinstance(d, Mapping)] \
        if isinstance(derive, list) else []
    expressions.append(([*kp, "query"], item.get("query")))
    for keypath, expr in expressions:
        if isinstance(expr, str):
            with ctx.collect():
                try:
                    check_expression(expr)
                except SpecError as exc:
                    raise ctx.error(keypath, str(exc)) from None


def _parse_source(item: Any, i: int, ctx: _Context, base: Path, roots: tuple[Path, ...]) -> DataSource:
    kp: list[str | int] = ["data", i]
    ctx.keys(item, _DATA_KEYS, kp, required=("name", "path"))
    name = ctx.string(item, "name", kp)
    rel = ctx.string(item, "path", kp)
    try:
        path = _confined_file(rel, "data file", ctx, [*kp, "path"], base, roots)
    except SpecError:
        _check_source_expressions(item, ctx, kp)  # unsafe expressions are reported in this same pass
        raise
    fmt = item.get("format") or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    if fmt not in ("csv", "parquet"):
        raise ctx.error([*kp, "format"], f"format {fmt!r} is not supported; use 'csv' or 'parquet'.")
    if fmt == "csv" and path.suffix.lower() in (".parquet", ".pq"):
        raise ctx.error([*kp, "format"], "a .parquet file cannot be read as csv.")
    try:
        columns = _read_columns(path, fmt)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a spec problem here
        # The reader's message can quote the file; name only the kind of failure.
        raise ctx.error([*kp, "path"], f"cannot read {rel!r} as {fmt} ({type(exc).__name__}); check that it is a "
                        f"{'Parquet file' if fmt == 'parquet' else 'UTF-8 comma-separated file with a header row'}.") from None
    sql = None
    if "sql" in item:
        with ctx.collect():
            sql, columns = _parse_sql(item, ctx, kp, path, fmt, rel, columns)
    select: tuple[str, ...] = ()
    if "select" in item:
        with ctx.collect():
            chosen = item["select"]
            if not (isinstance(chosen, list) and chosen and all(isinstance(c, str) for c in chosen)):
                raise ctx.error([*kp, "select"], "expected a non-empty list of column names to read.")
            unknown = [c for c in chosen if c not in columns]
            if unknown:
                raise ctx.error([*kp, "select"], f"column(s) {', '.join(map(repr, unknown))} are not in {rel}.")
            select = tuple(dict.fromkeys(chosen))
            columns = select
    dtypes = item.get("dtypes", {})
    with ctx.collect():
        ctx.keys(dtypes, set(columns), [*kp, "dtypes"])
    dtypes = {k: v for k, v in dtypes.items() if k in columns} if isinstance(dtypes, Mapping) else {}
    for col, dt in list(dtypes.items()):
        with ctx.collect():
            if not isinstance(dt, str) or dt not in _DTYPES:
                del dtypes[col]
                raise ctx.error([*kp, "dtypes", col], f"dtype {_show(dt)} is not supported; choose one of {', '.join(_DTYPES)}.")
    available = list(columns)
    derived = []
    derive = item.get("derive", [])
    if not isinstance(derive, list):
        raise ctx.error([*kp, "derive"], "expected a list of {name = ..., expr = ...} tables.")
    for j, d in enumerate(derive):
        with ctx.collect():
            dkp: list[str | int] = [*kp, "derive", j]
            ctx.keys(d, _DERIVE_KEYS, dkp, required=("name", "expr"))
            dname, expr = ctx.string(d, "name", dkp), ctx.string(d, "expr", dkp)
            try:
                used = check_expression(expr)
            except SpecError as exc:
                raise ctx.error([*dkp, "expr"], str(exc)) from None
            if dname in available:
                raise ctx.error([*dkp, "name"], f"derived column {dname!r} already exists in {rel}; choose a new name.")
            available.append(dname)  # known even if its expression names a missing column: no cascade
            _require(used, available[:-1], ctx, [*dkp, "expr"], expr)
            derived.append(Derived(dname, expr))
    query = item.get("query")
    if query is not None:
        with ctx.collect():
            query = None
            candidate = ctx.string(item, "query", kp)
            try:
                used = check_expression(candidate)
            except SpecError as exc:
                raise ctx.error([*kp, "query"], str(exc)) from None
            _require(used, available, ctx, [*kp, "query"], candidate)
            query = candidate
    return DataSource(
        name=name,
        path=path,
        relative_path=rel,
        description=str(item.get("description", "")),
        query=query,
        derive=tuple(derived),
        dtypes=MappingProxyType({k: _DTYPES[v] for k, v in dtypes.items()}),
        columns=tuple(available),
        select=select,
        roots=(base.resolve(), *roots),
        sql=sql,
    )


def _parse_sql(item: Mapping[str, Any], ctx: _Context, kp: list[str | int], path: Path, fmt: str, rel: str,
               columns: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """A data source's ``sql``: checked (:func:`impact.programme.safety.check_sql`) and bound in the
    sandboxed connection to learn its result columns, without running it."""
    from impact.programme.safety import check_sql, sql_connection

    clash = [k for k in ("select", "query") if k in item]
    if clash:
        raise ctx.error([*kp, "sql"], f"sql replaces {' and '.join(clash)}: select the columns and filter the rows "
                        "in the SQL query (or drop sql).")
    try:
        sql = check_sql(item["sql"])
    except SpecError as exc:
        raise ctx.error([*kp, "sql"], str(exc)) from None
    try:
        result_columns = tuple(str(c) for c in sql_connection(path, fmt).sql(sql).columns)
    except Exception as exc:  # noqa: BLE001 - DuckDB's message can quote the file: name only the kind
        raise ctx.error([*kp, "sql"], f"the query does not run on {rel!r} as the table 'data' ({type(exc).__name__}); "
                        f"check the table name and its columns ({', '.join(columns[:20])}).") from None
    return sql, result_columns


def _parse_data(raw: Any, ctx: _Context, base: Path, roots: tuple[Path, ...]) -> tuple[tuple[DataSource, ...], set[str]]:
    """The data sources that validated, and the names of those that did not (so that evaluations
    using them are not reported again for every column)."""
    if raw is None:
        raise ctx.error([], "missing required [[data]] (at least one data source).")
    if not isinstance(raw, list):
        raise ctx.error(["data"], "write each data source as a [[data]] table.")
    sources = []
    names: set[str] = set()
    broken: set[str] = set()
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, Mapping) else None
        with ctx.collect():
            if isinstance(name, str) and name in names:
                raise ctx.error(["data", i, "name"], f"data source name {name!r} is used twice.")
        before = len(ctx.problems)
        with ctx.collect():
            source = _parse_source(item, i, ctx, base, roots)
            if source.name not in names:
                sources.append(source)
        if len(ctx.problems) > before and isinstance(name, str) and name not in {s.name for s in sources}:
            broken.add(name)
        if isinstance(name, str):
            names.add(name)
    return tuple(sources), broken


def _require(used: Sequence[str], available: Sequence[str], ctx: _Context, keypath: list[str | int], expr: str) -> None:
    for col in used:
        if col not in available:
            close = difflib.get_close_matches(col, list(available), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ctx.error(keypath, f"expression {_show(expr)} names {col!r}, which is not a column of the data.{hint}")


def _parse_query(item: Mapping[str, Any], ctx: _Context, kp: list[str | int], columns: Sequence[str] | None) -> str | None:
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
    if columns is not None:
        _require(used, columns, ctx, [*kp, "query"], query)
    return query


def _resolve(design: str, ctx: _Context, keypath: list[str | int]) -> Callable[..., Any]:
    try:
        return resolve_design(design)
    except SpecError as exc:
        raise ctx.error(keypath, str(exc)) from None


def _options(item: Mapping[str, Any], ctx: _Context, keypath: list[str | int]) -> dict[str, Any]:
    options = item.get("options", {})
    if not isinstance(options, Mapping):
        raise ctx.error(keypath, f"expected a table of options, got {type(options).__name__}.")
    return dict(options)


def _parse_check(
    check: Any, ctx: _Context, ckp: list[str | int], *, design: str, options: Mapping[str, Any], data_name: str,
    query: str | None, by_name: Mapping[str, DataSource], broken: set[str],
) -> Check:
    ctx.keys(check, _CHECK_KEYS, ckp, required=("name",))
    name = ctx.string(check, "name", ckp)
    cdesign = ctx.string(check, "design", ckp, default=design)
    coptions = _options(check, ctx, [*ckp, "options"])
    # A check inherits the main options when it keeps the design (e.g. only vcov changes).
    merged = {**options, **coptions} if cdesign == design else dict(coptions)
    with ctx.collect():
        _check_options(_resolve(cdesign, ctx, [*ckp, "design"]), merged, ctx, [*ckp, "options"])
    cdata = check.get("data")
    with ctx.collect():
        if cdata is not None and cdata not in by_name and cdata not in broken:
            raise ctx.error([*ckp, "data"], f"unknown data source {cdata!r}; defined: {', '.join(by_name)}.")
    csource = by_name.get(cdata or data_name)
    coutcome = check.get("outcome")
    with ctx.collect():
        if coutcome is not None and not isinstance(coutcome, str):
            raise ctx.error([*ckp, "outcome"], f"expected a column name, got {_show(coutcome)}.")
    if csource is not None:
        with ctx.collect():
            _check_option_columns(merged, csource.columns, csource.name, ctx, [*ckp, "options"])
        with ctx.collect():
            if isinstance(coutcome, str) and coutcome not in csource.columns:
                raise ctx.error([*ckp, "outcome"], f"outcome {coutcome!r} is not a column of data source {csource.name!r}.")
    cquery = query
    if "query" in check:
        cquery = None
        with ctx.collect():
            cquery = _parse_query(check, ctx, ckp, csource.columns if csource is not None else None)
    return Check(
        name=name,
        design=cdesign,
        options=MappingProxyType(merged),
        then=_parse_steps(check.get("then"), ctx, [*ckp, "then"]),
        query=cquery,
        outcome=coutcome,
        data=cdata,
    )


def _parse_evaluation(
    item: Any, i: int, ctx: _Context, by_name: Mapping[str, DataSource], broken: set[str], library: IndicatorLibrary,
    names: set[str],
) -> Evaluation:
    kp: list[str | int] = ["evaluations", i]
    ctx.keys(item, _EVALUATION_KEYS, kp, required=("name", "outcome", "design"))
    name = ctx.string(item, "name", kp)
    with ctx.collect():
        if name in names:
            raise ctx.error([*kp, "name"], f"evaluation name {name!r} is used twice.")
    names.add(name)
    only = list(dict.fromkeys([*by_name, *broken]))
    data_name = item.get("data", only[0] if len(only) == 1 else None)
    if data_name is None:
        raise ctx.error(kp, f"missing key 'data': name one of the data sources ({', '.join(only)}).")
    if data_name not in by_name and data_name not in broken:
        raise ctx.error([*kp, "data"], f"unknown data source {data_name!r}; defined: {', '.join(only)}.")
    source = by_name.get(data_name)  # None when the source itself failed (already reported)
    outcome = ctx.string(item, "outcome", kp)
    with ctx.collect():
        if source is not None and outcome not in source.columns:
            close = difflib.get_close_matches(outcome, list(source.columns), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ctx.error([*kp, "outcome"], f"outcome {outcome!r} is not a column of data source {data_name!r}.{hint}")
    indicator = item.get("indicator")
    if indicator is not None:
        with ctx.collect():
            indicator = ctx.string(item, "indicator", kp)
            if indicator not in library:
                raise ctx.error([*kp, "indicator"], library.unknown_message(indicator))
    elif outcome in library:
        indicator = outcome
    design = ctx.string(item, "design", kp)
    options = _options(item, ctx, [*kp, "options"])
    with ctx.collect():
        _check_options(_resolve(design, ctx, [*kp, "design"]), options, ctx, [*kp, "options"])
    if source is not None:
        with ctx.collect():
            _check_option_columns(options, source.columns, data_name, ctx, [*kp, "options"])
    query = None
    with ctx.collect():
        query = _parse_query(item, ctx, kp, source.columns if source is not None else None)
    checks = []
    robustness = item.get("robustness", [])
    if not isinstance(robustness, list):
        raise ctx.error([*kp, "robustness"], "write each robustness check as an [[evaluations.robustness]] table.")
    for j, check in enumerate(robustness):
        with ctx.collect():
            checks.append(_parse_check(check, ctx, [*kp, "robustness", j], design=design, options=options,
                                       data_name=data_name, query=query, by_name=by_name, broken=broken))
    return Evaluation(
        name=name,
        question=str(item.get("question", "")),
        outcome=outcome,
        indicator=indicator,
        data=data_name,
        design=design,
        options=MappingProxyType(options),
        then=_parse_steps(item.get("then"), ctx, [*kp, "then"]),
        robustness=tuple(checks),
        query=query,
        region=ctx.string(item, "region", kp) if "region" in item else None,
        intervention=_parse_intervention(item, ctx, kp),
        by_region=None if source is None else _parse_by_region(
            item.get("by_region"), ctx, [*kp, "by_region"], source.columns, design, options),
    )


def _parse_evaluations(
    raw: Any, ctx: _Context, sources: tuple[DataSource, ...], broken: set[str], library: IndicatorLibrary
) -> tuple[Evaluation, ...]:
    if raw is None:
        raise ctx.error([], "missing required [[evaluations]] (at least one evaluation).")
    if not isinstance(raw, list):
        raise ctx.error(["evaluations"], "write each evaluation as an [[evaluations]] table.")
    by_name = {s.name: s for s in sources}
    evaluations = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        with ctx.collect():
            evaluations.append(_parse_evaluation(item, i, ctx, by_name, broken, library, names))
    return tuple(evaluations)


def _parse_intervention(item: Mapping[str, Any], ctx: _Context, kp: list[str | int]) -> str | None:
    from impact.programme.interventions import check_intervention

    if "intervention" not in item:
        return None
    code = ctx.string(item, "intervention", kp)
    try:
        check_intervention(code)
    except SpecError as exc:
        raise ctx.error([*kp, "intervention"], str(exc)) from None
    return code


def _parse_by_region(
    raw: Any, ctx: _Context, kp: list[str | int], columns: Sequence[str], design: str, options: Mapping[str, Any]
) -> ByRegion | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"column": raw}
    ctx.keys(raw, _BY_REGION_KEYS, kp, required=("column",))
    column = ctx.string(raw, "column", kp)
    if column not in columns:
        raise ctx.error([*kp, "column"], f"by_region column {column!r} is not a column of the data; it must name each unit's region.")
    rdesign = ctx.string(raw, "design", kp, default=design)
    try:
        func = resolve_design(rdesign)
    except SpecError as exc:
        raise ctx.error([*kp, "design"], str(exc)) from None
    roptions = raw.get("options", {})
    ctx.keys(roptions, set(roptions) if isinstance(roptions, Mapping) else set(), [*kp, "options"])
    merged = {**options, **roptions} if rdesign == design else dict(roptions)
    _check_options(func, merged, ctx, [*kp, "options"])
    _check_option_columns(merged, columns, "the evaluation's data", ctx, [*kp, "options"])
    return ByRegion(column=column, design=None if rdesign == design else rdesign, options=MappingProxyType(merged),
                    then=_parse_steps(raw.get("then"), ctx, [*kp, "then"]))


def _parse_programme(raw: Any, ctx: _Context, path: Path) -> Programme:
    if raw is None:
        raise ctx.error([], "missing required [programme] table (id, name, ...).")
    ctx.keys(raw, _PROGRAMME_KEYS, ["programme"], required=("id", "name"))
    kp: list[str | int] = ["programme"]
    pid = ctx.string(raw, "id", kp)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", pid) or ".." in pid:
        raise ctx.error([*kp, "id"], f"id {pid!r} names the report folder: use letters, digits, '_', '-' and '.'.")
    regions = ctx.strings(raw, "regions", kp) + ctx.strings(raw, "region", kp)
    intervention = _parse_intervention(raw, ctx, kp) or ""
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
        intervention=intervention,
    )


def _parse_libraries(raw: Any, ctx: _Context, base: Path, roots: tuple[Path, ...]) -> tuple[RegionLibrary, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.error(["indicator_libraries"], "expected a list of paths or {path = ..., prefix = ...} tables.")
    libs = []
    for i, item in enumerate(raw):
        with ctx.collect():
            kp: list[str | int] = ["indicator_libraries", i]
            if isinstance(item, str):
                item = {"path": item}
            ctx.keys(item, _LIBRARY_KEYS, kp, required=("path",))
            rel = ctx.string(item, "path", kp)
            path = _confined_file(rel, "indicator library", ctx, [*kp, "path"], base, roots)
            prefix = item.get("prefix")
            libs.append(RegionLibrary(path, prefix))
    return tuple(libs)


def load_spec(path: str | Path, *, data_roots: Iterable[str | Path] = ()) -> Spec:
    """Read and validate a programme spec, reporting every error it finds at once.

    Checks keys (typos are reported with the closest valid key), required keys, indicator codes,
    data files (confined to the spec's folder, ``data_roots`` and the project's configured roots)
    and their columns, query and derive expressions, design names, their option names and values,
    and the chained ``then`` methods against the allow-list of :mod:`impact.programme.safety`.

    Parameters
    ----------
    path
        The spec file.
    data_roots
        Further folders data files may be read from (``impact run --data-root``).

    Raises
    ------
    SpecError
        With the file, the key path and, where it can be found, the line; when there are several
        problems, one error lists them all (its ``problems`` attribute holds each message).
    """
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{path} is a folder; pass one spec file (or use `impact run` on the folder).")
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found.") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({type(exc).__name__}).") from None
    text = raw_bytes.decode("utf-8", errors="replace")
    ctx = _Context(path, text)
    raw = parse_toml(text, path)
    base = path.resolve().parent
    roots = tuple(dict.fromkeys([*(Path(r).resolve() for r in data_roots), *configured_roots(base)]))
    with ctx.collect():
        ctx.keys(raw, _TOP_KEYS, [])
    libraries: tuple[RegionLibrary, ...] = ()
    with ctx.collect():
        libraries = _parse_libraries(raw.get("indicator_libraries"), ctx, base, roots)
    try:
        library = load_library(libraries)
    except SpecError as exc:
        with ctx.collect():
            raise ctx.error(["indicator_libraries"], str(exc)) from None
        library = load_library(())
    programme = chain = None
    with ctx.collect():
        programme = _parse_programme(raw.get("programme"), ctx, path)
    with ctx.collect():
        chain = _parse_chain(raw.get("effect_chain"), ctx, library)
    sources: tuple[DataSource, ...] = ()
    broken: set[str] = set()
    with ctx.collect():
        sources, broken = _parse_data(raw.get("data"), ctx, base, roots)
    evaluations: tuple[Evaluation, ...] = ()
    with ctx.collect():
        evaluations = _parse_evaluations(raw.get("evaluations"), ctx, sources, broken, library)
    monitoring: tuple[Any, ...] = ()
    with ctx.collect():
        from impact.monitoring.spec import parse_monitoring

        monitoring = parse_monitoring(
            raw.get("monitoring"), error=ctx.error, base=base, library=library, confine=lambda rel: confine_path(rel, base, roots),
            evaluations={e.name: e.indicator or (e.outcome if e.outcome in library else None) for e in evaluations},
        )
    ctx.finish()
    assert programme is not None and chain is not None  # noqa: S101 - finish() raised otherwise
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
