"""Where files live: the data folders (input, output, temp, user) and the model folders.

Model folders use the dialect's names (checkpoints, loras, vae, ...). `configure()` is called once by
the CLI or the server; tests call it with temporary folders. ComfyUI's `extra_model_paths.yaml`
adds folders people already have.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parent.parent

SUPPORTED_PT_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

# folder name -> (sub-directories of the models dir, extensions; "folder" means directories)
MODEL_FOLDERS: dict[str, tuple[tuple[str, ...], set[str]]] = {
    "checkpoints": (("checkpoints",), SUPPORTED_PT_EXTENSIONS),
    "configs": (("configs",), {".yaml"}),
    "loras": (("loras",), SUPPORTED_PT_EXTENSIONS),
    "vae": (("vae",), SUPPORTED_PT_EXTENSIONS),
    "text_encoders": (("text_encoders", "clip"), SUPPORTED_PT_EXTENSIONS),
    "diffusion_models": (("diffusion_models", "unet"), SUPPORTED_PT_EXTENSIONS),
    "clip_vision": (("clip_vision",), SUPPORTED_PT_EXTENSIONS),
    "embeddings": (("embeddings",), SUPPORTED_PT_EXTENSIONS),
    "diffusers": (("diffusers",), {"folder"}),
    "vae_approx": (("vae_approx",), SUPPORTED_PT_EXTENSIONS),
    "controlnet": (("controlnet", "t2i_adapter"), SUPPORTED_PT_EXTENSIONS),
    "upscale_models": (("upscale_models",), SUPPORTED_PT_EXTENSIONS),
    "hypernetworks": (("hypernetworks",), SUPPORTED_PT_EXTENSIONS),
}
LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}


class UnsafePath(ValueError):
    """A path from outside (a request, a workflow) that points out of its root."""


@dataclass
class Folders:
    data_dir: Path
    models_dirs: list[Path]
    extra: dict[str, list[Path]] = field(default_factory=dict)
    custom_nodes_dirs: list[Path] = field(default_factory=lambda: [REPO_ROOT / "custom_nodes"])
    output_override: Path | None = None  # `loom run --output-dir`
    _list_cache: dict[str, tuple[float, list[str]]] = field(default_factory=dict)

    @property
    def input_dir(self) -> Path:
        return self.data_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.output_override or self.data_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.data_dir / "temp"

    @property
    def user_dir(self) -> Path:
        return self.data_dir / "user"

    def ensure(self) -> None:
        for d in (self.input_dir, self.output_dir, self.temp_dir, self.user_dir):
            d.mkdir(parents=True, exist_ok=True)

    def seed_example_inputs(self) -> None:
        """Copy the images the example workflows load into the input folder, so they run as they are.

        A file the user already has under that name is left alone.
        """
        examples = REPO_ROOT / "workflows" / "inputs"
        if not examples.is_dir():
            return
        for src in examples.iterdir():
            dest = self.input_dir / src.name
            if src.is_file() and src.suffix.lower() in IMAGE_EXTENSIONS and not dest.exists():
                shutil.copyfile(src, dest)

    def is_model_folder(self, name: str) -> bool:
        """A model folder kind Loom knows: one of the dialect's, a legacy name, or one added by config or a pack."""
        return name in MODEL_FOLDERS or name in LEGACY_NAMES or name in self.extra

    def model_folder_paths(self, name: str) -> list[Path]:
        name = LEGACY_NAMES.get(name, name)
        subdirs = MODEL_FOLDERS.get(name, ((name,), SUPPORTED_PT_EXTENSIONS))[0]
        paths = [m / sub for m in self.models_dirs for sub in subdirs]
        paths += self.extra.get(name, [])
        seen: list[Path] = []
        for p in paths:
            if p not in seen:
                seen.append(p)
        return seen

    def extensions(self, name: str) -> set[str]:
        return MODEL_FOLDERS.get(LEGACY_NAMES.get(name, name), ((), SUPPORTED_PT_EXTENSIONS))[1]


_folders: Folders | None = None


