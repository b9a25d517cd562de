"""Programme spec validation: every error names the file, the key path and (where found) the line."""

from __future__ import annotations

import re

import pytest
from impact.errors import SpecError
from impact.programme.spec import check_expression, load_spec, resolve_design


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_valid_spec_loads_into_frozen_dataclasses(spec_dir):
    spec = load_spec(spec_dir())
    assert spec.programme.id == "demo"
    assert spec.programme.regions == ("A", "B")
    assert spec.effect_chain.indicator_codes() == ["RCO01", "NB_EMPRATE"]
    ev = spec.evaluations[0]
    assert ev.indicator == "NB_EMPRATE"  # the outcome column is an indicator code
    assert dict(ev.options) == {"treatment": "treated", "unit": "region", "time": "year", "vcov": "CR2"}
    assert spec.data[0].path.name == "panel.csv" and "treated" in spec.data[0].columns
    assert len(spec.sha256) == 64
    with pytest.raises(AttributeError):
        spec.programme.name = "changed"  # frozen


def test_missing_required_key_names_table_and_line(spec_dir):
    text = spec_dir.base.replace('name = "Demo programme"\n', "")
    path = spec_dir(text)
    with pytest.raises(SpecError, match=r"demo\.toml, line 1, key programme: missing required key 'name'"):
        load_spec(path)


def test_typo_key_suggests_the_right_one_with_its_line(spec_dir):
    text = spec_dir.base.replace('design = "did.twfe"', 'desing = "did.twfe"')
    path = spec_dir(text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert f"line {line_of(text, 'desing')}" in message
    assert "evaluations[0].desing" in message and "Did you mean 'design'?" in message


def test_typo_in_design_option_is_caught_before_running(spec_dir):
    text = spec_dir.base.replace('treatment = "treated"', 'treatmnt = "treated"')
    with pytest.raises(SpecError, match=r"has no option 'treatmnt'. Did you mean 'treatment'\?"):
        load_spec(spec_dir(text))


def test_unknown_design_lists_close_match(spec_dir):
    text = spec_dir.base.replace('design = "did.twfe"', 'design = "did.twfee"')
    with pytest.raises(SpecError, match=r"unknown design 'did.twfee'. Did you mean 'did.twfe'\?") as err:
        load_spec(spec_dir(text))
    assert f"line {line_of(text, 'did.twfee')}" in str(err.value)


def test_unknown_design_module(spec_dir):
    with pytest.raises(SpecError, match="unknown module 'os'"):
        load_spec(spec_dir(spec_dir.base.replace('"did.twfe"', '"os.system"')))


def test_unknown_indicator_in_chain_fails(spec_dir):
    text = spec_dir.base.replace('indicators = ["RCO01"]', 'indicators = ["RCO99"]')
    with pytest.raises(SpecError, match=r"effect_chain\.outputs\[0\]\.indicators: unknown indicator 'RCO99'") as err:
        load_spec(spec_dir(text))
    assert f"line {line_of(text, 'RCO99')}" in str(err.value)


def test_unknown_indicator_in_evaluation_fails(spec_dir):
    text = spec_dir.base.replace('outcome = "NB_EMPRATE"', 'outcome = "NB_EMPRATE"\nindicator = "NB_JOBS"')
    with pytest.raises(SpecError, match="unknown indicator 'NB_JOBS'"):
        load_spec(spec_dir(text))


def test_missing_data_file_fails_with_path(spec_dir):
    text = spec_dir.base.replace('path = "panel.csv"', 'path = "nowhere/panel.csv"')
    with pytest.raises(SpecError, match=r"data\[0\]\.path: data file 'nowhere/panel.csv' not found") as err:
        load_spec(spec_dir(text))
    assert f"line {line_of(text, 'nowhere')}" in str(err.value)


def test_outcome_must_be_a_column(spec_dir):
    text = spec_dir.base.replace('outcome = "NB_EMPRATE"', 'outcome = "NB_EMPRAT"')
    with pytest.raises(SpecError, match="not a column of data source 'panel'. Did you mean 'NB_EMPRATE'"):
        load_spec(spec_dir(text))


def test_option_naming_a_missing_column_fails_with_line(spec_dir):
    text = spec_dir.base.replace('unit = "region"', 'unit = "regoin"')
    with pytest.raises(SpecError, match=r"options\.unit: unit = 'regoin' is not a column of data source 'panel'. Did you mean 'region'\?") as err:
        load_spec(spec_dir(text))
    assert f"line {line_of(text, 'regoin')}" in str(err.value)


def test_unknown_data_source(spec_dir):
    with pytest.raises(SpecError, match="unknown data source 'pannel'"):
        load_spec(spec_dir(spec_dir.base.replace('data = "panel"', 'data = "pannel"')))


def test_invalid_toml_is_a_spec_error(spec_dir):
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(spec_dir(spec_dir.base + "\n[programme\n"))


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "none.toml")


