"""Hostile specs: a spec must not be able to do anything but evaluate (issue 11, items 1-4).

Each case is a spec that, before the allow-lists of ``impact.programme.safety``, ran code, wrote or
read a file outside its folder, called a private function, or hung validation. Every one must be
refused by ``load_spec`` (so by ``impact validate`` and ``impact run``) with a SpecError naming the
key, and must leave nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from impact.cli import main
from impact.errors import SpecError
from impact.programme.runner import evaluate, load_source
from impact.programme.safety import ALLOWED_STEPS, check_expression, check_step
from impact.programme.spec import Step, load_spec

PWNED = "pwned.txt"  # every hostile case that would write a file aims at this name in the spec's folder

# ---------------------------------------------------------------------------------------------
# The battery: (case id, how to edit the base spec, a fragment of the expected message)
# ---------------------------------------------------------------------------------------------
OPTIONS = 'options = { treatment = "treated", unit = "region", time = "year", vcov = "CR2" }'
DESCRIPTION = 'description = "A small simulated panel."'


def then(steps: str):
    return lambda base: base.replace(OPTIONS, f"{OPTIONS}\nthen = [{steps}]")


def check_then(steps: str):
    return lambda base: base + f'\n[[evaluations.robustness]]\nname = "check"\nthen = [{steps}]\n'


def derive(expr: str):
    return lambda base: base.replace(DESCRIPTION, f"derive = [{{ name = \"x\", expr = {expr} }}]")


def data_query(expr: str):
    return lambda base: base.replace(DESCRIPTION, f"query = {expr}")


def evaluation_query(expr: str):
    return lambda base: base.replace(OPTIONS, f"{OPTIONS}\nquery = {expr}")


def check_query(expr: str):
    return lambda base: base + f'\n[[evaluations.robustness]]\nname = "check"\nquery = {expr}\n'


def data_path(path: str):
    return lambda base: base.replace('path = "panel.csv"', f"path = {path}")


def library(path: str):
    return lambda base: f"indicator_libraries = [{path}]\n" + base


def design(name: str):
    return lambda base: base.replace('design = "did.twfe"', f'design = "{name}"')


def check_design(name: str):
    return lambda base: base + f'\n[[evaluations.robustness]]\nname = "check"\ndesign = "{name}"\n'


def option(old: str, new: str):
    return lambda base: base.replace(old, new)


NOT_CHAINABLE = "cannot be chained"
NOT_ALLOWED = "not allowed"
OUTSIDE = "outside the allowed data folders"
NOT_DESIGN = "design"
HOSTILE = [
    # 1. code execution through chained methods
    ("then-query-os-system", then('{ method = "tidy" }, { method = "query", expr = "@pd.io.common.os.system(\'touch pwned.txt\') == 0" }'), NOT_CHAINABLE),
    ("then-to-csv", then('{ method = "tidy" }, { method = "to_csv", path_or_buf = "pwned.txt" }'), NOT_CHAINABLE),
    ("then-to-csv-absolute", then('{ method = "to_csv", path_or_buf = "/tmp/impact-pwned.csv" }'), NOT_CHAINABLE),
    ("then-to-pickle", then('{ method = "to_pickle", path = "pwned.txt" }'), NOT_CHAINABLE),
    ("then-tidy", then('{ method = "tidy" }'), NOT_CHAINABLE),
    ("then-dunder-class", then('{ method = "__class__" }'), NOT_CHAINABLE),
    ("then-dunder-reduce", then('{ method = "__reduce__" }'), NOT_CHAINABLE),
    ("then-replace", then('{ method = "replace", design = "x" }'), NOT_CHAINABLE),
    ("then-to-dict", then('{ method = "to_dict" }'), NOT_CHAINABLE),
    ("then-plot", then('{ method = "plot" }'), NOT_CHAINABLE),
    ("then-summary", then('{ method = "summary" }'), NOT_CHAINABLE),
    ("then-eval", then('{ method = "eval", expr = "1" }'), NOT_CHAINABLE),
    ("then-method-not-text", then("{ method = 1 }"), "each step needs method"),
    ("then-aggregate-unknown-kind", then('{ method = "aggregate", kind = "everything" }'), "expected one of"),
    ("then-aggregate-extra-argument", then('{ method = "aggregate", kind = "simple", path = "pwned.txt" }'), "has no argument 'path'"),
    ("then-placebo-text", then('{ method = "placebo", drop_poor_fit = "x" }'), "expected a finite number"),
    ("then-honest-mbar-text", then('{ method = "honest_relative_magnitude", Mbar = "1" }'), "expected a list"),
    ("then-effect-outcome", then('{ method = "effect", outcome = "NB_EMPRATE" }'), "has no argument 'outcome'"),
    ("robustness-then-to-csv", check_then('{ method = "to_csv", path_or_buf = "pwned.txt" }'), NOT_CHAINABLE),
    # 1. code in expressions: derive, data query, evaluation query, robustness query
    ("derive-at-reference", derive('"@pd.io.common.os.system(\'touch pwned.txt\')"'), "'@'"),
    ("derive-import", derive("\"__import__('os').system('touch pwned.txt')\""), NOT_ALLOWED),
    ("derive-attribute-call", derive('"year.mean()"'), NOT_ALLOWED),
    ("derive-lambda", derive('"(lambda: 1)()"'), NOT_ALLOWED),
    ("derive-fstring", derive("\"f'{year}'\""), NOT_ALLOWED),
    ("derive-eval-call", derive("\"eval('1')\""), NOT_ALLOWED),
    ("derive-getattr-call", derive("\"getattr(year, 'real')\""), NOT_ALLOWED),
    ("derive-dunder-name", derive('"__builtins__"'), "'__'"),
    ("derive-walrus", derive('"(y := 1)"'), NOT_ALLOWED),
    ("data-query-at-local", data_query('"year > @threshold"'), "'@'"),
    ("data-query-import", data_query("\"__import__('os').system('touch pwned.txt') == 0\""), NOT_ALLOWED),
    ("data-query-subscript", data_query('"region[0] == 1"'), NOT_ALLOWED),
    ("data-query-comprehension", data_query('"[x for x in year]"'), NOT_ALLOWED),
    ("data-query-ifexp", data_query('"year if year else 1"'), NOT_ALLOWED),
    ("evaluation-query-class", evaluation_query('"year.__class__ == 1"'), NOT_ALLOWED),
    ("evaluation-query-matmul", evaluation_query('"year @ year"'), NOT_ALLOWED),
    ("evaluation-query-two-statements", evaluation_query('"year == 2; import os"'), "cannot parse"),
    ("robustness-query-open", check_query("\"open('pwned.txt', 'w')\""), NOT_ALLOWED),
    ("robustness-query-at", check_query('"@os.system"'), "'@'"),
    # 2. reading files outside the spec's folder and the data roots
    ("path-absolute-system-file", data_path('"/etc/passwd"'), OUTSIDE),
    ("path-dotdot-escape", data_path('"../../../../../../etc/passwd"'), OUTSIDE),
    ("path-home", data_path('"~/.bashrc"'), OUTSIDE),
    ("path-device", data_path('"/dev/zero"'), OUTSIDE),
    ("path-proc", data_path('"/proc/self/environ"'), OUTSIDE),
    ("path-symlink-to-system-file", data_path('"link.csv"'), OUTSIDE),
    ("path-symlinked-folder", data_path('"linked/secret.csv"'), OUTSIDE),
    ("library-absolute", library('"/etc/passwd"'), OUTSIDE),
    ("library-dotdot", library('{ path = "../../../../../../etc/hosts", prefix = "X_" }'), OUTSIDE),
    # 3. designs: public estimators only
    ("design-private-module", design("did._staggered.fe_regression"), "sub-module"),
    ("design-submodule-function", design("rct.power.power"), "sub-module"),
    ("design-not-an-estimator", design("rct.power"), "unknown design"),
    ("design-helper", design("did.honest"), "unknown design"),
    ("design-result-class", design("did.ATTGTResult"), "unknown design"),
    ("design-matching-helper", design("matching.fit_score"), "unknown design"),
    ("design-dunder", design("did.__class__"), "unknown design"),
    ("design-os", design("os.system"), "unknown module"),
    ("design-private-synth", design("synth._plots.figure"), "sub-module"),
    ("design-meta", design("meta.pool"), "unknown module"),
    ("design-importlib", design("importlib.import_module"), "unknown module"),
    ("robustness-design-simulate-power", check_design("rct.simulate_power"), "unknown design"),
    # takes df first but returns an assignment or a plot, not a result (failed only at run time before)
    ("design-assignment-tool", design("rct.assign"), "unknown design"),
    ("design-rd-plot-tool", design("rd.rdplot"), "unknown design"),
    # 4. denial of service: expression cost and TOML nesting
    ("dos-power-tower", derive('"10 ** 10 ** 10"'), "power towers"),
    ("dos-huge-exponent", derive('"9 ** 999999"'), "power towers"),
    ("dos-column-exponent", derive('"2 ** year"'), "power towers"),
    ("dos-nested-power", derive('"(2 ** 60) ** 60"'), "nests powers"),
    ("dos-text-repeat", derive("\"'a' * 1000000000\""), "arithmetic on text"),
    ("dos-list-repeat", data_query('"year in [1] * 1000000000"'), "arithmetic on text or a list"),
    ("dos-huge-integer", derive('"1' + "0" * 40 + ' + year"'), "integer beyond"),
    ("dos-long-expression", derive('"' + "+".join(["year"] * 1200) + '"'), "characters"),
    ("dos-many-nodes", data_query('"' + "+".join(["1"] * 900) + ' > year"'), "parts"),
    ("dos-endless-bootstrap", option('vcov = "CR2"', 'vcov = "wild", n_bootstrap = 1000000000000'), "more than impact allows"),
    ("dos-deep-toml", lambda base: base + "deep = " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
    ("dos-deep-inline-tables", lambda base: base + "deep = " + "{ a = " * 40 + "1" + " }" * 40 + "\n", "nested"),
    # option values are checked at validation too (issue 12 item 13)
    ("option-misspelt-value", option('vcov = "CR2"', 'vcov = "clustr"'), "choose one of"),
    ("option-wrong-type", option('vcov = "CR2"', 'vcov = "CR2", level = "0.95"'), "wrong type"),
]


@pytest.fixture
def hostile_dir(spec_dir, tmp_path_factory):
    """The spec folder, plus a link to a system file and a linked folder that leave it."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.csv").write_text("password,hunter2\n1,2\n", encoding="utf-8")
    (spec_dir.folder / "link.csv").symlink_to("/etc/passwd")
    (spec_dir.folder / "linked").symlink_to(outside, target_is_directory=True)
    return spec_dir


