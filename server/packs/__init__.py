"""Managing ComfyUI node packs: install (git, folder, zip), dependency checks against Loom's pins,
the manifest, enable/disable/update/remove, and isolated packs that run in their own process."""
