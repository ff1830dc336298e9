"""`simsbrt phantom build | info | show | cohort`, run in-process."""
import json

from simsbrt.cli import main


def test_build_info_show(tmp_path, capsys):
    out = tmp_path / "t12.h5"
    assert main(["phantom", "build", "t12_small", "--out", str(out), "--spacing-mm", "3"]) == 0
    text = capsys.readouterr().out
    assert "T12" in text and "GTV" in text and out.is_file()
    assert main(["phantom", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["spacing_mm"] == [3.0, 3.0, 3.0]
    assert len(info["shape"]) == 3
    assert 1.0 <= info["structures"]["GTV"]["volume_cc"] <= 2.0
    assert {"Body", "PTV_Eval", "SpinalCord_PRV02", "ThecalSac"} <= set(info["structures"])
    assert main(["phantom", "info", str(out)]) == 0
    assert "PTV_Eval" in capsys.readouterr().out
    png = tmp_path / "t12.png"
    assert main(["phantom", "show", str(out), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_from_toml_path_and_bad_spec(tmp_path, capsys):
    spec = tmp_path / "mine.toml"
    spec.write_text('[anatomy]\nlevel = "T13"\n[gtv]\nsectors = ["vertebral_body"]\nvolume_cc = 3.0\n')
    assert main(["phantom", "build", str(spec), "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert "anatomy.level: unknown level 'T13'" in err
    assert not (tmp_path / "x.h5").exists()


def test_cohort_command(tmp_path, capsys):
    assert main(["phantom", "cohort", "--n", "4", "--seed", "3", "--out", str(tmp_path / "c"),
                 "--spacing-mm", "3"]) == 0
    files = sorted((tmp_path / "c").glob("*.toml"))
    assert len(files) == 4
    assert main(["phantom", "build", str(files[0]), "--out", str(tmp_path / "c0.h5")]) == 0