def configure(data_dir: str | os.PathLike | None = None, models_dir: str | os.PathLike | None = None,
              extra_model_paths: str | os.PathLike | None = None,
              output_dir: str | os.PathLike | None = None, seed_examples: bool = False) -> Folders:
    """Set the folders for this process. Defaults: `<repo>/data` and `<repo>/models`.

    `seed_examples` copies the example workflows' input images into the input folder (`loom serve`
    and `loom run` do, so the examples run as they are).
    """
    global _folders
    data = Path(data_dir) if data_dir else REPO_ROOT / "data"
    models = Path(models_dir) if models_dir else REPO_ROOT / "models"
    _folders = Folders(data_dir=data.resolve(), models_dirs=[models.resolve()],
                       output_override=Path(output_dir).resolve() if output_dir else None)
    yaml_path = Path(extra_model_paths) if extra_model_paths else REPO_ROOT / "extra_model_paths.yaml"
    if yaml_path.exists():
        for name, dirs in load_extra_model_paths(yaml_path).items():
            if name == "custom_nodes":
                _folders.custom_nodes_dirs.extend(dirs)
            else:
                _folders.extra.setdefault(name, []).extend(dirs)
    _folders.ensure()
    if seed_examples:
        _folders.seed_example_inputs()
    return _folders


def folders() -> Folders:
    return _folders if _folders is not None else configure()


def load_extra_model_paths(path: str | os.PathLike) -> dict[str, list[Path]]:
    """Read ComfyUI's extra_model_paths.yaml: sections with `base_path` and folder keys.

    A value may hold several paths, one per line; relative paths are relative to base_path
    (or to the yaml file's folder).
    """
    import yaml

    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    result: dict[str, list[Path]] = {}
    for _section, conf in data.items():
        if not isinstance(conf, dict):
            continue
        base = Path(os.path.expandvars(os.path.expanduser(str(conf.get("base_path", path.parent)))))
        if not base.is_absolute():
            base = path.parent / base
        for key, value in conf.items():
            if key in ("base_path", "is_default") or value is None:
                continue
            key = LEGACY_NAMES.get(key, key)
            for line in str(value).splitlines():
                line = line.strip()
                if not line:
                    continue
                p = Path(os.path.expandvars(os.path.expanduser(line)))
                result.setdefault(key, []).append(p if p.is_absolute() else base / p)
    return result


# -- safe paths ---------------------------------------------------------------------------------
def safe_join(root: str | os.PathLike, *parts: str) -> Path:
    """Join untrusted parts under root; resolve symlinks; refuse anything that leaves root."""
    root_path = Path(root).resolve()
    for part in parts:
        if part is None:
            continue
        if "\x00" in part:
            raise UnsafePath("path contains a NUL byte")
        if os.path.isabs(part) or re.match(r"^[A-Za-z]:", part):
            raise UnsafePath(f"absolute paths are not allowed: {part!r}")
    candidate = root_path.joinpath(*[p for p in parts if p]).resolve()
    if candidate != root_path and root_path not in candidate.parents:
        raise UnsafePath(f"path leaves its folder: {'/'.join(p for p in parts if p)!r}")
    return candidate


# -- model files ----------------------------------------------------------------------------------
def _scan(dirs: list[Path], exts: set[str]) -> list[str]:
    names: set[str] = set()
    folder_mode = "folder" in exts
    for d in dirs:
        if not d.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            rel_dir = os.path.relpath(dirpath, d)
            if folder_mode:
                if "model_index.json" in filenames and rel_dir != ".":
                    names.add(rel_dir.replace(os.sep, "/"))
                continue
            for f in filenames:
                if Path(f).suffix.lower() in exts:
                    rel = f if rel_dir == "." else os.path.join(rel_dir, f)
                    names.add(rel.replace(os.sep, "/"))
    return sorted(names, key=str.lower)


