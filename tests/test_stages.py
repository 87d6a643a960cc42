"""Stage records (gem_jax/stages.py)."""
import json

import pytest

from gem_jax.stages import StageMismatchError, check_stage, config_values, write_stage


def test_config_values_reads_dotted_keys():
  config = {"model": {"beta": 4.0}, "seed": 1}
  assert config_values(config, ("model.beta", "seed", "model.gone")) == {
      "model.beta": 4.0, "seed": 1, "model.gone": None}


def test_a_stage_is_done_only_when_recorded_complete_with_the_same_settings(tmp_path):
  assert not check_stage(tmp_path, "s", {"a": 1}, {}, has_outputs=False)
  write_stage(tmp_path, "s", {"a": 1}, {"x": "d1"}, complete=False)
  assert not check_stage(tmp_path, "s", {"a": 1}, {"x": "d1"}, has_outputs=True)
  write_stage(tmp_path, "s", {"a": 1}, {"x": "d1"}, complete=True)
  assert check_stage(tmp_path, "s", {"a": 1}, {"x": "d1"}, has_outputs=True)
  with pytest.raises(StageMismatchError, match=r"config a: 1 -> 2\n  input x: \"d1\" -> \"d2\""):
    check_stage(tmp_path, "s", {"a": 2}, {"x": "d2"}, has_outputs=True)


def test_outputs_without_a_record_are_trusted_once_and_recorded(tmp_path):
  assert check_stage(tmp_path, "s", {"a": 1}, {}, has_outputs=True)
  assert json.loads((tmp_path / "stage.json").read_text())["config"] == {"a": 1}


def test_keys_added_later_match_records_made_before_them(tmp_path):
  write_stage(tmp_path, "s", {"a": 1}, {}, complete=True)
  assert check_stage(tmp_path, "s", {"a": 1, "arch": "burgess"}, {}, has_outputs=True,
                     added={"arch": "burgess"})
  with pytest.raises(StageMismatchError, match='config arch: "burgess" -> "paper"'):
    check_stage(tmp_path, "s", {"a": 1, "arch": "paper"}, {}, has_outputs=True,
                added={"arch": "burgess"})


def test_an_incomplete_stage_with_new_settings_is_redone_when_allowed(tmp_path):
  write_stage(tmp_path, "s", {"a": 1}, {}, complete=False)
  assert not check_stage(tmp_path, "s", {"a": 2}, {}, has_outputs=True, redo_incomplete=True)
  with pytest.raises(StageMismatchError):
    check_stage(tmp_path, "s", {"a": 2}, {}, has_outputs=True)
