"""The indicator library: shipped EU common and national base indicators, region libraries."""

from __future__ import annotations

import pytest

from impact.errors import SpecError
from impact.programme.indicators import LEVELS, RegionLibrary, load_library

# Issue 2 names these EU 2021-2027 common indicators (Regulation (EU) 2021/1058, Annex I).
REQUIRED = ["RCO01", "RCO02", "RCO03", "RCO04", "RCO05", "RCR01", "RCR02", "RCR03"]
NATIONAL = ["NB_EMPRATE", "NB_GRPPC", "NB_NEWFIRMS"]


def test_shipped_library_has_required_codes_with_valid_levels():
    lib = load_library()
    for code in REQUIRED + NATIONAL:
        assert code in lib, code
    assert lib["RCO01"].level == "outputs" and lib["RCR01"].level == "outcomes" and lib["NB_EMPRATE"].level == "impacts"
    assert lib["RCO01_MICRO"].parent == "RCO01"
    assert all(ind.level in LEVELS for ind in lib)
    assert lib.files == ("eu_common.csv", "national_base.csv")


def test_search_by_text_and_level():
    lib = load_library()
    jobs = lib.search("jobs", level="outcomes")
    assert list(jobs["code"]) == ["RCR01"]
    assert set(lib.search(level="impacts")["code"]) >= {"NB_EMPRATE", "NB_GRPPC"}
    assert lib.search("no such words").empty
    with pytest.raises(SpecError, match="not a level of the effect chain"):
        lib.search(level="results")


def test_unknown_code_suggests_close_codes():
    lib = load_library()
    with pytest.raises(SpecError, match="unknown indicator 'RCO1'. Did you mean"):
        lib["RCO1"]


def write(tmp_path, name, body, prefix_line=""):
    path = tmp_path / name
    path.write_text(prefix_line + "code,name,unit,level,definition,source,parent\n" + body, encoding="utf-8")
    return path


def test_region_library_prefix_from_file_or_spec(tmp_path):
    body = "SE-M_FOOD,Food start-ups,enterprises,outcomes,New food firms.,Region Skåne,\n"
    in_file = write(tmp_path, "a.csv", body, "# prefix: SE-M_\n")
    assert "SE-M_FOOD" in load_library([in_file])
    plain = write(tmp_path, "b.csv", body)
    assert "SE-M_FOOD" in load_library([RegionLibrary(plain, "SE-M_")])


def test_region_breakdown_of_a_shipped_parent(tmp_path):
    body = "SE-M_RCO01_FOOD,Supported food enterprises,enterprises,outputs,Of RCO01: food.,Region Skåne,RCO01\n"
    lib = load_library([RegionLibrary(write(tmp_path, "a.csv", body), "SE-M_")])
    assert lib["SE-M_RCO01_FOOD"].parent == "RCO01"


@pytest.mark.parametrize(
    ("body", "prefix", "message"),
    [
        ("RCR01,Jobs,FTE,outcomes,x,y,\n", "SE-M_", "a shipped indicator; a region library cannot redefine it"),
        ("SE-AB_X,X,n,outcomes,x,y,\n", "SE-M_", "does not start with the library's prefix 'SE-M_'"),
        ("RCO99,X,n,outputs,x,y,\n", "RCO", "clashes with the reserved prefixes"),
        ("SE-M_X,X,n,results,x,y,\n", "SE-M_", "level 'results' of SE-M_X must be one of"),
        ("SE-M_X,X,n,outcomes,x,y,SE-M_NONE\n", "SE-M_", "parent 'SE-M_NONE' of SE-M_X is not a known indicator"),
        ("SE-M_X,X,n,outcomes,x,y,\nSE-M_X,X,n,outcomes,x,y,\n", "SE-M_", "line 3: code 'SE-M_X' is already defined"),
    ],
)
def test_region_library_errors(tmp_path, body, prefix, message):
    with pytest.raises(SpecError, match=message):
        load_library([RegionLibrary(write(tmp_path, "r.csv", body), prefix)])


def test_wrong_header_is_reported(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("code,label\nSE-M_X,X\n", encoding="utf-8")
    with pytest.raises(SpecError, match="header must be exactly code,name,unit,level,definition,source,parent"):
        load_library([RegionLibrary(path, "SE-M_")])
