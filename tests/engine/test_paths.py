"""Folders: safe joins, model lists, extra_model_paths.yaml, the example inputs."""

import pytest

from nodes import paths


def test_safe_join_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert paths.safe_join(root, "sub", "a.png") == (root / "sub" / "a.png").resolve()
    for bad in ("../x", "/etc/passwd", "sub/../../x", "a\x00b", "C:\\x"):
        with pytest.raises(paths.UnsafePath):
            paths.safe_join(root, bad)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(paths.UnsafePath):
        paths.safe_join(root, "link", "x")


def test_model_lists_and_extra_model_paths(tmp_path):
    other = tmp_path / "elsewhere" / "my_loras"
    other.mkdir(parents=True)
    (other / "style.safetensors").write_bytes(b"x")
    (other / "notes.txt").write_text("not a model")
    yaml = tmp_path / "extra_model_paths.yaml"
    yaml.write_text(f"comfyui:\n  base_path: {tmp_path / 'elsewhere'}\n  loras: |\n    my_loras\n  clip: clips\n")
    models = tmp_path / "models"
    (models / "checkpoints" / "sub").mkdir(parents=True)
    (models / "checkpoints" / "sub" / "m.safetensors").write_bytes(b"x")
    paths.configure(tmp_path / "data", models, extra_model_paths=yaml)
    assert paths.get_filename_list("checkpoints") == ["sub/m.safetensors"]
    assert paths.get_filename_list("loras") == ["style.safetensors"]
    assert paths.get_full_path("loras", "style.safetensors") == other / "style.safetensors"
    assert paths.get_full_path("checkpoints", "../../etc/passwd") is None
    assert tmp_path / "elsewhere" / "clips" in paths.folders().model_folder_paths("text_encoders")


def test_example_inputs_are_seeded_on_request_but_user_files_kept(tmp_path):
    plain = paths.configure(tmp_path / "plain", tmp_path / "models")
    assert list(plain.input_dir.iterdir()) == []
    examples = sorted(p.name for p in (paths.REPO_ROOT / "workflows" / "inputs").glob("*.png"))
    data = tmp_path / "data"
    (data / "input").mkdir(parents=True)
    if examples:
        (data / "input" / examples[0]).write_bytes(b"mine")
    paths.configure(data, tmp_path / "models", seed_examples=True)
    for name in examples:
        assert (data / "input" / name).exists()
    if examples:
        assert (data / "input" / examples[0]).read_bytes() == b"mine"


def test_symlinked_models_load_but_names_cannot_escape(tmp_path):
    elsewhere = tmp_path / "big_disk" / "sd15.safetensors"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"x")
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / "sd15.safetensors").symlink_to(elsewhere)
    paths.configure(tmp_path / "data", models)
    assert paths.get_filename_list("checkpoints") == ["sd15.safetensors"]
    assert paths.get_full_path("checkpoints", "sd15.safetensors") == models / "checkpoints" / "sd15.safetensors"
    for bad in ("../../big_disk/sd15.safetensors", "/etc/passwd", "a\x00b", "C:\\x", ""):
        assert paths.get_full_path("checkpoints", bad) is None
