"""Run a programme: spec -> data -> evaluations -> results -> report.

Data flows one way. Each data source is read once (its sample flow starts at the file: rows read,
rows removed by the source's ``query``), each evaluation calls its design generically (the function
named in the spec, then the chained methods; an object that is not a Result but has
``.effect(outcome=)`` gets that called), and a failure is recorded with its message instead of
stopping the run. The report and ``results.json`` are written from the recorded outcomes only:
reports never estimate.

Everything written is deterministic for a given spec, data, seed and package versions: no clock
times, no absolute paths, fixed figure metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import inspect
import json
import platform
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from impact.errors import DataError, EstimationError, ImpactError, SpecError
from impact.programme.reading import read_source
from impact.programme.safety import check_expression, check_step, confine_path, is_regular_file
from impact.programme.spec import Check, DataSource, Evaluation, Spec, Step, load_spec, resolve_design
from impact.results import FlowStep, Result, jsonable

__all__ = [
    "DEFAULT_SEED",
    "LoadedData",
    "Outcome",
    "ProgrammeRun",
    "load_source",
    "evaluate",
    "run_spec",
    "write_outputs",
    "package_versions",
    "count_tasks",
    "check_overwrite",
    "is_generated",
]

#: The seed used when none is given, so that resampling designs are reproducible by default.
DEFAULT_SEED = 20240917
_VERSIONED = ("impact", "numpy", "pandas", "scipy", "statsmodels", "linearmodels", "matplotlib", "seaborn", "jinja2", "click")


@dataclass(frozen=True)
class LoadedData:
    """A data source after reading, deriving and filtering, with its flow and file hash."""

    source: DataSource
    frame: pd.DataFrame | None
    flow: tuple[FlowStep, ...]
    sha256: str
    rows_read: int
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one evaluation (or robustness check) produced: a Result, or the error that stopped it."""

    name: str
    design: str
    outcome: str
    indicator: str | None
    options: Mapping[str, Any]
    result: Result | None = None
    error: str | None = None
    question: str = ""
    data: str = ""
    query: str | None = None
    then: tuple[Step, ...] = ()
    robustness: tuple[Outcome, ...] = ()
    captured_warnings: tuple[str, ...] = ()
    trends: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    variables: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    region: str | None = None
    intervention: str | None = None
    region_estimates: tuple[Outcome, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record for results.json."""
        out = {
            "name": self.name,
            "question": self.question,
            "indicator": self.indicator,
            "outcome": self.outcome,
            "data": self.data,
            "query": self.query,
            "design": self.design,
            "options": jsonable(dict(self.options)),
            "then": [{"method": s.method, **jsonable(dict(s.kwargs))} for s in self.then],
            "status": "ok" if self.ok else "failed",
            "error": self.error,
            "result": self.result.to_dict() if self.result is not None else None,
            "other_warnings": list(self.captured_warnings),
        }
        if self.robustness:
            out["robustness"] = [r.to_dict() for r in self.robustness]
        if self.region is not None:
            out["region"] = self.region
        if self.intervention:
            out["intervention"] = self.intervention
        if self.region_estimates:
            out["region_estimates"] = [r.to_dict() for r in self.region_estimates]
        return out


@dataclass(frozen=True)
class ProgrammeRun:
    """A programme's spec, its loaded data and every evaluation's outcome."""

    spec: Spec
    seed: int
    data: tuple[LoadedData, ...]
    outcomes: tuple[Outcome, ...]
    versions: Mapping[str, str] = field(default_factory=dict)
    follow_up: Any = None  # impact.monitoring.followup.FollowUp when the spec has [[monitoring]] records

    @property
    def n_failed(self) -> int:
        return sum(not o.ok for o in self.outcomes) + sum(
            not r.ok for o in self.outcomes for r in (*o.robustness, *o.region_estimates)
        )

    def to_dict(self, command: str | None = None) -> dict[str, Any]:
        """The content of results.json."""
        return {
            "programme": self.spec.metadata(),
            "seed": self.seed,
            "command": command,
            "versions": dict(self.versions),
            "data": [
                {
                    "name": d.source.name,
                    "path": d.source.relative_path,
                    "sha256": d.sha256,
                    "rows_read": d.rows_read,
                    "rows_used": None if d.frame is None else len(d.frame),
                    "query": d.source.query,
                    "derive": [{"name": x.name, "expr": x.expr} for x in d.source.derive],
                    "error": d.error,
                }
                for d in self.data
            ],
            "effect_chain": {
                level: [{"text": i.text, "indicators": list(i.indicators), "measured": i.measured} for i in items]
                for level, items in self.spec.effect_chain.levels()
            },
            "indicators": self.indicator_records(),
            "evaluations": [o.to_dict() for o in self.outcomes],
            **({"monitoring": self.follow_up.to_dict()} if self.follow_up is not None else {}),
        }

    def indicator_records(self) -> list[dict[str, Any]]:
        """The indicators named in the effect chain or by an evaluation, with their library entries."""
        codes = [*self.spec.effect_chain.indicator_codes(), *[o.indicator for o in self.outcomes if o.indicator]]
        records = []
        for code in dict.fromkeys(codes):
            ind = self.spec.indicators.get(code)
            if ind is not None:
                records.append({"code": ind.code, "name": ind.name, "unit": ind.unit, "level": ind.level,
                                "definition": ind.definition, "source": ind.source, "parent": ind.parent,
                                "library": ind.library})
        return records


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the numbers and the report."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            module = __import__(name)
            out[name] = str(getattr(module, "__version__", "unknown"))
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _confined(source: DataSource) -> str | None:
    """Why the source's file may not be read now (None if it may): the check of validation, repeated at
    reading time in case a file or link changed in between."""
    if not source.roots:
        return None  # a DataSource built by hand in Python, not from a spec
    try:
        confine_path(str(source.path), source.roots[0], source.roots[1:])
    except SpecError as exc:
        return f"SpecError: {exc}"
    if not is_regular_file(source.path):
        return f"DataError: {source.relative_path} is not a regular file."
    return None


def load_source(source: DataSource) -> LoadedData:
    """Read a data source, add its derived columns and apply its row filter, recording the flow.

    Reader errors are reported by kind, never with the reader's message (which can quote the file).
    """
    refused = _confined(source)
    if refused:
        return LoadedData(source, None, (), "", 0, refused)
    sha = _sha256(source.path)
    try:
        read = read_source(source)
    except SpecError as exc:  # impact's own message (e.g. a query stopped at its time limit) quotes no data
        return LoadedData(source, None, (), sha, 0, f"SpecError: {exc}")
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported in the run, not raised
        return LoadedData(source, None, (), sha, 0, f"DataError: cannot read {source.relative_path} as {source.format} "
                          f"({type(exc).__name__}); check the file's format and the dtypes in the spec.")
    frame, rows = read.frame, read.rows_in_file
    flow = [FlowStep(f"read {source.relative_path}", rows, None,
                     f"{frame.shape[1]} columns" + (" selected" if source.select else ""))]
    if read.pushed is not None:  # the reader applied the filter: record it as its own step all the same
        flow.append(FlowStep(f"data filter ({source.name}): {read.pushed}", len(frame), None,
                             f"{rows - len(frame):,} rows not matching the condition removed "
                             + ("(in DuckDB)" if source.sql else "(in the Parquet reader)")))
    try:
        for derived in source.derive:
            check_expression(derived.expr)  # again here: a DataSource can be built without load_spec
            values = frame.eval(derived.expr, engine="python", local_dict={}, global_dict={})
            if isinstance(values, pd.Series) and pd.api.types.is_bool_dtype(values):
                values = values.astype(int)
            frame[derived.name] = values
        if source.derive:
            flow.append(FlowStep("derive columns", len(frame), None, ", ".join(f"{d.name} = {d.expr}" for d in source.derive)))
        if source.query and read.pushed is None:
            frame, step = _filter(frame, source.query, f"data filter ({source.name})")
            flow.append(step)
        elif source.query and frame.empty:
            raise DataError(f"data filter ({source.name}): query {source.query!r} keeps no rows of {rows}; check the condition.")
    except Exception as exc:  # noqa: BLE001
        return LoadedData(source, None, tuple(flow), sha, rows, f"DataError: preparing {source.name!r} failed: {exc}")
    return LoadedData(source, frame, tuple(flow), sha, rows)


def _filter(frame: pd.DataFrame, query: str, label: str) -> tuple[pd.DataFrame, FlowStep]:
    check_expression(query)
    kept = frame.query(query, engine="python", local_dict={}, global_dict={})
    dropped = len(frame) - len(kept)
    if kept.empty:
        raise DataError(f"{label}: query {query!r} keeps no rows of {len(frame)}; check the condition.")
    return kept, FlowStep(f"{label}: {query}", len(kept), None, f"{dropped:,} rows not matching the condition removed")


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _estimate(
    design: str,
    frame: pd.DataFrame,
    outcome: str,
    options: Mapping[str, Any],
    then: Sequence[Step],
    seed: int | None,
) -> Result:
    func = resolve_design(design)
    kwargs = dict(options)
    if "outcome" not in kwargs and _accepts(func, "outcome"):
        kwargs["outcome"] = outcome
    if seed is not None and "seed" not in kwargs and _accepts(func, "seed"):
        kwargs["seed"] = seed
    obj: Any = func(frame, **kwargs)
    for step in then:
        check_step(step.method, step.kwargs)  # only allow-listed result methods, whatever built the Step
        method = getattr(obj, step.method, None)
        if not callable(method):
            raise SpecError(f"then: {type(obj).__name__} returned by {design} has no method {step.method!r}.")
        step_kwargs = dict(step.kwargs)
        if seed is not None and "seed" not in step_kwargs and _accepts(method, "seed"):
            step_kwargs["seed"] = seed
        obj = method(**step_kwargs)
    if not isinstance(obj, Result) and callable(getattr(obj, "effect", None)):
        obj = obj.effect(outcome=outcome)
    if not isinstance(obj, Result):
        raise EstimationError(
            f"{design} returned a {type(obj).__name__}, not a Result; add a 'then' step that produces one."
        )
    return obj


def _one(
    *,
    name: str,
    design: str,
    outcome: str,
    indicator: str | None,
    options: Mapping[str, Any],
    then: Sequence[Step],
    query: str | None,
    loaded: LoadedData,
    seed: int | None,
    question: str = "",
) -> Outcome:
    record = dict(
        name=name, design=design, outcome=outcome, indicator=indicator, options=options, question=question,
        data=loaded.source.name, query=query, then=tuple(then),
    )
    if loaded.frame is None:
        return Outcome(**record, error=loaded.error or "the data could not be loaded")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame, flow = loaded.frame, list(loaded.flow)
            if query:
                frame, step = _filter(frame, query, "evaluation sample")
                flow.append(step)
            trends = outcome_trends(frame, outcome, options)
            variables = describe_variables(frame, outcome, options)
            result = _estimate(design, frame, outcome, options, then, seed)
            result = result.replace(sample_flow=tuple(flow) + tuple(result.sample_flow))
            error = None
        except ImpactError as exc:
            result, error, trends, variables = None, f"{type(exc).__name__}: {exc}", None, None
        except Exception as exc:  # noqa: BLE001 - an unexpected failure must not stop the other evaluations
            result, error, trends, variables = None, f"unexpected {type(exc).__name__} in {design}: {exc}", None, None
    recorded = set(result.warnings) if result is not None else set()
    other = []
    for w in caught:
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
            continue  # addressed to developers, not to the evaluator reading the report
        text = f"{w.category.__name__}: {w.message}"
        if text not in recorded and text not in other:
            other.append(text)
    return Outcome(**record, result=result, error=error, captured_warnings=tuple(other), trends=trends,
                   variables=variables)


_MAX_COHORTS = 8


def describe_variables(frame: pd.DataFrame, outcome: str, options: Mapping[str, Any]) -> pd.DataFrame:
    """Descriptive statistics of the columns an evaluation uses, in its sample (before the estimator's
    own missing-value handling): role, rows, missing, and mean/sd/min/max or the number of distinct values."""
    from impact.programme.spec import COLUMN_OPTIONS

    roles: dict[str, str] = {outcome: "outcome"}
    for key in COLUMN_OPTIONS:
        value = options.get(key)
        for name in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(name, str) and name in frame.columns:
                roles.setdefault(name, key)
    rows = []
    for column, role in roles.items():
        if column not in frame.columns:
            continue
        series = frame[column]
        row: dict[str, Any] = {"variable": column, "role": role, "rows": int(series.notna().sum()),
                               "missing": int(series.isna().sum())}
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            row.update(mean=float(series.mean()), sd=float(series.std()), min=float(series.min()), max=float(series.max()),
                       distinct=int(series.nunique()))
        else:
            row.update(mean=None, sd=None, min=None, max=None, distinct=int(series.nunique()))
        rows.append(row)
    return pd.DataFrame(rows, columns=["variable", "role", "rows", "missing", "mean", "sd", "min", "max", "distinct"])


def _show_time(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def outcome_trends(frame: pd.DataFrame, outcome: str, options: Mapping[str, Any]) -> pd.DataFrame | None:
    """Mean outcome by period and treatment cohort in the evaluation sample (a description, not an estimate).

    Used for the raw-trends figure of designs that name ``unit``, ``time`` and ``treatment`` (0/1) or
    ``cohort`` (first treated period; 0 or missing = never treated). Returns None when the options do
    not describe a panel or the columns are not usable; more than eight cohorts are pooled into
    "treated".
    """
    unit, time = options.get("unit"), options.get("time")
    treatment, cohort = options.get("treatment"), options.get("cohort")
    names = [c for c in (unit, time, treatment or cohort, outcome) if isinstance(c, str)]
    if not (isinstance(unit, str) and isinstance(time, str) and len(names) == 4) or any(c not in frame for c in names):
        return None
    data = frame[names].dropna()
    if data.empty or not pd.api.types.is_numeric_dtype(data[outcome]):
        return None
    if cohort:
        start = pd.to_numeric(data[cohort], errors="coerce").where(lambda c: c > 0)
    else:
        d = pd.to_numeric(data[treatment], errors="coerce")
        if not d.isin([0, 1]).all():
            return None
        first = data.loc[d == 1].groupby(unit, sort=False)[time].min()
        start = data[unit].map(first)
    n_cohorts = start.nunique()
    label = pd.Series("never treated", index=data.index, dtype=object)
    treated = start.notna()
    if n_cohorts > _MAX_COHORTS:
        label[treated] = "treated"
    else:
        label[treated] = [f"first treated {_show_time(v)}" for v in start[treated]]
    table = (
        data.assign(group=label, start=start)
        .groupby(["group", time], sort=True)
        .agg(mean=(outcome, "mean"), units=(unit, "nunique"), start=("start", "first"))
        .reset_index()
        .rename(columns={time: "time"})
    )
    return table


def count_tasks(spec: Spec) -> int:
    """Evaluations plus robustness checks: the units of progress."""
    return sum(1 + len(e.robustness) for e in spec.evaluations)  # region estimates count with their evaluation


def evaluate(spec: Spec, *, seed: int = DEFAULT_SEED, progress: Callable[[str], None] | None = None) -> ProgrammeRun:
    """Run every evaluation of ``spec``; failures are recorded, never raised."""
    loaded = {src.name: load_source(src) for src in spec.data}
    outcomes = []
    for evaluation in spec.evaluations:
        outcomes.append(_run_evaluation(evaluation, spec, loaded, seed, progress))
    from impact.monitoring.followup import build_follow_up

    follow_up = build_follow_up(spec, outcomes)
    return ProgrammeRun(spec, seed, tuple(loaded.values()), tuple(outcomes), package_versions(), follow_up)


def _run_evaluation(
    evaluation: Evaluation,
    spec: Spec,
    loaded: Mapping[str, LoadedData],
    seed: int,
    progress: Callable[[str], None] | None,
) -> Outcome:
    main = _one(
        name=evaluation.name,
        design=evaluation.design,
        outcome=evaluation.outcome,
        indicator=evaluation.indicator,
        options=evaluation.options,
        then=evaluation.then,
        query=evaluation.query,
        loaded=loaded[evaluation.data],
        seed=seed,
        question=evaluation.question,
    )
    if progress:
        progress(f"{spec.programme.id}: {evaluation.name}")
    checks = []
    for check in evaluation.robustness:
        checks.append(_run_check(check, evaluation, loaded, seed))
        if progress:
            progress(f"{spec.programme.id}: {evaluation.name} / {check.name}")
    regions = _run_by_region(evaluation, loaded[evaluation.data], seed) if evaluation.by_region else ()
    region = evaluation.region
    if region is None and len(spec.programme.regions) == 1:
        region = spec.programme.regions[0]
    return dataclasses.replace(main, robustness=tuple(checks), region=region, region_estimates=regions,
                               intervention=evaluation.intervention or spec.programme.intervention or None)


def _treated_units(frame: pd.DataFrame, options: Mapping[str, Any]) -> tuple[pd.Series, pd.Series] | None:
    """Each unit's treated status from the design's options: ``treated_unit``, a 0/1 ``treatment``
    column or a ``cohort`` column (first treated period, 0 or missing = never). None if none is named."""
    unit = options.get("unit")
    if not isinstance(unit, str) or unit not in frame:
        return None
    if options.get("treated_unit") is not None:
        treated = frame[unit] == options["treated_unit"]
    elif isinstance(options.get("treatment"), str) and options["treatment"] in frame:
        treated = pd.to_numeric(frame[options["treatment"]], errors="coerce").fillna(0) != 0
    elif isinstance(options.get("cohort"), str) and options["cohort"] in frame:
        treated = pd.to_numeric(frame[options["cohort"]], errors="coerce").fillna(0) > 0
    else:
        return None
    by_unit = treated.groupby(frame[unit], sort=True).any()
    return frame[unit], by_unit


def _run_by_region(evaluation: Evaluation, loaded: LoadedData, seed: int) -> tuple[Outcome, ...]:
    """One estimate per treated region: the evaluation's sample restricted to that region's units and the
    never-treated units, with the main design (or ``by_region.design``). A region whose estimate fails is
    recorded with its error, like any evaluation."""
    by = evaluation.by_region
    assert by is not None
    design = by.design or evaluation.design
    then = by.then or (evaluation.then if by.design is None else ())
    if loaded.frame is None:
        return ()
    frame = loaded.frame
    flow = list(loaded.flow)
    if evaluation.query:
        frame, step = _filter(frame, evaluation.query, "evaluation sample")
        flow.append(step)
    status = _treated_units(frame, by.options)
    if status is None:
        return (Outcome(name=f"{evaluation.name} / by region", design=design, outcome=evaluation.outcome,
                        indicator=evaluation.indicator, options=by.options,
                        error="SpecError: by_region needs the design's options to name 'unit' and the treated units "
                              "('treatment', 'cohort' or 'treated_unit')."),)
    units, treated = status
    region_of = frame.groupby(units, sort=True)[by.column].agg(lambda c: "; ".join(sorted({str(v) for v in c.dropna()})))
    controls = treated.index[~treated]
    outcomes = []
    for region in sorted({region_of[u] for u in treated.index[treated]}):
        members = [u for u in treated.index[treated] if region_of[u] == region]
        sample = frame.loc[units.isin(members) | units.isin(controls)]
        note = f"{len(members)} treated unit(s) of {region} and {len(controls)} never-treated unit(s)"
        region_loaded = dataclasses.replace(
            loaded, frame=sample, flow=(*flow, FlowStep(f"region {region}", len(sample), len(members) + len(controls), note))
        )
        options = dict(by.options)
        if options.get("treated_unit") is not None and members:
            options["treated_unit"] = members[0]
        out = _one(name=f"{evaluation.name} / region: {region}", design=design, outcome=evaluation.outcome,
                   indicator=evaluation.indicator, options=options, then=then, query=None, loaded=region_loaded,
                   seed=seed)
        outcomes.append(dataclasses.replace(out, region=region))
    return tuple(outcomes)


def _run_check(check: Check, evaluation: Evaluation, loaded: Mapping[str, LoadedData], seed: int) -> Outcome:
    return _one(
        name=check.name,
        design=check.design,
        outcome=check.outcome or evaluation.outcome,
        indicator=evaluation.indicator,
        options=check.options,
        then=check.then,
        query=check.query,
        loaded=loaded[check.data or evaluation.data],
        seed=seed,
    )


#: What impact writes into a programme's output folder (checked before overwriting).
OUTPUT_FILES = ("report.html", "results.json")


def is_generated(path: Path) -> bool:
    """True if ``path`` is absent or a file impact wrote: an HTML page with impact's generator tag, or a
    results.json with impact's keys. A user's own file of the same name is not ours."""
    if not path.exists() and not path.is_symlink():
        return True
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
        if path.suffix == ".html":
            # the generator tag; portfolio pages written before it had one end their title like this
            # (follow-up pages written before they had the tag end their title as below)
            return '<meta name="generator" content="impact' in head or any(
                title in head for title in ("– impact evaluation</title>", "– every programme and region</title>",
                                            "– follow-up and evaluation</title>"))
        if path.suffix == ".json":
            content = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(content, dict) and {"programme", "evaluations"} <= set(content)
    except (OSError, ValueError):
        return False
    return False


def check_overwrite(paths: Sequence[Path], *, force: bool = False) -> None:
    """Refuse to overwrite a file impact did not write (unless ``force``): a DataError naming it."""
    if force:
        return
    foreign = [p for p in paths if not is_generated(p)]
    if foreign:
        raise DataError(
            f"{', '.join(str(p) for p in foreign)} exists and was not written by impact; it is left as it is. "
            "Move it, choose another --out folder, or pass --force to overwrite it."
        )


def write_outputs(
    run: ProgrammeRun, folder: Path, *, command: str | None = None, portfolio: bool = False, force: bool = False
) -> Path:
    """Write ``report.html`` and ``results.json`` into ``folder``; return the report's path.

    With ``portfolio=True`` the report links back to the portfolio page (``../index.html``). A file of
    the same name that impact did not write is not overwritten unless ``force`` (DataError)."""
    return write_files(folder, render_outputs(run, command=command, portfolio=portfolio), force=force)


def render_outputs(run: ProgrammeRun, *, command: str | None = None, portfolio: bool = False) -> dict[str, str]:
    """The programme's output files as text: ``results.json`` and ``report.html`` (name -> content).

    Rendering is separate from writing so that worker processes can render and the client write
    (``impact run --jobs``)."""
    from impact.report.html import render_programme

    results = run.to_dict(command)
    return {
        "results.json": json.dumps(results, indent=2, ensure_ascii=False) + "\n",
        "report.html": render_programme(run, command=command, portfolio_link="../index.html" if portfolio else None),
    }


def write_files(folder: Path, files: Mapping[str, str], *, force: bool = False) -> Path:
    """Write rendered outputs into ``folder``; return the report's path. Files impact did not write are
    kept unless ``force`` (:func:`check_overwrite`)."""
    check_overwrite([folder / name for name in files], force=force)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder / "report.html"


def run_spec(
    path: str | Path,
    *,
    out: str | Path = "reports",
    seed: int = DEFAULT_SEED,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
    data_roots: Sequence[str | Path] = (),
    force: bool = False,
) -> tuple[ProgrammeRun, Path]:
    """Validate, evaluate and report one programme spec; return the run and the report's path."""
    spec = load_spec(path, data_roots=data_roots)
    folder = Path(out) / spec.programme.id
    check_overwrite([folder / name for name in OUTPUT_FILES], force=force)  # before spending time estimating
    run = evaluate(spec, seed=seed, progress=progress)
    report = write_outputs(run, folder, command=command, force=force)
    return run, report