def get_filename_list(name: str) -> list[str]:
    """Model files of one folder kind, relative to their folder, cached until a folder changes."""
    f = folders()
    dirs = f.model_folder_paths(name)
    stamp = max((d.stat().st_mtime for d in dirs if d.is_dir()), default=0.0)
    cached = f._list_cache.get(name)
    if cached and cached[0] == stamp and time.time() - stamp > 1.0:
        return list(cached[1])
    names = _scan(dirs, f.extensions(name))
    f._list_cache[name] = (stamp, names)
    return list(names)


def relative_model_name(filename: str) -> PurePosixPath:
    """A model name as the combo lists it: a relative path with no `..`; anything else is refused.

    Unlike `safe_join`, the file may be a symlink to elsewhere: people link models they keep in
    other places into their model folders, and the folders are theirs to arrange.
    """
    if not filename or "\x00" in filename or re.match(r"^[A-Za-z]:", filename):
        raise UnsafePath(f"not a model file name: {filename!r}")
    rel = PurePosixPath(filename.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise UnsafePath(f"model names must stay inside their folder: {filename!r}")
    return rel


def get_full_path(name: str, filename: str) -> Path | None:
    try:
        rel = relative_model_name(filename)
    except UnsafePath:
        return None
    for d in folders().model_folder_paths(name):
        p = d.joinpath(*rel.parts)
        if p.exists():
            return p
    return None


def get_full_path_or_raise(name: str, filename: str) -> Path:
    p = get_full_path(name, filename)
    if p is None:
        raise FileNotFoundError(f"Model in folder '{name}' with filename '{filename}' not found.")
    return p


# -- data files -------------------------------------------------------------------------------------
def directory_for_type(kind: str) -> Path:
    f = folders()
    dirs = {"input": f.input_dir, "output": f.output_dir, "temp": f.temp_dir}
    if kind not in dirs:
        raise UnsafePath(f"unknown folder type {kind!r} (expected input, output or temp)")
    return dirs[kind]


def split_annotation(name: str, default: str = "input") -> tuple[str, str]:
    """`"x.png [output]"` -> ("x.png", "output")."""
    m = re.match(r"^(.*) \[(input|output|temp)\]$", name)
    if m:
        return m.group(1), m.group(2)
    return name, default


def get_annotated_filepath(name: str, default: str = "input") -> Path:
    filename, kind = split_annotation(name, default)
    return safe_join(directory_for_type(kind), filename)


def list_input_images() -> list[str]:
    root = folders().input_dir
    if not root.is_dir():
        return []
    out = []
    for p in root.rglob("*"):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            out.append(p.relative_to(root).as_posix())
    return sorted(out, key=str.lower)


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` under a hidden temporary name in the same folder, then rename it over `path`:
    readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def get_save_image_path(filename_prefix: str, output_dir: Path, width: int = 0, height: int = 0
                        ) -> tuple[Path, str, int, str, str]:
    """Where the next `{prefix}_{counter:05}_.png` goes: (folder, filename, counter, subfolder, prefix).

    `%width%`, `%height%`, `%year%` ... in the prefix are substituted; the prefix may name a subfolder,
    which must stay inside output_dir.
    """
    now = time.localtime()
    subs = {
        "%width%": str(width), "%height%": str(height), "%year%": str(now.tm_year),
        "%month%": f"{now.tm_mon:02}", "%day%": f"{now.tm_mday:02}", "%hour%": f"{now.tm_hour:02}",
        "%minute%": f"{now.tm_min:02}", "%second%": f"{now.tm_sec:02}",
    }
    for k, v in subs.items():
        filename_prefix = filename_prefix.replace(k, v)
    subfolder, filename = os.path.split(os.path.normpath(filename_prefix))
    full_folder = safe_join(output_dir, subfolder) if subfolder else Path(output_dir).resolve()
    full_folder.mkdir(parents=True, exist_ok=True)
    counter = 1
    pattern = re.compile(re.escape(filename) + r"_(\d+)_?\.")
    for existing in os.listdir(full_folder):
        m = pattern.match(existing)
        if m:
            counter = max(counter, int(m.group(1)) + 1)
    return full_folder, filename, counter, subfolder.replace(os.sep, "/"), filename_prefix
