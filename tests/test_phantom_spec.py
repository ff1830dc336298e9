"""Spec parsing: errors name the field; built-in names resolve; specs round-trip."""
import pytest

from simsbrt.errors import SpecError
from simsbrt.phantom import build_phantom, builtin_names, load_spec, parse_spec

BASE = {"name": "x", "anatomy": {"level": "T10"}, "gtv": {"sectors": ["vertebral_body"], "volume_cc": 5.0}}


def with_(**tables):
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for table, values in tables.items():
        if isinstance(values, dict):
            out.setdefault(table, {}).update(values)
        else:
            out[table] = values
    return out


@pytest.mark.parametrize("data, field, words", [
    (with_(gtv={"volume_cc": -1.0}), "gtv.volume_cc", "must be > 0"),
    (with_(gtv={"volume_cc": 0}), "gtv.volume_cc", "must be > 0"),
    (with_(anatomy={"level": "T13"}), "anatomy.level", "unknown level 'T13'"),
    (with_(gtv={"colour": "red"}), "gtv.colour", "unknown key"),
    (with_(extra_table={"a": 1}), "extra_table", "unknown key"),
    (with_(grid={"spacing_mm": 0.5}), "grid.spacing_mm", ">= 1"),
    (with_(grid={"spacing_mm": 3.5}), "grid.spacing_mm", "<= 3"),
    (with_(gtv={"sectors": ["left_ala"]}), "gtv.sectors", "unknown sector"),
    (with_(gtv={"bilsky": "4"}), "gtv.bilsky", "unknown value"),
    (with_(gtv={"lesion_type": "osteoid"}), "gtv.lesion_type", "unknown value"),
    (with_(gtv={"aspect": [1, 0, 1]}), "gtv.aspect", "> 0"),
    (with_(ptv={"margin_si_mm": -2}), "ptv.margin_si_mm", ">= 0"),
    (with_(gtv={"levels": ["T9", "T11"]}), "gtv.levels", "include the target"),
    (with_(gtv={"levels": ["T9", "T10", "T12"]}), "gtv.levels", "adjacent"),
    (with_(anatomy={"levels_above": 0}), "anatomy.levels_above", "between"),
    (with_(ctv={"method": "guess"}), "ctv.method", "unknown value"),
    ({"name": "x", "anatomy": {"level": "T10"}}, "gtv", "required"),
])
def test_bad_spec_names_the_field(data, field, words):
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="bad.toml")
    assert info.value.field == field
    assert words in str(info.value)
    assert str(info.value).startswith(f"bad.toml: {field}:")


@pytest.mark.parametrize("gtv, field, words", [
    ({"offset_mm": [0.0, 17.0, 0.0]}, "gtv.offset_mm", "SpinalCord"),                 # centre in the cord
    ({"offset_mm": [0.0, 0.0, 400.0]}, "gtv.offset_mm", "outside the grid"),
    ({"volume_cc": 60.0}, "gtv.volume_cc", "does not fit"),
    ({"sectors": ["spinous_process"], "bilsky": "1a"}, "gtv.bilsky", "borders the spinal canal"),
    ({"sectors": ["vertebral_body", "spinous_process"], "volume_cc": 1.0}, "gtv.sectors", "does not reach"),
])
def test_impossible_gtv_is_refused_naming_the_field(gtv, field, words):
    with pytest.raises(SpecError) as info:
        build_phantom(parse_spec(with_(gtv=gtv)))
    assert info.value.field == field and words in str(info.value)


def test_gtv_extension_beyond_grid_is_refused():
    spec = parse_spec(with_(anatomy={"level": "S5"}, gtv={"sectors": ["sacral_body"], "volume_cc": 60.0,
                                                          "extraosseous_mm": 40.0}))
    with pytest.raises(SpecError) as info:
        build_phantom(spec)
    assert info.value.field.startswith(("gtv", "anatomy"))


def test_malformed_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[anatomy\nlevel = 'T10'\n")
    with pytest.raises(SpecError, match="malformed TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(SpecError, match="built-in"):
        load_spec("no_such_phantom")


def test_builtins_resolve_by_name_and_round_trip():
    names = builtin_names()
    for required in ("t10_body", "c5_body", "t6_body_pedicle", "l3_body_epidural", "l1_posterior", "s1_body_ala",
                     "s2_large", "t12_small"):
        assert required in names
    for name in names:
        spec = load_spec(name)
        assert spec.name == name
        assert parse_spec(spec.to_dict()) == spec
    assert load_spec("t10_body").gtv.volume_cc == pytest.approx(10.0)


def test_spec_is_frozen():
    spec = parse_spec(BASE)
    with pytest.raises(Exception):
        spec.seed = 3  # type: ignore[misc]
