"""A fake of ComfyUI's ``folder_paths`` over a temporary base folder (same semantics)."""

from __future__ import annotations

import os

models_dir = ""
folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}
_dirs: dict[str, str] = {}


def reset(base: str) -> None:
    global models_dir
    models_dir = os.path.join(base, "models")
    folder_names_and_paths.clear()
    folder_names_and_paths["upscale_models"] = ([os.path.join(models_dir, "upscale_models")], {".pth"})
    for name in ("input", "output", "temp"):
        _dirs[name] = os.path.join(base, name)
        os.makedirs(_dirs[name], exist_ok=True)


def get_input_directory() -> str:
    return _dirs["input"]


def get_output_directory() -> str:
    return _dirs["output"]


def get_temp_directory() -> str:
    return _dirs["temp"]


def annotated_filepath(name: str):
    for tag in ("output", "input", "temp"):
        if name.endswith(f"[{tag}]"):
            return name[: -len(tag) - 3], _dirs[tag]
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    name, base = annotated_filepath(name)
    return os.path.join(base or default_dir or get_input_directory(), name)


def exists_annotated_filepath(name) -> bool:
    return os.path.exists(get_annotated_filepath(name))


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    if folder_name in folder_names_and_paths:
        paths = folder_names_and_paths[folder_name][0]
        if full_folder_path not in paths:
            paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name: str) -> list[str]:
    return folder_names_and_paths[folder_name][0][:]


def get_filename_list(folder_name: str) -> list[str]:
    folders, extensions = folder_names_and_paths[folder_name]
    found = set()
    for folder in folders:
        for root, _, files in os.walk(folder, followlinks=True):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), folder)
                if not extensions or os.path.splitext(f)[1].lower() in extensions:
                    found.add(rel)
    return sorted(found)


def get_full_path(folder_name: str, filename: str) -> str | None:
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for folder in folder_names_and_paths[folder_name][0]:
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0):
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full))) != output_dir:
        raise Exception("Saving image outside the output folder is not allowed.")
    os.makedirs(full, exist_ok=True)
    counters = [0]
    for name in os.listdir(full):
        if name.startswith(filename + "_"):
            try:
                counters.append(int(name[len(filename) + 1 :].split("_")[0]))
            except ValueError:
                pass
    return full, filename, max(counters) + 1, subfolder, filename_prefix
