//! Recipes to versioned, immutable base images.
//!
//! A recipe (`images/<name>.yaml`, see [`Recipe`]) lists a Debian kernel, kernel
//! modules and packages. A `kind: unpack` recipe (`tiny`) also names the
//! programs to copy out of the unpacked packages; a `kind: mmdebstrap` recipe
//! (`debian`) installs a whole Debian system with mmdebstrap (`bootstrap.rs`).
//! [`ImageStore::build`] assembles a kernel + small initramfs + ext4 root disk
//! (qcow2), and publishes them atomically as `<store>/<name>/<version>/` with a
//! [`Manifest`]. The guest contract (kernel command line keys, console lines,
//! paths) is described in `docs/images.md`.

pub mod apt;
pub mod bootstrap;
pub mod builder;
pub mod cpio;
pub mod elf;
pub mod guest;
pub mod import;
pub mod manifest;
pub mod recipe;
pub mod store;
pub mod tool;

use std::path::Path;

pub use builder::{BuildError, BuildEvent, BuildOptions};
pub use manifest::{
    AgentInfo, BootSettings, BootSource, FileEntry, Firmware, ImportInfo, Manifest, PackageEntry,
    PackageInstall,
};
pub use recipe::{BootstrapSpec, Recipe, RecipeError, RecipeKind, RecipeSource, UnpackSpec};
pub use store::{BuiltImage, ImageInfo, ImageStore, StoreError, StoredImage};

/// Builds `recipe_path` into the store at `store_root` (see [`ImageStore::build`]).
pub fn build(
    store_root: &Path,
    recipe_path: &Path,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<BuiltImage, BuildError> {
    ImageStore::new(store_root.to_path_buf()).build(recipe_path, opts, progress)
}