def test_the_battery_has_at_least_50_cases():
    assert len(HOSTILE) >= 50 and len({case for case, _, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("case", "edit", "message"), HOSTILE, ids=[c for c, _, _ in HOSTILE])
def test_hostile_spec_is_refused_at_validation(hostile_dir, case, edit, message):
    text = edit(hostile_dir.base)
    assert text != hostile_dir.base, case
    path = hostile_dir(text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text_of_error = str(err.value)
    assert message in text_of_error, text_of_error
    assert "line " in text_of_error or "nested" in text_of_error  # points into the file
    assert "hunter2" not in text_of_error and "root:" not in text_of_error  # never echoes a file
    assert not (hostile_dir.folder / PWNED).exists()


@pytest.mark.parametrize("case", ["then-query-os-system", "then-to-csv", "derive-import", "robustness-query-open"])
def test_impact_run_refuses_and_writes_nothing(hostile_dir, case):
    edit = next(e for c, e, _ in HOSTILE if c == case)
    path = hostile_dir(edit(hostile_dir.base))
    out = hostile_dir.folder / "reports"
    for command in (["validate", str(path)], ["run", str(path), "--out", str(out), "--no-registry"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, result.output
        assert not (hostile_dir.folder / PWNED).exists()
    assert not out.exists()


def test_the_2024_exploit_does_not_run_even_if_a_step_is_built_by_hand(spec_dir):
    """Defence in depth: the runner re-checks steps, so a Step made in Python is refused as well."""
    import dataclasses

    spec = load_spec(spec_dir())
    evil = (Step("tidy"), Step("query", {"expr": f"@pd.io.common.os.system('touch {spec_dir.folder / PWNED}') == 0"}))
    evaluation = dataclasses.replace(spec.evaluations[0], then=evil)
    run = evaluate(dataclasses.replace(spec, evaluations=(evaluation,)))
    assert not run.outcomes[0].ok and "cannot be chained" in run.outcomes[0].error
    assert not (spec_dir.folder / PWNED).exists()


def test_runner_rechecks_expressions_of_a_hand_built_source(spec_dir):
    import dataclasses

    source = load_spec(spec_dir()).data[0]
    loaded = load_source(dataclasses.replace(source, query="@pd.io.common.os.system('true') == 0"))
    assert loaded.frame is None and "'@'" in loaded.error


def test_a_link_swapped_in_after_validation_is_refused_when_reading(spec_dir):
    spec = load_spec(spec_dir())
    panel = spec_dir.folder / "panel.csv"
    panel.unlink()
    panel.symlink_to("/etc/passwd")
    loaded = load_source(spec.data[0])
    assert loaded.frame is None and "outside the allowed data folders" in loaded.error
    assert "root:" not in loaded.error


def test_data_root_allows_a_folder_and_nothing_else(spec_dir, tmp_path_factory):
    shared = tmp_path_factory.mktemp("shared")
    (spec_dir.folder / "panel.csv").rename(shared / "panel.csv")
    text = spec_dir.base.replace('path = "panel.csv"', f'path = "{shared / "panel.csv"}"')
    path = spec_dir(text)
    with pytest.raises(SpecError, match="outside the allowed data folders"):
        load_spec(path)
    assert load_spec(path, data_roots=[shared]).data[0].path == (shared / "panel.csv").resolve()
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 1
    ok = CliRunner().invoke(main, ["validate", str(path), "--data-root", str(shared)])
    assert ok.exit_code == 0, ok.output


def test_symlink_inside_the_roots_is_fine(spec_dir):
    (spec_dir.folder / "alias.csv").symlink_to(spec_dir.folder / "panel.csv")
    spec = load_spec(spec_dir(spec_dir.base.replace('path = "panel.csv"', 'path = "alias.csv"')))
    assert spec.data[0].path.name == "panel.csv"


def test_project_data_roots_cannot_leave_the_project(tmp_path):
    """A pyproject.toml next to a spec can widen access only inside its own folder."""
    from impact.programme.safety import configured_roots

    (tmp_path / "data").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.impact]\ndata-roots = ["data", "/", "../.."]\n', encoding="utf-8")
    assert configured_roots(tmp_path) == ((tmp_path / "data").resolve(),)


def test_unreadable_data_error_does_not_quote_the_file(spec_dir):
    (spec_dir.folder / "broken.parquet").write_text("password=hunter2\n", encoding="utf-8")
    text = spec_dir.base.replace('path = "panel.csv"', 'path = "broken.parquet"')
    with pytest.raises(SpecError, match=r"cannot read 'broken.parquet' as parquet \(\w+\)") as err:
        load_spec(spec_dir(text))
    assert "hunter2" not in str(err.value)


def test_safe_expressions_still_work():
    assert check_expression("(State == 'California') & (Quarter_Num >= 4)") == ["State", "Quarter_Num"]
    assert sorted(check_expression("log(x) ** 2 + sqrt(`gross income`) > -1e20")) == ["gross income", "x"]
    assert check_expression("code in ['a@b', 'c'] and year ** -0.5 < 1") == ["code", "year"]


def test_every_allowed_step_is_a_method_of_some_result():
    """The allow-list names real methods (a renamed method would silently disappear otherwise)."""
    import importlib
    import inspect

    from impact.did.pretrends import EventTimeMethods
    from impact.results import Result

    classes = [Result, EventTimeMethods]
    for module in ("did", "matching", "rct", "synth"):
        mod = importlib.import_module(f"impact.{module}")
        classes += [getattr(mod, n) for n in mod.__all__ if inspect.isclass(getattr(mod, n))]
    for name, rule in ALLOWED_STEPS.items():
        owners = [c for c in classes if callable(getattr(c, name, None))]
        assert owners, name
        params = set().union(*(inspect.signature(getattr(c, name)).parameters for c in owners))
        assert set(rule.arguments) <= params, (name, set(rule.arguments) - params)
    with pytest.raises(SpecError, match="cannot be chained"):
        check_step("to_csv", {})


def test_validation_is_not_fooled_by_the_working_directory(spec_dir, monkeypatch):
    """Relative data paths are relative to the spec, not to where impact is started."""
    monkeypatch.chdir("/")
    spec = load_spec(spec_dir())
    assert spec.data[0].path == (spec_dir.folder / "panel.csv").resolve()
    assert os.path.isabs(spec.data[0].path)


def test_a_refused_step_points_at_its_line(spec_dir):
    edit = next(e for c, e, _ in HOSTILE if c == "then-to-csv")
    text = edit(spec_dir.base)
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if row.startswith("then ="))
    with pytest.raises(SpecError) as err:
        load_spec(spec_dir(text))
    assert all(f"line {line}, key evaluations[0].then[" in p for p in err.value.problems)
    assert len(err.value.problems) == 2  # tidy and to_csv: both reported


def test_a_bad_path_and_unsafe_expressions_are_refused_in_one_pass(spec_dir):
    """A source whose path leaves the data roots still has its derive and query expressions checked,
    so the author sees every problem at once instead of fixing the path to learn of the rest."""
    text = derive("\"__import__('os').system('touch pwned.txt')\"")(spec_dir.base)
    text = data_path('"/etc/passwd"')(text).replace('path = "/etc/passwd"', 'path = "/etc/passwd"\nquery = "year.__class__ == 1"')
    with pytest.raises(SpecError) as err:
        load_spec(spec_dir(text))
    problems = err.value.problems
    assert len(problems) == 3, problems
    assert OUTSIDE in problems[0] and "key data[0].path" in problems[0]
    assert any("key data[0].query" in p and NOT_ALLOWED in p for p in problems)
    assert any("key data[0].derive[0].expr" in p and NOT_ALLOWED in p for p in problems)
    assert not (spec_dir.folder / PWNED).exists()