def test_derived_column_and_query_are_validated(spec_dir):
    text = spec_dir.base.replace(
        'description = "A small simulated panel."',
        'description = "x"\nquery = "year >= 2"\nderive = [{ name = "late", expr = "year > 3" }]',
    )
    spec = load_spec(spec_dir(text))
    assert spec.data[0].query == "year >= 2" and spec.data[0].derive[0].name == "late"
    bad = spec_dir.base.replace('description = "A small simulated panel."', 'query = "yaer >= 2"')
    with pytest.raises(SpecError, match="names 'yaer', which is not a column of the data. Did you mean 'year'"):
        load_spec(spec_dir(bad))


@pytest.mark.parametrize(
    "expr",
    ["__import__('os').system('true')", "year.__class__", "region[0]", "(lambda: 1)()", "open('x')"],
)
def test_expressions_cannot_run_python(expr):
    with pytest.raises(SpecError, match="not allowed"):
        check_expression(expr)


def test_expressions_allow_comparisons_lists_and_maths():
    assert check_expression("(State == 'California') & (Quarter_Num >= 4)") == ["State", "Quarter_Num"]
    assert check_expression("programme in ['bsp', 'none'] and log(x) > 1") == ["programme", "x"]


def test_region_library_with_prefix_adds_codes(spec_dir, tmp_path):
    (tmp_path / "se-ab.csv").write_text(
        "# prefix: SE-AB_\ncode,name,unit,level,definition,source,parent\n"
        "SE-AB_LIFESCI,Life-science start-ups,enterprises,outcomes,New life-science firms.,Region Stockholm,\n",
        encoding="utf-8",
    )
    text = 'indicator_libraries = ["se-ab.csv"]\n' + spec_dir.base.replace('indicators = ["NB_EMPRATE"]', 'indicators = ["NB_EMPRATE", "SE-AB_LIFESCI"]')
    spec = load_spec(spec_dir(text))
    assert spec.indicators["SE-AB_LIFESCI"].library == "se-ab.csv"


def test_region_library_cannot_redefine_shipped_code(spec_dir, tmp_path):
    (tmp_path / "se-ab.csv").write_text(
        "code,name,unit,level,definition,source,parent\n"
        "SE-AB_X,Something,enterprises,outputs,Defined.,Region,\n"
        "RCO01,Enterprises supported (our way),enterprises,outputs,Redefined.,Region,\n",
        encoding="utf-8",
    )
    text = 'indicator_libraries = [{ path = "se-ab.csv", prefix = "SE-AB_" }]\n' + spec_dir.base
    with pytest.raises(SpecError, match=r"se-ab\.csv, line 3: code 'RCO01' is a shipped indicator; a region library cannot redefine it"):
        load_spec(spec_dir(text))


def test_region_library_must_declare_prefix(spec_dir, tmp_path):
    (tmp_path / "own.csv").write_text(
        "code,name,unit,level,definition,source,parent\nOWN_X,Something,enterprises,outputs,Defined.,Region,\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match="must declare its own prefix"):
        load_spec(spec_dir('indicator_libraries = ["own.csv"]\n' + spec_dir.base))


def test_robustness_inherits_options_and_can_change_design(spec_dir):
    text = spec_dir.base + '''
[[evaluations.robustness]]
name = "CR1"
options = { vcov = "cluster" }

[[evaluations.robustness]]
name = "typo"
options = { vcv = "iid" }
'''
    with pytest.raises(SpecError, match=r"robustness\[1\]\.options\.vcv.*Did you mean 'vcov'") as err:
        load_spec(spec_dir(text))
    assert f"line {line_of(text, 'vcv =')}" in str(err.value)
    spec = load_spec(spec_dir(text.rsplit("[[evaluations.robustness]]", 1)[0]))
    check = spec.evaluations[0].robustness[0]
    assert check.design == "did.twfe" and check.options["vcov"] == "cluster" and check.options["unit"] == "region"


def test_line_of_a_key_in_the_second_evaluations_robustness(spec_dir):
    second = spec_dir.base.split("[[evaluations]]", 1)[1].replace('name = "Employment"', 'name = "Second"')
    text = (
        spec_dir.base
        + '\n[[evaluations.robustness]]\nname = "a"\noptions = { vcov = "iid" }\n'
        + "\n[[evaluations]]"
        + second
        + '\n[[evaluations.robustness]]\nname = "b"\noptions = { vcov = "iid", clustr = "region" }\n'
    )
    with pytest.raises(SpecError, match=r"evaluations\[1\]\.robustness\[0\]\.options\.clustr") as err:
        load_spec(spec_dir(text))
    assert f"line {line_of(text, 'clustr')}" in str(err.value)


def test_resolve_design_is_generic(monkeypatch):
    import impact.rct

    def toy(df, *, outcome):
        return None

    monkeypatch.setattr(impact.rct, "toy_design", toy, raising=False)
    monkeypatch.setattr(impact.rct, "__all__", [*impact.rct.__all__, "toy_design"])
    assert resolve_design("rct.toy_design") is toy
    assert resolve_design("impact.rct.toy_design") is toy
    with pytest.raises(SpecError, match=re.escape("must be 'module.function'")):
        resolve_design("twfe")


def test_every_bundled_analysis_validates():
    from pathlib import Path

    analyses = Path(__file__).resolve().parents[2] / "analyses"
    specs = sorted(analyses.glob("*.toml"))
    assert len(specs) >= 6
    for path in specs:
        spec = load_spec(path)
        assert spec.evaluations, path
