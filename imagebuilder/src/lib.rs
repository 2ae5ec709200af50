//! Recipes to versioned, immutable base images.
